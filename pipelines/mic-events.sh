#!/usr/bin/env bash
# Live: speech starts and turn ends from the default microphone, as they happen (Ctrl-C ends).
#   pipelines/mic-events.sh [lalm-interact properties...]
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
gst-launch-1.0 -m -e autoaudiosrc ! queue ! lalm-interact "$@" ! fakesink sync=false 2>&1 |
  awk -f "$here/format-events.awk"
