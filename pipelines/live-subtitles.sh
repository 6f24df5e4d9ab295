#!/usr/bin/env bash
# Live subtitles from the default microphone: partial cues (committed words, never taken
# back) while someone speaks, the final cue when they stop. Ctrl-C ends.
#   pipelines/live-subtitles.sh [lalm-interact properties...]
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
gst-launch-1.0 -m -e autoaudiosrc ! queue ! lalm-interact "$@" ! fakesink sync=false 2>&1 |
  awk -v show_partials=1 -f "$here/format-cues.awk"
