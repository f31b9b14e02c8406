"""Letterbox resizing and its inverse (NumPy + OpenCV reference).

Two placements, both keeping the aspect ratio and padding with a constant grey:

* **centred** (Ultralytics YOLOv5/v8/11): ``r = min(Hd/H, Wd/W)`` (capped at 1 with ``scaleup=False``),
  resized size ``round(W·r) × round(H·r)`` (Python rounding), the padding split as ``round(d/2 − 0.1)``
  before and ``round(d/2 + 0.1)`` after, so an odd pixel goes right/bottom. ``cv2.resize``
  (``INTER_LINEAR``) runs only when the size changes. The inverse is Ultralytics' ``scale_boxes``: it uses
  the **exact** gain ``r`` and re-derives the padding as ``round((Wd − W·r)/2 − 0.1)``, which can differ by
  one pixel from the forward padding; both are kept so results match Ultralytics bit for bit.
* **top-left** (YOLOX): resized size ``int(W·r) × int(H·r)`` (truncation), pasted at the top-left
  corner of the canvas; the inverse is just ``x / r``.

The GPU preprocessing kernels are tested against :func:`letterbox`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np

from trtapps.ops.boxes import clip_boxes

#: Ultralytics' and YOLOX's padding grey
PAD_VALUE = 114


@dataclass(frozen=True)
class LetterboxTransform:
    """Where an image went in a letterboxed canvas, and how to map model coordinates back.

    Attributes:
        src_size: ``(H, W)`` of the original image.
        dst_size: ``(Hd, Wd)`` of the canvas (the model input).
        new_size: ``(h, w)`` of the resized image inside the canvas, before padding.
        left: columns of padding left of the resized image (forward placement).
        top: rows of padding above the resized image (forward placement).
        scale: the exact gain ``r``; the inverse divides by it.
        pad_x: the horizontal offset the inverse subtracts (``scale_boxes``' ``pad_x``).
        pad_y: the vertical offset the inverse subtracts.
        centered: ``True`` for the Ultralytics placement, ``False`` for top-left (YOLOX).
    """

    src_size: tuple[int, int]
    dst_size: tuple[int, int]
    new_size: tuple[int, int]
    left: int
    top: int
    scale: float
    pad_x: float
    pad_y: float
    centered: bool = True

    @property
    def resized(self) -> bool:
        """True when the image is resized (``cv2.resize`` runs), False when it is only padded."""
        return self.new_size != self.src_size

    @staticmethod
    def compute(
        src_size: tuple[int, int],
        dst_size: tuple[int, int],
        *,
        centered: bool = True,
        scaleup: bool = True,
    ) -> LetterboxTransform:
        """The transform that :func:`letterbox` applies, from the sizes alone (no pixels touched).

        Args:
            src_size: ``(H, W)`` of the original image, both ≥ 1.
            dst_size: ``(Hd, Wd)`` of the canvas, both ≥ 1.
            centered: Ultralytics' centred placement, or YOLOX's top-left one.
            scaleup: allow enlarging small images (``False`` caps the gain at 1, Ultralytics' val mode).
        """
        # pure in its arguments and frozen: a stream's frames all share one instance (a pipeline computes one per
        # frame, thousands per second)
        return _compute(int(src_size[0]), int(src_size[1]), int(dst_size[0]), int(dst_size[1]), bool(centered),
                        bool(scaleup))


@functools.lru_cache(maxsize=1024)
def _compute(h: int, w: int, hd: int, wd: int, centered: bool, scaleup: bool) -> LetterboxTransform:
    """:meth:`LetterboxTransform.compute` on plain ints (cached)."""
    if min(h, w, hd, wd) < 1:
        raise ValueError(f"letterbox sizes must be positive, got source {(h, w)} and canvas {(hd, wd)}")
    r = min(hd / h, wd / w)
    if not scaleup:
        r = min(r, 1.0)
    # max(1, …) only matters for degenerate strips (say 1×5000) that would otherwise vanish
    if centered:
        new_w, new_h = max(1, round(w * r)), max(1, round(h * r))
        dw, dh = (wd - new_w) / 2, (hd - new_h) / 2
        left, top = round(dw - 0.1), round(dh - 0.1)
        pad_x = float(round((wd - w * r) / 2 - 0.1))
        pad_y = float(round((hd - h * r) / 2 - 0.1))
    else:
        new_w, new_h = max(1, int(w * r)), max(1, int(h * r))
        left = top = 0
        pad_x = pad_y = 0.0
    return LetterboxTransform(
        src_size=(h, w),
        dst_size=(hd, wd),
        new_size=(new_h, new_w),
        left=int(left),
        top=int(top),
        scale=float(r),
        pad_x=pad_x,
        pad_y=pad_y,
        centered=centered,
    )


def letterbox(
    image: np.ndarray,
    size: tuple[int, int],
    *,
    centered: bool = True,
    pad_value: int = PAD_VALUE,
    scaleup: bool = True,
) -> tuple[np.ndarray, LetterboxTransform]:
    """Resize *image* into a ``size`` canvas keeping its aspect ratio, padding the rest.

    Args:
        image: ``(H, W, C)`` uint8 (any channel order; it is not changed).
        size: ``(Hd, Wd)`` of the canvas.
        centered: ``True``: Ultralytics' centred placement (``round`` sizes, padding split in two);
            ``False``: YOLOX's top-left placement (``int`` sizes).
        pad_value: the grey the padding is filled with (114 for Ultralytics and YOLOX).
        scaleup: allow enlarging small images.

    Returns:
        ``(canvas, transform)``: the ``(Hd, Wd, C)`` image, same dtype as *image*, and the transform to map
        model coordinates back with :func:`scale_boxes` / :func:`scale_points`.
    """
    if image.ndim != 3:
        raise ValueError(f"letterbox expects an (H, W, C) image, got shape {image.shape}")
    t = LetterboxTransform.compute(image.shape[:2], size, centered=centered, scaleup=scaleup)
    new_h, new_w = t.new_size
    if t.resized:  # YOLOX resizes unconditionally, but a same-size cv2.resize is an exact copy
        resized = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
        if resized.ndim == 2:  # cv2 drops a single channel
            resized = resized[..., None]
    else:
        resized = image
    hd, wd = t.dst_size
    canvas = np.full((hd, wd, image.shape[2]), pad_value, dtype=image.dtype)
    canvas[t.top : t.top + new_h, t.left : t.left + new_w] = resized
    return canvas, t


def scale_boxes(boxes: np.ndarray, transform: LetterboxTransform, *, clip: bool = True) -> np.ndarray:
    """Map xyxy boxes from canvas (model input) pixels back to original image pixels.

    ``x = (x' − pad_x) / scale``, ``y = (y' − pad_y) / scale``, then (``clip=True``) clipped to
    ``[0, W] × [0, H]``, as Ultralytics' ``scale_boxes`` does.

    Args:
        boxes: ``(..., 4)`` float ``[x1, y1, x2, y2]`` in canvas pixels.
        transform: the transform :func:`letterbox` returned for this image.
        clip: clip to the original image.

    Returns:
        A new float array of the same shape (float32 input stays float32).
    """
    boxes = np.asarray(boxes)
    dtype = boxes.dtype if np.issubdtype(boxes.dtype, np.floating) else np.float32
    out = np.array(boxes, dtype=dtype, copy=True)
    out[..., 0::2] -= transform.pad_x
    out[..., 1::2] -= transform.pad_y
    out[..., :4] /= transform.scale
    if clip:
        clip_boxes(out, transform.src_size[1], transform.src_size[0])
    return out


def scale_points(points: np.ndarray, transform: LetterboxTransform, *, clip: bool = True) -> np.ndarray:
    """Map ``(..., 2)`` ``(x, y)`` keypoints from canvas pixels back to original pixels (like boxes).

    Returns:
        A new float array of the same shape, clipped to ``[0, W] × [0, H]`` when ``clip`` is set.
    """
    points = np.asarray(points)
    dtype = points.dtype if np.issubdtype(points.dtype, np.floating) else np.float32
    out = np.array(points, dtype=dtype, copy=True)
    out[..., 0] -= transform.pad_x
    out[..., 1] -= transform.pad_y
    out /= transform.scale
    if clip:
        np.clip(out[..., 0], 0, transform.src_size[1], out=out[..., 0])
        np.clip(out[..., 1], 0, transform.src_size[0], out=out[..., 1])
    return out
