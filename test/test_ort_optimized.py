"""ONNX Runtime sessions from the cached optimized graph (`depth_node.inference.ort_optimized`): the same outputs
as optimizing in memory, weights mapped from the cache file rather than copied, a cache entry written once, and
a cache that cannot be written never stopping a model from loading."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper, save

from depth_node.inference.onnxruntime_backend import make_session, session_options
from depth_node.inference.ort_optimized import cached_session, optimized_path


def _conv_net(path: Path, seed: int = 0) -> Path:
    """Two 3x3 convolutions with fp16 weights cast to fp32 (how the shipped exports store theirs), large enough
    (> 1 KiB per weight) to go to the external weights file."""
    rng = np.random.default_rng(seed)
    w1 = numpy_helper.from_array((rng.standard_normal((16, 3, 3, 3)) * 0.2).astype(np.float16), "w1h")
    w2 = numpy_helper.from_array((rng.standard_normal((8, 16, 3, 3)) * 0.1).astype(np.float16), "w2h")
    nodes = [helper.make_node("Cast", ["w1h"], ["w1"], to=TensorProto.FLOAT),
             helper.make_node("Cast", ["w2h"], ["w2"], to=TensorProto.FLOAT),
             helper.make_node("Conv", ["x", "w1"], ["a"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["a"], ["b"]),
             helper.make_node("Conv", ["b", "w2"], ["y"], pads=[1, 1, 1, 1])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 24, 40])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 24, 40])], [w1, w2])
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def test_cached_session_matches_in_memory_optimization_and_maps_its_weights(tmp_path) -> None:
    src = _conv_net(tmp_path / "net.onnx")
    x = np.random.default_rng(1).random((1, 3, 24, 40), dtype=np.float32)
    want = make_session(src).run(None, {"x": x})[0]
    s1 = cached_session(src, tmp_path / "cache", session_options)
    target = optimized_path(src, tmp_path / "cache", ort.__version__)
    assert s1 is not None and target.is_file()
    weights = target.with_name("net.weights")
    assert weights.is_file()
    first = (target.stat().st_mtime_ns, weights.stat().st_mtime_ns)
    s2 = cached_session(src, tmp_path / "cache", session_options)
    assert (target.stat().st_mtime_ns, weights.stat().st_mtime_ns) == first  # written once, read after
    for s in (s1, s2):
        np.testing.assert_array_equal(s.run(None, {"x": x})[0], want)  # same graph, same kernels: bit for bit
    maps = Path(f"/proc/{os.getpid()}/maps")
    if maps.is_file():
        assert str(weights) in maps.read_text()  # the weights are mapped from the cache file, not copied
    assert [p.name for p in (tmp_path / "cache" / "ort_optimized").iterdir()] == [target.parent.name]  # no tmp


def test_key_follows_the_source_content(tmp_path) -> None:
    for d in ("a", "b"):
        (tmp_path / d).mkdir()
    a, b = _conv_net(tmp_path / "a" / "net.onnx", seed=0), _conv_net(tmp_path / "b" / "net.onnx", seed=1)
    c = tmp_path / "c.onnx"
    c.write_bytes(a.read_bytes())
    key = [optimized_path(p, tmp_path, ort.__version__).parent.name for p in (a, b, c)]
    assert key[0] != key[1] and key[0] == key[2]
    assert optimized_path(a, tmp_path, "0.0.0").parent.name != key[0]  # another ONNX Runtime, another entry


def test_unusable_cache_falls_back_to_none_with_a_warning(tmp_path, caplog) -> None:
    src = _conv_net(tmp_path / "net.onnx")
    blocked = tmp_path / "not_a_folder"
    blocked.write_text("x")
    assert cached_session(src, blocked, session_options) is None
    assert "optimizing in memory" in caplog.text


def test_backend_sessions_go_through_the_cache_on_the_cpu_in_fp32_only(tmp_path) -> None:
    from depth_node.inference.onnxruntime_backend import backend_session

    src = _conv_net(tmp_path / "net.onnx")
    x = np.random.default_rng(2).random((1, 3, 24, 40), dtype=np.float32)
    backend_session(src, "cpu", "int8", tmp_path / "cache")  # a Q/DQ graph is optimized in memory, as before
    assert not (tmp_path / "cache").exists()
    s = backend_session(src, "cpu", "fp32", tmp_path / "cache")
    assert optimized_path(src, tmp_path / "cache", ort.__version__).is_file()
    np.testing.assert_array_equal(s.run(None, {"x": x})[0], make_session(src).run(None, {"x": x})[0])


def test_damaged_cache_entry_falls_back_and_says_what_to_delete(tmp_path, caplog) -> None:
    src = _conv_net(tmp_path / "net.onnx")
    assert cached_session(src, tmp_path / "cache", session_options) is not None
    target = optimized_path(src, tmp_path / "cache", ort.__version__)
    target.write_bytes(target.read_bytes()[:100])  # a truncated graph
    assert cached_session(src, tmp_path / "cache", session_options) is None
    assert f"delete {target.parent}" in caplog.text
