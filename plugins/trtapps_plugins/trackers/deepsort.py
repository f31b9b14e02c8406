"""DeepSORT (Wojke et al. 2017), exactly as nwojke/deep_sort's ``Tracker`` driven by ``deep_sort_app.py``.

Per frame (``deep_sort_app``'s frame callback): keep detections with ``score >= min_confidence`` and height
``>= min_detection_height``, order them as its ``non_max_suppression`` does (by score, best first; boxes whose
overlap ratio exceeds ``nms_max_overlap`` dropped — none at the default 1.0); predict every track; then
``Tracker.update``:

1. **matching cascade** over confirmed tracks, level by level of ``time_since_update`` (1, 2, …, max_age): the
   cost is the smallest cosine distance between a detection's feature and the track's gallery, set to 1e5
   where the squared Mahalanobis distance of the detection to the track exceeds 9.4877 (χ²₀.₉₅, 4 DoF);
   Hungarian assignment (SciPy) with costs above ``max_cosine_distance`` clipped to it + 1e-5 and rejected;
2. **IoU matching** of the unconfirmed tracks and the confirmed tracks missed only in this frame against the
   remaining detections, cost ``1 − IoU``, limit ``max_iou_distance``;
3. matched tracks are updated (a tentative track with ``n_init`` hits becomes confirmed), missed tentative
   tracks and tracks missed more than ``max_age`` frames are deleted, each unmatched detection starts a
   tentative track; galleries keep the last ``nn_budget`` features of each confirmed track.

Output: confirmed tracks updated in this frame or the one before (``time_since_update <= 1``), as the app
writes them, boxes from the Kalman state. Appearance comes from ``detections.embeddings`` when they are set,
else from a ReID model (``reid_model``) run on the frame's crops.

Defaults follow the reference's documented MOT16 example (README: ``--min_confidence=0.3 --nn_budget=100``,
app default ``max_cosine_distance 0.2``, ``nms_max_overlap 1.0``) and its tracker (``max_iou_distance 0.7``,
``max_age 30``, ``n_init 3``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import Field

from trtapps.context import StashKey
from trtapps.errors import ConfigError
from trtapps.ops.boxes import tlwh_to_xyxy, xyxy_to_tlwh
from trtapps.registry import TrackerOptions
from trtapps.structures import Detections, Frame
from trtapps_plugins.trackers.kalman import CHI2INV95, XyahKalman, tlwh_to_xyah, xyah_to_tlwh
from trtapps_plugins.trackers.matching import hungarian

if TYPE_CHECKING:
    from trtapps_plugins.trackers.reid import ReidEmbedder

TENTATIVE, CONFIRMED, DELETED = 1, 2, 3
INFTY_COST = 1e5


class DeepSortOptions(TrackerOptions):
    """DeepSORT (nwojke/deep_sort); defaults are the reference's documented MOT16 example."""

    type: str = "deepsort"
    max_cosine_distance: float = Field(0.2, ge=0.0, le=2.0, description="Appearance matching threshold.")
    nn_budget: int | None = Field(100, ge=1, description="Gallery size per track (None: unbounded).")
    max_iou_distance: float = Field(0.7, ge=0.0, le=1.0, description="IoU matching threshold (1 − IoU).")
    max_age: int = Field(30, ge=1, description="Missed frames before a confirmed track is deleted.")
    n_init: int = Field(3, ge=1, description="Matches before a track is confirmed.")
    min_confidence: float = Field(0.3, description="Detections below this score are ignored.")
    min_detection_height: float = Field(0.0, ge=0.0, description="Detections lower than this (px) are ignored.")
    nms_max_overlap: float = Field(1.0, ge=0.0, description="deep_sort_app's NMS overlap ratio (1.0: off).")
    gating_only_position: bool = Field(False, description="Gate on the box centre only (2 DoF).")
    reid_model: str | None = Field(
        None,
        description="ReID ONNX model for detections without embeddings (e.g. osnet_x0_25_msmt17.onnx); "
        "a path relative to the config file.",
    )
    reid_batch_size: int = Field(32, ge=1, description="Crops per ReID inference call.")
    reid_backend: str | None = Field(
        None,
        description="Backend of the ReID model (onnxruntime, onnxruntime_cuda, tensorrt); default: the "
        "pipeline's backend, so a GPU pipeline crops and embeds on the GPU (onnxruntime outside a pipeline).",
    )


class _Gallery:
    """Per-track ring buffers of L2-normalised features (the reference's ``samples`` dict, as one array).

    Slots a track has not filled yet hold copies of its first feature, which is in its gallery until the ring
    wraps, so the nearest-neighbour distance needs no mask: one matrix product over every slot of every track.
    """

    def __init__(self, budget: int | None) -> None:
        self.budget = budget
        self.capacity = budget if budget is not None else 8
        self.feats: np.ndarray | None = None  # (N, capacity, D)
        self.count = np.zeros(0, dtype=np.int64)  # samples seen, per track
        self.dim = 0

    def _ensure(self, dim: int) -> None:
        if self.feats is None:
            self.dim = dim
            self.feats = np.zeros((self.count.shape[0], self.capacity, dim), dtype=np.float32)
        elif dim != self.dim:
            raise ValueError(f"embedding size changed from {self.dim} to {dim}")

    def add_tracks(self, features: np.ndarray) -> None:
        """Append tracks, each with its first feature."""
        self._ensure(features.shape[1])
        assert self.feats is not None
        k = features.shape[0]
        new = np.repeat(features[:, None, :], self.capacity, axis=1)
        self.feats = np.concatenate([self.feats, new])
        self.count = np.concatenate([self.count, np.ones(k, dtype=np.int64)])

    def append(self, rows: np.ndarray, features: np.ndarray) -> None:
        """Add one feature to each of ``rows`` (distinct), dropping the oldest beyond the budget."""
        if rows.size == 0:
            return
        self._ensure(features.shape[1])
        assert self.feats is not None
        if self.budget is None and int(self.count[rows].max()) >= self.capacity:
            grow = np.repeat(self.feats[:, :1, :], self.capacity, axis=1)  # unbounded: never wraps
            self.feats = np.concatenate([self.feats, grow], axis=1)
            self.capacity *= 2
        self.feats[rows, self.count[rows] % self.capacity] = features
        self.count[rows] += 1

    def keep(self, rows: np.ndarray) -> None:
        if self.feats is not None:
            self.feats = self.feats[rows]
        self.count = self.count[rows]

    def distance(self, rows: np.ndarray, features: np.ndarray) -> np.ndarray:
        """``(len(rows), M)``: smallest cosine distance of each feature to each track's samples."""
        assert self.feats is not None
        n, cap, dim = self.feats.shape
        if rows.size * 2 < n:  # few tracks asked: gather them first
            feats = self.feats[rows].reshape(-1, dim)
            sims = (feats @ features.T).reshape(rows.size, cap, -1).max(axis=1)
        else:
            sims = (self.feats.reshape(-1, dim) @ features.T).reshape(n, cap, -1).max(axis=1)[rows]
        return (1.0 - sims).astype(np.float64)


def _normalize(features: np.ndarray) -> np.ndarray:
    features = np.asarray(features, dtype=np.float32)
    return features / np.linalg.norm(features, axis=1, keepdims=True)


def _app_order(tlwh: np.ndarray, scores: np.ndarray, max_overlap: float) -> np.ndarray:
    """``deep_sort/preprocessing.non_max_suppression``: kept indices, best score first.

    Overlap is the intersection over the *other* box's area, with pixel-inclusive sizes; at
    ``max_overlap >= 1`` nothing is suppressed and only the order changes.
    """
    idxs = np.argsort(scores.astype(np.float64))
    if max_overlap >= 1.0 or idxs.size < 2:
        return idxs[::-1]
    x1, y1 = tlwh[:, 0], tlwh[:, 1]
    x2, y2 = tlwh[:, 2] + x1, tlwh[:, 3] + y1
    area = (x2 - x1 + 1) * (y2 - y1 + 1)
    pick = []
    while idxs.size:
        last = idxs.size - 1
        i = idxs[last]
        pick.append(i)
        rest = idxs[:last]
        w = np.maximum(0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + 1)
        h = np.maximum(0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + 1)
        overlap = (w * h) / area[rest]
        idxs = np.delete(idxs, np.concatenate(([last], np.flatnonzero(overlap > max_overlap))))
    return np.asarray(pick, dtype=np.intp)


def _iou_tlwh(bbox: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """``(R, M)`` IoU of track boxes and candidate boxes, both top-left + size (deep_sort ``iou``)."""
    tl = np.maximum(bbox[:, None, :2], candidates[None, :, :2])
    br = np.minimum(bbox[:, None, :2] + bbox[:, None, 2:], candidates[None, :, :2] + candidates[None, :, 2:])
    wh = np.maximum(0.0, br - tl)
    inter = wh[..., 0] * wh[..., 1]
    area_b = bbox[:, 2] * bbox[:, 3]
    area_c = candidates[:, 2] * candidates[:, 3]
    with np.errstate(divide="ignore", invalid="ignore"):
        return inter / (area_b[:, None] + area_c[None, :] - inter)


def _min_cost_matching(
    cost: np.ndarray, max_distance: float, track_indices: list[int], detection_indices: list[int]
) -> tuple[list[tuple[int, int]], list[int], list[int]]:
    """``linear_assignment.min_cost_matching`` on a precomputed ``(len(tracks), len(dets))`` cost matrix."""
    cost = cost.copy()
    cost[~(cost <= max_distance)] = max_distance + 1e-5  # NaN (degenerate boxes) is treated as too far
    rows, cols = hungarian(cost)
    assigned_cols = np.zeros(len(detection_indices), dtype=bool)
    assigned_cols[cols] = True
    assigned_rows = np.zeros(len(track_indices), dtype=bool)
    assigned_rows[rows] = True
    unmatched_detections = [d for c, d in enumerate(detection_indices) if not assigned_cols[c]]
    unmatched_tracks = [t for r, t in enumerate(track_indices) if not assigned_rows[r]]
    matches = []
    for row, col in zip(rows.tolist(), cols.tolist()):
        if cost[row, col] > max_distance:
            unmatched_tracks.append(track_indices[row])
            unmatched_detections.append(detection_indices[col])
        else:
            matches.append((track_indices[row], detection_indices[col]))
    return matches, unmatched_tracks, unmatched_detections


class DeepSortTracker:
    """nwojke/deep_sort on :class:`~trtapps.Detections`; one instance per source.

    Args:
        options: the tracker's options.
        embedder: computes appearance features for detections that carry none (see :mod:`.reid`).
    """

    def __init__(self, options: DeepSortOptions | None = None, embedder: ReidEmbedder | None = None,
                 release: Callable[[], None] | None = None) -> None:
        self.options = options or DeepSortOptions()
        self.embedder = embedder
        self._release = release  # how close() lets the embedder go (the factory's; an embedder passed in stays)
        self.kf = XyahKalman()
        self._next_id = 1
        self.mean = np.zeros((0, 8))
        self.cov = np.zeros((0, 8, 8))
        self.ids = np.zeros(0, dtype=np.int64)
        self.state = np.zeros(0, dtype=np.int8)
        self.hits = np.zeros(0, dtype=np.int64)
        self.age = np.zeros(0, dtype=np.int64)
        self.time_since_update = np.zeros(0, dtype=np.int64)
        self.scores = np.zeros(0, dtype=np.float32)
        self.class_ids = np.zeros(0, dtype=np.int32)
        self.gallery = _Gallery(self.options.nn_budget)

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    def close(self) -> None:
        """The run is over: give up the ReID model the factory loaded (its last user closes it)."""
        release, self._release = self._release, None
        if release is not None:
            release()

    def _keep(self, rows: np.ndarray) -> None:
        self.mean, self.cov, self.ids = self.mean[rows], self.cov[rows], self.ids[rows]
        self.state, self.hits, self.age = self.state[rows], self.hits[rows], self.age[rows]
        self.time_since_update = self.time_since_update[rows]
        self.scores, self.class_ids = self.scores[rows], self.class_ids[rows]
        self.gallery.keep(rows)

    def _features(self, detections: Detections, sel: np.ndarray, frame: Frame | None) -> np.ndarray:
        if detections.embeddings is not None:
            return _normalize(detections.embeddings[sel])
        if self.embedder is None:
            raise ConfigError(
                "tracker deepsort: the detections carry no embeddings and no ReID model is set; "
                "set tracker.reid_model (e.g. osnet_x0_25_msmt17.onnx) or add a ReID stage"
            )
        if frame is None:
            raise ValueError("deepsort needs the frame to compute ReID features")
        return _normalize(self.embedder(frame.image, detections.boxes[sel], pixel_format=frame.pixel_format))

    def update(self, detections: Detections, frame: Frame | None = None) -> Detections:
        """Track one frame; returns the confirmed tracks seen in this or the previous frame."""
        opts = self.options
        if detections.on_device:
            detections = detections.to_host()

        # -- deep_sort_app's detection filtering and ordering -------------------------------------------------
        tlwh = xyxy_to_tlwh(np.asarray(detections.boxes, dtype=np.float64))
        keep = (tlwh[:, 3] >= opts.min_detection_height) & (detections.scores >= np.float32(opts.min_confidence))
        sel = np.flatnonzero(keep)
        sel = sel[_app_order(tlwh[sel], detections.scores[sel], opts.nms_max_overlap)]
        tlwh = tlwh[sel]
        det_scores = detections.scores[sel]
        det_classes = detections.class_ids[sel]
        if sel.size:
            features = self._features(detections, sel, frame)
        else:
            features = np.zeros((0, max(self.gallery.dim, 1)), dtype=np.float32)
        xyah = tlwh_to_xyah(tlwh)

        # -- predict every track ------------------------------------------------------------------------------
        if len(self):
            self.mean, self.cov = self.kf.predict(self.mean, self.cov)
            self.age += 1
            self.time_since_update += 1

        # -- match ----------------------------------------------------------------------------------------
        matches, unmatched_tracks, unmatched_detections = self._match(tlwh, xyah, features)

        # -- update -------------------------------------------------------------------------------------------
        if matches:
            m = np.asarray(matches, dtype=np.intp)
            rows, cols = m[:, 0], m[:, 1]
            self.mean[rows], self.cov[rows] = self.kf.update(self.mean[rows], self.cov[rows], xyah[cols])
            self.gallery.append(rows, features[cols])
            self.hits[rows] += 1
            self.time_since_update[rows] = 0
            self.scores[rows] = det_scores[cols]
            self.class_ids[rows] = det_classes[cols]
            promote = rows[(self.state[rows] == TENTATIVE) & (self.hits[rows] >= opts.n_init)]
            self.state[promote] = CONFIRMED
        if unmatched_tracks:
            u = np.asarray(unmatched_tracks, dtype=np.intp)
            missed = (self.state[u] == TENTATIVE) | (self.time_since_update[u] > opts.max_age)
            self.state[u[missed]] = DELETED
        if unmatched_detections:
            new = np.asarray(unmatched_detections, dtype=np.intp)
            k = new.size
            mean, cov = self.kf.initiate(xyah[new])
            self.mean = np.concatenate([self.mean, mean])
            self.cov = np.concatenate([self.cov, cov])
            self.ids = np.concatenate([self.ids, np.arange(self._next_id, self._next_id + k, dtype=np.int64)])
            self._next_id += k
            self.state = np.concatenate([self.state, np.full(k, TENTATIVE, dtype=np.int8)])
            self.hits = np.concatenate([self.hits, np.ones(k, dtype=np.int64)])
            self.age = np.concatenate([self.age, np.ones(k, dtype=np.int64)])
            self.time_since_update = np.concatenate([self.time_since_update, np.zeros(k, dtype=np.int64)])
            self.scores = np.concatenate([self.scores, det_scores[new]])
            self.class_ids = np.concatenate([self.class_ids, det_classes[new]])
            self.gallery.add_tracks(features[new])
        alive = self.state != DELETED
        if not alive.all():
            self._keep(np.flatnonzero(alive))

        out = np.flatnonzero((self.state == CONFIRMED) & (self.time_since_update <= 1))
        t = tlwh_to_xyxy(xyah_to_tlwh(self.mean[out]))
        return Detections(boxes=t, scores=self.scores[out], class_ids=self.class_ids[out], track_ids=self.ids[out])

    def _match(
        self, tlwh: np.ndarray, xyah: np.ndarray, features: np.ndarray
    ) -> tuple[list[tuple[int, int]], list[int], list[int]]:
        """``Tracker._match``: matching cascade on appearance, then IoU; indices into tracks / detections."""
        opts = self.options
        n_det = tlwh.shape[0]
        confirmed = np.flatnonzero(self.state == CONFIRMED)
        unconfirmed = np.flatnonzero(self.state != CONFIRMED).tolist()
        confirmed_list = confirmed.tolist()
        matches_a: list[tuple[int, int]] = []
        unmatched_detections = list(range(n_det))

        if confirmed.size and n_det:
            # the cost of every confirmed track against every detection, computed once; levels slice it
            cost = self.gallery.distance(confirmed, features)
            gate = self.kf.gating_distance(
                self.mean[confirmed], self.cov[confirmed], xyah, only_position=opts.gating_only_position
            )
            threshold = CHI2INV95[2 if opts.gating_only_position else 4]
            cost[gate > threshold] = INFTY_COST
            row_of = {t: r for r, t in enumerate(confirmed_list)}
            tsu = self.time_since_update
            for level in sorted(set(tsu[confirmed].tolist())):
                if not unmatched_detections:
                    break
                if level < 1 or level > opts.max_age:  # the reference's levels are 1 … max_age
                    continue
                tracks_l = [k for k in confirmed_list if tsu[k] == level]
                sub = cost[np.ix_([row_of[k] for k in tracks_l], unmatched_detections)]
                matches_l, _, unmatched_detections = _min_cost_matching(
                    sub, opts.max_cosine_distance, tracks_l, unmatched_detections
                )
                matches_a += matches_l
        unmatched_tracks_a = list(set(confirmed_list) - {k for k, _ in matches_a})

        # IoU matching: unconfirmed tracks and confirmed tracks missed only in this frame
        tsu = self.time_since_update
        candidates = unconfirmed + [k for k in unmatched_tracks_a if tsu[k] == 1]
        unmatched_tracks_a = [k for k in unmatched_tracks_a if tsu[k] != 1]
        if candidates and unmatched_detections:
            cand = np.asarray(candidates, dtype=np.intp)
            det_idx = np.asarray(unmatched_detections, dtype=np.intp)
            iou_cost = 1.0 - _iou_tlwh(xyah_to_tlwh(self.mean[cand]), tlwh[det_idx])
            iou_cost[tsu[cand] > 1] = INFTY_COST
            matches_b, unmatched_tracks_b, unmatched_detections = _min_cost_matching(
                iou_cost, opts.max_iou_distance, candidates, unmatched_detections
            )
        else:
            matches_b, unmatched_tracks_b = [], candidates
        unmatched_tracks = list(set(unmatched_tracks_a + unmatched_tracks_b))
        return matches_a + matches_b, unmatched_tracks, unmatched_detections


#: the ReID models loaded by :func:`build_deepsort` in one pipeline, by (path, batch, backend), with their users
_EMBEDDERS: StashKey[dict[tuple[str, int, str], _SharedEmbedder]] = StashKey("trtapps_plugins.deepsort.embedders")


class _SharedEmbedder:
    """One ReID model serving the trackers of every source of a pipeline (they run on one thread, in turn)."""

    def __init__(self, embedder: ReidEmbedder) -> None:
        self.embedder = embedder
        self.users = 0

    def take(self, forget: Callable[[], None]) -> Callable[[], None]:
        """One more user; returns its release, which closes the model when the last user is done."""
        self.users += 1

        def release() -> None:
            self.users -= 1
            if self.users == 0:
                forget()
                self.embedder.close()

        return release


def build_deepsort(options: DeepSortOptions, context: Any) -> DeepSortTracker:
    """The ``deepsort`` factory: a tracker, with a ReID embedder when ``reid_model`` is set.

    The ReID model runs on ``reid_backend``, by default the backend the pipeline resolved for its detector
    (``context.backend``): on the GPU data path the crops are then cut from the frame already on the device.
    The pipeline builds a tracker per source; they share one loaded model, closed with the last of them.
    """
    if not options.reid_model:
        return DeepSortTracker(options)
    from trtapps.zoo import resolve_model
    from trtapps_plugins.trackers.reid import ReidEmbedder

    base = context.config_dir if context is not None else None
    path = resolve_model(options.reid_model, base)  # a path, or a zoo name such as osnet_x0_25_msmt17
    backend = options.reid_backend or getattr(context, "backend", None) or "onnxruntime"
    stash = getattr(context, "stash", None)
    loaded = stash.get(_EMBEDDERS, {}) if stash is not None else {}
    if stash is not None:
        stash[_EMBEDDERS] = loaded
    key = (str(path), options.reid_batch_size, str(backend))
    shared = loaded.get(key)
    if shared is None or shared.embedder.closed:  # closed directly by someone: load it again
        embedder = ReidEmbedder.from_path(path, batch_size=options.reid_batch_size, backend=backend, context=context)
        shared = loaded[key] = _SharedEmbedder(embedder)
    release = shared.take(lambda: loaded.pop(key, None))
    return DeepSortTracker(options, embedder=shared.embedder, release=release)
