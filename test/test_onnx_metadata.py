"""`read_metadata` walks the ONNX protobuf itself (no `onnx` package on the node's path): it must give exactly
what `onnx.load` gives, for the shipped models and for a model with every kind of top-level field."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from depth_node.errors import DepthNodeError
from depth_node.export.onnx_metadata import read_metadata

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted((ROOT / "models").glob("*_onnx/*.onnx"))


def _reference(path: Path) -> dict[str, str]:
    return {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}


@pytest.mark.parametrize("path", SHIPPED, ids=[f"{p.parent.name}/{p.name}" for p in SHIPPED])
def test_shipped_models_read_as_onnx_reads_them(path: Path) -> None:
    meta = read_metadata(path)
    assert meta == _reference(path) and "depth_node.arch" in meta


def test_every_field_kind_is_skipped_and_unicode_kept(tmp_path) -> None:
    w = helper.make_tensor("w", TensorProto.FLOAT, [64], [0.5] * 64)
    graph = helper.make_graph([helper.make_node("Add", ["x", "w"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [64])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [64])], [w])
    model = helper.make_model(graph, producer_name="p", doc_string="d" * 300)
    model.model_version = 2**40  # a multi-byte varint before the metadata
    onnx.helper.set_model_props(model, {"depth_node.arch": "monodepth2", "ünï": "çødé " * 50, "empty": ""})
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    assert read_metadata(path) == _reference(path) == {"depth_node.arch": "monodepth2", "ünï": "çødé " * 50,
                                                       "empty": ""}


def test_truncated_file_is_one_clear_error(tmp_path) -> None:
    src = SHIPPED[0].read_bytes()
    bad = tmp_path / "cut.onnx"
    bad.write_bytes(src[: len(src) // 2])
    with pytest.raises(DepthNodeError, match="re-export"):
        read_metadata(bad)
