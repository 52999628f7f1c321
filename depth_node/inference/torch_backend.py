"""PyTorch backend: CPU or CUDA, fp32/fp16/bf16, channels-last; CUDA graphs on CUDA (static shapes make capture
safe and remove per-layer launch overhead, which dominates this small network at batch 1)."""

from __future__ import annotations

import numpy as np
import torch

from depth_node.checkpoints.model_file import ModelFile
from depth_node.export.wrappers import depth_graph, graph_output_names, pose_graph
from depth_node.inference.base import Backend, BackendError, ModelInfo

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


class _Runner:
    """One graph prepared for a device/dtype, optionally captured into a CUDA graph."""

    def __init__(self, graph: torch.nn.Module, device: torch.device, dtype: torch.dtype, cuda_graph: bool):
        self.names = graph_output_names(graph)
        self.device, self.dtype = device, dtype
        self.graph = graph.to(device=device, dtype=dtype, memory_format=torch.channels_last).eval()
        self.cuda_graph = cuda_graph and device.type == "cuda"
        self._static_in: torch.Tensor | None = None
        self._static_out = None
        self._cg = None

    def _capture(self, shape) -> None:
        self._static_in = torch.zeros(shape, device=self.device, dtype=self.dtype).contiguous(
            memory_format=torch.channels_last
        )
        s = torch.cuda.Stream()
        s.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(s), torch.inference_mode():
            for _ in range(3):  # warm-up allocations before capture
                self.graph(self._static_in)
        torch.cuda.current_stream().wait_stream(s)
        self._cg = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self._cg), torch.inference_mode():
            self._static_out = self.graph(self._static_in)

    def __call__(self, x: np.ndarray) -> dict[str, np.ndarray]:
        t = torch.from_numpy(x).to(self.device, non_blocking=True).to(self.dtype)
        t = t.contiguous(memory_format=torch.channels_last)
        if self.cuda_graph:
            if self._cg is None or tuple(self._static_in.shape) != tuple(t.shape):
                self._capture(tuple(t.shape))
            self._static_in.copy_(t)
            self._cg.replay()
            outs = self._static_out
        else:
            with torch.inference_mode():
                outs = self.graph(t)
        return {n: o.float().cpu().numpy() for n, o in zip(self.names, outs)}


class TorchBackend(Backend):
    name = "torch"

    def __init__(self, model: ModelFile, precision: str = "fp32", device: str = "cpu", cuda_graphs: bool = True):
        if precision not in DTYPES:
            raise BackendError(f"torch backend precisions: {', '.join(DTYPES)} (got {precision!r})")
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise BackendError("device 'cuda' asked for but torch sees no CUDA device; use device: cpu")
        if device == "cpu" and precision == "fp16":
            raise BackendError("fp16 on CPU is slower than fp32 in PyTorch; use bf16 (AVX-512/AMX) or fp32")
        super().__init__(ModelInfo.from_model_file(model), precision, device)
        dev = torch.device(device)
        dtype = DTYPES[precision]
        if dev.type == "cpu":
            torch.set_num_threads(max(1, torch.get_num_threads()))
        self._depth = _Runner(depth_graph(model), dev, dtype, cuda_graphs)
        pg = pose_graph(model)
        self._pose = None if pg is None else _Runner(pg, dev, dtype, cuda_graphs)


