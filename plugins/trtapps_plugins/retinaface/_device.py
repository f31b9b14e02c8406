"""The GPU data path of app ``retinaface``: the pieces :meth:`RetinaFaceApp.preprocess_device` and
:meth:`RetinaFaceApp.decode_device` are made of.

The device path gives the CPU path's faces with the CuPy kernels of :mod:`trtapps.ops.cuda`:

* **preprocessing** — one :func:`~trtapps.ops.cuda.preprocess.preprocess_batch` launch: BGR minus the mean,
  no resize at native size (the ROI is the whole input), a top-left aspect-preserving resize into a fixed input
  (:meth:`CanvasTransform.fit`, the kernel's ROI), padding = the mean, i.e. exactly 0 after the subtraction.
  Bit-identical to the CPU tensor in float32.
* **decode** — :func:`~trtapps.ops.cuda.decode.decode_retinaface` with the app's priors (uploaded once per input
  size) maps boxes and landmarks back to the frame in the kernel (the CPU path also runs NMS in frame pixels).
  Its buffer holds one candidate per prior, so none is ever lost. ``conf_activation: auto`` is decided per
  batch exactly as on the CPU (every ``conf`` row in [0, 1] and summing to 1 within 1e-3 → probabilities),
  from three numbers reduced on the device: the one extra (12-byte) device→host copy of this path.
* **top_k** — the kernels have no top-k; the best ``top_k`` candidates are gathered on the device before NMS
  (:func:`top_candidates`, the CPU path's ``argsort(-score, stable)[:top_k]``: score descending, then prior
  index) whenever more than ``top_k`` candidates can exist.
* **NMS** — :func:`~trtapps.ops.cuda.nms.nms_batched` with ``+1`` pixel areas, ``max_det``, then one
  :func:`~trtapps.ops.cuda.nms.download_compact` per batch.

NMS takes at most :data:`~trtapps.ops.cuda.nms.MAX_CAPACITY` candidates per image (a ``top_k`` above it is
capped, with a warning when an image has more candidates than that); its memory is ``capacity² / 8`` bytes per
image (3 MB at the default ``top_k`` 5000).

CuPy is imported inside the functions that need it; the pure helpers take NumPy too (``xp``), which is how the
unit tests check them without a GPU.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

#: face record columns of the decode kernel (:mod:`trtapps.ops.decode`)
SCORE_COL, ANCHOR_COL = 4, 15
#: bits of the anchor field of the candidate sort key (as the NMS kernel's key)
KEY_ANCHOR_BITS, KEY_CLASS_BITS = 21, 11
#: ``conf_activation: auto``: a row sums to 1 within this for probabilities (:func:`face_scores`)
SUM_TOLERANCE = 1e-3

_SIGN = np.uint32(0x80000000)
_EMPTY_KEY = np.uint64(np.iinfo(np.uint64).max)


@dataclass(frozen=True)
class FacePlan:
    """Candidate buffer sizes of one input size.

    Attributes:
        decode_capacity: candidates per image the decode stores (one per prior: all that can exist).
        nms_capacity: candidates per image entering NMS (the best ``top_k``).
        top_k: the app's ``top_k``.
    """

    decode_capacity: int
    nms_capacity: int
    top_k: int

    @property
    def gather(self) -> bool:
        """True when the best ``nms_capacity`` candidates must be gathered before NMS."""
        return self.nms_capacity < self.decode_capacity

    def lost(self, found: Any) -> np.ndarray:
        """``(B,)`` bool: images where fewer candidates entered NMS than on the CPU (``top_k`` above the NMS
        limit)."""
        found = np.asarray(found, dtype=np.int64)
        return (found > self.decode_capacity) | (np.minimum(found, self.top_k) > self.nms_capacity)


def face_plan(num_priors: int, top_k: int, nms_max: int) -> FacePlan:
    """Buffer sizes: the decode holds a candidate per prior, NMS the best ``top_k`` (at most *nms_max*)."""
    decode = max(1, int(num_priors))
    return FacePlan(decode, max(1, min(int(top_k), int(nms_max), decode)), int(top_k))


def canvas_params(metas: Sequence[Any]) -> np.ndarray | None:
    """``(B, 6)`` float32 mapping parameters of :class:`CanvasTransform` metas (``x / float32(scale_x)``, as
    :meth:`CanvasTransform.points_to_source`), or ``None`` when every frame is fed at its own size."""
    if all(m.is_identity for m in metas):
        return None
    rows = [
        (np.float32(m.scale_x), np.float32(m.scale_y), 0.0, 0.0, m.src_size[1], m.src_size[0]) for m in metas
    ]
    return np.asarray(rows, dtype=np.float32).reshape(len(metas), 6)


def probability_stats(xp: Any, conf: Any) -> Any:
    """``(3,)`` float64: min, max and the largest ``|row sum − 1|`` of a ``(B, N, 2)`` conf head, in float32
    like :func:`~trtapps_plugins.retinaface.face_scores` (one small array: one copy to read it)."""
    c = conf.astype(xp.float32)
    if c.size == 0:
        return xp.zeros((3,), dtype=xp.float64)
    deviation = xp.abs(c.sum(axis=-1) - xp.float32(1.0)).max()
    return xp.stack([c.min(), c.max(), deviation]).astype(xp.float64)


def are_probabilities(stats: Any, size: int) -> bool:
    """``conf_activation: auto``'s rule on :func:`probability_stats` (host values)."""
    if size == 0:
        return True
    low, high, deviation = (float(v) for v in stats)
    return low >= 0.0 and high <= 1.0 and deviation <= SUM_TOLERANCE


# -- candidate buffers (NumPy or CuPy) ------------------------------------------------------------------------------
def candidate_keys(xp: Any, records: Any, counts: Any) -> Any:
    """``(B, capacity)`` uint64 sort keys of face records: score descending, then prior index; empty slots last.

    The NMS kernel's key (``(~ordered(score)) << 32 | anchor << 11``), i.e. the CPU path's order.
    """
    capacity = int(records.shape[1])
    valid = xp.arange(capacity)[None, :] < xp.minimum(counts.astype(xp.int64), capacity)[:, None]
    bits = xp.ascontiguousarray(records[..., SCORE_COL]).view(xp.uint32)
    ordered = xp.where((bits & _SIGN) != 0, ~bits, bits | _SIGN)  # monotone in the float value
    key = (~ordered).astype(xp.uint64) << np.uint64(32)
    anchor = xp.clip(xp.where(valid, records[..., ANCHOR_COL], xp.float32(0)), 0, (1 << KEY_ANCHOR_BITS) - 1)
    key |= anchor.astype(xp.uint64) << np.uint64(KEY_CLASS_BITS)
    return xp.where(valid, key, _EMPTY_KEY)


def top_candidates(xp: Any, records: Any, counts: Any, k: int) -> Any:
    """The best *k* face candidates of each image, best first: ``(B, k, 16)`` float32 (C-contiguous); rows past
    ``min(count, k)`` are filler that NMS does not read (given the original *counts*)."""
    order = xp.argsort(candidate_keys(xp, records, counts), axis=1)[:, :k]
    rows = xp.arange(int(records.shape[0]))[:, None]
    return xp.ascontiguousarray(records[rows, order])


# -- reusable buffers (CuPy) ----------------------------------------------------------------------------------------
class DeviceBuffer:
    """One device allocation reused batch after batch, grown when a batch needs more (views handed out).

    The views stay valid until the next :meth:`view` call; work queued on one stream reuses it safely (CuPy's
    memory pool is stream-ordered). Native-size batches of different sizes share it.
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
