#!/usr/bin/env bash
# The served-versus-local benchmark: starts a Triton server (scripts/triton-server.sh, the
# nvidia-pytriton wheel's tritonserver with the Python backend) serving silero-vad and
# ced-tiny, and runs lalm-multi-bench with the same N streams in M processes locally
# (shared, batched sessions) and on the server, on real speech (the Asterisk prompts,
# scripts/fetch-speech.sh). Extra arguments go to lalm-multi-bench (defaults below);
# --tagger PKG serves and runs that tagger package instead (ced-tiny-fp32: the fp32 export,
# which the server batches; the default int8 ced-tiny runs one window per request).
#
#   bash scripts/bench-remote.sh [--tagger ced-tiny-fp32] [--streams 8,16,32] [--procs 2] [...]
set -euo pipefail
tagger=ced-tiny
if [ "${1:-}" = --tagger ]; then
  tagger=${2:?--tagger needs a package name}
  shift 2
fi
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/.."
cache=${LALM_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/lalm}
audio=$cache/speech/asterisk-live-600s.wav
bash "$here/fetch-speech.sh" 600 >/dev/null
cargo build --release --locked -p lalm-tools --bin lalm-multi-bench >&2
line=$(bash "$here/triton-server.sh" --port-base 18400 silero-vad "$tagger")
pid=$(sed -n 's/.*pid=\([0-9]*\).*/\1/p' <<<"$line")
trap 'kill -- "-$pid" 2>/dev/null || true' EXIT
echo "server: $line"
./target/release/lalm-multi-bench --modes shared,server --streams 8,16,32 --procs 2 \
  --seconds 20 --paced-seconds 20 --asr-streams 0 --audio "$audio" --tagger "$tagger" \
  --server 127.0.0.1:18401 --server-pid "$pid" --metrics http://127.0.0.1:18402/metrics "$@"
