#!/usr/bin/env python3
"""Train the lalm sound-event tagger (JAX, CPU) and export it to ONNX with onnx.helper.

    python train.py [--clips 8000] [--steps 12000] [--out tagger.onnx]

Front end (identical in numpy, JAX and the ONNX graph): 0.96 s window (15360 samples), periodic
Hann 400 (25 ms) zero-padded to a 512-point DFT, hop 160 (10 ms) -> 93 frames x 257 bins, power,
64-band HTK-mel filterbank 50-8000 Hz (constant MatMul), log(x + 1e-5 * max(x) + 1e-10) (floor 50 dB under the window's loudest
mel band), minus the window's mean
(gain invariance), per-band standardisation (constants from the training set).
Classifier: 1-D conv stack over time with mel bands as channels:
    conv3(64->96) relu pool2 | conv3(96->96) relu pool2 | conv3(96->128) relu pool2 |
    conv3(128->128) relu | [max over time, mean over time] (256) | dense 96 relu | dense 6 | sigmoid
Labels: alarm, siren, phone, doorbell, speech, music; a class is a training target in a window
when its activity covers >= 0.15 s of it; an event class covering 0 < t < 0.15 s is not scored.
"""
import argparse
import json
import os
import time

os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=true")
import numpy as np

import synth

SR = 16000
WIN = 15360
HOP_S = 160
NFFT = 512
WLEN = 400
NMEL = 64
NFR = (WIN - NFFT) // HOP_S + 1  # 93
NHOP_WIN = WIN // HOP_S  # 96 activity units per window
EPS = 1e-10
REL_FLOOR = 1e-5  # log floor 50 dB below the window's loudest mel band: gain-invariant, fp32-stable
LABELS = synth.LABELS
CH = [64, 96, 96, 128, 128]
HID = 96
TRAIN_ACT = 15  # >= 0.15 s active -> positive target
POS_WEIGHT = np.array([1.5, 1.5, 1.5, 1.5, 1.0, 1.0], np.float32)
EVENT_MASK = np.array([True, True, True, True, False, False])


# ----------------------------------------------------------------------------- front end
def hann_window():
    n = np.arange(WLEN)
    w = 0.5 - 0.5 * np.cos(2 * np.pi * n / WLEN)
    return np.concatenate([w, np.zeros(NFFT - WLEN)]).astype(np.float32)


def mel_fb():
    hz2mel = lambda f: 2595.0 * np.log10(1.0 + f / 700.0)
    mel2hz = lambda m: 700.0 * (10 ** (m / 2595.0) - 1.0)
    pts = mel2hz(np.linspace(hz2mel(50.0), hz2mel(8000.0), NMEL + 2))
    f = np.arange(NFFT // 2 + 1) * SR / NFFT
    fb = np.zeros((NFFT // 2 + 1, NMEL))
    for m in range(NMEL):
        lo, c, hi = pts[m], pts[m + 1], pts[m + 2]
        fb[:, m] = np.maximum(0, np.minimum((f - lo) / (c - lo), (hi - f) / (hi - c)))
    assert (fb.sum(0) > 0).all()
    return fb.astype(np.float32)


WINDOW = hann_window()
MELFB = mel_fb()


def mel_np(x):
    """x [..., n] -> mel power [..., frames, 64] (frames at hop 160, span 512)."""
    n = x.shape[-1]
    nf = (n - NFFT) // HOP_S + 1
    idx = np.arange(nf)[:, None] * HOP_S + np.arange(NFFT)[None, :]
    fr = x[..., idx] * WINDOW
    spec = np.fft.rfft(fr.astype(np.float64), axis=-1)
    p = (spec.real ** 2 + spec.imag ** 2).astype(np.float32)
    return (p @ MELFB).astype(np.float32)


def logmel_np(wav):
    """window waveforms [B, 15360] -> log-mel [B, 93, 64] with the window-relative floor."""
    mel = mel_np(wav)
    return np.log(mel + REL_FLOOR * mel.max(axis=(1, 2), keepdims=True) + EPS).astype(np.float32)


def clip_features(audio, chunk=200):
    out = np.empty((audio.shape[0], (audio.shape[1] - NFFT) // HOP_S + 1, NMEL), dtype=np.float32)
    for i in range(0, len(audio), chunk):
        out[i:i + chunk] = mel_np(audio[i:i + chunk])
    return out


# ----------------------------------------------------------------------------- model (JAX)
def init_params(rng):
    p = {}
    for i in range(4):
        fan = 3 * CH[i]
        p[f"w{i}"] = (rng.standard_normal((3 * CH[i], CH[i + 1])) * np.sqrt(2.0 / fan)).astype(np.float32)
        p[f"b{i}"] = np.zeros(CH[i + 1], np.float32)
    p["wd"] = (rng.standard_normal((2 * CH[4], HID)) * np.sqrt(2.0 / (2 * CH[4]))).astype(np.float32)
    p["bd"] = np.zeros(HID, np.float32)
    p["wo"] = (rng.standard_normal((HID, len(LABELS))) * np.sqrt(1.0 / HID)).astype(np.float32)
    p["bo"] = np.full(len(LABELS), -2.0, np.float32)
    return p


def make_fns(norm_mu, norm_istd):
    import jax
    import jax.numpy as jnp

    mu = jnp.asarray(norm_mu)
    istd = jnp.asarray(norm_istd)

    def conv3(x, w, b):
        xp = jnp.pad(x, ((0, 0), (1, 1), (0, 0)))
        cat = jnp.concatenate([xp[:, :-2], xp[:, 1:-1], xp[:, 2:]], axis=-1)
        return cat @ w + b

    def pool2(x):
        B, T, C = x.shape
        return x[:, : 2 * (T // 2)].reshape(B, T // 2, 2, C).max(axis=2)

    def log_floor(mel):
        return jnp.log(mel + REL_FLOOR * mel.max(axis=(1, 2), keepdims=True) + EPS)

    def logits_from_mel(p, mel):
        return logits_from_lm(p, log_floor(mel))

    def logits_from_lm(p, lm):
        x = lm - lm.mean(axis=(1, 2), keepdims=True)
        x = (x - mu) * istd
        for i in range(4):
            x = jax.nn.relu(conv3(x, p[f"w{i}"], p[f"b{i}"]))
            if i < 3:
                x = pool2(x)
        g = jnp.concatenate([x.max(axis=1), x.mean(axis=1)], axis=-1)
        h = jax.nn.relu(g @ p["wd"] + p["bd"])
        return h @ p["wo"] + p["bo"]

    def logmel_jax(wav):
        idx = np.arange(NFR)[:, None] * HOP_S + np.arange(NFFT)[None, :]
        fr = wav[:, idx] * jnp.asarray(WINDOW)
        spec = jnp.fft.rfft(fr, axis=-1)
        pw = spec.real ** 2 + spec.imag ** 2
        return log_floor(pw @ jnp.asarray(MELFB))

    def probs_from_wav(p, wav):
        return jax.nn.sigmoid(logits_from_lm(p, logmel_jax(wav)))

    return logits_from_mel, jax.jit(probs_from_wav), jax.jit(lambda p, lm: jax.nn.sigmoid(logits_from_lm(p, lm)))


# ----------------------------------------------------------------------------- data
class WindowSampler:
    def __init__(self, feats, activity, rng):
        self.f, self.a, self.rng = feats, activity, rng
        self.nstart = activity.shape[2] - NHOP_WIN + 1
        assert feats.shape[1] >= self.nstart - 1 + NFR

    def batch(self, bs, tilt=True):
        c = self.rng.integers(0, len(self.f), bs)
        s = self.rng.integers(0, self.nstart, bs)
        mel = self.f[c[:, None], s[:, None] + np.arange(NFR)[None, :]]
        act = self.a[c[:, None, None], np.arange(6)[None, :, None], s[:, None, None] + np.arange(NHOP_WIN)[None, None, :]]
        tot = act.sum(-1)
        y = (tot >= TRAIN_ACT).astype(np.float32)
        # event classes heard for only a sliver of the window (an onset in its last < 0.15 s, the end of a
        # decay) are not scored: neither a positive nor a negative for that class
        w = np.where((tot > 0) & (tot < TRAIN_ACT) & EVENT_MASK[None, :], 0.0, 1.0).astype(np.float32)
        if tilt:  # random spectral tilt / smooth EQ (a linear filter is additive in log-mel)
            m = np.linspace(-0.5, 0.5, NMEL)[None, :]
            eq = self.rng.uniform(-2.5, 2.5, (bs, 1)) * m + self.rng.uniform(-1, 1, (bs, 1)) * np.sin(
                2 * np.pi * (m * self.rng.uniform(0.5, 2, (bs, 1)) + self.rng.uniform(0, 1, (bs, 1))))
            mel = mel * np.exp(eq[:, None, :]).astype(np.float32)
        return mel, y, w


# ----------------------------------------------------------------------------- ONNX export
def export_onnx(p, norm_mu, norm_istd, path):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    inits, nodes = [], []

    def const(name, arr):
        inits.append(numpy_helper.from_array(np.asarray(arr), name))
        return name

    def node(op, ins, outs, **kw):
        nodes.append(helper.make_node(op, ins, outs, **kw))
        return outs[0]

    x = node("Unsqueeze", ["waveform", const("ax2", np.array([2], np.int64))], ["sig"])
    x = node("STFT", [x, const("frame_step", np.array(HOP_S, np.int64)), const("window", WINDOW),
                      const("frame_length", np.array(NFFT, np.int64))], ["stft"], onesided=1)
    x = node("Mul", [x, x], ["sq"])
    x = node("ReduceSum", [x, const("axm1", np.array([-1], np.int64))], ["power"], keepdims=0)
    x = node("MatMul", [x, const("melfb", MELFB)], ["mel"])
    mx = node("ReduceMax", [x], ["mel_max"], axes=[1, 2], keepdims=1)
    fl = node("Mul", [mx, const("rel_floor", np.array(REL_FLOOR, np.float32))], ["mel_floor"])
    fl = node("Add", [fl, const("eps", np.array(EPS, np.float32))], ["mel_floor_eps"])
    x = node("Add", [x, fl], ["mel_eps"])
    x = node("Log", [x], ["logmel"])
    m = node("ReduceMean", [x], ["lm_mean"], axes=[1, 2], keepdims=1)
    x = node("Sub", [x, m], ["lm_c"])
    x = node("Sub", [x, const("band_mu", norm_mu.astype(np.float32))], ["lm_s"])
    x = node("Mul", [x, const("band_istd", norm_istd.astype(np.float32))], ["lm_n"])
    x = node("Transpose", [x], ["feat"], perm=[0, 2, 1])
    for i in range(4):
        w = np.asarray(p[f"w{i}"]).reshape(3, CH[i], CH[i + 1]).transpose(2, 1, 0)  # [M, C, k]
        x = node("Conv", [x, const(f"conv{i}.w", np.ascontiguousarray(w)), const(f"conv{i}.b", np.asarray(p[f"b{i}"]))],
                 [f"conv{i}"], kernel_shape=[3], pads=[1, 1], strides=[1])
        x = node("Relu", [x], [f"relu{i}"])
        if i < 3:
            x = node("MaxPool", [x], [f"pool{i}"], kernel_shape=[2], strides=[2])
    gmax = node("ReduceMax", [x], ["gmax"], axes=[2], keepdims=0)
    gmean = node("ReduceMean", [x], ["gmean"], axes=[2], keepdims=0)
    x = node("Concat", [gmax, gmean], ["gcat"], axis=1)
    x = node("Gemm", [x, const("dense.w", np.asarray(p["wd"])), const("dense.b", np.asarray(p["bd"]))], ["dense"])
    x = node("Relu", [x], ["dense_relu"])
    x = node("Gemm", [x, const("out.w", np.asarray(p["wo"])), const("out.b", np.asarray(p["bo"]))], ["logits"])
    node("Sigmoid", [x], ["scores"])

    graph = helper.make_graph(
        nodes, "lalm_tagger",
        [helper.make_tensor_value_info("waveform", TensorProto.FLOAT, ["batch", WIN])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch", len(LABELS)])],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="lalm-tagger-train")
    model.ir_version = 8
    model.doc_string = "lalm-tagger-1: scores = sigmoid probabilities for " + ",".join(LABELS)
    meta = model.metadata_props.add()
    meta.key, meta.value = "labels", ",".join(LABELS)
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, path)
    return model


# ----------------------------------------------------------------------------- main
def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, default=8000)
    ap.add_argument("--eval-clips", type=int, default=1200)
    ap.add_argument("--steps", type=int, default=12000)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "tagger.onnx"))
    a = ap.parse_args()

    import jax
    import jax.numpy as jnp

    t0 = time.time()
    audio, activity, kinds = synth.build_split("train", a.clips)
    print(f"train audio: {audio.shape} ({time.time() - t0:.0f} s)", flush=True)
    t1 = time.time()
    feats = clip_features(audio)
    del audio
    print(f"features: {feats.shape} ({time.time() - t1:.0f} s)", flush=True)

    rng = np.random.default_rng(a.seed)
    sampler = WindowSampler(feats, activity, rng)
    mel, _, _ = sampler.batch(4096, tilt=False)
    lm = np.log(mel + REL_FLOOR * mel.max(axis=(1, 2), keepdims=True) + EPS)
    c = lm - lm.mean(axis=(1, 2), keepdims=True)
    norm_mu = c.mean(axis=(0, 1)).astype(np.float32)
    norm_istd = (1.0 / (c.std(axis=(0, 1)) + 1e-3)).astype(np.float32)
    _, yb, _ = sampler.batch(20000, tilt=False)
    print("positive rate per class:", dict(zip(LABELS, np.round(yb.mean(0), 3).tolist())), flush=True)

    logits_fn, probs_wav, probs_lm = make_fns(norm_mu, norm_istd)
    params = {k: jnp.asarray(v) for k, v in init_params(np.random.default_rng(a.seed + 1)).items()}

    def loss_fn(p, lm, y, mask):
        z = logits_fn(p, lm)
        bce = jnp.maximum(z, 0) - z * y + jnp.log1p(jnp.exp(-jnp.abs(z)))
        w = (1.0 + (POS_WEIGHT - 1.0) * y) * mask  # favour recall of the event classes a little
        return (w * bce).mean()

    b1, b2, wd = 0.9, 0.999, 1e-4

    @jax.jit
    def step(p, m, v, lm, y, mask, t, lr):
        loss, g = jax.value_and_grad(loss_fn)(p, lm, y, mask)
        m = jax.tree.map(lambda m_, g_: b1 * m_ + (1 - b1) * g_, m, g)
        v = jax.tree.map(lambda v_, g_: b2 * v_ + (1 - b2) * g_ * g_, v, g)
        mh = jax.tree.map(lambda m_: m_ / (1 - b1 ** t), m)
        vh = jax.tree.map(lambda v_: v_ / (1 - b2 ** t), v)
        p = jax.tree.map(lambda p_, mh_, vh_: p_ - lr * (mh_ / (jnp.sqrt(vh_) + 1e-8) + wd * p_), p, mh, vh)
        return p, m, v, loss

    m = jax.tree.map(jnp.zeros_like, params)
    v = jax.tree.map(jnp.zeros_like, params)
    t2 = time.time()
    run = []
    warm = 200
    for it in range(1, a.steps + 1):
        lm, y, mask = sampler.batch(a.batch)
        frac = it / a.steps
        lr = a.lr * min(1.0, it / warm) * 0.5 * (1 + np.cos(np.pi * frac))
        params, m, v, loss = step(params, m, v, jnp.asarray(lm), jnp.asarray(y), jnp.asarray(mask), float(it), float(lr))
        run.append(float(loss))
        if it % 250 == 0 or it == a.steps:
            print(f"step {it}/{a.steps} loss {np.mean(run[-250:]):.4f} lr {lr:.2e} ({time.time() - t2:.0f} s)", flush=True)
    train_s = time.time() - t2
    print(f"training time: {train_s:.0f} s", flush=True)

    params_np = {k: np.asarray(v_) for k, v_ in params.items()}
    np.savez(os.path.join(synth.CACHE, "tagger-params.npz"), mu=norm_mu, istd=norm_istd, **params_np)
    export_onnx(params_np, norm_mu, norm_istd, a.out)
    size = os.path.getsize(a.out)
    print(f"wrote {a.out} ({size} bytes, {sum(v_.size for v_ in params_np.values())} trained parameters)")

    # self-check: ONNX Runtime on held-out eval windows vs the JAX forward pass on the same waveforms
    import onnxruntime as ort
    ev_audio, _, _ = synth.build_split("eval", a.eval_clips)
    r = np.random.default_rng(5)
    ci = r.integers(0, len(ev_audio), 256)
    si = r.integers(0, ev_audio.shape[1] - WIN, 256)
    wav = np.stack([ev_audio[c_, s_:s_ + WIN] for c_, s_ in zip(ci, si)]).astype(np.float32)
    wav[:4] *= np.float32(0.001)  # very quiet inputs too
    wav[4] = 0.0  # digital silence
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    sess = ort.InferenceSession(a.out, so, providers=["CPUExecutionProvider"])
    got = np.concatenate([sess.run(["scores"], {"waveform": wav[i:i + 64]})[0] for i in range(0, len(wav), 64)])
    ref = np.asarray(probs_wav(params, jnp.asarray(wav)))
    ref_lm = np.asarray(probs_lm(params, jnp.asarray(logmel_np(wav))))
    d = float(np.max(np.abs(got - ref)))
    d2 = float(np.max(np.abs(got - ref_lm)))
    print(f"self-check on {len(wav)} eval windows: max |onnx - jax| = {d:.2e}, max |onnx - numpy front end + jax| = {d2:.2e}")
    with open(os.path.join(synth.CACHE, "train-summary.json"), "w") as f:
        json.dump({"train_s": train_s, "steps": a.steps, "batch": a.batch, "clips": a.clips, "size": size,
                   "selfcheck_max_abs_diff": d, "params": int(sum(v_.size for v_ in params_np.values()))}, f)
    if not d < 1e-4:
        raise SystemExit(f"self-check failed: {d}")


if __name__ == "__main__":
    main()
