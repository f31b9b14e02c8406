"""Tracker behaviour on hand-made detections: SORT's output rule, ByteTrack's stages, DeepSORT's life cycle."""

from __future__ import annotations

import numpy as np
import pytest

from trtapps import Detections, Frame
from trtapps_plugins.trackers.bytetrack import LOST, ByteTracker, ByteTrackOptions
from trtapps_plugins.trackers.deepsort import CONFIRMED, TENTATIVE, DeepSortOptions, DeepSortTracker
from trtapps_plugins.trackers.sort import SortOptions, SortTracker

FRAME = Frame(image=np.zeros((720, 1280, 3), np.uint8), source="test")


def dets(boxes: list[list[float]], scores: list[float] | None = None, emb: np.ndarray | None = None) -> Detections:
    b = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    s = np.full(len(b), 0.9, np.float32) if scores is None else np.asarray(scores, np.float32)
    return Detections(boxes=b, scores=s, class_ids=np.zeros(len(b), np.int32), embeddings=emb)


def box(x: float, y: float = 100.0, w: float = 50.0, h: float = 120.0) -> list[float]:
    return [x, y, x + w, y + h]


# -- SORT ------------------------------------------------------------------------------------------------------


def test_sort_outputs_during_warmup_then_only_after_min_hits() -> None:
    tr = SortTracker(SortOptions(max_age=1, min_hits=3, iou_threshold=0.3))
    out1 = tr.update(dets([box(100)]), FRAME)
    assert out1.track_ids.tolist() == [1]  # frame_count <= min_hits: output at once, ids 1-based
    for k in range(2, 6):
        out = tr.update(dets([box(100 + 2 * k)]), FRAME)
        assert out.track_ids.tolist() == [1]
    # a new object after the warm-up frames is hidden until it has min_hits consecutive matches
    seen = [tr.update(dets([box(110 + 2 * k), box(600)]), FRAME).track_ids.tolist() for k in range(6, 10)]
    assert seen[:3] == [[1], [1], [1]]  # a new track starts with hit_streak 0
    assert seen[3] == [2, 1]  # newest track first, as the reference walks its list backwards


def test_sort_deletes_after_max_age_and_never_reuses_ids() -> None:
    tr = SortTracker(SortOptions(max_age=1, min_hits=0))
    tr.update(dets([box(100)]), FRAME)
    tr.update(dets(np.zeros((0, 4)).tolist()), FRAME)  # missed once: kept (time_since_update 1)
    assert len(tr) == 1
    tr.update(dets(np.zeros((0, 4)).tolist()), FRAME)  # missed twice: deleted
    assert len(tr) == 0
    out = tr.update(dets([box(100)]), FRAME)
    assert out.track_ids.tolist() == [2]


def test_sort_unique_overlaps_are_matched_directly_not_by_total_iou() -> None:
    # Widths 100, height 100: det0 overlaps track A with IoU 0.351 (> 0.3) and track B with 0.290; det1
    # overlaps A with 0.290. Only (det0, A) is above the threshold, so SORT matches it directly; a plain
    # max-IoU assignment would pair det0-B and det1-A (0.58 in total) and then reject both.
    def b(x: float) -> list[float]:
        return [x, 0, x + 100, 100]

    tr = SortTracker(SortOptions(max_age=1, min_hits=0, iou_threshold=0.3))
    tr.update(dets([b(0), b(103)]), FRAME)
    out = tr.update(dets([b(48), b(-55)]), FRAME)
    assert sorted(out.track_ids.tolist()) == [1, 3]  # track A continues; det1 starts track 3; B is missed


# -- ByteTrack ---------------------------------------------------------------------------------------------------


def test_bytetrack_low_score_detection_continues_a_track_in_the_second_stage() -> None:
    tr = ByteTracker(ByteTrackOptions(track_thresh=0.5, match_thresh=0.8))
    assert tr.update(dets([box(100)], [0.9]), FRAME).track_ids.tolist() == [1]  # frame 1: active at once
    out = tr.update(dets([box(103)], [0.3]), FRAME)  # low score: stage 2 keeps the track
    assert out.track_ids.tolist() == [1]
    assert out.scores.tolist() == [pytest.approx(0.3)]
    out = tr.update(dets([box(700)], [0.3]), FRAME)  # a low detection never starts a track
    assert len(out) == 0
    assert len(tr) == 1
    assert tr.state[0] == LOST


def test_bytetrack_new_tracks_need_track_thresh_plus_point_one_and_a_second_match() -> None:
    tr = ByteTracker(ByteTrackOptions(track_thresh=0.5))
    tr.update(dets(np.zeros((0, 4)).tolist()), FRAME)
    out = tr.update(dets([box(100), box(400)], [0.55, 0.65]), FRAME)
    assert len(out) == 0  # frame 2: new tracks are not activated yet
    assert tr.ids.tolist() == [1]  # 0.55 < 0.5 + 0.1 starts nothing
    out = tr.update(dets([box(102), box(402)], [0.55, 0.65]), FRAME)
    assert out.track_ids.tolist() == [1]  # activated by its second match (stage 3, unconfirmed)
    # an unconfirmed track missed once is removed
    tr.update(dets([box(102)], [0.9]), FRAME)
    tr.update(dets([box(900)], [0.9]), FRAME)
    tr.update(dets(np.zeros((0, 4)).tolist()), FRAME)
    assert 2 not in tr.ids.tolist()


def test_bytetrack_lost_tracks_are_refound_with_their_id_and_removed_after_the_buffer() -> None:
    tr = ByteTracker(ByteTrackOptions(track_buffer=30, frame_rate=10))  # buffer int(10/30·30) = 10 frames
    assert tr.max_time_lost == 10
    tr.update(dets([box(100)]), FRAME)
    for _ in range(5):
        tr.update(dets(np.zeros((0, 4)).tolist()), FRAME)
    assert tr.update(dets([box(100)]), FRAME).track_ids.tolist() == [1]  # re-found, same id
    for _ in range(12):
        tr.update(dets(np.zeros((0, 4)).tolist()), FRAME)
    assert len(tr) == 0
    out = tr.update(dets([box(100)]), FRAME)
    assert len(out) == 0
    assert tr.ids.tolist() == [2]


def test_bytetrack_fuse_score_changes_the_first_stage_cost() -> None:
    # IoU 0.36 with a 0.6-score detection: fused cost 1 − 0.36·0.6 = 0.784 < 0.8 matches, but a 0.51
    # detection gives 0.816 and does not; without fusion both match (0.64)
    prev = [0, 0, 100, 100]
    cur = [0, 0, 100, 36]
    for fuse, score, matched in [(True, 0.6, True), (True, 0.51, False), (False, 0.51, True)]:
        tr = ByteTracker(ByteTrackOptions(track_thresh=0.5, fuse_score=fuse))
        tr.update(dets([prev], [0.9]), FRAME)
        tr.update(dets([prev], [0.9]), FRAME)
        out = tr.update(dets([cur], [score]), FRAME)
        assert (out.track_ids.tolist() == [1]) is matched, (fuse, score)


# -- DeepSORT ----------------------------------------------------------------------------------------------------


def unit(rng: np.random.Generator, n: int, d: int = 16) -> np.ndarray:
    v = rng.normal(size=(n, d)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_deepsort_life_cycle_tentative_confirmed_deleted() -> None:
    rng = np.random.default_rng(0)
    f = unit(rng, 2)
    tr = DeepSortTracker(DeepSortOptions(n_init=3, max_age=4, min_confidence=0.3))
    for k in range(3):
        out = tr.update(dets([box(100 + k)], emb=f[:1]), FRAME)
        assert tr.state.tolist() == [TENTATIVE if k < 2 else CONFIRMED]
        assert out.track_ids.tolist() == ([] if k < 2 else [1])
    # a tentative track missed once is deleted at once
    tr.update(dets([box(103), box(700)], emb=f), FRAME)
    assert tr.ids.tolist() == [1, 2]
    tr.update(dets([box(104)], emb=f[:1]), FRAME)
    assert tr.ids.tolist() == [1]
    # a confirmed track survives max_age misses; it is output one frame after its last match only
    outs = [tr.update(dets(np.zeros((0, 4)).tolist()), FRAME).track_ids.tolist() for _ in range(5)]
    assert outs == [[1], [], [], [], []]
    assert len(tr) == 0  # time_since_update 5 > max_age 4: deleted


def test_deepsort_cascade_prefers_the_most_recently_seen_track() -> None:
    rng = np.random.default_rng(1)
    f = unit(rng, 1)
    both = np.repeat(f, 2, axis=0)
    tr = DeepSortTracker(DeepSortOptions(n_init=1, max_age=10, max_iou_distance=0.0))
    tr.update(dets([box(100), box(160)], [0.9, 0.8], emb=both), FRAME)  # track 1 at x=100, track 2 at x=160
    tr.update(dets([box(100), box(160)], [0.9, 0.8], emb=both), FRAME)  # both confirmed, same appearance
    tr.update(dets([box(160)], emb=f), FRAME)  # only track 2 seen again (60 px: gated for track 1)
    assert tr.time_since_update.tolist() == [1, 0]
    # a detection half-way, identical in appearance and inside both gates: level 1 of the cascade (track 2,
    # seen last frame) is matched before level 2 (track 1), although track 1 comes first in the cost matrix
    mean, cov = tr.kf.predict(tr.mean, tr.cov)
    gate = tr.kf.gating_distance(mean, cov, np.array([[155.0, 160, 50 / 120, 120]]))  # box(130) as xyah
    assert (gate < 9.4877).all()
    tr.update(dets([box(130)], emb=f), FRAME)
    assert dict(zip(tr.ids.tolist(), tr.time_since_update.tolist())) == {1: 2, 2: 0}


def test_deepsort_gating_rejects_appearance_matches_far_from_the_prediction() -> None:
    rng = np.random.default_rng(2)
    f = unit(rng, 1)
    tr = DeepSortTracker(DeepSortOptions(n_init=1))
    tr.update(dets([box(100)], emb=f), FRAME)
    tr.update(dets([box(100)], emb=f), FRAME)
    gate = tr.kf.gating_distance(*tr.kf.predict(tr.mean, tr.cov), np.array([[925.0, 160, 50 / 120, 120]]))
    assert gate[0, 0] > 9.4877
    tr.update(dets([box(900)], emb=f), FRAME)  # same feature, far away: gated, so a new track starts
    assert tr.ids.tolist() == [1, 2]


def test_deepsort_applies_min_confidence_and_orders_new_tracks_by_score() -> None:
    rng = np.random.default_rng(3)
    tr = DeepSortTracker(DeepSortOptions(min_confidence=0.5))
    tr.update(dets([box(100), box(300), box(500)], [0.6, 0.4, 0.9], emb=unit(rng, 3)), FRAME)
    assert tr.ids.tolist() == [1, 2]
    assert tr.mean[:, 0].round().tolist() == [525.0, 125.0]  # best score first, as deep_sort_app's NMS


def test_deepsort_without_embeddings_or_model_is_a_config_error() -> None:
    from trtapps.errors import ConfigError

    tr = DeepSortTracker(DeepSortOptions())
    with pytest.raises(ConfigError, match="reid_model"):
        tr.update(dets([box(100)]), FRAME)
