#!/usr/bin/env bash
# Makes the synthetic test meeting (espeak-ng voices, alarms, sirens, phones, doorbells, dead
# air, clipping, quiet speech, watched words, questions to the assistant) and runs lalm-listen
# on it: alerts and subtitles as JSON lines. The expected alerts are in DIR/truth.json.
#   pipelines/meeting-alerts.sh [MINUTES] [DIR]
set -euo pipefail
minutes=${1:-10}
dir=${2:-$HOME/.cache/lalm/meeting}
PATH=$HOME/.local/bin:$PATH
lalm-meeting --minutes "$minutes" --out "$dir"
lalm-listen --rules "$dir/rules.toml" "$dir/meeting.wav"
