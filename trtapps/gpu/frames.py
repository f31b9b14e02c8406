"""Frames to the GPU: host BGR images of any sizes → device arrays.

Two ways, for two callers:

* :class:`DeviceFrameStager` — runs over sources. The pipeline offers each source page-locked frame buffers to
  decode into (:meth:`DeviceFrameStager.frame_allocator`; OpenCV's ``read`` writes into them in place, within a
  process-wide budget, ``TRTAPPS_PINNED_FRAMES_MB``). A reader thread hands every frame it reads to the stager,
  which gives the frame a device slot; a frame in page-locked memory is then queued as one async DMA on the
  reader's own stream, right there (no host copy, no other thread). Any other frame is queued on a small pool of
  copy threads (each with its own non-blocking stream), so consecutive frames of one source cross in parallel and
  the reader goes straight back to reading: a host copy into the copy thread's pinned buffer, then an async DMA.
  ``TRTAPPS_STAGE=pinned`` sends every frame through the copy threads; ``TRTAPPS_STAGE=pageable`` makes every
  copy one ``cudaMemcpyAsync`` straight from the source's array, staged by the driver (measured slower on the
  H100: see ``benchmarks/results/gpu.md``). The copies overlap inference of earlier batches
  (the H100 runs copy engines and kernels at once), and the inference thread never touches host pixels: it makes its
  stream wait for each copying thread's latest copy of the batch (one event wait per thread, not per frame). Each
  frame keeps its device slot until the pipeline has finished with it (tracker included) and releases it; the
  number of slots bounds device memory and applies back-pressure.
* :class:`FrameUploader` — single images (``predict``/``submit``): the batch is packed into a pinned slot and
  copied to one device staging buffer with a single ``cudaMemcpyAsync`` on the pipeline's stream.

Frames already on the device (a hardware decoder's) are passed through untouched.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import threading
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

from trtapps.gpu.driver import copy_to_device, record_event, wait_event
from trtapps.gpu.memory import is_pinned_array
from trtapps.structures import is_device_array

logger = logging.getLogger("trtapps.gpu.frames")

#: pinned host buffers per copy thread, used in turn (a host copy overlaps the previous frame's DMA)
PINNED_PER_COPY_THREAD = 2
#: most copy threads by default. More threads contend for the GIL with the inference thread: on the H100 machine
#: (16 cores) batch-32 level (iii) over level (i) was 0.850/0.912/0.913 with 8 threads, 0.940/0.933/0.939 with 4 and
#: 0.888/0.903/0.901 with 2 (too few to keep up), alternating in one call (benchmarks/device/ab_variants.sh)
COPY_THREADS_MAX = 4


class FrameUploader:
    """Uploads batches of ``(H, W, 3)`` uint8 frames; buffers grow to the largest batch seen and are reused.

    Args:
        slots: pinned buffers in the ring (batches whose copy may be in flight at once).
        device: CUDA device ordinal.
    """

    def __init__(self, slots: int = 3, device: int = 0) -> None:
        self.slots = slots
        self.device = device
        self._ring: Any = None
        self._staging: Any = None  # one device buffer; reuse is safe because every batch uses the same stream

    def upload(self, images: Sequence[Any], stream: Any, pinned: bool = False) -> list[Any]:
        """Device views of *images* (host NumPy or already CuPy), enqueued on *stream* (no host sync).

        ``pinned=True`` says the host images already live in pinned memory (a caller's own pinned buffers):
        they are copied straight to the device, one async copy each, without packing them first.
        """
        import cupy

        from trtapps.gpu.memory import PinnedRing

        host = [(i, im) for i, im in enumerate(images) if not is_device_array(im)]
        out: list[Any] = list(images)
        if not host:
            return out
        sizes = [im.nbytes for _, im in host]
        total = sum(sizes)
        if pinned:
            with cupy.cuda.Device(self.device):
                if self._staging is None or self._staging.size < total:
                    self._staging = cupy.empty(int(total * 1.25) + 4096, dtype=cupy.uint8)
                offset = 0
                for (i, im), n in zip(host, sizes):
                    view = self._staging[offset:offset + n]
                    view.set(im.reshape(-1), stream=stream)
                    out[i] = view.reshape(im.shape)
                    offset += n
            return out
        if self._ring is None or self._ring.nbytes < total:
            if self._ring is not None:
                self._ring.close()
            self._ring = PinnedRing(self.slots, int(total * 1.25) + 4096)
        with cupy.cuda.Device(self.device):
            if self._staging is None or self._staging.size < total:
                self._staging = cupy.empty(int(total * 1.25) + 4096, dtype=cupy.uint8)
            slot = self._ring.acquire()
            packed = slot.view((self._ring.nbytes,), np.uint8)
            offset = 0
            offsets = []
            for (_, im), n in zip(host, sizes):
                np.copyto(packed[offset:offset + n], np.ascontiguousarray(im).reshape(-1))
                offsets.append(offset)
                offset += n
            self._staging[:total].set(packed[:total], stream=stream)
            slot.release(stream)
            for (i, im), start, n in zip(host, offsets, sizes):
                out[i] = self._staging[start:start + n].reshape(im.shape)
        return out

    def close(self) -> None:
        if self._ring is not None:
            self._ring.close()
            self._ring = None
        self._staging = None


class _DeviceSlot:
    """Device memory for one frame, with the events that order its reuse."""

    __slots__ = ("buffer", "lane", "pending", "ptr", "ready", "released", "seq", "views")

    def __init__(self) -> None:
        self.buffer: Any = None
        self.ptr = 0  # the buffer's device address (raw copies need no CuPy view)
        self.views: tuple[tuple[int, ...], Any] | None = None  # (shape, view) of the last frame: sizes repeat
        self.pending: Future[None] | None = None  # the copy, queued or running on a copy thread
        # set by the copy: the copy thread's lane, the copy's number on it, and an event recorded on the lane's
        # stream after the copy (shared with later copies of the lane: waiting on a later record of it is later
        # on the same stream, so also after this copy)
        self.lane: _CopyLane | None = None
        self.seq = 0
        self.ready: Any = None
        # the pipeline's reads of the previous frame are enqueued before this point (shared by a whole batch)
        self.released: Any = None

    def view(self, shape: tuple[int, ...]) -> Any:
        """The buffer seen as a ``uint8`` array of *shape* (cached: building a CuPy view costs ~10 µs)."""
        if self.views is None or self.views[0] != shape:
            nbytes = math.prod(shape)
            self.views = (shape, self.buffer[:nbytes].reshape(shape))
        return self.views[1]


class _CopyLane:
    """One copying thread's state (a copy thread's, or a reader's that queues direct DMAs): its stream, how many
    copies it queued, its pinned buffers (copy threads only) and the last release event its stream waited for
    (consecutive frames usually come from slots released by the same batch)."""

    def __init__(self) -> None:
        import cupy

        self.stream = cupy.cuda.Stream(non_blocking=True)
        self.seq = 0
        self.event = cupy.cuda.Event(block=True, disable_timing=True)  # the pageable mode's ready event
        self.pinned: list[list[Any]] = []  # [pinned buffer, the event after its last DMA], used in turn
        self.turn = 0
        self.released: Any = None


#: how frames cross to the device:
#: ``direct`` (the default): sources decode into page-locked buffers the stager offers them
#: (:meth:`DeviceFrameStager.frame_allocator`), and such a frame crosses with one async DMA queued by the reader
#: itself, with no host copy and no copy thread; other frames (a source that takes no buffers, the pinned budget
#: spent) go as in ``pinned``;
#: ``pinned``: a host copy into a pinned buffer of a copy thread, then an async DMA (1,749 img/s through the full
#: pipeline on the H100 at batch 32, session 4);
#: ``pageable``: one ``cudaMemcpyAsync`` straight from the source's array, staged by the driver (1,148 img/s in the
#: same session)
STAGE_MODES = ("direct", "pinned", "pageable")
#: environment variable overriding the mode (e.g. to compare them on one machine)
STAGE_MODE_ENV = "TRTAPPS_STAGE"
#: environment variable bounding the page-locked memory sources decode into, in MiB, for the whole process
PINNED_FRAMES_ENV = "TRTAPPS_PINNED_FRAMES_MB"
#: its default: 1 GiB (the frames one source keeps in flight at batch 32: ~320 720p frames, ~160 1080p ones)
PINNED_FRAMES_MB = 1024


def stage_mode(mode: str | None = None) -> str:
    """*mode*, else ``TRTAPPS_STAGE``, else ``direct``; a ``ValueError`` for anything else."""
    chosen = (mode or os.environ.get(STAGE_MODE_ENV, "") or "direct").strip().lower()
    if chosen not in STAGE_MODES:
        raise ValueError(f"{STAGE_MODE_ENV}={chosen!r}: the frame staging mode is one of {', '.join(STAGE_MODES)}")
    return chosen


def pinned_frames_budget() -> int:
    """Bytes of page-locked frame buffers the process may hold (``TRTAPPS_PINNED_FRAMES_MB``, default 1 GiB).

    Raises:
        ValueError: the variable is not a whole number of MiB ≥ 0.
    """
    text = os.environ.get(PINNED_FRAMES_ENV, "").strip() or str(PINNED_FRAMES_MB)
    try:
        mib = int(text)
    except ValueError:
        mib = -1
    if mib < 0:
        raise ValueError(f"{PINNED_FRAMES_ENV}={text!r}: give the page-locked frame memory in MiB (0 turns it off)")
    return mib << 20


class _PinnedFrames:
    """The process's page-locked frame buffers, against the budget: those frames hold now, and those kept for
    reuse (a page lock costs ~1 ms per frame-sized buffer, so buffers of frames that are gone are kept, by size,
    for the next source; they are freed only to make room for a buffer of another size)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.held = 0  # bytes page-locked, in use or kept
        self._kept: dict[int, list[Any]] = {}  # nbytes → free PinnedBuffers
        self.refused = False  # the budget (or cudaHostAlloc) refused a buffer once: logged once

    def allocate(self, shape: tuple[int, ...], dtype: np.dtype[Any]) -> np.ndarray | None:
        """A page-locked array, or ``None`` when the budget is spent or ``cudaHostAlloc`` fails (the frame is then
        staged through a copy thread; nothing here may fail a source)."""
        from trtapps.gpu.graphs import relax_capture_mode
        from trtapps.gpu.memory import pinned_array

        nbytes = max(1, math.prod(shape) * dtype.itemsize)
        budget = pinned_frames_budget()
        spare: list[Any] = []
        with self.lock:
            buffer = self._take_kept(nbytes)
            if buffer is None:
                while self.held + nbytes > budget and self._kept:  # free kept buffers of other sizes first
                    size = next(iter(self._kept))
                    spare.append(self._take_kept(size))
                    self.held -= size
                if self.held + nbytes > budget:
                    self._refuse(f"the {budget >> 20} MiB budget ({PINNED_FRAMES_ENV}) is spent")
                    return None
                self.held += nbytes
        try:
            for old in spare:
                old.free()
            relax_capture_mode()  # the inference thread may be capturing a CUDA graph in global mode
            return pinned_array(shape, dtype, buffer=buffer, recycle=self._keep)
        except Exception as exc:  # out of page-locked memory: the frame is staged through a copy thread instead
            with self.lock:
                self.held -= nbytes
            if buffer is not None:
                with contextlib.suppress(Exception):
                    buffer.free()
            self._refuse(f"cudaHostAlloc failed ({exc})")
            return None

    def _take_kept(self, nbytes: int) -> Any:
        """A kept buffer of *nbytes*, or ``None`` (call with the lock held); no size is left with an empty list."""
        kept = self._kept.get(nbytes)
        if not kept:
            return None
        buffer = kept.pop()
        if not kept:
            del self._kept[nbytes]
        return buffer

    def _keep(self, buffer: Any) -> None:
        """A frame buffer nothing uses any more: kept for the next frame of its size."""
        with self.lock:
            self._kept.setdefault(buffer.nbytes, []).append(buffer)

    def _refuse(self, why: str) -> None:
        if not self.refused:
            self.refused = True
            logger.info("frames beyond the page-locked ones are copied by the staging threads: %s", why)


_PINNED_FRAMES = _PinnedFrames()


class DeviceFrameStager:
    """Copies frames to device memory as soon as they are read (see the module docstring).

    The reader thread takes a device slot (back-pressure); a frame in page-locked memory it then queues as one
    DMA on its own stream, any other frame goes to a small pool of copy threads, each with its own non-blocking
    stream, so consecutive frames of one source cross in parallel and a reader is never held up by a host copy.
    Thread-safe: any number of reader threads stage at once.

    Args:
        slots: frames that may be on the device at once (queued, batched, in flight, being finished).
        device: CUDA device ordinal.
        copy_threads: threads doing host→device copies (default: half the cores, 2 to 4; see COPY_THREADS_MAX).
        mode: ``direct``, ``pinned`` or ``pageable`` (see :data:`STAGE_MODES`; default ``TRTAPPS_STAGE`` or
            ``direct``).
    """

    SLOT_KEY = "_trtapps_device_slot"

    def __init__(self, slots: int, device: int = 0, copy_threads: int | None = None, mode: str | None = None) -> None:
        if slots < 1:
            raise ValueError(f"need at least one slot, got slots={slots}")
        import cupy

        self.device = device
        self.mode = stage_mode(mode)
        with cupy.cuda.Device(device):
            # least recently released first: the GPU has most likely finished reading its previous frame
            self._free = deque(_DeviceSlot() for _ in range(slots))
        self.slots = slots
        self.copy_threads = copy_threads or min(COPY_THREADS_MAX, max(2, (os.cpu_count() or 4) // 2))
        self._cond = threading.Condition()
        self._cancelled = False
        self._local = threading.local()  # per copying thread (copy threads, readers' direct DMAs): its lane
        self._pool = ThreadPoolExecutor(self.copy_threads, thread_name_prefix="trtapps-stage")
        self._pinned: list[Any] = []  # every copy thread's pinned buffer, freed by close()
        self._pinned_lock = threading.Lock()
        #: frames that crossed with one DMA from the source's page-locked buffer, and frames copied by a copy thread
        self.direct = 0
        self.copied = 0

    def frame_allocator(self) -> Any:
        """What sources should decode into (``None`` unless the mode is ``direct``): a callable giving page-locked
        arrays while the process's budget lasts (:data:`PINNED_FRAMES_ENV`), ``None`` after that."""
        if self.mode != "direct" or pinned_frames_budget() == 0:
            return None
        return _PINNED_FRAMES.allocate

    def stage(self, frame: Any, timeout: float = 60.0) -> None:
        """Queue the copy of ``frame.image`` to the device; ``frame.image`` becomes the device array at once.

        Its pixels may be read only after :meth:`wait` (GPU-side, no host sync once the copy is queued). The
        source's own array stays reachable as ``frame.host_image()`` (no download for sinks that draw). Waits for
        a free device slot (back-pressure); raises ``RuntimeError`` when the run is cancelled and
        ``TimeoutError`` when no slot frees up within *timeout* seconds.
        """
        import cupy

        from trtapps.gpu.graphs import relax_capture_mode
        from trtapps.structures import HOST_IMAGE_KEY

        image = frame.image
        if is_device_array(image):
            return
        # slot buffers are allocated (and old ones waited for) here, on the reader's thread, while the inference
        # thread may be capturing a CUDA graph in global mode: that would fail these calls and the source
        relax_capture_mode()
        image = np.ascontiguousarray(image)
        nbytes = image.nbytes
        direct = self.mode == "direct" and is_pinned_array(image)
        slot = self._acquire(timeout)
        try:
            if slot.buffer is None or slot.buffer.size < nbytes:
                with cupy.cuda.Device(self.device):
                    if slot.released is not None:
                        slot.released.synchronize()  # nothing may still read the old buffer
                    slot.buffer = cupy.empty(nbytes, dtype=cupy.uint8)
                    slot.ptr = int(slot.buffer.data.ptr)
                    slot.views = None
            if direct:  # one async DMA queued here, on this reader's own stream: nothing for a copy thread to do
                self._copy(slot, image, direct=True)
            else:
                slot.pending = self._pool.submit(self._copy, slot, image)
        except BaseException:
            self._give_back(slot)
            raise
        with self._pinned_lock:
            if direct:
                self.direct += 1
            else:
                self.copied += 1
        frame.meta[HOST_IMAGE_KEY] = frame.image
        frame.meta[self.SLOT_KEY] = slot
        frame.image = slot.view(image.shape)

    @staticmethod
    def wait(frames: Sequence[Any], stream: Any) -> None:
        """Make *stream* wait (on the GPU) until the copies of *frames* are complete.

        One wait per copy thread, for the latest of the batch's copies on its stream (a stream runs its copies in
        order), not one per frame: each is a driver call on the inference thread. The host waits only for copies
        not yet queued by a copy thread; a failed copy raises here.
        """
        latest: dict[int, _DeviceSlot] = {}
        for frame in frames:
            slot = frame.meta.get(DeviceFrameStager.SLOT_KEY)
            if slot is not None:
                if slot.pending is not None:
                    slot.pending.result()
                seen = latest.get(id(slot.lane))
                if seen is None or slot.seq > seen.seq:
                    latest[id(slot.lane)] = slot
        for slot in latest.values():
            wait_event(stream, slot.ready)

    def release(self, frame: Any, stream: Any) -> None:
        """Give *frame*'s slot back once *stream* has passed everything enqueued so far (reads of the frame)."""
        self.release_all([frame], stream)

    def release_all(self, frames: Sequence[Any], stream: Any) -> None:
        """:meth:`release` for several frames (a batch) with one event: one CUDA call, not one per frame."""
        import cupy

        slots = [slot for slot in (frame.meta.pop(self.SLOT_KEY, None) for frame in frames) if slot is not None]
        if not slots:
            return
        with cupy.cuda.Device(self.device):
            released = cupy.cuda.Event(block=False, disable_timing=True)
            record_event(released, stream if stream is not None else cupy.cuda.get_current_stream())
        for slot in slots:
            if slot.pending is not None:
                with contextlib.suppress(BaseException):  # a failed copy was reported by wait()
                    slot.pending.result()  # the copy thread is done with the slot
                slot.pending = None
            slot.released = released
        with self._cond:
            self._free.extend(slots)
            self._cond.notify(len(slots))

    def cancel(self) -> None:
        """Wake readers waiting for a slot (the run is stopping); :meth:`close` frees the memory later."""
        with self._cond:
            self._cancelled = True
            self._cond.notify_all()

    def close(self) -> None:
        """Finish queued copies and free the memory; call only once no thread can still stage into a slot."""
        import cupy

        self._pool.shutdown(wait=True)
        with cupy.cuda.Device(self.device):
            cupy.cuda.Device(self.device).synchronize()
        with self._cond:
            for slot in self._free:
                slot.buffer = None
            self._cond.notify_all()
        with self._pinned_lock:
            for buffer in self._pinned:
                buffer.free()
            self._pinned.clear()

    # -- internals -----------------------------------------------------------------------------------------------
    def _acquire(self, timeout: float) -> _DeviceSlot:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not self._free and not self._cancelled:
                if not self._cond.wait(timeout=max(0.0, deadline - time.monotonic())):
                    raise TimeoutError(f"no device frame slot was released within {timeout:g} s")
            if self._cancelled:
                raise RuntimeError("the run stopped while a frame waited for a device slot")
            return self._free.popleft()

    def _give_back(self, slot: _DeviceSlot) -> None:
        with self._cond:
            self._free.append(slot)
            self._cond.notify()

    def _copy(self, slot: _DeviceSlot, image: np.ndarray, direct: bool = False) -> None:
        """The frame's bytes into its slot, then one event that marks the copy done: on a copy thread, or with
        *direct* (the image is page-locked) on the reader's thread, straight from the image.

        Raw driver calls (:mod:`trtapps.gpu.driver`), two per frame: the copy and the event (plus a wait when the
        slot was released by a batch this stream has not waited for yet). The image stays referenced by the frame
        (``frame.host_image()``) until the pipeline has finished with it, so a direct copy's source is never
        reused before the DMA has read it.
        """
        nbytes = image.nbytes
        lane = self._lane()
        stream = lane.stream
        if slot.released is not None and slot.released is not lane.released:
            wait_event(stream, slot.released)  # the previous frame in this slot has been read
            lane.released = slot.released
        if direct or self.mode == "pageable":
            # direct: an async DMA from page-locked memory; pageable: the driver copies through its own pinned
            # staging and returns once the source has been read
            copy_to_device(slot.ptr, image.ctypes.data, nbytes, stream)
            done = lane.event
        else:
            host, address, done = self._pinned_host(lane, nbytes)
            np.copyto(host, image.reshape(-1))
            copy_to_device(slot.ptr, address, nbytes, stream)
        record_event(done, stream)  # frees the pinned buffer for reuse, and tells readers the frame is there
        lane.seq += 1
        slot.lane, slot.seq, slot.ready = lane, lane.seq, done

    def _lane(self) -> _CopyLane:
        lane: _CopyLane | None = getattr(self._local, "lane", None)
        if lane is None:
            import cupy

            from trtapps.gpu.graphs import relax_capture_mode

            # the inference thread may be capturing a CUDA graph in global mode, which would make this thread's
            # allocations and event waits fail; thread-local mode restricts this thread only by its own captures
            relax_capture_mode()
            cupy.cuda.Device(self.device).use()  # this pool's threads copy for this device only
            lane = self._local.lane = _CopyLane()  # on this pool's device, made current above
        return lane

    def _pinned_host(self, lane: _CopyLane, nbytes: int) -> tuple[np.ndarray, int, Any]:
        """One of *lane*'s pinned buffers (grown as needed) as an array, its address and its event, once its last
        DMA is done.

        Two buffers per thread, used in turn: the host copy of one frame overlaps the DMA of the previous one.
        """
        import cupy

        from trtapps.gpu.memory import PinnedBuffer

        turn = lane.turn
        lane.turn = (turn + 1) % PINNED_PER_COPY_THREAD
        if turn == len(lane.pinned):
            lane.pinned.append([None, cupy.cuda.Event(block=True, disable_timing=True)])
        entry = lane.pinned[turn]
        buffer, copied = entry
        if buffer is not None:
            copied.synchronize()  # its previous DMA has left the buffer
        if buffer is None or buffer.nbytes < nbytes:
            if buffer is not None:
                buffer.free()
                with self._pinned_lock:
                    self._pinned.remove(buffer)
            buffer = entry[0] = PinnedBuffer(nbytes)
            with self._pinned_lock:
                self._pinned.append(buffer)
        view: np.ndarray = buffer.view((nbytes,), np.uint8)
        return view, buffer.ptr, copied
