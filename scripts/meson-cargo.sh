#!/usr/bin/env bash
# meson's build step: cargo builds the plugin into the build folder, then it is copied to
# the output meson expects.  Arguments: CARGO SOURCE_ROOT TARGET_DIR OUTPUT
set -euo pipefail
cargo=$1 src=$2 target=$3 out=$4
"$cargo" build --release --locked -p gst-plugin-lalm --lib --manifest-path "$src/Cargo.toml" --target-dir "$target"
cp -f "$target/release/libgstlalm.so" "$out"
