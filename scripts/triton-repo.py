#!/usr/bin/env python3
"""Writes a Triton Inference Server model repository from installed gst-lalm model packages.

    triton-repo.py OUT [--backend onnxruntime|python] [--gpu] [--max-batch N] [--instances N]
                   PACKAGE...

Each package (a name found under the model directories, or a folder holding model.toml)
gives one Triton model per ONNX file named in its [files] table, called
"<package>" (one file) or "<package>.<key>" (several). Inputs and outputs come from the
ONNX graph itself.

--backend onnxruntime (default) is the production layout: the ONNX file is copied as
version 1's model.onnx, and config.pbtxt asks for the ONNX Runtime backend, with dynamic
batching when the model's first dimension is free (--max-batch, default 64: lalm-perceive
sends up to max-batch windows, 32 by default, in one request) and, with --gpu, GPU
instances and TensorRT acceleration (fp16). --backend python writes a model.py that runs
the same ONNX file through onnxruntime, with the same dynamic batching (requests gathered
by Triton run as one onnxruntime call): what the tests use with the tritonserver of the
nvidia-pytriton wheel, which carries only the Python backend.

A Moonshine package also gets the model "<package>": its greedy decode loop as a Python
(BLS) model that calls "<package>.encoder" and "<package>.decoder" step by step, audio in
and token ids out, so the decoder's caches never leave the server (whatever backend those
two run on).

Reads each graph's inputs and outputs with onnxruntime; the python backend needs numpy and
onnxruntime in the Python the server's stub runs (scripts/triton-server.sh puts them there).
"""

import argparse
import os
import shutil
import sys
import tomllib

# onnxruntime's type names to Triton's.
ORT_TO_TRITON = {
    "tensor(float)": "TYPE_FP32",
    "tensor(float16)": "TYPE_FP16",
    "tensor(double)": "TYPE_FP64",
    "tensor(uint8)": "TYPE_UINT8",
    "tensor(int8)": "TYPE_INT8",
    "tensor(int16)": "TYPE_INT16",
    "tensor(int32)": "TYPE_INT32",
    "tensor(int64)": "TYPE_INT64",
    "tensor(bool)": "TYPE_BOOL",
}

MODEL_PY = '''"""Runs {onnx} through onnxruntime inside Triton's Python backend (written by
scripts/triton-repo.py)."""

import os
import sys

# The backend's stub starts its interpreter without reading PYTHONPATH; the server's
# environment still has it, and numpy and onnxruntime live there.
sys.path[:0] = [p for p in os.environ.get("PYTHONPATH", "").split(":") if p]

import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402
import triton_python_backend_utils as pb_utils  # noqa: E402

ONNX = {onnx_path!r}
INPUTS = {inputs!r}
SCALARS = {scalars!r}
OUTPUTS = {outputs!r}
BATCHED = {batched!r}


class TritonPythonModel:
    def initialize(self, args):
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        self.session = ort.InferenceSession(ONNX, opts, providers=["CPUExecutionProvider"])

    def execute(self, requests):
        feeds, responses = [], [None] * len(requests)
        for i, request in enumerate(requests):
            feed = {{}}
            for name in INPUTS:
                tensor = pb_utils.get_input_tensor_by_name(request, name)
                if tensor is None:
                    responses[i] = pb_utils.InferenceResponse(
                        error=pb_utils.TritonError(f"input {{name}} is missing"))
                    break
                value = tensor.as_numpy()
                feed[name] = value.reshape(()) if name in SCALARS else value
            feeds.append(feed if responses[i] is None else None)
        # Requests the dynamic batcher gathered run as one call when their shapes allow it:
        # that is where serving many clients from one model pays.
        live = [i for i, f in enumerate(feeds) if f is not None]
        if BATCHED and len(live) > 1 and all(
            feeds[i][n].shape[1:] == feeds[live[0]][n].shape[1:] for i in live for n in INPUTS
        ):
            sizes = [len(feeds[i][INPUTS[0]]) for i in live]
            joined = {{n: np.concatenate([feeds[i][n] for i in live]) for n in INPUTS}}
            groups = [(live, joined, sizes)]
        else:
            groups = [([i], feeds[i], None) for i in live]
        for members, feed, sizes in groups:
            try:
                values = self.session.run(OUTPUTS, feed)
            except Exception as e:  # shape or type mismatches reach the client
                for i in members:
                    responses[i] = pb_utils.InferenceResponse(error=pb_utils.TritonError(str(e)))
                continue
            if sizes is None:
                parts = [values]
            else:
                cuts = np.cumsum(sizes)[:-1]
                split = [np.split(v, cuts) for v in values]
                parts = [[s[k] for s in split] for k in range(len(members))]
            for i, vals in zip(members, parts):
                responses[i] = pb_utils.InferenceResponse(output_tensors=[
                    pb_utils.Tensor(n, np.ascontiguousarray(v)) for n, v in zip(OUTPUTS, vals)
                ])
        return responses
'''

DECODE_PY = '''"""The greedy decode loop of {package} on the server (written by scripts/triton-repo.py): audio
in, token ids out. A BLS model: each step calls the {encoder!r} and {decoder!r} models of this
repository, so the decoder's caches stay on the server. Mirrors soundflow's MoonshineModel.
"""

import math
import os
import sys

sys.path[:0] = [p for p in os.environ.get("PYTHONPATH", "").split(":") if p]

import numpy as np  # noqa: E402
import triton_python_backend_utils as pb_utils  # noqa: E402

ENCODER, ENCODER_OUT, DECODER = {encoder!r}, {encoder_out!r}, {decoder!r}
LAYERS, HEADS, HEAD_DIM = {layers}, {heads}, {head_dim}
BOS, EOS, TOKENS_PER_SECOND = {bos}, {eos}, {tps}
MASKS = {masks!r}


def call(model, feed, outputs):
    request = pb_utils.InferenceRequest(
        model_name=model,
        requested_output_names=outputs,
        inputs=[pb_utils.Tensor(n, np.ascontiguousarray(v)) for n, v in feed.items()],
    )
    response = request.exec()
    if response.has_error():
        raise pb_utils.TritonModelException(f"{{model}}: {{response.error().message()}}")
    return [pb_utils.get_output_tensor_by_name(response, n).as_numpy() for n in outputs]


def transcribe(audio):
    n = audio.shape[1]
    ones = np.ones((1, n), np.int64)
    feed = {{"input_values": audio}}
    if MASKS:
        feed["attention_mask"] = ones
    (hidden,) = call(ENCODER, feed, [ENCODER_OUT])
    max_tokens = max(1, math.ceil(n / 16000.0 * TOKENS_PER_SECOND))
    zeros = np.zeros((1, HEADS, 1, HEAD_DIM), np.float32)
    self_kv = [(zeros, zeros)] * LAYERS
    cross_kv = [(zeros, zeros)] * LAYERS
    tokens, nxt = [], BOS
    for step in range(max_tokens):
        first = step == 0
        feed = {{}}
        if MASKS:
            feed["encoder_attention_mask"] = ones
        feed["input_ids"] = np.array([[nxt]], np.int64)
        feed["encoder_hidden_states"] = hidden
        for i in range(LAYERS):
            feed[f"past_key_values.{{i}}.decoder.key"] = self_kv[i][0]
            feed[f"past_key_values.{{i}}.decoder.value"] = self_kv[i][1]
            feed[f"past_key_values.{{i}}.encoder.key"] = cross_kv[i][0]
            feed[f"past_key_values.{{i}}.encoder.value"] = cross_kv[i][1]
        feed["use_cache_branch"] = np.array([not first], bool)
        names = ["logits"]
        for i in range(LAYERS):
            names += [f"present.{{i}}.decoder.key", f"present.{{i}}.decoder.value"]
            if first:
                # Later steps return empty placeholders here: step 0's cache is kept.
                names += [f"present.{{i}}.encoder.key", f"present.{{i}}.encoder.value"]
        out = dict(zip(names, call(DECODER, feed, names)))
        tok = int(np.argmax(out["logits"].reshape(-1)))
        for i in range(LAYERS):
            self_kv[i] = (out[f"present.{{i}}.decoder.key"], out[f"present.{{i}}.decoder.value"])
            if first:
                cross_kv[i] = (out[f"present.{{i}}.encoder.key"], out[f"present.{{i}}.encoder.value"])
        if tok == EOS:
            break
        tokens.append(tok)
        nxt = tok
    return tokens


class TritonPythonModel:
    def execute(self, requests):
        responses = []
        for request in requests:
            try:
                audio = pb_utils.get_input_tensor_by_name(request, "audio").as_numpy()
                tokens = np.array(transcribe(audio.astype(np.float32)), np.int64).reshape(1, -1)
                responses.append(pb_utils.InferenceResponse(
                    output_tensors=[pb_utils.Tensor("tokens", tokens)]))
            except Exception as e:  # a failed step reaches the client with its reason
                responses.append(pb_utils.InferenceResponse(error=pb_utils.TritonError(str(e))))
        return responses
'''


def write_decode_loop(out, base, pkg, manifest, names, args):
    """For a Moonshine package: the model "<package>" that runs the whole greedy decode on
    the server (audio in, token ids out), so lalm-respond sends each utterance once."""
    import onnxruntime as ort

    params = manifest.get("params", {})
    encoder_path = os.path.join(pkg, manifest["files"]["encoder"])
    enc = ort.InferenceSession(encoder_path, providers=["CPUExecutionProvider"])
    masks = any(i.name == "attention_mask" for i in enc.get_inputs())
    mdir = os.path.join(out, base)
    os.makedirs(os.path.join(mdir, "1"), exist_ok=True)
    with open(os.path.join(mdir, "1", "model.py"), "w") as f:
        f.write(DECODE_PY.format(
            package=base, encoder=names["encoder"], encoder_out=enc.get_outputs()[0].name,
            decoder=names["decoder"], layers=int(params["layers"]), heads=int(params["heads"]),
            head_dim=int(params["head_dim"]), bos=int(params["bos"]), eos=int(params["eos"]),
            tps=float(params["tokens_per_second"]), masks=masks,
        ))
    cfg = [
        f'name: "{base}"',
        'backend: "python"',
        "max_batch_size: 0",
        'input [\n  {\n    name: "audio"\n    data_type: TYPE_FP32\n    dims: [ 1, -1 ]\n  }\n]',
        'output [\n  {\n    name: "tokens"\n    data_type: TYPE_INT64\n    dims: [ 1, -1 ]\n  }\n]',
        # The loop itself waits on the encoder and decoder models; they hold the device.
        f"instance_group [ {{ count: {args.instances} kind: KIND_CPU }} ]",
    ]
    with open(os.path.join(mdir, "config.pbtxt"), "w") as f:
        f.write("\n".join(cfg) + "\n")
    return base


def model_dirs():
    dirs = []
    if os.environ.get("LALM_MODEL_PATH"):
        dirs += os.environ["LALM_MODEL_PATH"].split(":")
    data = os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share")
    dirs.append(os.path.join(data, "lalm", "models"))
    dirs += ["/usr/local/share/lalm/models", "/usr/share/lalm/models"]
    return dirs


def find_package(spec):
    if os.path.isfile(os.path.join(spec, "model.toml")):
        return spec
    for d in model_dirs():
        p = os.path.join(d, spec)
        if os.path.isfile(os.path.join(p, "model.toml")):
            return p
    sys.exit(f"triton-repo: no model package {spec!r} (looked in {', '.join(model_dirs())})")


def dims(arg):
    """The shape as Triton writes it: -1 for a free (named or unknown) dimension."""
    return [d if isinstance(d, int) and d >= 0 else -1 for d in arg.shape]


def io_block(kind, values, batching):
    lines = [f"{kind} ["]
    for i, v in enumerate(values):
        dtype = ORT_TO_TRITON.get(v.type)
        if dtype is None:
            sys.exit(f"triton-repo: {v.name}: {v.type} has no Triton type")
        shape = dims(v)
        if batching:
            shape = shape[1:]
        body = f'    name: "{v.name}"\n    data_type: {dtype}\n'
        if shape:
            body += f"    dims: [ {', '.join(map(str, shape))} ]\n"
        elif batching:
            # A scalar: Triton wants a dimension, the model gets none.
            body += "    dims: [ 1 ]\n    reshape: { shape: [ ] }\n"
        else:
            # Triton has no scalars in a model without batching: one element, which the
            # Python backend's model.py turns back into a scalar.
            body += "    dims: [ 1 ]\n"
        lines.append("  {\n" + body + "  }" + ("," if i + 1 < len(values) else ""))
    lines.append("]")
    return "\n".join(lines)


def write_model(out, name, onnx_path, args, combine=True):
    import onnxruntime as ort

    session = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    inputs, outputs = session.get_inputs(), session.get_outputs()
    # Dynamic batching only where every input and output leads with a free dimension: the
    # stateful models (VAD state, decoder caches) lead with something else and are not batched.
    free_first = all(dims(v)[:1] == [-1] for v in inputs + outputs)
    batching = free_first and args.max_batch > 0
    mdir = os.path.join(out, name)
    vdir = os.path.join(mdir, "1")
    os.makedirs(vdir, exist_ok=True)
    cfg = [f'name: "{name}"']
    if args.backend == "onnxruntime":
        cfg.append('backend: "onnxruntime"')
        shutil.copyfile(onnx_path, os.path.join(vdir, "model.onnx"))
    else:
        cfg.append('backend: "python"')
        with open(os.path.join(vdir, "model.py"), "w") as f:
            f.write(MODEL_PY.format(
                onnx=os.path.basename(onnx_path),
                onnx_path=os.path.abspath(onnx_path),
                inputs=[i.name for i in inputs],
                scalars=[i.name for i in inputs if not dims(i)],
                outputs=[o.name for o in outputs],
                batched=batching,
            ))
    cfg.append(f"max_batch_size: {args.max_batch if batching else 0}")
    cfg.append(io_block("input", inputs, batching))
    cfg.append(io_block("output", outputs, batching))
    # A package whose windows must run alone (params.max_batch = 1: dynamic int8 quantization
    # scales over the whole call) keeps its batch dimension but gets no dynamic batcher, so
    # each request runs as its client sent it.
    if batching and combine:
        cfg.append("dynamic_batching { max_queue_delay_microseconds: 2000 }")
    kind = "KIND_GPU" if args.gpu else "KIND_CPU"
    cfg.append(f"instance_group [ {{ count: {args.instances} kind: {kind} }} ]")
    if args.gpu and args.backend == "onnxruntime":
        cfg.append(
            "optimization { execution_accelerators { gpu_execution_accelerator : [ {\n"
            '  name : "tensorrt"\n'
            '  parameters { key: "precision_mode" value: "FP16" }\n'
            "} ] } }"
        )
    with open(os.path.join(mdir, "config.pbtxt"), "w") as f:
        f.write("\n".join(cfg) + "\n")
    return name


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    ap.add_argument("packages", nargs="+")
    ap.add_argument("--backend", choices=["onnxruntime", "python"], default="onnxruntime")
    ap.add_argument("--gpu", action="store_true")
    ap.add_argument("--max-batch", type=int, default=64)
    ap.add_argument("--instances", type=int, default=1)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    for spec in args.packages:
        pkg = find_package(spec)
        with open(os.path.join(pkg, "model.toml"), "rb") as f:
            manifest = tomllib.load(f)
        files = {k: v for k, v in manifest.get("files", {}).items() if str(v).endswith(".onnx")}
        if not files:
            sys.exit(f"triton-repo: {pkg}: no ONNX file in [files]")
        base = os.path.basename(os.path.normpath(pkg))
        names = {}
        for key, rel in files.items():
            name = base if len(files) == 1 else f"{base}.{key}"
            names[key] = name
            combine = manifest.get("params", {}).get("max_batch", 0) != 1
            print(write_model(args.out, name, os.path.join(pkg, rel), args, combine))
        if manifest.get("family") == "moonshine":
            print(write_decode_loop(args.out, base, pkg, manifest, names, args))


if __name__ == "__main__":
    main()
