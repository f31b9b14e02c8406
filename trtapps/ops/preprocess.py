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

NV12 sources (the surfaces a hardware video decoder leaves, ``Frame.pixel_format == "nv12"``): the reference is
``cv2.cvtColor(nv12, cv2.COLOR_YUV2BGR_NV12)`` followed by the BGR path above, and the kernel reproduces it bit
for bit, because it converts each of the four bilinear neighbours exactly as OpenCV converts that pixel and then
resizes the converted uint8 values. OpenCV's conversion is BT.601 limited range in 20-bit fixed point
(``color_yuv.simd.hpp``), with the chroma of each 2 × 2 block shared by its four pixels (no chroma filtering)::

    y' = max(0, Y − 16) · 1220542,   u = U − 128,   v = V − 128,   half = 1 << 19
    R = sat((y' + half + 1673527·v) >> 20)
    G = sat((y' + half − 852492·v − 409993·u) >> 20)
    B = sat((y' + half + 2116026·u) >> 20)

(``>>`` arithmetic, ``sat`` clamps to 0…255). :func:`nv12_to_bgr_reference` is that formula in NumPy; it equals
OpenCV 5.0's ``COLOR_YUV2BGR_NV12`` on every one of the 2^24 (Y, U, V) triples (checked once exhaustively; the
unit tests check random frames and all (U, V) pairs).
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
PARAMS_PER_IMAGE = 14
#: pixel formats the preprocessing kernel reads, with their code in the parameter array (column 12)
PIXEL_FORMAT_CODES = {"bgr": 0, "nv12": 1}

# OpenCV's BT.601 limited-range YUV → RGB coefficients (ITUR_BT_601_* in color_yuv.simd.hpp), 20-bit fixed point
BT601_SHIFT = 20
BT601_CY = 1220542
BT601_CUB = 2116026
BT601_CUG = -409993
BT601_CVG = -852492
BT601_CVR = 1673527


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


def nv12_size(shape: Sequence[int]) -> tuple[int, int]:
    """``(H, W)`` of the picture in an NV12 array of *shape* ``(H * 3 / 2, W)``.

    Raises:
        ValueError: not a 2-D shape with a whole number of rows per plane and even H and W.
    """
    if len(shape) != 2 or shape[0] < 3 or shape[0] % 3 or shape[1] < 2 or shape[1] % 2:
        raise ValueError(f"an NV12 image must be (H * 3 / 2, W) with even H and W, got shape {tuple(shape)}")
    return int(shape[0]) * 2 // 3, int(shape[1])


def image_size(image: Any, pixel_format: str = "bgr") -> tuple[int, int]:
    """``(H, W)`` of a BGR ``(H, W, 3)`` or NV12 ``(H * 3 / 2, W)`` image (host or device)."""
    if pixel_format == "nv12":
        return nv12_size(image.shape)
    if pixel_format != "bgr":
        raise ValueError(f"pixel format must be one of {sorted(PIXEL_FORMAT_CODES)}, got {pixel_format!r}")
    return int(image.shape[0]), int(image.shape[1])


def nv12_to_bgr_reference(nv12: np.ndarray) -> np.ndarray:
    """``cv2.cvtColor(nv12, cv2.COLOR_YUV2BGR_NV12)`` in NumPy integers: the arithmetic of the GPU kernels.

    Args:
        nv12: ``(H * 3 / 2, W)`` uint8: ``H`` rows of luma, then ``H / 2`` rows of interleaved U, V.

    Returns:
        ``(H, W, 3)`` uint8 BGR.
    """
    nv12 = np.asarray(nv12)
    if nv12.dtype != np.uint8:
        raise ValueError(f"nv12_to_bgr_reference needs uint8, got {nv12.dtype}")
    h, w = nv12_size(nv12.shape)
    luma = nv12[:h].astype(np.int64)
    chroma = nv12[h:].reshape(h // 2, w // 2, 2).astype(np.int64) - 128
    u = chroma[..., 0].repeat(2, axis=0).repeat(2, axis=1)
    v = chroma[..., 1].repeat(2, axis=0).repeat(2, axis=1)
    y = np.maximum(luma - 16, 0) * BT601_CY + (1 << (BT601_SHIFT - 1))
    b = (y + BT601_CUB * u) >> BT601_SHIFT
    g = (y + BT601_CVG * v + BT601_CUG * u) >> BT601_SHIFT
    r = (y + BT601_CVR * v) >> BT601_SHIFT
    return np.clip(np.stack([b, g, r], axis=-1), 0, 255).astype(np.uint8)


def bgr_to_nv12(image: np.ndarray) -> np.ndarray:
    """An NV12 ``(H * 3 / 2, W)`` uint8 frame made from a BGR image with even H and W, through OpenCV's
    ``COLOR_BGR2YUV_I420`` (planar U, V) with the two chroma planes interleaved. Test and benchmark input: real
    pictures in the layout a video decoder produces."""
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"bgr_to_nv12 needs an (H, W, 3) uint8 image, got {image.shape} {image.dtype}")
    h, w = int(image.shape[0]), int(image.shape[1])
    if h % 2 or w % 2:
        raise ValueError(f"NV12 needs an even width and height, got {w}x{h}")
    i420 = cv2.cvtColor(image, cv2.COLOR_BGR2YUV_I420).reshape(-1)
    quarter = (h // 2) * (w // 2)
    nv12 = np.empty((h * 3 // 2, w), dtype=np.uint8)
    nv12[:h] = i420[: h * w].reshape(h, w)
    chroma = nv12[h:].reshape(h // 2, w // 2, 2)
    chroma[..., 0] = i420[h * w : h * w + quarter].reshape(h // 2, w // 2)
    chroma[..., 1] = i420[h * w + quarter :].reshape(h // 2, w // 2)
    return nv12


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
    sizes = np.asarray(src_sizes, dtype=np.int64).reshape(batch, 2)  # (H, W) per image
    if src_rects is None:
        rects = np.zeros((batch, 4), dtype=np.int64)
        rects[:, 2], rects[:, 3] = sizes[:, 1], sizes[:, 0]
    else:
        rects = _as_rects(src_rects, batch, "src_rects")
    out_h, out_w = int(out_size[0]), int(out_size[1])
    # checked for the whole batch at once (once per batch on the GPU path); the first bad image is named
    bad_roi = _outside(rois_arr, out_w, out_h)
    bad_rect = _outside(rects, sizes[:, 1], sizes[:, 0])
    bad = np.flatnonzero(bad_roi | bad_rect)
    if bad.size:
        b = int(bad[0])
        if bad_roi[b]:
            x, y, w, h = rois_arr[b].tolist()
            raise ValueError(f"rois[{b}] = {(x, y, w, h)} is empty or outside the {out_w}x{out_h} output")
        sx, sy, sw, sh = rects[b].tolist()
        ih, iw = sizes[b].tolist()
        raise ValueError(f"src_rects[{b}] = {(sx, sy, sw, sh)} is empty or outside the {iw}x{ih} image {b}")
    return rois_arr, rects


def _outside(rects: np.ndarray, width: np.ndarray | int, height: np.ndarray | int) -> np.ndarray:
    """``(B,)`` bool: ``(x, y, w, h)`` rectangles that are empty or stick out of ``width x height`` (one size for
    all, or one per rectangle)."""
    x, y, w, h = rects.T
    return (w < 1) | (h < 1) | (x < 0) | (y < 0) | (x + w > width) | (y + h > height)


def pack_preprocess_params(
    pointers: Sequence[int],
    pitches: Sequence[int],
    rois: np.ndarray,
    src_rects: np.ndarray,
    pixel_formats: Sequence[str] | None = None,
    chroma_pointers: Sequence[int] | None = None,
) -> np.ndarray:
    """The ``(B, 14)`` int64 parameter array of the CUDA preprocessing kernel (one host→device copy per batch).

    Columns: source pointer, row pitch (bytes), crop x, y, w, h, ROI x, y, w, h, OpenCV's ``scale_x`` and
    ``scale_y`` (:func:`resize_scale`) stored as the bits of a float64, the pixel format code
    (:data:`PIXEL_FORMAT_CODES`: 0 BGR, 1 NV12), and the address of the NV12 chroma plane (0 for BGR). The
    chroma plane has the luma plane's pitch; its own address lets a decoder surface whose chroma starts after
    padding rows be read in place.

    Args:
        pointers: device address of each source image's first pixel (NV12: of its luma plane).
        pitches: bytes between consecutive rows of each source image.
        rois: ``(B, 4)`` int64 from :func:`check_geometry`.
        src_rects: ``(B, 4)`` int64 from :func:`check_geometry`.
        pixel_formats: ``"bgr"`` or ``"nv12"`` per image (all BGR when ``None``).
        chroma_pointers: device address of each NV12 image's chroma plane (ignored for BGR images; required
            when any image is NV12).
    """
    batch = len(pointers)
    formats = list(pixel_formats) if pixel_formats is not None else ["bgr"] * batch
    if len(formats) != batch:
        raise ValueError(f"{len(formats)} pixel formats for {batch} images")
    unknown = sorted({f for f in formats if f not in PIXEL_FORMAT_CODES})
    if unknown:
        raise ValueError(f"unknown pixel format(s) {unknown}; expected one of {sorted(PIXEL_FORMAT_CODES)}")
    if "nv12" in formats and (chroma_pointers is None or len(chroma_pointers) != batch):
        raise ValueError("NV12 images need their chroma plane addresses (chroma_pointers, one per image)")
    params = np.empty((batch, PARAMS_PER_IMAGE), dtype=np.int64)
    params[:, 0] = np.asarray(pointers, dtype=np.uint64).view(np.int64)
    params[:, 1] = np.asarray(pitches, dtype=np.int64)
    params[:, 2:6] = src_rects
    params[:, 6:10] = rois
    # resize_scale for every image at once: the same IEEE double operations, so the same bits
    src_wh = np.asarray(src_rects[:, 2:4], dtype=np.float64)
    dst_wh = np.asarray(rois[:, 2:4], dtype=np.float64)
    params[:, 10:12] = np.ascontiguousarray(1.0 / (dst_wh / src_wh)).view(np.int64)
    params[:, 12] = [PIXEL_FORMAT_CODES[f] for f in formats]
    chroma = [int(c) if f == "nv12" else 0 for f, c in zip(formats, chroma_pointers or [0] * batch, strict=True)]
    params[:, 13] = np.asarray(chroma, dtype=np.uint64).view(np.int64)
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
    pixel_formats: Sequence[str] | None = None,
) -> np.ndarray:
    """Resize each image (or crop) into its region of the output, pad, normalise, and stack as NCHW.

    Args:
        images: ``B`` uint8 host images, any sizes: ``(H_b, W_b, 3)`` BGR, or ``(H_b * 3 / 2, W_b)`` NV12 where
            *pixel_formats* says so (converted first with ``cv2.cvtColor(..., COLOR_YUV2BGR_NV12)``, or with
            :func:`nv12_to_bgr_reference` when ``resize="fixed_point"``; the two are equal).
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
        pixel_formats: ``"bgr"`` or ``"nv12"`` per image (all BGR when ``None``).

    Returns:
        ``(B, 3, H, W)`` array of *dtype*, host.
    """
    dtype = np.dtype(dtype)
    if dtype not in (np.dtype(np.float32), np.dtype(np.float16)):
        raise ValueError(f"output dtype must be float32 or float16, got {dtype}")
    if resize not in ("cv2", "fixed_point"):
        raise ValueError(f"resize must be 'cv2' or 'fixed_point', got {resize!r}")
    if pixel_formats is not None:
        if len(pixel_formats) != len(images):
            raise ValueError(f"{len(pixel_formats)} pixel formats for {len(images)} images")
        images = [_as_bgr_reference(im, fmt, resize, b) for b, (im, fmt) in enumerate(zip(images, pixel_formats))]
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


def _as_bgr_reference(image: np.ndarray, pixel_format: str, resize: str, index: int) -> np.ndarray:
    """Image *index* of a reference batch as BGR (NV12 converted as :func:`preprocess_reference` documents)."""
    if pixel_format == "bgr":
        return image
    if pixel_format != "nv12":
        raise ValueError(f"pixel_formats[{index}] must be one of {sorted(PIXEL_FORMAT_CODES)}, got {pixel_format!r}")
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise ValueError(f"images[{index}] (NV12) must be uint8, got {image.dtype}")
    nv12_size(image.shape)
    if resize == "fixed_point":
        return nv12_to_bgr_reference(image)
    return cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_YUV2BGR_NV12)
