#!/usr/bin/env python3
"""faster-whisper baseline for lalm-asr-bench (plugins/src/bin/lalm-asr-bench.rs).

Transcribes a 16 kHz mono 16-bit WAV per utterance: the audio is cut at the truth segments
(start/end in seconds from the truth TSV, +-0.2 s padding), since faster-whisper has no
streaming VAD loop, and each piece is transcribed with compute_type int8, cpu_threads 2,
beam 1, language en, without timestamps, no VAD filter, no conditioning on previous text.
Prints one JSON object on stdout:

  model_load_s, audio_s, transcribe_s, rtf (transcribe_s / audio_s of the whole file),
  decode_p50_s / decode_p95_s (per-utterance decode time = its end-of-speech -> text latency
  when run per utterance), wer (percent, over the concatenated utterances), ref_words,
  utterances, peak_rss_mib (getrusage ru_maxrss), texts.

    bench_faster_whisper.py --audio WAV --truth TSV --model CT2_DIR [--threads 2]
                            [--compute-type int8] [--pad 0.2]

The truth TSV has a header line and then: start<TAB>end<TAB>text per utterance.
"""

import argparse
import json
import math
import resource
import sys
import time
import wave

import numpy as np


def read_wav(path):
    with wave.open(path, "rb") as w:
        if w.getsampwidth() != 2 or w.getnchannels() != 1:
            sys.exit(f"{path}: expected 16-bit mono PCM")
        rate = w.getframerate()
        data = w.readframes(w.getnframes())
    return np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0, rate


def read_truth(path):
    rows = []
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f):
            line = line.rstrip("\n")
            if i == 0 or not line:
                continue
            start, end, text = line.split("\t", 2)
            rows.append((float(start), float(end), text))
    return rows


def words(text):
    out = []
    for ch in text.lower():
        if ch.isalnum() or ch.isspace():
            out.append(ch)
        elif ch == "'":
            continue
        else:
            out.append(" ")
    return "".join(out).split()


def edit_distance(ref, hyp):
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
        prev = cur
    return prev[-1]


def percentile(values, p):
    if not values:
        return None
    s = sorted(values)
    k = max(0, min(len(s) - 1, math.ceil(p * len(s)) - 1))
    return s[k]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--audio", required=True)
    ap.add_argument("--truth", required=True)
    ap.add_argument("--model", required=True, help="CTranslate2 whisper folder")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--compute-type", default="int8")
    ap.add_argument("--pad", type=float, default=0.2)
    a = ap.parse_args()

    from faster_whisper import WhisperModel

    audio, rate = read_wav(a.audio)
    if rate != 16000:
        sys.exit(f"{a.audio}: expected 16 kHz, got {rate}")
    truth = read_truth(a.truth)
    if not truth:
        sys.exit(f"{a.truth}: no utterances")

    t0 = time.perf_counter()
    model = WhisperModel(a.model, device="cpu", compute_type=a.compute_type, cpu_threads=a.threads)
    load_s = time.perf_counter() - t0

    def transcribe(piece):
        segments, _ = model.transcribe(piece, language="en", task="transcribe", beam_size=1,
                                       best_of=1, temperature=0.0, without_timestamps=True,
                                       vad_filter=False, condition_on_previous_text=False)
        return "".join(s.text for s in segments).strip()

    # One untimed warm-up decode, so the first utterance does not carry one-off set-up costs.
    s0, e0, _ = truth[0]
    transcribe(audio[int(max(0.0, s0 - a.pad) * rate):int((e0 + a.pad) * rate)])

    times, texts = [], []
    for start, end, _ in truth:
        lo = int(max(0.0, start - a.pad) * rate)
        hi = int(min(len(audio), (end + a.pad) * rate))
        t = time.perf_counter()
        texts.append(transcribe(audio[lo:hi]))
        times.append(time.perf_counter() - t)

    ref = [w for _, _, text in truth for w in words(text)]
    hyp = [w for text in texts for w in words(text)]
    audio_s = len(audio) / rate
    total = sum(times)
    print(json.dumps({
        "engine": f"faster-whisper base {a.compute_type}, {a.threads} threads, per utterance",
        "model_load_s": load_s,
        "audio_s": audio_s,
        "transcribe_s": total,
        "rtf": total / audio_s,
        "decode_p50_s": percentile(times, 0.50),
        "decode_p95_s": percentile(times, 0.95),
        "wer": 100.0 * edit_distance(ref, hyp) / max(1, len(ref)),
        "ref_words": len(ref),
        "utterances": len(truth),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "texts": texts,
    }))


if __name__ == "__main__":
    main()
