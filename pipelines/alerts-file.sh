#!/usr/bin/env bash
# Alerts of any audio or video file as JSON lines (one per alert, from the loop's alert pad),
# subtitles to an SRT file next to them.
#   pipelines/alerts-file.sh talk.mp4 [rules.toml]
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 FILE [RULES.toml]" >&2; exit 2; }
file=$(realpath "$1")
rules=()
[ $# -ge 2 ] && rules=(rules="$(realpath "$2")")
gst-launch-1.0 -q uridecodebin uri="file://$file" caps=audio/x-raw expose-all-streams=false \
  ! queue ! lalm-interact name=lalm "${rules[@]}" subtitle-location="${file%.*}.srt" finals-only=true \
  ! fakesink sync=false lalm.alert ! fdsink fd=1 sync=false
