#!/usr/bin/env bash
# ASR benchmark: lalm-interact live subtitles vs faster-whisper base int8 (2 threads) on the
# same real recorded speech (default 600 s of the Asterisk prompts; --speech espeak for
# generated sentences), in one run (tools/src/bin/lalm-asr-bench.rs). Arguments go to the
# program:
#   scripts/bench-asr.sh [--seconds N] [--set NAME=VALUE]... [--asr-threads N] [--no-live] [--no-baseline]
# The faster-whisper side needs <repo>/.venv-proof; `bash models/whisper/prove.sh` creates it.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
if [ ! -x .venv-proof/bin/python ]; then
  echo "bench-asr.sh: no .venv-proof; the faster-whisper column will be empty (bash models/whisper/prove.sh creates it)" >&2
fi
# The live run paces the recording in 20 ms buffers with audiobuffersplit (gst-plugins-bad), as a
# live capture would deliver it.
if ! gst-inspect-1.0 audiobuffersplit >/dev/null 2>&1; then
  sudo_cmd=(); [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends gstreamer1.0-plugins-bad >/dev/null
fi
cargo build --release --locked -q -p lalm-tools --bin lalm-asr-bench
exec target/release/lalm-asr-bench "$@"
