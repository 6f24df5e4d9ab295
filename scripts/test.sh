#!/usr/bin/env bash
# The whole test suite, from a fresh clone: set up (idempotent), lint, build, unit, element
# and end-to-end tests, and the meson build. CI (.ci/run) runs exactly this.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"

# The suite's assistant tests need the assistant's real model too.
bash scripts/setup.sh --assistant
echo "==> real speech for the live timing test"
bash scripts/fetch-speech.sh
bash scripts/fetch-speech.sh 150 long
echo "==> real recorded sounds and speech for the sound-alert tests"
bash scripts/fetch-sounds.sh
# The report page's test opens it in a real headless browser: Debian's chromium.
if ! command -v chromium >/dev/null 2>&1; then
  echo "==> apt-get install chromium (the report page's browser test)"
  as_root=()
  [ "$(id -u)" -eq 0 ] || as_root=(sudo)
  "${as_root[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi

echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> cargo clippy -D warnings"
cargo clippy --release --locked --workspace --all-targets -- -D warnings
echo "==> build (the end-to-end tests load target/release/libgstlalm.so)"
cargo build --release --locked --workspace --all-targets
echo "==> tests"
cargo test --release --locked --workspace
echo "==> Triton server (nvidia-pytriton 0.7.0) against local inference"
bash scripts/test-triton.sh
echo "==> transcriberbin (live captions)"
bash scripts/test-transcriberbin.sh
echo "==> meson setup + compile"
builddir=$here/build-meson
if [ -d "$builddir" ]; then
  meson setup --wipe "$builddir" . >/dev/null
else
  meson setup "$builddir" . >/dev/null
fi
meson compile -C "$builddir"
test -f "$builddir/libgstlalm.so"
echo "==> all tests passed"
