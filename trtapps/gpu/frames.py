"""Frames to the GPU: host BGR images of any sizes → device arrays.

Two ways, for two callers:

* :class:`DeviceFrameStager` — runs over sources. Each reader thread copies every frame it reads into device
  memory as soon as it has it, on its own copy stream, through a small ring of pinned host buffers; the frame
  reaches the batcher already on the device, with an event that says when its copy is complete. The copies
  overlap inference of earlier batches (the H100 runs copy engines and kernels at once), and the inference
  thread never touches host pixels. Each frame keeps its device slot until the pipeline has finished with it
  (tracker included) and releases it; the number of slots bounds device memory and applies back-pressure.
* :class:`FrameUploader` — single images (``predict``/``submit``): the batch is packed into a pinned slot and
  copied to one device staging buffer with a single ``cudaMemcpyAsync`` on the pipeline's stream.

Frames already on the device (a hardware decoder's) are passed through untouched.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from trtapps.structures import is_device_array


class FrameUploader:
    """Uploads batches of ``(H, W, 3)`` uint8 frames; buffers grow to the largest batch seen and are reused.

    Args:
        slots: pinned buffers in the ring (batches whose copy may be in flight at once).
        device: CUDA device ordinal.
    """

    def __init__(self, slots: int = 3, device: int = 0) -> None:
        self.slots = slots
        self.device = device
        self._ring: Any = None
        self._staging: Any = None  # one device buffer; reuse is safe because every batch uses the same stream

    def upload(self, images: Sequence[Any], stream: Any, pinned: bool = False) -> list[Any]:
        """Device views of *images* (host NumPy or already CuPy), enqueued on *stream* (no host sync).

        ``pinned=True`` says the host images already live in pinned memory (see :class:`PinnedFrameStager`):
        they are copied straight to the device, one async copy each, without packing them first.
        """
        import cupy

        from trtapps.gpu.memory import PinnedRing

        host = [(i, im) for i, im in enumerate(images) if not is_device_array(im)]
        out: list[Any] = list(images)
        if not host:
            return out
        sizes = [im.nbytes for _, im in host]
        total = sum(sizes)
        if pinned:
            with cupy.cuda.Device(self.device):
                if self._staging is None or self._staging.size < total:
                    self._staging = cupy.empty(int(total * 1.25) + 4096, dtype=cupy.uint8)
                offset = 0
                for (i, im), n in zip(host, sizes):
                    view = self._staging[offset:offset + n]
                    view.set(im.reshape(-1), stream=stream)
                    out[i] = view.reshape(im.shape)
                    offset += n
            return out
        if self._ring is None or self._ring.nbytes < total:
            if self._ring is not None:
                self._ring.close()
            self._ring = PinnedRing(self.slots, int(total * 1.25) + 4096)
        with cupy.cuda.Device(self.device):
            if self._staging is None or self._staging.size < total:
                self._staging = cupy.empty(int(total * 1.25) + 4096, dtype=cupy.uint8)
            slot = self._ring.acquire()
            packed = slot.view((self._ring.nbytes,), np.uint8)
            offset = 0
            offsets = []
            for (_, im), n in zip(host, sizes):
                np.copyto(packed[offset:offset + n], np.ascontiguousarray(im).reshape(-1))
                offsets.append(offset)
                offset += n
            self._staging[:total].set(packed[:total], stream=stream)
            slot.release(stream)
            for (i, im), start, n in zip(host, offsets, sizes):
                out[i] = self._staging[start:start + n].reshape(im.shape)
        return out

    def close(self) -> None:
        if self._ring is not None:
            self._ring.close()
            self._ring = None
        self._staging = None


class _DeviceSlot:
    """Device memory for one frame, with the events that order its reuse."""

    __slots__ = ("buffer", "ready", "released")

    def __init__(self) -> None:
        import cupy

        self.buffer: Any = None
        self.ready = cupy.cuda.Event(block=False, disable_timing=True)  # the frame's copy is complete
        self.released = cupy.cuda.Event(block=False, disable_timing=True)  # the pipeline's reads are enqueued


class _PinnedSlot:
    __slots__ = ("buffer", "copied")

    def __init__(self) -> None:
        import cupy

        self.buffer: Any = None  # a PinnedBuffer
        self.copied = cupy.cuda.Event(block=False, disable_timing=True)


class DeviceFrameStager:
    """Copies frames to device memory in the threads that read them (see the module docstring).

    Thread-safe: several reader threads (one per source) stage at once, each on its own copy stream.

    Args:
        slots: frames that may be on the device at once (queued, batched, in flight, being finished).
        device: CUDA device ordinal.
        pinned_slots: pinned host buffers frames pass through on their way to the device.
    """

    SLOT_KEY = "_trtapps_device_slot"
    COPY_THREADS = 4
    PARALLEL_BYTES = 1 << 20

    def __init__(self, slots: int, device: int = 0, pinned_slots: int = 8) -> None:
        if slots < 1 or pinned_slots < 1:
            raise ValueError(f"need at least one slot, got slots={slots}, pinned_slots={pinned_slots}")
        import cupy

        self.device = device
        with cupy.cuda.Device(device):
            self._free = [_DeviceSlot() for _ in range(slots)]
            self._pinned = [_PinnedSlot() for _ in range(pinned_slots)]
        self.slots = slots
        self._next_pinned = 0
        self._cond = threading.Condition()
        self._pinned_cond = threading.Condition()
        self._cancelled = False
        self._local = threading.local()  # one copy stream per reader thread
        self._pool: Any = None  # a few threads to split large host copies (np.copyto releases the GIL)

    def stage(self, frame: Any, timeout: float = 60.0) -> None:
        """Copy ``frame.image`` to the device; ``frame.image`` becomes the device copy.

        The source's own array stays reachable as ``frame.host_image()`` (no download for sinks that draw).
        Waits for a free device slot (back-pressure); raises ``RuntimeError`` when the run is cancelled and
        ``TimeoutError`` when no slot frees up within *timeout* seconds.
        """
        import cupy

        from trtapps.structures import HOST_IMAGE_KEY

        image = frame.image
        if is_device_array(image):
            return
        image = np.ascontiguousarray(image)
        nbytes = image.nbytes
        slot = self._acquire(timeout)
        try:
            with cupy.cuda.Device(self.device):
                stream = self._copy_stream()
                if slot.buffer is None or slot.buffer.size < nbytes:
                    slot.released.synchronize()  # nothing may still read the old buffer
                    slot.buffer = cupy.empty(nbytes, dtype=cupy.uint8)
                pinned = self._pinned_slot(nbytes)
                try:
                    host = pinned.buffer.view((nbytes,), np.uint8)
                    self._copy(host.reshape(image.shape), image)
                    stream.wait_event(slot.released)  # the previous frame in this slot has been read
                    slot.buffer[:nbytes].set(host, stream=stream)
                    slot.ready.record(stream)
                    pinned.copied.record(stream)
                finally:
                    self._return_pinned(pinned)
        except BaseException:
            self._give_back(slot)
            raise
        frame.meta[HOST_IMAGE_KEY] = frame.image
        frame.meta[self.SLOT_KEY] = slot
        frame.image = slot.buffer[:nbytes].reshape(image.shape)

    @staticmethod
    def wait(frames: Sequence[Any], stream: Any) -> None:
        """Make *stream* wait (on the GPU, no host sync) until the copies of *frames* are complete."""
        for frame in frames:
            slot = frame.meta.get(DeviceFrameStager.SLOT_KEY)
            if slot is not None:
                stream.wait_event(slot.ready)

    def release(self, frame: Any, stream: Any) -> None:
        """Give *frame*'s slot back once *stream* has passed everything enqueued so far (reads of the frame)."""
        slot = frame.meta.pop(self.SLOT_KEY, None)
        if slot is None:
            return
        slot.released.record(stream)
        self._give_back(slot)

    def cancel(self) -> None:
        """Wake readers waiting for a slot (the run is stopping); :meth:`close` frees the memory later."""
        with self._cond:
            self._cancelled = True
            self._cond.notify_all()

    def close(self) -> None:
        """Free the memory; call only once no thread can still stage into a slot."""
        import cupy

        with cupy.cuda.Device(self.device):
            cupy.cuda.Device(self.device).synchronize()
        with self._cond:
            for slot in self._free:
                slot.buffer = None
            for pinned in self._pinned:
                if pinned.buffer is not None:
                    pinned.buffer.free()
                    pinned.buffer = None
            self._cond.notify_all()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    # -- internals -----------------------------------------------------------------------------------------------
    def _acquire(self, timeout: float) -> _DeviceSlot:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not self._free and not self._cancelled:
                if not self._cond.wait(timeout=max(0.0, deadline - time.monotonic())):
                    raise TimeoutError(f"no device frame slot was released within {timeout:g} s")
            if self._cancelled:
                raise RuntimeError("the run stopped while a frame waited for a device slot")
            return self._free.pop()

    def _give_back(self, slot: _DeviceSlot) -> None:
        with self._cond:
            self._free.append(slot)
            self._cond.notify()

    def _copy_stream(self) -> Any:
        stream = getattr(self._local, "stream", None)
        if stream is None:
            import cupy

            from trtapps.gpu.graphs import relax_capture_mode

            # the inference thread may be capturing a CUDA graph in global mode, which would make this thread's
            # allocations and event waits fail; thread-local mode restricts this thread only by its own captures
            relax_capture_mode()
            stream = self._local.stream = cupy.cuda.Stream(non_blocking=True)
        return stream

    def _pinned_slot(self, nbytes: int) -> _PinnedSlot:
        from trtapps.gpu.memory import PinnedBuffer

        with self._pinned_cond:
            while not self._pinned:  # every pinned slot is in use by another reader
                self._pinned_cond.wait()
            pinned = self._pinned.pop()
        pinned.copied.synchronize()  # its previous copy has left host memory
        if pinned.buffer is None or pinned.buffer.nbytes < nbytes:
            if pinned.buffer is not None:
                pinned.buffer.free()
            pinned.buffer = PinnedBuffer(nbytes)
        return pinned

    def _return_pinned(self, pinned: _PinnedSlot) -> None:
        with self._pinned_cond:
            self._pinned.insert(0, pinned)  # least recently used first: its copy is the likeliest done
            self._pinned_cond.notify()

    def _copy(self, dst: np.ndarray, src: np.ndarray) -> None:
        """Host copy of one frame, in row bands on a few threads when it is large (memory bandwidth bound)."""
        if src.nbytes < self.PARALLEL_BYTES or src.shape[0] < self.COPY_THREADS:
            np.copyto(dst, src)
            return
        if self._pool is None:
            with self._pinned_cond:
                if self._pool is None:
                    from concurrent.futures import ThreadPoolExecutor

                    self._pool = ThreadPoolExecutor(self.COPY_THREADS, thread_name_prefix="trtapps-stage")
        bands = np.array_split(np.arange(src.shape[0]), self.COPY_THREADS)
        list(self._pool.map(lambda rows: np.copyto(dst[rows[0]:rows[-1] + 1], src[rows[0]:rows[-1] + 1]), bands))
