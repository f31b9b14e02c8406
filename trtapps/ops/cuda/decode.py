"""GPU decoding of detection heads into fixed-size candidate buffers (twins of :mod:`trtapps.ops.decode`).

One thread per anchor; anchors below the threshold return at once; survivors take a slot with ``atomicAdd``
on their image's counter and write one record (:data:`~trtapps.ops.decode.YOLO_WIDTH` = 7 floats for YOLO,
:data:`~trtapps.ops.decode.FACE_WIDTH` = 16 for faces, layouts in :mod:`trtapps.ops.decode`). The counter keeps
counting past the capacity, records beyond it are dropped: ``counts[b] > capacity`` means candidates were
lost (the NMS output reports it as ``found``; raise the capacity or the threshold). Slot order is
nondeterministic; :func:`trtapps.ops.cuda.nms.nms_batched` sorts deterministically.

Every function takes the head output(s) as CuPy arrays (float32 or float16, the runner's output buffers),
launches one kernel on *stream*, and returns :class:`Candidates` (device arrays; no host synchronisation).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from trtapps.gpu.kernels import cupy_module, get_function
from trtapps.gpu.memory import to_device
from trtapps.ops.decode import (
    FACE_WIDTH,
    RETINAFACE_VARIANCES,
    YOLO_WIDTH,
    YOLOX_STRIDES,
    retinaface_priors,
    yolox_grid_table,
)

_SOURCES = ("common.cuh", "decode.cu")
_BLOCK = 256
#: default candidates per image; up to 4096 the NMS sorts in shared memory (one block per image)
DEFAULT_CAPACITY = 4096
#: the NMS sort key holds anchor indices below 2**21 and class ids below 2**11
MAX_ANCHORS = 1 << 21
MAX_CLASSES = 1 << 11

_tables: dict[tuple[Any, ...], Any] = {}
_tables_lock = threading.Lock()


class Candidates(NamedTuple):
    """Decoded candidates of a batch, on the device.

    Attributes:
        records: ``(B, capacity, width)`` float32; row ``r`` of image ``b`` is valid for
            ``r < min(counts[b], capacity)``.
        counts: ``(B,)`` int32 candidates found per image (may exceed the capacity).
    """

    records: Any
    counts: Any

    @property
    def capacity(self) -> int:
        return int(self.records.shape[1])

    @property
    def width(self) -> int:
        return int(self.records.shape[2])


def allocate_candidates(batch: int, capacity: int, width: int) -> Candidates:
    """Device buffers for :class:`Candidates` on the current device (contents undefined)."""
    cupy = cupy_module()
    if capacity < 1:
        raise ValueError(f"capacity must be at least 1, got {capacity}")
    return Candidates(
        records=cupy.empty((batch, capacity, width), dtype=cupy.float32),
        counts=cupy.empty((batch,), dtype=cupy.int32),
    )


def _stream_ctx(stream: Any) -> Any:
    return contextlib.nullcontext() if stream is None else stream


def _check_head(array: Any, name: str, ndim: int) -> None:
    cupy = cupy_module()
    if not isinstance(array, cupy.ndarray):
        raise TypeError(f"{name} must be a CuPy array on the GPU, got {type(array).__name__}")
    if array.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {array.shape}")
    if array.dtype not in (np.float32, np.float16):
        raise ValueError(f"{name} must be float32 or float16, got {array.dtype}")


def _prepare(out: Candidates | None, batch: int, capacity: int, width: int, stream: Any) -> Candidates:
    with _stream_ctx(stream):
        if out is None:
            out = allocate_candidates(batch, capacity, width)
        elif out.records.shape != (batch, out.capacity, width) or out.records.dtype != np.float32:
            raise ValueError(f"out.records must be ({batch}, capacity, {width}) float32, got {out.records.shape}")
        elif out.counts.shape != (batch,) or out.counts.dtype != np.int32:
            raise ValueError(f"out.counts must be ({batch},) int32, got {out.counts.shape} {out.counts.dtype}")
        elif not (out.records.flags.c_contiguous and out.counts.flags.c_contiguous):
            raise ValueError("out.records and out.counts must be C-contiguous")
        out.counts.fill(0)
    return out


def params_arg(params: Any, batch: int, stream: Any) -> Any:
    """Device ``(B, 6)`` float32 mapping parameters, or a null pointer."""
    if params is None:
        return np.uint64(0)
    arr = to_device(params, stream, dtype=np.float32)
    if arr.shape != (batch, 6):
        raise ValueError(f"params must have shape ({batch}, 6) = gain_x, gain_y, pad_x, pad_y, w, h; got {arr.shape}")
    return arr


def _device_table(key: tuple[Any, ...], build: Any) -> Any:
    """A small constant table (YOLOX grid, RetinaFace priors) uploaded once per device and key."""
    cupy = cupy_module()
    full_key = (cupy.cuda.Device().id, *key)
    with _tables_lock:
        table = _tables.get(full_key)
    if table is None:
        table = cupy.asarray(build())
        cupy.cuda.get_current_stream().synchronize()  # the table is shared by every later stream
        with _tables_lock:
            table = _tables.setdefault(full_key, table)
    return table


def _defines(array: Any) -> dict[str, int]:
    return {"IN_FP16": int(array.dtype == np.float16)}


def _check_yolo(pred: Any, layout: str) -> None:
    """A YOLO head: a C-contiguous rank-3 CuPy array with 1…:data:`MAX_CLASSES` classes and fewer than
    :data:`MAX_ANCHORS` anchors; *layout* ``"v8"`` is ``(B, 4 + C, N)``, ``"rows"`` ``(B, N, 5 + C)``."""
    _check_head(pred, "pred", 3)
    if not pred.flags.c_contiguous:
        raise ValueError("pred must be C-contiguous")
    if layout == "v8":
        classes, anchors, what = int(pred.shape[1]) - 4, int(pred.shape[2]), "a YOLOv8 head is (B, 4 + C, N)"
    else:
        classes, anchors, what = int(pred.shape[2]) - 5, int(pred.shape[1]), "a YOLOv5/YOLOX head is (B, N, 5 + C)"
    if classes < 1 or classes > MAX_CLASSES or anchors >= MAX_ANCHORS:
        raise ValueError(f"{what} with 1 <= C <= {MAX_CLASSES}, N < {MAX_ANCHORS}; got {pred.shape}")


def _launch(
    name: str, head: Any, args: tuple[Any, ...], rows: int, params: Any, clip: bool, result: Candidates, stream: Any
) -> Candidates:
    """Launch decode kernel *name* (compiled for *head*'s dtype), one thread per row of each image: its own
    *args*, then the mapping parameters, ``clip`` and *result*'s buffers (the tail every decode kernel takes)."""
    batch = int(result.records.shape[0])
    p_arg = params_arg(params, batch, stream)
    kernel = get_function(_SOURCES, name, _defines(head))
    tail = (p_arg, np.int32(bool(clip)), result.records, result.counts, np.int32(result.capacity))
    kernel(((rows + _BLOCK - 1) // _BLOCK, batch), (_BLOCK,), (*args, *tail), stream=stream)
    return result


def decode_yolov8(
    pred: Any,
    conf_threshold: float,
    *,
    capacity: int = DEFAULT_CAPACITY,
    params: Any = None,
    clip: bool = True,
    multi_label: bool = False,
    out: Candidates | None = None,
    stream: Any = None,
) -> Candidates:
    """YOLOv8/YOLO11 head ``(B, 4 + C, N)`` → candidates (twin of
    :func:`trtapps.ops.decode.decode_yolov8_reference`).

    Args:
        pred: CuPy ``(B, 4 + C, N)`` float32/float16, C-contiguous, channel-first (the raw export output).
        conf_threshold: keep ``max class probability > conf_threshold``.
        capacity: records per image (ignored when *out* is given).
        params: ``(B, 6)`` float32 (host or device) mapping to original pixels in the kernel, or ``None`` to
            keep input pixels (map after NMS instead: :func:`trtapps.ops.cuda.nms.nms_batched`'s ``params``).
        clip: clip mapped coordinates to the image.
        multi_label: one candidate per class above the threshold.
        out: reuse these buffers (their counts are reset here).
        stream: ``cupy.cuda.Stream`` (current stream when ``None``).

    Returns:
        :class:`Candidates` with 7-wide records.
    """
    _check_yolo(pred, "v8")
    batch, channels, anchors = (int(v) for v in pred.shape)
    classes = channels - 4
    result = _prepare(out, batch, capacity, YOLO_WIDTH, stream)
    if batch == 0 or anchors == 0:
        return result
    args = (pred, np.int32(anchors), np.int32(classes), np.float32(conf_threshold), np.int32(bool(multi_label)))
    return _launch("decode_yolov8", pred, args, anchors, params, clip, result, stream)


def _decode_rows(
    pred: Any,
    conf_threshold: float,
    grid: Any,
    capacity: int,
    params: Any,
    clip: bool,
    multi_label: bool,
    out: Candidates | None,
    stream: Any,
) -> Candidates:
    batch, anchors, cols = (int(v) for v in pred.shape)
    classes = cols - 5
    result = _prepare(out, batch, capacity, YOLO_WIDTH, stream)
    if batch == 0 or anchors == 0:
        return result
    args = (pred, np.int32(anchors), np.int32(classes), grid, np.float32(conf_threshold), np.int32(bool(multi_label)))
    return _launch("decode_yolo_rows", pred, args, anchors, params, clip, result, stream)


def decode_yolov5(
    pred: Any,
    conf_threshold: float,
    *,
    capacity: int = DEFAULT_CAPACITY,
    params: Any = None,
    clip: bool = True,
    multi_label: bool = False,
    out: Candidates | None = None,
    stream: Any = None,
) -> Candidates:
    """YOLOv5 (or decoded YOLOX) head ``(B, N, 5 + C)`` → candidates (twin of
    :func:`trtapps.ops.decode.decode_yolo_rows_reference` without a grid).

    Anchors with ``obj <= conf_threshold`` are dropped first; score = ``cls · obj``, best class. Other
    arguments as :func:`decode_yolov8`.
    """
    _check_yolo(pred, "rows")
    return _decode_rows(pred, conf_threshold, np.uint64(0), capacity, params, clip, multi_label, out, stream)


def decode_yolox(
    pred: Any,
    conf_threshold: float,
    *,
    input_size: tuple[int, int],
    strides: Sequence[int] = YOLOX_STRIDES,
    capacity: int = DEFAULT_CAPACITY,
    params: Any = None,
    clip: bool = True,
    multi_label: bool = False,
    out: Candidates | None = None,
    stream: Any = None,
) -> Candidates:
    """Raw YOLOX head (``decode_in_inference=False``) ``(B, N, 5 + C)`` → candidates (twin of
    :func:`trtapps.ops.decode.decode_yolo_rows_reference` with :func:`~trtapps.ops.decode.yolox_grid_table`).

    Args:
        pred: CuPy ``(B, N, 5 + C)`` rows ``dx, dy, log w, log h, obj, cls…``.
        conf_threshold: as :func:`decode_yolov5`.
        input_size: ``(H, W)`` of the network input (the grid is built for it, cached per device).
        strides: the head's strides, in row order.
        capacity, params, clip, multi_label, out, stream: as :func:`decode_yolov8`.
    """
    _check_yolo(pred, "rows")
    key = ("yolox", int(input_size[0]), int(input_size[1]), tuple(int(s) for s in strides))
    with _stream_ctx(stream):
        grid = _device_table(key, lambda: yolox_grid_table(input_size, strides))
    if int(grid.shape[0]) != int(pred.shape[1]):
        raise ValueError(
            f"a YOLOX head for a {input_size[0]}x{input_size[1]} input at strides {tuple(strides)} has "
            f"{grid.shape[0]} rows, but pred has {pred.shape[1]}"
        )
    return _decode_rows(pred, conf_threshold, grid, capacity, params, clip, multi_label, out, stream)


def _head_strides(array: Any, name: str, width: int) -> tuple[int, int]:
    """(batch stride, row stride) in elements of a ``(B, N, width)`` view whose last axis is contiguous."""
    item = array.dtype.itemsize
    if array.shape[2] != width:
        raise ValueError(f"{name} must be (B, N, {width}), got {array.shape}")
    if array.strides[2] != item or array.strides[0] % item or array.strides[1] % item:
        raise ValueError(f"{name} must have a contiguous last axis, got strides {array.strides}")
    return array.strides[0] // item, array.strides[1] // item


def decode_retinaface(
    loc: Any,
    conf: Any,
    landmarks: Any,
    conf_threshold: float,
    *,
    input_size: tuple[int, int],
    priors: Any = None,
    logits: bool = False,
    variances: tuple[float, float] = RETINAFACE_VARIANCES,
    capacity: int = DEFAULT_CAPACITY,
    params: Any = None,
    clip: bool = False,
    out: Candidates | None = None,
    stream: Any = None,
) -> Candidates:
    """RetinaFace heads → 16-wide face candidates (twin of :func:`trtapps.ops.decode.decode_retinaface_reference`).

    Args:
        loc: CuPy ``(B, N, 4)``; conf ``(B, N, 2)``; landmarks ``(B, N, 10)``; float32/float16, the same
            dtype; each may be a view (for a packed ``(B, N, 16)`` output pass ``packed[..., 0:4]``,
            ``packed[..., 4:6]``, ``packed[..., 6:16]``).
        conf_threshold: keep ``face probability > conf_threshold``.
        input_size: ``(H, W)`` of the network input.
        priors: ``(N, 4)`` float32 priors (host or device); ``None`` builds biubug6's priors for *input_size*
            (cached per device).
        logits: *conf* holds logits (a 2-way softmax is applied).
        variances: biubug6's ``(0.1, 0.2)``.
        capacity, out, stream: as :func:`decode_yolov8`.
        params: ``(B, 6)`` mapping to original pixels (boxes and landmarks), or ``None``.
        clip: clip mapped coordinates (biubug6 does not).
    """
    cupy = cupy_module()
    for name, arr in (("loc", loc), ("conf", conf), ("landmarks", landmarks)):
        _check_head(arr, name, 3)
    if not (loc.dtype == conf.dtype == landmarks.dtype):
        raise ValueError(
            f"loc, conf and landmarks must share a dtype, got {loc.dtype}, {conf.dtype}, {landmarks.dtype}"
        )
    batch, num_priors = int(loc.shape[0]), int(loc.shape[1])
    if conf.shape[:2] != loc.shape[:2] or landmarks.shape[:2] != loc.shape[:2]:
        raise ValueError(f"heads disagree: loc {loc.shape}, conf {conf.shape}, landmarks {landmarks.shape}")
    if num_priors >= MAX_ANCHORS:
        raise ValueError(f"at most {MAX_ANCHORS - 1} priors are supported, got {num_priors}")
    strides = [_head_strides(a, n, w) for a, n, w in ((loc, "loc", 4), (conf, "conf", 2), (landmarks, "landmarks", 10))]
    with _stream_ctx(stream):
        if priors is None:
            key = ("retinaface", int(input_size[0]), int(input_size[1]))
            table = _device_table(key, lambda: retinaface_priors(input_size))
        else:
            table = cupy.ascontiguousarray(cupy.asarray(priors, dtype=cupy.float32))
    if table.shape != (num_priors, 4):
        raise ValueError(f"priors must be ({num_priors}, 4) for these heads, got {table.shape}")
    result = _prepare(out, batch, capacity, FACE_WIDTH, stream)
    if batch == 0 or num_priors == 0:
        return result
    args = (
        loc,
        np.int64(strides[0][0]),
        np.int32(strides[0][1]),
        conf,
        np.int64(strides[1][0]),
        np.int32(strides[1][1]),
        landmarks,
        np.int64(strides[2][0]),
        np.int32(strides[2][1]),
        np.int32(num_priors),
        table,
        np.float32(input_size[1]),
        np.float32(input_size[0]),
        np.float32(conf_threshold),
        np.int32(bool(logits)),
        np.float32(variances[0]),
        np.float32(variances[1]),
    )
    return _launch("decode_retinaface", loc, args, num_priors, params, clip, result, stream)
