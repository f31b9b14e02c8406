"""CUDA graphs: record a batch's GPU work once, then replay it with one launch.

A small model at batch 1 spends more time launching kernels than running them: ONNX Runtime's CUDA provider
launches yolov8n's ~250 kernels one by one from the host, and the GPU waits between them. A CUDA graph records
the launches once (stream capture) and replays the whole sequence with one ``cudaGraphLaunch``. What a replay
repeats is fixed at capture time, which sets the rules every user of this module follows:

* **the same addresses**: a replay reads and writes the device memory the captured work used, so inputs are
  copied into (or written straight into) buffers allocated once, and outputs land in buffers allocated once;
* **the same shapes**: one graph per input shape (per batch size for the runners);
* **nothing host-side inside**: no host synchronisation, no pageable copy and no allocation that outlives the
  capture may happen while capturing; host-side decisions are taken once, at capture.

Who uses what:

* the GPU runners' ``cuda_graph`` option (:mod:`trtapps.runners.onnxruntime_cuda`: ONNX Runtime's own CUDA
  graphs, one ``gpu_graph_id`` per batch size; :mod:`trtapps.runners.tensorrt`: stream capture around
  ``execute_async_v3``, one execution context per shape) — the option plumbing is here
  (:data:`CUDA_GRAPH_DESCRIPTION`, :func:`resolve_cuda_graph`, :func:`onnxruntime_graph_problem`);
* :class:`GraphCache`: captures any function of fixed device buffers (an app's decode + NMS kernels, a whole
  preprocess → TensorRT → decode sequence) per key, with its own memory pool, and falls back to calling the
  function directly, with one logged reason, when it cannot be captured.

Threads. ONNX Runtime captures in ``cudaStreamCaptureModeGlobal``: while it captures (the first run at each
batch size), *any other thread* of the process that makes a "potentially unsafe" CUDA call (``cudaMalloc``, an
event or stream synchronisation) gets an error and invalidates the capture. A thread that makes CUDA calls while
inference may be capturing elsewhere (the pipeline's frame-staging reader threads) calls
:func:`relax_capture_mode` once: its calls are then judged by its own captures only. The captures made here
(TensorRT, :class:`GraphCache`) use thread-local and relaxed modes, which never restrict other threads.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

from trtapps.errors import ConfigError

log = logging.getLogger("trtapps.gpu.graphs")

#: the description of the ``cuda_graph`` option of both GPU backends
CUDA_GRAPH_DESCRIPTION = (
    "Capture each batch size's inference as a CUDA graph on first use and replay it afterwards (one launch "
    "instead of hundreds: faster at small batches; same results). Inputs are copied into buffers the runner "
    "owns (runner.input_buffer gives them to preprocessing, saving the copy). Off by default; falls back to "
    "direct runs, with a logged reason, where the model cannot be captured."
)

#: backends that implement ``cuda_graph``
GRAPH_BACKENDS = ("onnxruntime_cuda", "tensorrt")

#: the first ONNX Runtime with one CUDA graph per ``gpu_graph_id`` run option (earlier ones replay a single
#: graph whatever the batch size, which would be wrong for a second batch size)
ONNXRUNTIME_GRAPH_ID_VERSION = (1, 18)


def cuda_graph_problem(backend: str) -> str | None:
    """Why *backend* cannot run CUDA graphs, or ``None`` when it can."""
    if backend in GRAPH_BACKENDS:
        return None
    return f"backend {backend!r} cannot replay CUDA graphs (only {' and '.join(GRAPH_BACKENDS)} can)"


_told: set[str] = set()
_told_lock = threading.Lock()


def resolve_cuda_graph(backend: str, requested: bool, *, explicit: bool) -> bool:
    """Whether the runner of *backend* should get ``cuda_graph=True``.

    Args:
        backend: the backend that will run (after ``auto`` chose one).
        requested: the config's ``backend.cuda_graph``.
        explicit: the config named *backend* itself (not ``auto``).

    Raises:
        ConfigError: graphs were requested for an explicitly chosen CPU backend (a config that cannot do what it
            says); under ``backend: auto`` the same case logs one warning and runs without graphs, so the
            config stays portable to machines without a GPU.
    """
    if not requested:
        return False
    problem = cuda_graph_problem(backend)
    if problem is None:
        return True
    if explicit:
        raise ConfigError(f"backend.cuda_graph: {problem}; remove cuda_graph or choose one of those")
    with _told_lock:
        first = backend not in _told
        _told.add(backend)
    if first:
        log.warning("backend.cuda_graph is ignored: %s (chosen by backend auto)", problem)
    return False


def _version_tuple(version: str) -> tuple[int, ...]:
    """``(1, 31, 1)`` for ``"1.31.1"``, ``(1, 20)`` for ``"1.20.dev20240101"``; ``()`` when it does not start so."""
    match = re.match(r"(\d+)(?:\.(\d+))?(?:\.(\d+))?", version.strip())
    return tuple(int(g) for g in match.groups() if g is not None) if match else ()


def onnxruntime_graph_problem(version: str) -> str | None:
    """Why ONNX Runtime *version* cannot give each batch size its own CUDA graph, or ``None``."""
    have = _version_tuple(version)
    if have and have >= ONNXRUNTIME_GRAPH_ID_VERSION:
        return None
    need = ".".join(str(v) for v in ONNXRUNTIME_GRAPH_ID_VERSION)
    return f"onnxruntime {version} has no per-batch-size CUDA graphs (gpu_graph_id, onnxruntime >= {need})"


def relax_capture_mode() -> None:
    """Let the calling thread make CUDA calls while another thread captures in global mode.

    Sets the thread's stream-capture interaction mode (driver state, per thread) to thread-local: its own calls
    are then restricted only by captures it makes itself. Call it in every thread that allocates, copies or
    synchronises while inference may be capturing on another thread (PyTorch's NCCL watchdog does the same for
    its event queries); after the first call in a thread it returns at once.

    Raises:
        CudaError: the driver refused, or there is no NVIDIA driver.
    """
    if getattr(_relaxed, "done", False):
        return
    from trtapps.errors import CudaError
    from trtapps.gpu import check_cuda

    try:
        from cuda.bindings import driver

        mode = driver.CUstreamCaptureMode.CU_STREAM_CAPTURE_MODE_THREAD_LOCAL
        result = driver.cuThreadExchangeStreamCaptureMode(mode)
    except Exception as exc:  # no driver library, cuda-python missing
        raise CudaError(f"cuThreadExchangeStreamCaptureMode failed: {type(exc).__name__}: {exc}") from exc
    check_cuda("cuThreadExchangeStreamCaptureMode", result)
    _relaxed.done = True


#: which threads :func:`relax_capture_mode` has set (the mode is the thread's own driver state)
_relaxed = threading.local()


def clear_last_cuda_error() -> None:
    """Reset the CUDA runtime's last-error state after an abandoned capture, so that a library that checks
    ``cudaGetLastError`` after its next launch (TensorRT, ONNX Runtime) does not report the capture's error."""
    try:
        from cuda.bindings import runtime as cudart

        cudart.cudaGetLastError()
    except Exception:  # cuda-python missing: nothing to clear through it
        pass


def same_memory(a: Any, b: Any) -> bool:
    """Whether CuPy arrays *a* and *b* are the same bytes seen the same way (pointer, shape, strides, dtype)."""
    return (
        int(a.data.ptr) == int(b.data.ptr)
        and tuple(a.shape) == tuple(b.shape)
        and tuple(a.strides) == tuple(b.strides)
        and a.dtype == b.dtype
    )


def copy_into(dst: Any, src: Any, stream: Any) -> None:
    """Enqueue ``dst[...] = src`` on *stream*, unless *src* already is *dst* (zero copy).

    A C-contiguous *src* is one ``cudaMemcpyAsync``; any other layout goes through CuPy's copy kernel.

    Raises:
        ValueError: the shapes or dtypes differ.
    """
    if tuple(dst.shape) != tuple(src.shape) or dst.dtype != src.dtype:
        raise ValueError(
            f"cannot copy a {src.dtype} {tuple(src.shape)} array into a {dst.dtype} {tuple(dst.shape)} one"
        )
    if same_memory(dst, src) or dst.size == 0:
        return
    if src.flags.c_contiguous and dst.flags.c_contiguous:
        dst.data.copy_from_device_async(src.data, dst.nbytes, stream=stream)
        return
    import cupy

    with stream:
        cupy.copyto(dst, src)


def array_key(*arrays: Any) -> tuple[Any, ...]:
    """A :class:`GraphCache` key part for device arrays: shape, dtype and address of each (a graph reads the
    addresses it was captured with, so a new address needs a new graph)."""
    return tuple((tuple(int(d) for d in a.shape), str(a.dtype), int(a.data.ptr)) for a in arrays)


@dataclass
class _Entry:
    graph: Any  # cupy.cuda.Graph, or None where capture failed (the function is called directly)
    outputs: Any  # what the function returned while being captured: the buffers each replay writes
    pool: Any  # the memory pool the capture allocated from, kept for as long as the graph
    launches: int = 0


class GraphCache:
    """CUDA graphs of one function, one per key, replayed instead of calling the function.

    ::

        cache = GraphCache("yolo decode")
        key = (batch, array_key(pred))                  # what the captured work depends on
        compact = cache.run(key, lambda: decode_nms(pred, d_params, pinned), stream)

    The first call for a key calls *fn* directly (compiling kernels, filling caches) and returns its result,
    then captures a second call on *stream*; later calls launch the graph and return the arrays *fn* returned
    during the capture, which each launch overwrites. Everything *fn* allocates while being captured comes from
    a memory pool owned by the graph, so no later allocation can take memory a replay writes.

    *fn* must be a function of device memory at fixed addresses: its inputs are read from the buffers it read
    during the capture (the key must change when they move: :func:`array_key`), host-side values are frozen at
    capture, and it must not synchronise, copy from pageable host memory, or read results on the host. When
    capture fails (a synchronisation, a pageable copy, a library that cannot be captured), the key is marked
    direct: *fn* is called every time, and the reason is logged once per cache.

    Not thread-safe: one cache per thread (a pipeline's worker).

    Args:
        name: what is captured, for the log.
        enabled: ``False`` calls *fn* directly always (the cache then only counts calls).
        max_entries: graphs kept at most (least recently used dropped first); ``None``: no limit.
    """

    def __init__(self, name: str, *, enabled: bool = True, max_entries: int | None = None) -> None:
        if max_entries is not None and max_entries < 1:
            raise ValueError(f"max_entries must be at least 1, got {max_entries}")
        self.name = name
        self.enabled = enabled
        self.max_entries = max_entries
        self._entries: dict[Hashable, _Entry] = {}
        self.problem: str | None = None  # the first reason a capture failed
        self.direct_calls = 0
        self.launches = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._entries

    def captured(self, key: Hashable) -> bool:
        """Whether *key* replays a graph (``False``: not seen yet, or its capture failed)."""
        entry = self._entries.get(key)
        return entry is not None and entry.graph is not None

    def run(self, key: Hashable, fn: Callable[[], Any], stream: Any) -> Any:
        """*fn*'s result for *key*: replayed from its graph, or computed directly (see the class docstring).

        Args:
            key: everything the captured work depends on (shapes, addresses, constants baked in).
            fn: enqueues the work on *stream* (the current stream inside) and returns its output arrays.
            stream: a CuPy stream other than the legacy default stream (which cannot be captured).
        """
        entry = self._entries.get(key)
        if entry is not None:
            self._entries[key] = self._entries.pop(key)  # most recently used last
            if entry.graph is None:
                self.direct_calls += 1
                with stream:
                    return fn()
            entry.graph.launch(stream)
            entry.launches += 1
            self.launches += 1
            return entry.outputs
        self.direct_calls += 1
        with stream:
            result = fn()  # warm-up: kernels compiled, tables uploaded, before anything is captured
        if not self.enabled:
            return result
        self._entries[key] = self._capture(fn, stream)
        if self.max_entries is not None and len(self._entries) > self.max_entries:
            oldest = next(iter(self._entries))
            del self._entries[oldest]
        return result

    def clear(self) -> None:
        """Drop every graph and its memory (the work queued before must have finished or hold its own refs)."""
        self._entries.clear()

    def _capture(self, fn: Callable[[], Any], stream: Any) -> _Entry:
        import cupy

        if int(stream.ptr) == 0:
            self._failed("the legacy default stream cannot be captured; pass a cupy.cuda.Stream(non_blocking=True)")
            return _Entry(None, None, None)
        pool = cupy.cuda.MemoryPool()
        outputs: Any = None
        failure: BaseException | None = None
        graph = None
        with cupy.cuda.using_allocator(pool.malloc), stream:
            stream.begin_capture()  # relaxed mode: other threads are never restricted by this capture
            try:
                outputs = fn()
            except Exception as exc:
                failure = exc
            finally:
                try:
                    graph = stream.end_capture()
                except Exception as exc:  # cudaErrorStreamCaptureInvalidated and the like
                    failure = failure or exc
                    graph = None
        if failure is not None or graph is None:
            clear_last_cuda_error()
            reason = f"{type(failure).__name__}: {failure}" if failure is not None else "no graph was produced"
            self._failed(reason.splitlines()[0])
            return _Entry(None, None, None)
        return _Entry(graph, outputs, pool)

    def _failed(self, reason: str) -> None:
        if self.problem is None:
            self.problem = reason
            log.warning("%s: CUDA graph capture is not possible (%s); launching directly", self.name, reason)
        else:
            log.debug("%s: CUDA graph capture failed again (%s)", self.name, reason)


__all__ = [
    "CUDA_GRAPH_DESCRIPTION",
    "GRAPH_BACKENDS",
    "ONNXRUNTIME_GRAPH_ID_VERSION",
    "GraphCache",
    "array_key",
    "clear_last_cuda_error",
    "copy_into",
    "cuda_graph_problem",
    "onnxruntime_graph_problem",
    "relax_capture_mode",
    "resolve_cuda_graph",
    "same_memory",
]
