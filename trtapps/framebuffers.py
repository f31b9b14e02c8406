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
from collections.abc import Callable
from typing import Any, Protocol

import cv2
import numpy as np

#: allocates a buffer the pool will keep (e.g. in pinned memory), or returns ``None`` to get an ordinary array
Allocator = Callable[[tuple[int, ...], np.dtype[Any]], np.ndarray | None]

#: default bound on the buffers a pool keeps (it bounds retained memory; the reader never waits for a buffer)
DEFAULT_MAX_BUFFERS = 64


def _refcount(buffers: list[np.ndarray], i: int) -> int:
    """``sys.getrefcount`` of ``buffers[i]``; the pool's check and its baseline both go through this one function."""
    return sys.getrefcount(buffers[i])


def _free_refcount() -> int | None:
    """The count :func:`_refcount` reports for an array held only by its list, or ``None`` when untrustworthy."""
    if not hasattr(sys, "getrefcount") or sysconfig.get_config_var("Py_GIL_DISABLED"):
        return None
    counts: list[int] = []
    for _ in range(3):  # enough calls for the interpreter to specialise the code; the count must not change
        buffers = [np.empty(1, np.uint8) for _ in range(64)]
        counts += [_refcount(buffers, i) for i in range(len(buffers))]
    return counts[0] if len(set(counts)) == 1 else None


#: reference count of an unreferenced pooled buffer (``None``: buffers are never reused on this interpreter)
FREE_REFCOUNT: int | None = _free_refcount()


class FrameBufferPool:
    """Up to *max_buffers* C-contiguous arrays, each handed out again once nothing else references it.

    Use it from one thread (one pool per reader). Buffers of another shape or dtype than the one asked for are
    dropped once free, so a stream that changes resolution moves to buffers of its new size.

    Buffers the pool will keep come from *allocator* when one is set (a GPU pipeline offers page-locked memory, so a
    frame decoded into it crosses to the device with one DMA); when it returns ``None`` (its budget is spent), and
    for arrays the pool does not keep, an ordinary ``np.empty``.

    Attributes:
        allocated: arrays allocated by :meth:`take` (pooled or not).
        reused: times :meth:`take` handed out a pooled buffer again.
        allocator: where kept buffers come from (``None``: ``np.empty``).
    """

    def __init__(self, max_buffers: int = DEFAULT_MAX_BUFFERS, allocator: Allocator | None = None) -> None:
        if max_buffers < 0:
            raise ValueError(f"max_buffers must be 0 or more, got {max_buffers}")
        self.max_buffers = max_buffers
        self.allocator = allocator
        self._buffers: list[np.ndarray] = []
        self._cursor = 0  # where the next search for a free buffer starts
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
            chosen = self._take_free(shape, dtype, FREE_REFCOUNT)
            if chosen is not None:
                self.reused += 1
                return chosen
        self.allocated += 1
        if len(self._buffers) >= self.max_buffers or FREE_REFCOUNT is None:
            return np.empty(shape, dtype)  # the caller's alone
        kept = self.allocator(shape, dtype) if self.allocator is not None else None
        array = kept if kept is not None else np.empty(shape, dtype)
        self._buffers.append(array)
        return array

    def _take_free(self, shape: tuple[int, ...], dtype: np.dtype[Any], free_count: int) -> np.ndarray | None:
        """A free pooled buffer of this format (reference count at most *free_count*), searched from the one after
        the last handed out (frames come back roughly in the order they went out, so the first one looked at is
        usually free); free buffers of another format met on the way are dropped."""
        buffers = self._buffers
        n = len(buffers)
        chosen: int | None = None
        stale: list[int] = []
        for k in range(n):
            i = (self._cursor + k) % n
            if _refcount(buffers, i) > free_count:
                continue  # referenced somewhere: never touched
            if buffers[i].shape == shape and buffers[i].dtype == dtype:
                chosen = i
                break
            stale.append(i)
        found = buffers[chosen] if chosen is not None else None
        if stale:
            gone = set(stale)
            self._buffers = [b for j, b in enumerate(buffers) if j not in gone]
            if chosen is not None:  # dropping shifted the buffers after the stale ones down
                chosen -= sum(1 for j in stale if j < chosen)
        if chosen is not None:
            self._cursor = chosen + 1
        return found


class ReadsFrames(Protocol):
    """What :class:`FrameReader` needs of a capture: OpenCV's ``read([image])``."""

    def read(self, image: np.ndarray | None = None) -> tuple[bool, Any]: ...


def _announced_format(cap: Any) -> tuple[tuple[int, ...], np.dtype[Any]] | None:
    """The BGR frame format a capture announces (``CAP_PROP_FRAME_WIDTH``/``HEIGHT``), so even its first frame can
    be decoded into a pooled buffer; ``None`` when it says nothing. A wrong guess costs nothing but that buffer:
    the capture then returns its own array, whose format is used from then on."""
    get = getattr(cap, "get", None)
    if get is None:
        return None
    try:
        width, height = int(get(cv2.CAP_PROP_FRAME_WIDTH)), int(get(cv2.CAP_PROP_FRAME_HEIGHT))
    except (TypeError, ValueError, OverflowError, cv2.error):
        return None
    return ((height, width, 3), np.dtype(np.uint8)) if width > 0 and height > 0 else None


class FrameReader:
    """Reads frames from OpenCV-like captures into the buffers of a :class:`FrameBufferPool`.

    Each read passes a free buffer of the last image's shape and dtype (``cap.read(buffer)``), which OpenCV decodes
    into in place; the first read goes by the size the capture announces, or, when it announces none, lets the
    capture allocate. When the capture returns another array instead (the stream changed resolution, or a capture
    that ignores the buffer), that image is fine as it is and its format is asked for next time. One reader can
    serve captures one after another (a looping file, a reconnected stream), keeping its buffers.

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

    def use_allocator(self, allocator: Allocator | None, max_buffers: int | None = None) -> None:
        """Take new pooled buffers from *allocator* from now on, keeping up to *max_buffers* (when given, and more
        than now): a pipeline that holds more frames of this reader at once than the default bound raises it."""
        self.pool.allocator = allocator
        if max_buffers is not None:
            self.pool.max_buffers = max(self.pool.max_buffers, int(max_buffers))

    def read(self, cap: ReadsFrames) -> tuple[bool, Any]:
        """``cap.read()``, into a reused buffer where possible; returns ``(ok, image)`` as OpenCV does."""
        if self._format is None:
            self._format = _announced_format(cap)
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


class DecodesIntoBuffers:
    """Mixin for sources that decode through a :class:`FrameReader` (``self.reader``): the pipeline offers them
    buffers (page-locked memory on a GPU path) through :meth:`use_frame_allocator`; sources without the method
    are left alone."""

    reader: FrameReader

    def use_frame_allocator(self, allocator: Allocator | None, max_buffers: int | None = None) -> None:
        """Decode into buffers from *allocator* from now on (see :meth:`FrameReader.use_allocator`)."""
        self.reader.use_allocator(allocator, max_buffers)
