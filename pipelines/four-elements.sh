#!/usr/bin/env bash
# The loop spelled out element by element (what lalm-interact contains), with the subtitle-
# style text stream written to a file: one line per response.
#   pipelines/four-elements.sh talk.wav out.txt
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 AUDIO_FILE OUT_TEXT" >&2; exit 2; }
gst-launch-1.0 filesrc location="$1" ! decodebin ! audioconvert ! audioresample \
  ! audio/x-raw,format=F32LE,rate=16000,channels=1 \
  ! lalm-chunker chunk-ms=400 ! lalm-perceive model=silero-vad execution-provider=auto \
  ! lalm-decide min-silence-ms=500 speech-pad-ms=30 ! lalm-respond \
  ! filesink location="$2"
