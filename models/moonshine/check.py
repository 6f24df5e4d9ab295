#!/usr/bin/env python3
"""Transcribe the first utterances of a test recording with an installed moonshine package
(model.toml + encoder/decoder/tokenizer) and compare with the truth; the greedy loop, the
cache handling and the tokenizer decoding follow NOTES.md. Needs numpy and onnxruntime only
(the build venv: <repo>/.venv-moonshine/bin/python check.py --pkg DIR).

  check.py --pkg ~/.local/share/lalm/models/moonshine-base [--wav W --json J] [-n 3] [--max-wer 0.15]

The JSON is a list of {"start", "end", "text"} (seconds), as asterisk-live.json.
Exit status 1 when the word error rate over the utterances is above --max-wer. On the first 3
utterances of asterisk-live.wav base makes 4 errors in 36 words (11.1 %): it hears "Login
incorrect" as "Log in in correct", as the original .ort in the moonshine-cpp wheel does; tiny
makes 2 ("Log in incorrect").
"""
import argparse
import json
import math
import os
import re
import time
import tomllib
import wave

import numpy as np
import onnxruntime as ort

SPEECH = os.path.expanduser(os.path.join(os.environ.get("LALM_CACHE_DIR", "~/.cache/lalm"), "speech"))


def load_tokenizer(path):
    with open(path, encoding="utf-8") as f:
        vocab = json.load(f)["model"]["vocab"]
    return {i: p for p, i in vocab.items()}


def decode(pieces, ids):
    out = bytearray()
    for i in ids:
        if i < 3 or i >= 32000:  # <unk> <s> </s> and <<ST_n>>
            continue
        p = pieces[i]
        m = re.fullmatch(r"<0x([0-9A-Fa-f]{2})>", p)
        out += bytes([int(m.group(1), 16)]) if m else p.replace("\u2581", " ").encode("utf-8")
    text = out.decode("utf-8", errors="replace")
    return text[1:] if text.startswith(" ") else text


def words(s):
    return re.sub(r"[^a-z0-9' ]+", " ", s.lower().replace("-", " ")).split()


def edits(a, b):
    d = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        prev, d[0] = d[0], i
        for j, y in enumerate(b, 1):
            prev, d[j] = d[j], min(d[j] + 1, d[j - 1] + 1, prev + (x != y))
    return d[len(b)]


class Moonshine:
    def __init__(self, pkg):
        with open(os.path.join(pkg, "model.toml"), "rb") as f:
            self.m = tomllib.load(f)
        files, self.p = self.m["files"], self.m["params"]
        so = ort.SessionOptions()
        so.intra_op_num_threads = 2
        so.inter_op_num_threads = 1
        self.enc = ort.InferenceSession(os.path.join(pkg, files["encoder"]), so, providers=["CPUExecutionProvider"])
        self.dec = ort.InferenceSession(os.path.join(pkg, files["decoder"]), so, providers=["CPUExecutionProvider"])
        self.pieces = load_tokenizer(os.path.join(pkg, files["tokenizer"]))
        self.enc_in = [i.name for i in self.enc.get_inputs()]
        self.dec_in = [i.name for i in self.dec.get_inputs()]
        self.dec_out = [o.name for o in self.dec.get_outputs()]
        mask = "attention_mask" in self.enc_in
        assert mask == ("encoder_attention_mask" in self.dec_in) == self.p["attention_mask"], \
            "model.toml attention_mask does not match the sessions' inputs"

    def transcribe(self, audio):
        p, n = self.p, len(audio)
        x = audio.astype(np.float32)[None, :]
        feeds = {"input_values": x}
        mask = np.ones((1, n), dtype=np.int64)
        if "attention_mask" in self.enc_in:
            feeds["attention_mask"] = mask
        hidden = self.enc.run(None, feeds)[0]
        L, H, D = p["layers"], p["heads"], p["head_dim"]
        past = {f"past_key_values.{i}.{a}.{kv}": np.zeros((1, H, 0, D), np.float32)
                for i in range(L) for a in ("decoder", "encoder") for kv in ("key", "value")}
        tokens = [p["bos"]]
        for step in range(math.ceil(n / self.m["sample_rate"] * p["tokens_per_second"])):
            feeds = {"input_ids": np.array([[tokens[-1]]], np.int64), "encoder_hidden_states": hidden,
                     "use_cache_branch": np.array([step > 0]), **past}
            if "encoder_attention_mask" in self.dec_in:
                feeds["encoder_attention_mask"] = mask
            outs = dict(zip(self.dec_out, self.dec.run(None, feeds)))
            t = int(np.argmax(outs["logits"][0, -1]))
            tokens.append(t)
            if t == p["eos"]:
                break
            for k, v in outs.items():
                if k.startswith("present.") and (step == 0 or ".decoder." in k):
                    past["past_key_values." + k[len("present."):]] = v
        return decode(self.pieces, tokens)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pkg", required=True)
    ap.add_argument("--wav", default=os.path.join(SPEECH, "asterisk-live.wav"))
    ap.add_argument("--json", default=None, help="default: the WAV's name with .json")
    ap.add_argument("-n", type=int, default=3)
    ap.add_argument("--max-wer", type=float, default=0.15)
    a = ap.parse_args()
    model = Moonshine(a.pkg)
    print(f"{model.m['name']}: encoder {model.enc_in} -> {[o.name for o in model.enc.get_outputs()]}")
    with wave.open(a.wav) as w:
        assert w.getnchannels() == 1 and w.getsampwidth() == 2 and w.getframerate() == model.m["sample_rate"]
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float32) / 32768.0
    with open(a.json or os.path.splitext(a.wav)[0] + ".json") as f:
        segs = json.load(f)[: a.n]
    errs = total = 0
    for s in segs:
        audio = pcm[int(round(s["start"] * 16000)): int(round(s["end"] * 16000))]
        t0 = time.perf_counter()
        hyp = model.transcribe(audio)
        ms = (time.perf_counter() - t0) * 1000
        e, r = edits(words(s["text"]), words(hyp)), len(words(s["text"]))
        errs, total = errs + e, total + r
        print(f"  [{s['start']:.2f}-{s['end']:.2f} s, {ms:.0f} ms, {e}/{r} word errors]\n    ref: {s['text']}\n    hyp: {hyp}")
    wer = errs / max(total, 1)
    print(f"WER {wer:.1%} ({errs}/{total} words over {len(segs)} utterances)")
    raise SystemExit(0 if wer <= a.max_wer else 1)


if __name__ == "__main__":
    main()
