#!/usr/bin/env bash
# The many-streams benchmark on real speech, in one run, before and after side by side on the
# same machine (docs/benchmarks.md, "Many streams"). Every figure comes from a program that
# prints it:
#   - perception (lalm-multi-bench): N loops `lalm-chunker ! lalm-perceive ! lalm-decide` in
#     one process, fed as fast as they go; streams per core = audio seconds / CPU seconds;
#     memory per extra stream from N=1 to N=32. Tiers: VAD only; + tagger (CED-Tiny); + turn
#     model (smart-turn). "before" is the published fp32 CED-Tiny (ced-tiny-fp32) scoring every
#     window (tagger-calm-hop-ms=0); "fp32" rows keep the calm hop, to show what int8 adds.
#     Two mixes: continuous speech on every stream (the Asterisk paragraphs, 94 % speech),
#     and a conference (a quarter of the streams talking, the rest near silence).
#   - per-window cost at batch 1, 4, 16 and 32 (lalm-batch-bench), fp32 and int8 CED-Tiny.
#   - subtitles (lalm-asr-bench, one live loop paced at real time): CPU seconds per audio
#     second of the whole loop, finals only and with partials; "before" decodes every
#     partial from the utterance's start (seal-after-ms=0 partial-budget=0).
# Usage: scripts/bench-streams.sh [--quick]   (--quick: 10 s per stream, no subtitles)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"
quick=0
[ "${1:-}" = --quick ] && quick=1
cargo build --release --locked -q -p lalm-tools --bin lalm-multi-bench --bin lalm-batch-bench --bin lalm-asr-bench
long=$(bash scripts/fetch-speech.sh 150 long | tail -n 1)
secs=30; [ "$quick" = 1 ] && secs=10
echo "machine: $(nproc) CPUs; audio: $long; $secs s per stream"
multi() {  # label, then lalm-multi-bench arguments
  local label=$1; shift
  target/release/lalm-multi-bench --streams 1,32 --seconds "$secs" --paced-seconds 0 \
    --modes shared --asr-streams 0 --audio "$long" "$@" 2>/dev/null \
    | grep -E "^shared 1p N=32" | sed -e "s/^shared 1p /$(printf '%-34s' "$label") /"
}
echo "== perception, continuous speech on every stream"
multi "VAD only" --tagger none --decide turn-model=none
multi "+ tagger, before (every window)" --tagger ced-tiny-fp32 --decide turn-model=none --perceive tagger-calm-hop-ms=0
multi "+ tagger, fp32" --tagger ced-tiny-fp32 --decide turn-model=none
multi "+ tagger, after" --decide turn-model=none
multi "+ turn model, before" --tagger ced-tiny-fp32 --perceive tagger-calm-hop-ms=0
multi "+ turn model, fp32" --tagger ced-tiny-fp32
multi "+ turn model, after"
echo "== perception, a conference: a quarter of the streams talking"
multi "all models, before" --active 25 --tagger ced-tiny-fp32 --perceive tagger-calm-hop-ms=0
multi "all models, after" --active 25
echo "== per-window cost"
target/release/lalm-batch-bench --tagger ced-tiny-fp32
target/release/lalm-batch-bench --threads 1
[ "$quick" = 1 ] && exit 0
echo "== subtitles: one live loop (lalm-interact, Moonshine base), CPU per audio second"
before="seal-after-ms=0 --set partial-budget=0"
for set in "$before" "finals-only=true" ""; do
  label=${set:-defaults}
  [ "$set" = "$before" ] && label="before: every decode from the start"
  echo "-- $label"
  # shellcheck disable=SC2086
  target/release/lalm-asr-bench --speech long --seconds 150 --no-baseline ${set:+--set $set} 2>/dev/null \
    | grep -E "^(live CPU|final latency p50|first partial p50|word shown|live decodes|WER|peak RSS)"
done
target/release/lalm-multi-bench --streams 1 --seconds 1 --paced-seconds 0 --modes shared \
  --asr-streams 4 --audio "$long" 2>/dev/null | grep "lalm-respond"
