#!/usr/bin/env bash
# The stamina tests (plugins/tests/stamina.rs) with long durations: the documented long run.
# CI runs the same tests with their defaults (2 h of audio through chunker → perceive → decide,
# 10 min through Whisper base, 1000 PLAYING/NULL cycles, 300 new pipelines, 30 lalm-interact
# cycles, 200 seeks with the small random Whisper; 4.5 to 6 minutes on 2 shared cores). This
# runs:
#
#   LALM_STAMINA_MINUTES=600           10 h of audio through the VAD + tagger loop (~6 min)
#   LALM_STAMINA_ASR_MINUTES=120       2 h of audio through Whisper base (~20 min at RTF 0.13)
#   LALM_STAMINA_CYCLES=1000           PLAYING <-> NULL cycles of one pipeline (~70 s)
#   LALM_STAMINA_PIPELINES=1000        pipelines created, run and dropped (~70 s)
#   LALM_STAMINA_INTERACT_CYCLES=200   lalm-interact PLAYING <-> NULL cycles (~2.5 min)
#   LALM_STAMINA_SEEKS=200             flushing seeks, with
#   LALM_STAMINA_SEEK_MODEL=whisper-base   the real model decoding when they come (~3 min)
#
# Each can be overridden from the environment; extra arguments go to the test binary (a test
# name filter, for instance):
#
#   bash scripts/stamina.sh                        # everything, ~35 minutes on 2 cores
#   LALM_STAMINA_MINUTES=1440 bash scripts/stamina.sh hours_of_audio   # a day of audio
#
# Needs scripts/setup.sh's models and ONNX Runtime. Prints the RSS series, real-time factors,
# thread counts and seek figures (--nocapture); the tests run one at a time because they
# measure the whole process.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"

export LALM_STAMINA_MINUTES=${LALM_STAMINA_MINUTES:-600}
export LALM_STAMINA_ASR_MINUTES=${LALM_STAMINA_ASR_MINUTES:-120}
export LALM_STAMINA_CYCLES=${LALM_STAMINA_CYCLES:-1000}
export LALM_STAMINA_PIPELINES=${LALM_STAMINA_PIPELINES:-1000}
export LALM_STAMINA_INTERACT_CYCLES=${LALM_STAMINA_INTERACT_CYCLES:-200}
export LALM_STAMINA_SEEKS=${LALM_STAMINA_SEEKS:-200}
export LALM_STAMINA_SEEK_MODEL=${LALM_STAMINA_SEEK_MODEL:-whisper-base}
env | grep '^LALM_STAMINA_' | sort >&2

exec cargo test --release -p gst-plugin-lalm --test stamina -- --nocapture --test-threads=1 "$@"
