"""ByteTrack (Zhang et al. 2022), exactly as ifzhang/ByteTrack's ``BYTETracker.update``, Kalman vectorised.

Per frame, with ``high = score > track_thresh`` and ``low = low_thresh < score < track_thresh``:

1. the pool (activated tracked tracks, then lost tracks) is Kalman-predicted (lost tracks with zero height
   velocity) and matched to the high detections on ``1 − IoU·score`` (``fuse_score``; plain ``1 − IoU`` when
   off) with ``lap.lapjv(cost_limit=match_thresh)``; matched lost tracks are re-activated with their old id;
2. pool tracks still unmatched and tracked are matched to the low detections on ``1 − IoU`` (limit 0.5); those
   left over become lost;
3. unconfirmed tracks (started last frame, not yet activated; not predicted) are matched to the remaining high
   detections (limit 0.7, score-fused); unmatched ones are removed;
4. remaining high detections with ``score ≥ track_thresh + 0.1`` start tracks, activated at once only in the
   first frame, otherwise on their second match;
5. lost tracks not seen for more than ``int(frame_rate / 30 · track_buffer)`` frames are removed, and tracked /
   lost duplicates (IoU distance < 0.15) are resolved in favour of the longer-lived track.

IoUs are ``cython_bbox``'s pixel-inclusive ones. The reference's list bookkeeping is reproduced, including its
quirks: a lost track removed in one frame is still in the pool for one more frame (it can be re-found there),
and an id once removed is dropped from the lost list whenever it is lost again.

Defaults are those of the official demo (``tools/demo_track.py``): ``track_thresh 0.5``, ``match_thresh 0.8``,
``track_buffer 30``, ``mot20 False`` (score fusion on), and the reference's fixed ``low_thresh 0.1``. The
demo's pedestrian-specific output filters (``--min_box_area 10``, ``--aspect_ratio_thresh 1.6``) are off by
default here and can be switched on with ``min_box_area`` / ``aspect_ratio_thresh``.
"""

from __future__ import annotations

import numpy as np
from pydantic import Field

from trtapps.ops.boxes import tlwh_to_xyxy, xyxy_to_tlwh
from trtapps.registry import TrackerOptions
from trtapps.structures import Detections, Frame
from trtapps_plugins.trackers.kalman import XyahKalman, tlwh_to_xyah, xyah_to_tlwh
from trtapps_plugins.trackers.matching import iou_xyxy_plus_one, lapjv_matches

TRACKED, LOST, REMOVED = 1, 2, 3


class ByteTrackOptions(TrackerOptions):
    """ByteTrack (ifzhang/ByteTrack ``BYTETracker``); defaults are the official demo's."""

    type: str = "bytetrack"
    track_thresh: float = Field(0.5, ge=0.0, le=1.0, description="Detections above this score are 'high'.")
    low_thresh: float = Field(0.1, ge=0.0, le=1.0, description="Detections above this score (and not high) are 'low'.")
    new_track_thresh: float | None = Field(
        None, ge=0.0, description="Minimum score of a detection that starts a track (default: track_thresh + 0.1)."
    )
    match_thresh: float = Field(0.8, ge=0.0, le=1.0, description="Cost limit of the first association.")
    second_match_thresh: float = Field(0.5, ge=0.0, le=1.0, description="Cost limit of the low-score association.")
    unconfirmed_match_thresh: float = Field(
        0.7, ge=0.0, le=1.0, description="Cost limit of the unconfirmed-track association."
    )
    track_buffer: int = Field(30, ge=0, description="Frames a lost track is kept, at 30 fps.")
    frame_rate: float | None = Field(
        None, gt=0.0, description="Frame rate of the source; scales track_buffer (default: the source's, else 30)."
    )
    fuse_score: bool = Field(True, description="Multiply IoU by the detection score (the reference's not mot20).")
    min_box_area: float = Field(0.0, ge=0.0, description="Drop output boxes with w·h ≤ this (demo: 10).")
    aspect_ratio_thresh: float | None = Field(
        None, gt=0.0, description="Drop output boxes with w/h > this (demo: 1.6, pedestrians)."
    )


class ByteTracker:
    """ifzhang/ByteTrack on :class:`~trtapps.Detections`; one instance per source.

    Track state lives in arrays ordered as the reference's lists: the tracked list first, then the lost list.
    Track ids start at 1 (a track gets its id when it starts, activated or not).
    """

    def __init__(self, options: ByteTrackOptions | None = None) -> None:
        self.options = opts = options or ByteTrackOptions()
        self.kf = XyahKalman()
        self.frame_id = 0
        self._next_id = 1
        self.max_time_lost = int((opts.frame_rate or 30.0) / 30.0 * opts.track_buffer)
        new_thresh = opts.track_thresh + 0.1 if opts.new_track_thresh is None else opts.new_track_thresh
        # scores arrive as float32: compare in float32 so a score written as the threshold equals it
        self._high = np.float32(opts.track_thresh)
        self._low = np.float32(opts.low_thresh)
        self._new = np.float32(new_thresh)
        self.n_tracked = 0
        self.mean = np.zeros((0, 8))
        self.cov = np.zeros((0, 8, 8))
        self.ids = np.zeros(0, dtype=np.int64)
        self.state = np.zeros(0, dtype=np.int8)
        self.activated = np.zeros(0, dtype=bool)
        self.last_frame = np.zeros(0, dtype=np.int64)  # the reference's frame_id (end_frame)
        self.start_frame = np.zeros(0, dtype=np.int64)
        self.tracklet_len = np.zeros(0, dtype=np.int64)
        self.scores = np.zeros(0, dtype=np.float32)
        self.class_ids = np.zeros(0, dtype=np.int32)
        self.removed_before = np.zeros(0, dtype=bool)  # id is in the reference's removed_stracks list

    _FIELDS = (
        "mean", "cov", "ids", "state", "activated", "last_frame", "start_frame", "tracklet_len", "scores",
        "class_ids", "removed_before",
    )

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    def _take(self, rows: np.ndarray) -> None:
        for name in self._FIELDS:
            setattr(self, name, getattr(self, name)[rows])

    def _append(self, **cols: np.ndarray) -> None:
        for name in self._FIELDS:
            setattr(self, name, np.concatenate([getattr(self, name), cols[name]]))

    def _tlbr(self, rows: np.ndarray) -> np.ndarray:
        return tlwh_to_xyxy(xyah_to_tlwh(self.mean[rows]))

    def _cost(self, rows: np.ndarray, boxes: np.ndarray, scores: np.ndarray | None) -> np.ndarray:
        cost = 1 - iou_xyxy_plus_one(self._tlbr(rows), boxes)
        if scores is not None and cost.size:
            cost = 1 - (1 - cost) * scores[None, :]  # matching.fuse_score, same arithmetic
        return cost

    def update(self, detections: Detections, frame: Frame | None = None) -> Detections:
        """Track one frame; returns the activated tracked tracks with ``track_ids`` set."""
        opts = self.options
        if detections.on_device:
            detections = detections.to_host()
        if self.frame_id == 0 and opts.frame_rate is None and frame is not None and frame.meta.get("fps"):
            # the reference scales the lost-track buffer by the video's frame rate; take it from the source
            self.max_time_lost = int(float(frame.meta["fps"]) / 30.0 * opts.track_buffer)
        self.frame_id += 1
        fid = self.frame_id
        scores32 = detections.scores
        boxes = np.asarray(detections.boxes, dtype=np.float64)
        hi = np.flatnonzero(scores32 > self._high)
        lo = np.flatnonzero((scores32 > self._low) & (scores32 < self._high))
        scores = scores32.astype(np.float64)
        fuse = opts.fuse_score

        nt = self.n_tracked
        lost_rows = np.arange(nt, len(self))
        act = self.activated[:nt]
        unconfirmed = np.flatnonzero(~act)
        pool = np.concatenate([np.flatnonzero(act), lost_rows])

        # predict the pool (lost tracks with zero height velocity); unconfirmed tracks are not predicted
        if pool.size:
            m = self.mean[pool]
            m[self.state[pool] != TRACKED, 7] = 0.0
            self.mean[pool], self.cov[pool] = self.kf.predict(m, self.cov[pool])

        upd_rows: list[np.ndarray] = []
        upd_dets: list[np.ndarray] = []

        # 1. pool × high detections
        hi_scores = scores[hi] if fuse else None
        matches, u_track, u_det = lapjv_matches(self._cost(pool, boxes[hi], hi_scores), opts.match_thresh)
        m_rows = pool[matches[:, 0]]
        m_dets = hi[matches[:, 1]]
        refind = m_rows[self.state[m_rows] != TRACKED]
        self.tracklet_len[m_rows] += 1
        self.tracklet_len[refind] = 0
        upd_rows.append(m_rows)
        upd_dets.append(m_dets)
        self.state[m_rows] = TRACKED

        # 2. remaining tracked pool tracks × low detections
        r_rows = pool[u_track]
        r_rows = r_rows[self.state[r_rows] == TRACKED]
        matches2, u_track2, _ = lapjv_matches(self._cost(r_rows, boxes[lo], None), opts.second_match_thresh)
        m2_rows = r_rows[matches2[:, 0]]
        self.tracklet_len[m2_rows] += 1
        upd_rows.append(m2_rows)
        upd_dets.append(lo[matches2[:, 1]])
        new_lost = r_rows[u_track2]
        self.state[new_lost] = LOST

        # 3. unconfirmed tracks × remaining high detections
        rest = hi[u_det]
        rest_scores = scores[rest] if fuse else None
        matches3, u_unconf, u_det3 = lapjv_matches(
            self._cost(unconfirmed, boxes[rest], rest_scores), opts.unconfirmed_match_thresh
        )
        m3_rows = unconfirmed[matches3[:, 0]]
        self.tracklet_len[m3_rows] += 1
        upd_rows.append(m3_rows)
        upd_dets.append(rest[matches3[:, 1]])
        removed_unconf = unconfirmed[u_unconf]
        self.state[removed_unconf] = REMOVED

        # one batched Kalman update for every match of the three stages
        rows = np.concatenate(upd_rows)
        if rows.size:
            dets = np.concatenate(upd_dets)
            xyah = tlwh_to_xyah(xyxy_to_tlwh(boxes[dets]))
            self.mean[rows], self.cov[rows] = self.kf.update(self.mean[rows], self.cov[rows], xyah)
            self.state[rows] = TRACKED
            self.activated[rows] = True
            self.last_frame[rows] = fid
            self.scores[rows] = scores32[dets]
            self.class_ids[rows] = detections.class_ids[dets]

        # 4. new tracks
        new_dets = rest[u_det3]
        new_dets = new_dets[~(scores32[new_dets] < self._new)]
        k = new_dets.shape[0]
        first_new = len(self)
        if k:
            mean, cov = self.kf.initiate(tlwh_to_xyah(xyxy_to_tlwh(boxes[new_dets])))
            self._append(
                mean=mean,
                cov=cov,
                ids=np.arange(self._next_id, self._next_id + k, dtype=np.int64),
                state=np.full(k, TRACKED, dtype=np.int8),
                activated=np.full(k, fid == 1),
                last_frame=np.full(k, fid, dtype=np.int64),
                start_frame=np.full(k, fid, dtype=np.int64),
                tracklet_len=np.zeros(k, dtype=np.int64),
                scores=scores32[new_dets],
                class_ids=detections.class_ids[new_dets],
                removed_before=np.zeros(k, dtype=bool),
            )
            self._next_id += k

        # 5. expire lost tracks (the lost list as it was at the start of this frame)
        expired = lost_rows[(fid - self.last_frame[lost_rows]) > self.max_time_lost]
        self.state[expired] = REMOVED

        # the reference's list updates
        old_tracked = np.arange(nt)
        tracked = np.concatenate(
            [old_tracked[self.state[old_tracked] == TRACKED], np.arange(first_new, first_new + k), refind]
        )
        lost = lost_rows[self.state[lost_rows] != TRACKED]  # sub_stracks(lost, tracked)
        lost = np.concatenate([lost, new_lost])
        lost = lost[~self.removed_before[lost]]  # sub_stracks(lost, removed_stracks)
        self.removed_before[removed_unconf] = True
        self.removed_before[expired] = True
        tracked, lost = self._remove_duplicates(tracked, lost)

        self._take(np.concatenate([tracked, lost]))
        self.n_tracked = tracked.shape[0]

        out = np.flatnonzero(self.activated[: self.n_tracked])
        tlbr = self._tlbr(out)
        if opts.min_box_area > 0 or opts.aspect_ratio_thresh is not None:
            w = tlbr[:, 2] - tlbr[:, 0]
            h = tlbr[:, 3] - tlbr[:, 1]
            keep = w * h > opts.min_box_area
            if opts.aspect_ratio_thresh is not None:
                keep &= ~(w / h > opts.aspect_ratio_thresh)
            out, tlbr = out[keep], tlbr[keep]
        return Detections(
            boxes=tlbr, scores=self.scores[out], class_ids=self.class_ids[out], track_ids=self.ids[out]
        )

    def _remove_duplicates(self, tracked: np.ndarray, lost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``remove_duplicate_stracks``: of a tracked/lost pair closer than 0.15 IoU distance, keep the older."""
        if tracked.size == 0 or lost.size == 0:
            return tracked, lost
        dist = 1 - iou_xyxy_plus_one(self._tlbr(tracked), self._tlbr(lost))
        p, q = np.nonzero(dist < 0.15)
        if p.size == 0:
            return tracked, lost
        time_p = self.last_frame[tracked[p]] - self.start_frame[tracked[p]]
        time_q = self.last_frame[lost[q]] - self.start_frame[lost[q]]
        p_older = time_p > time_q
        keep_t = np.ones(tracked.shape[0], dtype=bool)
        keep_t[p[~p_older]] = False
        keep_l = np.ones(lost.shape[0], dtype=bool)
        keep_l[q[p_older]] = False
        return tracked[keep_t], lost[keep_l]
