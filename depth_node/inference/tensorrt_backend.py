"""TensorRT backend (TensorRT 10/11): engines built from the ONNX exports on first use and cached, run with
`execute_async_v3` on named tensors.

Buffers and the stream come from the CUDA runtime through cuda-python (`depth_node.export.cuda_runtime`): no
torch (a robot running an engine need not carry it) and no pycuda, whose per-thread context stack breaks under
ROS 2 multi-threaded executors. Addresses are bound once per input shape (static exports: once; dynamic
height/width: again when the size changes) and each call is copy-in, enqueue, copy-out on the runner's own
stream."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from depth_node.inference.base import Backend, BackendError, ModelInfo

# TensorRT I/O tensor types → NumPy (names looked up, as older TensorRT lacks some); bf16 has no NumPy type.
TRT_NUMPY_TYPES = {"FLOAT": np.float32, "HALF": np.float16, "INT32": np.int32, "INT8": np.int8, "BOOL": np.bool_,
                   "INT64": np.int64, "UINT8": np.uint8}


def numpy_dtype(trt, dtype) -> np.dtype:
    for name, np_type in TRT_NUMPY_TYPES.items():
        if hasattr(trt.DataType, name) and dtype == getattr(trt.DataType, name):
            return np.dtype(np_type)
    raise BackendError(f"engine I/O tensor type {dtype} is not supported here (export with fp32 I/O)")


class EngineRunner:
    """One engine, one execution context, device buffers bound by tensor name.

    Engines with dynamic height/width (one profile over the model's sizes) bind buffers for the shape of the
    first call and rebind when a call brings another size (a camera of another aspect: rare, not per frame)."""

    def __init__(self, loaded, device_index: int = 0):
        from depth_node.export.cuda_runtime import Stream
        from depth_node.export.tensorrt_engine import import_tensorrt

        self._trt = trt = import_tensorrt()
        self._loaded = loaded  # keeps the runtime alive as long as the engine
        self.engine = engine = loaded.engine
        self.device_index = device_index
        self.context = engine.create_execution_context()
        if self.context is None:
            raise BackendError(f"TensorRT could not create an execution context for {loaded.path} (GPU memory?)")
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        if len(inputs) != 1:
            raise BackendError(f"{loaded.path}: expected one input tensor, found {inputs}")
        self.input_name = inputs[0]
        self.names = names
        self.inputs: dict = {}
        self.outputs: dict = {}
        self.stream = Stream(device_index)
        shape = tuple(engine.get_tensor_shape(self.input_name))
        if all(d > 0 for d in shape):
            self._bind(shape)
        self._lock = threading.Lock()

    def _bind(self, shape: tuple[int, ...]) -> None:
        """Buffers for an input of `shape` (output shapes follow from it), addresses set on the context."""
        from depth_node.export.cuda_runtime import DeviceBuffer

        trt, engine = self._trt, self.engine
        if not self.context.set_input_shape(self.input_name, shape):
            raise BackendError(f"{self._loaded.path}: input shape {shape} is outside the engine's profile")
        self.inputs, self.outputs = {}, {}
        for name in self.names:
            dims = tuple(self.context.get_tensor_shape(name))
            buf = DeviceBuffer(dims, numpy_dtype(trt, engine.get_tensor_dtype(name)), self.device_index)
            if not self.context.set_tensor_address(name, buf.ptr):
                raise BackendError(f"TensorRT refused the buffer for tensor {name}")
            (self.inputs if name == self.input_name else self.outputs)[name] = buf
        self._in = self.inputs[self.input_name]

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self._in.shape if self.inputs else tuple(self.engine.get_tensor_shape(self.input_name))

    def __call__(self, x: np.ndarray) -> dict[str, np.ndarray]:
        with self._lock:
            if not self.inputs or tuple(x.shape) != self._in.shape:
                static = all(d > 0 for d in self.engine.get_tensor_shape(self.input_name))
                if static:
                    raise BackendError(f"engine input {self.input_name} is {self.input_shape}, got {tuple(x.shape)}")
                self.stream.synchronize()  # the old buffers may still be in use by the previous call
                self._bind(tuple(x.shape))
            self.stream.upload(self._in, x)
            if not self.context.execute_async_v3(self.stream.ptr):
                raise BackendError("TensorRT execution failed (see the TensorRT log above)")
            outs = {n: self.stream.download(b) for n, b in self.outputs.items()}
            self.stream.synchronize()
        return {n: a.astype(np.float32, copy=False) for n, a in outs.items()}


class TensorRTBackend(Backend):
    name = "tensorrt"

    def __init__(
        self,
        info: ModelInfo,
        depth_onnx: str | Path,
        pose_onnx: str | Path | None = None,
        precision: str = "fp16",
        device: str = "cuda",
        cache_dir: str | Path | None = None,
        workspace_mb: int | None = None,
        pose_precision: str | None = None,
    ):
        """`pose_precision`: the pose engine's, when it differs from the depth engine's (an fp32 pose graph
        beside a Q/DQ depth graph builds fp16: an int8 build needs Q/DQ nodes); None: `precision`."""
        from depth_node.export.tensorrt_engine import (
            DEFAULT_WORKSPACE_MB,
            PRECISIONS,
            engine_for,
            import_tensorrt,
            require_cuda,
        )

        if precision not in PRECISIONS:
            raise BackendError(f"tensorrt backend precisions: {', '.join(PRECISIONS)} (got {precision!r})")
        if device == "cpu":
            raise BackendError("TensorRT runs on NVIDIA GPUs only; on the CPU use backend openvino or onnxruntime")
        import_tensorrt()
        require_cuda()
        index = int(device.split(":", 1)[1]) if ":" in device else 0
        super().__init__(info, precision, f"cuda:{index}")
        ws = workspace_mb or DEFAULT_WORKSPACE_MB
        self.engines = {"depth": engine_for(depth_onnx, precision, cache_dir, ws, index)}
        if pose_onnx:
            self.engines["pose"] = engine_for(pose_onnx, pose_precision or precision, cache_dir, ws, index)
        self._depth = EngineRunner(self.engines["depth"], index)
        self._pose = EngineRunner(self.engines["pose"], index) if pose_onnx else None

    def close(self) -> None:
        super().close()
        self.engines.clear()
