"""Fused GPU preprocessing, one kernel launch per batch (twin of :func:`trtapps.ops.preprocess.preprocess_reference`).

Each thread computes one output pixel of one image (``gridDim.z`` = batch): inside the image's region it
samples its own uint8 HWC BGR source (frames of different sizes and pitches in one batch) with OpenCV's
fixed-point bilinear arithmetic — bit-identical to ``cv2.resize(..., INTER_LINEAR)`` — outside it uses the pad
value; then channel swap, ``(v · scale − mean) / std`` and the CHW store, float32 or float16, straight into
the runner's input buffer. The per-image parameters travel in one small ``(B, 12)`` int64 array (one
host→device copy per batch, see :func:`trtapps.ops.preprocess.pack_preprocess_params`).

The same kernel cuts ReID crops: give ``src_rects`` (box → integer rectangle,
:func:`trtapps.ops.preprocess.rects_from_boxes`) and full-output ``rois``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from trtapps.gpu.kernels import cupy_module, get_function
from trtapps.ops.preprocess import check_geometry, pack_preprocess_params, per_channel

_SOURCES = ("common.cuh", "preprocess.cu")
_BLOCK = (32, 8, 1)


def _source_list(sources: Sequence[Any] | Any, batch: int) -> list[Any]:
    cupy = cupy_module()
    if isinstance(sources, cupy.ndarray):
        if sources.ndim != 4:
            raise ValueError(f"a batched source array must be (B, H, W, 3), got shape {sources.shape}")
        items = [sources[b] for b in range(sources.shape[0])]
    else:
        items = list(sources)
    if len(items) != batch:
        raise ValueError(f"{len(items)} source images for an output batch of {batch}")
    for b, src in enumerate(items):
        if not isinstance(src, cupy.ndarray):
            raise TypeError(f"sources[{b}] must be a CuPy array on the GPU, got {type(src).__name__}")
        if src.dtype != np.uint8 or src.ndim != 3 or src.shape[2] != 3:
            raise ValueError(f"sources[{b}] must be (H, W, 3) uint8 BGR, got {src.shape} {src.dtype}")
        if src.strides[2] != 1 or src.strides[1] != 3 or src.strides[0] < 3 * src.shape[1]:
            raise ValueError(
                f"sources[{b}] must have packed pixels (strides (pitch, 3, 1)), got strides {src.strides}; "
                "pass cupy.ascontiguousarray(image)"
            )
    return items


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
) -> Any:
    """Resize, pad and normalise a batch of device images into *out* with one kernel launch.

    Args:
        sources: ``B`` CuPy uint8 ``(H_b, W_b, 3)`` BGR images (any sizes; row pitch may exceed ``3·W_b``, e.g.
            a crop view), or one ``(B, H, W, 3)`` array. The same array may appear several times (crops).
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
    items = _source_list(sources, batch)
    for b, src in enumerate(items):
        if src.device.id != out.device.id:
            raise ValueError(f"sources[{b}] is on GPU {src.device.id}, out on GPU {out.device.id}")
    sizes = [(int(s.shape[0]), int(s.shape[1])) for s in items]
    rois_arr, rects = check_geometry(sizes, (out_h, out_w), rois, src_rects)
    params = pack_preprocess_params(
        [int(s.data.ptr) for s in items], [int(s.strides[0]) for s in items], rois_arr, rects
    )
    pad = per_channel(pad_value, "pad_value")
    mean_arr = per_channel(mean, "mean")
    std_arr = per_channel(std, "std")
    kernel = get_function(_SOURCES, "letterbox_normalize", {"OUT_FP16": int(out.dtype == np.float16)})
    with out.device:
        if stream is None:
            d_params = cupy.asarray(params)
        else:
            with stream:
                d_params = cupy.asarray(params)
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
