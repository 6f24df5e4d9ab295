#!/usr/bin/env bash
# The GPU build of ONNX Runtime for execution-provider=cuda|tensorrt (docs/GPU.md).
#
#   bash scripts/setup-gpu.sh                       # ONNX Runtime GPU 1.31.1 only (244 MiB download)
#   bash scripts/setup-gpu.sh --with-cuda-wheels    # also the CUDA 13 + cuDNN 9 runtime (1.1 GiB)
#   bash scripts/setup-gpu.sh --with-cuda-wheels=DIR   # keep those wheels in DIR
#
# Downloads the pinned onnxruntime-gpu==1.31.1 wheel (cp311, manylinux_2_28 x86_64; sha256
# checked, cached in ~/.cache/lalm/wheels like scripts/setup.sh does) and takes four files out
# of it into ~/.local/share/lalm/onnxruntime-gpu/: libonnxruntime.so.1.31.1,
# libonnxruntime_providers_shared.so, libonnxruntime_providers_cuda.so and
# libonnxruntime_providers_tensorrt.so. No Python environment is made.
#
# The plugin is pointed at it with LALM_ORT_LIBRARY (or the ort-library property); the default
# search keeps finding the CPU copy scripts/setup.sh installs. One process loads one ONNX
# Runtime library.
#
# What the GPU library needs at run time (from the wheel: build_and_package_info.py says
# cuda_version 13.0; Requires-Dist extras cuda/cudnn; the ELF NEEDED entries):
#   CUDA provider      NVIDIA driver >= 580 (libcuda.so.1), CUDA 13.x runtime: libcudart.so.13,
#                      libcublas.so.13, libcublasLt.so.13, libcurand.so.10 (linked), libnvrtc.so.13
#                      and libcufft.so.12 (loaded on demand), cuDNN 9.x (libcudnn*.so.9, loaded on
#                      demand)
#   TensorRT provider  libcudart.so.13, libcublas.so.13, libcudnn.so.9 (linked) and TensorRT
#                      10.x for CUDA 13: libnvinfer.so.10, libnvonnxparser.so.10 (linked),
#                      libnvinfer_plugin.so.10; it falls back to the CUDA provider, so that one's
#                      libraries too
# libonnxruntime_providers_cuda.so has no RUNPATH: its CUDA libraries are NOT looked for next
# to it but through LD_LIBRARY_PATH (read when the process starts), /etc/ld.so.conf, or the
# system's library dirs. --with-cuda-wheels gets the CUDA and cuDNN libraries as NVIDIA's pip
# wheels (pinned below) and puts them in one folder to name in LD_LIBRARY_PATH. TensorRT's
# wheels are not on pypi.org (tensorrt-cu13-libs there is a stub that fetches from
# pypi.nvidia.com): install TensorRT 10 for CUDA 13 from NVIDIA and add its lib folder.
#
# For a GPU machine without internet: run this where pip works, then copy
# ~/.local/share/lalm/onnxruntime-gpu (and ~/.local/share/lalm/cuda13 with --with-cuda-wheels)
# to the same place there (or copy ~/.cache/lalm/wheels: with LALM_CACHE_DIR pointing at the
# folder above the copy, the script finds the checked wheels and downloads nothing).
set -euo pipefail

data_home=${XDG_DATA_HOME:-$HOME/.local/share}
lalm_data=$data_home/lalm
dest=${LALM_ORT_GPU_DIR:-$lalm_data/onnxruntime-gpu}
cuda_dest=${LALM_CUDA_LIB_DIR:-$lalm_data/cuda13/lib}
cache=${LALM_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/lalm}

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'setup-gpu: %s\n' "$*" >&2; exit 1; }

with_cuda=0
cuda_wheels=$cache/wheels/cuda13
for arg in "$@"; do
  case $arg in
    --with-cuda-wheels) with_cuda=1 ;;
    --with-cuda-wheels=*) with_cuda=1; cuda_wheels=${arg#*=} ;;
    -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$arg' (try --help)" ;;
  esac
done

for tool in unzip sha256sum python3; do
  command -v "$tool" >/dev/null || die "$tool is needed (scripts/setup.sh installs unzip; python3 with pip downloads)"
done
[ "$(uname -m)" = x86_64 ] || die "the pinned wheels are for x86_64 Linux, this is $(uname -m)"

# name==version|file|sha256 (from https://pypi.org/simple/<name>/, PEP 691 JSON)
ort_wheel="onnxruntime-gpu==1.31.1|onnxruntime_gpu-1.31.1-cp311-cp311-manylinux_2_28_x86_64.whl|e26c475fe361b2015f45b4b824bd13f0bb20204e59b62814e6f0acd5f3d491a6"
# CUDA 13.0 (what the wheel was built with; any 13.x runtime works with a >= 580 driver) and
# cuDNN 9 for CUDA 13 (1.1 GiB of wheels, 1.8 GiB unpacked). The wheels keep their libraries in nvidia/cu13/lib and nvidia/cudnn/lib.
cuda_wheels_pinned=(
  "nvidia-cuda-runtime==13.0.96|nvidia_cuda_runtime-13.0.96-py3-none-manylinux2014_x86_64.manylinux_2_17_x86_64.whl|7f82250d7782aa23b6cfe765ecc7db554bd3c2870c43f3d1821f1d18aebf0548"
  "nvidia-cublas==13.0.2.14|nvidia_cublas-13.0.2.14-py3-none-manylinux_2_27_x86_64.whl|0cf238ffdbe46c00cb9aa98e7bca745c223a5ca5a53e686ac8b3e5a08fe80d6c"
  "nvidia-curand==10.4.0.35|nvidia_curand-10.4.0.35-py3-none-manylinux_2_27_x86_64.whl|1aee33a5da6e1db083fe2b90082def8915f30f3248d5896bcec36a579d941bfc"
  "nvidia-cufft==12.0.0.61|nvidia_cufft-12.0.0.61-py3-none-manylinux2014_x86_64.manylinux_2_17_x86_64.whl|6c44f692dce8fd5ffd3e3df134b6cdb9c2f72d99cf40b62c32dde45eea9ddad3"
  "nvidia-cuda-nvrtc==13.0.88|nvidia_cuda_nvrtc-13.0.88-py3-none-manylinux2010_x86_64.manylinux_2_12_x86_64.whl|ad9b6d2ead2435f11cbb6868809d2adeeee302e9bb94bcf0539c7a40d80e8575"
  "nvidia-nvjitlink==13.0.88|nvidia_nvjitlink-13.0.88-py3-none-manylinux2010_x86_64.manylinux_2_12_x86_64.whl|13a74f429e23b921c1109976abefacc69835f2f433ebd323d3946e11d804e47b"
  "nvidia-cudnn-cu13==9.19.1.2|nvidia_cudnn_cu13-9.19.1.2-py3-none-manylinux_2_27_x86_64.whl|7609f4bbcde269c4aa8869e12112a1924fb6e032a00842912caafcb4e15d42d6"
)

# fetch_wheel SPEC FILE SHA256 DIR: prints the path of the checked wheel, downloading it with
# pip (this platform's binary wheel only, no dependencies) unless DIR already has it. pip
# matches each --platform tag exactly, so every manylinux tag the pinned wheels carry is named.
fetch_wheel() {
  local spec=$1 file=$2 sum=$3 dir=$4 path=$4/$2
  mkdir -p "$dir"
  if [ -f "$path" ] && echo "$sum  $path" | sha256sum -c --status; then
    echo "$path"; return
  fi
  say "downloading $spec"
  rm -f "$path"
  python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.11 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform manylinux_2_12_x86_64 --platform manylinux2010_x86_64 -d "$dir" "$spec" >&2 ||
    die "pip could not download $spec (no internet? copy $file into $dir)"
  [ -f "$path" ] || die "pip saved no $file in $dir"
  echo "$sum  $path" | sha256sum -c --status || die "sha256 mismatch for $path (expected $sum)"
  echo "$path"
}

# --- ONNX Runtime GPU --------------------------------------------------------------------
IFS='|' read -r spec file sum <<<"$ort_wheel"
stamp=$dest/.wheel-sha256
libs=(libonnxruntime.so.1.31.1 libonnxruntime_providers_shared.so
  libonnxruntime_providers_cuda.so libonnxruntime_providers_tensorrt.so)
have=1
for l in "${libs[@]}"; do [ -f "$dest/$l" ] || have=0; done
if [ "$have" = 1 ] && [ "$(cat "$stamp" 2>/dev/null)" = "$sum" ]; then
  say "ONNX Runtime GPU 1.31.1 already in $dest"
else
  wheel=$(fetch_wheel "$spec" "$file" "$sum" "$cache/wheels")
  say "installing ONNX Runtime GPU 1.31.1 into $dest"
  mkdir -p "$dest"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  unzip -q -o "$wheel" "${libs[@]/#/onnxruntime/capi/}" -d "$tmp"
  for l in "${libs[@]}"; do
    install -m 0644 "$tmp/onnxruntime/capi/$l" "$dest/$l.tmp"
    mv -f "$dest/$l.tmp" "$dest/$l"
  done
  # The soname (libonnxruntime.so.1) for anything that links against it by name.
  ln -sfn libonnxruntime.so.1.31.1 "$dest/libonnxruntime.so.1"
  echo "$sum" >"$stamp"
  rm -rf "$tmp"
  trap - EXIT
fi

# --- CUDA 13 and cuDNN 9 runtime from NVIDIA's wheels (optional) --------------------------
if [ "$with_cuda" = 1 ]; then
  mkdir -p "$cuda_dest"
  for w in "${cuda_wheels_pinned[@]}"; do
    IFS='|' read -r spec file sum <<<"$w"
    marker=$cuda_dest/.${file%.whl}
    [ -f "$marker" ] && continue
    wheel=$(fetch_wheel "$spec" "$file" "$sum" "$cuda_wheels")
    say "unpacking the libraries of $spec into $cuda_dest"
    # Flat: every shared library of the wheel (nvidia/cu13/lib, nvidia/cudnn/lib) in one folder.
    unzip -q -o -j "$wheel" 'nvidia/*/lib/*.so*' -d "$cuda_dest"
    : >"$marker"
  done
fi

# --- what is still missing on this machine -----------------------------------------------
lib_path=${LD_LIBRARY_PATH:-}
if [ "$with_cuda" = 1 ] || [ -d "$cuda_dest" ]; then
  lib_path=$cuda_dest${lib_path:+:$lib_path}
fi
for p in cuda tensorrt; do
  missing=$(LD_LIBRARY_PATH=$lib_path ldd "$dest/libonnxruntime_providers_$p.so" 2>/dev/null |
    awk '/not found/ {print $1}' | tr '\n' ' ')
  if [ -n "$missing" ]; then
    say "the $p provider cannot load here yet: missing $missing(execution-provider=$p falls back to CPU with this in its warning)"
  else
    say "the $p provider's linked libraries are all found"
  fi
done

cat <<EOF

ONNX Runtime GPU 1.31.1 is in $dest
Use it (one ONNX Runtime library per process, so set it before the first element starts):

  export LALM_ORT_LIBRARY=$dest/libonnxruntime.so.1.31.1
EOF
if [ -d "$cuda_dest" ]; then
  cat <<EOF
  export LD_LIBRARY_PATH=$cuda_dest\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}
EOF
else
  cat <<EOF
  export LD_LIBRARY_PATH=/usr/local/cuda-13/lib64:/path/to/cudnn9/lib\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}
      (CUDA 13 and cuDNN 9 libraries; or rerun with --with-cuda-wheels)
EOF
fi
cat <<EOF
  # for execution-provider=tensorrt also TensorRT 10's lib folder (libnvinfer.so.10) in LD_LIBRARY_PATH
  gst-launch-1.0 filesrc location=talk.wav ! decodebin ! lalm-interact execution-provider=cuda ! fakesink

or per element: lalm-perceive ort-library=$dest/libonnxruntime.so.1.31.1 execution-provider=cuda
See docs/GPU.md.
EOF
