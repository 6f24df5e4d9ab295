#!/usr/bin/env bash
# Faithfulness proof of the converted whisper package (see prove.py):
#   models/whisper/prove.sh [--size base|small] [--out DIR]
# Builds the package if needed (build_package.sh, same arguments), creates <repo>/.venv-proof
# from requirements-proof.txt (faster-whisper), then decodes espeak-ng sentences with the ONNX
# package and with faster-whisper on the CTranslate2 model, and compares the texts.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
VENV="$ROOT/.venv-proof"
SIZE=base
OUT=""
ARGS=("$@")
while [ $# -gt 0 ]; do
  case "$1" in
    --size) SIZE="$2"; shift 2 ;;
    --size=*) SIZE="${1#*=}"; shift ;;
    --out) OUT="$2"; shift 2 ;;
    --out=*) OUT="${1#*=}"; shift ;;
    *) shift ;;
  esac
done
OUT="${OUT:-${XDG_DATA_HOME:-$HOME/.local/share}/lalm/models}"
CACHE="${LALM_CACHE_DIR:-$HOME/.cache/lalm}"
for tool in espeak-ng sox; do
  command -v "$tool" >/dev/null || { echo "prove.sh: $tool is needed (apt-get install espeak-ng sox)" >&2; exit 1; }
done
bash "$HERE/build_package.sh" "${ARGS[@]}"
REQ_SHA="$(sha256sum "$HERE/requirements-proof.txt" | cut -d' ' -f1)"
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$VENV/.requirements-sha256" 2>/dev/null)" != "$REQ_SHA" ]; then
  echo "[prove] creating $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$HERE/requirements-proof.txt"
  echo "$REQ_SHA" > "$VENV/.requirements-sha256"
fi
exec "$VENV/bin/python" "$HERE/prove.py" --pkg "$OUT/whisper-$SIZE" --ct2-dir "$CACHE/ct2/whisper-$SIZE"
