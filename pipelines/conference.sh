#!/usr/bin/env bash
# A conferencing server's captions and alerts: one process, one loop per participant, the
# models shared by all of them (one session per model, cross-stream batches). Each
# participant's input is played at real pace, as a media server would hand decoded audio
# over; each gets its own subtitles (OUTDIR/pK.srt, and lalm-transcript messages naming
# lalm-pK on the bus) and its own alert stream (OUTDIR/pK.alerts, one JSON line per alert).
#
#   pipelines/conference.sh OUTDIR INPUT...        one participant per audio file
#   pipelines/conference.sh --rtp PORT N OUTDIR    N participants sending RTP L16 mono
#                                                  16 kHz to UDP ports PORT, PORT+2, ...
#   pipelines/conference.sh --print ...            prints the gst-launch-1.0 description
#                                                  instead of running it (the tests run it)
#
# Captions are finals only (finals-only=true): a final decode per turn and one decode as each
# pause begins, so 16 participants fit a 2-core machine; drop it from EXTRA for partials
# (about twice the CPU, docs/benchmarks.md). EXTRA (environment) adds lalm-interact
# properties to every participant, e.g. EXTRA="rules=rules.toml".
set -euo pipefail
print=0
if [ "${1:-}" = --print ]; then print=1; shift; fi
usage() {
  echo "usage: $0 [--print] OUTDIR INPUT... | $0 [--print] --rtp PORT N OUTDIR" >&2
  exit 2
}
inputs=()
if [ "${1:-}" = --rtp ]; then
  [ $# -eq 4 ] || usage
  port=$2 n=$3 out=$4
  case "$port$n" in ''|*[!0-9]*) usage ;; esac
  for ((k = 0; k < n; k++)); do
    inputs+=("udpsrc port=$((port + 2 * k)) caps=\"application/x-rtp,media=audio,clock-rate=16000,encoding-name=L16,channels=1\" ! rtpjitterbuffer latency=100 ! rtpL16depay")
  done
else
  [ $# -ge 2 ] || usage
  out=$1; shift
  for f in "$@"; do
    [ -f "$f" ] || { echo "$0: no file $f" >&2; exit 1; }
    # identity sync=true releases each buffer at its time: the file plays as a live input.
    inputs+=("filesrc location=\"$(realpath "$f")\" ! decodebin ! audioconvert ! audioresample ! identity sync=true")
  done
fi
mkdir -p "$out"
out=$(realpath "$out")
desc=""
k=0
for src in "${inputs[@]}"; do
  desc+=" $src ! queue ! lalm-interact name=lalm-p$k finals-only=true subtitle-location=\"$out/p$k.srt\" ${EXTRA:-}"
  desc+=" ! fakesink sync=false async=false lalm-p$k.alert ! queue ! filesink location=\"$out/p$k.alerts\" async=false"
  k=$((k + 1))
done
if [ "$print" = 1 ]; then
  echo "$desc"
  exit 0
fi
echo "$k participants; subtitles and alerts in $out" >&2
# shellcheck disable=SC2086
eval gst-launch-1.0 -e $desc
