#!/usr/bin/env bash
# The main job on the default models: set up, make a demo recording (several espeak-ng
# voices, pauses, some noise), subtitle it with the perceive -> decide -> respond loop
# (Silero VAD + smart-turn + Moonshine base) through gst-launch-1.0, print the cues and write an .srt.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$here/scripts/setup.sh"

demo=${XDG_CACHE_HOME:-$HOME/.cache}/lalm/demo
mkdir -p "$demo"
# sox -R: the noise and the dither are the same on every machine, so is what the demo prints.
wav=$demo/demo-repeatable.wav
if [ ! -f "$wav" ]; then
  echo "==> making the demo recording $wav" >&2
  parts=()
  i=0
  while IFS='|' read -r voice text; do
    espeak-ng -v "$voice" -s 160 -w "$demo/s$i.wav" "$text"
    sox -R "$demo/s$i.wav" -r 16000 -c 1 -b 16 "$demo/p$i.wav"
    sox -R -n -r 16000 -c 1 -b 16 "$demo/gap$i.wav" trim 0 "1.$((i * 3 % 10))"
    parts+=("$demo/gap$i.wav" "$demo/p$i.wav")
    i=$((i + 1))
  done <<'LINES'
en-us|Good morning everyone, thanks for joining the call.
en-gb|Before we start, can everybody hear me clearly?
en-us+f3|Yes, I can hear you. The sound is fine on my side.
en-gb-scotland|Great. First item on the agenda is the release date.
en-us+m4|We are still waiting for the test results from the lab.
en-us|Let us come back to that at the end of the meeting.
LINES
  sox -R -n -r 16000 -c 1 -b 16 "$demo/tail.wav" trim 0 1.5
  sox -R "${parts[@]}" "$demo/tail.wav" "$demo/clean.wav"
  len=$(soxi -D "$demo/clean.wav")
  sox -R -n -r 16000 -c 1 -b 16 "$demo/noise.wav" synth "$len" pinknoise vol 0.02
  sox -R -m "$demo/clean.wav" "$demo/noise.wav" "$wav"
fi

echo "==> subtitling $wav (pipelines/subtitle-file.sh)" >&2
bash "$here/pipelines/subtitle-file.sh" "$wav" "$demo/demo.srt"
