"""GPU foundations: devices, streams and events, pinned host and device buffers, CUDA error checking.

Everything here is optional at import time: ``import trtapps.gpu`` (and ``import trtapps``) works on a machine
without CuPy, cuda-python or a GPU. The submodules import CuPy and ``cuda.bindings`` inside the functions that
need them, and the names below are loaded on first access (``from trtapps.gpu import PinnedRing`` imports
:mod:`trtapps.gpu.memory` then, not before).

* :mod:`trtapps.gpu.device`: :func:`device_count`, :func:`gpu_reason`, :func:`select_device`, :func:`gpu_info`
  (name, compute capability, memory, driver/runtime/CuPy versions, for banners, benchmark JSON and engine
  cache keys).
* :mod:`trtapps.gpu.memory`: :class:`PinnedBuffer` (``cudaHostAlloc`` memory seen as a NumPy array),
  :class:`PinnedRing` (N reusable pinned slots sized once for the largest batch), :func:`device_empty`
  (device arrays from CuPy's memory pool).
* :mod:`trtapps.gpu.stream`: :func:`new_stream`, :func:`pipeline_stream` (one stream per run and device, shared
  by preprocessing kernels, the runner and decode), :func:`wait_for` (cross-stream ordering without a host
  sync), :class:`EventTimer` (timing with CUDA events).
* :func:`check_cuda`: the one place where cuda-python's ``(error, *values)`` tuples become values or a
  :class:`~trtapps.errors.CudaError` naming the call that failed.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from trtapps.errors import CudaError

if TYPE_CHECKING:
    from trtapps.gpu.device import device_count, gpu_info, gpu_reason, select_device
    from trtapps.gpu.memory import PinnedBuffer, PinnedRing, PinnedSlot, device_empty
    from trtapps.gpu.stream import EventTimer, new_stream, pipeline_stream, stream_handle, wait_for

_LAZY: dict[str, str] = {
    "device_count": "trtapps.gpu.device",
    "gpu_info": "trtapps.gpu.device",
    "gpu_reason": "trtapps.gpu.device",
    "select_device": "trtapps.gpu.device",
    "PinnedBuffer": "trtapps.gpu.memory",
    "PinnedRing": "trtapps.gpu.memory",
    "PinnedSlot": "trtapps.gpu.memory",
    "device_empty": "trtapps.gpu.memory",
    "EventTimer": "trtapps.gpu.stream",
    "new_stream": "trtapps.gpu.stream",
    "pipeline_stream": "trtapps.gpu.stream",
    "stream_handle": "trtapps.gpu.stream",
    "wait_for": "trtapps.gpu.stream",
}

__all__ = [
    "CudaError",
    "EventTimer",
    "PinnedBuffer",
    "PinnedRing",
    "PinnedSlot",
    "check_cuda",
    "device_count",
    "device_empty",
    "gpu_info",
    "gpu_reason",
    "new_stream",
    "pipeline_stream",
    "select_device",
    "stream_handle",
    "wait_for",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'trtapps.gpu' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


def _error_value(error: Any) -> int:
    try:
        return int(error)
    except (TypeError, ValueError):
        return int(getattr(error, "value", -1))


def _describe(error: Any) -> str:
    """``"cudaErrorMemoryAllocation (out of memory)"`` for a runtime or driver error enum."""
    name = getattr(error, "name", None) or str(error)
    text = None
    try:  # runtime API errors (cudaError_t)
        from cuda.bindings import runtime as cudart

        if isinstance(error, cudart.cudaError_t):
            err, raw = cudart.cudaGetErrorString(error)
            if _error_value(err) == 0 and raw:
                text = raw.decode() if isinstance(raw, bytes) else str(raw)
    except Exception:  # cuda-python missing or too old: the name alone still says what failed
        pass
    if text is None:
        try:  # driver API errors (CUresult)
            from cuda.bindings import driver as cuda

            if isinstance(error, cuda.CUresult):
                err, raw = cuda.cuGetErrorString(error)
                if _error_value(err) == 0 and raw:
                    text = raw.decode() if isinstance(raw, bytes) else str(raw)
        except Exception:
            pass
    return f"{name} ({text})" if text and text != name else str(name)


def check_cuda(call_name: str, result: Any) -> Any:
    """Unwrap a cuda-python call result, raising :class:`CudaError` when the call failed.

    cuda-python returns ``(error,)`` or ``(error, value, ...)``. On success this returns ``None``, the one
    value, or a tuple of the values; on failure it raises ``CudaError("cudaHostAlloc failed:
    cudaErrorMemoryAllocation (out of memory)")``.

    Args:
        call_name: the CUDA function called, used in the message (``"cudaHostAlloc"``).
        result: what the cuda-python call returned (a tuple, or a bare error enum).

    Raises:
        CudaError: the error code is not ``cudaSuccess``/``CUDA_SUCCESS``.
    """
    if isinstance(result, tuple):
        if not result:
            raise CudaError(f"{call_name} returned nothing (expected an error code first)")
        error, values = result[0], result[1:]
    else:
        error, values = result, ()
    if _error_value(error) != 0:
        raise CudaError(f"{call_name} failed: {_describe(error)}")
    if not values:
        return None
    return values[0] if len(values) == 1 else values
