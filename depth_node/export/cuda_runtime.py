"""The few CUDA runtime calls of the TensorRT path — device buffers, a stream, copies, the device's name —
through NVIDIA's cuda-python bindings, so TensorRT runs without torch (a Jetson image need not carry it).

The runtime API works on the device's primary context from any thread (pycuda's driver-API context stack does
not, under ROS 2 multi-threaded executors); each allocation and stream selects its device first. cuda-python
returns `(error, *values)` from every call: `call` turns an error into one BackendError that names the call."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from depth_node.errors import BackendError

INSTALL_HINT = "pip install cuda-python (the `tensorrt` extra of depth_node installs it)"


def runtime() -> Any:
    """cuda-python's runtime module (`cuda.bindings.runtime`; `cuda.cudart` before cuda-python 12.6)."""
    try:
        from cuda.bindings import runtime as rt
    except ImportError:
        try:
            from cuda import cudart as rt
        except ImportError as exc:
            raise BackendError(f"the TensorRT backend needs cuda-python for its GPU buffers: {INSTALL_HINT}") from exc
    return rt


def call(fn: Any, *args: Any) -> Any:
    """Run one runtime call; its value (or tuple of values, or None), or a BackendError naming the CUDA error."""
    err, *values = fn(*args)
    if int(err) != 0:  # cudaSuccess
        name = getattr(err, "name", str(err))
        hint = " (no usable NVIDIA driver/GPU here)" if "Driver" in name or "NoDevice" in name else ""
        raise BackendError(f"CUDA {getattr(fn, '__name__', 'call')} failed: {name}{hint}")
    return values[0] if len(values) == 1 else (tuple(values) if values else None)


def device_count() -> int:
    """CUDA devices usable here; 0 without cuda-python, a driver or a GPU."""
    try:
        rt = runtime()
        return int(call(rt.cudaGetDeviceCount))
    except BackendError:
        return 0


def device_name(index: int = 0) -> str:
    props = call(runtime().cudaGetDeviceProperties, int(index))
    name = props.name
    return (name.decode(errors="replace") if isinstance(name, bytes) else str(name)).split("\x00")[0]


class DeviceBuffer:
    """`shape`/`dtype` worth of device memory on device `index`, freed with the object."""

    def __init__(self, shape: tuple[int, ...], dtype: Any, index: int = 0) -> None:
        rt = self._rt = runtime()
        self.shape, self.dtype = tuple(int(d) for d in shape), np.dtype(dtype)
        self.nbytes = max(1, math.prod(self.shape) * self.dtype.itemsize)
        call(rt.cudaSetDevice, int(index))
        self.ptr = int(call(rt.cudaMalloc, self.nbytes))

    def free(self) -> None:
        if getattr(self, "ptr", 0):
            self._rt.cudaFree(self.ptr)
            self.ptr = 0

    def __del__(self) -> None:
        self.free()


class Stream:
    """A CUDA stream on device `index`, with host↔device copies enqueued on it."""

    def __init__(self, index: int = 0) -> None:
        rt = self._rt = runtime()
        self.index = int(index)
        call(rt.cudaSetDevice, self.index)
        self.handle = call(rt.cudaStreamCreate)
        self._pending: list[np.ndarray] = []  # host arrays that must outlive their async copies

    @property
    def ptr(self) -> int:
        return int(self.handle)

    def upload(self, buf: DeviceBuffer, host: np.ndarray) -> None:
        src = np.ascontiguousarray(host, dtype=buf.dtype)
        if src.nbytes != buf.nbytes:
            raise BackendError(f"copy of {src.nbytes} bytes into a {buf.nbytes}-byte device buffer")
        self._pending.append(src)
        call(self._rt.cudaMemcpyAsync, buf.ptr, src.ctypes.data, buf.nbytes,
             self._rt.cudaMemcpyKind.cudaMemcpyHostToDevice, self.handle)

    def download(self, buf: DeviceBuffer) -> np.ndarray:
        """The buffer's contents; valid after `synchronize`."""
        out = np.empty(buf.shape, buf.dtype)
        self._pending.append(out)
        call(self._rt.cudaMemcpyAsync, out.ctypes.data, buf.ptr, buf.nbytes,
             self._rt.cudaMemcpyKind.cudaMemcpyDeviceToHost, self.handle)
        return out

    def synchronize(self) -> None:
        call(self._rt.cudaStreamSynchronize, self.handle)
        self._pending.clear()
