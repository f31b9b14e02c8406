"""The per-frame CUDA calls of the data path, made without holding the GIL.

The pipeline's threads make a handful of tiny CUDA calls per frame (record an event, make a stream wait for one,
queue a host→device copy). CuPy's wrapper of ``cudaEventRecord`` keeps the GIL for the duration of the call, and the
driver serialises calls on one context: a record that waits behind another thread's launches (ONNX Runtime queues
~250 kernels per batch) stalls every Python thread of the process meanwhile. Measured with py-spy on the H100
(``benchmarks/results/gpu.md``, session 5), the consumer thread spent 74 µs per frame in one such record. CuPy's
``ndarray.set`` and slicing add tens of µs of Python per frame on top.

These functions call the driver API (``libcuda``) through :mod:`ctypes`, which releases the GIL for the call,
with argument types declared once. They take CuPy streams/events or raw ``int`` handles (``cudaStream_t`` and
``cudaEvent_t`` are the driver's ``CUstream`` and ``CUevent``). Where ``libcuda`` cannot be loaded they fall
back to CuPy's runtime wrappers, so behaviour never depends on it, only speed.

The driver API needs the device's context to be current on the calling thread; the runtime makes it current on a
thread's first runtime call. A thread whose first CUDA call is one of these gets ``CUDA_ERROR_INVALID_CONTEXT``
once: the call is then made through CuPy's runtime wrapper, which binds the context for the calls that follow.
"""

from __future__ import annotations

import ctypes
import threading
from typing import Any

from trtapps.errors import CudaError

#: CUresult values handled here
CUDA_SUCCESS = 0
CUDA_ERROR_INVALID_CONTEXT = 201

_lock = threading.Lock()
_loaded: list[Any] = []  # [lib or None], filled once


def _driver() -> Any:
    """``libcuda`` with the prototypes used here, or ``None`` where it cannot be loaded."""
    if _loaded:
        return _loaded[0]
    with _lock:
        if not _loaded:
            lib: Any = None
            try:
                lib = ctypes.CDLL("libcuda.so.1")
                vp, u64, size, uint = ctypes.c_void_p, ctypes.c_uint64, ctypes.c_size_t, ctypes.c_uint
                lib.cuEventRecord.argtypes = [vp, vp]
                lib.cuStreamWaitEvent.argtypes = [vp, vp, uint]
                lib.cuMemcpyHtoDAsync_v2.argtypes = [u64, vp, size, vp]
                lib.cuGetErrorName.argtypes = [ctypes.c_int, ctypes.POINTER(ctypes.c_char_p)]
                for fn in (lib.cuEventRecord, lib.cuStreamWaitEvent, lib.cuMemcpyHtoDAsync_v2):
                    fn.restype = ctypes.c_int
            except (OSError, AttributeError):
                lib = None
            _loaded.append(lib)
    return _loaded[0]


def _handle(obj: Any) -> int:
    return obj if isinstance(obj, int) else int(obj.ptr)


def _fail(call: str, status: int) -> CudaError:
    name = ctypes.c_char_p()
    lib = _driver()
    if lib is not None and lib.cuGetErrorName(status, ctypes.byref(name)) == CUDA_SUCCESS and name.value:
        return CudaError(f"{call} failed: {name.value.decode()} ({status})")
    return CudaError(f"{call} failed with CUDA error {status}")


def _status(call: str, *args: int) -> int | None:
    """The ``CUresult`` of driver function *call*, raised as :class:`CudaError` unless it succeeded; ``None`` when
    the caller must make the call through CuPy instead (no ``libcuda``, or no context bound on this thread yet)."""
    lib = _driver()
    if lib is None:
        return None
    status = int(getattr(lib, call)(*args))
    if status == CUDA_ERROR_INVALID_CONTEXT:
        return None
    if status != CUDA_SUCCESS:
        raise _fail(call, status)
    return status


def record_event(event: Any, stream: Any) -> None:
    """``event`` marks the work enqueued so far on ``stream`` (``cuEventRecord``)."""
    e, s = _handle(event), _handle(stream)
    if _status("cuEventRecord", e, s) is None:
        import cupy

        cupy.cuda.runtime.eventRecord(e, s)


def wait_event(stream: Any, event: Any) -> None:
    """Work enqueued on ``stream`` from now on waits for ``event`` (``cuStreamWaitEvent``; the host never waits)."""
    s, e = _handle(stream), _handle(event)
    if _status("cuStreamWaitEvent", s, e, 0) is None:
        import cupy

        cupy.cuda.runtime.streamWaitEvent(s, e)


def copy_to_device(dst: int, src: int, nbytes: int, stream: Any) -> None:
    """Queue a copy of ``nbytes`` from host address ``src`` to device address ``dst`` on ``stream``.

    Asynchronous when ``src`` is pinned memory (the caller keeps it unchanged until an event recorded after
    the copy has completed); from pageable memory the call returns once the driver has staged the bytes.
    """
    s = _handle(stream)
    if _status("cuMemcpyHtoDAsync_v2", dst, src, nbytes, s) is None:
        import cupy

        cupy.cuda.runtime.memcpyAsync(dst, src, nbytes, cupy.cuda.runtime.memcpyHostToDevice, s)
