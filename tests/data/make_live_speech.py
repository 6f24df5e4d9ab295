"""Joins Asterisk prompts (real speech) into one 16 kHz mono WAV with pauses, for the live
timing test; writes the truth (start, end in seconds, text) as JSON beside it.

Prompts are taken in name order among those with a transcript (not tones, not silence) that
last 2-12 s (or MIN:MAX seconds, the sixth argument: 12:80 gives the long paragraphs, up to
73 s, with pauses inside them), until 150 s of speech (or the seconds given as the fifth
argument); pauses between them vary from 0.6 to 2.0 s so that turn ends land at every offset
within a chunk. Deterministic: the same package gives the same WAV.
"""
import json
import subprocess
import sys
import wave
from pathlib import Path

sounds, transcripts, out, truth_path = sys.argv[1:5]
want = float(sys.argv[5]) if len(sys.argv) > 5 else 150.0
shortest, longest = (float(v) for v in (sys.argv[6] if len(sys.argv) > 6 else "2:12").split(":"))
RATE = 16000
texts = {}
for line in Path(transcripts).read_text(encoding="utf-8").splitlines():
    if ":" not in line or line.startswith(";"):
        continue
    name, text = line.split(":", 1)
    text = text.strip()
    # [tones], <notes> and "(5 seconds of silence)" hold no speech.
    if text and text[0] not in "[<(":
        texts[name.strip()] = text


def decode(path: Path) -> bytes:
    # GStreamer 1.22's avdec_g722 fails to open on Debian 12's libavcodec; ffmpeg decodes it.
    return subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-f", "g722", "-i", str(path), "-ar", str(RATE),
         "-ac", "1", "-f", "s16le", "-"],
        check=True, capture_output=True).stdout


pcm = bytearray()
truth = []
pauses = [0.6, 1.3, 0.9, 2.0, 0.7, 1.6, 1.1]
speech = 0.0
for name in sorted(texts):
    f = Path(sounds) / f"{name}.g722"
    if not f.is_file():
        continue
    audio = decode(f)
    secs = len(audio) / 2 / RATE
    if not shortest <= secs <= longest:
        continue
    start = len(pcm) / 2 / RATE
    pcm += audio
    truth.append({"name": name, "start": start, "end": start + secs, "text": texts[name]})
    speech += secs
    pcm += bytes(2 * int(RATE * pauses[len(truth) % len(pauses)]))
    if speech >= want:
        break
with wave.open(out, "wb") as w:
    w.setnchannels(1)
    w.setsampwidth(2)
    w.setframerate(RATE)
    w.writeframes(bytes(pcm))
Path(truth_path).write_text(json.dumps(truth, indent=1))
print(f"{out}: {len(truth)} prompts, {speech:.1f} s of speech, {len(pcm) / 2 / RATE:.1f} s in all")
