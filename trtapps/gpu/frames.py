"""Frames to the GPU: host BGR images of any sizes → device arrays, with one async copy per batch.

The batch is packed into a slot of a ring of pinned (page-locked) host buffers, copied to one device staging
buffer with a single ``cudaMemcpyAsync`` on the pipeline's stream, and handed out as per-frame device views.
The slot is only reused after the stream has passed the copy (an event per slot), so the host can pack the
next batch while the GPU still works on this one. Frames already on the device are passed through untouched.
"""

from __future__ import annotations

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

    def upload(self, images: Sequence[Any], stream: Any) -> list[Any]:
        """Device views of *images* (host NumPy or already CuPy), enqueued on *stream* (no host sync)."""
        import cupy

        from trtapps.gpu.memory import PinnedRing

        host = [(i, im) for i, im in enumerate(images) if not is_device_array(im)]
        out: list[Any] = list(images)
        if not host:
            return out
        sizes = [im.nbytes for _, im in host]
        total = sum(sizes)
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
