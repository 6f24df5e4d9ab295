#!/usr/bin/env bash
# Build the lalm-tagger-1 model package in models/tagger/ from scratch:
#   venv (.venv-tagger, pinned requirements.txt) -> synthesize train/eval audio (cached in
#   ${LALM_CACHE_DIR:-~/.cache/lalm}/tagger-data) -> train (JAX, CPU) -> export tagger.onnx ->
#   self-check (ONNX Runtime vs JAX, max abs diff < 1e-4) -> evaluate (EVAL.md).
# Needs python3 (3.11), sox and espeak-ng. Deterministic seeds; ~15 min on 2 cores.
#   bash models/tagger/build.sh [--steps N]
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="$HERE/.venv-tagger"
STEPS=12000
while [ $# -gt 0 ]; do
  case "$1" in
    --steps) STEPS="$2"; shift 2 ;;
    -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
    *) echo "build.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
for t in python3 sox espeak-ng; do
  command -v "$t" >/dev/null || { echo "build.sh: '$t' is needed (apt-get install python3-venv sox espeak-ng)" >&2; exit 1; }
done
if ! "$VENV/bin/python" -c "import jax, onnx, onnxruntime, scipy" 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q -r "$HERE/requirements.txt"
fi
PY="$VENV/bin/python"
cd "$HERE"
export PYTHONHASHSEED=0
"$PY" synth.py --split train
"$PY" synth.py --split eval
"$PY" train.py --steps "$STEPS" --out "$HERE/tagger.onnx"
"$PY" evaluate.py --model "$HERE/tagger.onnx" --md "$HERE/EVAL.md"
ls -l "$HERE/tagger.onnx" "$HERE/labels.txt" "$HERE/EVAL.md"
