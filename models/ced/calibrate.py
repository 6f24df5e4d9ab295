#!/usr/bin/env python3
"""Calibration of the built-in sound classes on real recordings (the `calib` split of
tests/data/real-sounds.tsv, extracted by scripts/fetch-sounds.sh).

For each window length, every calibration clip is scored the way lalm-perceive scores a
stream: the clip between stretches of real speech, windows every `hop` samples, a class's
score being the best of its labels (the labels are read from src/decide/alerts/classes.rs). For each
respond class it prints:

  hit   the weakest of its own clips: over each clip, the best score the class holds for
        `k` frames in a row (k = 1, 2, 3), minimum over the class's clips;
  false the strongest the class gets elsewhere: the same statistic over real speech alone,
        the ignore clips and the other classes' clips (which one, too).

A threshold between the two separates them on this set. This is a development tool (needs
onnxruntime and numpy in the Python that runs it); its output informed the values in
classes.rs, and lalm-sound-eval checks them on the separate test split.

usage: calibrate.py SOUNDS_DIR MODEL_DIR [--windows 1,2,3] [--hop 0.5] [--speech-minutes 10]
"""
import argparse
import os
import re
import sys
import wave

import numpy as np
import onnxruntime as ort

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RATE = 16000


def classes():
    src = open(os.path.join(ROOT, "src/decide/alerts/classes.rs"), encoding="utf-8").read()
    body = src[src.index("pub const CLASSES"):]
    out = []
    for m in re.finditer(r'(respond|ignore)\(\s*"([^"]+)",\s*(?://[^\n]*\n\s*)?&\[(.*?)\]', body, re.S):
        labels = re.findall(r'"((?:[^"\\]|\\.)*)"', m.group(3))
        out.append((m.group(2), m.group(1), labels))
    return out


def read_wav(path):
    with wave.open(path) as w:
        assert w.getframerate() == RATE and w.getnchannels() == 1 and w.getsampwidth() == 2, path
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float32) / 32768.0


def manifest():
    rows = []
    with open(os.path.join(ROOT, "tests/data/real-sounds.tsv"), encoding="utf-8") as f:
        lines = [l.rstrip("\n") for l in f if l.strip() and not l.startswith("#")]
    head = lines[0].split("\t")
    for l in lines[1:]:
        rows.append(dict(zip(head, l.split("\t"))))
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("sounds")
    ap.add_argument("model")
    ap.add_argument("--windows", default="1,2,3")
    ap.add_argument("--hop", type=float, default=0.5)
    ap.add_argument("--speech-minutes", type=float, default=10)
    ap.add_argument("--split", default="calib")
    a = ap.parse_args()
    labels = [l.strip() for l in open(os.path.join(a.model, "labels.txt"), encoding="utf-8")]
    lower = [l.lower() for l in labels]

    def idx(name):
        n = name.lower()
        if n in lower:
            return [lower.index(n)]
        return [i for i, l in enumerate(lower) if n in [p.strip() for p in l.split(",")]]

    cls = []
    for name, role, names in classes():
        ii = sorted({i for n in names for i in idx(n)})
        if not ii:
            print(f"class {name}: none of {names} is a label", file=sys.stderr)
        cls.append((name, role, ii))
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    sess = ort.InferenceSession(os.path.join(a.model, "tiny.onnx"), so)
    rows = [r for r in manifest() if a.split == "all" or r["split"] == a.split]
    speech_files = sorted(os.path.join(a.sounds, "speech", f) for f in os.listdir(os.path.join(a.sounds, "speech")) if f.endswith(".wav"))
    speech = np.concatenate([read_wav(f) for f in speech_files])
    pad = speech[: 3 * RATE]
    alone = speech[3 * RATE: 3 * RATE + int(a.speech_minutes * 60 * RATE)]

    def scores(x, win, hop):
        w, h = int(win * RATE), int(hop * RATE)
        starts = list(range(0, max(1, len(x) - w + 1), h))
        out = []
        for b in range(0, len(starts), 32):
            batch = np.stack([x[s:s + w] if len(x) >= s + w else np.pad(x[s:], (0, s + w - len(x))) for s in starts[b:b + 32]])
            out.append(sess.run(None, {"waveform": batch})[0])
        return np.concatenate(out)

    def held(cs, k):
        # Best score the class keeps for k frames in a row.
        if len(cs) < k:
            return float(cs.max()) if len(cs) else 0.0
        return float(max(cs[i:i + k].min() for i in range(len(cs) - k + 1)))

    for win in [float(w) for w in a.windows.split(",")]:
        print(f"\n=== window {win} s, hop {a.hop} s ===")
        clip_scores = {}
        for r in rows:
            x = read_wav(os.path.join(a.sounds, "clips", r["id"] + ".wav"))
            clip_scores[r["id"]] = scores(np.concatenate([pad, x, pad]), win, a.hop)
        sp = scores(alone, win, a.hop)
        for name, role, ii in cls:
            if role != "respond" or not ii:
                continue
            own = [r for r in rows if r["class"] == name]
            line = f"{name:12s} n={len(own):2d}"
            for k in (1, 2, 3):
                hit = min((held(clip_scores[r["id"]][:, ii].max(1), k) for r in own), default=float("nan"))
                others = [(held(sp[:, ii].max(1), k), "speech")]
                others += [(held(clip_scores[r["id"]][:, ii].max(1), k), r["id"]) for r in rows if r["class"] != name]
                fal, src = max(others)
                line += f" | k={k} hit {hit:.2f} false {fal:.2f} ({src})"
            print(line)


if __name__ == "__main__":
    main()
