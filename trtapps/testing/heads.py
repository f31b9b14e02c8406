"""Synthetic detection-head outputs with realistic score statistics, for the decode/NMS tests and benchmarks.

Deterministic for a seed. The YOLOv8 head has background class probabilities ``sigmoid(N(−9, 1.5))`` (almost
nothing above a threshold) and, per image, clusters of 25 anchors with overlapping boxes and confident scores
around one object each, as a real detector gives; the row layouts are derived from it. The RetinaFace heads
have about 40 confident priors per image.
"""

from __future__ import annotations

import numpy as np

from trtapps.ops.decode import retinaface_priors

__all__ = ["synthetic_faces", "synthetic_rows", "synthetic_v8"]


def synthetic_v8(
    batch: int,
    classes: int = 80,
    anchors: int = 8400,
    objects: int = 12,
    seed: int = 0,
    *,
    second_labels: bool = True,
    ties: bool = True,
) -> np.ndarray:
    """A ``(B, 4 + C, N)`` float32 YOLOv8 head (boxes ``cx, cy, w, h`` in 640-pixel input space): low background
    probabilities, and *objects* clusters of overlapping confident boxes per image.

    Args:
        second_labels: 5 anchors of each cluster also score 0.3–0.6 on the next class (``multi_label``
            candidates).
        ties: 6 anchors of each image score exactly 0.75 on class 3 (exact score ties for the sort).
    """
    rng = np.random.default_rng(seed)
    pred = np.empty((batch, 4 + classes, anchors), np.float32)
    pred[:, 0:2] = rng.uniform(0, 640, (batch, 2, anchors))
    pred[:, 2:4] = rng.uniform(4, 200, (batch, 2, anchors))
    pred[:, 4:] = 1 / (1 + np.exp(-rng.normal(-9, 1.5, (batch, classes, anchors))))
    for b in range(batch):
        for _ in range(objects):
            members = rng.choice(anchors, 25, replace=False)
            c = rng.integers(classes)
            centre, size = rng.uniform(50, 590, 2), rng.uniform(20, 300, 2)
            pred[b, 0:2, members] = (centre + rng.normal(0, 6, (25, 2))).astype(np.float32)
            pred[b, 2:4, members] = (size * rng.uniform(0.8, 1.2, (25, 2))).astype(np.float32)
            pred[b, 4 + c, members] = rng.uniform(0.2, 0.95, 25)
            if second_labels:
                pred[b, 4 + (c + 1) % classes, members[:5]] = rng.uniform(0.3, 0.6, 5)
        if ties:
            pred[b, 4 + 3, rng.choice(anchors, 6, replace=False)] = np.float32(0.75)
    return pred


def synthetic_rows(
    batch: int, classes: int = 80, anchors: int = 3549, seed: int = 0, raw: bool = False
) -> np.ndarray:
    """A ``(B, N, 5 + C)`` float32 head from :func:`synthetic_v8`: YOLOv5 pixels, or (*raw*) raw YOLOX offsets and
    log sizes; objectness ``min(1.05 · best class probability, 1)``."""
    v8 = synthetic_v8(batch, classes, anchors, seed=seed)
    rows = np.empty((batch, anchors, 5 + classes), np.float32)
    rows[..., :4] = v8[:, :4].transpose(0, 2, 1)
    if raw:
        rng = np.random.default_rng(seed + 1)
        rows[..., :2] = rng.uniform(-0.5, 1.5, (batch, anchors, 2))
        rows[..., 2:4] = rng.normal(0.5, 1.0, (batch, anchors, 2))
    rows[..., 4] = np.minimum(v8[:, 4:].max(axis=1) * np.float32(1.05), np.float32(1.0))
    rows[..., 5:] = v8[:, 4:].transpose(0, 2, 1)
    return rows


def synthetic_faces(
    batch: int, size: tuple[int, int], seed: int, *, same_faces: bool = False
) -> tuple[np.ndarray, ...]:
    """RetinaFace heads for an ``(H, W)`` input: ``loc (B, N, 4), conf (B, N, 2)`` softmaxed, ``landmarks
    (B, N, 10)`` and the conf logits, float32, with 40 confident priors per image.

    Args:
        same_faces: the same 40 priors are confident in every image (one draw for the batch) rather than 40
            drawn per image.
    """
    rng = np.random.default_rng(seed)
    n = retinaface_priors(size).shape[0]
    loc = rng.normal(0, 1, (batch, n, 4)).astype(np.float32)
    logits = rng.normal(0, 1, (batch, n, 2)).astype(np.float32)
    logits[..., 1] -= 6
    if same_faces:
        logits[:, rng.choice(n, 40, replace=False), 1] += 12
    else:
        for b in range(batch):
            logits[b, rng.choice(n, 40, replace=False), 1] += 12
    conf = (np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)).astype(np.float32)
    landmarks = rng.normal(0, 1, (batch, n, 10)).astype(np.float32)
    return loc, conf, landmarks, logits
