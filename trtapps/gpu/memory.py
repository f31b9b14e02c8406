"""Pinned host buffers and device buffers.

Frames cross PCIe once, from page-locked (pinned) host memory: only pinned memory lets ``cudaMemcpyAsync``
return at once and overlap the copy with kernels. Pinned memory is expensive to allocate, so it is allocated
once, sized for the largest batch, and reused as a ring (:class:`PinnedRing`): the batcher fills one slot while
the copy from the previous slot is still in flight, and a slot is handed out again only after the event
recorded behind its last copy has completed.

Pinned memory comes from ``cudaHostAlloc`` through cuda-python (``cuda.bindings.runtime``) and is freed with
``cudaFreeHost``; device memory comes from CuPy's memory pool (:func:`device_empty`), so runners, kernels and
decode share one allocator.

Ownership: a :class:`PinnedBuffer` owns its memory; the NumPy arrays it hands out are views that must not be
used after :meth:`PinnedBuffer.free` (or after the ring is closed).
"""

from __future__ import annotations

import contextlib
import ctypes
import math
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from trtapps.gpu import check_cuda


def _cudart() -> Any:
    try:
        from cuda.bindings import runtime as cudart
    except ImportError as exc:  # pragma: no cover - depends on the machine
        raise ImportError(
            "pinned host memory needs cuda-python (pip install cuda-python, or trtapps[cu13])"
        ) from exc
    return cudart


class PinnedBuffer:
    """``nbytes`` of page-locked host memory, seen as a flat ``uint8`` NumPy array.

    Args:
        nbytes: size in bytes (at least 1).
        portable: pinned for every CUDA context (``cudaHostAllocPortable``), not only the current one.

    Raises:
        CudaError: ``cudaHostAlloc`` failed (the message names the CUDA error).
    """

    def __init__(self, nbytes: int, portable: bool = False) -> None:
        if nbytes < 1:
            raise ValueError(f"a pinned buffer needs at least one byte, got {nbytes}")
        cudart = _cudart()
        flags = cudart.cudaHostAllocPortable if portable else cudart.cudaHostAllocDefault
        ptr = check_cuda("cudaHostAlloc", cudart.cudaHostAlloc(nbytes, flags))
        self.nbytes = int(nbytes)
        self.ptr: int = int(ptr)
        raw = (ctypes.c_uint8 * self.nbytes).from_address(self.ptr)
        self._bytes: np.ndarray | None = np.ctypeslib.as_array(raw)

    @property
    def bytes(self) -> np.ndarray:
        """The whole buffer as a flat ``uint8`` array."""
        if self._bytes is None:
            raise RuntimeError("this pinned buffer has been freed")
        return self._bytes

    def view(self, shape: Sequence[int], dtype: Any) -> np.ndarray:
        """A C-contiguous array of *shape* and *dtype* over the start of the buffer (no copy).

        Raises:
            ValueError: the array would not fit.
        """
        dt = np.dtype(dtype)
        shape = tuple(int(s) for s in shape)
        need = math.prod(shape) * dt.itemsize
        if need > self.nbytes:
            raise ValueError(
                f"an array of shape {shape} and dtype {dt} needs {need} bytes; this pinned buffer has {self.nbytes}"
            )
        return self.bytes[:need].view(dt).reshape(shape)

    def free(self) -> None:
        """Give the memory back (``cudaFreeHost``); idempotent. Views taken before must not be used after."""
        if self._bytes is None:
            return
        self._bytes = None
        ptr, self.ptr = self.ptr, 0
        check_cuda("cudaFreeHost", _cudart().cudaFreeHost(ptr))

    @property
    def closed(self) -> bool:
        return self._bytes is None

    def __enter__(self) -> PinnedBuffer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.free()


class _PinnedArrayOwner:
    """The memory behind the arrays of :func:`pinned_array`: NumPy makes it every such array's ``base`` (views
    included), so it lives exactly as long as some array over it; its pinned buffer is then handed to *recycle*
    (or freed, without one)."""

    __slots__ = ("__array_interface__", "_buffer", "_recycle")

    def __init__(self, shape: tuple[int, ...], dtype: np.dtype[Any], buffer: PinnedBuffer, recycle: Any) -> None:
        self._buffer: PinnedBuffer | None = buffer
        self._recycle = recycle
        self.__array_interface__ = {"shape": shape, "typestr": dtype.str, "data": (buffer.ptr, False), "version": 3}

    def __del__(self) -> None:
        buffer, self._buffer = self._buffer, None
        if buffer is None:
            return
        with contextlib.suppress(Exception):  # interpreter shutdown or a lost context: the OS frees it on exit
            if self._recycle is not None:
                self._recycle(buffer)
            else:
                buffer.free()


def pinned_array(
    shape: Sequence[int], dtype: Any = np.uint8, buffer: PinnedBuffer | None = None, recycle: Any = None
) -> np.ndarray:
    """A C-contiguous array of *shape* and *dtype* in page-locked memory: its own (``cudaHostAlloc``), or the
    start of *buffer* (which must be large enough and is then the array's alone).

    Unlike a view of a :class:`PinnedBuffer`, the array owns its memory: when the array and every view of it are
    gone, the buffer is handed to *recycle* (a callable taking the :class:`PinnedBuffer`, e.g. to keep it for the
    next frame) or, without one, freed (``cudaFreeHost``). A decoder writing into such an array lets the frame
    cross to the device with one DMA and no host copy (:func:`is_pinned_array`,
    :class:`~trtapps.gpu.frames.DeviceFrameStager`).

    Raises:
        CudaError: ``cudaHostAlloc`` failed.
        ValueError: *buffer* is too small.
    """
    shape = tuple(int(n) for n in shape)
    dt = np.dtype(dtype)
    nbytes = max(1, math.prod(shape) * dt.itemsize)
    if buffer is None:
        buffer = PinnedBuffer(nbytes)
    elif buffer.nbytes < nbytes or buffer.closed:
        raise ValueError(f"an array of shape {shape} and dtype {dt} needs {nbytes} bytes; the buffer has "
                         f"{0 if buffer.closed else buffer.nbytes}")
    return np.asarray(_PinnedArrayOwner(shape, dt, buffer, recycle))


def is_pinned_array(array: Any) -> bool:
    """True for an array (or a view of one) made by :func:`pinned_array` (no CUDA call: it checks the owner)."""
    base = getattr(array, "base", None)
    while isinstance(base, np.ndarray):  # a view's base is the array it was taken from
        base = base.base
    return isinstance(base, _PinnedArrayOwner)


class PinnedSlot:
    """One slot of a :class:`PinnedRing`: a pinned buffer plus the event that says when it is free again."""

    def __init__(self, index: int, buffer: PinnedBuffer) -> None:
        self.index = index
        self.buffer = buffer
        self._event: Any = None  # cupy.cuda.Event recorded after the last async copy out of (or into) this slot

    def view(self, shape: Sequence[int], dtype: Any) -> np.ndarray:
        """See :meth:`PinnedBuffer.view`."""
        return self.buffer.view(shape, dtype)

    def release(self, stream: Any) -> None:
        """Mark the slot busy until the work enqueued so far on *stream* (a CuPy stream) has completed.

        Call it right after enqueueing the async copy that reads (or writes) this slot.
        """
        import cupy

        from trtapps.gpu.driver import record_event

        if self._event is None:
            self._event = cupy.cuda.Event(block=False, disable_timing=True)
        record_event(self._event, stream if stream is not None else cupy.cuda.get_current_stream())

    def wait(self) -> None:
        """Block the host until the work the slot was released behind has completed."""
        if self._event is not None:
            self._event.synchronize()


class PinnedRing:
    """*slots* pinned buffers of *nbytes* each, handed out round-robin.

    Typical use for one batch (the slot is reused only once its copy has finished)::

        slot = ring.acquire()                       # waits for the copy that last used this slot
        host = slot.view((n, h, w, 3), np.uint8)
        host[...] = frames                          # fill on the host
        device.set(host, stream=stream)             # async host→device copy
        slot.release(stream)                        # free again once the stream has passed this point

    Args:
        slots: how many batches may be in flight at once (2 double-buffers; 3 also hides a slow reader).
        nbytes: size of each slot, for the largest batch (see :meth:`for_array`).
        portable: pin for every CUDA context.
    """

    def __init__(self, slots: int, nbytes: int, portable: bool = False) -> None:
        if slots < 1:
            raise ValueError(f"a pinned ring needs at least one slot, got {slots}")
        self.nbytes = int(nbytes)
        self._slots: list[PinnedSlot] = []
        try:
            for index in range(slots):
                self._slots.append(PinnedSlot(index, PinnedBuffer(nbytes, portable=portable)))
        except BaseException:
            self.close()
            raise
        self._next = 0
        self._lock = threading.Lock()

    @classmethod
    def for_array(cls, slots: int, shape: Sequence[int], dtype: Any, portable: bool = False) -> PinnedRing:
        """A ring whose slots each hold one array of *shape* and *dtype* (the largest batch)."""
        nbytes = math.prod(int(s) for s in shape) * np.dtype(dtype).itemsize
        return cls(slots, max(1, nbytes), portable=portable)

    def __len__(self) -> int:
        return len(self._slots)

    @property
    def slots(self) -> list[PinnedSlot]:
        return list(self._slots)

    def acquire(self) -> PinnedSlot:
        """The next slot, once the work it was last released behind has completed."""
        if not self._slots:
            raise RuntimeError("this pinned ring has been closed")
        with self._lock:
            slot = self._slots[self._next]
            self._next = (self._next + 1) % len(self._slots)
        slot.wait()
        return slot

    def close(self) -> None:
        """Wait for in-flight copies, then free every slot; idempotent."""
        slots, self._slots = self._slots, []
        for slot in slots:
            slot.wait()
            slot.buffer.free()

    def __enter__(self) -> PinnedRing:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def device_empty(shape: Sequence[int], dtype: Any, device: int | None = None) -> Any:
    """An uninitialised CuPy array from CuPy's memory pool (on *device*, default: the current one)."""
    import cupy

    if device is None:
        return cupy.empty(tuple(shape), dtype=dtype)
    with cupy.cuda.Device(device):
        return cupy.empty(tuple(shape), dtype=dtype)


#: the largest array :func:`to_device` stages through its pinned ring (kernel parameters are a few KiB)
SMALL_UPLOAD_BYTES = 64 * 1024
#: slots of each device's ring: uploads that may be in flight at once before one waits for the oldest
SMALL_UPLOAD_SLOTS = 64
_small_rings: dict[int, PinnedRing] = {}
_small_lock = threading.Lock()


def to_device(array: Any, stream: Any = None, dtype: Any = None) -> Any:
    """A small array (kernel parameters) on the device, its copy queued on *stream* without a host wait.

    ``cupy.asarray(numpy_array)`` copies from pageable memory: the host thread waits for the driver, and the
    stream waits for a staged copy. Measured on the H100, that made the preprocessing call of a batch of 32
    take 8.6 µs per frame of GPU time against 4.1 µs for the kernel alone. Here the bytes go into a slot of a
    per-device pinned ring and one async DMA moves them; the slot is reused only once that copy has completed.
    Arrays already on the device are returned as they are (converted to *dtype*, made contiguous); arrays
    larger than :data:`SMALL_UPLOAD_BYTES` take CuPy's ordinary copy.
    """
    import cupy

    from trtapps.gpu.driver import copy_to_device

    s = stream if stream is not None else cupy.cuda.get_current_stream()
    if isinstance(array, cupy.ndarray):
        with s:
            return cupy.ascontiguousarray(array if dtype is None else array.astype(dtype, copy=False))
    host = np.asarray(array, dtype=dtype, order="C")  # keeps 0-d arrays 0-d
    if host.nbytes == 0 or host.nbytes > SMALL_UPLOAD_BYTES:
        with s:
            return cupy.asarray(host)
    device = cupy.cuda.Device().id
    ring = _small_rings.get(device)
    if ring is None:
        with _small_lock:
            ring = _small_rings.get(device)
            if ring is None:
                ring = _small_rings[device] = PinnedRing(SMALL_UPLOAD_SLOTS, SMALL_UPLOAD_BYTES)
    slot = ring.acquire()
    slot.view((host.nbytes,), np.uint8)[...] = host.reshape(-1).view(np.uint8)
    with s:
        out = cupy.empty(host.shape, host.dtype)
    copy_to_device(int(out.data.ptr), slot.buffer.ptr, host.nbytes, s)
    slot.release(s)
    return out
