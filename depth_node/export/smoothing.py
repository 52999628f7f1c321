"""Per-channel scale migration before int8 (SmoothQuant's idea, applied to convolutions): an exact fp32 rewrite that
evens out the channels of each convolution's input so that one per-tensor int8 scale fits them all.

Why: int8 activations carry one scale per tensor (the only form TensorRT, ONNX Runtime and OpenVINO all accept),
set by the tensor's largest channel. In the trained default model's decoder the ELU outputs mix channels that
reach 7.5 with channels that live in (-1, 0): with a step of 7.5/127 the small channels keep ~17 levels, and
quantizing the input of the last decoder convolutions alone moved depth 0.8-1.5 % (the weights, per-channel,
moved it by nothing measurable). A convolution is linear in each input channel, so dividing channel c of its input
by s_c and multiplying the weights' input channel c by s_c changes nothing in exact arithmetic; choosing
s_c = sqrt(max|x_c| / max|w_c|) (alpha 0.5) splits the spread between activations and weights, whose scales are
per output channel and absorb it. Measured on the trained default model at 640x192 (18 calibration frames of six
scene types, drift on 6 held-out ones; the per-layer figures are also in the quantize.json of `depth-node bench`'s
int8 graph, recipe 7 against 8): decoder.8 alone 1.50 % -> 0.29 %, decoder.6 1.08 % -> 0.23 %, decoder.4
0.82 % -> 0.12 %, every conv but the first and the head int8 with the ops between float 1.42 % -> 0.96 %
(alpha 0.7: 0.92 %, 0.85: 0.87 %; 0.5, SmoothQuant's default, kept: it gave the lowest single-layer drift on
two of the three most sensitive convs, decoder.8 0.29 % against 0.38 % and 0.30 %, decoder.4 0.12 % against
0.15 % and 0.21 % (decoder.6: 0.23 % against 0.26 % and 0.22 %), and those decide which convs the search can
make int8).

The division is an explicit `Mul` by a per-channel constant in front of each convolution (the producer, often an
ELU or a reflection pad, is not scale-equivariant, so it cannot absorb it); it runs in float, on the tensor the
next QuantizeLinear reads anyway, and the Q/DQ graph stays the portable form.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from depth_node.export.ort_cpu import cpu_session

ALPHA = 0.5
SPREAD = 100.0  # scales clipped to [1/SPREAD, SPREAD] x their geometric mean: dead channels get no wild factor
SUFFIX = "_smooth"


def channel_maxima(model: onnx.ModelProto, tensors: list[str], inputs: list[np.ndarray]) -> dict[str, np.ndarray]:
    """max |x| per channel (axis 1) of each named [1,C,H,W] tensor over the inputs, through ONNX Runtime."""
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    for t in tensors:
        probe.graph.output.append(helper.make_tensor_value_info(t, onnx.TensorProto.FLOAT, None))
    with tempfile.TemporaryDirectory(prefix="dn-smooth-") as tmp:
        path = Path(tmp) / "probe.onnx"
        onnx.save(probe, str(path))
        sess = cpu_session(path)
        name = model.graph.input[0].name
        out = {t: np.zeros(0, np.float32) for t in tensors}
        for x in inputs:  # one input at a time: every conv input of a 640x192 frame is ~100 MB
            for t, a in zip(tensors, sess.run(tensors, {name: x})):
                m = np.abs(a[0]).reshape(a.shape[1], -1).max(axis=1)
                out[t] = m if out[t].size == 0 else np.maximum(out[t], m)
    return out


def channel_scales(act_max: np.ndarray, weight: np.ndarray, alpha: float = ALPHA) -> np.ndarray:
    """s_c = max|x_c|^alpha / max|w[:, c]|^(1 - alpha), normalised to geometric mean 1 and clipped (SPREAD)."""
    w_max = np.abs(weight).max(axis=tuple(i for i in range(weight.ndim) if i != 1))
    s = np.maximum(act_max, 1e-6) ** alpha / np.maximum(w_max, 1e-8) ** (1 - alpha)
    s = s / np.exp(np.mean(np.log(s)))
    return np.clip(s, 1 / SPREAD, SPREAD).astype(np.float32)


def smooth_convs(model: onnx.ModelProto, convs: list[str], inputs: list[np.ndarray], alpha: float = ALPHA
                 ) -> list[str]:
    """Rewrite `model` in place: each named Conv (plain group-1 convolutions with a weight initializer of their own)
    reads its input through a per-channel `Mul` by 1/s, its weights scaled by s. Returns the convs rewritten."""
    inits = {i.name: i for i in model.graph.initializer}
    uses: dict[str, int] = {}
    for n in model.graph.node:
        for i in n.input:
            uses[i] = uses.get(i, 0) + 1
    wanted = set(convs)
    chosen = [n for n in model.graph.node if n.name in wanted and n.op_type == "Conv" and n.input[1] in inits
              and uses[n.input[1]] == 1  # a weight shared with another node cannot take this conv's scales
              and all(a.name != "group" or a.i == 1 for a in n.attribute)]
    if not chosen:  # nothing to measure: no probe session
        return []
    maxima = channel_maxima(model, sorted({n.input[0] for n in chosen}), inputs)
    muls: dict[str, onnx.NodeProto] = {}
    for n in chosen:
        w = numpy_helper.to_array(inits[n.input[1]])
        s = channel_scales(maxima[n.input[0]], w, alpha)
        inits[n.input[1]].CopyFrom(numpy_helper.from_array((w * s.reshape(1, -1, 1, 1)).astype(np.float32),
                                                           n.input[1]))
        inv = f"{n.name}{SUFFIX}_inverse"
        model.graph.initializer.append(numpy_helper.from_array((1 / s).reshape(1, -1, 1, 1), inv))
        out = f"{n.name}{SUFFIX}_output"
        muls[n.name] = helper.make_node("Mul", [n.input[0], inv], [out], name=f"{n.name}{SUFFIX}")
        n.input[0] = out
    nodes = []
    for n in model.graph.node:  # each Mul right before its conv: the list stays topologically sorted
        if n.name in muls:
            nodes.append(muls[n.name])
        nodes.append(n)
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    return list(muls)
