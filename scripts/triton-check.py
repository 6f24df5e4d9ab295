#!/usr/bin/env python3
"""Checks a running Triton server (scripts/triton-server.sh silero-vad ced-tiny) over KServe
v2 HTTP against local onnxruntime on the same ONNX files: the VAD's probability and state
and the tagger's scores within 1e-4, an unknown model and a wrong shape refused with a
message naming them. Prints one line per check; exits 1 on the first failure.

    PYTHONPATH=<triton site dir> python3 scripts/triton-check.py [http://127.0.0.1:18000]
"""

import json
import os
import sys
import tomllib
import urllib.error
import urllib.request

import numpy as np
import onnxruntime as ort

URL = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:18000"
MODELS = os.path.join(os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share"),
                      "lalm", "models")
TYPES = {np.float32: "FP32", np.int64: "INT64"}


def infer(model, inputs):
    body = {"inputs": [{"name": n, "shape": list(v.shape), "datatype": TYPES[v.dtype.type],
                        "data": v.ravel().tolist()} for n, v in inputs.items()]}
    req = urllib.request.Request(f"{URL}/v2/models/{model}/infer", json.dumps(body).encode(),
                                 {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        outs = json.load(r)["outputs"]
    return {o["name"]: np.array(o["data"], np.float32).reshape(o["shape"]) for o in outs}


def local(pkg, feed):
    with open(os.path.join(MODELS, pkg, "model.toml"), "rb") as f:
        onnx = tomllib.load(f)["files"]["model"]
    s = ort.InferenceSession(os.path.join(MODELS, pkg, onnx), providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in s.get_outputs()], s.run(None, feed)))


def check(what, ok, detail):
    print(f"{'ok' if ok else 'FAILED'}: {what}: {detail}")
    if not ok:
        sys.exit(1)


def refused(model, inputs, words):
    try:
        infer(model, inputs)
    except urllib.error.HTTPError as e:
        msg = json.loads(e.read()).get("error", "")
        return all(w in msg for w in words), msg
    return False, "accepted"


rng = np.random.default_rng(7)
# The VAD through 20 windows with its state carried by the client, as lalm-perceive does.
state = np.zeros((2, 1, 128), np.float32)
lstate = state.copy()
worst = 0.0
for _ in range(20):
    x = (rng.standard_normal((1, 576)) * 0.1).astype(np.float32)
    r = infer("silero-vad", {"input": x, "state": state, "sr": np.array([16000], np.int64)})
    l = local("silero-vad", {"input": x, "state": lstate, "sr": np.array(16000, np.int64)})
    worst = max(worst, float(abs(r["output"] - l["output"]).max()),
                float(abs(r["stateN"] - l["stateN"]).max()))
    state, lstate = r["stateN"], l["stateN"]
check("silero-vad, 20 windows, state on the client", worst <= 1e-4, f"max difference {worst:.2e}")
w = (rng.standard_normal((2, 16000)) * 0.1).astype(np.float32)
r = infer("ced-tiny", {"waveform": w})
l = local("ced-tiny", {"waveform": w})
d = float(abs(r["logits"] - l["logits"]).max())
check("ced-tiny, a batch of two 1 s windows", d <= 1e-4, f"max difference {d:.2e}")
ok, msg = refused("no-such-model", {"waveform": w}, ["no-such-model"])
check("an unknown model is refused", ok, msg)
ok, msg = refused("silero-vad", {"input": w, "state": np.zeros((3, 1), np.float32),
                                 "sr": np.array([16000], np.int64)}, ["state"])
check("a wrong shape is refused", ok, msg)
