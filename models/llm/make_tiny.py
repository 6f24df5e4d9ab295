"""A tiny random-weight GGUF for the converter's tests: make_tiny.py OUT.gguf [--arch llama|qwen2]

Two layers, hidden 64, a byte-level BPE vocabulary with ChatML tokens, and every GGUF block type
the converter re-encodes (Q4_0, Q4_1, Q5_0, Q8_0 from gguf's quantizer; Q4_K and Q6_K as random
blocks with sane scales, since gguf cannot quantize to them). Deterministic for a given seed.
"""

import argparse

import numpy as np
from gguf import GGUFWriter, GGMLQuantizationType as Q
from gguf.quants import quantize

HIDDEN, FFN, HEADS, KV_HEADS, LAYERS = 64, 256, 4, 2, 2
K_BLOCKS = {Q.Q4_K: (144, (0, 2)), Q.Q6_K: (210, (208,))}  # bytes per 256, where the f16 scales sit


def byte_chars():
    """GPT-2's byte-to-unicode table: what byte-level BPE vocabularies are written in."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    chars, n = {}, 0
    for b in range(256):
        if b in keep:
            chars[b] = chr(b)
        else:
            chars[b] = chr(256 + n)
            n += 1
    return [chars[b] for b in range(256)]


def vocab():
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tokens = specials + byte_chars()
    merges = []
    for a, b in [("Ġ", "t"), ("h", "e"), ("Ġt", "he"), ("e", "r"), ("Ġ", "a"), ("i", "n"), ("Ġ", "s"), ("o", "n")]:
        merges.append(f"{a} {b}")
        tokens.append(a + b)
    types = [3] * len(specials) + [1] * (len(tokens) - len(specials))
    return tokens, types, merges


def weight(rng, n, k, typ):
    w = (rng.standard_normal((n, k)) * 0.08).astype(np.float32)
    if typ == Q.F32:
        return w
    if typ in K_BLOCKS:
        size, scales = K_BLOCKS[typ]
        raw = rng.integers(0, 256, (n, k // 256, size), dtype=np.uint8)
        for at in scales:
            d = rng.uniform(0.002, 0.01, raw.shape[:2]).astype(np.float16)
            raw[..., at:at + 2] = d.view(np.uint8).reshape(*raw.shape[:2], 2)
        return raw.reshape(n, -1)
    return quantize(w, typ)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--arch", default="llama", choices=["llama", "qwen2"])
    ap.add_argument("--seed", type=int, default=7)
    a = ap.parse_args()
    rng = np.random.default_rng(a.seed)
    tokens, types, merges = vocab()
    w = GGUFWriter(a.out, a.arch)
    w.add_name(f"tiny-random-{a.arch}")
    w.add_block_count(LAYERS)
    w.add_context_length(2048)
    w.add_embedding_length(HIDDEN)
    w.add_feed_forward_length(FFN)
    w.add_head_count(HEADS)
    w.add_head_count_kv(KV_HEADS)
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("gpt2")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_chat_template(
        "{% for m in messages %}{% if loop.first and m['role'] != 'system' %}"
        "{{ '<|im_start|>system\\nYou are a tiny test model.<|im_end|>\\n' }}{% endif %}"
        "{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
    )
    hd = HIDDEN // HEADS
    types_cycle = [Q.Q8_0, Q.Q4_1, Q.Q5_0, Q.Q4_0]
    w_add = lambda name, arr, typ: w.add_tensor(name, arr, raw_dtype=None if typ == Q.F32 else typ)  # noqa: E731
    w_add("token_embd.weight", weight(rng, len(tokens), HIDDEN, Q.Q8_0), Q.Q8_0)
    for i in range(LAYERS):
        p = f"blk.{i}."
        norm = lambda: (1.0 + 0.1 * rng.standard_normal(HIDDEN)).astype(np.float32)  # noqa: E731
        w_add(p + "attn_norm.weight", norm(), Q.F32)
        w_add(p + "ffn_norm.weight", norm(), Q.F32)
        for j, (name, n) in enumerate([("attn_q", HEADS * hd), ("attn_k", KV_HEADS * hd), ("attn_v", KV_HEADS * hd)]):
            typ = types_cycle[(i + j) % len(types_cycle)]
            w_add(p + name + ".weight", weight(rng, n, HIDDEN, typ), typ)
            if a.arch == "qwen2":
                w_add(p + name + ".bias", (0.05 * rng.standard_normal(n)).astype(np.float32), Q.F32)
        w_add(p + "attn_output.weight", weight(rng, HIDDEN, HEADS * hd, Q.Q5_0), Q.Q5_0)
        w_add(p + "ffn_gate.weight", weight(rng, FFN, HIDDEN, Q.Q4_1), Q.Q4_1)
        w_add(p + "ffn_up.weight", weight(rng, FFN, HIDDEN, Q.Q8_0), Q.Q8_0)
        down = Q.Q4_K if i % 2 == 0 else Q.Q6_K
        w_add(p + "ffn_down.weight", weight(rng, HIDDEN, FFN, down), down)
    w_add("output_norm.weight", (1.0 + 0.1 * rng.standard_normal(HIDDEN)).astype(np.float32), Q.F32)
    if a.arch == "qwen2":
        w_add("output.weight", weight(rng, len(tokens), HIDDEN, Q.Q8_0), Q.Q8_0)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


if __name__ == "__main__":
    main()
