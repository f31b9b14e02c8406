"""Greedy non-maximum suppression (NumPy reference).

Greedy NMS: sort by score (stable, so ties keep input order), keep the best box, drop every remaining box whose
IoU with it is **greater than** ``iou_threshold``, repeat. Class-aware NMS suppresses only within a class
(implemented with the usual coordinate offset per class, as torchvision's batched NMS and Ultralytics do).
"""

from __future__ import annotations

import numpy as np

#: Ultralytics' per-class coordinate offset for class-aware NMS
MAX_WH = 7680.0


def nms(
    boxes: np.ndarray,
    scores: np.ndarray,
    iou_threshold: float,
    *,
    plus_one: bool = False,
    max_det: int | None = None,
) -> np.ndarray:
    """Indices of the boxes kept by greedy NMS, best score first.

    Args:
        boxes: ``(N, 4)`` xyxy.
        scores: ``(N,)``.
        iou_threshold: a box is dropped when its IoU with a kept box is greater than this.
        plus_one: legacy ``+1`` pixel areas (RetinaFace's ``py_cpu_nms``).
        max_det: keep at most this many.
    """
    boxes = np.asarray(boxes, dtype=np.float64)
    scores = np.asarray(scores)
    n = boxes.shape[0]
    if n == 0:
        return np.zeros((0,), dtype=np.int64)
    e = 1.0 if plus_one else 0.0
    x1, y1, x2, y2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    areas = (x2 - x1 + e) * (y2 - y1 + e)
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    limit = n if max_det is None else max_det
    while order.size > 0 and len(keep) < limit:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        w = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + e)
        h = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + e)
        inter = w * h
        union = areas[i] + areas[rest] - inter
        iou = np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)
        order = rest[iou <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


def batched_nms(
    boxes: np.ndarray,
    scores: np.ndarray,
    class_ids: np.ndarray,
    iou_threshold: float,
    *,
    agnostic: bool = False,
    plus_one: bool = False,
    max_det: int | None = None,
) -> np.ndarray:
    """Class-aware greedy NMS (``agnostic=True``: all classes together); indices, best score first."""
    boxes = np.asarray(boxes, dtype=np.float64)
    if boxes.shape[0] == 0:
        return np.zeros((0,), dtype=np.int64)
    if agnostic:
        return nms(boxes, scores, iou_threshold, plus_one=plus_one, max_det=max_det)
    offset = np.asarray(class_ids, dtype=np.float64)[:, None] * MAX_WH
    return nms(boxes + offset, scores, iou_threshold, plus_one=plus_one, max_det=max_det)
