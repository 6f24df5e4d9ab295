#!/usr/bin/env bash
# A real Triton server (scripts/triton-server.sh: the nvidia-pytriton 0.7.0 wheel's
# tritonserver) serving silero-vad and ced-tiny, checked over KServe v2 HTTP against local
# onnxruntime by scripts/triton-check.py; the server is stopped on the way out.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
line=$(bash "$here/triton-server.sh" --port-base 18100 silero-vad ced-tiny)
echo "$line"
pid=$(sed -n 's/.*pid=\([0-9]*\).*/\1/p' <<<"$line")
site=$(sed -n 's/.*site=\([^ ]*\).*/\1/p' <<<"$line")
trap 'kill -- "-$pid" 2>/dev/null || true' EXIT
PYTHONPATH=$site /usr/bin/python3 "$here/triton-check.py" http://127.0.0.1:18100
