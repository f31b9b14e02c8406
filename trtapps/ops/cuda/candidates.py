"""Candidate buffers between a decode kernel and NMS: their sizes and the best-*k* gather (NumPy or CuPy).

A device decode stores its candidates in a buffer sized for all that can exist (:class:`CandidatePlan`), so
none is lost; when more can exist than the app lets into NMS (YOLO's ``max_candidates``, RetinaFace's
``top_k``), :func:`top_candidates` gathers the best ones first, in the CPU path's order
(``argsort(-score, stable)[:k]``: score descending, then anchor, then class). :func:`candidate_keys` is the NMS
kernel's sort key (``candidate_key`` in ``kernels/nms.cu``) written with array operations.

The functions take ``xp`` (``numpy`` or ``cupy``) and import nothing from CuPy themselves, which is how the unit
tests check them without a GPU.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from trtapps.ops.decode import SCORE_COL

#: bits of the anchor and class fields of the candidate sort key (as the NMS kernel's key)
KEY_ANCHOR_BITS, KEY_CLASS_BITS = 21, 11

_SIGN = np.uint32(0x80000000)
_EMPTY_KEY = np.uint64(np.iinfo(np.uint64).max)


@dataclass(frozen=True)
class CandidatePlan:
    """Candidate buffer sizes of one batch shape.

    Attributes:
        decode_capacity: candidates per image the decode kernel stores (all that can exist, up to the app's cap).
        nms_capacity: candidates per image entering NMS (the best ones).
        limit: the CPU path's limit on the candidates entering NMS (``max_candidates``, ``top_k``).
    """

    decode_capacity: int
    nms_capacity: int
    limit: int

    @property
    def gather(self) -> bool:
        """True when the best ``nms_capacity`` candidates must be gathered before NMS."""
        return self.nms_capacity < self.decode_capacity

    def lost(self, found: Any) -> np.ndarray:
        """``(B,)`` bool: images whose GPU result may differ from the CPU path's, because the decode buffer was
        full (``found > decode_capacity``) or more candidates than NMS takes would enter it on the CPU."""
        found = np.asarray(found, dtype=np.int64)
        return (found > self.decode_capacity) | (np.minimum(found, self.limit) > self.nms_capacity)


def plan_candidates(possible: int, limit: int, nms_max: int) -> CandidatePlan:
    """Buffer sizes: the decode holds *possible* candidates (at least one), NMS the best *limit* of them (at most
    *nms_max*, the NMS kernel's limit, and at most what the decode holds)."""
    decode = max(1, int(possible))
    return CandidatePlan(decode, max(1, min(int(limit), int(nms_max), decode)), int(limit))


def candidate_keys(xp: Any, records: Any, counts: Any, *, class_col: int | None, anchor_col: int) -> Any:
    """``(B, capacity)`` uint64 sort keys: score descending, then anchor, then class ascending; empty slots last.

    The NMS kernel's key (``(~ordered(score)) << 32 | anchor << 11 | class``), so a sort by it puts the
    candidates in the CPU path's order (a stable sort by descending score of candidates listed anchor by
    anchor, class by class).

    Args:
        xp: ``numpy`` or ``cupy``.
        records: ``(B, capacity, width)`` float32.
        counts: ``(B,)`` int32 candidates found per image (may exceed the capacity).
        class_col: the class column, or ``None`` (faces).
        anchor_col: the anchor column.
    """
    capacity = int(records.shape[1])
    valid = xp.arange(capacity)[None, :] < xp.minimum(counts.astype(xp.int64), capacity)[:, None]
    bits = xp.ascontiguousarray(records[..., SCORE_COL]).view(xp.uint32)
    ordered = xp.where((bits & _SIGN) != 0, ~bits, bits | _SIGN)  # monotone in the float value
    key = (~ordered).astype(xp.uint64) << np.uint64(32)
    anchor = xp.clip(xp.where(valid, records[..., anchor_col], xp.float32(0)), 0, (1 << KEY_ANCHOR_BITS) - 1)
    key |= anchor.astype(xp.uint64) << np.uint64(KEY_CLASS_BITS)
    if class_col is not None:
        cls = xp.clip(xp.where(valid, records[..., class_col], xp.float32(0)), 0, (1 << KEY_CLASS_BITS) - 1)
        key |= cls.astype(xp.uint64)
    return xp.where(valid, key, _EMPTY_KEY)


def top_candidates(xp: Any, records: Any, counts: Any, k: int, *, class_col: int | None, anchor_col: int) -> Any:
    """The best *k* candidates of each image, best first: ``(B, k, width)`` float32 (C-contiguous).

    Rows past ``min(count, k)`` are filler; with the original *counts* the NMS kernel reads exactly the
    ``min(count, capacity, k)`` valid ones.
    """
    keys = candidate_keys(xp, records, counts, class_col=class_col, anchor_col=anchor_col)
    order = xp.argsort(keys, axis=1)[:, :k]
    rows = xp.arange(int(records.shape[0]))[:, None]
    return xp.ascontiguousarray(records[rows, order])
