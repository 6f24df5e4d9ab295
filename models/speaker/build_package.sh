#!/usr/bin/env bash
# Builds the `pyannote-community-1` speaker-embedding package from the pinned PyPI wheel
# moonshine-voice 0.1.0 (already pinned for Moonshine tiny): its moonshine_voice/libmoonshine.so
# embeds pyannote community-1's embedding model in ONNX Runtime's ORT format as the read-only
# symbol cppannote::embedded_community1::embedding_ort_data (`nm -S` gives its place: offset
# 0xbe2cc0, 0x6a71b0 bytes; .rodata's addresses are its file offsets). The wheel and the
# model are each checked by sha256 before anything is installed. Licence: CC-BY-4.0
# (pyannote), attribution in the package's LICENSE. Idempotent.
# Usage: build_package.sh [OUT_DIR]
#   (default ${XDG_DATA_HOME:-$HOME/.local/share}/lalm/models; writes
#    OUT_DIR/pyannote-community-1/{model.toml,embedding.ort,LICENSE})
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out=${1:-${XDG_DATA_HOME:-$HOME/.local/share}/lalm/models}/pyannote-community-1
wheels=${LALM_CACHE_DIR:-$HOME/.cache/lalm}/wheels
spec=moonshine-voice==0.1.0
wheel=$wheels/moonshine_voice-0.1.0-py3-none-manylinux_2_34_x86_64.whl
wheel_sum=0f833deb43bad5dcfb4cfd3257b6df83ef9abd3f27be3199622fe41932e8d916
member=moonshine_voice/libmoonshine.so
offset=$((0xbe2cc0))
size=$((0x6a71b0))
model=embedding.ort
model_sum=6e4af7d49562e6e7042672e444d6394935cb2c23c3a7dd4919da45922b91735b

say() { echo "[speaker] $*" >&2; }

if [ -f "$out/$model" ] && echo "$model_sum  $out/$model" | sha256sum -c --status &&
   [ -f "$out/LICENSE" ] && cmp -s "$here/model.toml" "$out/model.toml"; then
  say "$out is up to date"
  exit 0
fi

mkdir -p "$wheels" "$out"
if [ -f "$wheel" ] && echo "$wheel_sum  $wheel" | sha256sum -c --status; then
  say "using $wheel"
else
  say "downloading $spec into $wheels"
  rm -f "$wheel"
  python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
    --platform manylinux_2_34_x86_64 -d "$wheels" "$spec" >&2
  if [ ! -f "$wheel" ]; then
    echo "build_package.sh: pip did not leave $wheel" >&2
    exit 1
  fi
  if ! echo "$wheel_sum  $wheel" | sha256sum -c --status; then
    echo "build_package.sh: sha256 mismatch for $wheel (expected $wheel_sum)" >&2
    mv -f "$wheel" "$wheel.bad"
    exit 1
  fi
fi

python3 - "$wheel" "$member" "$offset" "$size" "$out/$model.tmp" <<'PY'
import sys, zipfile
wheel, member, offset, size, dest = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
with zipfile.ZipFile(wheel) as z, z.open(member) as src:
    data = src.read()
with open(dest, "wb") as dst:
    dst.write(data[offset:offset + size])
PY
if ! echo "$model_sum  $out/$model.tmp" | sha256sum -c --status; then
  echo "build_package.sh: sha256 mismatch for the extracted $model (expected $model_sum)" >&2
  rm -f "$out/$model.tmp"
  exit 1
fi
mv -f "$out/$model.tmp" "$out/$model"
cat > "$out/LICENSE" <<'TXT'
pyannote speaker-diarization-community-1, embedding model
Copyright (c) pyannote.audio contributors (https://github.com/pyannote/pyannote-audio)
Licensed under the Creative Commons Attribution 4.0 International licence (CC-BY-4.0):
https://creativecommons.org/licenses/by/4.0/
Model card: https://huggingface.co/pyannote/speaker-diarization-community-1
This copy is the ONNX Runtime (ORT format) export embedded in the moonshine-voice 0.1.0 wheel
(libmoonshine.so, symbol cppannote::embedded_community1::embedding_ort_data), taken out
unchanged by gst-lalm's models/speaker/build_package.sh.
TXT
cp "$here/model.toml" "$out/model.toml"
say "built $out"
