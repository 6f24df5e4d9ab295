#!/usr/bin/env bash
# Speech starts and turn ends of any audio or video file GStreamer can decode.
#   pipelines/file-events.sh talk.wav [lalm-interact properties...]
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 FILE [property=value ...]" >&2; exit 2; }
file=$1; shift
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
gst-launch-1.0 -m filesrc location="$file" ! decodebin ! lalm-interact "$@" ! fakesink 2>&1 |
  awk -f "$here/format-events.awk"
