"""SORT (Bewley et al. 2016), exactly as abewley/sort's ``Sort.update``, with the Kalman filter vectorised.

Per frame: predict every track (zeroing a negative area velocity first); drop tracks whose predicted box is
not finite; match detections to predicted boxes on IoU — directly when every detection and track has at most
one partner above ``iou_threshold``, else by ``lap.lapjv`` on ``−IoU`` — and reject matches below the
threshold; update matched tracks; start a track for every unmatched detection; output the tracks updated this
frame whose ``hit_streak >= min_hits`` (or all of them during the first ``min_hits`` frames), newest track
first; delete tracks not updated for more than ``max_age`` frames. Output boxes are the filtered states.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import Field

from trtapps.registry import TrackerOptions
from trtapps.structures import Detections, Frame
from trtapps_plugins.trackers.kalman import SortKalman, sort_x_to_xyxy, xyxy_to_sort_z
from trtapps_plugins.trackers.matching import iou_xyxy, lapjv_matches


class SortOptions(TrackerOptions):
    """SORT (abewley/sort); defaults are the reference's."""

    type: str = "sort"
    max_age: int = Field(1, ge=0, description="Frames a track survives without a matched detection.")
    min_hits: int = Field(3, ge=0, description="Consecutive matches before a track is output.")
    iou_threshold: float = Field(0.3, ge=0.0, le=1.0, description="Minimum IoU of a detection-track match.")


_EMPTY_I = np.zeros(0, dtype=np.int64)


class SortTracker:
    """abewley/sort on :class:`~trtapps.Detections`; one instance per source.

    Track ids start at 1 and are never reused. Scores and class ids of an output track are those of the
    detection it was last matched to; the box is the Kalman state.
    """

    def __init__(self, options: SortOptions | None = None) -> None:
        self.options = options or SortOptions()
        self.kf = SortKalman()
        self.frame_count = 0
        self._next_id = 1
        self.x = np.zeros((0, 7))
        self.p = np.zeros((0, 7, 7))
        self.ids = _EMPTY_I.copy()
        self.time_since_update = _EMPTY_I.copy()
        self.hits = _EMPTY_I.copy()
        self.hit_streak = _EMPTY_I.copy()
        self.age = _EMPTY_I.copy()
        self.scores = np.zeros(0, dtype=np.float32)
        self.class_ids = np.zeros(0, dtype=np.int32)

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    def _keep(self, keep: np.ndarray) -> None:
        self.x, self.p, self.ids = self.x[keep], self.p[keep], self.ids[keep]
        self.time_since_update, self.hits = self.time_since_update[keep], self.hits[keep]
        self.hit_streak, self.age = self.hit_streak[keep], self.age[keep]
        self.scores, self.class_ids = self.scores[keep], self.class_ids[keep]

    def update(self, detections: Detections, frame: Frame | None = None) -> Detections:
        """Track one frame; returns the output tracks with ``track_ids`` set."""
        opts = self.options
        if detections.on_device:
            detections = detections.to_host()
        dets = np.asarray(detections.boxes, dtype=np.float64)
        self.frame_count += 1

        # -- predict all tracks, drop those with a non-finite prediction ------------------------------------
        n = self.ids.shape[0]
        if n:
            self.x, self.p = self.kf.predict(self.x, self.p)
            self.age += 1
            self.hit_streak[self.time_since_update > 0] = 0
            self.time_since_update += 1
            predicted = sort_x_to_xyxy(self.x)
            finite = np.isfinite(predicted).all(axis=1)
            if not finite.all():
                self._keep(finite)
                predicted = predicted[finite]
                n = self.ids.shape[0]
        else:
            predicted = np.zeros((0, 4))

        # -- associate (associate_detections_to_trackers) -----------------------------------------------------
        matched_d, matched_t, unmatched_d = _associate(dets, predicted, opts.iou_threshold)

        # -- update matched tracks ------------------------------------------------------------------------
        if matched_t.size:
            self.x[matched_t], self.p[matched_t] = self.kf.update(
                self.x[matched_t], self.p[matched_t], xyxy_to_sort_z(dets[matched_d])
            )
            self.time_since_update[matched_t] = 0
            self.hits[matched_t] += 1
            self.hit_streak[matched_t] += 1
            self.scores[matched_t] = detections.scores[matched_d]
            self.class_ids[matched_t] = detections.class_ids[matched_d]

        # -- new tracks for unmatched detections, in the reference's order ------------------------------------
        k = unmatched_d.shape[0]
        if k:
            x_new, p_new = self.kf.initiate(xyxy_to_sort_z(dets[unmatched_d]))
            new_ids = np.arange(self._next_id, self._next_id + k, dtype=np.int64)
            self._next_id += k
            zeros = np.zeros(k, dtype=np.int64)
            self.x = np.concatenate([self.x, x_new])
            self.p = np.concatenate([self.p, p_new])
            self.ids = np.concatenate([self.ids, new_ids])
            self.time_since_update = np.concatenate([self.time_since_update, zeros])
            self.hits = np.concatenate([self.hits, zeros])
            self.hit_streak = np.concatenate([self.hit_streak, zeros])
            self.age = np.concatenate([self.age, zeros])
            self.scores = np.concatenate([self.scores, detections.scores[unmatched_d]])
            self.class_ids = np.concatenate([self.class_ids, detections.class_ids[unmatched_d]])

        # -- output (newest first, as the reference walks its list backwards) and deletion ---------------------
        tsu = self.time_since_update
        out = (tsu < 1) & ((self.hit_streak >= opts.min_hits) | (self.frame_count <= opts.min_hits))
        sel = np.flatnonzero(out)[::-1]
        result = Detections(
            boxes=sort_x_to_xyxy(self.x[sel]),
            scores=self.scores[sel],
            class_ids=self.class_ids[sel],
            track_ids=self.ids[sel],
        )
        dead = tsu > opts.max_age
        if dead.any():
            self._keep(~dead)
        return result


def _associate(dets: np.ndarray, trks: np.ndarray, iou_threshold: float) -> tuple[Any, Any, np.ndarray]:
    """SORT's ``associate_detections_to_trackers``: matched detection and track indices, unmatched detections.

    The unmatched detections come in the reference's order: those the assignment left out (ascending), then
    those whose assigned track overlapped less than the threshold (in assignment order).
    """
    nd, nt = dets.shape[0], trks.shape[0]
    if nt == 0 or nd == 0:
        return _EMPTY_I, _EMPTY_I, np.arange(nd)
    iou = iou_xyxy(dets, trks)
    a = iou > iou_threshold
    if a.sum(1).max() == 1 and a.sum(0).max() == 1:
        d_idx, t_idx = np.nonzero(a)
    else:
        pairs, _, _ = lapjv_matches(-iou)
        d_idx, t_idx = pairs[:, 0], pairs[:, 1]
    assigned = np.zeros(nd, dtype=bool)
    assigned[d_idx] = True
    pair_iou = iou[d_idx, t_idx]
    low = pair_iou < iou_threshold
    unmatched = np.flatnonzero(~assigned)
    if low.any():
        unmatched = np.concatenate([unmatched, d_idx[low]])
        good = ~low
        d_idx, t_idx = d_idx[good], t_idx[good]
    return d_idx, t_idx, unmatched

