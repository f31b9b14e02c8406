"""YOLO head decoding and NMS in NumPy (the reference the GPU decode kernels are tested against).

Every function works on the output of **one** image, in model-input pixels; mapping back to the original
image is the letterbox inverse (:func:`trtapps.ops.letterbox.scale_boxes`). The thresholds follow
Ultralytics' ``non_max_suppression``: a candidate needs a score **greater** than ``conf_threshold``; without
``multi_label`` each anchor keeps only its best class (the ``classes`` filter applies to that best class);
the best ``max_candidates`` enter class-aware greedy NMS (an IoU greater than the threshold suppresses);
``max_det`` remain.

Layouts:

* **v8** (YOLOv8, YOLO11): ``(4 + C, N)`` channel-first; rows ``cx, cy, w, h`` (input pixels), then ``C``
  class probabilities; no objectness, score = best class probability.
* **v5** (YOLOv5, decoded YOLOX): ``(N, 5 + C)``; ``cx, cy, w, h, obj``, then ``C`` class probabilities;
  score = obj × cls, anchors with ``obj <= conf_threshold`` are dropped first (as YOLOv5 does).
* **YOLOX raw** (``decode_in_inference=False``): as v5 but the box part is ``dx, dy, log w, log h`` in grid
  units: ``cx = (dx + gx)·s``, ``w = exp(log w)·s`` on integer grids (no +0.5), strides 8/16/32 (64).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trtapps.ops.boxes import xywh_to_xyxy
from trtapps.ops.nms import batched_nms

#: the stride sets a YOLOX head can have: P3-P5, and P3-P6 models
YOLOX_STRIDES: tuple[tuple[int, ...], ...] = ((8, 16, 32), (8, 16, 32, 64))


@dataclass(frozen=True)
class DecodeParams:
    """Thresholds and limits of candidate selection and NMS.

    Attributes:
        conf_threshold: keep candidates whose score is greater than this.
        iou_threshold: NMS drops a box whose IoU with a kept box is greater than this.
        max_det: detections kept per image after NMS.
        max_candidates: best-scoring candidates that enter NMS.
        agnostic: one NMS over all classes instead of one per class.
        multi_label: every class above the threshold is a candidate (evaluation), not only the best one.
        classes: ``(K,)`` int class ids to keep, or ``None`` for all.
    """

    conf_threshold: float = 0.25
    iou_threshold: float = 0.45
    max_det: int = 300
    max_candidates: int = 30_000
    agnostic: bool = False
    multi_label: bool = False
    classes: np.ndarray | None = None


Candidates = tuple[np.ndarray, np.ndarray, np.ndarray]
"""``(boxes (M, 4) float32 xyxy, scores (M,) float32, class_ids (M,) int32)``"""


def _pick(boxes_xywh: np.ndarray, class_scores: np.ndarray, params: DecodeParams) -> Candidates:
    """Candidates from ``(M, 4)`` xywh boxes and their ``(M, C)`` class scores (best class or multi-label)."""
    if params.multi_label:
        rows, cols = np.nonzero(class_scores > params.conf_threshold)  # row-major: anchor, then class
        boxes, scores, class_ids = boxes_xywh[rows], class_scores[rows, cols], cols
    else:
        class_ids = np.argmax(class_scores, axis=1)
        scores = np.take_along_axis(class_scores, class_ids[:, None], axis=1)[:, 0]
        keep = scores > params.conf_threshold
        boxes, scores, class_ids = boxes_xywh[keep], scores[keep], class_ids[keep]
    if params.classes is not None:
        keep = np.isin(class_ids, params.classes)
        boxes, scores, class_ids = boxes[keep], scores[keep], class_ids[keep]
    return (
        xywh_to_xyxy(np.asarray(boxes, dtype=np.float32)),
        np.asarray(scores, dtype=np.float32),
        np.asarray(class_ids, dtype=np.int32),
    )


def candidates_v8(pred: np.ndarray, params: DecodeParams) -> Candidates:
    """Candidates of a YOLOv8/YOLO11 head.

    Args:
        pred: ``(4 + C, N)`` float, channel-first, for one image.
        params: thresholds.
    """
    pred = np.asarray(pred, dtype=np.float32)
    cls = pred[4:]
    alive = np.flatnonzero(cls.max(axis=0) > params.conf_threshold)
    return _pick(pred[:4, alive].T, cls[:, alive].T, params)


def candidates_v5(pred: np.ndarray, params: DecodeParams) -> Candidates:
    """Candidates of a YOLOv5 (or decoded YOLOX) head: score = obj × cls.

    Args:
        pred: ``(N, 5 + C)`` float rows ``cx, cy, w, h, obj, cls…`` in input pixels, for one image.
        params: thresholds.
    """
    pred = np.asarray(pred, dtype=np.float32)
    rows = pred[pred[:, 4] > params.conf_threshold]
    return _pick(rows[:, :4], rows[:, 5:] * rows[:, 4:5], params)


def yolox_grid(input_size: tuple[int, int], num_anchors: int) -> tuple[np.ndarray, np.ndarray]:
    """The integer grid cells and strides of a raw YOLOX head, in its row order (level, row, column).

    Args:
        input_size: ``(H, W)`` of the model input.
        num_anchors: ``N``, the rows of the head output.

    Returns:
        ``(grid (N, 2) float32 (gx, gy), strides (N, 1) float32)``.

    Raises:
        ValueError: no stride set (8/16/32, 8/16/32/64) gives ``N`` rows for this input size.
    """
    h, w = input_size
    for strides in YOLOX_STRIDES:
        if sum((h // s) * (w // s) for s in strides) != num_anchors:
            continue
        grids, steps = [], []
        for s in strides:
            ys, xs = np.meshgrid(np.arange(h // s), np.arange(w // s), indexing="ij")
            grids.append(np.stack([xs.ravel(), ys.ravel()], axis=1))
            steps.append(np.full((xs.size, 1), s))
        return np.concatenate(grids).astype(np.float32), np.concatenate(steps).astype(np.float32)
    raise ValueError(
        f"a YOLOX head with {num_anchors} rows does not fit a {h}x{w} input at strides "
        + " or ".join("/".join(map(str, s)) for s in YOLOX_STRIDES)
    )


def decode_yolox_boxes(pred: np.ndarray, grid: np.ndarray, strides: np.ndarray) -> np.ndarray:
    """Decode the box part of a raw YOLOX head (``demo_postprocess``); the other columns are copied.

    Args:
        pred: ``(N, 5 + C)`` rows ``dx, dy, log w, log h, obj, cls…`` of one image.
        grid: ``(N, 2)`` integer cells from :func:`yolox_grid`.
        strides: ``(N, 1)`` strides from :func:`yolox_grid`.

    Returns:
        ``(N, 5 + C)`` float32 rows ``cx, cy, w, h, obj, cls…`` in input pixels.
    """
    out = np.array(pred, dtype=np.float32, copy=True)
    out[:, :2] = (out[:, :2] + grid) * strides
    with np.errstate(over="ignore"):  # a huge log-size is an infinite box, which NMS and clipping handle
        out[:, 2:4] = np.exp(out[:, 2:4]) * strides
    return out


def looks_decoded(rows: np.ndarray, min_stride: int = 8) -> bool:
    """Whether a ``(N, 5 + C)`` YOLOX head already holds pixel boxes rather than raw grid offsets.

    Decoded centres spread over the whole input (their median is about half its width); raw ``dx`` offsets
    stay within a cell or two of zero. The split is at the smallest stride.
    """
    return bool(np.median(np.abs(np.asarray(rows)[:, 0])) >= min_stride)


def select(boxes: np.ndarray, scores: np.ndarray, class_ids: np.ndarray, params: DecodeParams) -> np.ndarray:
    """NMS over candidates: the indices kept, best score first.

    The ``max_candidates`` best scores (stable order on ties) enter class-aware (or agnostic) greedy NMS;
    at most ``max_det`` indices are returned.

    Args:
        boxes: ``(M, 4)`` xyxy.
        scores: ``(M,)``.
        class_ids: ``(M,)`` int.
        params: thresholds.
    """
    order = np.arange(scores.shape[0])
    if scores.shape[0] > params.max_candidates:
        order = np.argsort(-scores, kind="stable")[: params.max_candidates]
    keep = batched_nms(
        boxes[order],
        scores[order],
        class_ids[order],
        params.iou_threshold,
        agnostic=params.agnostic,
        max_det=params.max_det,
    )
    return order[keep]


def decode(
    pred: np.ndarray,
    layout: str,
    params: DecodeParams,
    yolox_grid_strides: tuple[np.ndarray, np.ndarray] | None = None,
) -> Candidates:
    """Detections of one image in model-input pixels: candidates, then NMS.

    Args:
        pred: the head output of one image: ``(4 + C, N)`` for ``"v8"``, ``(N, 5 + C)`` otherwise.
        layout: ``"v8"``, ``"v5"`` (also decoded YOLOX) or ``"yolox_raw"``.
        params: thresholds.
        yolox_grid_strides: :func:`yolox_grid`'s result, needed for ``"yolox_raw"``.

    Returns:
        ``(boxes (K, 4) float32 xyxy, scores (K,) float32, class_ids (K,) int32)``, best score first.
    """
    if layout == "v8":
        boxes, scores, class_ids = candidates_v8(pred, params)
    elif layout == "v5":
        boxes, scores, class_ids = candidates_v5(pred, params)
    elif layout == "yolox_raw":
        if yolox_grid_strides is None:
            raise ValueError("a raw YOLOX head needs its grid and strides (yolox_grid)")
        pred = np.asarray(pred, dtype=np.float32)
        alive = pred[:, 4] > params.conf_threshold  # decode only the anchors that can survive
        grid, strides = yolox_grid_strides
        rows = decode_yolox_boxes(pred[alive], grid[alive], strides[alive])
        boxes, scores, class_ids = candidates_v5(rows, params)
    else:
        raise ValueError(f"unknown YOLO head layout {layout!r}; expected 'v8', 'v5' or 'yolox_raw'")
    keep = select(boxes, scores, class_ids, params)
    return boxes[keep], scores[keep], class_ids[keep]
