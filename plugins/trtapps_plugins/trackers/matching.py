"""Assignment solvers and box overlaps with the exact conventions of each reference tracker.

* SORT and ByteTrack solve with ``lap.lapjv(cost, extend_cost=True[, cost_limit=…])`` (Jonker-Volgenant);
* deep_sort solves with ``scipy.optimize.linear_sum_assignment`` (Hungarian);
* ByteTrack's IoU is ``cython_bbox.bbox_overlaps``: legacy pixel-inclusive areas ``(x2 − x1 + 1)``;
* SORT's and deep_sort's IoU use plain areas.

Which solver runs matters: on ties (equal costs) the solvers pick different, equally optimal assignments, and
the trackers' ids then diverge from the reference.
"""

from __future__ import annotations

import lap
import numpy as np
from scipy.optimize import linear_sum_assignment


def lapjv_matches(cost: np.ndarray, cost_limit: float | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``lap.lapjv`` on a rectangular cost matrix.

    Args:
        cost: ``(N, M)`` float64 costs.
        cost_limit: pairs costlier than this stay unassigned (``lap``'s ``cost_limit``; ByteTrack's threshold).

    Returns:
        ``(matches, unmatched_rows, unmatched_cols)``: ``(K, 2)`` ``[row, col]`` pairs in row order and the
        sorted indices left unassigned (ByteTrack's ``matching.linear_assignment``).
    """
    n, m = cost.shape
    if n == 0 or m == 0:
        return np.empty((0, 2), dtype=np.intp), np.arange(n), np.arange(m)
    if cost_limit is None:
        _, x, y = lap.lapjv(cost, extend_cost=True)
    else:
        _, x, y = lap.lapjv(cost, extend_cost=True, cost_limit=cost_limit)
    rows = np.flatnonzero(x >= 0)
    matches = np.stack([rows, x[rows]], axis=1).astype(np.intp)
    return matches, np.flatnonzero(x < 0), np.flatnonzero(y < 0)


def hungarian(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``scipy.optimize.linear_sum_assignment``: ``(rows, cols)``, rows ascending (deep_sort's solver)."""
    rows, cols = linear_sum_assignment(cost)
    return rows, cols


def iou_xyxy(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU ``(N, M)`` of xyxy boxes with plain areas (SORT's ``iou_batch``; NaN for two empty boxes)."""
    xx1 = np.maximum(a[:, None, 0], b[None, :, 0])
    yy1 = np.maximum(a[:, None, 1], b[None, :, 1])
    xx2 = np.minimum(a[:, None, 2], b[None, :, 2])
    yy2 = np.minimum(a[:, None, 3], b[None, :, 3])
    wh = np.maximum(0.0, xx2 - xx1) * np.maximum(0.0, yy2 - yy1)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    with np.errstate(divide="ignore", invalid="ignore"):
        return wh / (area_a[:, None] + area_b[None, :] - wh)


def iou_xyxy_plus_one(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU ``(N, M)`` with pixel-inclusive areas, exactly ``cython_bbox.bbox_overlaps`` (ByteTrack)."""
    if a.shape[0] == 0 or b.shape[0] == 0:
        return np.zeros((a.shape[0], b.shape[0]))
    iw = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]) + 1
    ih = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]) + 1
    area_a = (a[:, 2] - a[:, 0] + 1) * (a[:, 3] - a[:, 1] + 1)
    area_b = (b[:, 2] - b[:, 0] + 1) * (b[:, 3] - b[:, 1] + 1)
    positive = (iw > 0) & (ih > 0)
    inter = np.where(positive, iw * ih, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(positive, inter / (area_a[:, None] + area_b[None, :] - inter), 0.0)
