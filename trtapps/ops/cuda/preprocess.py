"""Fused GPU preprocessing, one kernel launch per batch (twin of :func:`trtapps.ops.preprocess.preprocess_reference`).

Each thread computes one output pixel of one image (``gridDim.z`` = batch): inside the image's region it
samples its own uint8 HWC BGR source (frames of different sizes and pitches in one batch) with OpenCV's
fixed-point bilinear arithmetic — bit-identical to ``cv2.resize(..., INTER_LINEAR)`` — outside it uses the pad
value; then channel swap, ``(v · scale − mean) / std`` and the CHW store, float32 or float16, straight into
the runner's input buffer. The per-image parameters travel in one small ``(B, 12)`` int64 array (one
host→device copy per batch, see :func:`trtapps.ops.preprocess.pack_preprocess_params`).

The same kernel cuts ReID crops: give ``src_rects`` (box → integer rectangle,
:func:`trtapps.ops.preprocess.rects_from_boxes`) and full-output ``rois``.

NV12 sources (``pixel_formats``, per image, so one batch may mix decoder surfaces and BGR frames): the kernel
converts each bilinear neighbour to BGR with OpenCV's fixed-point BT.601 formula before interpolating, so the
result equals ``cv2.cvtColor(nv12, COLOR_YUV2BGR_NV12)`` followed by the BGR path, bit for bit, and a decoded
frame is read in place (its row pitch may exceed its width) without a conversion pass or a copy.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from trtapps.gpu.kernels import cupy_module, get_function
from trtapps.gpu.memory import to_device
from trtapps.ops.preprocess import (
    PIXEL_FORMAT_CODES,
    check_geometry,
    nv12_size,
    pack_preprocess_params,
    per_channel,
)

_SOURCES = ("common.cuh", "preprocess.cu")
_BLOCK = (32, 8, 1)


def _source_list(
    sources: Sequence[Any] | Any, batch: int, formats: Sequence[str]
) -> tuple[list[Any], list[tuple[int, int]]]:
    """The batch's source images, checked, and the ``(H, W)`` of each picture."""
    cupy = cupy_module()
    if isinstance(sources, cupy.ndarray):
        if sources.ndim != 4:
            raise ValueError(f"a batched source array must be (B, H, W, 3), got shape {sources.shape}")
        items = [sources[b] for b in range(sources.shape[0])]
    else:
        items = list(sources)
    if len(items) != batch:
        raise ValueError(f"{len(items)} source images for an output batch of {batch}")
    sizes = []
    for b, src in enumerate(items):
        if not isinstance(src, cupy.ndarray):
            raise TypeError(f"sources[{b}] must be a CuPy array on the GPU, got {type(src).__name__}")
        if formats[b] == "nv12":
            sizes.append(_check_nv12(src, b))
            continue
        if src.dtype != np.uint8 or src.ndim != 3 or src.shape[2] != 3:
            raise ValueError(f"sources[{b}] must be (H, W, 3) uint8 BGR, got {src.shape} {src.dtype}")
        if src.strides[2] != 1 or src.strides[1] != 3 or src.strides[0] < 3 * src.shape[1]:
            raise ValueError(
                f"sources[{b}] must have packed pixels (strides (pitch, 3, 1)), got strides {src.strides}; "
                "pass cupy.ascontiguousarray(image)"
            )
        sizes.append((int(src.shape[0]), int(src.shape[1])))
    return items, sizes


def _check_nv12(src: Any, b: int) -> tuple[int, int]:
    """The ``(H, W)`` of an NV12 source, checked."""
    if src.dtype != np.uint8 or src.ndim != 2:
        raise ValueError(f"sources[{b}] (NV12) must be (H * 3 / 2, W) uint8, got {src.shape} {src.dtype}")
    try:
        size = nv12_size(src.shape)
    except ValueError as exc:
        raise ValueError(f"sources[{b}]: {exc}") from None
    if src.strides[1] != 1 or src.strides[0] < src.shape[1]:
        raise ValueError(
            f"sources[{b}] (NV12) must have packed rows (strides (pitch, 1), pitch >= width), got strides "
            f"{src.strides}; pass cupy.ascontiguousarray(image)"
        )
    return size


def _formats(pixel_formats: Sequence[str] | None, batch: int) -> list[str]:
    if pixel_formats is None:
        return ["bgr"] * batch
    formats = list(pixel_formats)
    if len(formats) != batch:
        raise ValueError(f"{len(formats)} pixel formats for an output batch of {batch}")
    for b, fmt in enumerate(formats):
        if fmt not in PIXEL_FORMAT_CODES:
            raise ValueError(f"pixel_formats[{b}] must be one of {sorted(PIXEL_FORMAT_CODES)}, got {fmt!r}")
    return formats


def preprocess_batch(
    sources: Sequence[Any] | Any,
    out: Any,
    rois: Any,
    *,
    pad_value: float | Sequence[float] = 114,
    swap_rb: bool = False,
    scale: float = 1.0,
    mean: float | Sequence[float] = 0.0,
    std: float | Sequence[float] = 1.0,
    src_rects: Any = None,
    stream: Any = None,
    pixel_formats: Sequence[str] | None = None,
) -> Any:
    """Resize, pad and normalise a batch of device images into *out* with one kernel launch.

    Args:
        sources: ``B`` CuPy uint8 ``(H_b, W_b, 3)`` BGR images (any sizes; row pitch may exceed ``3·W_b``, e.g.
            a crop view), or one ``(B, H, W, 3)`` array. The same array may appear several times (crops).
            An image whose pixel format is ``"nv12"`` is an ``(H_b * 3 / 2, W_b)`` array (luma rows, then
            interleaved chroma rows, even ``H_b`` and ``W_b``; the row pitch may exceed ``W_b``).
        out: CuPy ``(B, 3, H, W)`` float32 or float16, C-contiguous (the runner's input buffer); every element
            is written.
        rois: ``(B, 4)`` int ``(x0, y0, w, h)`` where each resized image lands in the output
            (:func:`trtapps.ops.preprocess.rois_from_letterbox`; ``(0, 0, W, H)`` for a plain resize).
        pad_value: value outside the ROI in pixel units (normalised like pixels), scalar or per output channel.
        swap_rb: BGR → RGB.
        scale: multiplies the pixel value first.
        mean: subtracted next (scalar or per output channel).
        std: divides last (scalar or per output channel).
        src_rects: ``(B, 4)`` int ``(x, y, w, h)`` source crops, or ``None`` for whole images.
        stream: ``cupy.cuda.Stream`` to run on (the current stream when ``None``).
        pixel_formats: ``"bgr"`` or ``"nv12"`` per source image (all BGR when ``None``); ``src_rects`` are in
            picture pixels either way.

    Returns:
        *out*.

    Raises:
        ValueError, TypeError: bad shapes, dtypes, strides or rectangles.
        CudaError: the launch failed.
    """
    cupy = cupy_module()
    if not isinstance(out, cupy.ndarray) or out.ndim != 4 or out.shape[1] != 3:
        raise ValueError(f"out must be a CuPy (B, 3, H, W) array, got {getattr(out, 'shape', type(out))}")
    if out.dtype not in (np.float32, np.float16):
        raise ValueError(f"out must be float32 or float16, got {out.dtype}")
    if not out.flags.c_contiguous:
        raise ValueError("out must be C-contiguous")
    batch, _, out_h, out_w = (int(v) for v in out.shape)
    if batch == 0:
        return out
    if batch > 65535:
        raise ValueError(f"batch {batch} exceeds the 65535 images of one launch")
    formats = _formats(pixel_formats, batch)
    items, sizes = _source_list(sources, batch, formats)
    device = out.device.id
    for b, src in enumerate(items):
        if src.device.id != device:
            raise ValueError(f"sources[{b}] is on GPU {src.device.id}, out on GPU {device}")
    rois_arr, rects = check_geometry(sizes, (out_h, out_w), rois, src_rects)
    pitches = [int(s.strides[0]) for s in items]
    params = pack_preprocess_params(
        [int(s.data.ptr) for s in items],
        pitches,
        rois_arr,
        rects,
        formats,
        # NV12: the chroma rows follow the luma rows, at the same pitch
        [int(src.data.ptr) + h * pitch for src, (h, _), pitch in zip(items, sizes, pitches, strict=True)],
    )
    pad = per_channel(pad_value, "pad_value")
    mean_arr = per_channel(mean, "mean")
    std_arr = per_channel(std, "std")
    kernel = get_function(_SOURCES, "letterbox_normalize", {"OUT_FP16": int(out.dtype == np.float16)})
    with out.device:
        d_params = to_device(params, stream)  # pinned staging: no host wait, no pageable copy on the stream
        grid = ((out_w + _BLOCK[0] - 1) // _BLOCK[0], (out_h + _BLOCK[1] - 1) // _BLOCK[1], batch)
        args = (
            d_params,
            np.int32(out_w),
            np.int32(out_h),
            out,
            np.float32(scale),
            *(np.float32(v) for v in mean_arr),
            *(np.float32(v) for v in std_arr),
            *(np.float32(v) for v in pad),
            np.int32(bool(swap_rb)),
        )
        kernel(grid, _BLOCK, args, stream=stream)
    return out
