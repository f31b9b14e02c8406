"""YOLO head decoding and NMS against plain-loop references written here (different code from the decoder)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pytest

from trtapps_plugins.yolo.decode import (
    DecodeParams,
    decode,
    decode_yolox_boxes,
    looks_decoded,
    yolox_grid,
)

Row = tuple[list[float], float, int]  # (xyxy box, score, class id)

# -- references: one anchor, one class at a time ------------------------------------------------------------


def _corners(cx: float, cy: float, w: float, h: float) -> list[float]:
    """xywh → xyxy in float32 arithmetic, as the exported model's consumers do."""
    f = np.float32
    half_w, half_h = f(w) / f(2), f(h) / f(2)
    return [float(f(cx) - half_w), float(f(cy) - half_h), float(f(cx) + half_w), float(f(cy) + half_h)]


def _iou(a: list[float], b: list[float]) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _classes_of(scores: list[float], conf: float, multi_label: bool) -> list[tuple[float, int]]:
    if multi_label:
        return [(s, c) for c, s in enumerate(scores) if s > conf]
    best = 0
    for c in range(1, len(scores)):
        if scores[c] > scores[best]:
            best = c
    return [(scores[best], best)] if scores[best] > conf else []


def _greedy(rows: list[Row], p: DecodeParams) -> list[Row]:
    """Textbook greedy NMS: walk the candidates best first, keep one unless a kept box overlaps it too much."""
    ranked = sorted(rows, key=lambda r: -r[1])[: p.max_candidates]  # sorted() is stable: ties keep input order
    kept: list[Row] = []
    for row in ranked:
        if len(kept) == p.max_det:
            break
        rivals = [k for k in kept if p.agnostic or k[2] == row[2]]
        if all(_iou(k[0], row[0]) <= p.iou_threshold for k in rivals):
            kept.append(row)
    return kept


def _filter(rows: list[Row], p: DecodeParams) -> list[Row]:
    if p.classes is None:
        return rows
    allowed = {int(c) for c in p.classes}
    return [r for r in rows if r[2] in allowed]


def reference_v8(pred: np.ndarray, p: DecodeParams) -> list[Row]:
    rows: list[Row] = []
    for a in range(pred.shape[1]):
        col = [float(v) for v in pred[:, a]]
        for score, c in _classes_of(col[4:], p.conf_threshold, p.multi_label):
            rows.append((_corners(*col[:4]), score, c))
    return _greedy(_filter(rows, p), p)


def reference_v5(pred: np.ndarray, p: DecodeParams) -> list[Row]:
    rows: list[Row] = []
    for a in range(pred.shape[0]):
        obj = pred[a, 4]
        if not obj > p.conf_threshold:
            continue
        scores = [float(np.float32(obj) * np.float32(v)) for v in pred[a, 5:]]
        for score, c in _classes_of(scores, p.conf_threshold, p.multi_label):
            rows.append((_corners(*(float(v) for v in pred[a, :4])), score, c))
    return _greedy(_filter(rows, p), p)


def reference_yolox_raw(pred: np.ndarray, input_size: tuple[int, int], p: DecodeParams) -> list[Row]:
    decoded = np.array(pred, dtype=np.float32, copy=True)
    a = 0
    for s in (8, 16, 32):
        for gy in range(input_size[0] // s):
            for gx in range(input_size[1] // s):
                dx, dy, lw, lh = (float(v) for v in pred[a, :4])
                decoded[a, :4] = [(dx + gx) * s, (dy + gy) * s, math.exp(lw) * s, math.exp(lh) * s]
                a += 1
    assert a == pred.shape[0]
    return reference_v5(decoded, p)


# -- synthetic heads --------------------------------------------------------------------------------------------


def _boxes_xywh(rng: np.random.Generator, n: int, size: int = 320) -> np.ndarray:
    """Clustered boxes, so that NMS has real work: centres around 6 spots, sizes 10-120 px."""
    spots = rng.uniform(40, size - 40, (6, 2))
    centres = spots[rng.integers(0, 6, n)] + rng.normal(0, 12, (n, 2))
    sizes = rng.uniform(10, 120, (n, 2))
    return np.concatenate([centres, sizes], axis=1).astype(np.float32)


def _class_probs(rng: np.random.Generator, n: int, c: int) -> np.ndarray:
    return (rng.uniform(0, 1, (n, c)) ** 3).astype(np.float32)  # mostly low, a few high


def _close(got: tuple[np.ndarray, np.ndarray, np.ndarray], want: list[Row]) -> None:
    boxes, scores, class_ids = got
    assert boxes.dtype == np.float32
    assert scores.dtype == np.float32
    assert class_ids.dtype == np.int32
    assert len(scores) == len(want), f"{len(scores)} detections, reference has {len(want)}"
    if want:
        np.testing.assert_allclose(boxes, np.array([r[0] for r in want]), rtol=0, atol=1e-3)
        np.testing.assert_allclose(scores, np.array([r[1] for r in want]), rtol=1e-6)
        np.testing.assert_array_equal(class_ids, np.array([r[2] for r in want]))


PARAMS = [
    DecodeParams(conf_threshold=0.25, iou_threshold=0.45),
    DecodeParams(conf_threshold=0.1, iou_threshold=0.7, agnostic=True),
    DecodeParams(conf_threshold=0.2, iou_threshold=0.5, multi_label=True),
    DecodeParams(conf_threshold=0.05, iou_threshold=0.3, max_det=7, max_candidates=40),
    DecodeParams(conf_threshold=0.2, iou_threshold=0.45, classes=np.array([1, 3])),
    DecodeParams(conf_threshold=0.2, iou_threshold=0.45, multi_label=True, classes=np.array([0])),
]


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("params", PARAMS, ids=lambda p: f"conf{p.conf_threshold}-iou{p.iou_threshold}")
def test_v8_head_matches_reference(seed: int, params: DecodeParams) -> None:
    rng = np.random.default_rng(seed)
    n, c = 400, 5
    pred = np.concatenate([_boxes_xywh(rng, n), _class_probs(rng, n, c)], axis=1).T  # (4 + C, N)
    _close(decode(np.ascontiguousarray(pred), "v8", params), reference_v8(pred, params))


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("params", PARAMS, ids=lambda p: f"conf{p.conf_threshold}-iou{p.iou_threshold}")
def test_v5_head_matches_reference(seed: int, params: DecodeParams) -> None:
    rng = np.random.default_rng(100 + seed)
    n, c = 400, 4
    obj = rng.uniform(0, 1, (n, 1)).astype(np.float32)
    pred = np.concatenate([_boxes_xywh(rng, n), obj, _class_probs(rng, n, c) ** 0.3], axis=1)
    _close(decode(pred, "v5", params), reference_v5(pred, params))


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("params", PARAMS[:4], ids=lambda p: f"conf{p.conf_threshold}-iou{p.iou_threshold}")
def test_yolox_raw_head_matches_reference(seed: int, params: DecodeParams) -> None:
    rng = np.random.default_rng(200 + seed)
    size = (160, 224)
    grid = yolox_grid(size, 20 * 28 + 10 * 14 + 5 * 7)
    n, c = grid[0].shape[0], 3
    raw_box = np.concatenate([rng.uniform(-0.5, 1.5, (n, 2)), rng.uniform(-1.0, 2.5, (n, 2))], axis=1)
    obj = rng.uniform(0, 1, (n, 1))
    pred = np.concatenate([raw_box, obj, _class_probs(rng, n, c) ** 0.3], axis=1).astype(np.float32)
    _close(decode(pred, "yolox_raw", params, grid), reference_yolox_raw(pred, size, params))


def test_yolox_grid_rows_are_level_then_row_then_column() -> None:
    grid, strides = yolox_grid((416, 416), 3549)
    assert grid.shape == (3549, 2)
    assert strides.shape == (3549, 1)
    assert grid.dtype == np.float32
    np.testing.assert_array_equal(grid[:3], [[0, 0], [1, 0], [2, 0]])
    np.testing.assert_array_equal(grid[52], [0, 1])  # second row of the stride-8 level
    assert strides[52 * 52 - 1, 0] == 8
    assert strides[52 * 52, 0] == 16
    np.testing.assert_array_equal(grid[52 * 52 + 26 * 26], [0, 0])  # first cell of stride 32
    assert strides[-1, 0] == 32
    np.testing.assert_array_equal(grid[-1], [12, 12])


def test_yolox_grid_finds_p6_heads_and_refuses_misfits() -> None:
    _, strides = yolox_grid((640, 640), 8400 + 100)
    assert strides[-1, 0] == 64
    with pytest.raises(ValueError, match="3549 rows does not fit a 640x640 input"):
        yolox_grid((640, 640), 3549)


def test_decode_yolox_boxes_uses_integer_grid_without_half_offset() -> None:
    pred = np.array([[0.0, 0.0, 0.0, 0.0, 0.9, 0.8], [0.5, 0.25, math.log(2), 0.0, 0.9, 0.8]], np.float32)
    grid = np.array([[0, 0], [3, 1]], np.float32)
    strides = np.array([[8], [16]], np.float32)
    out = decode_yolox_boxes(pred, grid, strides)
    np.testing.assert_allclose(out[0, :4], [0, 0, 8, 8])
    np.testing.assert_allclose(out[1, :4], [(0.5 + 3) * 16, (0.25 + 1) * 16, 32, 16], rtol=1e-6)
    np.testing.assert_array_equal(out[:, 4:], pred[:, 4:])
    assert pred[1, 0] == np.float32(0.5)  # the input is not modified


def test_looks_decoded_tells_raw_offsets_from_pixel_boxes() -> None:
    rng = np.random.default_rng(0)
    grid, strides = yolox_grid((416, 416), 3549)
    raw = np.concatenate([rng.uniform(-0.5, 1.5, (3549, 2)), rng.normal(0, 1, (3549, 2)), np.zeros((3549, 2))], 1)
    assert not looks_decoded(raw)
    assert looks_decoded(decode_yolox_boxes(raw, grid, strides))


# -- NMS and threshold semantics --------------------------------------------------------------------------------


def _v8_head(boxes_xyxy: Sequence[Sequence[float]], scores: Sequence[Sequence[float]]) -> np.ndarray:
    """A ``(4 + C, N)`` v8 head from xyxy boxes and per-anchor class scores."""
    b = np.asarray(boxes_xyxy, np.float32)
    xywh = np.stack([(b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2, b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]], 1)
    return np.concatenate([xywh, np.asarray(scores, np.float32)], axis=1).T.copy()


def test_class_aware_nms_keeps_overlapping_boxes_of_different_classes() -> None:
    head = _v8_head([[0, 0, 100, 100], [2, 2, 100, 100]], [[0.9, 0.0], [0.0, 0.8]])
    _, scores, class_ids = decode(head, "v8", DecodeParams(iou_threshold=0.45))
    np.testing.assert_allclose(scores, [0.9, 0.8])
    np.testing.assert_array_equal(class_ids, [0, 1])
    _, scores, class_ids = decode(head, "v8", DecodeParams(iou_threshold=0.45, agnostic=True))
    np.testing.assert_allclose(scores, [0.9])
    np.testing.assert_array_equal(class_ids, [0])


def test_equal_scores_keep_the_earlier_anchor() -> None:
    head = _v8_head([[10, 10, 110, 110], [12, 12, 112, 112], [11, 11, 111, 111]], [[0.6], [0.6], [0.6]])
    boxes, scores, _ = decode(head, "v8", DecodeParams())
    assert len(scores) == 1
    np.testing.assert_allclose(boxes[0], [10, 10, 110, 110])


def test_iou_exactly_at_the_threshold_is_kept() -> None:
    # IoU([0,0,10,10], [0,0,10,5]) = 50 / 100 = 0.5 exactly
    head = _v8_head([[0, 0, 10, 10], [0, 0, 10, 5]], [[0.9], [0.8]])
    assert len(decode(head, "v8", DecodeParams(iou_threshold=0.5))[1]) == 2
    assert len(decode(head, "v8", DecodeParams(iou_threshold=0.4999))[1]) == 1


def test_score_exactly_at_the_threshold_is_dropped() -> None:
    head = _v8_head([[0, 0, 10, 10], [50, 50, 60, 60]], [[0.5], [0.5000001]])
    _, scores, _ = decode(head, "v8", DecodeParams(conf_threshold=0.5))
    np.testing.assert_allclose(scores, [0.5000001])
    # v5: obj·cls exactly 0.25 and obj exactly 0.25 are both out at 0.25 (all values exact in float32)
    rows = np.array([[5, 5, 10, 10, 0.5, 0.5], [55, 55, 10, 10, 0.25, 1.0], [95, 95, 10, 10, 0.5, 0.5625]], np.float32)
    _, scores, _ = decode(rows, "v5", DecodeParams(conf_threshold=0.25))
    np.testing.assert_array_equal(scores, [0.28125])


def test_best_class_decides_before_the_class_filter_unless_multi_label() -> None:
    head = _v8_head([[0, 0, 10, 10]], [[0.8, 0.9]])
    only_person = np.array([0])
    assert len(decode(head, "v8", DecodeParams(classes=only_person))[1]) == 0  # best class 1 is filtered out
    _, scores, class_ids = decode(head, "v8", DecodeParams(classes=only_person, multi_label=True))
    np.testing.assert_allclose(scores, [0.8])
    np.testing.assert_array_equal(class_ids, [0])


def test_max_det_and_max_candidates() -> None:
    boxes = [[i * 20.0, 0.0, i * 20.0 + 10, 10.0] for i in range(10)]  # no overlaps
    scores = [[0.3 + 0.05 * i] for i in range(10)]
    head = _v8_head(boxes, scores)
    _, kept, _ = decode(head, "v8", DecodeParams(max_det=3))
    np.testing.assert_allclose(kept, [0.75, 0.70, 0.65])
    # only the 4 best candidates enter NMS: the best suppresses its overlapping twin, 3 remain
    head = _v8_head([[0, 0, 10, 10], [0, 0, 10, 9], *boxes[:8]], [[0.99], [0.98], *scores[:8]])
    _, kept, _ = decode(head, "v8", DecodeParams(max_candidates=4))
    np.testing.assert_allclose(kept, [0.99, 0.65, 0.60])


def test_empty_heads_give_empty_arrays() -> None:
    boxes, scores, class_ids = decode(np.zeros((84, 8400), np.float32), "v8", DecodeParams())
    assert boxes.shape == (0, 4)
    assert scores.shape == class_ids.shape == (0,)
    boxes, _, _ = decode(np.zeros((0, 85), np.float32), "v5", DecodeParams(multi_label=True))
    assert boxes.shape == (0, 4)


def test_unknown_layout_and_missing_grid_are_errors() -> None:
    with pytest.raises(ValueError, match="unknown YOLO head layout 'v7'"):
        decode(np.zeros((84, 10), np.float32), "v7", DecodeParams())
    with pytest.raises(ValueError, match="needs its grid"):
        decode(np.zeros((10, 85), np.float32), "yolox_raw", DecodeParams())
