"""Box conversions and IoU (NumPy). ``xyxy`` is the only box format of public APIs."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt


def xywh_to_xyxy(boxes: np.ndarray) -> np.ndarray:
    """Centre format ``(cx, cy, w, h)`` → corners ``(x1, y1, x2, y2)``, shape preserved (…, 4)."""
    out = np.empty_like(boxes)
    half_w = boxes[..., 2] / 2
    half_h = boxes[..., 3] / 2
    out[..., 0] = boxes[..., 0] - half_w
    out[..., 1] = boxes[..., 1] - half_h
    out[..., 2] = boxes[..., 0] + half_w
    out[..., 3] = boxes[..., 1] + half_h
    return out


def tlwh_to_xyxy(boxes: np.ndarray) -> np.ndarray:
    """Top-left + size ``(x, y, w, h)`` (MOTChallenge, COCO) → corners."""
    # annotated: with a dtype chosen at run time NumPy's stubs give ``ndarray[generic]``, which has no ``+=``
    out: npt.NDArray[np.floating[Any]] = np.array(
        boxes, dtype=np.float64 if boxes.dtype == np.float64 else np.float32, copy=True
    )
    out[..., 2] += out[..., 0]
    out[..., 3] += out[..., 1]
    return out


def xyxy_to_tlwh(boxes: np.ndarray) -> np.ndarray:
    """Corners → top-left + size."""
    out = np.array(boxes, copy=True)
    out[..., 2] -= out[..., 0]
    out[..., 3] -= out[..., 1]
    return out


def box_iou(a: np.ndarray, b: np.ndarray, plus_one: bool = False) -> np.ndarray:
    """Pairwise IoU of ``(N, 4)`` and ``(M, 4)`` xyxy boxes → ``(N, M)``.

    ``plus_one`` uses the legacy pixel-inclusive convention ``(x2 - x1 + 1)`` (RetinaFace's ``py_cpu_nms``).
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    e = 1.0 if plus_one else 0.0
    area_a = (a[:, 2] - a[:, 0] + e) * (a[:, 3] - a[:, 1] + e)
    area_b = (b[:, 2] - b[:, 0] + e) * (b[:, 3] - b[:, 1] + e)
    w = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]) + e, 0, None)
    h = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]) + e, 0, None)
    inter = w * h
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def clip_boxes(boxes: np.ndarray, width: int, height: int) -> np.ndarray:
    """Clip xyxy boxes in place to ``[0, width] × [0, height]`` and return them."""
    boxes[..., 0::2] = np.clip(boxes[..., 0::2], 0, width)
    boxes[..., 1::2] = np.clip(boxes[..., 1::2], 0, height)
    return boxes
