#!/usr/bin/env python3
"""Convert a CTranslate2 Whisper model (model.bin + config.json + tokenizer.json) into a
gst-lalm `whisper` model package: encoder.onnx + decoder.onnx (KV cache) + tokenizer.json +
model.toml, in the sherpa-onnx whisper export layout.

    convert.py --ct2-dir DIR --out PKG [--name whisper-base] [--source-sha256 HEX]
    convert.py --tiny-random --tokenizer-dir DIR --out PKG      # random weights, tiny dims

encoder.onnx: mel f32 [N, n_mels, n_frames <= 3000] (3000 = the 30 s window)
              -> n_layer_cross_k, n_layer_cross_v f32 [n_text_layer, N, n_audio_ctx, d_model]
decoder.onnx: tokens i64 [N, n_tokens], in_n_layer_self_k_cache, in_n_layer_self_v_cache
              f32 [n_text_layer, N, n_text_ctx, d_model], n_layer_cross_k, n_layer_cross_v,
              offset i64 [1]
              -> logits f32 [N, n_tokens, n_vocab], out_n_layer_self_k_cache,
                 out_n_layer_self_v_cache (inputs with the new keys/values written at
                 offset..offset+n_tokens)
Graphs are written directly with onnx.helper, opset 17, fp32 weights.
"""

import argparse
import hashlib
import json
import math
import os
import shutil
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ct2  # noqa: E402

OPSET = 17
IR_VERSION = 8  # opset 17 needs IR 8; keeps the files loadable by older runtimes too
LN_EPS = 1e-5
# Bumped whenever the graphs change, so build_package.sh rebuilds packages made by older code.
CONVERTER_VERSION = "3"
# [io] keys are the tensor names themselves (sherpa-onnx whisper layout)
IO_NAMES = ["mel", "n_layer_cross_k", "n_layer_cross_v", "tokens", "in_n_layer_self_k_cache",
            "in_n_layer_self_v_cache", "offset", "logits", "out_n_layer_self_k_cache", "out_n_layer_self_v_cache"]


class Graph:
    def __init__(self, name):
        self.name = name
        self.nodes = []
        self.inits = []
        self.init_names = set()
        self.n = 0

    def uid(self, base):
        self.n += 1
        return f"{base}_{self.n}"

    def init(self, name, arr):
        if name not in self.init_names:
            arr = np.asarray(arr)
            self.inits.append(numpy_helper.from_array(arr if arr.flags.c_contiguous else arr.copy(), name))
            self.init_names.add(name)
        return name

    def const(self, arr, base="c"):
        return self.init(self.uid(base), np.asarray(arr))

    def op(self, op_type, inputs, n_out=1, name=None, outputs=None, **attrs):
        name = name or self.uid(op_type)
        outs = outputs or [f"{name}_out{i}" if n_out > 1 else f"{name}_out" for i in range(n_out)]
        self.nodes.append(helper.make_node(op_type, inputs, outs, name=name, **attrs))
        return outs if n_out > 1 else outs[0]

    def model(self, inputs, outputs, metadata=None):
        g = helper.make_graph(self.nodes, self.name, inputs, outputs, self.inits)
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="gst-lalm models/whisper/convert.py")
        m.ir_version = IR_VERSION
        for k, v in (metadata or {}).items():
            p = m.metadata_props.add()
            p.key, p.value = k, str(v)
        onnx.checker.check_model(m)
        return m


# ----- building blocks ------------------------------------------------------------------

def gelu(g, x):
    # exact GELU (Whisper's nn.GELU), ORT fuses this pattern into its Gelu kernel
    e = g.op("Erf", [g.op("Div", [x, g.const(np.array(math.sqrt(2.0), np.float32))])])
    return g.op("Mul", [g.op("Mul", [x, g.const(np.array(0.5, np.float32))]),
                        g.op("Add", [e, g.const(np.array(1.0, np.float32))])])


def layer_norm(g, x, W, prefix):
    return g.op("LayerNormalization",
                [x, g.init(prefix + "/gamma", W(prefix + "/gamma")), g.init(prefix + "/beta", W(prefix + "/beta"))],
                axis=-1, epsilon=LN_EPS)


def linear(g, x, w, b, wname):
    """x @ w.T (+ b); w is [out, in] as stored by CT2."""
    y = g.op("MatMul", [x, g.init(wname + "/weight_t", np.ascontiguousarray(w.T))])
    if b is not None:
        y = g.op("Add", [y, g.init(wname + "/bias", b)])
    return y


def attention(g, q, k, v, n_head, d_model, mask=None):
    """q [N,Tq,d], k/v [N,Tk,d] -> [N,Tq,d]; softmax(q k^T / sqrt(hd) + mask) v per head."""
    hd = d_model // n_head
    split = g.const(np.array([0, 0, n_head, hd], np.int64), "heads")
    q = g.op("Mul", [q, g.const(np.array(1.0 / math.sqrt(hd), np.float32))])
    qh = g.op("Transpose", [g.op("Reshape", [q, split])], perm=[0, 2, 1, 3])
    kh = g.op("Transpose", [g.op("Reshape", [k, split])], perm=[0, 2, 3, 1])
    vh = g.op("Transpose", [g.op("Reshape", [v, split])], perm=[0, 2, 1, 3])
    s = g.op("MatMul", [qh, kh])
    if mask is not None:
        s = g.op("Add", [s, mask])
    p = g.op("Softmax", [s], axis=-1)
    o = g.op("Transpose", [g.op("MatMul", [p, vh])], perm=[0, 2, 1, 3])
    return g.op("Reshape", [o, g.const(np.array([0, 0, d_model], np.int64), "merge")])


def split_qkv(W, prefix, d):
    """CT2 fuses self-attention q/k/v in linear_0: weight [3d, d], bias [3d] (k bias is zero)."""
    w, b = W(prefix + "/linear_0/weight"), W(prefix + "/linear_0/bias")
    assert w.shape == (3 * d, d), (prefix, w.shape)
    kb = b[d:2 * d]
    if np.abs(kb).max() > 1e-6:
        raise ValueError(f"{prefix}: key bias is not zero (max {np.abs(kb).max()}); not a Whisper model")
    return (w[:d], b[:d]), w[d:2 * d], (w[2 * d:], b[2 * d:])


def split_kv(W, prefix, d):
    """CT2 cross attention: linear_0 = query, linear_1 = fused key/value [2d, d] (k bias zero)."""
    w, b = W(prefix + "/linear_1/weight"), W(prefix + "/linear_1/bias")
    assert w.shape == (2 * d, d), (prefix, w.shape)
    if np.abs(b[:d]).max() > 1e-6:
        raise ValueError(f"{prefix}: cross key bias is not zero; not a Whisper model")
    return w[:d], (w[d:], b[d:])


def mlp(g, x, W, prefix):
    h = layer_norm(g, x, W, prefix + "/layer_norm")
    h = gelu(g, linear(g, h, W(prefix + "/linear_0/weight"), W(prefix + "/linear_0/bias"), prefix + "/linear_0"))
    return linear(g, h, W(prefix + "/linear_1/weight"), W(prefix + "/linear_1/bias"), prefix + "/linear_1")


# ----- encoder --------------------------------------------------------------------------

def build_encoder(W, d, metadata=None):
    dm, H = d["d_model"], d["n_audio_head"]
    g = Graph("whisper_encoder")
    x = g.op("Conv", ["mel", g.init("encoder/conv1/weight", W("encoder/conv1/weight")),
                      g.init("encoder/conv1/bias", W("encoder/conv1/bias"))],
             kernel_shape=[3], pads=[1, 1], strides=[1])
    x = gelu(g, x)
    x = g.op("Conv", [x, g.init("encoder/conv2/weight", W("encoder/conv2/weight")),
                      g.init("encoder/conv2/bias", W("encoder/conv2/bias"))],
             kernel_shape=[3], pads=[1, 1], strides=[2])
    x = gelu(g, x)
    x = g.op("Transpose", [x], perm=[0, 2, 1])  # [N, T, d], T = frames / 2
    # The positional embedding is cut to the input's length, so a window shorter than 30 s
    # (the streaming decoder's short utterances) costs proportionally less.
    i64 = lambda *v: g.const(np.array(v, np.int64), "i")  # noqa: E731
    t_len = g.op("Slice", [g.op("Shape", [x]), i64(1), i64(2)])  # [1]
    pos = g.op("Slice", [g.init("encoder/position_encodings", W("encoder/position_encodings/encodings")),
                         i64(0), t_len, i64(0)])
    x = g.op("Add", [x, pos])
    for i in range(d["n_audio_layer"]):
        p = f"encoder/layer_{i}"
        h = layer_norm(g, x, W, p + "/self_attention/layer_norm")
        (wq, bq), wk, (wv, bv) = split_qkv(W, p + "/self_attention", dm)
        q = linear(g, h, wq, bq, p + "/self_attention/q")
        k = linear(g, h, wk, None, p + "/self_attention/k")
        v = linear(g, h, wv, bv, p + "/self_attention/v")
        a = attention(g, q, k, v, H, dm)
        a = linear(g, a, W(p + "/self_attention/linear_1/weight"), W(p + "/self_attention/linear_1/bias"),
                   p + "/self_attention/linear_1")
        x = g.op("Add", [x, a])
        x = g.op("Add", [x, mlp(g, x, W, p + "/ffn")])
    x = layer_norm(g, x, W, "encoder/layer_norm")
    ks, vs = [], []
    for i in range(d["n_text_layer"]):
        p = f"decoder/layer_{i}/attention"
        wk, (wv, bv) = split_kv(W, p, dm)
        ks.append(g.op("Unsqueeze", [linear(g, x, wk, None, p + "/k"), g.const(np.array([0], np.int64), "ax")]))
        vs.append(g.op("Unsqueeze", [linear(g, x, wv, bv, p + "/v"), g.const(np.array([0], np.int64), "ax")]))
    g.op("Concat", ks, axis=0, outputs=["n_layer_cross_k"])
    g.op("Concat", vs, axis=0, outputs=["n_layer_cross_v"])
    L = d["n_text_layer"]
    inputs = [helper.make_tensor_value_info("mel", TensorProto.FLOAT, ["N", d["n_mels"], "n_frames"])]
    outputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [L, "N", "n_audio_ctx", dm])
               for n in ("n_layer_cross_k", "n_layer_cross_v")]
    return g.model(inputs, outputs, metadata)


# ----- decoder --------------------------------------------------------------------------

def build_decoder(W, d, metadata=None):
    dm, H, L, C = d["d_model"], d["n_text_head"], d["n_text_layer"], d["n_text_ctx"]
    g = Graph("whisper_decoder")
    i64 = lambda *v: g.const(np.array(v, np.int64), "i")  # noqa: E731
    n_tok = g.op("Slice", [g.op("Shape", ["tokens"]), i64(1), i64(2)])  # [1]
    end = g.op("Add", ["offset", n_tok])  # [1]
    pos = g.op("Slice", [g.init("decoder/position_encodings", W("decoder/position_encodings/encodings")),
                         "offset", end, i64(0)])  # [n_tokens, d]
    emb = g.init("decoder/embeddings/weight", W("decoder/embeddings/weight"))
    x = g.op("Add", [g.op("Gather", [emb, "tokens"], axis=0), pos])
    # causal mask [n_tokens, offset + n_tokens]: token i (at position offset+i) sees positions <= offset+i
    zero = g.const(np.array(0, np.int64), "s")
    one = g.const(np.array(1, np.int64), "s")
    cols = g.op("Range", [zero, g.op("Squeeze", [end, i64(0)]), one])
    rows = g.op("Add", [g.op("Range", [zero, g.op("Squeeze", [n_tok, i64(0)]), one]), "offset"])
    future = g.op("Greater", [g.op("Unsqueeze", [cols, i64(0)]), g.op("Unsqueeze", [rows, i64(1)])])
    mask = g.op("Where", [future, g.const(np.array(-np.inf, np.float32)), g.const(np.array(0.0, np.float32))])
    out_k, out_v = [], []
    for i in range(L):
        p = f"decoder/layer_{i}"
        li = g.const(np.array(i, np.int64), "layer")
        # self attention with the cache
        h = layer_norm(g, x, W, p + "/self_attention/layer_norm")
        (wq, bq), wk, (wv, bv) = split_qkv(W, p + "/self_attention", dm)
        q = linear(g, h, wq, bq, p + "/self_attention/q")
        k = linear(g, h, wk, None, p + "/self_attention/k")
        v = linear(g, h, wv, bv, p + "/self_attention/v")
        caches = []
        for new, cache_in in ((k, "in_n_layer_self_k_cache"), (v, "in_n_layer_self_v_cache")):
            c = g.op("Gather", [cache_in, li], axis=0)  # [N, C, d]
            before = g.op("Slice", [c, i64(0), "offset", i64(1)])
            after = g.op("Slice", [c, end, i64(C + 1), i64(1)])
            caches.append(g.op("Concat", [before, new, after], axis=1))  # [N, C, d]
        kc, vc = caches
        out_k.append(g.op("Unsqueeze", [kc, i64(0)]))
        out_v.append(g.op("Unsqueeze", [vc, i64(0)]))
        ka = g.op("Slice", [kc, i64(0), end, i64(1)])
        va = g.op("Slice", [vc, i64(0), end, i64(1)])
        a = attention(g, q, ka, va, H, dm, mask)
        a = linear(g, a, W(p + "/self_attention/linear_1/weight"), W(p + "/self_attention/linear_1/bias"),
                   p + "/self_attention/linear_1")
        x = g.op("Add", [x, a])
        # cross attention on the precomputed encoder keys/values
        h = layer_norm(g, x, W, p + "/attention/layer_norm")
        q = linear(g, h, W(p + "/attention/linear_0/weight"), W(p + "/attention/linear_0/bias"), p + "/attention/q")
        ck = g.op("Gather", ["n_layer_cross_k", li], axis=0)
        cv = g.op("Gather", ["n_layer_cross_v", li], axis=0)
        a = attention(g, q, ck, cv, H, dm)
        a = linear(g, a, W(p + "/attention/linear_2/weight"), W(p + "/attention/linear_2/bias"), p + "/attention/linear_2")
        x = g.op("Add", [x, a])
        x = g.op("Add", [x, mlp(g, x, W, p + "/ffn")])
    x = layer_norm(g, x, W, "decoder/layer_norm")
    # logits = x @ embedding^T, as Gemm(transB) so the embedding is stored once
    x2 = g.op("Reshape", [x, i64(-1, dm)])
    lg = g.op("Gemm", [x2, emb], transB=1, name="logits_gemm")
    g.op("Reshape", [lg, g.op("Concat", [g.op("Shape", ["tokens"]), i64(d["n_vocab"])], axis=0)],
         outputs=["logits"])
    g.op("Concat", out_k, axis=0, outputs=["out_n_layer_self_k_cache"])
    g.op("Concat", out_v, axis=0, outputs=["out_n_layer_self_v_cache"])
    A = "n_audio_ctx"  # a window may be shorter than 30 s
    F = TensorProto.FLOAT
    vi = helper.make_tensor_value_info
    inputs = [vi("tokens", TensorProto.INT64, ["N", "n_tokens"]),
              vi("in_n_layer_self_k_cache", F, [L, "N", C, dm]),
              vi("in_n_layer_self_v_cache", F, [L, "N", C, dm]),
              vi("n_layer_cross_k", F, [L, "N", A, dm]),
              vi("n_layer_cross_v", F, [L, "N", A, dm]),
              vi("offset", TensorProto.INT64, [1])]
    outputs = [vi("logits", F, ["N", "n_tokens", d["n_vocab"]]),
               vi("out_n_layer_self_k_cache", F, [L, "N", C, dm]),
               vi("out_n_layer_self_v_cache", F, [L, "N", C, dm])]
    return g.model(inputs, outputs, metadata)


# ----- tokens, manifest, package --------------------------------------------------------

def special_tokens(tokenizer_json):
    tok = json.load(open(tokenizer_json, encoding="utf-8"))
    ids = {t["content"]: t["id"] for t in tok.get("added_tokens", [])}
    ids.update({k: v for k, v in tok["model"]["vocab"].items() if k.startswith("<|")})

    def get(*names):
        for n in names:
            if n in ids:
                return ids[n]
        raise ValueError(f"tokenizer has none of {names}")
    sp = dict(sot=get("<|startoftranscript|>"), eot=get("<|endoftext|>"), transcribe=get("<|transcribe|>"),
              translate=get("<|translate|>"), no_timestamps=get("<|notimestamps|>"),
              no_speech=get("<|nospeech|>", "<|nocaptions|>"), lang_en=get("<|en|>"),
              sot_prev=get("<|startofprev|>"), sot_lm=get("<|startoflm|>"))
    sp["timestamp_begin"] = ids.get("<|0.00|>", sp["no_timestamps"] + 1)
    return sp


def toml_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    return json.dumps(str(v))  # a basic TOML string is a JSON string for our ASCII values


def write_manifest(path, name, description, d, sp, suppress, comments):
    params = dict(n_mels=d["n_mels"], n_audio_ctx=d["n_audio_ctx"], n_audio_layer=d["n_audio_layer"],
                  n_audio_head=d["n_audio_head"], n_text_ctx=d["n_text_ctx"], n_vocab=d["n_vocab"],
                  n_text_layer=d["n_text_layer"], n_text_head=d["n_text_head"], d_model=d["d_model"],
                  sot=sp["sot"], eot=sp["eot"], transcribe=sp["transcribe"], translate=sp["translate"],
                  no_timestamps=sp["no_timestamps"], no_speech=sp["no_speech"],
                  timestamp_begin=sp["timestamp_begin"], lang_en=sp["lang_en"],
                  sot_prev=sp["sot_prev"], sot_lm=sp["sot_lm"],
                  suppress_tokens=list(suppress["suppress_ids"]),
                  suppress_tokens_begin=list(suppress["suppress_ids_begin"]))
    if suppress.get("lang_ids"):
        params["lang_ids"] = list(suppress["lang_ids"])
    lines = [f"# {c}" for c in comments]
    lines += ['family = "whisper"', f"name = {toml_value(name)}", f"description = {toml_value(description)}",
              'license = "MIT"', "sample_rate = 16000", "",
              "[files]", 'encoder = "encoder.onnx"', 'decoder = "decoder.onnx"', 'tokenizer = "tokenizer.json"', "",
              "[io]"] + [f'{t} = "{t}"' for t in IO_NAMES] + ["",
              "[params]"]
    lines += [f"{k} = {toml_value(v)}" for k, v in params.items()]
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")


def sherpa_metadata(d, sp, suppress, model_type):
    """metadata_props like sherpa-onnx's whisper export, so sherpa-style loaders find what they read."""
    langs = list(suppress.get("lang_ids") or [])
    return {
        "model_type": model_type, "version": "1", "maintainer": "gst-lalm",
        "n_mels": d["n_mels"], "n_audio_ctx": d["n_audio_ctx"], "n_audio_state": d["d_model"],
        "n_audio_head": d["n_audio_head"], "n_audio_layer": d["n_audio_layer"],
        "n_vocab": d["n_vocab"], "n_text_ctx": d["n_text_ctx"], "n_text_state": d["d_model"],
        "n_text_head": d["n_text_head"], "n_text_layer": d["n_text_layer"],
        "sot": sp["sot"], "eot": sp["eot"], "blank_id": 220, "translate": sp["translate"],
        "transcribe": sp["transcribe"], "no_timestamps": sp["no_timestamps"], "no_speech": sp["no_speech"],
        "sot_prev": sp["sot_prev"], "sot_lm": sp["sot_lm"],
        "is_multilingual": int(d["n_vocab"] >= 51865),
        "sot_sequence": ",".join(map(str, [sp["sot"], sp["lang_en"], sp["transcribe"]])),
        "all_language_tokens": ",".join(map(str, langs)),
        "non_speech_tokens": ",".join(map(str, suppress["suppress_ids"])),
    }


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for blk in iter(lambda: fh.read(1 << 20), b""):
            h.update(blk)
    return h.hexdigest()


def write_package(out, W, d, tokenizer_json, config, name, description, comments):
    tmp = out.rstrip("/") + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    sp = special_tokens(tokenizer_json)
    meta = sherpa_metadata(d, sp, config, name)
    onnx.save(build_encoder(W, d, meta), os.path.join(tmp, "encoder.onnx"))
    onnx.save(build_decoder(W, d, meta), os.path.join(tmp, "decoder.onnx"))
    shutil.copyfile(tokenizer_json, os.path.join(tmp, "tokenizer.json"))
    write_manifest(os.path.join(tmp, "model.toml"), name, description, d, sp, config, comments)
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)


def ct2_weights(model):
    cache = {}

    def W(name):
        if name not in cache:
            cache[name] = model.f32(name)
        return cache[name]
    return W


def sinusoids(length, channels, max_timescale=10000):
    """Whisper's encoder positional embedding."""
    inc = np.log(max_timescale) / (channels // 2 - 1)
    inv = np.exp(-inc * np.arange(channels // 2))
    t = np.arange(length)[:, None] * inv[None, :]
    return np.concatenate([np.sin(t), np.cos(t)], axis=1).astype(np.float32)


def tiny_random_weights(seed=1234, n_vocab=51865, d_model=64, n_layer=2, n_head=4, n_mels=80,
                        n_audio_ctx=1500, n_text_ctx=448):
    """CT2-named weights of a tiny random Whisper (same graph family and vocabulary)."""
    rng = np.random.default_rng(seed)
    dm, ff = d_model, 4 * d_model
    V = {}

    def w(name, *shape, scale=None):
        s = scale if scale is not None else 1.0 / math.sqrt(shape[-1])
        V[name] = (rng.standard_normal(shape) * s).astype(np.float32)

    def ln(name):
        V[name + "/gamma"] = (1.0 + 0.1 * rng.standard_normal(dm)).astype(np.float32)
        V[name + "/beta"] = (0.1 * rng.standard_normal(dm)).astype(np.float32)

    def lin(name, out, inp, bias=True):
        w(name + "/weight", out, inp)
        if bias:
            w(name + "/bias", out, scale=0.02)

    w("encoder/conv1/weight", dm, n_mels, 3, scale=1 / math.sqrt(3 * n_mels))
    w("encoder/conv1/bias", dm, scale=0.02)
    w("encoder/conv2/weight", dm, dm, 3, scale=1 / math.sqrt(3 * dm))
    w("encoder/conv2/bias", dm, scale=0.02)
    V["encoder/position_encodings/encodings"] = sinusoids(n_audio_ctx, dm)
    for side in ("encoder", "decoder"):
        for i in range(n_layer):
            p = f"{side}/layer_{i}"
            ln(p + "/self_attention/layer_norm")
            lin(p + "/self_attention/linear_0", 3 * dm, dm)
            V[p + "/self_attention/linear_0/bias"][dm:2 * dm] = 0.0  # Whisper: no key bias
            lin(p + "/self_attention/linear_1", dm, dm)
            if side == "decoder":
                ln(p + "/attention/layer_norm")
                lin(p + "/attention/linear_0", dm, dm)
                lin(p + "/attention/linear_1", 2 * dm, dm)
                V[p + "/attention/linear_1/bias"][:dm] = 0.0
                lin(p + "/attention/linear_2", dm, dm)
            ln(p + "/ffn/layer_norm")
            lin(p + "/ffn/linear_0", ff, dm)
            lin(p + "/ffn/linear_1", dm, ff)
        ln(f"{side}/layer_norm")
    w("decoder/embeddings/weight", n_vocab, dm, scale=0.02)
    w("decoder/position_encodings/encodings", n_text_ctx, dm, scale=0.01)
    d = dict(n_mels=n_mels, n_audio_ctx=n_audio_ctx, n_audio_layer=n_layer, n_audio_head=n_head,
             n_text_ctx=n_text_ctx, n_text_layer=n_layer, n_text_head=n_head, n_vocab=n_vocab, d_model=dm)
    return V, d


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ct2-dir", help="folder with model.bin, config.json, tokenizer.json")
    ap.add_argument("--tiny-random", action="store_true", help="write whisper-tiny-random instead")
    ap.add_argument("--tokenizer-dir", help="folder with tokenizer.json and config.json (for --tiny-random)")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--out", required=True)
    ap.add_argument("--name")
    ap.add_argument("--description")
    ap.add_argument("--source-sha256", help="recorded as a comment in model.toml")
    ap.add_argument("--source", default="", help="where the weights came from (comment in model.toml)")
    a = ap.parse_args()
    comments = [f"converter-version = {CONVERTER_VERSION}",
                f"converter-sha256 = {sha256_file(os.path.abspath(__file__))}"]
    if a.tiny_random:
        src = a.tokenizer_dir
        V, d = tiny_random_weights(seed=a.seed)
        W = V.__getitem__
        name = a.name or "whisper-tiny-random"
        desc = a.description or (f"Whisper architecture with random weights (seed {a.seed}, d_model {d['d_model']}, "
                                 f"{d['n_text_layer']} layers, {d['n_text_head']} heads): for fast tests only, "
                                 "outputs are meaningless")
        comments.append(f"seed = {a.seed}")
    else:
        src = a.ct2_dir
        model = ct2.read(os.path.join(src, "model.bin"))
        d = ct2.dims(model)
        W = ct2_weights(model)
        name = a.name or "whisper"
        desc = a.description or "OpenAI Whisper converted from a CTranslate2 model.bin"
    if a.source_sha256:
        comments.append(f"source-sha256 = {a.source_sha256}")
    if a.source:
        comments.append(f"source = {a.source}")
    comments.append("dims = " + ", ".join(f"{k}={v}" for k, v in d.items()))
    config = json.load(open(os.path.join(src, "config.json"), encoding="utf-8"))
    write_package(a.out, W, d, os.path.join(src, "tokenizer.json"), config, name, desc, comments)
    print(f"wrote {a.out}: " + ", ".join(f"{k}={v}" for k, v in d.items()))


if __name__ == "__main__":
    main()
