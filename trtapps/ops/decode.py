"""Batched detection-head decoding and NMS into fixed-width records (NumPy references of the CUDA kernels).

These functions are the host twins of :mod:`trtapps.ops.cuda.decode` and :mod:`trtapps.ops.cuda.nms`. They
follow the CPU app paths (``trtapps_plugins.yolo.decode``, ``trtapps_plugins.retinaface``) operation by
operation in float32, so the GPU kernels (compiled without fused multiply-add) give the same bits, except
where ``exp`` is involved (YOLOX sizes, RetinaFace sizes, logit softmax: an ulp or two).

Records (float32 rows):

* YOLO, :data:`YOLO_WIDTH` = 7: ``x1, y1, x2, y2, score, class, anchor``.
* faces, :data:`FACE_WIDTH` = 16: ``x1, y1, x2, y2, score, lx0, ly0, …, lx4, ly4, anchor`` (landmarks: left eye,
  right eye, nose, left and right mouth corners).

``anchor`` is the row of the head output (the prior index for RetinaFace). References return, per image, the
candidates sorted by **score descending, then anchor ascending, then class ascending** (:func:`sort_records`);
the GPU compaction order is arbitrary, so GPU candidates are compared after the same sort.

Thresholds: a candidate needs ``score > conf_threshold`` (Ultralytics, biubug6). YOLOv5 and YOLOX anchors with
``obj <= conf_threshold`` are dropped first, and their score is ``cls · obj`` (YOLOv5's order).

Mapping back to the original image uses per-image parameters ``(B, 6)`` float32 =
``gain_x, gain_y, pad_x, pad_y, width, height`` (:func:`image_params`, :func:`params_from_letterbox`):
``x = (x' − pad_x) / gain_x`` (Ultralytics' ``scale_boxes``), then optionally clipped to
``[0, width] × [0, height]``. It can happen in the decode (before NMS, like tensorRT_Pro and the RetinaFace
app) or after NMS (like Ultralytics: NMS sees letterbox-space boxes, which is what the YOLO app does).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from trtapps.ops.nms import batched_nms
from trtapps.structures import Detections

if TYPE_CHECKING:
    from trtapps.ops.letterbox import LetterboxTransform

YOLO_WIDTH = 7
FACE_WIDTH = 16
#: record columns
SCORE_COL = 4
YOLO_CLASS_COL = 5
YOLO_ANCHOR_COL = 6
#: biubug6 RetinaFace configuration (cfg_mnet / cfg_re50)
RETINAFACE_STEPS = (8, 16, 32)
RETINAFACE_MIN_SIZES = ((16, 32), (64, 128), (256, 512))
RETINAFACE_VARIANCES = (0.1, 0.2)
#: YOLOX strides (P3-P5)
YOLOX_STRIDES = (8, 16, 32)


def image_params(gain_x: float, gain_y: float, pad_x: float, pad_y: float, width: float, height: float) -> np.ndarray:
    """One ``(6,)`` float32 row of mapping parameters (stack rows for a batch)."""
    return np.array([gain_x, gain_y, pad_x, pad_y, width, height], dtype=np.float32)


def params_from_letterbox(transforms: Sequence[LetterboxTransform]) -> np.ndarray:
    """``(B, 6)`` float32 mapping parameters of letterboxed images (the inverse of
    :func:`~trtapps.ops.letterbox.letterbox`, as :func:`~trtapps.ops.letterbox.scale_boxes` applies it)."""
    rows = [(t.scale, t.scale, t.pad_x, t.pad_y, t.src_size[1], t.src_size[0]) for t in transforms]
    return np.array(rows, dtype=np.float32).reshape(len(rows), 6)  # the rows of image_params, in one array


def map_records(records: np.ndarray, params: np.ndarray, *, clip: bool) -> np.ndarray:
    """Map the coordinates of one image's records back to the original image (a new array).

    Args:
        records: ``(n, 7)`` or ``(n, 16)`` float32.
        params: ``(6,)`` float32 row of :func:`image_params`.
        clip: clip coordinates to ``[0, width] × [0, height]``.
    """
    out = np.array(records, dtype=np.float32, copy=True)
    p = np.asarray(params, dtype=np.float32)
    cols = list(range(4)) + (list(range(5, 15)) if out.shape[1] == FACE_WIDTH else [])
    for col in cols:
        if (col if col < 4 else col - 5) % 2 == 0:
            v = (out[:, col] - p[2]) / p[0]
            if clip:
                v = np.minimum(np.maximum(v, np.float32(0)), p[4])
        else:
            v = (out[:, col] - p[3]) / p[1]
            if clip:
                v = np.minimum(np.maximum(v, np.float32(0)), p[5])
        out[:, col] = v
    return out


def sort_records(records: np.ndarray) -> np.ndarray:
    """Records sorted by score descending, then anchor ascending, then class ascending (YOLO records)."""
    records = np.asarray(records, dtype=np.float32)
    if records.shape[0] == 0:
        return records
    anchor_col = YOLO_ANCHOR_COL if records.shape[1] == YOLO_WIDTH else records.shape[1] - 1
    keys: list[np.ndarray] = []
    if records.shape[1] == YOLO_WIDTH:
        keys.append(records[:, YOLO_CLASS_COL])
    keys += [records[:, anchor_col], -records[:, SCORE_COL]]
    return records[np.lexsort(keys)]


def _yolo_records(
    cx: np.ndarray,
    cy: np.ndarray,
    w: np.ndarray,
    h: np.ndarray,
    scores: np.ndarray,
    classes: np.ndarray,
    anchors: np.ndarray,
    params: np.ndarray | None,
    clip: bool,
) -> np.ndarray:
    half_w = w / np.float32(2)
    half_h = h / np.float32(2)
    rec = np.empty((cx.shape[0], YOLO_WIDTH), dtype=np.float32)
    rec[:, 0] = cx - half_w
    rec[:, 1] = cy - half_h
    rec[:, 2] = cx + half_w
    rec[:, 3] = cy + half_h
    rec[:, 4] = scores
    rec[:, 5] = classes
    rec[:, 6] = anchors
    if params is not None:
        rec = map_records(rec, params, clip=clip)
    return sort_records(rec)


def _check_params(params: Any, batch: int) -> np.ndarray | None:
    if params is None:
        return None
    arr = np.asarray(params, dtype=np.float32)
    if arr.shape != (batch, 6):
        raise ValueError(f"params must have shape ({batch}, 6) = gain_x, gain_y, pad_x, pad_y, w, h; got {arr.shape}")
    return arr


def decode_yolov8_reference(
    pred: np.ndarray,
    conf_threshold: float,
    *,
    params: np.ndarray | None = None,
    clip: bool = True,
    multi_label: bool = False,
) -> list[np.ndarray]:
    """YOLOv8/YOLO11 head → candidate records per image.

    Args:
        pred: ``(B, 4 + C, N)`` float32/float16, channel-first: ``cx, cy, w, h`` (input pixels), ``C`` class
            probabilities.
        conf_threshold: keep ``score > conf_threshold`` (score = best class probability).
        params: ``(B, 6)`` mapping parameters, or ``None`` to stay in input pixels.
        clip: clip mapped coordinates to the image.
        multi_label: one record per class above the threshold.

    Returns:
        ``B`` arrays ``(n_b, 7)`` float32, sorted (:func:`sort_records`).
    """
    pred = np.asarray(pred, dtype=np.float32)
    p_all = _check_params(params, pred.shape[0])
    conf = np.float32(conf_threshold)
    out = []
    for b in range(pred.shape[0]):
        cls = pred[b, 4:]  # (C, N)
        if multi_label:
            classes, anchors = np.nonzero(cls > conf)
            scores = cls[classes, anchors]
        else:
            best = np.argmax(cls, axis=0)
            top = np.take_along_axis(cls, best[None], axis=0)[0]
            anchors = np.flatnonzero(top > conf)
            classes, scores = best[anchors], top[anchors]
        box = pred[b][:4, anchors].T  # (n, 4)
        out.append(
            _yolo_records(
                box[:, 0],
                box[:, 1],
                box[:, 2],
                box[:, 3],
                scores,
                classes,
                anchors,
                None if p_all is None else p_all[b],
                clip,
            )
        )
    return out


def decode_yolo_rows_reference(
    pred: np.ndarray,
    conf_threshold: float,
    *,
    grid: np.ndarray | None = None,
    params: np.ndarray | None = None,
    clip: bool = True,
    multi_label: bool = False,
) -> list[np.ndarray]:
    """YOLOv5 (decoded) or raw YOLOX head → candidate records per image.

    Args:
        pred: ``(B, N, 5 + C)`` float32/float16 rows ``cx, cy, w, h, obj, cls…`` (raw YOLOX: ``dx, dy,
            log w, log h, obj, cls…``).
        conf_threshold: anchors need ``obj > conf_threshold``, candidates ``cls · obj > conf_threshold``.
        grid: ``(N, 3)`` float32 ``gx, gy, stride`` (:func:`yolox_grid_table`) for a raw YOLOX head:
            ``cx = (dx + gx)·s``, ``w = exp(log w)·s``; ``None`` for decoded boxes.
        params: ``(B, 6)`` mapping parameters, or ``None``.
        clip: clip mapped coordinates.
        multi_label: one record per class above the threshold.

    Returns:
        ``B`` arrays ``(n_b, 7)`` float32, sorted.
    """
    pred = np.asarray(pred, dtype=np.float32)
    p_all = _check_params(params, pred.shape[0])
    conf = np.float32(conf_threshold)
    out = []
    for b in range(pred.shape[0]):
        anchors = np.flatnonzero(pred[b, :, 4] > conf)
        rows = pred[b, anchors]
        cx, cy, w, h = rows[:, 0], rows[:, 1], rows[:, 2], rows[:, 3]
        if grid is not None:
            g = np.asarray(grid, dtype=np.float32)[anchors]
            cx = (cx + g[:, 0]) * g[:, 2]
            cy = (cy + g[:, 1]) * g[:, 2]
            with np.errstate(over="ignore"):
                w = np.exp(w) * g[:, 2]
                h = np.exp(h) * g[:, 2]
        scores_all = rows[:, 5:] * rows[:, 4:5]
        if multi_label:
            idx, classes = np.nonzero(scores_all > conf)
            scores = scores_all[idx, classes]
        else:
            best = np.argmax(scores_all, axis=1) if rows.shape[0] else np.zeros(0, np.int64)
            top = np.take_along_axis(scores_all, best[:, None], axis=1)[:, 0]
            idx = np.flatnonzero(top > conf)
            classes, scores = best[idx], top[idx]
        out.append(
            _yolo_records(
                cx[idx],
                cy[idx],
                w[idx],
                h[idx],
                scores,
                classes,
                anchors[idx],
                None if p_all is None else p_all[b],
                clip,
            )
        )
    return out


def yolox_grid_table(input_size: tuple[int, int], strides: Sequence[int] = YOLOX_STRIDES) -> np.ndarray:
    """``(N, 3)`` float32 ``gx, gy, stride`` of a raw YOLOX head: levels in stride order, then rows, then
    columns, integer cells (no +0.5), ``(H // s) × (W // s)`` per level."""
    h, w = int(input_size[0]), int(input_size[1])
    parts = []
    for s in strides:
        ys, xs = np.meshgrid(np.arange(h // s), np.arange(w // s), indexing="ij")
        parts.append(np.stack([xs.ravel(), ys.ravel(), np.full(xs.size, s)], axis=1))
    return np.concatenate(parts).astype(np.float32)


def retinaface_priors(
    input_size: tuple[int, int],
    steps: Sequence[int] = RETINAFACE_STEPS,
    min_sizes: Sequence[Sequence[int]] = RETINAFACE_MIN_SIZES,
) -> np.ndarray:
    """biubug6's priors for an ``(H, W)`` input: ``(N, 4)`` float32 ``cx, cy, w, h`` normalised.

    Order: level, row ``i``, column ``j``, min size; feature maps ``ceil(H/step) × ceil(W/step)``;
    ``cx = (j + 0.5)·step/W``, ``cy = (i + 0.5)·step/H``, ``w = m/W``, ``h = m/H`` (computed in float64).
    """
    height, width = int(input_size[0]), int(input_size[1])
    parts = []
    for step, sizes in zip(steps, min_sizes, strict=True):
        rows, cols = -(-height // step), -(-width // step)
        m = np.asarray(sizes, dtype=np.float64)
        level = np.empty((rows, cols, m.size, 4), dtype=np.float64)
        level[..., 0] = ((np.arange(cols) + 0.5) * step / width)[None, :, None]
        level[..., 1] = ((np.arange(rows) + 0.5) * step / height)[:, None, None]
        level[..., 2] = m / width
        level[..., 3] = m / height
        parts.append(level.reshape(-1, 4))
    return np.concatenate(parts).astype(np.float32)


def decode_retinaface_reference(
    loc: np.ndarray,
    conf: np.ndarray,
    landmarks: np.ndarray,
    priors: np.ndarray,
    input_size: tuple[int, int],
    conf_threshold: float,
    *,
    logits: bool = False,
    variances: tuple[float, float] = RETINAFACE_VARIANCES,
    params: np.ndarray | None = None,
    clip: bool = False,
) -> list[np.ndarray]:
    """RetinaFace heads → face records per image (input pixels, or original pixels with *params*).

    Args:
        loc: ``(B, N, 4)`` box regressions.
        conf: ``(B, N, 2)`` ``[background, face]`` probabilities (``logits=True``: raw logits, softmaxed here).
        landmarks: ``(B, N, 10)`` landmark regressions.
        priors: ``(N, 4)`` float32 from :func:`retinaface_priors`.
        input_size: ``(H, W)`` of the network input.
        conf_threshold: keep ``score > conf_threshold``.
        logits: *conf* holds logits.
        variances: biubug6's ``(0.1, 0.2)``.
        params: ``(B, 6)`` mapping parameters, or ``None``.
        clip: clip mapped coordinates (biubug6 does not clip).

    Returns:
        ``B`` arrays ``(n_b, 16)`` float32, sorted.
    """
    loc = np.asarray(loc, dtype=np.float32)
    conf = np.asarray(conf, dtype=np.float32)
    landmarks = np.asarray(landmarks, dtype=np.float32)
    priors = np.asarray(priors, dtype=np.float32)
    p_all = _check_params(params, loc.shape[0])
    height, width = np.float32(input_size[0]), np.float32(input_size[1])
    v0, v1 = np.float32(variances[0]), np.float32(variances[1])
    thr = np.float32(conf_threshold)
    out = []
    for b in range(loc.shape[0]):
        if logits:
            with np.errstate(over="ignore"):
                scores = np.float32(1) / (np.float32(1) + np.exp(conf[b, :, 0] - conf[b, :, 1]))
        else:
            scores = conf[b, :, 1]
        idx = np.flatnonzero(scores > thr)
        pr = priors[idx]
        lo = loc[b, idx]
        cx = pr[:, 0] + (lo[:, 0] * v0) * pr[:, 2]
        cy = pr[:, 1] + (lo[:, 1] * v0) * pr[:, 3]
        with np.errstate(over="ignore"):
            sw = pr[:, 2] * np.exp(lo[:, 2] * v1)
            sh = pr[:, 3] * np.exp(lo[:, 3] * v1)
        rec = np.empty((idx.size, FACE_WIDTH), dtype=np.float32)
        rec[:, 0] = (cx - sw / np.float32(2)) * width
        rec[:, 1] = (cy - sh / np.float32(2)) * height
        rec[:, 2] = (cx + sw / np.float32(2)) * width
        rec[:, 3] = (cy + sh / np.float32(2)) * height
        rec[:, 4] = scores[idx]
        ld = landmarks[b, idx]
        for k in range(5):
            rec[:, 5 + 2 * k] = (pr[:, 0] + (ld[:, 2 * k] * v0) * pr[:, 2]) * width
            rec[:, 6 + 2 * k] = (pr[:, 1] + (ld[:, 2 * k + 1] * v0) * pr[:, 3]) * height
        rec[:, 15] = idx
        if p_all is not None:
            rec = map_records(rec, p_all[b], clip=clip)
        out.append(sort_records(rec))
    return out


def nms_reference(
    candidates: Sequence[np.ndarray],
    iou_threshold: float,
    *,
    max_det: int,
    class_aware: bool = True,
    plus_one: bool = False,
    params: np.ndarray | None = None,
    clip: bool = True,
) -> list[np.ndarray]:
    """Greedy NMS of each image's records (the twin of :func:`trtapps.ops.cuda.nms.nms_batched`).

    Candidates are put in :func:`sort_records` order, then :func:`trtapps.ops.nms.batched_nms` (class-aware
    through the ``MAX_WH`` offset, or agnostic; face records are always agnostic) keeps at most *max_det*,
    best first; with *params* the kept records are mapped back to the image afterwards.

    Args:
        candidates: per image ``(n, 7)`` or ``(n, 16)`` float32 records.
        iou_threshold: an IoU greater than this suppresses.
        max_det: records kept per image.
        class_aware: suppress only within a class (YOLO records).
        plus_one: legacy ``+1`` pixel areas (RetinaFace).
        params: ``(B, 6)`` mapping parameters applied after NMS, or ``None``.
        clip: clip mapped coordinates.

    Returns:
        Per image ``(k, width)`` float32, best score first.
    """
    p_all = _check_params(params, len(candidates))
    out = []
    for b, recs in enumerate(candidates):
        recs = sort_records(np.asarray(recs, dtype=np.float32))
        width = recs.shape[1]
        classes = recs[:, YOLO_CLASS_COL] if width == YOLO_WIDTH else np.zeros(recs.shape[0], np.float32)
        keep = batched_nms(
            recs[:, :4],
            recs[:, SCORE_COL],
            classes,
            iou_threshold,
            agnostic=not class_aware or width != YOLO_WIDTH,
            plus_one=plus_one,
            max_det=max_det,
        )
        kept = recs[keep]
        if p_all is not None:
            kept = map_records(kept, p_all[b], clip=clip)
        out.append(kept)
    return out


def records_to_detections(records: np.ndarray) -> Detections:
    """One image's records (host) → :class:`~trtapps.structures.Detections` (faces: class 0, ``(n, 5, 2)``
    landmarks)."""
    rec = np.asarray(records, dtype=np.float32)
    if rec.ndim != 2 or rec.shape[1] not in (YOLO_WIDTH, FACE_WIDTH):
        raise ValueError(f"records must be (n, {YOLO_WIDTH}) or (n, {FACE_WIDTH}), got {rec.shape}")
    # the fields are built here with their dtypes and shapes: the constructor's checks would only repeat that
    if rec.shape[1] == YOLO_WIDTH:
        return Detections.unchecked(rec[:, :4], rec[:, 4], rec[:, 5].astype(np.int32))
    return Detections.unchecked(rec[:, :4], rec[:, 4], np.zeros(rec.shape[0], np.int32), rec[:, 5:15].reshape(-1, 5, 2))
