#!/usr/bin/env bash
# The transcriberbin proof: lalm-interact as gst-plugins-rs' transcriberbin `transcriber`,
# live, with CEA-608 captions coming out. Installs the Debian packages it needs (only what is
# missing), builds gst-plugins-rs' closed caption plugin in tests/transcriberbin (a crate of its
# own: the product never links it) and runs its test. Needs the default ASR and the speaker
# model that scripts/setup.sh installs; fetches the real voices (scripts/fetch-sounds.sh).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"

# cccombiner, ccconverter, ccextractor: gstreamer1.0-plugins-bad; pango and cairo headers for the
# closed caption crate's overlay elements; espeak-ng speaks the test's sentence.
packages=(gstreamer1.0-plugins-bad libpango1.0-dev libcairo2-dev espeak-ng pkg-config)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "==> apt-get install ${missing[*]}"
  as_root=()
  [ "$(id -u)" -eq 0 ] || as_root=(sudo)
  "${as_root[@]}" apt-get update
  DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y --no-install-recommends "${missing[@]}"
fi

echo "==> build libgstlalm.so"
cargo build --release --locked -p gst-plugin-lalm --lib
lalm_dir=${CARGO_TARGET_DIR:-$here/target}/release

# Its own target dir outside the clone, so CI keeps the closed caption build between runs.
export CARGO_TARGET_DIR=${LALM_TRANSCRIBERBIN_TARGET:-${LALM_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/lalm}/transcriberbin-target}
echo "==> transcriberbin test (closed caption plugin build in $CARGO_TARGET_DIR)"
cd tests/transcriberbin
cargo build --release --locked --tests
# The test registers the two plugins in its own process; the .so files, under their plugin
# names, are for GST_PLUGIN_PATH in your own pipelines (gst-inspect-1.0 transcriberbin).
mkdir -p "$CARGO_TARGET_DIR/gst-plugins"
for lib in gstrsclosedcaption gsttextwrap; do
  newest=$(ls -t "$CARGO_TARGET_DIR"/release/deps/lib$lib-*.so | head -n 1)
  cp -f "$newest" "$CARGO_TARGET_DIR/gst-plugins/lib$lib.so"
done
# The speaker run's real voices (cached: a second call only prints the folder).
sounds=$(bash "$here/scripts/fetch-sounds.sh" | tail -n 1)
LALM_SOUNDS_DIR=$sounds LALM_PLUGIN_DIR=$lalm_dir cargo test --release --locked --test live -- --nocapture
