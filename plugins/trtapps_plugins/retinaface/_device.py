"""The GPU data path of app ``retinaface``: the pieces :meth:`RetinaFaceApp.preprocess_device` and
:meth:`RetinaFaceApp.decode_device_async` are made of.

The device path gives the CPU path's faces with the CuPy kernels of :mod:`trtapps.ops.cuda`:

* **preprocessing** — one :func:`~trtapps.ops.cuda.preprocess.preprocess_batch` launch: BGR minus the mean,
  no resize at native size (the ROI is the whole input), a top-left aspect-preserving resize into a fixed input
  (:meth:`CanvasTransform.fit`, the kernel's ROI), padding = the mean, i.e. exactly 0 after the subtraction.
  Bit-identical to the CPU tensor in float32.
* **decode** — :func:`~trtapps.ops.cuda.decode.decode_retinaface` with the app's priors (uploaded once per input
  size) maps boxes and landmarks back to the frame in the kernel (the CPU path also runs NMS in frame pixels).
  Its buffer holds one candidate per prior, so none is ever lost. ``conf_activation: auto`` is decided per
  batch exactly as on the CPU (every ``conf`` row in [0, 1] and summing to 1 within 1e-3 → probabilities),
  from three numbers reduced on the device: the one extra (12-byte) device→host copy of this path.
* **top_k** — the kernels have no top-k; the best ``top_k`` candidates are gathered on the device before NMS
  (:func:`top_candidates`, the CPU path's ``argsort(-score, stable)[:top_k]``: score descending, then prior
  index) whenever more than ``top_k`` candidates can exist.
* **NMS** — :func:`~trtapps.ops.cuda.nms.nms_batched` with ``+1`` pixel areas, ``max_det``, then one
  :func:`~trtapps.ops.cuda.nms.download_compact` per batch.

NMS takes at most :data:`~trtapps.ops.cuda.nms.MAX_CAPACITY` candidates per image (a ``top_k`` above it is
capped, with a warning when an image has more candidates than that); its memory is ``capacity² / 8`` bytes per
image (3 MB at the default ``top_k`` 5000).

CuPy is imported inside the functions that need it; the pure helpers take NumPy too (``xp``), which is how the
unit tests check them without a GPU.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from trtapps.ops.cuda.candidates import CandidatePlan, plan_candidates
from trtapps.ops.cuda.candidates import top_candidates as _top_candidates

#: face record columns of the decode kernel (:mod:`trtapps.ops.decode`)
SCORE_COL, ANCHOR_COL = 4, 15
#: ``conf_activation: auto``: a row sums to 1 within this for probabilities (:func:`face_scores`)
SUM_TOLERANCE = 1e-3


def face_plan(num_priors: int, top_k: int, nms_max: int) -> CandidatePlan:
    """Buffer sizes: the decode holds a candidate per prior, NMS the best ``top_k`` (at most *nms_max*); the
    plan's ``limit`` is ``top_k``."""
    return plan_candidates(num_priors, top_k, nms_max)


def canvas_params(metas: Sequence[Any]) -> np.ndarray | None:
    """``(B, 6)`` float32 mapping parameters of :class:`CanvasTransform` metas (``x / float32(scale_x)``, as
    :meth:`CanvasTransform.points_to_source`), or ``None`` when every frame is fed at its own size."""
    if all(m.is_identity for m in metas):
        return None
    rows = [
        (np.float32(m.scale_x), np.float32(m.scale_y), 0.0, 0.0, m.src_size[1], m.src_size[0]) for m in metas
    ]
    return np.asarray(rows, dtype=np.float32).reshape(len(metas), 6)


def probability_stats(xp: Any, conf: Any) -> Any:
    """``(3,)`` float64: min, max and the largest ``|row sum − 1|`` of a ``(B, N, 2)`` conf head, in float32
    like :func:`~trtapps_plugins.retinaface.face_scores` (one small array: one copy to read it)."""
    c = conf.astype(xp.float32)
    if c.size == 0:
        return xp.zeros((3,), dtype=xp.float64)
    deviation = xp.abs(c.sum(axis=-1) - xp.float32(1.0)).max()
    return xp.stack([c.min(), c.max(), deviation]).astype(xp.float64)


def are_probabilities(stats: Any, size: int) -> bool:
    """``conf_activation: auto``'s rule on :func:`probability_stats` (host values)."""
    if size == 0:
        return True
    low, high, deviation = (float(v) for v in stats)
    return low >= 0.0 and high <= 1.0 and deviation <= SUM_TOLERANCE


# -- candidate buffers (NumPy or CuPy) ------------------------------------------------------------------------------
def top_candidates(xp: Any, records: Any, counts: Any, k: int) -> Any:
    """The best *k* face candidates of each image, best first: ``(B, k, 16)`` float32 (C-contiguous); rows past
    ``min(count, k)`` are filler that NMS does not read (given the original *counts*). Ordered by score
    descending, then prior index (:func:`trtapps.ops.cuda.candidates.top_candidates` without a class column)."""
    return _top_candidates(xp, records, counts, k, class_col=None, anchor_col=ANCHOR_COL)
