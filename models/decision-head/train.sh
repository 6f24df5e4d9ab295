#!/usr/bin/env bash
# Builds the StreamAudio-style streams from the real recordings (lalm-streamaudio, with the
# tagger's per-chunk scores), then trains the decision head in a pinned venv (requirements.txt,
# --require-hashes) and scores it beside the rules on the test split. Reproducible: the same
# seed, streams and iterations give the same head.
#   bash models/decision-head/train.sh [OUT_DIR]   (default ~/.cache/lalm/decision-head)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cache=${LALM_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/lalm}
out=${1:-$cache/decision-head}
streams=$cache/bench/streamaudio
venv=$cache/venv-head
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --require-hashes -r "$here/models/decision-head/requirements.txt"
fi
cd "$here"
cargo run --release --locked -q -p lalm-tools --bin lalm-streamaudio -- \
  --features --streams 8 --events 14 --out "$streams"
"$venv/bin/python" "$here/models/decision-head/train.py" "$streams" "$out"
echo "decision head in $out"
