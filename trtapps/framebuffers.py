"""Decoded frames in a bounded set of reused host buffers, instead of one fresh array per frame.

Why: a video reader that lets ``cv2.VideoCapture.read()`` allocate every frame (6 MB at 1080p) in its own thread,
while other threads free them, fragments glibc's malloc arenas: the 4-stream GPU soak's RSS grew by up to 13 %
while the heap in use stayed flat (``benchmarks/results/soak.md``). Decoding into buffers that are reused stops
the churn.

When is a buffer free again? Frames are held by the pipeline for times no reader knows (queues, GPU staging,
sinks, ``keep_images``), and nobody hands them back. So :class:`FrameBufferPool` needs no release call: a pooled
buffer is handed out again only when nothing outside the pool references it any more, which CPython's reference
count tells exactly. Anything that can still reach the pixels keeps the count up: a ``Frame`` holding the array,
a view or slice of it (NumPy views reference their base), a ``memoryview``, a queued copy job. A buffer still in
use is never written to; the pool only allocates another one (the reader never waits).

The reference count is checked against a baseline measured once, on this interpreter, through the very code that
checks the pool. Where counts cannot be trusted (no ``sys.getrefcount``, a free-threaded build, a baseline that
changes between measurements) the pool never reuses a buffer, and reading behaves as before.

Not covered: a *weak* reference to a frame's array (``weakref.ref(image)``) does not count, so the pixels behind
it may be overwritten while the weak reference is alive; hold a strong reference (or a copy) instead. (A raw
pointer such as ``image.ctypes.data`` never kept an array alive in the first place.)

Memory kept: each pool keeps the most buffers its reader ever had in use at once (at most ``max_buffers``), for
as long as the reader lives; with several sources that is the sum of each one's peak.
"""

from __future__ import annotations

import sys
import sysconfig
from typing import Any, Protocol

import numpy as np

#: default bound on the buffers a pool keeps (it bounds retained memory; the reader never waits for a buffer)
DEFAULT_MAX_BUFFERS = 64


def _refcounts(buffers: list[np.ndarray]) -> list[int]:
    """``sys.getrefcount`` of each buffer; the pool's check and its baseline both go through this one function."""
    return [sys.getrefcount(buffer) for buffer in buffers]


def _free_refcount() -> int | None:
    """The count :func:`_refcounts` reports for an array held only by its list, or ``None`` when untrustworthy."""
    if not hasattr(sys, "getrefcount") or sysconfig.get_config_var("Py_GIL_DISABLED"):
        return None
    counts: list[int] = []
    for _ in range(3):  # enough calls for the interpreter to specialise the code; the count must not change
        counts += _refcounts([np.empty(1, np.uint8) for _ in range(64)])
    return counts[0] if len(set(counts)) == 1 else None


#: reference count of an unreferenced pooled buffer (``None``: buffers are never reused on this interpreter)
FREE_REFCOUNT: int | None = _free_refcount()


class FrameBufferPool:
    """Up to *max_buffers* C-contiguous arrays, each handed out again once nothing else references it.

    Use it from one thread (one pool per reader). Buffers of another shape or dtype than the one asked for are
    dropped once free, so a stream that changes resolution moves to buffers of its new size.

    Attributes:
        allocated: arrays allocated by :meth:`take` (pooled or not).
        reused: times :meth:`take` handed out a pooled buffer again.
    """

    def __init__(self, max_buffers: int = DEFAULT_MAX_BUFFERS) -> None:
        if max_buffers < 0:
            raise ValueError(f"max_buffers must be 0 or more, got {max_buffers}")
        self.max_buffers = max_buffers
        self._buffers: list[np.ndarray] = []
        self.allocated = 0
        self.reused = 0

    def __len__(self) -> int:
        """Buffers the pool keeps (in use or free)."""
        return len(self._buffers)

    def owns(self, array: Any) -> bool:
        """True when *array* is one of the pool's buffers (the object itself, not a view)."""
        return any(array is buffer for buffer in self._buffers)

    def take(self, shape: tuple[int, ...], dtype: Any = np.uint8) -> np.ndarray:
        """A writable C-contiguous array of *shape* and *dtype* that nothing else references.

        A free pooled buffer when there is one; else a new array, kept in the pool while it holds fewer than
        ``max_buffers`` (else the caller's alone). Its contents are undefined.
        """
        shape = tuple(int(n) for n in shape)
        dtype = np.dtype(dtype)
        if FREE_REFCOUNT is not None and self._buffers:
            counts = _refcounts(self._buffers)
            chosen: np.ndarray | None = None
            stale = False
            for buffer, count in zip(self._buffers, counts):
                if count > FREE_REFCOUNT:
                    continue  # referenced somewhere: never touched
                if buffer.shape != shape or buffer.dtype != dtype:
                    stale = True
                elif chosen is None:
                    chosen = buffer
            if stale:  # free buffers of another format: drop them (the counts above stay valid for the rest)
                self._buffers = [
                    b for b, count in zip(self._buffers, counts)
                    if count > FREE_REFCOUNT or (b.shape == shape and b.dtype == dtype)
                ]
            if chosen is not None:
                self.reused += 1
                return chosen
        array = np.empty(shape, dtype)
        self.allocated += 1
        if len(self._buffers) < self.max_buffers and FREE_REFCOUNT is not None:
            self._buffers.append(array)
        return array


class ReadsFrames(Protocol):
    """What :class:`FrameReader` needs of a capture: OpenCV's ``read([image])``."""

    def read(self, image: np.ndarray | None = None) -> tuple[bool, Any]: ...


class FrameReader:
    """Reads frames from OpenCV-like captures into the buffers of a :class:`FrameBufferPool`.

    The first read has no format to go by and lets the capture allocate; later reads pass a free buffer of the
    last image's shape and dtype (``cap.read(buffer)``), which OpenCV decodes into in place. When the capture
    returns another array instead (the stream changed resolution, or a capture that ignores the buffer), that
    image is fine as it is and its format is asked for next time. One reader can serve captures one after
    another (a looping file, a reconnected stream), keeping its buffers.

    Attributes:
        pool: where the buffers live.
        in_place: frames decoded into a pooled buffer.
        fresh: frames the capture allocated itself.
    """

    def __init__(self, pool: FrameBufferPool | None = None, max_buffers: int = DEFAULT_MAX_BUFFERS) -> None:
        self.pool = pool if pool is not None else FrameBufferPool(max_buffers)
        self._format: tuple[tuple[int, ...], np.dtype[Any]] | None = None
        self.in_place = 0
        self.fresh = 0

    def read(self, cap: ReadsFrames) -> tuple[bool, Any]:
        """``cap.read()``, into a reused buffer where possible; returns ``(ok, image)`` as OpenCV does."""
        if self._format is None or FREE_REFCOUNT is None:
            ok, image = cap.read()
        else:
            buffer = self.pool.take(*self._format)
            ok, image = cap.read(buffer)
            if ok and image is buffer:
                self.in_place += 1
                return ok, image
        if ok and isinstance(image, np.ndarray) and image.size:
            self.fresh += 1
            self._format = (image.shape, image.dtype)
        return ok, image
