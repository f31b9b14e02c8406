"""CUDA streams and events over CuPy: one stream per run, cross-stream ordering, timing with events.

The GPU data path enqueues everything for a batch on one stream (upload, preprocessing kernel, inference,
decode, NMS, the small download) and synchronizes once. :func:`pipeline_stream` gives every stage of a run
the same stream: the first caller creates it and stores it in the run's :class:`~trtapps.context.RunContext`
stash, later callers get the same object. Where two streams meet (a runner bound to its own stream, a caller
on another), :func:`wait_for` orders them with an event, without blocking the host.
"""

from __future__ import annotations

from typing import Any

from trtapps.context import RunContext, StashKey

#: per-run streams by device ordinal, kept in ``RunContext.stash``
PIPELINE_STREAMS: StashKey[dict[int, Any]] = StashKey("trtapps.gpu.pipeline_streams")


def new_stream(device: int | None = None, non_blocking: bool = True) -> Any:
    """A new CuPy stream on *device* (default: the current device).

    Non-blocking streams do not synchronize with the legacy default stream, so work other libraries put on
    stream 0 does not serialize with the pipeline.
    """
    import cupy

    if device is None:
        return cupy.cuda.Stream(non_blocking=non_blocking)
    with cupy.cuda.Device(device):
        return cupy.cuda.Stream(non_blocking=non_blocking)


def pipeline_stream(context: RunContext | None, device: int = 0) -> Any:
    """The run's stream on *device*: created on first use and shared by every stage of the run.

    Without a context (a runner built by hand) this returns a new stream each call.
    """
    if context is None:
        return new_stream(device)
    streams = context.stash.get(PIPELINE_STREAMS, {})
    if device not in streams:
        streams[device] = new_stream(device)
        context.stash[PIPELINE_STREAMS] = streams
    return streams[device]


def stream_handle(stream: Any) -> int:
    """The raw ``cudaStream_t`` of a CuPy stream, an ``int`` handle, or ``None`` (the current CuPy stream)."""
    if stream is None:
        import cupy

        return int(cupy.cuda.get_current_stream().ptr)
    if isinstance(stream, int):
        return stream
    ptr = getattr(stream, "ptr", None)
    if ptr is None:
        raise TypeError(f"expected a CuPy stream or an int handle, got {type(stream).__name__}")
    return int(ptr)


def wait_for(waiter: Any, producer: Any) -> None:
    """Make future work on *waiter* wait for the work enqueued so far on *producer* (no host sync).

    Both are CuPy streams; nothing happens when they are the same stream.
    """
    if waiter is producer or stream_handle(waiter) == stream_handle(producer):
        return
    import cupy

    event = cupy.cuda.Event(block=False, disable_timing=True)
    event.record(producer)
    waiter.wait_event(event)


class EventTimer:
    """GPU time of the work enqueued on a stream inside a ``with`` block, measured with CUDA events.

    ::

        with EventTimer(stream) as timer:
            runner.infer(feeds, stream)
        print(timer.elapsed_ms)    # synchronizes on the end event the first time it is read

    The events measure device time between the two points on the stream, not host time.
    """

    def __init__(self, stream: Any = None) -> None:
        import cupy

        self.stream = stream if stream is not None else cupy.cuda.get_current_stream()
        self._start = cupy.cuda.Event()
        self._end = cupy.cuda.Event()
        self._elapsed: float | None = None
        self._stopped = False

    def start(self) -> EventTimer:
        self._elapsed = None
        self._stopped = False
        self._start.record(self.stream)
        return self

    def stop(self) -> None:
        self._end.record(self.stream)
        self._stopped = True

    @property
    def elapsed_ms(self) -> float:
        """Milliseconds between start and stop (waits for the stop event)."""
        if not self._stopped:
            raise RuntimeError("EventTimer.elapsed_ms read before stop()")
        if self._elapsed is None:
            import cupy

            self._end.synchronize()
            self._elapsed = float(cupy.cuda.get_elapsed_time(self._start, self._end))
        return self._elapsed

    def __enter__(self) -> EventTimer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
