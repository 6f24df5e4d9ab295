#!/usr/bin/env bash
# The GPU check: one prepared run on a GPU machine (an H100/H200 with the NVIDIA driver, no
# internet), under 8 minutes. It runs the loop (lalm-perceive: Silero VAD + tagger,
# lalm-decide, lalm-respond: Whisper) over a few seconds of speech on CPU, CUDA, and TensorRT
# (fp16, an engine cache; twice, so the second start shows what the cache saves), each in its own
# process, and prints for each the active execution providers, any fallback warning, the
# session load time, the wall time, lalm-perceive's per-chunk statistics, and how the output
# compares with the CPU run. On a machine without a GPU it runs too, and shows the fallbacks.
#
# What it needs there (docs/GPU.md, "The GPU check"):
#   - this repository with target/release built: the runner is the `gpu_probe` test of
#     plugins/tests/providers.rs (cargo test --release -p gst-plugin-lalm --test providers
#     --no-run builds it; LALM_PROBE_BIN names another copy)
#   - the GStreamer 1.22+ runtime with the base and good plugins (filesrc, wavparse,
#     audioconvert, audioresample, fakesink)
#   - the ONNX Runtime GPU libraries from scripts/setup-gpu.sh: $LALM_ORT_GPU_DIR, else
#     .gpu/onnxruntime-gpu in the repository, else ~/.local/share/lalm/onnxruntime-gpu
#   - CUDA 13 + cuDNN 9 libraries (and TensorRT 10 for the TensorRT runs): $LALM_CUDA_LIB_DIRS
#     (a colon-separated list), .gpu/cuda13/lib, ~/.local/share/lalm/cuda13/lib, the nvidia/*/lib
#     and tensorrt_libs folders of python3's site-packages, /usr/local/cuda*/lib64
#   - the model packages silero-vad, lalm-tagger and whisper-base (or whisper-tiny-random) in
#     $LALM_MODEL_PATH, .gpu/models or ~/.local/share/lalm/models
#   - speech: $LALM_GPU_CHECK_WAV, .gpu/speech.wav, ~/.cache/lalm/demo/demo-repeatable.wav, or espeak-ng + sox
#
# Writes gpu-check.log and gpu-check-summary.txt (and each run's output) to $OUT when it is
# set, else to target/gpu-check.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
data_home=${XDG_DATA_HOME:-$HOME/.local/share}
out=${OUT:-$here/target/gpu-check}
mkdir -p "$out"
log=$out/gpu-check.log
exec > >(tee "$log") 2>&1
budget=${LALM_GPU_CHECK_BUDGET_S:-450} # leaves a margin under 8 minutes
t0=$SECONDS

say() { printf '\n==> %s\n' "$*"; }
left() { echo $((budget - (SECONDS - t0))); }

say "GPU check of gst-lalm, $(date -u +%FT%TZ), $(uname -srm)"
git -C "$here" log -1 --format='commit %h %s' 2>/dev/null || true

# --- the GPU -------------------------------------------------------------------------------
say "nvidia-smi"
if command -v nvidia-smi >/dev/null; then
  nvidia-smi || true
  nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used --format=csv || true
else
  echo "no nvidia-smi: no NVIDIA driver here; the cuda and tensorrt runs will fall back to CPU"
fi

# --- ONNX Runtime GPU, CUDA, cuDNN, TensorRT -----------------------------------------------
ort_dir=
for d in "${LALM_ORT_GPU_DIR:-}" "$here/.gpu/onnxruntime-gpu" "$data_home/lalm/onnxruntime-gpu"; do
  if [ -n "$d" ] && [ -f "$d/libonnxruntime.so.1.31.1" ]; then ort_dir=$d; break; fi
done
if [ -z "$ort_dir" ]; then
  echo "gpu-check: no ONNX Runtime GPU library (libonnxruntime.so.1.31.1): run scripts/setup-gpu.sh where pip works and copy ~/.local/share/lalm/onnxruntime-gpu here, or set LALM_ORT_GPU_DIR" >&2
  exit 2
fi
export LALM_ORT_LIBRARY=$ort_dir/libonnxruntime.so.1.31.1

lib_dirs=()
add_dir() { [ -d "$1" ] && lib_dirs+=("$1"); }
IFS=: read -r -a extra <<<"${LALM_CUDA_LIB_DIRS:-}"
for d in "${extra[@]}"; do add_dir "$d"; done
add_dir "$here/.gpu/cuda13/lib"
add_dir "$data_home/lalm/cuda13/lib"
add_dir "$here/.gpu/tensorrt/lib"
if command -v python3 >/dev/null; then
  while IFS= read -r site; do
    for d in "$site"/nvidia/*/lib "$site"/tensorrt_libs; do add_dir "$d"; done
  done < <(python3 -c 'import site, sysconfig; print("\n".join(sorted(set(site.getsitepackages() + [sysconfig.get_paths()["purelib"]]))))' 2>/dev/null)
fi
for d in /usr/local/cuda/lib64 /usr/local/cuda-13*/lib64 /usr/lib/x86_64-linux-gnu/tensorrt; do add_dir "$d"; done
if ((${#lib_dirs[@]})); then
  joined=$(IFS=:; echo "${lib_dirs[*]}")
  export LD_LIBRARY_PATH=$joined${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
fi
say "libraries"
echo "LALM_ORT_LIBRARY=$LALM_ORT_LIBRARY"
echo "LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}"
for p in cuda tensorrt; do
  missing=$(ldd "$ort_dir/libonnxruntime_providers_$p.so" 2>/dev/null | awk '/not found/ {print $1}' | tr '\n' ' ')
  echo "$p provider: ${missing:+missing }${missing:-all linked libraries found}"
done
for l in libcudnn.so.9 libnvinfer.so.10 libnvinfer_plugin.so.10 libnvonnxparser.so.10 libnvrtc.so.13 libcufft.so.12; do
  found=
  for d in "${lib_dirs[@]}"; do [ -e "$d/$l" ] && { found=$d/$l; break; }; done
  [ -n "$found" ] || found=$(ldconfig -p 2>/dev/null | awk -v l="$l" '$1 == l {print $NF; exit}')
  echo "$l: ${found:-not found}"
done

# --- the runner ----------------------------------------------------------------------------
probe=${LALM_PROBE_BIN:-}
if [ -z "$probe" ]; then
  probe=$(find "$here/target/release/deps" -maxdepth 1 -type f -executable -name 'providers-*' \
    -printf '%T@ %p\n' 2>/dev/null | sort -rn | awk 'NR == 1 {print $2}')
fi
if [ -z "$probe" ] && command -v cargo >/dev/null; then
  say "building the runner (cargo test --no-run)"
  (cd "$here" && cargo test --release -p gst-plugin-lalm --test providers --no-run) || true
  probe=$(find "$here/target/release/deps" -maxdepth 1 -type f -executable -name 'providers-*' \
    -printf '%T@ %p\n' 2>/dev/null | sort -rn | awk 'NR == 1 {print $2}')
fi
if [ -z "$probe" ] || [ ! -x "$probe" ]; then
  echo "gpu-check: no runner: build it with cargo test --release -p gst-plugin-lalm --test providers --no-run, or set LALM_PROBE_BIN" >&2
  exit 2
fi
echo "runner: $probe"

# --- models --------------------------------------------------------------------------------
[ -d "$here/.gpu/models" ] && export LALM_MODEL_PATH=$here/.gpu/models${LALM_MODEL_PATH:+:$LALM_MODEL_PATH}
have_model() {
  local d
  IFS=: read -r -a dirs <<<"${LALM_MODEL_PATH:-}"
  for d in "${dirs[@]}" "$data_home/lalm/models"; do
    [ -n "$d" ] && [ -f "$d/$1/model.toml" ] && return 0
  done
  return 1
}
asr=${LALM_GPU_CHECK_ASR:-}
if [ -z "$asr" ]; then
  if have_model whisper-base; then asr=whisper-base; else asr=whisper-tiny-random; fi
fi
for m in silero-vad lalm-tagger "$asr"; do
  have_model "$m" || echo "warning: model package $m not found in LALM_MODEL_PATH or $data_home/lalm/models"
done
echo "ASR model: $asr"

# --- the recording -------------------------------------------------------------------------
seconds=${LALM_GPU_CHECK_SECONDS:-12}
wav=$out/speech.wav
src=
for f in "${LALM_GPU_CHECK_WAV:-}" "$here/.gpu/speech.wav" "${XDG_CACHE_HOME:-$HOME/.cache}/lalm/demo/demo-repeatable.wav"; do
  if [ -n "$f" ] && [ -f "$f" ]; then src=$f; break; fi
done
if [ -z "$src" ] && command -v espeak-ng >/dev/null && command -v sox >/dev/null; then
  tmp=$(mktemp -d)
  espeak-ng -v en-us -s 160 -w "$tmp/a.wav" "The train to Edinburgh leaves from platform nine."
  espeak-ng -v en-gb -s 160 -w "$tmp/b.wav" "Please set a timer for twelve minutes."
  sox -n -r 16000 -c 1 -b 16 "$tmp/s.wav" trim 0 1
  for f in a b; do sox "$tmp/$f.wav" -r 16000 -c 1 -b 16 "$tmp/${f}16.wav"; done
  sox "$tmp/s.wav" "$tmp/a16.wav" "$tmp/s.wav" "$tmp/b16.wav" "$tmp/s.wav" "$tmp/made.wav"
  src=$tmp/made.wav
fi
if [ -n "$src" ]; then
  # The first $seconds seconds, as 16 kHz mono 16-bit (python3's wave module or sox).
  if command -v sox >/dev/null; then
    sox "$src" -r 16000 -c 1 -b 16 "$wav" trim 0 "$seconds"
  else
    python3 - "$src" "$wav" "$seconds" <<'EOF'
import sys, wave
src, dst, secs = sys.argv[1], sys.argv[2], float(sys.argv[3])
with wave.open(src) as r:
    p = r.getparams()
    if (p.sampwidth, p.nchannels) != (2, 1):
        sys.exit(f"{src}: need 16-bit mono, or sox")
    frames = r.readframes(int(secs * p.framerate))
with wave.open(dst, "wb") as w:
    w.setparams(p)
    w.writeframes(frames)
EOF
  fi
  echo "speech: $seconds s of $src"
else
  echo "no speech recording and no espeak-ng/sox: a tone and silence (the timings hold, the comparison is thin)"
  python3 - "$wav" "$seconds" <<'EOF'
import math, struct, sys, wave
dst, secs = sys.argv[1], float(sys.argv[2])
rate = 16000
with wave.open(dst, "wb") as w:
    w.setnchannels(1); w.setsampwidth(2); w.setframerate(rate)
    n = int(secs * rate)
    w.writeframes(b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * i / rate)) if (i // rate) % 3 == 1 else 0) for i in range(n)))
EOF
fi

# --- the runs ------------------------------------------------------------------------------
cache=$out/trt-cache
rm -rf "$cache"
mkdir -p "$cache"
runs=()
# name|provider|lalm-respond's provider|more properties (both)|time limit (s). The last run,
# only if time is left: TensorRT for the VAD and tagger (warm cache), CUDA for Whisper, whose
# ever-changing shapes make TensorRT rebuild engines (docs/GPU.md).
trt="device-id=0 trt-fp16=true trt-cache-dir=$cache"
plan=(
  "cpu|cpu|cpu||90"
  "cuda|cuda|cuda|device-id=0|90"
  "tensorrt-cold|tensorrt|tensorrt|$trt|200"
  "tensorrt-warm|tensorrt|tensorrt|$trt|120"
  "trt-vad-cuda-asr|tensorrt|cuda|$trt|60"
)
for p in "${plan[@]}"; do
  IFS='|' read -r name provider asr_provider props limit <<<"$p"
  if (($(left) < 20)) || { [ "$name" = trt-vad-cuda-asr ] && (($(left) < limit)); }; then
    say "run $name skipped: the time budget is spent"
    continue
  fi
  ((limit > $(left))) && limit=$(left)
  say "run $name: execution-provider=$provider (lalm-respond $asr_provider)${props:+ $props} (limit ${limit} s)"
  start=$SECONDS
  LALM_PROBE_WAV=$wav LALM_PROBE_PROVIDER=$provider LALM_PROBE_ASR_PROVIDER=$asr_provider \
    LALM_PROBE_PROPS=$props LALM_PROBE_ASR=$asr LALM_PROBE_OUT=$out/$name.txt \
    GST_DEBUG=${GST_DEBUG:-lalm-perceive:4,lalm-respond:4} GST_DEBUG_NO_COLOR=1 \
    timeout -k 5 "$limit" "$probe" --exact gpu_probe --ignored --nocapture --test-threads 1 \
    >"$out/$name.log" 2>&1
  rc=$?
  grep -E '^probe: |\[[EW]:onnxruntime| loaded .* on [a-z]+|ASR runs on' "$out/$name.log" |
    sed -E 's/^[0-9:.]+ +[0-9]+ +0x[0-9a-f]+ +//' | cut -c1-1200
  if [ "$rc" -ne 0 ]; then
    echo "run $name failed (exit $rc$([ "$rc" -eq 124 ] && echo ', time limit'))"
    tail -n 15 "$out/$name.log"
  fi
  echo "process wall time: $((SECONDS - start)) s"
  [ -f "$out/$name.txt" ] && runs+=("$name")
  if [ "$name" = tensorrt-cold ]; then
    echo "engine cache after the first TensorRT start:"
    find "$cache" -maxdepth 1 -type f -printf '%10s  %f\n' | head -20
    [ -n "$(ls -A "$cache")" ] || echo "(empty: no TensorRT engine was built)"
  fi
done

# --- comparison ----------------------------------------------------------------------------
say "summary"
python3 - "$out" "${runs[@]}" <<'EOF' | tee "$out/gpu-check-summary.txt"
import re, sys
out, runs = sys.argv[1], sys.argv[2:]

def load(name):
    probs, decisions, finals = {}, [], []
    for line in open(f"{out}/{name}.txt"):
        k, _, rest = line.rstrip("\n").partition(" ")
        if k == "prob":
            s, p = rest.split()
            probs[int(s)] = float(p)
        elif k == "decision":
            decisions.append(rest)
        elif k == "transcript":
            finals.append(rest.split(" ", 2)[2] if rest.count(" ") >= 2 else "")
    return probs, decisions, finals

def facts(name):
    f = {}
    for line in open(f"{out}/{name}.log", errors="replace"):
        # lalm-respond's INFO line says where Whisper runs ("loaded whisper-base on cuda").
        m = re.search(r"lalm-respond .* loaded \S+ on ([a-z]+)", line)
        if m:
            f.setdefault("active respond", m.group(1))
        if not line.startswith("probe: "):
            continue
        m = re.match(r"probe: (\S+) active-execution-provider=(\S+)", line)
        if m:
            f[f"active {m.group(1)}"] = m.group(2)
        for k, v in re.findall(r"(\w+)=(\S+)", line):
            f.setdefault(k, v)
        if line.startswith("probe: warning"):
            f["warnings"] = f.get("warnings", 0) + 1
    return f

def words(ts):
    return " ".join(ts).lower().split()

def wer(ref, hyp):
    d = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, d[0] = d[0], i
        for j, h in enumerate(hyp, 1):
            prev, d[j] = d[j], min(d[j] + 1, d[j - 1] + 1, prev + (r != h))
    return d[len(hyp)] / max(1, len(ref))

if "cpu" not in runs:
    print("no CPU run to compare with")
    base = None
else:
    base = load("cpu")
print(f"{'run':<17} {'perceive':<9} {'respond':<9} {'load ms':>8} {'wall ms':>8} {'mean us':>8} {'p99 us':>8} {'finals':>6} {'max|dp|':>8} {'decisions':>9} {'WER vs cpu':>10}")
for name in runs:
    f = facts(name)
    probs, decisions, finals = load(name)
    dp = same = w = "-"
    if base:
        common = set(probs) & set(base[0])
        if common:
            dp = f"{max(abs(probs[s] - base[0][s]) for s in common):.4f}"
        same = "same" if decisions == base[1] else f"{len(decisions)} vs {len(base[1])}"
        w = f"{wer(words(base[2]), words(finals)):.2f}"
    print(f"{name:<17} {f.get('active perceive', '-'):<9} {f.get('active respond', '-'):<9} "
          f"{f.get('load_ms', '-'):>8} {f.get('wall_ms', '-'):>8} {f.get('mean_us', '-'):>8} "
          f"{f.get('p99_us', '-'):>8} {len(finals):>6} {dp:>8} {same:>9} {w:>10}"
          + (f"  ({f['warnings']} fallback warning(s))" if f.get("warnings") else ""))
for name in runs:
    _, _, finals = load(name)
    print(f"{name} finals: {' | '.join(finals)}")
EOF
echo "total $((SECONDS - t0)) s; log in $log"
