"""NV12 → BGR on the GPU, for the consumers that need BGR pixels of a hardware-decoded frame.

The preprocessing kernel reads NV12 directly (:mod:`trtapps.ops.cuda.preprocess`), so inference never needs this.
Annotated image and video sinks, ReID crops cut with OpenCV, and :meth:`trtapps.structures.Frame.host_image` do:
they call :func:`nv12_to_bgr`, one kernel launch per frame, bit-identical to
``cv2.cvtColor(nv12, cv2.COLOR_YUV2BGR_NV12)`` (the same fixed-point formula as the preprocessing kernel; see
:func:`trtapps.ops.preprocess.nv12_to_bgr_reference`, its NumPy twin).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from trtapps.gpu.kernels import cupy_module, get_function
from trtapps.ops.preprocess import nv12_size

#: ``color.cu`` uses ``nv12_pixel`` of ``preprocess.cu``: the conversion is written once for both kernels
SOURCES = ("common.cuh", "preprocess.cu", "color.cu")
_DEFINES = {"OUT_FP16": 0}
_BLOCK = (32, 8, 1)


def nv12_to_bgr(frame: Any, stream: Any = None, out: Any = None) -> Any:
    """The BGR pixels of an NV12 frame or array, on the GPU.

    Args:
        frame: a :class:`~trtapps.structures.Frame` (its ``image`` is used; a BGR frame's image is returned as it
            is) or a CuPy ``(H * 3 / 2, W)`` uint8 NV12 array (even ``H`` and ``W``; the row pitch may exceed
            ``W``, e.g. a view of a decoder surface).
        stream: ``cupy.cuda.Stream`` to enqueue on (the current stream when ``None``); the result is ready for
            work queued after it on that stream (call ``stream.synchronize()`` before reading it on the host).
        out: optional CuPy ``(H, W, 3)`` uint8 array to write into (rows may be padded, pixels packed).

    Returns:
        CuPy ``(H, W, 3)`` uint8 BGR (*out* when given).

    Raises:
        TypeError: *frame* is not on the GPU.
        ValueError: not an NV12 shape, or a bad *out*.
        CudaError: the launch failed.
    """
    cupy = cupy_module()
    image = getattr(frame, "image", frame)
    if getattr(frame, "pixel_format", "nv12") == "bgr":
        return image
    if not isinstance(image, cupy.ndarray):
        raise TypeError(f"nv12_to_bgr needs a CuPy array on the GPU, got {type(image).__name__}")
    if image.dtype != np.uint8 or image.ndim != 2:
        raise ValueError(f"an NV12 image must be (H * 3 / 2, W) uint8, got {image.shape} {image.dtype}")
    height, width = nv12_size(image.shape)
    if image.strides[1] != 1 or image.strides[0] < width:
        raise ValueError(f"an NV12 image must have packed rows (strides (pitch, 1)), got strides {image.strides}")
    pitch = int(image.strides[0])
    with image.device:
        if out is None:
            if stream is None:
                out = cupy.empty((height, width, 3), dtype=cupy.uint8)
            else:
                with stream:
                    out = cupy.empty((height, width, 3), dtype=cupy.uint8)
        elif (
            not isinstance(out, cupy.ndarray)
            or out.dtype != np.uint8
            or tuple(out.shape) != (height, width, 3)
            or out.strides[1:] != (3, 1)
        ):
            raise ValueError(f"out must be a CuPy ({height}, {width}, 3) uint8 array with packed pixels")
        kernel = get_function(SOURCES, "nv12_to_bgr", _DEFINES)
        grid = ((width + _BLOCK[0] - 1) // _BLOCK[0], (height + _BLOCK[1] - 1) // _BLOCK[1], 1)
        luma = int(image.data.ptr)
        args = (
            np.uint64(luma),
            np.uint64(luma + height * pitch),
            np.int64(pitch),
            np.int32(width),
            np.int32(height),
            out,
            np.int64(out.strides[0]),
        )
        kernel(grid, _BLOCK, args, stream=stream)
    return out
