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
cargo build --release --locked -q -p lalm-tools --bin lalm-asr-bench
exec target/release/lalm-asr-bench "$@"
