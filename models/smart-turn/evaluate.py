#!/usr/bin/env python3
"""Measures smart-turn v3.2 on the Asterisk prompt recording (NOTES.md, "Measurements").

    evaluate.py MODEL.onnx SPEECH.wav TRUTH.json

SPEECH.wav: 16 kHz mono S16LE; TRUTH.json: [{name, start, end, text}] in seconds, one studio
prompt each, silence between prompts. For each prompt:
  complete  audio [start, end + 0.2 s) (the 0.2 s is the real silence that follows)
  cut       audio [start, gap) + 0.2 s of zeros, where gap is the start of a low-energy run
            inside the prompt (10 ms frames below the prompt's 95th-percentile frame energy
            - 35 dB), at least 0.5 s after the first speech frame and at least 1 s before the
            end. Runs of >= 150 ms are the "word gaps"; where a prompt has none, its longest run
            of >= 50 ms is used ("short gaps"). Gaps that fall on a sentence end inside the
            prompt (". " in the text) are complete turns and are reported apart.
Prints one line per case, accuracy at 0.5, and timings (ONNX Runtime 1 and 2 threads, numpy mel).
"""

import json
import sys
import time

import numpy as np

import reference as R

SR = R.SAMPLE_RATE


def frames_db(x):
    fr = x[: len(x) // 160 * 160].reshape(-1, 160).astype(np.float64)
    return 10 * np.log10((fr**2).mean(1) + 1e-12)


def runs_below(low, lo, hi):
    out, j = [], lo
    while j <= hi:
        if low[j]:
            k = j
            while k <= hi and low[k]:
                k += 1
            out.append((j, k))
            j = k
        else:
            j += 1
    return out


def text_before(text, frac):
    """Estimate which words were spoken before fraction `frac` of the speech (by characters).

    Returns (words before the nearest word boundary, whether a sentence end (".", "?", "!",
    not "...") lies within one word of that boundary: the estimate is that rough)."""
    words = text.split()
    ends = np.cumsum([len(w) + 1 for w in words]) - 1  # char index just after each word
    b = int(np.argmin(np.abs(ends - frac * len(text))))
    near = words[max(b - 1, 0) : min(b + 2, len(words) - 1)]  # never the prompt's last word
    sentence = any(w[-1] in ".?!" and not w.endswith("...") for w in near)
    return " ".join(words[: b + 1]), sentence


def main(model, wav, truth):
    audio = np.fromfile(wav, dtype="<i2", offset=44).astype(np.float32) / 32768.0
    prompts = json.load(open(truth))
    e = frames_db(audio)
    rows = []  # (kind, name, prob, note)
    for p in prompts:
        s, t = int(round(p["start"] * SR)), int(round(p["end"] * SR))
        text = " ".join(p["text"].split())
        sentence_end = text.rstrip()[-1:] in ".?!" and not text.endswith("...")
        prob = R.predict(audio[s : t + SR // 5], model)
        rows.append(("complete" if sentence_end else "complete-fragment", p["name"], prob, text))
        # frames of this prompt
        i0, i1 = s // 160, t // 160
        seg = e[i0:i1]
        ref = np.percentile(seg, 95)
        act = np.where(seg > ref - 40)[0]
        fa, la = act[0], act[-1]
        low = seg < ref - 35
        lo, hi = fa + 50, len(seg) - 100
        runs = [(j, k) for j, k in runs_below(low, fa, la) if lo <= j <= hi]
        long_runs = [(j, k) for j, k in runs if k - j >= 15]
        if long_runs:
            chosen, kind = long_runs, "cut-gap150"
        else:
            short = [(j, k) for j, k in runs if k - j >= 5]
            chosen, kind = ([max(short, key=lambda r: r[1] - r[0])] if short else []), "cut-gap50"
        for j, k in chosen:
            cut = s + j * 160
            x = np.concatenate([audio[s:cut], np.zeros(SR // 5, np.float32)])
            said, at_sentence_end = text_before(text, (j - fa) / max(la - fa, 1))
            prob = R.predict(x, model)
            rows.append((kind + ("-sentence-end" if at_sentence_end else ""), p["name"], prob,
                         f"@{j / 100:.2f}s gap {(k - j) * 10} ms | ~'{said}'"))

    for kind, name, prob, note in rows:
        print(f"{kind:26s} {name[:26]:26s} {prob:.4f} {note}")
    print()
    groups = {}
    for kind, _, prob, _ in rows:
        groups.setdefault(kind, []).append(prob)
    for kind, ps in sorted(groups.items()):
        ps = np.array(ps)
        want_complete = kind.startswith("complete") or kind.endswith("sentence-end")
        ok = (ps > R.THRESHOLD) if want_complete else (ps <= R.THRESHOLD)
        print(f"{kind:26s} n={len(ps):2d}  {'complete' if want_complete else 'incomplete'} expected: "
              f"{ok.sum()}/{len(ps)} right at 0.5   prob median {np.median(ps):.3f} min {ps.min():.3f} max {ps.max():.3f}")
    comp = np.array([p for k, _, p, _ in rows if k == "complete"])
    inc = np.array([p for k, _, p, _ in rows if k in ("cut-gap150", "cut-gap50")])
    acc = ((comp > 0.5).sum() + (inc <= 0.5).sum()) / (len(comp) + len(inc))
    print(f"\nbalanced set: {len(comp)} complete sentences + {len(inc)} mid-sentence cuts: accuracy {acc:.3f} "
          f"(complete right {(comp > 0.5).mean():.3f}, cuts right {(inc <= 0.5).mean():.3f})")
    for thr in (0.3, 0.5, 0.7, 0.8, 0.9):
        a2 = ((comp > thr).sum() + (inc <= thr).sum()) / (len(comp) + len(inc))
        print(f"  threshold {thr}: accuracy {a2:.3f}")

    # timings on an 8 s window of speech
    x = R.fit_window(audio[: 8 * SR])
    n = 30
    t0 = time.perf_counter()
    for _ in range(n):
        f = R.log_mel(x)
    mel_ms = (time.perf_counter() - t0) / n * 1e3
    print(f"\nnumpy log-mel (80x800, float64 STFT): {mel_ms:.1f} ms per call")
    for threads in (1, 2):
        sess = R.session(model, threads)
        for _ in range(3):
            sess.run(None, {R.INPUT: f[None]})
        ts = []
        for _ in range(n):
            t0 = time.perf_counter()
            sess.run(None, {R.INPUT: f[None]})
            ts.append(time.perf_counter() - t0)
        ts = np.array(ts) * 1e3
        print(f"onnxruntime intra_op_num_threads={threads}: median {np.median(ts):.1f} ms, "
              f"min {ts.min():.1f} ms, p90 {np.percentile(ts, 90):.1f} ms per call")


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(*sys.argv[1:])
