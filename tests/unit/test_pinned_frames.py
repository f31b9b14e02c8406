"""Frames decoded straight into page-locked buffers (the ``direct`` staging mode), without a GPU.

The GPU side (the DMA from those buffers, and the pipeline over a real video) is in tests/gpu/test_staging_gpu.py;
here the pieces that decide *which* buffers frames land in run with a stand-in for ``cudaHostAlloc``.
"""

from __future__ import annotations

import gc
import logging
from typing import Any, ClassVar

import cv2
import numpy as np
import pytest

from conftest import shared_path
from trtapps.errors import CudaError
from trtapps.framebuffers import FREE_REFCOUNT, FrameBufferPool
from trtapps.gpu import frames as staging
from trtapps.gpu import graphs, memory
from trtapps.sources import VideoSource

needs_refcounts = pytest.mark.skipif(FREE_REFCOUNT is None, reason="buffers are never reused on this interpreter")


class FakePinned:
    """Stands in for memory.PinnedBuffer: host memory from NumPy, frees recorded."""

    freed: ClassVar[list[int]] = []

    def __init__(self, nbytes: int) -> None:
        self._memory = np.zeros(nbytes, np.uint8)
        self.nbytes = nbytes
        self.ptr = self._memory.ctypes.data
        self.closed = False

    def free(self) -> None:
        self.closed = True
        FakePinned.freed.append(self.nbytes)


@pytest.fixture
def fake_pinned(monkeypatch: pytest.MonkeyPatch) -> type[FakePinned]:
    FakePinned.freed = []
    monkeypatch.setattr(memory, "PinnedBuffer", FakePinned)
    monkeypatch.setattr(graphs, "relax_capture_mode", lambda: None)
    return FakePinned


def test_a_pinned_array_owns_its_memory_until_its_last_view_is_gone(fake_pinned: type[FakePinned]) -> None:
    array = memory.pinned_array((4, 6, 3), np.uint8)
    assert array.shape == (4, 6, 3)
    assert array.flags.c_contiguous
    assert array.flags.writeable
    array[...] = 7
    view = array[1:, ::2]
    assert memory.is_pinned_array(array)
    assert memory.is_pinned_array(view)  # a view's pixels are page-locked too
    assert not memory.is_pinned_array(np.ascontiguousarray(view))  # a copy is not
    assert not memory.is_pinned_array(np.empty(3))
    assert not memory.is_pinned_array(None)
    del array
    gc.collect()
    assert fake_pinned.freed == []  # the view keeps the memory
    assert int(view.sum()) == 7 * view.size
    del view
    gc.collect()
    assert fake_pinned.freed == [72]


def test_a_pinned_array_hands_its_buffer_back_for_reuse(fake_pinned: type[FakePinned]) -> None:
    back: list[Any] = []
    buffer = memory.PinnedBuffer(100)
    array = memory.pinned_array((3, 5), np.uint16, buffer=buffer, recycle=back.append)
    assert array.ctypes.data == buffer.ptr
    del array
    gc.collect()
    assert back == [buffer]
    assert fake_pinned.freed == []  # recycled, not freed
    with pytest.raises(ValueError, match=r"an array of shape \(6, 9\) and dtype uint16 needs 108 bytes; the buffer has 100"):
        memory.pinned_array((6, 9), np.uint16, buffer=buffer)


@needs_refcounts
def test_the_pool_takes_the_buffers_it_keeps_from_its_allocator() -> None:
    given: list[int] = []  # ids only: a reference here would keep the buffers in use

    def allocator(shape: tuple[int, ...], dtype: np.dtype[Any]) -> np.ndarray | None:
        if len(given) == 2:
            return None  # budget spent: the pool falls back to an ordinary array
        array = np.full(shape, 9, dtype)
        given.append(id(array))
        return array

    pool = FrameBufferPool(max_buffers=3, allocator=allocator)
    held = [pool.take((2, 2)) for _ in range(4)]
    assert [id(b) for b in held[:2]] == given
    assert len(pool) == 3  # the third kept buffer is an ordinary array; the fourth is the caller's alone
    assert id(held[2]) not in given
    assert not pool.owns(held[3])
    del held
    again = pool.take((2, 2))  # every buffer is free again: nothing was reused yet, so the search starts first
    assert id(again) == given[0]
    assert pool.reused == 1


@needs_refcounts
def test_the_pool_hands_out_the_buffer_after_the_last_one_and_skips_those_in_use() -> None:
    pool = FrameBufferPool(max_buffers=4)
    first = [pool.take((3,)) for _ in range(4)]
    ids = [id(b) for b in first]
    keep = first[1]  # still referenced: never handed out
    del first
    order = []
    for _ in range(6):
        buffer = pool.take((3,))
        order.append(ids.index(id(buffer)))
        del buffer
    assert order == [0, 2, 3, 0, 2, 3]  # round the ring, in order, skipping the one in use
    assert keep is not None


@needs_refcounts
def test_dropping_buffers_of_another_size_keeps_the_search_order() -> None:
    pool = FrameBufferPool(max_buffers=3)
    held = [pool.take((3,)), pool.take((5,)), pool.take((5,))]
    ids = [id(b) for b in held]
    del held
    first = pool.take((5,))  # the (3,) buffer is free and of another size: dropped on the way to the first (5,)
    assert id(first) == ids[1]
    assert len(pool) == 2
    del first
    second = pool.take((5,))  # the search goes on after the one handed out, whose index moved down by one
    assert id(second) == ids[2]


@needs_refcounts
def test_the_video_source_decodes_into_the_offered_buffers() -> None:
    offered: list[np.ndarray] = []

    def allocator(shape: tuple[int, ...], dtype: np.dtype[Any]) -> np.ndarray:
        offered.append(np.empty(shape, dtype))
        return offered[-1]

    path = shared_path("media/face_tracker.mp4")
    source = VideoSource(path, max_frames=12)
    source.use_frame_allocator(allocator, max_buffers=100)
    assert source.reader.pool.max_buffers == 100
    frames = list(source)
    assert len(frames) == 12
    # every frame, the first included (the capture announces its size), is decoded in place into an offered buffer
    assert [any(f.image is b for b in offered) for f in frames] == [True] * 12
    cap = cv2.VideoCapture(str(path))
    for frame in frames:
        ok, expected = cap.read()
        assert ok
        assert np.array_equal(frame.image, expected)
    cap.release()


def test_the_budget_bounds_page_locked_frames_and_buffers_are_reused(
    fake_pinned: type[FakePinned], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv(staging.PINNED_FRAMES_ENV, "1")  # 1 MiB: two 0.4 MiB frames, not three
    frames = staging._PinnedFrames()
    shape, dtype = (384, 384, 3), np.dtype(np.uint8)
    with caplog.at_level(logging.INFO, logger="trtapps.gpu.frames"):
        a = frames.allocate(shape, dtype)
        b = frames.allocate(shape, dtype)
        c = frames.allocate(shape, dtype)
        d = frames.allocate(shape, dtype)
    assert a is not None
    assert b is not None
    assert memory.is_pinned_array(a)
    assert c is None
    assert d is None
    size = a.nbytes
    assert frames.held == 2 * size
    assert [r.message for r in caplog.records] == [  # said once
        "frames beyond the page-locked ones are copied by the staging threads: the 1 MiB budget "
        "(TRTAPPS_PINNED_FRAMES_MB) is spent"
    ]
    address = a.ctypes.data
    del a
    gc.collect()
    assert frames.held == 2 * size  # kept for the next frame of its size, not freed
    assert fake_pinned.freed == []
    again = frames.allocate(shape, dtype)
    assert again is not None
    assert again.ctypes.data == address  # the same page-locked memory: no new page lock
    del again, b
    gc.collect()
    small = frames.allocate((300, 300, 3), dtype)  # another size, over the budget: a kept buffer is freed
    assert small is not None
    assert fake_pinned.freed == [size]
    assert frames.held == size + small.nbytes


def test_a_spent_budget_after_reuse_refuses_instead_of_failing_the_source(
    fake_pinned: type[FakePinned], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found on the GPU with 8 1080p streams: a size whose kept buffers had all been reused left an empty list
    behind, and the next over-budget frame tried to free a buffer from it ("pop from empty list")."""
    monkeypatch.setenv(staging.PINNED_FRAMES_ENV, "1")
    frames = staging._PinnedFrames()
    shape, dtype = (384, 384, 3), np.dtype(np.uint8)
    a = frames.allocate(shape, dtype)
    del a
    gc.collect()
    b = frames.allocate(shape, dtype)  # the kept buffer again
    c = frames.allocate(shape, dtype)
    assert b is not None
    assert c is not None
    assert frames.allocate(shape, dtype) is None  # over the budget, nothing kept to free: refused, no error
    assert frames.held == 2 * b.nbytes


def test_a_failed_page_lock_falls_back_to_copies(
    fake_pinned: type[FakePinned], monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(nbytes: int) -> None:
        raise CudaError("cudaHostAlloc failed: cudaErrorMemoryAllocation")

    monkeypatch.setattr(memory, "PinnedBuffer", refuse)
    frames = staging._PinnedFrames()
    assert frames.allocate((8, 8, 3), np.dtype(np.uint8)) is None
    assert frames.held == 0


def test_the_budget_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(staging.PINNED_FRAMES_ENV, raising=False)
    assert staging.pinned_frames_budget() == 1 << 30
    monkeypatch.setenv(staging.PINNED_FRAMES_ENV, "0")
    assert staging.pinned_frames_budget() == 0
    for bad in ("-1", "lots", "1.5"):
        monkeypatch.setenv(staging.PINNED_FRAMES_ENV, bad)
        with pytest.raises(ValueError, match=rf"^TRTAPPS_PINNED_FRAMES_MB='{bad}': give the page-locked frame memory"):
            staging.pinned_frames_budget()
