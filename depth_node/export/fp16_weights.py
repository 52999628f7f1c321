"""ONNX files with fp16 *storage* of the weights and fp32 arithmetic: half the size, same graph semantics.

Each large float initializer is stored as fp16 and followed by a Cast back to fp32, so every runtime computes
exactly what it computed before, up to the weights' fp16 rounding (ONNX Runtime and OpenVINO fold the casts at
load; TensorRT folds them too and builds fp16 kernels anyway with --fp16). This is how the shipped default
model's ONNX stays under the repository's 30 MB-per-file budget without a runtime-specific fp16 graph.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

MIN_ELEMENTS = 256  # small tensors (biases, norms) stay fp32: no size to gain, and they are sensitive


def fp16_weights(src: str | Path, dst: str | Path) -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(src))
    graph = model.graph
    keep, casts = [], []
    for init in graph.initializer:
        if init.data_type == TensorProto.FLOAT and int(np.prod(init.dims)) >= MIN_ELEMENTS:
            arr = numpy_helper.to_array(init)
            half = numpy_helper.from_array(arr.astype(np.float16), name=init.name + "__fp16")
            keep.append(half)
            casts.append(helper.make_node("Cast", [half.name], [init.name], to=TensorProto.FLOAT,
                                          name=init.name + "__to_fp32"))
        else:
            keep.append(init)
    del graph.initializer[:]
    graph.initializer.extend(keep)
    nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend(casts + nodes)  # casts first: the graph stays topologically sorted
    onnx.checker.check_model(model)
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(dst))
    return dst
