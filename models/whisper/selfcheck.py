#!/usr/bin/env python3
"""Numeric self-check of a converted package against a plain numpy Whisper computed directly
from the CTranslate2 weights (no ONNX involved in the reference):

  * encoder: n_layer_cross_k / n_layer_cross_v of encoder.onnx vs numpy, for one mel input;
  * decoder: logits of decoder.onnx run incrementally with the KV cache (a 4-token prompt,
    then tokens one at a time, offset advancing) vs a numpy full-sequence causal forward.

    selfcheck.py --pkg PKG --ct2-dir DIR [--wav f.wav]     # real weights
    selfcheck.py --pkg PKG --tiny-random [--seed 1234]      # the tiny random package
Exit 1 if a max abs difference exceeds its tolerance.
"""

import argparse
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ct2  # noqa: E402
import convert  # noqa: E402
import whisper_onnx as wo  # noqa: E402

_erf = np.frompyfunc(math.erf, 1, 1)


def gelu(x):
    """exact GELU in float64 (math.erf elementwise)."""
    x = x.astype(np.float64)
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)).astype(np.float64))


def ln(x, g, b, eps=1e-5):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * g + b


def conv1d(x, w, b, stride):
    """x [C_in, T], w [C_out, C_in, 3], padding 1."""
    xp = np.pad(x, ((0, 0), (1, 1)))
    T_out = (x.shape[1] + 2 - 3) // stride + 1
    cols = np.stack([xp[:, k:k + stride * (T_out - 1) + 1:stride] for k in range(3)], axis=1)  # [C_in,3,T]
    return np.einsum("oik,ikt->ot", w, cols) + b[:, None]


def mha(q, k, v, H, mask=None):
    T, D = q.shape
    hd = D // H
    qh = q.reshape(T, H, hd).transpose(1, 0, 2)
    kh = k.reshape(-1, H, hd).transpose(1, 0, 2)
    vh = v.reshape(-1, H, hd).transpose(1, 0, 2)
    s = qh @ kh.transpose(0, 2, 1) / math.sqrt(hd)
    if mask is not None:
        s = s + mask
    s = s - s.max(-1, keepdims=True)
    p = np.exp(s)
    p /= p.sum(-1, keepdims=True)
    return (p @ vh).transpose(1, 0, 2).reshape(T, D)


def reference_encoder(W, d, mel):
    """numpy Whisper encoder from CT2-named weights (float64) -> cross k, v [L, 1, A, D]."""
    f = lambda n: W(n).astype(np.float64)  # noqa: E731
    D, H = d["d_model"], d["n_audio_head"]
    x = gelu(conv1d(mel.astype(np.float64), f("encoder/conv1/weight"), f("encoder/conv1/bias"), 1))
    x = gelu(conv1d(x, f("encoder/conv2/weight"), f("encoder/conv2/bias"), 2)).T
    x = x + f("encoder/position_encodings/encodings")
    for i in range(d["n_audio_layer"]):
        p = f"encoder/layer_{i}"
        h = ln(x, f(p + "/self_attention/layer_norm/gamma"), f(p + "/self_attention/layer_norm/beta"))
        qkv = h @ f(p + "/self_attention/linear_0/weight").T + f(p + "/self_attention/linear_0/bias")
        a = mha(qkv[:, :D], qkv[:, D:2 * D], qkv[:, 2 * D:], H)
        x = x + a @ f(p + "/self_attention/linear_1/weight").T + f(p + "/self_attention/linear_1/bias")
        h = ln(x, f(p + "/ffn/layer_norm/gamma"), f(p + "/ffn/layer_norm/beta"))
        h = gelu(h @ f(p + "/ffn/linear_0/weight").T + f(p + "/ffn/linear_0/bias"))
        x = x + h @ f(p + "/ffn/linear_1/weight").T + f(p + "/ffn/linear_1/bias")
    x = ln(x, f("encoder/layer_norm/gamma"), f("encoder/layer_norm/beta"))
    ks, vs = [], []
    for i in range(d["n_text_layer"]):
        p = f"decoder/layer_{i}/attention/linear_1"
        kv = x @ f(p + "/weight").T + f(p + "/bias")  # fused [k | v]; CT2 stores a zero k bias
        ks.append(kv[:, :D])
        vs.append(kv[:, D:])
    return np.stack(ks)[:, None], np.stack(vs)[:, None]


def reference_decoder(W, d, tokens, cross_k, cross_v):
    """numpy full-sequence causal decoder -> logits [T, V] (float64)."""
    f = lambda n: W(n).astype(np.float64)  # noqa: E731
    D, H, T = d["d_model"], d["n_text_head"], len(tokens)
    emb = f("decoder/embeddings/weight")
    x = emb[tokens] + f("decoder/position_encodings/encodings")[:T]
    mask = np.triu(np.full((T, T), -np.inf), 1)
    for i in range(d["n_text_layer"]):
        p = f"decoder/layer_{i}"
        h = ln(x, f(p + "/self_attention/layer_norm/gamma"), f(p + "/self_attention/layer_norm/beta"))
        qkv = h @ f(p + "/self_attention/linear_0/weight").T + f(p + "/self_attention/linear_0/bias")
        a = mha(qkv[:, :D], qkv[:, D:2 * D], qkv[:, 2 * D:], H, mask)
        x = x + a @ f(p + "/self_attention/linear_1/weight").T + f(p + "/self_attention/linear_1/bias")
        h = ln(x, f(p + "/attention/layer_norm/gamma"), f(p + "/attention/layer_norm/beta"))
        q = h @ f(p + "/attention/linear_0/weight").T + f(p + "/attention/linear_0/bias")
        a = mha(q, cross_k[i, 0].astype(np.float64), cross_v[i, 0].astype(np.float64), H)
        x = x + a @ f(p + "/attention/linear_2/weight").T + f(p + "/attention/linear_2/bias")
        h = ln(x, f(p + "/ffn/layer_norm/gamma"), f(p + "/ffn/layer_norm/beta"))
        h = gelu(h @ f(p + "/ffn/linear_0/weight").T + f(p + "/ffn/linear_0/bias"))
        x = x + h @ f(p + "/ffn/linear_1/weight").T + f(p + "/ffn/linear_1/bias")
    x = ln(x, f("decoder/layer_norm/gamma"), f("decoder/layer_norm/beta"))
    return x @ emb.T


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pkg", required=True)
    ap.add_argument("--ct2-dir")
    ap.add_argument("--tiny-random", action="store_true")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--wav", help="16 kHz mono wav for the mel input (default: an espeak-ng sentence, else noise)")
    a = ap.parse_args()
    if a.tiny_random:
        V, d = convert.tiny_random_weights(seed=a.seed)
        W = V.__getitem__
    else:
        model = ct2.read(os.path.join(a.ct2_dir, "model.bin"))
        d, W = ct2.dims(model), convert.ct2_weights(model)
    if a.wav:
        audio = wo.read_wav(a.wav)
    else:
        try:
            import tempfile
            with tempfile.TemporaryDirectory() as td:
                audio = wo.read_wav(wo.speak(wo.SENTENCES[0], os.path.join(td, "s.wav")))
        except (OSError, FileNotFoundError):
            audio = np.random.default_rng(0).standard_normal(16000 * 3).astype(np.float32) * 0.1
    mel = wo.log_mel(audio, d["n_mels"])
    m = wo.WhisperOnnx(a.pkg)
    k, v = m.encode(mel)
    rk, rv = reference_encoder(W, d, mel)
    enc_diff = max(np.abs(k - rk).max(), np.abs(v - rv).max())
    enc_scale = max(np.abs(rk).max(), np.abs(rv).max())
    p = m.p
    tokens = [p["sot"], p["lang_en"], p["transcribe"], p["no_timestamps"], 440, 2068, 3699, 21831]
    L, C, D = p["n_text_layer"], p["n_text_ctx"], p["d_model"]
    kc = np.zeros((L, 1, C, D), np.float32)
    vc = np.zeros((L, 1, C, D), np.float32)
    got, offset = [], 0
    for chunk in (tokens[:4], tokens[4:5], tokens[5:6], tokens[6:8]):
        lg, kc, vc = m.dec.run(None, {"tokens": np.array([chunk], np.int64), "in_n_layer_self_k_cache": kc,
                                      "in_n_layer_self_v_cache": vc, "n_layer_cross_k": k, "n_layer_cross_v": v,
                                      "offset": np.array([offset], np.int64)})
        got.append(lg[0])
        offset += len(chunk)
    got = np.concatenate(got)
    ref = reference_decoder(W, d, tokens, rk, rv)
    dec_diff = np.abs(got - ref).max()
    dec_scale = np.abs(ref).max()
    untouched = np.abs(kc[:, :, offset:]).max()
    argmax_same = bool((got.argmax(-1) == ref.argmax(-1)).all())
    print(f"encoder: max |onnx - numpy(ct2)| = {enc_diff:.3e} (values up to {enc_scale:.2f})")
    print(f"decoder: max |onnx(kv cache, 4+1+1+2 tokens) - numpy(full causal)| logits = {dec_diff:.3e} "
          f"(values up to {dec_scale:.2f}), argmax equal: {argmax_same}, cache beyond offset untouched: {untouched == 0}")
    ok = enc_diff <= 1e-3 * max(1.0, enc_scale) and dec_diff <= 1e-3 * max(1.0, dec_scale) and argmax_same and untouched == 0
    print("selfcheck", "OK" if ok else "FAILED")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
