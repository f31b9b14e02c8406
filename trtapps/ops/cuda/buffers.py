"""Buffers an app's device path reuses batch after batch: a device array (:class:`DeviceBuffer`) and the pinned
host array :func:`~trtapps.ops.cuda.nms.download_compact` copies into (:class:`PinnedStorage`).

CuPy is imported when a buffer is first allocated, not when this module is imported.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np


class DeviceBuffer:
    """One device allocation reused batch after batch, grown when a batch needs more (views handed out).

    The views stay valid until the next :meth:`view` call; work queued on one stream reuses it safely (CuPy's
    memory pool is stream-ordered), which is how the pipeline runs batches. Native-size batches of different
    sizes share it.
    """

    def __init__(self) -> None:
        self.storage: Any = None

    def view(self, shape: Sequence[int], dtype: Any, stream: Any) -> Any:
        """A C-contiguous ``(shape)`` array of *dtype* over the start of the buffer (allocated on *stream*)."""
        import cupy

        dtype = np.dtype(dtype)
        need = math.prod(int(s) for s in shape)
        storage = self.storage
        device = cupy.cuda.Device().id
        if storage is None or storage.dtype != dtype or storage.size < need or storage.device.id != device:
            with stream:
                self.storage = storage = cupy.empty((max(need, 1),), dtype=dtype)
        return storage[:need].reshape(tuple(int(s) for s in shape))


class PinnedStorage:
    """Pinned float32 host buffers for :func:`~trtapps.ops.cuda.nms.download_compact`, one per batch in flight.

    The pipeline queues batch *k + 1* on the GPU before it reads batch *k*'s results, so several downloads may be
    pending at once: :meth:`take` hands out a buffer no pending batch uses (reusing a returned one, else allocating
    one), and :meth:`give_back` returns it once its results have been copied into
    :class:`~trtapps.structures.Detections`. A buffer never given back (a batch abandoned by a failing run) is
    simply freed with its last reference. Thread-safe.

    Args:
        keep: returned buffers kept for reuse at most (the batches a run has in flight).
    """

    def __init__(self, keep: int = 8) -> None:
        self.keep = keep
        self._free: list[np.ndarray] = []
        self._lock = threading.Lock()

    def take(self, size: int) -> np.ndarray:
        """A pinned ``(size,)`` float32 array that is the caller's until :meth:`give_back`."""
        size = max(int(size), 1)
        with self._lock:
            for i, buffer in enumerate(self._free):
                if buffer.size >= size:
                    return self._free.pop(i)[:size]
        import cupyx

        return cupyx.empty_pinned((size,), dtype=np.float32)

    def give_back(self, buffer: np.ndarray) -> None:
        """Return a buffer from :meth:`take` (its whole allocation becomes reusable)."""
        base = buffer.base if isinstance(buffer.base, np.ndarray) else buffer
        with self._lock:
            if all(b is not base for b in self._free):
                self._free.append(base)
                self._free.sort(key=lambda b: b.size)
                del self._free[: max(0, len(self._free) - self.keep)]  # keep the largest
