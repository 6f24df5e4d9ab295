"""GGUF decoder language model -> ONNX with a KV cache, for the `interaction-model` family.

    convert.py GGUF OUT_DIR [--name NAME] [--max-positions N] [--check N_PROMPTS]
               [--check-tokens N] [--accuracy-level 4|0]

Reads a llama or qwen2 GGUF file (the `gguf` package), re-encodes its quantized weights for ONNX
Runtime's MatMulNBits without changing a value (Q4_0, Q4_1, Q5_0, Q8_0, Q4_K, Q6_K; the float
block offsets of Q4_1/Q4_K become a small extra MatMul over block sums; any other type is an
error), and writes one graph:

    input_ids i64 [1, S], attention_mask i64 [1, P+S],
    past_key_values.{i}.key|value f32 [1, kv_heads, P, head_dim]
    -> logits f32 [1, 1, vocab] (last position only), present.{i}.key|value [1, kv_heads, P+S, head_dim]

with GroupQueryAttention (rotary positions inside it), SkipSimplifiedLayerNormalization (RMSNorm
with the residual add), SwiGLU, and an 8-bit GatherBlockQuantized embedding. 8-bit weights run
with int8 activations (accuracy_level 4), as llama.cpp runs them. It also writes tokenizer.json
(byte-level BPE from the GGUF's own vocabulary and merges), chat_template.jinja, model.toml and
selfcheck.json (prompt ids and greedy replies the runtime must reproduce).

The self-check (on unless --check 0) compares the graph run by onnxruntime with a numpy forward
pass on the GGUF's weights dequantized by the gguf package, token by token over a set of
prompts: with exact arithmetic the logits agree to 1e-3 and the greedy text is identical; as
shipped, a token may differ only where the reference's top two are within 2 % (see check()).
"""

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np
import onnx
from gguf import GGUFReader, GGMLQuantizationType as Q
from gguf.quants import dequantize
from onnx import TensorProto, helper as h, numpy_helper as nh

ARCHS = ("llama", "qwen2")
# The pre-tokenizer splits llama.cpp applies for these `tokenizer.ggml.pre` values.
GPT2_SPLIT = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
QWEN2_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
CHECK_PROMPTS = [
    "What is the capital of France? Answer in one word.",
    "Say hello to the team in one short sentence.",
    "Someone said the release moves to the 14th. When is the release?",
    "Is a smoke alarm going off something to tell people about? Answer yes or no.",
]


class Gguf:
    def __init__(self, path):
        self.r = GGUFReader(path)
        self.tensors = {t.name: t for t in self.r.tensors}

    def value(self, key, default=None):
        f = self.r.fields.get(key)
        if f is None:
            return default
        v = f.parts[f.data[0]]
        if f.types[0].name == "STRING":
            return bytes(v).decode("utf-8")
        return v.tolist()[0]

    def array(self, key):
        f = self.r.fields[key]
        if f.types[-1].name == "STRING":
            return [bytes(f.parts[i]).decode("utf-8") for i in f.data]
        return [f.parts[i].tolist()[0] for i in f.data]

    def dense(self, name):
        """The tensor as float32 [rows, cols] (GGUF lists shapes innermost first)."""
        t = self.tensors[name]
        shape = [int(x) for x in reversed(t.shape)]
        return dequantize(t.data, t.tensor_type).reshape(shape).astype(np.float32)


def f16(b):
    return b.view(np.float16).astype(np.float32)


def blocks(t):
    """A quantized [N, K] tensor as (q uint8 [N, nb, bs], scale f32 [N, nb], zero point uint8
    [N, nb], bits, block size, offset f32 [N, nb] or None), such that
    w = scale * (q - zero point) + offset reproduces the GGUF values exactly. The types with a
    float offset per block (Q4_1, Q4_K) keep it apart: MatMulNBits with a float zero point
    dequantizes the whole matrix on every run (40x slower at one token)."""
    raw = np.asarray(t.data)
    n = raw.shape[0]
    typ = t.tensor_type
    if typ == Q.Q8_0:
        b = raw.reshape(n, -1, 34)
        d = f16(b[..., 0:2].copy())[..., 0]
        q = (b[..., 2:].view(np.int8).astype(np.int16) + 128).astype(np.uint8)
        return q, d, np.full(d.shape, 128, np.uint8), 8, 32, None
    if typ == Q.Q4_0:
        b = raw.reshape(n, -1, 18)
        d = f16(b[..., 0:2].copy())[..., 0]
        qs = b[..., 2:]
        q = np.concatenate([qs & 15, qs >> 4], -1)
        return q, d, np.full(d.shape, 8, np.uint8), 4, 32, None
    if typ == Q.Q4_1:
        b = raw.reshape(n, -1, 20)
        d, m = f16(b[..., 0:2].copy())[..., 0], f16(b[..., 2:4].copy())[..., 0]
        q = np.concatenate([b[..., 4:] & 15, b[..., 4:] >> 4], -1)
        return q, d, np.zeros(d.shape, np.uint8), 4, 32, m
    if typ == Q.Q5_0:
        b = raw.reshape(n, -1, 22)
        d = f16(b[..., 0:2].copy())[..., 0]
        qh = b[..., 2:6].copy().view(np.uint32)
        hi = ((qh >> np.arange(32, dtype=np.uint32)) & 1).astype(np.uint8)
        qs = b[..., 6:]
        lo = np.concatenate([qs & 15, qs >> 4], -1)
        return lo | (hi << 4), d, np.full(d.shape, 16, np.uint8), 8, 32, None
    if typ == Q.Q4_K:
        from gguf.quants import Q4_K

        b = raw.reshape(-1, 144)
        d, dmin = f16(b[:, 0:2].copy()), f16(b[:, 2:4].copy())
        sc, mn = Q4_K.get_scale_min(b[:, 4:16].copy())
        shifts = np.array([0, 4], np.uint8).reshape(1, 1, 2, 1)
        q = ((b[:, 16:].reshape(-1, 4, 1, 32) >> shifts) & 15).reshape(n, -1, 32)
        s = (d * sc).reshape(n, -1).astype(np.float32)
        off = -(dmin * mn).reshape(n, -1).astype(np.float32)
        return q, s, np.zeros(s.shape, np.uint8), 4, 32, off
    if typ == Q.Q6_K:
        b = raw.reshape(-1, 210)
        ql, qh, scl = b[:, :128], b[:, 128:192], b[:, 192:208]
        d = f16(b[:, 208:210].copy())
        lo = (ql.reshape(-1, 2, 1, 64) >> np.array([0, 4], np.uint8).reshape(1, 1, 2, 1)) & 15
        hi = (qh.reshape(-1, 2, 1, 32) >> np.array([0, 2, 4, 6], np.uint8).reshape(1, 1, 4, 1)) & 3
        q = (lo.reshape(-1, 8, 32) | (hi.reshape(-1, 8, 32) << 4)).reshape(n, -1, 16)
        s = (d * scl.view(np.int8).astype(np.float32)).reshape(n, -1)
        return q, s.astype(np.float32), np.full(s.shape, 32, np.uint8), 8, 16, None
    raise SystemExit(
        f"convert.py: tensor {t.name} has GGUF type {typ.name}, which this converter does not "
        "re-encode (supported: Q4_0, Q4_1, Q5_0, Q8_0, Q4_K, Q6_K)"
    )


def rtn8(w, bs=32):
    """Symmetric 8-bit round-to-nearest of a float [N, K] matrix (for float GGUF tensors)."""
    n, k = w.shape
    if k % bs:
        raise SystemExit(f"convert.py: a float tensor's row length {k} is not a multiple of {bs}")
    wb = w.reshape(n, k // bs, bs)
    s = np.abs(wb).max(-1) / 127.0
    s = np.where(s == 0, 1.0, s).astype(np.float32)
    q = (np.clip(np.rint(wb / s[..., None]), -127, 127) + 128).astype(np.uint8)
    return q, s, np.full(s.shape, 128, np.uint8), 8, bs, None


def quantized(t):
    if t.tensor_type in (Q.F32, Q.F16):
        shape = [int(x) for x in reversed(t.shape)]
        return rtn8(dequantize(t.data, t.tensor_type).reshape(shape).astype(np.float32))
    return blocks(t)


def as_values(q, s, zp, off=None):
    w = (q.astype(np.float32) - zp[..., None].astype(np.float32)) * s[..., None]
    if off is not None:
        w = w + off[..., None]
    return w.reshape(q.shape[0], -1)


class Graph:
    def __init__(self, accuracy):
        self.nodes, self.inits = [], []
        self.count = 0
        self.accuracy = accuracy

    def name(self, stem):
        self.count += 1
        return f"{stem}_{self.count}"

    def init(self, name, array):
        self.inits.append(nh.from_array(array, name))
        return name

    def op(self, op, inputs, n_out=1, domain="", **attrs):
        outs = [self.name(op) for _ in range(n_out)]
        self.nodes.append(h.make_node(op, inputs, outs, name=self.name(op + "_node"), domain=domain, **attrs))
        return outs if n_out > 1 else outs[0]

    def matmul(self, x, name, t):
        """x @ W.T for a GGUF weight W [N, K], as MatMulNBits; returns (output, W as used)."""
        q, s, zp, bits, bs, off = quantized(t)
        n, nb, _ = q.shape
        packed = (q[..., 0::2] | (q[..., 1::2] << 4)).astype(np.uint8) if bits == 4 else q
        if bits == 4:
            z = zp if nb % 2 == 0 else np.pad(zp, ((0, 0), (0, 1)))
            zp_stored = (z[:, 0::2] | (z[:, 1::2] << 4)).astype(np.uint8).reshape(-1)
        else:
            zp_stored = zp.reshape(-1)
        inputs = [
            x,
            self.init(name + ".qweight", np.ascontiguousarray(packed)),
            self.init(name + ".scales", s.reshape(-1).astype(np.float32)),
            self.init(name + ".zero_points", zp_stored),
        ]
        # 8-bit weights are dequantized whole on every run unless accuracy_level 4 quantizes the
        # activations to int8 per block (as llama.cpp does for its own dot products); 4-bit
        # ones have a fast exact kernel.
        level = self.accuracy if bits == 8 else 0
        y = self.op("MatMulNBits", inputs, domain="com.microsoft", K=nb * bs, N=n, bits=bits, block_size=bs, accuracy_level=level)
        if off is not None:
            # sum_k x_k (s q_k + o) = (MatMulNBits) + o * (sum of x over the block).
            xb = self.op("Reshape", [x, self.init(name + ".blocks", np.array([0, 0, nb, bs], np.int64))])
            xs = self.op("ReduceSum", [xb, self.init(name + ".axis", np.array([-1], np.int64))], keepdims=0)
            y = self.op("Add", [y, self.op("MatMul", [xs, self.init(name + ".offsets", np.ascontiguousarray(off.T.astype(np.float32)))])])
        used = as_values(q, s, zp, off)
        if t.tensor_type not in (Q.F32, Q.F16):
            ref = dequantize(t.data, t.tensor_type).reshape(used.shape)
            err = float(np.abs(used - ref).max())
            if err > 1e-6 * max(float(np.abs(ref).max()), 1.0):
                raise SystemExit(f"convert.py: re-encoding {t.name} ({t.tensor_type.name}) changed a weight by {err:.3g}")
        return y, used


def meta(g):
    arch = g.value("general.architecture")
    if arch not in ARCHS:
        raise SystemExit(f"convert.py: architecture {arch!r} is not supported (only {', '.join(ARCHS)})")
    p = lambda k, d=None: g.value(f"{arch}.{k}", d)  # noqa: E731
    hidden, heads = p("embedding_length"), p("attention.head_count")
    m = {
        "arch": arch,
        "layers": p("block_count"),
        "hidden": hidden,
        "ffn": p("feed_forward_length"),
        "heads": heads,
        "kv_heads": p("attention.head_count_kv", heads),
        "head_dim": p("attention.key_length", hidden // heads),
        "rope_theta": float(p("rope.freq_base", 10000.0)),
        "eps": float(p("attention.layer_norm_rms_epsilon")),
        "context": p("context_length"),
    }
    scaling = p("rope.scaling.type", "none")
    if scaling not in ("none", None):
        raise SystemExit(f"convert.py: rope scaling {scaling!r} is not supported")
    if p("rope.dimension_count", m["head_dim"]) != m["head_dim"]:
        raise SystemExit("convert.py: partial rotary embeddings are not supported")
    return m


def build(g, m, max_pos, accuracy):
    """The ONNX model and the dense weights it holds (for the reference forward)."""
    L, kvh, hd, heads = m["layers"], m["kv_heads"], m["head_dim"], m["heads"]
    gr = Graph(accuracy)
    dense = {}
    ids = "input_ids"
    # GQA takes each sequence's last valid index and the total length from the mask.
    seqlens = gr.op("Cast", [gr.op("Sub", [gr.op("ReduceSum", ["attention_mask", gr.init("axis1", np.array([1], np.int64))], keepdims=0), gr.init("one64", np.array([1], np.int64))])], to=TensorProto.INT32)
    total = gr.op("Cast", [gr.op("Gather", [gr.op("Shape", ["attention_mask"]), gr.init("idx1", np.array(1, np.int64))], axis=0)], to=TensorProto.INT32)
    inv = 1.0 / (m["rope_theta"] ** (np.arange(0, hd, 2, dtype=np.float64) / hd))
    ang = np.arange(max_pos, dtype=np.float64)[:, None] * inv[None]
    cos = gr.init("cos_cache", np.cos(ang).astype(np.float32))
    sin = gr.init("sin_cache", np.sin(ang).astype(np.float32))

    # Embedding: 8-bit blocks with zero point 128, what GatherBlockQuantized reads by default.
    emb_t = g.tensors["token_embd.weight"]
    q, s, zp, bits, bs, off = quantized(emb_t)
    if bits != 8 or off is not None or np.any(zp != zp.flat[0]):
        q, s, zp, bits, bs, off = rtn8(as_values(q, s, zp, off))
    q = (q.astype(np.int16) + (128 - int(zp.flat[0]))).astype(np.uint8)
    dense["emb"] = as_values(q, s, np.full(s.shape, 128, np.uint8))
    x = gr.op(
        "GatherBlockQuantized",
        [gr.init("embed.qweight", q.reshape(q.shape[0], -1)), ids, gr.init("embed.scales", s.astype(np.float32))],
        domain="com.microsoft", bits=8, block_size=bs, gather_axis=0, quantize_axis=1,
    )
    norm = lambda name: gr.init(name, g.dense(name).reshape(-1))  # noqa: E731
    resid, pending = None, None
    outputs = []
    for i in range(L):
        p = f"blk.{i}."
        if resid is None:
            hN = gr.op("SimplifiedLayerNormalization", [x, norm(p + "attn_norm.weight")], axis=-1, epsilon=m["eps"])
            resid = x
        else:
            hN, _, _, resid = gr.op("SkipSimplifiedLayerNormalization", [pending, resid, norm(p + "attn_norm.weight")], n_out=4, domain="com.microsoft", epsilon=m["eps"])
        qkv = []
        for w in ("q", "k", "v"):
            y, dense[f"{i}.{w}"] = gr.matmul(hN, f"{p}attn_{w}", g.tensors[f"{p}attn_{w}.weight"])
            if f"{p}attn_{w}.bias" in g.tensors:
                y = gr.op("Add", [y, norm(f"{p}attn_{w}.bias")])
            qkv.append(y)
        pk, pv = f"past_key_values.{i}.key", f"past_key_values.{i}.value"
        ok, ov = f"present.{i}.key", f"present.{i}.value"
        attn = gr.name("attn")
        gr.nodes.append(h.make_node(
            "GroupQueryAttention", [*qkv, pk, pv, seqlens, total, cos, sin], [attn, ok, ov],
            name=gr.name("gqa"), domain="com.microsoft", num_heads=heads, kv_num_heads=kvh,
            scale=float(1.0 / np.sqrt(hd)), do_rotary=1,
            # llama.cpp permutes llama's q/k rows at conversion; that layout is rotated pairwise.
            rotary_interleaved=1 if m["arch"] == "llama" else 0,
        ))
        outputs += [ok, ov]
        o, dense[f"{i}.o"] = gr.matmul(attn, f"{p}attn_output", g.tensors[f"{p}attn_output.weight"])
        h2, _, _, resid = gr.op("SkipSimplifiedLayerNormalization", [o, resid, norm(p + "ffn_norm.weight")], n_out=4, domain="com.microsoft", epsilon=m["eps"])
        gate, dense[f"{i}.gate"] = gr.matmul(h2, f"{p}ffn_gate", g.tensors[f"{p}ffn_gate.weight"])
        up, dense[f"{i}.up"] = gr.matmul(h2, f"{p}ffn_up", g.tensors[f"{p}ffn_up.weight"])
        act = gr.op("Mul", [gr.op("Mul", [gate, gr.op("Sigmoid", [gate])]), up])
        pending, dense[f"{i}.down"] = gr.matmul(act, f"{p}ffn_down", g.tensors[f"{p}ffn_down.weight"])
    # Only the last position is scored: a long prompt's full logits would be hundreds of MB.
    last = lambda t: gr.op("Slice", [t, gr.init(gr.name("s"), np.array([-1], np.int64)), gr.init(gr.name("e"), np.array([np.iinfo(np.int64).max], np.int64)), gr.init(gr.name("a"), np.array([1], np.int64))])  # noqa: E731
    hN, _, _, _ = gr.op("SkipSimplifiedLayerNormalization", [last(pending), last(resid), norm("output_norm.weight")], n_out=4, domain="com.microsoft", epsilon=m["eps"])
    head = g.tensors.get("output.weight", emb_t)
    logits, dense["head"] = gr.matmul(hN, "lm_head", head)
    gr.nodes[-1].output[0] = "logits"

    f = TensorProto.FLOAT
    inputs = [
        h.make_tensor_value_info("input_ids", TensorProto.INT64, [1, "sequence"]),
        h.make_tensor_value_info("attention_mask", TensorProto.INT64, [1, "total_sequence"]),
    ]
    outs = [h.make_tensor_value_info("logits", f, [1, 1, "vocab"])]
    for i in range(L):
        for kind in ("key", "value"):
            inputs.append(h.make_tensor_value_info(f"past_key_values.{i}.{kind}", f, [1, kvh, "past_sequence", hd]))
            outs.append(h.make_tensor_value_info(f"present.{i}.{kind}", f, [1, kvh, "total_sequence", hd]))
    graph = h.make_graph(gr.nodes, "interaction-model", inputs, outs, gr.inits)
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 21), h.make_opsetid("com.microsoft", 1)], producer_name="gst-lalm models/llm/convert.py")
    model.ir_version = 10
    for name in ("attn_norm", "ffn_norm"):
        for i in range(L):
            dense[f"{i}.{name}"] = g.dense(f"blk.{i}.{name}.weight").reshape(-1)
    for i in range(L):
        for w in ("q", "k", "v"):
            b = f"blk.{i}.attn_{w}.bias"
            dense[f"{i}.{w}.bias"] = g.dense(b).reshape(-1) if b in g.tensors else 0.0
    dense["out_norm"] = g.dense("output_norm.weight").reshape(-1)
    return model, dense


def tokenizer_json(g):
    toks, types = g.array("tokenizer.ggml.tokens"), g.array("tokenizer.ggml.token_type")
    if g.value("tokenizer.ggml.model") != "gpt2":
        raise SystemExit(f"convert.py: tokenizer {g.value('tokenizer.ggml.model')!r} is not byte-level BPE (gpt2)")
    pre = g.value("tokenizer.ggml.pre", "default")
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}
    normalizer = None
    if pre == "smollm":
        pretok = [{"type": "Digits", "individual_digits": True}, dict(byte_level, use_regex=True)]
    elif pre == "qwen2":
        normalizer = {"type": "NFC"}
        pretok = [{"type": "Split", "pattern": {"Regex": QWEN2_SPLIT}, "behavior": "Isolated", "invert": False}, byte_level]
    elif pre in ("default", "gpt2"):
        pretok = [{"type": "Split", "pattern": {"Regex": GPT2_SPLIT}, "behavior": "Isolated", "invert": False}, byte_level]
    else:
        raise SystemExit(f"convert.py: pre-tokenizer {pre!r} is not supported (smollm, qwen2, gpt2)")
    # GGUF token types: 3 control (special), 4 user-defined.
    added = [
        {"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
         "normalized": ty == 4, "special": ty == 3}
        for i, (t, ty) in enumerate(zip(toks, types)) if ty in (3, 4)
    ]
    return {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
        "normalizer": normalizer,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": pretok},
        "post_processor": None,
        "decoder": byte_level,
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                  "vocab": {t: i for i, t in enumerate(toks)}, "merges": g.array("tokenizer.ggml.merges")},
    }


def special_ids(g):
    toks = g.array("tokenizer.ggml.tokens")
    index = {t: i for i, t in enumerate(toks)}
    need = ("<|im_start|>", "<|im_end|>")
    if not all(t in index for t in need):
        raise SystemExit("convert.py: the vocabulary has no ChatML tokens <|im_start|>/<|im_end|>; only ChatML models are supported")
    stops = sorted({index["<|im_end|>"], g.value("tokenizer.ggml.eos_token_id")} | ({index["<|endoftext|>"]} if "<|endoftext|>" in index else set()))
    return {"im_start": index["<|im_start|>"], "im_end": index["<|im_end|>"], "stop": stops}


def default_system(template):
    """The system prompt a ChatML template inserts when none is given ("" if it has none)."""
    marker = "<|im_start|>system\\n"
    at = template.find(marker)
    while at >= 0:
        rest = template[at + len(marker):]
        end = rest.find("<|im_end|>")
        if end > 0 and "{" not in rest[:end] and "'" not in rest[:end]:
            return rest[:end]
        at = template.find(marker, at + 1)
    return ""


# --- the reference forward (numpy, float64 accumulation) and the check --------------------------


def reference_logits(m, dense, ids):
    L, H, KV, hd, eps = m["layers"], m["heads"], m["kv_heads"], m["head_dim"], m["eps"]
    rms = lambda x, w: x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * w  # noqa: E731
    inv = 1.0 / (m["rope_theta"] ** (np.arange(0, hd, 2, dtype=np.float64) / hd))
    S = len(ids)
    ang = np.arange(S, dtype=np.float64)[:, None] * inv[None]
    c, s = np.cos(ang)[:, None], np.sin(ang)[:, None]

    def rope(x):
        if m["arch"] == "llama":
            o = np.empty_like(x)
            a, b = x[..., 0::2], x[..., 1::2]
            o[..., 0::2], o[..., 1::2] = a * c - b * s, b * c + a * s
            return o
        a, b = x[..., : hd // 2], x[..., hd // 2:]
        return np.concatenate([a * c - b * s, b * c + a * s], -1)

    x = dense["emb"][ids].astype(np.float64)
    mask = np.triu(np.full((S, S), -np.inf), 1)
    for i in range(L):
        hN = rms(x, dense[f"{i}.attn_norm"])
        q = rope((hN @ dense[f"{i}.q"].T + dense[f"{i}.q.bias"]).reshape(S, H, hd))
        k = rope((hN @ dense[f"{i}.k"].T + dense[f"{i}.k.bias"]).reshape(S, KV, hd))
        v = (hN @ dense[f"{i}.v"].T + dense[f"{i}.v.bias"]).reshape(S, KV, hd)
        k, v = np.repeat(k, H // KV, 1), np.repeat(v, H // KV, 1)
        a = np.einsum("qhd,khd->hqk", q, k) / np.sqrt(hd) + mask
        a = np.exp(a - a.max(-1, keepdims=True))
        a /= a.sum(-1, keepdims=True)
        x = x + np.einsum("hqk,khd->qhd", a, v).reshape(S, H * hd) @ dense[f"{i}.o"].T
        hN = rms(x, dense[f"{i}.ffn_norm"])
        gt, up = hN @ dense[f"{i}.gate"].T, hN @ dense[f"{i}.up"].T
        x = x + (gt / (1 + np.exp(-gt)) * up) @ dense[f"{i}.down"].T
    return rms(x[-1], dense["out_norm"]) @ dense["head"].T


class Runner:
    """Greedy decoding with the ONNX model and its KV cache, as the Rust side does it."""

    def __init__(self, model_bytes, m):
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.log_severity_level = 3
        self.s = ort.InferenceSession(model_bytes, so, providers=["CPUExecutionProvider"])
        self.m = m
        self.reset()

    def reset(self):
        z = np.zeros((1, self.m["kv_heads"], 0, self.m["head_dim"]), np.float32)
        self.past = {f"past_key_values.{i}.{k}": z for i in range(self.m["layers"]) for k in ("key", "value")}
        self.n = 0

    def feed(self, ids):
        self.n += len(ids)
        out = self.s.run(None, {"input_ids": np.array([ids], np.int64), "attention_mask": np.ones((1, self.n), np.int64), **self.past})
        names = [o.name for o in self.s.get_outputs()]
        for name, value in zip(names[1:], out[1:]):
            self.past[name.replace("present", "past_key_values")] = value
        return out[0][0, -1]


def chat_ids(tok, sp, system, user):
    ids = []
    for role, text in (("system", system), ("user", user)):
        if role == "system" and not system:
            continue
        ids += [sp["im_start"], *tok.encode(f"{role}\n{text}", add_special_tokens=False).ids, sp["im_end"], *tok.encode("\n", add_special_tokens=False).ids]
    return ids + [sp["im_start"], *tok.encode("assistant\n", add_special_tokens=False).ids]


def with_accuracy(model, level):
    """A copy of the model whose MatMulNBits nodes run at `level`."""
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    for node in copy.graph.node:
        if node.op_type == "MatMulNBits":
            for attr in node.attribute:
                if attr.name == "accuracy_level":
                    attr.i = level
    return copy.SerializeToString()


def greedy(step, first_ids, stop, max_new):
    """Greedy tokens from `step(ids) -> logits`, fed its own choices (stop token included)."""
    out, logits = [], step(first_ids)
    for _ in range(max_new):
        t = int(np.argmax(logits))
        out.append(t)
        if t in stop:
            break
        logits = step([t])
    return out


def check(model, tok_path, m, dense, sp, system, n_prompts, max_new, level):
    """Runs both the graph with exact arithmetic (accuracy_level 0) and the model as shipped
    against the numpy forward on the GGUF's dequantized weights, token by token on the
    reference's own greedy choices.
    - exact: logits within 1e-3 of the largest, the same argmax (but for a near-tie), so the
      same greedy text;
    - as shipped (int8 activations on 8-bit weights, as llama.cpp computes them): the same
      argmax unless the reference's top two are within 2 % of the largest logit. Its own
      free-running greedy text is compared and reported too."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tok_path))
    exact = Runner(with_accuracy(model, 0), m)
    shipped = Runner(model.SerializeToString(), m)
    worst, worst_shipped, same, near_ties = 0.0, 0.0, 0, 0
    records = []
    prompts = CHECK_PROMPTS[:n_prompts]
    for text in prompts:
        ids = chat_ids(tok, sp, system, text)
        exact.reset()
        shipped.reset()
        logits, logits_s = exact.feed(ids), shipped.feed(ids)
        want, seq = [], list(ids)
        for step in range(max_new):
            ref = reference_logits(m, dense, np.array(seq))
            top = max(float(np.abs(ref).max()), 1e-6)
            worst = max(worst, float(np.abs(logits - ref).max()) / top)
            worst_shipped = max(worst_shipped, float(np.abs(logits_s - ref).max()) / top)
            b = int(np.argmax(ref))
            for what, lg, tol in (("exact graph", logits, 1e-3), ("shipped model", logits_s, 2e-2)):
                a = int(np.argmax(lg))
                gap = float(ref[b] - ref[a])
                if a != b and gap > tol * top:
                    raise SystemExit(f"self-check FAILED on {text!r}: step {step}: {what} token {a}, reference {b} (logit gap {gap:.3g})")
                near_ties += a != b
            want.append(b)
            if b in sp["stop"]:
                break
            seq.append(b)
            logits, logits_s = exact.feed([b]), shipped.feed([b])
        shipped.reset()
        got = greedy(shipped.feed, ids, sp["stop"], max_new)
        same += got == want
        records.append({"prompt": text, "system": system, "ids": ids, "reference": want, "shipped": got})
        print(f"  {text!r} -> {tok.decode(want)!r}" + ("" if got == want else f" | shipped, free-running: {tok.decode(got)!r}"), file=sys.stderr)
    print(f"self-check passed: {len(prompts)} prompts; exact graph: greedy text identical, worst logit error "
          f"{worst:.2e} of the largest logit; as shipped (accuracy_level {level}): worst logit error {worst_shipped:.2e}, "
          f"{near_ties} near-tie step(s) chosen differently, free-running greedy text identical on {same} of {len(prompts)}",
          file=sys.stderr)
    if worst > 1e-3:
        raise SystemExit(f"self-check FAILED: the exact graph's logits differ by {worst:.2e} relative")
    return records


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("gguf")
    ap.add_argument("out")
    ap.add_argument("--name", default=None)
    ap.add_argument("--max-positions", type=int, default=4096)
    ap.add_argument("--check", type=int, default=len(CHECK_PROMPTS), help="prompts to check greedily (0: no self-check)")
    ap.add_argument("--check-tokens", type=int, default=12)
    ap.add_argument("--accuracy-level", type=int, default=4, choices=[0, 4], help="MatMulNBits accuracy_level of the shipped model's 8-bit weights (4: int8 activations, fast; 0: exact, slow)")
    a = ap.parse_args()
    t0 = time.time()
    g = Gguf(a.gguf)
    m = meta(g)
    max_pos = min(a.max_positions, m["context"])
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    model, dense = build(g, m, max_pos, a.accuracy_level)
    onnx.save(model, str(out / "model.onnx"))
    (out / "tokenizer.json").write_text(json.dumps(tokenizer_json(g), ensure_ascii=False))
    template = g.value("tokenizer.chat_template", "")
    (out / "chat_template.jinja").write_text(template)
    sp = special_ids(g)
    system = default_system(template)
    name = a.name or Path(a.gguf).stem.lower()
    sha = hashlib.sha256(Path(a.gguf).read_bytes()).hexdigest()
    toml = f"""# Decoder language model for the interaction-model family, converted by models/llm/convert.py
# from {Path(a.gguf).name} (sha256 {sha}).
# Contract: input_ids i64 [1, S], attention_mask i64 [1, P+S] (all ones),
#   past_key_values.{{i}}.key|value f32 [1, kv_heads, P, head_dim] (P = 0 on the first run)
#   -> logits f32 [1, 1, vocab] for the last position, present.{{i}}.key|value [1, kv_heads, P+S, head_dim].
# The prompt is ChatML: <|im_start|>role\\ntext<|im_end|>\\n per turn, then <|im_start|>assistant\\n;
# the special tokens are spliced in as ids (text is encoded with specials treated as plain text).
family = "interaction-model"
name = "{name}"
description = "{g.value('general.name', name)} ({m['arch']}), from GGUF, MatMulNBits weights"
license = "{g.value('general.license', 'unknown')}"

[files]
model = "model.onnx"
tokenizer = "tokenizer.json"
chat_template = "chat_template.jinja"

[params]
arch = "{m['arch']}"
layers = {m['layers']}
kv_heads = {m['kv_heads']}
head_dim = {m['head_dim']}
context = {max_pos}
template = "chatml"
im_start = {sp['im_start']}
im_end = {sp['im_end']}
stop = {json.dumps(sp['stop'])}
system = {json.dumps(system)}
"""
    (out / "model.toml").write_text(toml)
    print(f"wrote {out} ({m['arch']}, {m['layers']} layers) in {time.time() - t0:.1f} s", file=sys.stderr)
    if a.check:
        records = check(model, out / "tokenizer.json", m, dense, sp, system, a.check, a.check_tokens, a.accuracy_level)
        # What the runtime must reproduce: the prompt's ids and the greedy reply (stop included).
        (out / "selfcheck.json").write_text(json.dumps(records, indent=1))


if __name__ == "__main__":
    main()
