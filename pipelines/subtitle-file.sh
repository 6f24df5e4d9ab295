#!/usr/bin/env bash
# Subtitles for any audio or video file GStreamer can play, written as SRT or WebVTT (by the
# output's extension) and printed as they are made.
#   pipelines/subtitle-file.sh INPUT OUTPUT.srt|OUTPUT.vtt [lalm-interact properties...]
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 INPUT OUTPUT.srt|OUTPUT.vtt [property=value ...]" >&2; exit 2; }
in=$(realpath "$1") out=$2; shift 2
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# uridecodebin takes any container and, with these caps, decodes only the audio; the loop
# runs as fast as the machine allows.
gst-launch-1.0 -m uridecodebin uri="file://$in" caps=audio/x-raw expose-all-streams=false \
  ! queue ! lalm-interact subtitle-location="$out" finals-only=true "$@" ! fakesink sync=false 2>&1 |
  awk -f "$here/format-cues.awk"
echo "subtitles written to $out" >&2
