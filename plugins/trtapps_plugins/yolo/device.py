"""The GPU data path of app ``yolo``: the pieces :meth:`YoloApp.preprocess_device` and
:meth:`YoloApp.decode_device_async` are made of.

The device path gives the CPU path's detections (:meth:`YoloApp.preprocess` → runner → :meth:`YoloApp.decode`)
with the CuPy kernels of :mod:`trtapps.ops.cuda`:

* **preprocessing** — one :func:`~trtapps.ops.cuda.preprocess.preprocess_batch` launch per batch, with the
  letterbox of :meth:`LetterboxTransform.compute` and the settings of :func:`normalisation` (bit-identical to
  the CPU tensor in float32; float16 inputs get the same rounding of the same float32). Legacy YOLOX
  (``yolox_legacy``: RGB, /255, ImageNet mean/std) adds one elementwise pass that repeats the CPU path's NumPy
  arithmetic exactly (float64 ``- mean`` and ``/ std`` on the float32 values, each rounded back to float32).
* **candidates** — the variant's decode kernel stores every candidate (score ``> conf_threshold``, best class or
  ``multi_label``) in a buffer sized for all that can exist (:func:`candidate_plan`), so nothing is lost.
  ``classes`` is applied on the device before NMS (:func:`mask_classes`: a left-out candidate's score becomes
  −1, so it sorts after every kept one and can suppress none — exact for class-aware *and* agnostic NMS, and for
  ``max_det``, which a filter after NMS would not be). When more candidates can exist than ``max_candidates``,
  the best ``max_candidates`` are gathered first (:func:`top_candidates`, the CPU path's
  ``argsort(-score, stable)[:max_candidates]``: score descending, then anchor, then class).
* **NMS** — :func:`~trtapps.ops.cuda.nms.nms_batched` (class-aware unless ``agnostic_nms``) in letterbox
  pixels, then the letterbox inverse (``params_from_letterbox``) and ``clip_boxes`` — the CPU path's
  ``scale_boxes`` — and one :func:`~trtapps.ops.cuda.nms.download_compact` for the whole batch.

Limits (both far above what real images produce; an image over them is reported once with a warning):
the decode stores at most :data:`MAX_DECODE_CAPACITY` candidates per image and NMS takes at most
:data:`~trtapps.ops.cuda.nms.MAX_CAPACITY` (Ultralytics' own cap, ``max_nms``, is 30000 — the default of
``max_candidates``, which both paths apply). NMS memory grows with the square of its capacity
(``capacity² / 8`` bytes per image: 9 MB for yolov8n's 8400 anchors, 112 MB for 30000 ``multi_label``
candidates); lowering ``max_candidates`` lowers it.

CuPy is imported inside the functions that need it; the pure helpers here also take NumPy (``xp``), which is
how the unit tests check them without a GPU.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from trtapps.ops.cuda.candidates import CandidatePlan, plan_candidates

# the candidate-buffer helpers are the core's (shared with the face apps), named here for this module's users
from trtapps.ops.cuda.candidates import candidate_keys as candidate_keys
from trtapps.ops.cuda.candidates import top_candidates as top_candidates

#: candidates the decode stores per image at most (28 bytes each: 28 MiB per image)
MAX_DECODE_CAPACITY = 1 << 20
#: record columns of the decode kernels (:mod:`trtapps.ops.decode`)
SCORE_COL, CLASS_COL, ANCHOR_COL = 4, 5, 6
#: the score given to candidates of classes left out by ``classes`` (sorted after every real score)
MASKED_SCORE = -1.0


@dataclass(frozen=True)
class Normalisation:
    """How :meth:`YoloApp.preprocess_device` letterboxes and normalises (the CPU path's settings).

    Attributes:
        centered: Ultralytics' centred letterbox (v5/v8) or YOLOX's top-left placement.
        swap_rb: BGR → RGB.
        std: the kernel's divisor: 255 (``/ 255``, one IEEE division like the CPU's ``batch /= 255``) or 1.
        imagenet: legacy YOLOX: ImageNet mean/std after ``/ 255`` (a second pass in float64).
    """

    centered: bool
    swap_rb: bool
    std: float
    imagenet: bool


def normalisation(variant: str, yolox_legacy: bool) -> Normalisation:
    """The preprocessing settings of a variant: v5/v8 centred, RGB, /255; YOLOX top-left, raw BGR 0-255; legacy
    YOLOX top-left, RGB, /255, ImageNet mean/std."""
    yolox = variant == "yolox"
    legacy = yolox and yolox_legacy
    rgb_unit = not yolox or legacy
    return Normalisation(centered=not yolox, swap_rb=rgb_unit, std=255.0 if rgb_unit else 1.0, imagenet=legacy)


def candidate_plan(
    anchors: int, num_classes: int, *, multi_label: bool, max_candidates: int, nms_max: int
) -> CandidatePlan:
    """Buffer sizes: the decode holds every candidate that can exist (``anchors``, or ``anchors × classes`` with
    ``multi_label``), NMS the best ``max_candidates`` of them (at most *nms_max*, the NMS kernel's limit)."""
    possible = max(1, int(anchors) * (int(num_classes) if multi_label else 1))
    return plan_candidates(min(possible, MAX_DECODE_CAPACITY), max_candidates, nms_max)


def device_decode_problem(layout: str, shape: Sequence[int], max_anchors: int, max_classes: int) -> str | None:
    """Why the decode kernels cannot take this head (then :meth:`YoloApp.decode_device_async` decodes on the host), or
    ``None``.

    Args:
        layout: ``"v8"``, ``"v5"`` or ``"yolox_raw"``.
        shape: the head output's shape, ``(B, 4 + C, N)`` for v8, else ``(B, N, 5 + C)``.
        max_anchors: the kernels' anchor limit (anchors must be below it).
        max_classes: the kernels' class limit.
    """
    if len(shape) != 3:
        return f"the head output has shape {tuple(shape)}, not rank 3"
    if layout == "v8":
        anchors, classes = int(shape[2]), int(shape[1]) - 4
    else:
        anchors, classes = int(shape[1]), int(shape[2]) - 5
    if classes > max_classes:
        return f"{classes} classes exceed the {max_classes} the GPU decode supports"
    if anchors >= max_anchors:
        return f"{anchors} anchors exceed the {max_anchors - 1} the GPU decode supports"
    return None


# -- candidate buffers (NumPy or CuPy) ------------------------------------------------------------------------------
def mask_classes(xp: Any, records: Any, allowed: Any) -> None:
    """Give the candidates of classes not in *allowed* the score :data:`MASKED_SCORE`, in place.

    They then sort after every real candidate (scores are ``> conf_threshold >= 0``): they cannot suppress a
    kept candidate, and they are dropped from the downloaded result. The rows past each image's count are
    touched too, which is harmless (they are never read).

    Args:
        xp: ``numpy`` or ``cupy``.
        records: ``(B, capacity, 7)`` float32 candidate records.
        allowed: ``(K,)`` float32 class ids to keep (same module as *records*).
    """
    keep = xp.isin(records[..., CLASS_COL], allowed)
    records[..., SCORE_COL] = xp.where(keep, records[..., SCORE_COL], xp.float32(MASKED_SCORE))


def imagenet_normalise(
    src: Any, out: Any, mean: np.ndarray | Sequence[float], std: np.ndarray | Sequence[float], stream: Any
) -> None:
    """``out = float32(float32(src − mean) / std)`` per channel in float64, cast to *out*'s dtype: the CPU path's
    ``batch -= IMAGENET_MEAN; batch /= IMAGENET_STD`` (NumPy in-place ops of a float32 array with float64
    arrays) bit for bit.

    Args:
        src: CuPy ``(B, 3, H, W)`` float32 (RGB / 255).
        out: CuPy ``(B, 3, H, W)`` float32 or float16, C-contiguous.
        mean, std: three float64 values each.
        stream: the stream to run on.
    """
    import cupy

    kernel = _imagenet_kernel()
    plane = int(src.shape[2]) * int(src.shape[3])
    with stream:
        kernel(
            src,
            cupy.asarray(np.asarray(mean, dtype=np.float64)),
            cupy.asarray(np.asarray(std, dtype=np.float64)),
            np.int64(plane),
            out,
        )


_IMAGENET_KERNEL: Any = None


def _imagenet_kernel() -> Any:
    global _IMAGENET_KERNEL
    if _IMAGENET_KERNEL is None:
        import cupy

        _IMAGENET_KERNEL = cupy.ElementwiseKernel(
            "float32 x, raw float64 mean, raw float64 std, int64 plane",
            "Y y",
            """
            const int c = (int)((i / plane) % 3);
            const float t = (float)((double)x - mean[c]);
            y = (Y)(float)((double)t / std[c]);
            """,
            "trtapps_yolo_imagenet_normalise",
        )
    return _IMAGENET_KERNEL
