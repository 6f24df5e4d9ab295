#!/usr/bin/env bash
# Builds the Moonshine English ASR packages (MIT) from three PyPI wheels pinned by sha256:
#   moonshine-cpp==0.1.4            models/base-en/{encoder_model,decoder_model_merged}.ort
#   moonshine-voice==0.1.0          assets/tiny-en/{encoder_model,decoder_model_merged}.ort
#   useful-moonshine-onnx==20251121 assets/tokenizer.json (the same for base and tiny)
# `python3 -m pip download --no-deps` puts the wheels in ${LALM_CACHE_DIR:-$HOME/.cache/lalm}/wheels
# (outside the clone; reused when their sha256 matches). convert.py (NOTES.md) runs in a venv at
# <repo>/.venv-moonshine made from requirements.txt (stamped with its sha256, remade when it
# changes) and writes plain .onnx files; every installed file is checked against the sha256
# recorded below (convert.py is deterministic for the pinned tool versions).
# Idempotent: a package whose files have the recorded sha256 and whose model.toml equals
# base.toml / tiny.toml here is left alone (then neither the venv nor the wheels are touched).
# Usage: build_package.sh [OUT_DIR]
#   (default ${XDG_DATA_HOME:-$HOME/.local/share}/lalm/models; writes
#    OUT_DIR/moonshine-base/ (convert.py variant base-int8) and OUT_DIR/moonshine-tiny/ (variant tiny),
#    each {model.toml,encoder.onnx,decoder.onnx,tokenizer.json,LICENSE})
set -euo pipefail
case "${1:-}" in -h|--help) sed -n '2,16p' "$0"; exit 0 ;; esac
[ $# -le 1 ] || { echo "build_package.sh: at most one argument, OUT_DIR (see --help)" >&2; exit 2; }

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
VENV="$ROOT/.venv-moonshine"
WHEELS="${LALM_CACHE_DIR:-$HOME/.cache/lalm}/wheels"
OUT="${1:-${XDG_DATA_HOME:-$HOME/.local/share}/lalm/models}"

# The wheels: pip spec, file name (its platform tag is passed to pip, so the download works on
# any host: only the files inside are used), sha256 as published on PyPI.
CPP_SPEC=moonshine-cpp==0.1.4
CPP_WHEEL=moonshine_cpp-0.1.4-py3-none-manylinux2014_x86_64.whl
CPP_SHA=f7afc662bdd3ef98815ee3b940438b456e77d5a77cea5396ed9c572785412ebd
VOICE_SPEC=moonshine-voice==0.1.0
VOICE_WHEEL=moonshine_voice-0.1.0-py3-none-manylinux_2_34_x86_64.whl
VOICE_SHA=0f833deb43bad5dcfb4cfd3257b6df83ef9abd3f27be3199622fe41932e8d916
ONNX_SPEC=useful-moonshine-onnx==20251121
ONNX_WHEEL=useful_moonshine_onnx-20251121-py3-none-any.whl
ONNX_SHA=b4189b0d7dc8064d567fd0b5d5ce78634be290b0a3a3274ab80ad11c46d531a2

# The installed files' sha256 (onnxruntime 1.22.1, onnx 1.23.2, numpy 2.4.6: requirements.txt).
TOKENIZER_SHA=b68b995a58b3373db6c4f46864a9db50cd1333d086150ffa2c1096581ede9c10
BASE_ENCODER_SHA=fab2749b85fbd447c98cd079f4898a904deaf1800bf01369c7ae218e0b1c2e97
BASE_DECODER_SHA=7204f3dd672403ec3c4c0f8a7559c846f22b2bf2ef6ad915a0f6f466f097e914
BASE_LICENSE_SHA=353315a8258f82a0360ddf81df9945e8ec45f1ba69c04e35e88fd3824ae18744
TINY_ENCODER_SHA=eed46479a5a686a32f7abfa135244846579a487c290c7dc9f83c9d12c5ce2093
TINY_DECODER_SHA=298e83a7eed1594c39593b344e960ed9849f2a14e29dce2b383c07429bbb8a3f
TINY_LICENSE_SHA=160d2dcbadc2bdf5ad0a4d40d268b4919b96e69f99f53cc2a0f4e9f43c9f93bf

log() { printf '[moonshine %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
sha() { sha256sum "$1" | cut -d' ' -f1; }
die() { echo "build_package.sh: $*" >&2; exit 1; }

# package -> convert.py variant, its model.toml here, the installed files' sha256
pkg_variant() { case "$1" in moonshine-base) echo base-int8 ;; moonshine-tiny) echo tiny ;; esac; }
pkg_toml() { case "$1" in moonshine-base) echo "$HERE/base.toml" ;; moonshine-tiny) echo "$HERE/tiny.toml" ;; esac; }
pkg_sums() {  # prints "file sha256" lines
  case "$1" in
    moonshine-base) printf '%s %s\n' encoder.onnx "$BASE_ENCODER_SHA" decoder.onnx "$BASE_DECODER_SHA" \
                      tokenizer.json "$TOKENIZER_SHA" LICENSE "$BASE_LICENSE_SHA" ;;
    moonshine-tiny) printf '%s %s\n' encoder.onnx "$TINY_ENCODER_SHA" decoder.onnx "$TINY_DECODER_SHA" \
                      tokenizer.json "$TOKENIZER_SHA" LICENSE "$TINY_LICENSE_SHA" ;;
  esac
}
current() {  # dir package: the files carry the recorded sha256 and model.toml is this one
  local f want
  cmp -s "$(pkg_toml "$2")" "$1/model.toml" || return 1
  while read -r f want; do
    [ -f "$1/$f" ] && [ "$(sha "$1/$f")" = "$want" ] || return 1
  done < <(pkg_sums "$2")
}

STALE=()
for p in moonshine-base moonshine-tiny; do
  if current "$OUT/$p" "$p"; then log "$OUT/$p is up to date"; else STALE+=("$p"); fi
done
[ ${#STALE[@]} -gt 0 ] || exit 0

# --- venv -----------------------------------------------------------------------------------
. "$ROOT/models/venv.sh"
PY=$(model_venv "$VENV" "$HERE/requirements.txt")

# --- wheels ---------------------------------------------------------------------------------
mkdir -p "$WHEELS"
fetch_wheel() {  # spec file sha256
  local spec="$1" file="$WHEELS/$2" want="$3" plat got
  if [ -f "$file" ] && [ "$(sha "$file")" = "$want" ]; then log "using $file"; return; fi
  log "downloading $spec into $WHEELS"
  rm -f "$file"
  plat="${2%.whl}"; plat="${plat##*-}"
  # Only the wheel file is wanted: no dependencies, no environment.
  python3 -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
    $( [ "$plat" = any ] || echo "--platform $plat" ) -d "$WHEELS" "$spec" >&2
  [ -f "$file" ] || die "pip did not leave $file"
  got="$(sha "$file")"
  if [ "$got" != "$want" ]; then
    mv -f "$file" "$file.bad"
    die "sha256 mismatch for $file: got $got, expected $want"
  fi
}
fetch_wheel "$CPP_SPEC" "$CPP_WHEEL" "$CPP_SHA"
fetch_wheel "$VOICE_SPEC" "$VOICE_WHEEL" "$VOICE_SHA"
fetch_wheel "$ONNX_SPEC" "$ONNX_WHEEL" "$ONNX_SHA"

# --- convert --------------------------------------------------------------------------------
mkdir -p "$OUT"
WORK="$(mktemp -d "$OUT/.moonshine-build.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
VARIANTS="$(for p in "${STALE[@]}"; do pkg_variant "$p"; done | paste -sd, -)"
log "converting ($VARIANTS)"
if ! "$PY" "$HERE/convert.py" --cpp-wheel "$WHEELS/$CPP_WHEEL" --voice-wheel "$WHEELS/$VOICE_WHEEL" \
     --onnx-wheel "$WHEELS/$ONNX_WHEEL" --out "$WORK/convert" --variants "$VARIANTS" \
     > "$WORK/convert.log" 2>&1; then
  cat "$WORK/convert.log" >&2
  die "convert.py failed"
fi
grep -E '^(base-int8|tiny)/' "$WORK/convert.log" | sed 's/^/  /' >&2 || true

# --- install --------------------------------------------------------------------------------
for p in "${STALE[@]}"; do
  v="$(pkg_variant "$p")"
  stage="$WORK/$p"
  mkdir -p "$stage"
  mv "$WORK/convert/$v/encoder_model.onnx" "$stage/encoder.onnx"
  mv "$WORK/convert/$v/decoder_model_merged.onnx" "$stage/decoder.onnx"
  mv "$WORK/convert/$v/tokenizer.json" "$stage/tokenizer.json"
  if [ "$p" = moonshine-base ]; then
    model_wheel="$CPP_WHEEL" model_spec="$CPP_SPEC" members="moonshine_cpp/models/base-en/{encoder_model,decoder_model_merged}.ort"
    license_member=moonshine_cpp-0.1.4.data/purelib/moonshine_cpp/LICENSE
  else
    model_wheel="$VOICE_WHEEL" model_spec="$VOICE_SPEC" members="moonshine_voice/assets/tiny-en/{encoder_model,decoder_model_merged}.ort"
    license_member=moonshine_voice-0.1.0.dist-info/licenses/LICENSE
  fi
  # LICENSE: the MIT texts of the wheel the model comes from and of the tokenizer's wheel.
  "$PY" - "$stage/LICENSE" "$p" \
      "$WHEELS/$model_wheel" "$license_member" "encoder.onnx and decoder.onnx are converted from $members in $model_spec" \
      "$WHEELS/$ONNX_WHEEL" useful_moonshine_onnx-20251121.dist-info/LICENSE "tokenizer.json is moonshine_onnx/assets/tokenizer.json from $ONNX_SPEC" <<'EOF'
import sys, textwrap, zipfile
dest, pkg, rest = sys.argv[1], sys.argv[2], sys.argv[3:]
parts = [f"{pkg}: the files in this folder are under the MIT licence (English Moonshine models)."]
for wheel, member, what in zip(rest[0::3], rest[1::3], rest[2::3]):
    text = zipfile.ZipFile(wheel).read(member).decode("utf-8").strip("\n")
    parts.append(textwrap.fill(f"{what}; that wheel's LICENSE ({member}):", 80, break_on_hyphens=False, break_long_words=False) + "\n\n" + text)
with open(dest, "w", encoding="utf-8", newline="\n") as f:
    f.write("\n\n".join(parts) + "\n")
EOF
  cp "$(pkg_toml "$p")" "$stage/model.toml"
  while read -r f want; do
    got="$(sha "$stage/$f")"
    [ "$got" = "$want" ] || die "$p/$f: sha256 $got, expected $want (tool versions other than requirements.txt's?)"
  done < <(pkg_sums "$p")
  chmod 0755 "$stage"
  chmod 0644 "$stage"/*
  rm -rf "$OUT/$p"
  mv "$stage" "$OUT/$p"
  log "installed $OUT/$p ($(du -sh "$OUT/$p" | cut -f1): model.toml, encoder.onnx, decoder.onnx, tokenizer.json, LICENSE)"
done
