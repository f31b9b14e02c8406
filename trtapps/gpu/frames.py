"""Frames to the GPU: host BGR images of any sizes → device arrays, with one async copy per batch.

The batch is packed into a slot of a ring of pinned (page-locked) host buffers, copied to one device staging
buffer with a single ``cudaMemcpyAsync`` on the pipeline's stream, and handed out as per-frame device views.
The slot is only reused after the stream has passed the copy (an event per slot), so the host can pack the
next batch while the GPU still works on this one. Frames already on the device are passed through untouched.
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


class PinnedFrameStager:
    """Copies frames into pinned host memory as they are read, off the inference thread.

    The reader thread calls :meth:`stage` on each frame: its pixels move into a slot of a pinned ring and
    ``frame.image`` becomes a view of that slot, so the GPU worker can copy it to the device at once without a
    host-side packing step. A slot stays busy until :meth:`release` records, on the stream that read it, that
    its copy was enqueued; :meth:`stage` waits for a free slot (back-pressure).

    Args:
        slots: frames that may be staged and not yet released at once (queue + batches in flight).
    """

    SLOT_KEY = "_trtapps_pinned_slot"

    def __init__(self, slots: int) -> None:
        self.slots = slots
        self._ring: Any = None
        self._busy: set[int] = set()
        self._cond = threading.Condition()
        self._cancelled = False
        self._pool: Any = None  # a few threads to split large copies (np.copyto releases the GIL)

    def stage(self, frame: Any, timeout: float = 60.0) -> None:
        """Move ``frame.image`` into pinned memory (no-op for device frames)."""
        from trtapps.gpu.memory import PinnedRing

        image = frame.image
        if is_device_array(image):
            return
        with self._cond:
            if self._ring is None or self._ring.nbytes < image.nbytes:
                # a larger frame: a new ring; the old one is freed once nothing refers to its slots
                deadline = time.monotonic() + timeout
                while self._busy and self._cond.wait(timeout=max(0.0, deadline - time.monotonic())):
                    pass
                if self._ring is not None:
                    self._ring.close()
                self._ring = PinnedRing(self.slots, image.nbytes)
                self._busy.clear()
            slot = self._ring.acquire()
            deadline = time.monotonic() + timeout
            while id(slot) in self._busy and not self._cancelled:
                if not self._cond.wait(timeout=max(0.0, deadline - time.monotonic())):
                    raise TimeoutError("no pinned frame slot was released in time")
            if self._cancelled:
                raise RuntimeError("the run stopped while a frame waited for a pinned slot")
            self._busy.add(id(slot))
        view = slot.view(image.shape, np.uint8)
        self._copy(view, image)
        frame.image = view
        frame.meta[self.SLOT_KEY] = slot

    COPY_THREADS = 4
    PARALLEL_BYTES = 1 << 20

    def _copy(self, dst: np.ndarray, src: np.ndarray) -> None:
        """Host copy of one frame, in row bands on a few threads when it is large (memory bandwidth bound)."""
        if src.nbytes < self.PARALLEL_BYTES or src.shape[0] < self.COPY_THREADS:
            np.copyto(dst, src)
            return
        if self._pool is None:
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(self.COPY_THREADS, thread_name_prefix="trtapps-stage")
        bands = np.array_split(np.arange(src.shape[0]), self.COPY_THREADS)
        list(self._pool.map(lambda rows: np.copyto(dst[rows[0]:rows[-1] + 1], src[rows[0]:rows[-1] + 1]), bands))

    def release(self, frames: Sequence[Any], stream: Any) -> None:
        """Free the slots of *frames* once *stream* has passed the work enqueued so far (copies included)."""
        with self._cond:
            for frame in frames:
                slot = frame.meta.pop(self.SLOT_KEY, None)
                if slot is not None:
                    if stream is not None:
                        slot.release(stream)
                    self._busy.discard(id(slot))
            self._cond.notify_all()

    def cancel(self) -> None:
        """Wake a reader waiting for a slot (the run is stopping); :meth:`close` frees the memory later."""
        with self._cond:
            self._cancelled = True
            self._cond.notify_all()

    def close(self) -> None:
        """Free the pinned memory; call only once no thread can still copy into a slot."""
        with self._cond:
            if self._ring is not None:
                self._ring.close()
                self._ring = None
            self._busy.clear()
            self._cond.notify_all()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
