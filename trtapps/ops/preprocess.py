"""Batch preprocessing reference (NumPy + OpenCV): resize into a region, pad, normalise, HWC → CHW.

This is the host twin of the fused CUDA kernel in :mod:`trtapps.ops.cuda.preprocess`, which must reproduce
:func:`preprocess_reference` exactly (float32: bit for bit; float16: the same rounding of the same float32).

For image ``b`` of a batch:

1. take the source crop ``src_rects[b] = (x, y, w, h)`` (the whole image when ``src_rects`` is ``None``);
2. resize it to the region ``rois[b] = (x0, y0, rw, rh)`` of the ``(H, W)`` output with
   ``cv2.resize(..., INTER_LINEAR)`` (a letterbox: the resized placement; a ReID crop: the whole output);
3. fill the rest of the output with ``pad_value`` (pixel units, per output channel);
4. per output channel ``c`` (BGR → RGB first when ``swap_rb``): ``(v · scale − mean[c]) / std[c]`` in float32
   (three IEEE operations in that order), then cast to ``dtype``; the layout becomes ``(3, H, W)``.

Common settings (each bit-identical to the corresponding CPU app path):

* Ultralytics YOLOv5/v8 (``batch /= 255``): ``swap_rb=True, scale=1, mean=0, std=255, pad_value=114``
  (``v / 255`` is one IEEE division, exactly what ``/= 255`` does; ``scale=1/255`` would differ by an ulp).
* YOLOX ≥ 0.2: ``swap_rb=False, scale=1, mean=0, std=1, pad_value=114`` (top-left ROI).
* RetinaFace (biubug6): ``swap_rb=False, scale=1, mean=(104, 117, 123), std=1`` and ``pad_value=mean``, so the
  padding is exactly 0 after the subtraction.
* ImageNet-normalised RGB (ReID, legacy YOLOX): ``swap_rb=True, scale=1/255, mean=(0.485, 0.456, 0.406),
  std=(0.229, 0.224, 0.225)``.

:func:`resize_linear_u8` is a NumPy emulation of OpenCV's fixed-point bilinear resize for uint8 — the integer
arithmetic the CUDA kernel performs — and equals ``cv2.resize(..., INTER_LINEAR)`` exactly (tested against
OpenCV on random up- and down-scales, identities and exact 2× reductions, where OpenCV switches to its
INTER_AREA fast path, which gives the same values). The details, from OpenCV's ``resize.cpp``:

* ``scale = 1 / (dst / src)`` in double; ``f = (float)((d + 0.5)·scale − 0.5)``, ``s = floor(f)``, ``f −= s``;
* columns: ``s < 0`` → ``s = 0, f = 0``; ``s ≥ src − 1`` → ``s = src − 1, f = 0``; **rows keep** their
  fraction and only the row indices ``s, s + 1`` are clipped to ``[0, src − 1]`` (this changes the rounding on
  the first and last rows of an upscale, so clamping rows like columns does not match OpenCV);
* weights ``rint((1 − f)·2048)`` and ``rint(f·2048)`` (``INTER_RESIZE_COEF_BITS = 11``), computed in float32;
* horizontal pass in int: ``h = p0·a0 + p1·a1``;
* vertical pass for uint8 (OpenCV's ``VResizeLinear<uchar, …>`` specialisation, scalar and SIMD alike):
  ``((b0·(h0 >> 4)) >> 16) + ((b1·(h1 >> 4)) >> 16) + 2) >> 2``. The generic fixed-point cast
  ``(b0·h0 + b1·h1 + (1 << 21)) >> 22`` is *not* what OpenCV does for uint8 and differs on a few pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

if TYPE_CHECKING:
    from trtapps.ops.letterbox import LetterboxTransform

#: OpenCV's fixed-point precision of the interpolation weights (``INTER_RESIZE_COEF_BITS``)
INTER_RESIZE_COEF_BITS = 11
INTER_RESIZE_COEF_SCALE = 1 << INTER_RESIZE_COEF_BITS
#: int64 values per image in the kernel's parameter array (:func:`pack_preprocess_params`)
PARAMS_PER_IMAGE = 12


def resize_scale(src: int, dst: int) -> float:
    """OpenCV's inverse scale ``1 / (dst / src)`` for one axis, computed in double exactly as ``cv::resize``."""
    return 1.0 / (float(dst) / float(src))


def resize_coefficients(src: int, dst: int, *, clamp: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Source indices and fixed-point weights of OpenCV's uint8 bilinear resize along one axis.

    Args:
        src: source length (≥ 1).
        dst: destination length (≥ 1).
        clamp: columns (``True``: out-of-range positions snap to the edge with weight 0) or rows (``False``:
            the fraction is kept, only the indices are clipped).

    Returns:
        ``(i0, i1, w0, w1)``, each ``(dst,)`` int64: ``value = p[i0]·w0 + p[i1]·w1`` (weights out of 2048).
    """
    scale = resize_scale(src, dst)
    d = np.arange(dst, dtype=np.float64)
    f = ((d + 0.5) * scale - 0.5).astype(np.float32)
    s = np.floor(f).astype(np.int64)
    f = (f - s.astype(np.float32)).astype(np.float32)
    if clamp:
        low = s < 0
        f[low], s[low] = 0, 0
        high = s >= src - 1
        f[high], s[high] = 0, src - 1
    w0 = np.rint((np.float32(1) - f) * np.float32(INTER_RESIZE_COEF_SCALE)).astype(np.int64)
    w1 = np.rint(f * np.float32(INTER_RESIZE_COEF_SCALE)).astype(np.int64)
    return np.clip(s, 0, src - 1), np.clip(s + 1, 0, src - 1), w0, w1


def resize_linear_u8(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)`` for uint8, emulated in NumPy integers.

    This is the arithmetic of the CUDA preprocessing kernel (see the module docstring).

    Args:
        image: ``(H, W, C)`` or ``(H, W)`` uint8.
        size: ``(width, height)`` of the result, as for ``cv2.resize``.

    Returns:
        ``(height, width, C)`` (or ``(height, width)``) uint8.
    """
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise ValueError(f"resize_linear_u8 needs uint8, got {image.dtype}")
    squeeze = image.ndim == 2
    img = image[..., None] if squeeze else image
    dw, dh = int(size[0]), int(size[1])
    sh, sw = img.shape[:2]
    x0, x1, a0, a1 = resize_coefficients(sw, dw, clamp=True)
    y0, y1, b0, b1 = resize_coefficients(sh, dh, clamp=False)
    pixels = img.astype(np.int64)
    horizontal = pixels[:, x0] * a0[None, :, None] + pixels[:, x1] * a1[None, :, None]  # (sh, dw, C)
    top, bottom = horizontal[y0] >> 4, horizontal[y1] >> 4
    value = (((b0[:, None, None] * top) >> 16) + ((b1[:, None, None] * bottom) >> 16) + 2) >> 2
    out = np.clip(value, 0, 255).astype(np.uint8)
    return out[..., 0] if squeeze else out


def per_channel(value: float | Sequence[float], name: str) -> np.ndarray:
    """A ``(3,)`` float32 array from a scalar or three values (output channel order)."""
    arr = np.asarray(value, dtype=np.float32).reshape(-1)
    if arr.size == 1:
        arr = np.repeat(arr, 3)
    if arr.size != 3:
        raise ValueError(f"{name} must be a number or 3 numbers (one per output channel), got {value!r}")
    return arr


def _as_rects(value: Any, batch: int, name: str) -> np.ndarray:
    arr = np.asarray(value, dtype=np.int64)
    if arr.shape != (batch, 4):
        raise ValueError(f"{name} must have shape ({batch}, 4) = (x, y, w, h) per image, got {arr.shape}")
    return arr


def check_geometry(
    src_sizes: Sequence[tuple[int, int]],
    out_size: tuple[int, int],
    rois: Any,
    src_rects: Any = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Validate and normalise the per-image rectangles of a preprocessing batch.

    Args:
        src_sizes: ``(H, W)`` of each source image.
        out_size: ``(H, W)`` of the output planes.
        rois: ``(B, 4)`` int ``(x0, y0, w, h)`` destination regions, inside the output, ``w, h ≥ 1``.
        src_rects: ``(B, 4)`` int ``(x, y, w, h)`` source crops inside each image, or ``None`` (whole images).

    Returns:
        ``(rois, src_rects)`` as ``(B, 4)`` int64.

    Raises:
        ValueError: a rectangle is empty or sticks out of its image or of the output.
    """
    batch = len(src_sizes)
    rois_arr = _as_rects(rois, batch, "rois")
    if src_rects is None:
        rects = np.array([(0, 0, int(w), int(h)) for h, w in src_sizes], dtype=np.int64).reshape(batch, 4)
    else:
        rects = _as_rects(src_rects, batch, "src_rects")
    out_h, out_w = int(out_size[0]), int(out_size[1])
    for b in range(batch):
        x, y, w, h = (int(v) for v in rois_arr[b])
        if w < 1 or h < 1 or x < 0 or y < 0 or x + w > out_w or y + h > out_h:
            raise ValueError(f"rois[{b}] = {(x, y, w, h)} is empty or outside the {out_w}x{out_h} output")
        sx, sy, sw, sh = (int(v) for v in rects[b])
        ih, iw = int(src_sizes[b][0]), int(src_sizes[b][1])
        if sw < 1 or sh < 1 or sx < 0 or sy < 0 or sx + sw > iw or sy + sh > ih:
            raise ValueError(f"src_rects[{b}] = {(sx, sy, sw, sh)} is empty or outside the {iw}x{ih} image {b}")
    return rois_arr, rects


def pack_preprocess_params(
    pointers: Sequence[int],
    pitches: Sequence[int],
    rois: np.ndarray,
    src_rects: np.ndarray,
) -> np.ndarray:
    """The ``(B, 12)`` int64 parameter array of the CUDA preprocessing kernel (one host→device copy per batch).

    Columns: source pointer, row pitch (bytes), crop x, y, w, h, ROI x, y, w, h, then OpenCV's ``scale_x``
    and ``scale_y`` (:func:`resize_scale`) stored as the bits of a float64.

    Args:
        pointers: device address of each source image's first pixel.
        pitches: bytes between consecutive rows of each source image.
        rois: ``(B, 4)`` int64 from :func:`check_geometry`.
        src_rects: ``(B, 4)`` int64 from :func:`check_geometry`.
    """
    batch = len(pointers)
    params = np.empty((batch, PARAMS_PER_IMAGE), dtype=np.int64)
    params[:, 0] = np.asarray(pointers, dtype=np.uint64).view(np.int64)
    params[:, 1] = np.asarray(pitches, dtype=np.int64)
    params[:, 2:6] = src_rects
    params[:, 6:10] = rois
    scales = np.array(
        [(resize_scale(src_rects[b, 2], rois[b, 2]), resize_scale(src_rects[b, 3], rois[b, 3])) for b in range(batch)],
        dtype=np.float64,
    ).reshape(batch, 2)
    params[:, 10:12] = scales.view(np.int64)
    return params


def rois_from_letterbox(transforms: Sequence[LetterboxTransform]) -> np.ndarray:
    """``(B, 4)`` int64 ``(left, top, new_w, new_h)``: where :func:`~trtapps.ops.letterbox.letterbox` puts each
    resized image (works for the centred and the top-left placement)."""
    return np.array([(t.left, t.top, t.new_size[1], t.new_size[0]) for t in transforms], dtype=np.int64).reshape(
        len(transforms), 4
    )


def rects_from_boxes(boxes: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    """Integer source crops ``(x, y, w, h)`` for xyxy boxes (ReID crops), as ``img[int(y1):int(y2), int(x1):int(x2)]``.

    Coordinates are truncated toward zero (``astype(int)``), clipped to the image, and every crop keeps at
    least one pixel.

    Args:
        boxes: ``(N, 4)`` float xyxy in image pixels.
        image_size: ``(H, W)`` of the image.

    Returns:
        ``(N, 4)`` int64.
    """
    h, w = int(image_size[0]), int(image_size[1])
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4).astype(np.int64)
    x1 = np.clip(b[:, 0], 0, w - 1)
    y1 = np.clip(b[:, 1], 0, h - 1)
    x2 = np.clip(b[:, 2], x1 + 1, w)
    y2 = np.clip(b[:, 3], y1 + 1, h)
    return np.stack([x1, y1, x2 - x1, y2 - y1], axis=1)


def preprocess_reference(
    images: Sequence[np.ndarray],
    out_size: tuple[int, int],
    rois: Any,
    *,
    pad_value: float | Sequence[float] = 114,
    swap_rb: bool = False,
    scale: float = 1.0,
    mean: float | Sequence[float] = 0.0,
    std: float | Sequence[float] = 1.0,
    src_rects: Any = None,
    dtype: Any = np.float32,
    resize: str = "cv2",
) -> np.ndarray:
    """Resize each image (or crop) into its region of the output, pad, normalise, and stack as NCHW.

    Args:
        images: ``B`` uint8 ``(H_b, W_b, 3)`` BGR host images, any sizes.
        out_size: ``(H, W)`` of the output.
        rois: ``(B, 4)`` int ``(x0, y0, w, h)``: where each resized image lands
            (:func:`rois_from_letterbox`; ``(0, 0, W, H)`` for a plain resize).
        pad_value: the value outside the region, in pixel units (before normalisation), one number or one per
            output channel.
        swap_rb: BGR → RGB.
        scale: multiplies the pixel value first.
        mean: subtracted next, per output channel.
        std: divides last, per output channel.
        src_rects: ``(B, 4)`` int ``(x, y, w, h)`` source crops, or ``None`` for whole images.
        dtype: ``np.float32`` or ``np.float16`` output.
        resize: ``"cv2"`` (OpenCV) or ``"fixed_point"`` (:func:`resize_linear_u8`, the kernel's arithmetic).

    Returns:
        ``(B, 3, H, W)`` array of *dtype*, host.
    """
    dtype = np.dtype(dtype)
    if dtype not in (np.dtype(np.float32), np.dtype(np.float16)):
        raise ValueError(f"output dtype must be float32 or float16, got {dtype}")
    if resize not in ("cv2", "fixed_point"):
        raise ValueError(f"resize must be 'cv2' or 'fixed_point', got {resize!r}")
    for b, image in enumerate(images):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"images[{b}] must be (H, W, 3) uint8, got {image.shape} {image.dtype}")
    sizes = [(int(im.shape[0]), int(im.shape[1])) for im in images]
    rois_arr, rects = check_geometry(sizes, out_size, rois, src_rects)
    out_h, out_w = int(out_size[0]), int(out_size[1])
    pad = per_channel(pad_value, "pad_value")
    mean_arr = per_channel(mean, "mean")
    std_arr = per_channel(std, "std")
    scale32 = np.float32(scale)
    out = np.empty((len(images), 3, out_h, out_w), dtype=dtype)
    for b, image in enumerate(images):
        sx, sy, sw, sh = (int(v) for v in rects[b])
        x0, y0, rw, rh = (int(v) for v in rois_arr[b])
        crop = image[sy : sy + sh, sx : sx + sw]
        if resize == "cv2":
            resized = cv2.resize(crop, (rw, rh), interpolation=cv2.INTER_LINEAR)
        else:
            resized = resize_linear_u8(crop, (rw, rh))
        values = resized.astype(np.float32)
        if swap_rb:
            values = values[..., ::-1]
        canvas = np.empty((out_h, out_w, 3), dtype=np.float32)
        canvas[...] = pad
        canvas[y0 : y0 + rh, x0 : x0 + rw] = values
        normalised = (canvas * scale32 - mean_arr) / std_arr
        out[b] = normalised.transpose(2, 0, 1).astype(dtype)
    return out
