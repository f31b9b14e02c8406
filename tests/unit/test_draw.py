"""Drawing: stable colours, boxes, labels, landmarks, track ids and trails."""

from __future__ import annotations

import itertools

import cv2
import numpy as np
import pytest

from conftest import shared_path
from trtapps.draw import (
    CLASS_PALETTE,
    LANDMARK_COLORS,
    TrailHistory,
    annotate,
    class_color,
    track_color,
)
from trtapps.structures import Detections


def _dets(boxes: list[list[float]], class_ids: list[int], **extra: object) -> Detections:
    n = len(boxes)
    return Detections(boxes=np.asarray(boxes, np.float32).reshape(n, 4), scores=np.full(n, 0.9, np.float32),
                      class_ids=np.asarray(class_ids, np.int32), **extra)  # type: ignore[arg-type]


def test_colours_are_stable_and_distinct() -> None:
    assert class_color(3) == class_color(3) == CLASS_PALETTE[3]
    assert class_color(len(CLASS_PALETTE) + 3) == class_color(3)
    assert len({class_color(i) for i in range(len(CLASS_PALETTE))}) == len(CLASS_PALETTE)
    assert track_color(7) == track_color(7)
    consecutive = [track_color(i) for i in range(1, 41)]
    assert len(set(consecutive)) == 40
    for a, b in itertools.pairwise(consecutive):
        assert sum(abs(x - y) for x, y in zip(a, b, strict=True)) > 60  # neighbours look different
    assert len(set(LANDMARK_COLORS)) == 5


def test_box_label_and_copy() -> None:
    image = np.full((200, 300, 3), 255, np.uint8)
    before = image.copy()
    out = annotate(image, _dets([[50, 60, 150, 160]], [2]), labels=["a", "b", "car"], line_width=2)
    assert np.array_equal(image, before)  # the input is untouched
    assert out.shape == image.shape
    assert out.dtype == np.uint8
    color = np.array(class_color(2))
    # the left edge of the box has the class colour, the inside stays white
    assert np.array_equal(out[110, 50], color)
    assert np.array_equal(out[110, 100], [255, 255, 255])
    # the label tag sits just above the box, filled with the class colour
    tag = out[40:59, 50:90].reshape(-1, 3)
    assert (tag == color).all(axis=1).mean() > 0.5
    # nothing far away from the box changed
    assert np.array_equal(out[180:, 200:], before[180:, 200:])


def test_label_text_names_the_class_and_score() -> None:
    """Drawing with scores writes more text (a wider tag) than without, and an unknown class id shows."""
    image = np.zeros((120, 400, 3), np.uint8)
    det = _dets([[20, 60, 60, 100]], [0])
    with_score = annotate(image, det, ["person"], line_width=2)
    without = annotate(image, det, ["person"], show_scores=False, line_width=2)
    tag_width = [int((img[30:58, :] != 0).any(axis=2).any(axis=0).sum()) for img in (with_score, without)]
    assert tag_width[0] > tag_width[1] > 0
    no_label = annotate(image, det, ["person"], show_labels=False, line_width=2)
    assert not (no_label[30:55, :] != 0).any()


def test_track_ids_pick_the_track_colour() -> None:
    image = np.zeros((100, 100, 3), np.uint8)
    det = _dets([[10, 20, 60, 90]], [0], track_ids=np.array([12]))
    out = annotate(image, det, line_width=2)
    assert np.array_equal(out[50, 10], track_color(12))
    assert not np.array_equal(out[50, 10], class_color(0))


def test_landmarks_are_circles_in_distinct_colours() -> None:
    image = np.zeros((200, 200, 3), np.uint8)
    points = [[60, 60], [140, 60], [100, 100], [70, 140], [130, 140]]
    det = _dets([[20, 20, 180, 180]], [0], landmarks=np.asarray([points], np.float32))
    out = annotate(image, det, show_labels=False, line_width=1)
    for (x, y), color in zip(points, LANDMARK_COLORS, strict=True):
        assert np.array_equal(out[y, x], color)
    hidden = annotate(image, det, show_labels=False, show_landmarks=False, line_width=1)
    assert not hidden[100, 100].any()


def test_empty_none_and_non_finite_detections() -> None:
    image = np.full((50, 50, 3), 7, np.uint8)
    assert np.array_equal(annotate(image, None), image)
    assert np.array_equal(annotate(image, Detections.empty()), image)
    bad = _dets([[np.nan, 0, 10, 10], [5, 5, 20, 20]], [0, 1])
    out = annotate(image, bad, show_labels=False, line_width=2)
    assert np.array_equal(out[12, 5], class_color(1))
    assert np.array_equal(out[25:], image[25:])  # only the finite box was drawn
    with pytest.raises(ValueError, match=r"\(H, W, 3\) uint8"):
        annotate(np.zeros((10, 10), np.uint8), None)


def test_in_place_drawing() -> None:
    image = np.zeros((40, 40, 3), np.uint8)
    out = annotate(image, _dets([[5, 5, 30, 30]], [0]), show_labels=False, copy=False, line_width=1)
    assert out is image or np.shares_memory(out, image)
    assert image.any()


def test_trail_history_keeps_the_last_centres_per_source() -> None:
    trails = TrailHistory(length=3, max_age=2)
    for step in range(5):
        trails.update("cam", _dets([[step, 0, step + 2, 2]], [0], track_ids=np.array([1])))
    assert trails.trails("cam") == {1: [(3.0, 1.0), (4.0, 1.0), (5.0, 1.0)]}
    assert trails.trails("other") == {}
    trails.update("other", _dets([[0, 0, 2, 2]], [0], track_ids=np.array([1])))
    assert trails.trails("other") == {1: [(1.0, 1.0)]}
    # untracked detections add nothing; a track unseen for more than max_age updates is forgotten
    for _ in range(3):
        trails.update("cam", _dets([[0, 0, 1, 1]], [0]))
    assert trails.trails("cam") == {}
    assert trails.trails("other") == {1: [(1.0, 1.0)]}
    trails.reset()
    assert trails.trails("other") == {}
    with pytest.raises(ValueError, match="length"):
        TrailHistory(length=0)


def test_trails_are_drawn_between_centres() -> None:
    trails = TrailHistory(length=10)
    for x in (20, 60, 100):
        trails.update("s", _dets([[x - 5, 45, x + 5, 55]], [0], track_ids=np.array([4])))
    image = np.zeros((100, 130, 3), np.uint8)
    out = annotate(image, None, trails=trails, source="s", line_width=4)
    assert np.array_equal(out[50, 40], track_color(4))  # on the line between the first two centres
    assert not out[10, 40].any()


def test_annotate_a_real_photo() -> None:
    image = cv2.imread(str(shared_path("media/bus.jpg")))
    det = _dets([[50, 400, 250, 900], [220, 230, 800, 750]], [0, 5])
    out = annotate(image, det, labels=[f"class{i}" for i in range(80)])
    changed = (out != image).any(axis=2)
    assert changed[400:900, 50].mean() > 0.9  # the left edge of the first box
    assert not changed[1000:, 500:].any()  # far from both boxes
