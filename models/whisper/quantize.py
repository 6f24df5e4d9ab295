#!/usr/bin/env python3
"""Make the int8 variant of a whisper package: onnxruntime.quantization.quantize_dynamic
(weight type QInt8) on encoder.onnx and decoder.onnx, kept only if it loads and gives the same
greedy text as the fp32 package on the proof sentences (espeak-ng + sox needed for that).

    quantize.py --src PKG --out PKG_INT8 [--name whisper-base-int8] [--allow-differ N]

The fp32 decoder computes logits with Gemm(transB) on the shared token embedding; dynamic
quantization does not cover Gemm, so before quantizing that node becomes a MatMul on a
transposed copy of the embedding (both copies are then stored as int8).
Exit 0 with the package written, 1 on failure, 3 when the check cannot run (nothing written).
"""

import argparse
import os
import re
import shutil
import sys
import tempfile

import numpy as np
import onnx
from onnx import helper, numpy_helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import whisper_onnx as wo  # noqa: E402


def gemm_to_matmul(model):
    g = model.graph
    inits = {i.name: i for i in g.initializer}
    for idx, node in enumerate(g.node):
        if node.op_type != "Gemm":
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if attrs.get("transB") != 1 or len(node.input) != 2 or node.input[1] not in inits:
            continue
        w = numpy_helper.to_array(inits[node.input[1]])
        name = node.input[1] + "_t"
        g.initializer.append(numpy_helper.from_array(np.ascontiguousarray(w.T), name))
        new = helper.make_node("MatMul", [node.input[0], name], list(node.output), name=node.name + "_matmul")
        g.node.remove(node)
        g.node.insert(idx, new)
    return model


def quantize(src, out, name, per_channel=True):
    from onnxruntime.quantization import QuantType, quantize_dynamic
    tmp = out.rstrip("/") + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    with tempfile.TemporaryDirectory() as td:
        # (quantize_dynamic rewrites a Gemm's weight in place, which breaks the Gather sharing it,
        # so the logits Gemm is turned into a MatMul on its own transposed copy first)
        pre, ops = os.path.join(td, "decoder_pre.onnx"), ["MatMul", "Gather"]
        onnx.save(gemm_to_matmul(onnx.load(os.path.join(src, "decoder.onnx"))), pre)
        quantize_dynamic(pre, os.path.join(tmp, "decoder.onnx"), weight_type=QuantType.QInt8,
                         op_types_to_quantize=ops, per_channel=per_channel)
    quantize_dynamic(os.path.join(src, "encoder.onnx"), os.path.join(tmp, "encoder.onnx"),
                     weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"], per_channel=per_channel)
    shutil.copyfile(os.path.join(src, "tokenizer.json"), os.path.join(tmp, "tokenizer.json"))
    toml = open(os.path.join(src, "model.toml"), encoding="utf-8").read()
    toml = re.sub(r'(?m)^name = ".*"$', f'name = "{name}"', toml)
    toml = re.sub(r'(?m)^description = "(.*)"$',
                  r'description = "\1 (int8: onnxruntime quantize_dynamic, QInt8 weights)"', toml)
    toml = "# int8 = quantize_dynamic QInt8 (MatMul, Gather) of the fp32 package\n" + toml
    with open(os.path.join(tmp, "model.toml"), "w", encoding="utf-8") as fh:
        fh.write(toml)
    return tmp


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--src", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--name", default="whisper-base-int8")
    ap.add_argument("--allow-differ", type=int, default=0, help="sentences allowed to differ (default 0)")
    ap.add_argument("--per-tensor", action="store_true", help="one scale per tensor (default: per channel)")
    a = ap.parse_args()
    if not (shutil.which("espeak-ng") and shutil.which("sox")):
        print("quantize: espeak-ng and sox are needed to check the int8 model; int8 package not written")
        sys.exit(3)
    tmp = quantize(a.src, a.out, a.name, per_channel=not a.per_tensor)
    ref = wo.WhisperOnnx(a.src)
    q = wo.WhisperOnnx(tmp)  # must load
    differ = 0
    with tempfile.TemporaryDirectory() as td:
        for i, s in enumerate(wo.SENTENCES):
            audio = wo.read_wav(wo.speak(s, os.path.join(td, f"s{i}.wav")))
            t_ref, _ = ref.greedy(audio)
            t_q, _ = q.greedy(audio)
            same = t_ref == t_q
            differ += not same
            print(f"  int8 check {i + 1}/{len(wo.SENTENCES)}: {'same' if same else 'DIFFERS'}: {t_q!r}"
                  + ("" if same else f" (fp32: {t_ref!r})"), flush=True)
    if differ > a.allow_differ:
        shutil.rmtree(tmp, ignore_errors=True)
        print(f"quantize: int8 differs from fp32 on {differ} sentences; int8 package not written")
        sys.exit(1)
    shutil.rmtree(a.out, ignore_errors=True)
    os.replace(tmp, a.out)
    print(f"wrote {a.out} (same greedy text as fp32 on {len(wo.SENTENCES) - differ}/{len(wo.SENTENCES)} sentences)")


if __name__ == "__main__":
    main()
