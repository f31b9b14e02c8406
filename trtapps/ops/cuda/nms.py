"""Batched exact greedy NMS on the GPU and the one compact device→host copy per batch.

:func:`nms_batched` runs, on one stream and without any host synchronisation:

1. a per-image sort of the candidates by score descending, anchor ascending, class ascending (one block per
   image, a bitonic sort of the image's own candidates: in shared memory up to 4096 of them, in a global
   scratch above that; no library sort, whose launches, allocations and host calls cost more than the kernel
   on a pipeline's inference thread); the key is unique, so the result is deterministic whatever order the
   decode's ``atomicAdd`` compaction left;
2. one launch computing 64-bit suppression masks for all images (IoU in float64, exactly as
   :func:`trtapps.ops.nms.nms`: class-aware through the ``MAX_WH`` = 7680 coordinate offset, or agnostic,
   optional legacy ``+1`` areas);
3. one launch where a warp per image scans the masks greedily (a kept box suppresses the later ones whose IoU
   with it is greater than the threshold), keeps at most ``max_det``, and gathers the kept records — mapped
   back to original pixels when ``params`` is given — into a compact buffer.

The compact buffer (:class:`CompactDetections`) is a single float32 allocation holding the kept counts, the
candidate counts and the ``(B, max_det, width)`` records, so :func:`download_compact` needs one
``cudaMemcpyAsync`` into pinned memory per batch.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from trtapps.gpu.kernels import cupy_module, get_function
from trtapps.ops.cuda.decode import Candidates, params_arg
from trtapps.ops.decode import FACE_WIDTH, YOLO_ANCHOR_COL, YOLO_CLASS_COL, YOLO_WIDTH, records_to_detections
from trtapps.ops.nms import MAX_WH
from trtapps.structures import Detections

_SOURCES = ("common.cuh", "nms.cu")
#: most candidates of one image sorted in shared memory (4096 keys + slots = 40 KiB); more sort in global memory
SHARED_SORT_MAX = 4096
#: largest supported capacity (the scan keeps one bit per candidate in shared memory)
MAX_CAPACITY = 1 << 18
_SORT_THREADS = 512


def _stream_ctx(stream: Any) -> Any:
    return contextlib.nullcontext() if stream is None else stream


@dataclass(frozen=True)
class CompactDetections:
    """Final detections of a batch on the device, in one float32 allocation.

    Attributes:
        storage: ``(2·B + B·max_det·width,)`` float32, the whole buffer (what :func:`download_compact` copies).
        kept: ``(B,)`` int32 view: detections kept per image (rows ``< kept[b]`` of ``records[b]`` are valid,
            best score first; the other rows are zero).
        found: ``(B,)`` int32 view: candidates the decode found per image (``> capacity``: some were lost).
        records: ``(B, max_det, width)`` float32 view (layouts in :mod:`trtapps.ops.decode`).
        capacity: the candidate capacity the NMS ran with.
    """

    storage: Any
    kept: Any
    found: Any
    records: Any
    capacity: int

    @classmethod
    def allocate(cls, batch: int, max_det: int, width: int, capacity: int = 0) -> CompactDetections:
        """A new buffer on the current device (contents undefined until :func:`nms_batched` writes it)."""
        cupy = cupy_module()
        storage = cupy.empty((2 * batch + batch * max_det * width,), dtype=cupy.float32)
        return cls.from_storage(storage, batch, max_det, width, capacity)

    @classmethod
    def from_storage(cls, storage: Any, batch: int, max_det: int, width: int, capacity: int = 0) -> CompactDetections:
        """Views over an existing ``storage`` array (device or host)."""
        kept = storage[:batch].view(np.int32)
        found = storage[batch : 2 * batch].view(np.int32)
        records = storage[2 * batch :].reshape(batch, max_det, width)
        return cls(storage, kept, found, records, capacity)

    @property
    def batch(self) -> int:
        return int(self.records.shape[0])

    @property
    def max_det(self) -> int:
        return int(self.records.shape[1])

    @property
    def width(self) -> int:
        return int(self.records.shape[2])


@dataclass(frozen=True)
class HostCompact:
    """:class:`CompactDetections` copied to the host (NumPy views of one pinned buffer).

    The arrays are views: they change when the same pinned buffer is reused for a later batch.

    Attributes:
        kept: ``(B,)`` int32.
        found: ``(B,)`` int32.
        records: ``(B, max_det, width)`` float32.
        capacity: the candidate capacity of the decode.
        storage: the pinned ``(2·B + B·max_det·width,)`` float32 buffer (pass it back to
            :func:`download_compact` as ``out`` to reuse it).
    """

    kept: np.ndarray
    found: np.ndarray
    records: np.ndarray
    capacity: int
    storage: np.ndarray

    @property
    def overflowed(self) -> np.ndarray:
        """``(B,)`` bool: images whose decode found more candidates than the buffer held."""
        return self.found > self.capacity

    def records_of(self, b: int) -> np.ndarray:
        """The ``(kept[b], width)`` records of image *b* (a view)."""
        return self.records[b, : int(self.kept[b])]

    def detections(self, b: int) -> Detections:
        """Image *b* as host :class:`~trtapps.structures.Detections` (copies)."""
        return records_to_detections(np.array(self.records_of(b)))


def _next_pow2(n: int) -> int:
    p = 1
    while p < n:
        p <<= 1
    return p


def nms_batched(
    candidates: Candidates,
    iou_threshold: float,
    *,
    max_det: int = 300,
    class_aware: bool = True,
    plus_one: bool = False,
    params: Any = None,
    clip: bool = True,
    out: CompactDetections | None = None,
    stream: Any = None,
) -> CompactDetections:
    """Greedy NMS of every image of a batch (twin of :func:`trtapps.ops.decode.nms_reference`).

    Args:
        candidates: the decode's buffers (7-wide YOLO or 16-wide face records).
        iou_threshold: an IoU greater than this suppresses.
        max_det: detections kept per image.
        class_aware: suppress only within a class (YOLO records; face records are always agnostic).
        plus_one: legacy ``+1`` pixel areas (RetinaFace's ``py_cpu_nms``).
        params: ``(B, 6)`` float32 mapping parameters (:mod:`trtapps.ops.decode`) applied to the kept
            records (Ultralytics order: NMS in letterbox space, then ``scale_boxes``), or ``None`` when the
            decode already mapped them.
        clip: clip mapped coordinates to the image.
        out: reuse this compact buffer (same batch, ``max_det`` and width).
        stream: ``cupy.cuda.Stream`` (current stream when ``None``).

    Returns:
        The compact result, on the device; nothing has been synchronised.
    """
    cupy = cupy_module()
    records, counts = candidates.records, candidates.counts
    batch, capacity, width = (int(v) for v in records.shape)
    if width not in (YOLO_WIDTH, FACE_WIDTH) or records.dtype != np.float32:
        raise ValueError(f"records must be (B, capacity, {YOLO_WIDTH} or {FACE_WIDTH}) float32, got {records.shape}")
    if counts.shape != (batch,) or counts.dtype != np.int32:
        raise ValueError(f"counts must be ({batch},) int32, got {counts.shape} {counts.dtype}")
    if capacity > MAX_CAPACITY:
        raise ValueError(f"a capacity of {capacity} exceeds the {MAX_CAPACITY} candidates NMS supports")
    if max_det < 1:
        raise ValueError(f"max_det must be at least 1, got {max_det}")
    yolo = width == YOLO_WIDTH
    class_col = YOLO_CLASS_COL if yolo else -1
    anchor_col = YOLO_ANCHOR_COL if yolo else FACE_WIDTH - 1
    words = (capacity + 63) // 64

    with _stream_ctx(stream):
        if out is None:
            out = CompactDetections.allocate(batch, max_det, width, capacity)
        elif (out.batch, out.max_det, out.width) != (batch, max_det, width):
            raise ValueError(
                f"out holds ({out.batch}, {out.max_det}, {out.width}), this batch needs ({batch}, {max_det}, {width})"
            )
        else:
            out = CompactDetections(out.storage, out.kept, out.found, out.records, capacity)
        if batch == 0:
            return out
        p_arg = params_arg(params, batch, stream)

        # 1. per-image order: slot of the r-th best candidate
        order = cupy.empty((batch, capacity), dtype=cupy.int32)
        smax = min(_next_pow2(capacity), SHARED_SORT_MAX)
        if capacity > SHARED_SORT_MAX:  # scratch for images with more candidates than shared memory holds
            gstride = _next_pow2(capacity)
            gkey: Any = cupy.empty((batch, gstride), dtype=cupy.uint64)
            gslot: Any = cupy.empty((batch, gstride), dtype=cupy.int32)
        else:
            gstride, gkey, gslot = 0, np.uint64(0), np.uint64(0)
        sort = get_function(_SOURCES, "sort_candidates")
        sort(
            (batch,),
            (_SORT_THREADS,),
            (
                records,
                counts,
                np.int32(capacity),
                np.int32(width),
                np.int32(class_col),
                np.int32(anchor_col),
                np.int32(smax),
                gkey,
                gslot,
                np.int32(gstride),
                order,
            ),
            shared_mem=smax * 8 + smax * 2,
            stream=stream,
        )

        # 2. suppression masks of all images
        mask = cupy.empty((batch, capacity, words), dtype=cupy.uint64)
        mask_kernel = get_function(_SOURCES, "nms_mask")
        mask_kernel(
            (words, words, batch),
            (64,),
            (
                records,
                counts,
                order,
                np.int32(capacity),
                np.int32(width),
                np.int32(class_col),
                np.int32(bool(class_aware) and yolo),
                np.float64(MAX_WH),
                np.float64(1.0 if plus_one else 0.0),
                np.float64(iou_threshold),
                np.int32(words),
                mask,
            ),
            stream=stream,
        )

        # 3. greedy scan + gather into the compact buffer
        scan = get_function(_SOURCES, "nms_scan_gather")
        scan(
            (batch,),
            (32,),
            (
                records,
                counts,
                order,
                mask,
                np.int32(capacity),
                np.int32(width),
                np.int32(words),
                np.int32(max_det),
                p_arg,
                np.int32(bool(clip)),
                np.int32(not yolo),
                out.records,
                out.kept,
                out.found,
            ),
            shared_mem=words * 8,
            stream=stream,
        )
    return out


def download_compact(
    compact: CompactDetections,
    *,
    out: np.ndarray | None = None,
    stream: Any = None,
    blocking: bool = True,
) -> HostCompact:
    """Copy a compact result to the host with one device→host copy.

    Args:
        compact: :func:`nms_batched`'s result.
        out: a pinned ``float32`` host array of ``compact.storage.size`` elements to copy into (reuse
            ``HostCompact.storage`` of an earlier batch); ``None`` allocates one (``cupyx.empty_pinned``).
        stream: the stream the copy is queued on (current stream when ``None``); it must be the stream (or
            follow the stream) that ran :func:`nms_batched`.
        blocking: wait for the copy (``False``: the caller synchronises the stream or an event before reading).

    Returns:
        :class:`HostCompact` views of *out*.
    """
    cupy = cupy_module()
    import cupyx

    size = int(compact.storage.size)
    if out is None:
        out = cupyx.empty_pinned((size,), dtype=np.float32)
    elif out.dtype != np.float32 or out.shape != (size,):
        raise ValueError(f"out must be ({size},) float32 pinned memory, got {out.shape} {out.dtype}")
    compact.storage.get(stream=stream or cupy.cuda.get_current_stream(), out=out, blocking=blocking)
    view = CompactDetections.from_storage(out, compact.batch, compact.max_det, compact.width, compact.capacity)
    return HostCompact(view.kept, view.found, view.records, compact.capacity, out)


class PendingCompact:
    """A compact result on its way to pinned host memory: the copy is queued, nobody waits for it yet.

    The pipeline queues the next batch on the GPU before it reads this one, so the GPU never idles while the host
    turns results into :class:`~trtapps.structures.Detections`. :meth:`wait` sleeps until the copy is done (a
    blocking-sync event: the thread sleeps, it does not spin); :meth:`release` hands the pinned buffer back to its
    :class:`~trtapps.ops.cuda.buffers.PinnedStorage` once the results have been copied out.

    Args:
        compact: :func:`nms_batched`'s result.
        storage: where the pinned buffer comes from and returns to.
        stream: the stream that ran :func:`nms_batched`; the copy and the event are queued on it.
    """

    def __init__(self, compact: CompactDetections, storage: Any, stream: Any) -> None:
        cupy = cupy_module()
        self._storage = storage
        self._buffer = storage.take(int(compact.storage.size))
        self._host = download_compact(compact, out=self._buffer, stream=stream, blocking=False)
        self._done = cupy.cuda.Event(block=True, disable_timing=True)
        self._done.record(stream)

    def wait(self) -> HostCompact:
        """The host copy, once the GPU has written it (its arrays are valid until :meth:`release`)."""
        from trtapps.gpu.graphs import relax_capture_mode

        relax_capture_mode()  # this thread may wait while the inference thread captures a CUDA graph
        self._done.synchronize()
        return self._host

    def release(self) -> None:
        """Give the pinned buffer back (call once, after the results have been copied out of it)."""
        if self._buffer is not None:
            self._storage.give_back(self._buffer)
            self._buffer = None
