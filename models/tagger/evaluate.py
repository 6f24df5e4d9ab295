#!/usr/bin/env python3
"""Evaluate tagger.onnx (ONNX Runtime, CPU) on the held-out synthetic set and a streaming check.

    python evaluate.py [--model tagger.onnx] [--md EVAL.md]

1. Windows: 13 per held-out clip (0.96 s, every 0.42 s). For class c a window is positive when
   c's activity covers >= 0.3 s of it, negative when it covers none, and not scored for c in
   between (0 < activity < 0.3 s). Precision/recall/F1 at threshold 0.5.
2. False-positive rate of each event class on pure-speech, pure-music and pure-noise windows
   (pure: that one class >= 0.3 s and nothing else at all; noise: no class at all).
3. Streaming: a 3-minute stream (held-out seed) with 12 events (3 variants x 4 event classes) at
   known times, separated by held-out speech, music and noise; windows every 3200 samples
   (0.2 s). An event is detected when its class is > 0.5 on >= 2 consecutive windows among the
   windows that start no later than 1 s after its onset (and overlap it); latency is the end of
   the second such window minus the onset (what the downstream rule sees). False runs: >= 2
   consecutive windows > 0.5 for a class where none of the windows contains that class.
"""
import argparse
import json
import os
import time

import numpy as np

import synth

SR = 16000
WIN = 15360
HOP_U = synth.HOP
LABELS = synth.LABELS
EVENTS = LABELS[:4]
HERE = os.path.dirname(os.path.abspath(__file__))


def run_model(sess, wav, bs=256):
    return np.concatenate([sess.run(["scores"], {"waveform": wav[i:i + bs]})[0] for i in range(0, len(wav), bs)])


def prf(tp, fp, fn):
    p = tp / (tp + fp) if tp + fp else float("nan")
    r = tp / (tp + fn) if tp + fn else float("nan")
    f = 2 * p * r / (p + r) if p + r else float("nan")
    return p, r, f


def window_eval(sess, n_clips):
    audio, activity, metas = synth.build_split("eval", n_clips)
    starts = np.arange(0, activity.shape[2] - 96 + 1, 42)
    clip = np.repeat(np.arange(len(audio)), len(starts))
    # activity of each class in the 1 s before the window (decay / reverb tails)
    before = np.stack([activity[c, :, max(0, s - 100):s].sum(-1) for c in range(len(audio)) for s in starts])
    wav = np.stack([audio[c, s * HOP_U: s * HOP_U + WIN] for c in range(len(audio)) for s in starts]).astype(np.float32)
    act = np.stack([activity[c, :, s:s + 96].sum(-1) * HOP_U / SR for c in range(len(audio)) for s in starts])  # seconds
    t0 = time.time()
    sc = run_model(sess, wav)
    dt = time.time() - t0
    pred = sc > 0.5
    rows = []
    for i, name in enumerate(LABELS):
        pos = act[:, i] >= 0.3
        neg = act[:, i] == 0
        tp = int((pred[:, i] & pos).sum())
        fn = int((~pred[:, i] & pos).sum())
        fp = int((pred[:, i] & neg).sum())
        p, r, f = prf(tp, fp, fn)
        fp_t = int((pred[:, i] & neg & (before[:, i] == 0)).sum())
        p_t = tp / (tp + fp_t) if tp + fp_t else float("nan")
        rows.append((name, p, r, f, int(pos.sum()), int(neg.sum()), tp, fp, fn, p_t))
    others = lambda i: np.delete(act, i, axis=1)
    pure = {
        "speech": (act[:, 4] >= 0.3) & (others(4).sum(1) == 0),
        "music": (act[:, 5] >= 0.3) & (others(5).sum(1) == 0),
        "noise": act.sum(1) == 0,
    }
    fpr = {k: (int(m.sum()), [float(pred[m, i].mean()) if m.any() else float("nan") for i in range(4)]) for k, m in pure.items()}
    variants = {}
    for i, name in enumerate(EVENTS):
        pos = act[:, i] >= 0.3
        for w in np.flatnonzero(pos):
            v = [f[1] for f in json.loads(str(metas[clip[w]]))["fg"] if f[0] == name][0]
            t = variants.setdefault((name, v), [0, 0])
            t[0] += int(pred[w, i])
            t[1] += 1
    return rows, fpr, len(wav), dt, variants


def build_stream(seed=4242, total_s=180.0):
    """A 3-minute held-out stream; returns audio, per-class activity (hop units) and the event list."""
    rng = np.random.default_rng(seed)
    pool = synth.speech_pool("eval", 250)
    n = int(total_s * SR)
    plan = [("alarm", "t3", 5.0), ("alarm", "t4", 3.0), ("alarm", "generic", 3.5),
            ("siren", "wail", 5.0), ("siren", "yelp", 3.0), ("siren", "hilo", 4.0),
            ("phone", "na", 3.0), ("phone", "uk", 3.0), ("phone", "trill", 3.0),
            ("doorbell", "dingdong", 3.0), ("doorbell", "chime", 4.0), ("doorbell", "ding", 2.0)]
    order = rng.permutation(len(plan))
    bg = synth.colored_noise(rng, n, 1.0) * 0.01  # pink noise at -40 dB re 1.0 RMS
    fg = np.zeros(n)
    act = np.zeros((6, n // HOP_U), np.float32)
    events = []
    pos = int(2.0 * SR)
    fillers = ["speech", "speech", "noise", "music", "speech", "noise"]
    for j, k in enumerate(order):
        filler = fillers[j % len(fillers)]
        fdur = rng.uniform(4.0, 8.0)
        if filler in ("speech", "music"):
            m = int(fdur * SR)
            x, a = synth.gen_speech(rng, m, pool) if filler == "speech" else synth.gen_music(rng, m)
            on = np.repeat(list(a.values())[0] > 0, HOP_U)
            x = x / np.sqrt(np.mean(x[: len(on)][on] ** 2) + 1e-12) * 0.01 * synth.db(rng.uniform(12, 20))
            fg[pos:pos + m] += x
            ci = LABELS.index(filler)
            act[ci, pos // HOP_U: pos // HOP_U + len(a[ci])] = np.maximum(act[ci, pos // HOP_U: pos // HOP_U + len(a[ci])], a[ci])
        pos += int((fdur + rng.uniform(0.5, 1.5)) * SR)
        cls, var, dur = plan[k]
        m = int(dur * SR)
        x, a = synth.EVENT_GENS[cls](rng, m, variant=var, start=True)
        ci = LABELS.index(cls)
        on = np.repeat(a[ci] > 0, HOP_U)
        snr = rng.uniform(8, 20)
        x = x / np.sqrt(np.mean(x[: len(on)][on] ** 2) + 1e-12) * 0.01 * synth.db(snr)
        fg[pos:pos + m] += x
        act[ci, pos // HOP_U: pos // HOP_U + len(a[ci])] = np.maximum(act[ci, pos // HOP_U: pos // HOP_U + len(a[ci])], a[ci])
        idx = np.flatnonzero(a[ci])
        events.append((cls, var, (pos // HOP_U + idx[0]) * HOP_U / SR, (pos // HOP_U + idx[-1] + 1) * HOP_U / SR, snr))
        pos += m + int(rng.uniform(0.5, 1.5) * SR)
    assert pos < n, pos / SR
    y = fg + bg
    y = y / np.max(np.abs(y)) * synth.db(-6)
    return y.astype(np.float32), act, events


def stream_eval(sess):
    y, act, events = build_stream()
    hop = 3200
    ks = np.arange(0, (len(y) - WIN) // hop + 1)
    wav = np.stack([y[k * hop: k * hop + WIN] for k in ks])
    sc = run_model(sess, wav)
    above = sc > 0.5
    w_start = ks * hop / SR
    w_end = w_start + WIN / SR
    out = []
    for cls, var, t_on, t_off, snr in events:
        c = LABELS.index(cls)
        cand = (w_start <= t_on + 1.0) & (w_end > t_on) & (w_start < t_off)
        idx = np.flatnonzero(cand)
        lat = None
        for a_, b_ in zip(idx[:-1], idx[1:]):
            if above[a_, c] and above[b_, c]:
                lat = w_end[b_] - t_on
                break
        # anyway: first firing within the event at all (to report late detections)
        ev = np.flatnonzero((w_end > t_on) & (w_start < t_off))
        late = None
        for a_, b_ in zip(ev[:-1], ev[1:]):
            if above[a_, c] and above[b_, c]:
                late = w_end[b_] - t_on
                break
        out.append((cls, var, t_on, t_off, snr, lat, late, float(sc[idx, c].max()) if len(idx) else 0.0))
    false_runs = []
    for c in range(6):
        a_units = np.array([act[c, k * hop // HOP_U: k * hop // HOP_U + 96].sum() for k in ks])
        k = 0
        while k < len(ks):
            if above[k, c]:
                e = k
                while e + 1 < len(ks) and above[e + 1, c]:
                    e += 1
                if e > k and a_units[k:e + 1].max() == 0:
                    false_runs.append((LABELS[c], w_start[k], w_end[e], float(sc[k:e + 1, c].max())))
                k = e + 1
            else:
                k += 1
    return out, false_runs, len(ks)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=os.path.join(HERE, "tagger.onnx"))
    ap.add_argument("--eval-clips", type=int, default=1200)
    ap.add_argument("--md", default=os.path.join(HERE, "EVAL.md"))
    a = ap.parse_args()
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    sess = ort.InferenceSession(a.model, so, providers=["CPUExecutionProvider"])
    rows, fpr, nwin, dt, variants = window_eval(sess, a.eval_clips)
    lines = ["# lalm-tagger-1 evaluation (held-out synthetic data)", "",
             f"Model: `{os.path.basename(a.model)}` ({os.path.getsize(a.model)} bytes), run with ONNX Runtime "
             f"{ort.__version__} (CPU, 2 threads): {nwin} windows in {dt:.1f} s ({dt / nwin * 1000:.2f} ms/window).", "",
             "## Per-class precision / recall at threshold 0.5", "",
             f"{a.eval_clips} held-out clips (seeds and espeak sentences disjoint from training), 13 windows each. "
             "Positive: the class covers >= 0.3 s of the window; negative: it covers none; windows with "
             "0 < coverage < 0.3 s are not scored for that class.", "",
             "| class | precision | recall | F1 | positives | negatives | TP | FP | FN | precision, tails excl. |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name, p, r, f, npos, nneg, tp, fp, fn, p_t in rows:
        lines.append(f"| {name} | {p:.3f} | {r:.3f} | {f:.3f} | {npos} | {nneg} | {tp} | {fp} | {fn} | {p_t:.3f} |")
    lines += ["", "*precision, tails excl.*: false positives counted only on negative windows with none of the "
              "class in the 1 s before them either (a decaying bell or a reverberant beep is still audible "
              "after its labelled activity ends).", "",
              "Recall per synthesized variant (windows with >= 0.3 s of the class): " +
              ", ".join(f"{c}/{v} {t[0] / t[1]:.3f} ({t[1]})" for (c, v), t in sorted(variants.items())) + "."]
    lines += ["", "## False-positive rate of the event classes on pure speech / music / noise windows", "",
              "| windows | count | " + " | ".join(EVENTS) + " |", "| --- | ---: | " + " | ".join(["---:"] * 4) + " |"]
    for k, (cnt, rates) in fpr.items():
        lines.append(f"| pure {k} | {cnt} | " + " | ".join(f"{100 * r:.2f} %" for r in rates) + " |")
    ev, fr, nk = stream_eval(sess)
    det = sum(1 for e in ev if e[5] is not None)
    lines += ["", "## Streaming check", "",
              f"3-minute held-out stream (pink noise background, events at 8-20 dB SNR, separated by held-out "
              f"espeak speech, synthetic music and noise), window 15360, hop 3200 ({nk} windows). Detected = "
              f">= 2 consecutive windows > 0.5 among the windows starting <= 1 s after onset; latency = end "
              f"of the 2nd window - onset.", "",
              f"Detected {det}/{len(ev)} events; false runs (>= 2 consecutive windows > 0.5 with none of the class "
              f"inside): {len(fr)}.", "",
              "| class | variant | onset s | end s | SNR dB | detected | latency s | max score (onset+1 s) |",
              "| --- | --- | ---: | ---: | ---: | --- | ---: | ---: |"]
    for cls, var, t_on, t_off, snr, lat, late, mx in ev:
        lat_s = f"{lat:.2f}" if lat is not None else (f"late {late:.2f}" if late is not None else "-")
        lines.append(f"| {cls} | {var} | {t_on:.2f} | {t_off:.2f} | {snr:.1f} | {'yes' if lat is not None else 'NO'} | {lat_s} | {mx:.3f} |")
    if fr:
        lines += ["", "False runs:", ""] + [f"- {c}: {s:.1f}-{e:.1f} s (max {m:.2f})" for c, s, e, m in fr]
    text = "\n".join(lines) + "\n"
    print(text)
    with open(a.md, "w") as f:
        f.write(text)


if __name__ == "__main__":
    main()
