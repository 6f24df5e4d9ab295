#!/usr/bin/env python3
"""Trains the decision head on lalm-streamaudio's streams and scores it beside the rules.

The head: a logistic regression over what the tagger heard in the chunk and the one before
(each built-in class's highest label score, and Speech) and over the last 30 s before that
(each class's highest score: the same sound earlier). It gives the probability of responding
for each 0.5 s chunk. Trained on the `train` split, its threshold chosen on `calib`, scored on
`test`; the splits share no recording (lalm-streamaudio). Deterministic: full-batch gradient
descent from zeros, fixed iterations.

The rules, for comparison, are simulated on the same scores: a respond class whose score is at
its threshold in a chunk and the one before (about its 1 s minimum duration) responds, then
not again for its cooldown. (The loop's own rules are measured on the audio by
lalm-sound-eval.)

Writes the head as ONNX (input `features` [N, D] float32, output `respond` [N, 1]) with a
model.toml beside it, and prints the comparison.

Usage: train.py STREAMS_DIR OUT_DIR
"""
import glob
import json
import os
import sys

import numpy as np

CHUNK_S = 0.5
EARLIER_CHUNKS = 60  # 30 s
RECENT = 5  # the last 2.5 s are not "earlier"
ITERS = 3000
LR = 0.5
RESPOND_SPACING_S = 10.0
L2 = 1e-3


def load_classes(d):
    rows = []
    for line in open(os.path.join(d, "classes.tsv")):
        if line.startswith("#") or not line.strip():
            continue
        name, role, thr, mindur, cool = line.rstrip("\n").split("\t")
        rows.append((name, role, float(thr), int(mindur), int(cool)))
    return rows


def load_stream(path_stem):
    feats = np.loadtxt(path_stem + ".features.tsv", comments="#", dtype=np.float32)[:, 1:]
    labels, whats = [], []
    for line in open(path_stem + ".tsv"):
        if line.startswith("#"):
            continue
        _, label, what = line.rstrip("\n").split("\t")
        labels.append(label)
        whats.append(what)
    return feats, labels, whats


def head_inputs(f):
    """Per chunk: the chunk's scores, the previous chunk's, and each class's highest score in
    the 30 s before the last 2.5 s."""
    n, d = f.shape
    prev = np.vstack([np.zeros((1, d), np.float32), f[:-1]])
    classes = f[:, :-1]
    earlier = np.zeros_like(classes)
    for t in range(n):
        a, b = max(0, t - EARLIER_CHUNKS), t - RECENT
        if b > a:
            earlier[t] = classes[a:b].max(axis=0)
    return np.hstack([f, prev, earlier]).astype(np.float32)


def split_data(d, split):
    xs, ys, ws, keep = [], [], [], []
    for stem in sorted(glob.glob(os.path.join(d, f"{split}-[0-9][0-9].wav"))):
        stem = stem[:-4]
        f, labels, whats = load_stream(stem)
        n = min(len(f), len(labels))
        xs.append((head_inputs(f[:n]), f[:n], labels[:n], whats[:n]))
    return xs


def stack(streams):
    x = np.vstack([s[0] for s in streams])
    y = np.array([1.0 if l == "respond" else 0.0 for s in streams for l in s[2]], np.float32)
    m = np.array([l != "-" for s in streams for l in s[2]])
    return x, y, m


def train(x, y):
    pos = max(y.sum(), 1.0)
    neg = max(len(y) - y.sum(), 1.0)
    w_s = np.where(y > 0, len(y) / (2 * pos), len(y) / (2 * neg)).astype(np.float32)
    w = np.zeros(x.shape[1], np.float32)
    b = np.float32(0.0)
    for _ in range(ITERS):
        p = 1 / (1 + np.exp(-(x @ w + b)))
        g = (p - y) * w_s
        w -= LR * ((x.T @ g) / len(y) + L2 * w)
        b -= LR * g.mean()
    return w, b


def prob(x, w, b):
    return 1 / (1 + np.exp(-(x @ w + b)))


def decisions_head(p, thr, streams, classes):
    """A response where the probability reaches the threshold, about the respond class scoring
    highest in the chunk, if it comes near its threshold (a quarter of it), not again for the
    same class within 10 s, and not while a class responded to in that time still sounds (at
    half its threshold): what lalm-decide does with the head (src/decide/head.rs)."""
    respond = [k for k, c in enumerate(classes) if c[1] == "respond"]
    out, i = [], 0
    for s in streams:
        f = s[1]
        n = len(s[2])
        last = {}
        d = np.zeros(n, bool)
        for t in range(n):
            if p[i + t] < thr:
                continue
            k = max(respond, key=lambda j: f[t, j])
            if f[t, k] < classes[k][2] / 4:
                continue
            recent = lambda j: (t - last.get(j, -1e9)) * CHUNK_S < RESPOND_SPACING_S
            if recent(k):
                continue
            # One sound, one response: a class responded to that still sounds holds the rest.
            if any(recent(j) and f[t, j] >= classes[j][2] / 2 for j in respond):
                continue
            d[t] = True
            last[k] = t
        out.append(d)
        i += n
    return out


def decisions_rules(streams, classes):
    out = []
    for s in streams:
        f = s[1]
        n = len(s[2])
        d = np.zeros(n, bool)
        last = {}
        for t in range(1, n):
            for k, (name, role, thr, mindur, cool) in enumerate(classes):
                if role != "respond":
                    continue
                if f[t, k] >= thr and f[t - 1, k] >= thr:
                    if (t - last.get(k, -1e9)) * CHUNK_S * 1000 >= cool:
                        d[t] = True
                        last[k] = t
        out.append(d)
    return out


def score(streams, decided):
    """Chunk accuracy over labelled chunks (a response due within a respond sound's window
    counts for its whole window), event recall, false responses per hour of speech and of
    everyday sounds, onset to decision."""
    right = total = 0
    events = found = 0
    delays = []
    false_speech = false_everyday = 0
    speech_s = everyday_s = 0.0
    for s, d in zip(streams, decided):
        labels, whats = s[2], s[3]
        n = len(labels)
        t = 0
        while t < n:
            if labels[t] == "respond":
                u = t
                while u < n and labels[u] == "respond":
                    u += 1
                events += 1
                hit = [k for k in range(t, u) if d[k]]
                if hit:
                    found += 1
                    delays.append((hit[0] - t + 1) * CHUNK_S)
                right += (u - t) if hit else 0
                total += u - t
                t = u
                continue
            if labels[t] == "silent":
                total += 1
                right += 0 if d[t] else 1
                w = whats[t]
                if w == "speech":
                    speech_s += CHUNK_S
                    false_speech += int(d[t])
                elif w != "quiet":
                    # An everyday sound, or a respond sound already reported: no response due.
                    everyday_s += CHUNK_S
                    false_everyday += int(d[t])
            t += 1
    per_h = lambda k, s: k / s * 3600 if s else float("nan")
    return {
        "chunk_accuracy": right / max(total, 1),
        "events": events,
        "found": found,
        "recall": found / max(events, 1),
        "false_per_h_speech": per_h(false_speech, speech_s),
        "false_per_h_sounds": per_h(false_everyday, everyday_s),
        "onset_to_decision_p50_s": float(np.median(delays)) if delays else float("nan"),
    }


def export_onnx(w, b, path):
    import onnx
    from onnx import TensorProto, helper

    d = len(w)
    W = helper.make_tensor("W", TensorProto.FLOAT, [d, 1], w.astype(np.float32).tolist())
    B = helper.make_tensor("B", TensorProto.FLOAT, [1], [float(b)])
    nodes = [
        helper.make_node("MatMul", ["features", "W"], ["z0"]),
        helper.make_node("Add", ["z0", "B"], ["z"]),
        helper.make_node("Sigmoid", ["z"], ["respond"]),
    ]
    g = helper.make_graph(
        nodes,
        "decision_head",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["n", d])],
        [helper.make_tensor_value_info("respond", TensorProto.FLOAT, ["n", 1])],
        [W, B],
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], producer_name="gst-lalm")
    m.ir_version = 8
    onnx.checker.check_model(m)
    onnx.save(m, path)


def main():
    d, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    classes = load_classes(d)
    tr, ca, te = (split_data(d, s) for s in ("train", "calib", "test"))
    if not tr or not ca or not te:
        sys.exit(f"{d}: run lalm-streamaudio --features first (train, calib and test streams)")
    x, y, m = stack(tr)
    w, b = train(x[m], y[m])
    xc, yc, mc = stack(ca)
    pc = prob(xc, w, b)
    best = None
    for thr in np.arange(0.05, 1.0, 0.05):
        r = score(ca, decisions_head(pc, thr, ca, classes))
        key = (r["chunk_accuracy"], -thr)
        if best is None or key > best[0]:
            best = (key, float(thr))
    thr = best[1]
    xt, _, _ = stack(te)
    pt = prob(xt, w, b)
    head = score(te, decisions_head(pt, thr, te, classes))
    rules = score(te, decisions_rules(te, classes))
    export_onnx(w, b, os.path.join(out, "head.onnx"))
    # The exported graph gives the probabilities trained here (onnx's reference runtime).
    from onnx.reference import ReferenceEvaluator

    got = ReferenceEvaluator(os.path.join(out, "head.onnx")).run(None, {"features": xt})[0][:, 0]
    if not np.allclose(got, pt, atol=1e-5):
        sys.exit("head.onnx does not give the trained probabilities")
    with open(os.path.join(out, "model.toml"), "w") as f:
        f.write(
            "# The decision head: a logistic regression trained by models/decision-head/train.py\n"
            "# (bash models/decision-head/train.sh) on lalm-streamaudio's train split of real\n"
            "# recordings; its threshold chosen on the calib split. Read by lalm-decide\n"
            "# decision-model=decision-head (src/decide/head.rs computes the same features).\n"
            'family = "decision-head"\n'
            'name = "decision-head"\n'
            'description = "respond/silent per 0.5 s chunk from CED-Tiny class scores: the chunk, '
            'the one before, each class\'s highest score 30 s to 2.5 s before"\n'
            'license = "MIT OR Apache-2.0"\n\n'
            '[files]\nmodel = "head.onnx"\n\n'
            '[io]\ninput = "features"   # float32 [chunks, %d]\n'
            'output = "respond"   # float32 [chunks, 1], a probability\n\n'
            "[params]\nthreshold = %.2f\n" % (len(w), thr)
        )
    report = {"threshold": thr, "test_head": head, "test_rules_simulated": rules,
              "chunks": {"train": int(m.sum()), "calib": int(mc.sum())}}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
