#!/usr/bin/env bash
# A real Triton Inference Server on 127.0.0.1 for tests and benchmarks: the tritonserver
# binary of the nvidia-pytriton 0.7.0 wheel (it carries the server and its Python backend;
# no ONNX Runtime backend), serving model packages through model.py files that run the same
# ONNX files with onnxruntime (scripts/triton-repo.py --backend python).
#
#   bash scripts/triton-server.sh [--port-base N] [--repo DIR] PACKAGE...
#
# Prepares everything under $LALM_CACHE_DIR/triton (default ~/.cache/lalm/triton): the
# pinned, sha256-checked wheels, unpacked; the Python 3.11 backend stub in backends/python
# with the execute bit; numpy 1.26.4 and onnxruntime 1.31.1 for the stub (the backend's
# utilities give wrong output sizes with numpy 2: "output tensor shape does not match size
# of output"). Then writes the model repository, starts the server (HTTP on N, gRPC on N+1,
# metrics on N+2; N = 18000 by default), waits until it is ready and prints one line:
#   pid=PID http=127.0.0.1:N grpc=127.0.0.1:N+1 metrics=http://127.0.0.1:N+2/metrics log=FILE
#   site=DIR (numpy and onnxruntime for Python 3.11, for clients such as triton-check.py)
# The server keeps running; stop it with kill PID.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cache=${LALM_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/lalm}/triton
base=18000
repo=""
pkgs=()
while [ $# -gt 0 ]; do
  case "$1" in
    --port-base) base=$2; shift 2 ;;
    --repo) repo=$2; shift 2 ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) pkgs+=("$1"); shift ;;
  esac
done
[ ${#pkgs[@]} -gt 0 ] || { echo "triton-server: name at least one model package" >&2; exit 2; }
py=/usr/bin/python3
"$py" -c 'import sys; assert sys.version_info[:2] == (3, 11)' 2>/dev/null || {
  echo "triton-server: needs Debian's Python 3.11 at $py (the backend stub is built for it)" >&2
  exit 1
}

# Tests start servers in parallel: one of them prepares, the others wait for it.
mkdir -p "$cache"
exec 9>"$cache/.prepare.lock"
flock 9

# The backend stub links Debian's libpython3.11.
if ! ldconfig -p | grep -q 'libpython3\.11\.so\.1\.0'; then
  sudo_cmd=(); [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends \
    libpython3.11 >/dev/null
fi

# name, sha256, requirement: pinned wheels.
wheels=(
  "nvidia_pytriton-0.7.0-py3-none-manylinux_2_35_x86_64.whl 21f063ff93bb426d0c06b7a55e7eb9efcfe62c0dddd9a908e9877e18710128df nvidia-pytriton==0.7.0"
  "numpy-1.26.4-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl 666dbfb6ec68962c033a450943ded891bed2d54e6755e35e5835d63f4f6931d5 numpy==1.26.4"
  "onnxruntime-1.31.1-cp311-cp311-manylinux_2_28_x86_64.whl 5752bd508126ae7c49894d3b9d2e83f0c3d487319246d04c444b393308d7ad7f onnxruntime==1.31.1"
)
mkdir -p "$cache/wheels"
for w in "${wheels[@]}"; do
  set -- $w
  file=$cache/wheels/$1
  if [ ! -f "$file" ] || [ "$(sha256sum "$file" | cut -d' ' -f1)" != "$2" ]; then
    # Any Python's pip can fetch them (the setup does the same).
    python3 -m pip download --no-deps --only-binary=:all: --python-version 3.11 \
      --platform manylinux_2_35_x86_64 --platform manylinux_2_28_x86_64 \
      --platform manylinux2014_x86_64 -d "$cache/wheels" -q "$3" >&2
  fi
  got=$(sha256sum "$file" | cut -d' ' -f1)
  [ "$got" = "$2" ] || { echo "triton-server: $1: sha256 $got, expected $2" >&2; exit 1; }
done

server=$cache/nvidia-pytriton-0.7.0
site=$cache/site-numpy-1.26.4-onnxruntime-1.31.1
if [ ! -x "$server/pytriton/tritonserver/backends/python/triton_python_backend_stub" ]; then
  rm -rf "$server.tmp" && mkdir -p "$server.tmp"
  "$py" -m zipfile -e "$cache/wheels/${wheels[0]%% *}" "$server.tmp"
  t=$server.tmp/pytriton/tritonserver
  chmod +x "$t/bin/tritonserver" "$t"/python_backend_stubs/*/triton_python_backend_stub
  cp "$t/python_backend_stubs/3.11/triton_python_backend_stub" "$t/backends/python/"
  rm -rf "$server" && mv "$server.tmp" "$server"
fi
if [ ! -d "$site/onnxruntime" ]; then
  rm -rf "$site.tmp" && mkdir -p "$site.tmp"
  for w in "${wheels[@]:1}"; do "$py" -m zipfile -e "$cache/wheels/${w%% *}" "$site.tmp"; done
  rm -rf "$site" && mv "$site.tmp" "$site"
fi
flock -u 9
exec 9>&-

[ -n "$repo" ] || repo=$cache/repo-$base
rm -rf "$repo"
PYTHONPATH=$site "$py" "$here/triton-repo.py" "$repo" --backend python "${pkgs[@]}" >/dev/null

t=$server/pytriton/tritonserver
log=$cache/server-$base.log
LD_LIBRARY_PATH=$server/nvidia_pytriton.libs PYTHONPATH=$site \
  setsid "$t/bin/tritonserver" --model-repository="$repo" --backend-directory="$t/backends" \
  --http-address=127.0.0.1 --http-port="$base" \
  --grpc-address=127.0.0.1 --grpc-port=$((base + 1)) \
  --metrics-port=$((base + 2)) --allow-metrics=true --exit-timeout-secs=5 \
  >"$log" 2>&1 </dev/null &
pid=$!
for _ in $(seq 1 120); do
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "triton-server: the server stopped; its log ($log) ends:" >&2
    tail -n 20 "$log" >&2
    exit 1
  fi
  if "$py" -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$base/v2/health/ready', timeout=1)" 2>/dev/null; then
    echo "pid=$pid http=127.0.0.1:$base grpc=127.0.0.1:$((base + 1)) metrics=http://127.0.0.1:$((base + 2))/metrics log=$log site=$site"
    exit 0
  fi
  sleep 0.5
done
kill "$pid" 2>/dev/null || true
echo "triton-server: not ready after 60 s; its log ($log) ends:" >&2
tail -n 20 "$log" >&2
exit 1
