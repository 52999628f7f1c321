"""The drift-budgeted int8 search (`export.sensitivity`) on a small trained encoder-decoder depth net: the graph
it produces must stay within its drift budget, judged here by running that graph in ONNX Runtime and OpenVINO
against the fp32 net on the held-back validation frames, with this file's own abs_rel."""

from __future__ import annotations

import json
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn

from depth_node.export.quantize import builtin_frames, network_inputs, quantize_file, split_validation

H, W = 64, 96
BUDGET = 0.003  # tighter than the trained net's all-int8 drift, so the search has to choose


class TinyDepth(nn.Module):
    """Monodepth2's shape in miniature: strided ReLU encoder, nearest-upsampling ELU decoder with a skip,
    sigmoid disparity in [0.01, 10] and depth = 1 / disparity."""

    def __init__(self) -> None:
        super().__init__()
        self.e1 = nn.Conv2d(3, 16, 3, 2, 1)
        self.e2 = nn.Conv2d(16, 32, 3, 2, 1)
        self.e3 = nn.Conv2d(32, 32, 3, 1, 1)
        self.d1 = nn.Conv2d(32, 16, 3, 1, 1)
        self.d2 = nn.Conv2d(32, 16, 3, 1, 1)
        self.d3 = nn.Conv2d(16, 16, 3, 1, 1)
        self.head = nn.Conv2d(16, 1, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = torch.relu(self.e1(x))
        b = torch.relu(self.e2(a))
        b = torch.relu(self.e3(b)) + b
        u = nn.functional.elu(self.d1(nn.functional.interpolate(b, scale_factor=2.0, mode="nearest")))
        u = nn.functional.elu(self.d2(torch.cat([u, a], 1)))
        u = nn.functional.elu(self.d3(nn.functional.interpolate(u, scale_factor=2.0, mode="nearest")))
        disp = 0.01 + 9.99 * torch.sigmoid(self.head(u))
        return 1.0 / disp


def trained_net(inputs: list[np.ndarray]) -> TinyDepth:
    """A few hundred Adam steps towards a smooth depth of each image (blurred luminance → 1..50 m): trained-like
    weight and activation statistics, which random weights lack."""
    torch.manual_seed(0)
    net = TinyDepth()
    x = torch.from_numpy(np.concatenate(inputs))
    lum = nn.functional.avg_pool2d(x.mean(1, keepdim=True), 9, 1, 4)
    target = 1.0 / (0.02 + 0.98 * lum)  # 1..50 m
    opt = torch.optim.Adam(net.parameters(), 3e-3)
    for _ in range(300):
        opt.zero_grad()
        loss = (torch.log(net(x)) - torch.log(target)).abs().mean()
        loss.backward()
        opt.step()
    return net.eval()


def ort_depth(path, xs: list[np.ndarray]) -> list[np.ndarray]:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    return [sess.run(["depth"], {name: x})[0] for x in xs]


def ov_depth(path, xs: list[np.ndarray]) -> list[np.ndarray]:
    """OpenVINO's own int8 kernels on the same file, compiled with the openvino backend's settings (the float
    layers in bf16 where the CPU has it natively, else f32)."""
    ov = pytest.importorskip("openvino")
    from depth_node.export.openvino_cpu import cpu_config

    core = ov.Core()
    compiled = core.compile_model(core.read_model(str(path)), "CPU", cpu_config("int8"))
    return [compiled([x])[compiled.output("depth")].copy() for x in xs]


def mean_abs_rel(candidate: list[np.ndarray], reference: list[np.ndarray]) -> float:
    c, r = np.concatenate([a.ravel() for a in candidate]), np.concatenate([a.ravel() for a in reference])
    return float(np.mean(np.abs(c.astype(np.float64) - r) / r))


@pytest.mark.slow
def test_budgeted_search_ends_within_its_budget(tmp_path):
    inputs = network_inputs(builtin_frames(16, H, W, seed=5), [1, 3, H, W])
    net = trained_net(inputs[:8])
    fp32 = tmp_path / "tiny.onnx"
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter, as onnx_export uses it
        torch.onnx.export(net, (torch.from_numpy(inputs[0]),), str(fp32), input_names=["image"],
                          output_names=["depth"], opset_version=17, dynamo=False)
    out = tmp_path / "tiny.int8.onnx"
    report = quantize_file(fp32, out, inputs, target_drift=BUDGET, analyze=True)

    _, val = split_validation(inputs)
    assert len(val) == 4 and report["validation_inputs"] == 4 and report["calibration_inputs"] == 12
    ref = ort_depth(fp32, val)
    all_int8 = report["trials"][0]
    assert all_int8["layer"] == "all" and all_int8["abs_rel"] > BUDGET  # the search had work to do
    drift = {"onnxruntime": mean_abs_rel(ort_depth(out, val), ref), "openvino": mean_abs_rel(ov_depth(out, val), ref)}
    assert max(drift.values()) <= BUDGET, (drift, json.dumps(report["trials"]))
    assert abs(max(drift.values()) - report["validation_abs_rel"]) < 1e-5  # the report tells what the file does

    # it chose: some convs int8 (with per-channel int8 weights), some float, each candidate measured alone
    q = onnx.load(str(out))
    producer = {o: n for n in q.graph.node for o in n.output}
    convs = [n for n in q.graph.node if n.op_type == "Conv"]
    int8 = [n for n in convs if n.input[1] in producer and producer[n.input[1]].op_type == "DequantizeLinear"]
    assert 1 <= len(int8) < len(convs) - 2
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in q.graph.initializer}
    for n in int8:  # symmetric per-channel int8 weights, scales on axis 0 (ONNX's default axis is 1)
        dq = producer[n.input[1]]
        w, scale = inits[dq.input[0]], inits[dq.input[1]]
        axis = next((a.i for a in dq.attribute if a.name == "axis"), 1)
        assert w.dtype == np.int8 and axis == 0 and scale.shape == (w.shape[0],) and not inits[dq.input[2]].any()
    assert len(report["float_layers"]) == len(convs) - 2 - len(int8)
    assert set(report["sensitivity"]) == {n.name for n in convs} - set(report["kept_fp32"]) | set(
        report["float_layers"])
    kept = [t for t in report["trials"][2:] if t["int8"]]
    assert {t["layer"] for t in kept} == {n.name for n in int8}
    assert all(t["abs_rel"] <= BUDGET for t in kept)


def test_the_search_and_the_benchmark_measure_the_same_drift() -> None:
    """One abs_rel (export.drift): mean |c − r| / r over reference pixels that are finite and > 0, by hand here;
    a candidate that is not finite where the reference is counts as an infinite error (the search rejects it,
    the benchmark shows it), never as a skipped pixel."""
    from depth_node.export.drift import drift
    from depth_node.export.sensitivity import abs_rel

    ref = [np.array([[1.0, 2.0], [np.nan, 0.0]]), np.array([[4.0]])]
    cand = [np.array([[1.1, 1.8], [5.0, 3.0]]), np.array([[5.0]])]
    by_hand = (0.1 / 1.0 + 0.2 / 2.0 + 1.0 / 4.0) / 3
    assert abs_rel(cand, ref) == pytest.approx(by_hand, rel=1e-12)
    assert drift(cand, ref).abs_rel == abs_rel(cand, ref)
    cand[1] = np.array([[np.nan]])
    assert abs_rel(cand, ref) == float("inf") and drift(cand, ref).abs_rel == float("inf")
