"""Buffers an app's device path reuses batch after batch: a device array (:class:`DeviceBuffer`) and the pinned
host array :func:`~trtapps.ops.cuda.nms.download_compact` copies into (:class:`PinnedStorage`).

CuPy is imported when a buffer is first allocated, not when this module is imported.
"""

from __future__ import annotations

import math
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
    """A grow-only pinned float32 host buffer for :func:`~trtapps.ops.cuda.nms.download_compact` (its result is
    copied into :class:`~trtapps.structures.Detections` before the next batch reuses it)."""

    def __init__(self) -> None:
        self.storage: np.ndarray | None = None

    def get(self, size: int) -> np.ndarray:
        """A pinned ``(size,)`` float32 view."""
        if self.storage is None or self.storage.size < size:
            import cupyx

            self.storage = cupyx.empty_pinned((max(int(size), 1),), dtype=np.float32)
        return self.storage[: int(size)]
