"""fp16-typed copies of fp32 ONNX graphs, for builders that take precision from the tensor types (TensorRT 11's
strongly typed networks): the body computes in fp16, inputs/outputs stay fp32, and the heads (disparity conv +
sigmoid + depth inversion, pose maths) stay fp32, as precise as in the int8 graph. `evaluate/fp16_check.py`
measures whether a graph is safe this way; tested on the CPU with ONNX Runtime."""

from __future__ import annotations

import os
from pathlib import Path

from depth_node.errors import BackendError

# Inputs that the ONNX spec types float32 whatever the data type (Resize's roi and scales).
FLOAT32_INPUTS = {"Resize": (1, 2), "Upsample": (1,)}


def to_fp16(model, keep_fp32: set[str]):
    """fp16-typed copy of a constant-folded fp32 graph, fp32 inputs/outputs kept, `keep_fp32` nodes (the heads)
    left in fp32 — what TensorRT 10's FP16 flag did. Heads only feed outputs, so each boundary is one Cast."""
    import onnx

    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    head = [n for n in g.node if n.name in keep_fp32]
    body = [n for n in g.node if n.name not in keep_fp32]
    _halve_body(g, body, keep_fp32)
    pre, post = _boundary_casts(g, body, head)
    del g.node[:]
    g.node.extend(pre + body + post + head)
    del g.value_info[:]
    try:
        onnx.checker.check_model(m, full_check=True)  # strict type inference: every op sees consistent types
    except Exception as exc:
        raise BackendError(f"fp16 typing produced an invalid graph ({str(exc).splitlines()[0][:200]})") from exc
    return m


def _halve_body(g, body: list, keep_fp32: set[str]) -> None:
    """fp16 float initializers for body uses (a copy where the head or a float32-only input also uses them), fp16
    Cast targets and Constant values, except tensors ONNX types float32 whatever the graph's precision."""
    import numpy as np
    from onnx import TensorProto, numpy_helper

    inits = {i.name: i for i in g.initializer}

    def float_init(name: str) -> bool:
        return name in inits and inits[name].data_type == TensorProto.FLOAT

    fp32_use = {t for n in g.node for i, t in enumerate(n.input)
                if float_init(t) and (n.name in keep_fp32 or i in FLOAT32_INPUTS.get(n.op_type, ()))}
    # a Constant node producing Resize scales stays fp32 (torch's exporter emits these scales as initializers or
    # as Constant nodes, by version)
    fp32_only = {t for n in g.node for i, t in enumerate(n.input) if i in FLOAT32_INPUTS.get(n.op_type, ())}
    copies: dict[str, str] = {}
    for n in body:
        for i, t in enumerate(n.input):
            if not float_init(t) or i in FLOAT32_INPUTS.get(n.op_type, ()):
                continue
            if t not in copies:
                half = numpy_helper.to_array(inits[t]).astype(np.float16)
                if t in fp32_use:
                    copies[t] = t + "_fp16"
                    g.initializer.append(numpy_helper.from_array(half, copies[t]))
                else:
                    copies[t] = t
                    inits[t].CopyFrom(numpy_helper.from_array(half, t))
            n.input[i] = copies[t]
        for a in n.attribute:
            if n.op_type == "Cast" and a.name == "to" and a.i == TensorProto.FLOAT:
                a.i = TensorProto.FLOAT16
            if (n.op_type == "Constant" and a.name == "value" and a.t.data_type == TensorProto.FLOAT
                    and not fp32_only.intersection(n.output)):
                a.t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(a.t).astype(np.float16), a.t.name))


def _rename_uses(nodes, old: str, new: str) -> None:
    for n in nodes:
        for i, t in enumerate(n.input):
            if t == old:
                n.input[i] = new


def _boundary_casts(g, body: list, head: list) -> tuple[list, list]:
    """Casts at the edges of the fp16 body: (casts before it: fp32 graph inputs → fp16; casts after it: fp16 body
    outputs → fp32, under the graph output's own name, and body → head tensors)."""
    from onnx import TensorProto, helper

    def is_float(vi) -> bool:
        return vi.type.tensor_type.elem_type == TensorProto.FLOAT

    pre, post = [], []
    for vi in g.input:
        if is_float(vi):
            pre.append(helper.make_node("Cast", [vi.name], [vi.name + "_fp16"], to=TensorProto.FLOAT16,
                                        name=vi.name + "_to_fp16"))
            _rename_uses(body, vi.name, vi.name + "_fp16")
    producer = {o: n for n in body for o in n.output}
    for vi in g.output:
        n = producer.get(vi.name)
        if n is not None and is_float(vi):  # computed in fp16: cast back under the output's own name
            half = vi.name + "_fp16"
            n.output[list(n.output).index(vi.name)] = half
            _rename_uses(body, vi.name, half)
            post.append(helper.make_node("Cast", [half], [vi.name], to=TensorProto.FLOAT, name=vi.name + "_to_fp32"))
    body_out = {o for n in body for o in n.output}
    for n in head:
        for i, t in enumerate(n.input):
            if t in body_out:  # body → head boundary
                if not any(c.output[0] == t + "_fp32" for c in post):
                    post.append(helper.make_node("Cast", [t], [t + "_fp32"], to=TensorProto.FLOAT,
                                                 name=t + "_to_fp32"))
                n.input[i] = t + "_fp32"
    return pre, post


def fp16_typed_onnx(onnx_path: str | os.PathLike, cache_dir: str | os.PathLike | None = None) -> Path:
    """The fp16-typed version of an fp32 ONNX (for strongly typed TensorRT 11 builds), cached by content."""
    import onnx

    from depth_node.export.quantize import folded_model, head_nodes
    from depth_node.paths import cache_root, file_sha256

    out = cache_root(cache_dir) / "fp16" / file_sha256(onnx_path)[:16] / f"{Path(onnx_path).stem}.fp16.onnx"
    if out.is_file():
        return out
    folded = folded_model(onnx_path)
    model = to_fp16(folded, set(head_nodes(folded)))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    onnx.save(model, str(tmp))
    os.replace(tmp, out)
    return out
