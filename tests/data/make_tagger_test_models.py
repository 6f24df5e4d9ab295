"""Writes the two tiny audio-tagger packages the tagger tests load (a few hundred bytes each).

They are arithmetic, not trained, so a test knows exactly what each window must score:

* tagger-wave:   waveform input [batch, 1600]; scores = sigmoid(1000 * (mean(x^2) - 0.01) * [1, -1])
                 labels "loud", "quiet"; probabilities out.
* tagger-logmel: log-mel input [batch, 8, frames] (frames-mels layout: [batch, frames, 8]);
                 logits = [mean(features), -mean(features)], labels "bright", "dark";
                 the Rust side applies the sigmoid (output_kind = "logits").

Run: .venv-models/bin/python tests/data/make_tagger_test_models.py  (needs the onnx package)
"""

import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))


def save(model, folder, manifest, labels):
    d = os.path.join(HERE, folder)
    os.makedirs(d, exist_ok=True)
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, os.path.join(d, "model.onnx"))
    with open(os.path.join(d, "model.toml"), "w") as f:
        f.write(manifest)
    with open(os.path.join(d, "labels.txt"), "w") as f:
        f.write("\n".join(labels) + "\n")


def wave():
    x = helper.make_tensor_value_info("waveform", TensorProto.FLOAT, ["batch", 1600])
    y = helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch", 2])
    w = numpy_helper.from_array(np.array([[1000.0, -1000.0]], np.float32), "w")
    b = numpy_helper.from_array(np.array([-10.0, 10.0], np.float32), "b")
    axes = numpy_helper.from_array(np.array([1], np.int64), "axes")
    nodes = [
        helper.make_node("Mul", ["waveform", "waveform"], ["sq"]),
        helper.make_node("ReduceMean", ["sq", "axes"], ["ms"], keepdims=1),
        helper.make_node("MatMul", ["ms", "w"], ["lin"]),
        helper.make_node("Add", ["lin", "b"], ["logit"]),
        helper.make_node("Sigmoid", ["logit"], ["scores"]),
    ]
    g = helper.make_graph(nodes, "tagger-wave", [x], [y], [w, b, axes])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)])
    save(
        m,
        "tagger-wave",
        'family = "audio-tagger"\nname = "tagger-wave-test"\nsample_rate = 16000\n\n'
        '[files]\nmodel = "model.onnx"\nlabels = "labels.txt"\n\n'
        '[params]\ninput_kind = "waveform"\nwindow = 1600\nhop = 800\n',
        ["loud", "quiet"],
    )


def logmel():
    x = helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", 9, 8])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 2])
    w = numpy_helper.from_array(np.array([[1.0, -1.0]], np.float32), "w")
    axes = numpy_helper.from_array(np.array([1, 2], np.int64), "axes")
    nodes = [
        helper.make_node("ReduceMean", ["features", "axes"], ["m"], keepdims=0),
        helper.make_node("Unsqueeze", ["m", "one"], ["m2"]),
        helper.make_node("MatMul", ["m2", "w"], ["logits"]),
    ]
    one = numpy_helper.from_array(np.array([1], np.int64), "one")
    g = helper.make_graph(nodes, "tagger-logmel", [x], [y], [w, axes, one])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)])
    save(
        m,
        "tagger-logmel",
        'family = "audio-tagger"\nname = "tagger-logmel-test"\nsample_rate = 16000\n\n'
        '[files]\nmodel = "model.onnx"\nlabels = "labels.txt"\n\n'
        '[io]\ninput = "features"\noutput = "logits"\n\n'
        '[params]\ninput_kind = "log-mel"\nwindow = 1680\nhop = 1600\nn_fft = 400\n'
        'hop_length = 160\nn_mels = 8\nlayout = "frames-mels"\noutput_kind = "logits"\n',
        ["bright", "dark"],
    )


if __name__ == "__main__":
    wave()
    logmel()
