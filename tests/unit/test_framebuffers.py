"""Reused frame buffers (``trtapps.framebuffers``): a buffer anything still references is never handed out again.

The pool decides by reference count, so the tests hold buffers every way the pipeline does (the array itself, a
view of it, a ``Frame`` in a list, a ``memoryview``, another thread's queue) and check that the pixels they hold
never change, then that dropping the last reference makes the very same buffer come back. The real-video tests
read ``vtest.avi`` through the ``video`` source and the soak's looping source, keeping every frame (pixels must
equal plain ``cv2.VideoCapture`` reads) or dropping them (a handful of buffers serve the whole run).
"""

from __future__ import annotations

import queue
import random
import threading
from collections import deque
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import shared_path
from trtapps.bench import LoopingVideoSource
from trtapps.framebuffers import FREE_REFCOUNT, FrameBufferPool, FrameReader
from trtapps.sources import VideoSource
from trtapps.structures import Frame

SHAPE = (4, 6, 3)

needs_refcounts = pytest.mark.skipif(
    FREE_REFCOUNT is None, reason="reference counts are not trusted on this interpreter: buffers are never reused"
)


def _pixels(holder: object) -> np.ndarray:
    if isinstance(holder, list):
        return np.asarray(holder[0].image)
    if isinstance(holder, dict):
        return np.asarray(holder["host"])
    return np.asarray(holder)


def _plain_frames(path: Path, count: int) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames = []
    try:
        while len(frames) < count:
            ok, image = cap.read()
            assert ok
            frames.append(image)
    finally:
        cap.release()
    return frames


# ----------------------------------------------------------------------------------------------------------------
# the pool
# ----------------------------------------------------------------------------------------------------------------


@needs_refcounts
def test_a_buffer_comes_back_only_once_its_last_reference_is_gone() -> None:
    pool = FrameBufferPool()
    first = pool.take(SHAPE)
    first_id = id(first)  # the pool keeps the buffer alive, so its id stays its own
    second = pool.take(SHAPE)
    assert second is not first
    del first
    third = pool.take(SHAPE)
    assert id(third) == first_id  # reused: the same object
    assert third is not second
    assert (pool.allocated, pool.reused, len(pool)) == (2, 1, 2)
    assert third.flags.c_contiguous
    assert third.flags.writeable
    assert third.shape == SHAPE
    assert third.dtype == np.uint8


@needs_refcounts
@pytest.mark.parametrize("holder", ["view", "slice of a view", "frame in a list", "memoryview", "dict value"])
def test_indirect_references_block_reuse(holder: str) -> None:
    pool = FrameBufferPool()
    buffer = pool.take(SHAPE)
    buffer_id = id(buffer)
    buffer[...] = 7
    kept: object
    if holder == "view":
        kept = buffer[1:3]
    elif holder == "slice of a view":
        kept = buffer[:, ::2][1:, :, 0]  # a view of a view: its base chain ends at the buffer
    elif holder == "frame in a list":
        kept = [Frame(buffer, source="x")]
    elif holder == "memoryview":
        kept = memoryview(buffer)
    else:
        kept = {"host": buffer}
    del buffer
    for _ in range(5):
        other = pool.take(SHAPE)
        assert id(other) != buffer_id
        other[...] = 0  # what a decoder would do to it
        del other
    assert len(pool) == 2  # one held, one free and reused over and over
    assert (_pixels(kept) == 7).all()
    del kept
    assert id(pool.take(SHAPE)) == buffer_id


@needs_refcounts
def test_max_buffers_bounds_the_pool_and_the_rest_are_unpooled() -> None:
    pool = FrameBufferPool(max_buffers=2)
    held = [pool.take(SHAPE) for _ in range(5)]
    assert len(pool) == 2
    assert pool.allocated == 5
    assert [pool.owns(b) for b in held] == [True, True, False, False, False]
    pooled = {id(b) for b in held[:2]}
    del held
    again = [pool.take(SHAPE) for _ in range(2)]
    assert {id(b) for b in again} == pooled
    assert pool.allocated == 5
    assert len(pool) == 2
    assert FrameBufferPool(max_buffers=0).take(SHAPE).shape == SHAPE  # no pool at all: a plain new array


@needs_refcounts
def test_buffers_of_another_format_are_dropped_once_free() -> None:
    pool = FrameBufferPool()
    old = pool.take(SHAPE)
    spare = pool.take(SHAPE)
    del spare
    new = pool.take((2, 2, 3))  # the stream changed resolution: the free old-size buffer goes
    assert new.shape == (2, 2, 3)
    assert len(pool) == 2
    assert pool.owns(old)
    del old, new
    assert pool.take((2, 2, 3)).shape == (2, 2, 3)
    assert len(pool) == 1  # the old-size buffer went once it was free
    assert pool.take((2, 2, 3), np.float32).dtype == np.float32  # dtype counts as format too
    assert len(pool) == 1


@needs_refcounts
def test_random_holding_never_overwrites_a_held_buffer() -> None:
    rng = random.Random(0)
    pool = FrameBufferPool(max_buffers=8)
    held: dict[int, object] = {}  # tag -> the array, a view of it, or a Frame
    largest = 0
    for tag in range(2000):
        buffer = pool.take(SHAPE)
        buffer[...] = tag % 251
        choice = rng.random()
        if choice < 0.3:
            held[tag] = buffer
        elif choice < 0.45:
            held[tag] = buffer[2:]
        elif choice < 0.6:
            held[tag] = Frame(buffer, source="x", index=tag)
        del buffer
        most = 1 if (tag // 250) % 2 else 3  # phases where more frames are held than the pool keeps, and fewer
        for key in rng.sample(sorted(held), k=min(len(held), rng.randint(0, most))):
            del held[key]
        for key, value in held.items():
            array = value.image if isinstance(value, Frame) else value
            assert (np.asarray(array) == key % 251).all(), f"buffer of tag {key} overwritten at tag {tag}"
        largest = max(largest, len(held))
    # the test exercised reuse, a full pool and unpooled arrays, not just allocation
    assert pool.reused > 1000
    assert len(pool) == 8
    assert pool.allocated > 8
    assert largest > 8


@needs_refcounts
def test_frames_held_by_another_thread_are_never_overwritten() -> None:
    pool = FrameBufferPool(max_buffers=6)
    handoff: queue.Queue[Frame | None] = queue.Queue(maxsize=4)
    errors: list[str] = []

    def consumer() -> None:
        window: deque[Frame] = deque(maxlen=5)  # holds the last frames for a while, like a sink or a tracker
        while (frame := handoff.get()) is not None:
            window.append(frame)
            errors.extend(f"frame {f.index} overwritten" for f in window if f.image[0, 0, 0] != f.index % 251)

    thread = threading.Thread(target=consumer)
    thread.start()
    for index in range(3000):
        image = pool.take(SHAPE)
        image[...] = index % 251
        handoff.put(Frame(image, source="x", index=index))
        del image
    handoff.put(None)
    thread.join(timeout=30)
    assert not errors
    assert pool.reused > 0
    assert len(pool) <= 6


# ----------------------------------------------------------------------------------------------------------------
# the reader, with captures made here
# ----------------------------------------------------------------------------------------------------------------


class FakeDecoder:
    """Decodes frame *n* as an array full of *n*, into the given buffer when it fits (as OpenCV does)."""

    def __init__(self, shapes: list[tuple[int, ...]], *, honours_buffer: bool = True) -> None:
        self.shapes, self.honours_buffer = shapes, honours_buffer
        self.count = 0

    def read(self, image: np.ndarray | None = None) -> tuple[bool, np.ndarray | None]:
        if self.count >= len(self.shapes):
            return False, None
        shape = self.shapes[self.count]
        self.count += 1
        if self.honours_buffer and image is not None and image.shape == shape and image.dtype == np.uint8:
            image[...] = self.count - 1
            return True, image
        return True, np.full(shape, self.count - 1, np.uint8)


@needs_refcounts
def test_reader_decodes_in_place_after_the_first_frame_and_follows_a_resolution_change() -> None:
    reader = FrameReader(max_buffers=4)
    cap = FakeDecoder([SHAPE] * 5 + [(2, 2, 3)] * 5)
    values, owned = [], []
    while True:
        ok, image = reader.read(cap)
        if not ok:
            break
        values.append(int(image[0, 0, 0]))
        owned.append(reader.pool.owns(image))
    assert values == list(range(10))
    # the first frame and the first one of the new size are the capture's own arrays
    assert owned == [False, True, True, True, True, False, True, True, True, True]
    assert (reader.fresh, reader.in_place) == (2, 8)
    # two buffers of each size took turns (the caller holds one frame while the next is read); the old size went
    assert reader.pool.allocated == 4
    assert len(reader.pool) == 2


class AnnouncingDecoder(FakeDecoder):
    """A capture that announces a frame size (OpenCV's CAP_PROP_FRAME_WIDTH/HEIGHT), right or wrong."""

    def __init__(self, shapes: list[tuple[int, int, int]], announced: tuple[int, int]) -> None:
        super().__init__(shapes)
        self.announced = announced

    def get(self, prop: int) -> float:
        return float(self.announced[0] if prop == cv2.CAP_PROP_FRAME_WIDTH else self.announced[1])


@needs_refcounts
@pytest.mark.parametrize(("announced", "fresh"), [((SHAPE[1], SHAPE[0]), 0), ((7, 5), 1), ((0, 0), 1)])
def test_reader_decodes_the_first_frame_in_place_when_the_capture_announces_its_size(
    announced: tuple[int, int], fresh: int
) -> None:
    reader = FrameReader(max_buffers=4)
    cap = AnnouncingDecoder([SHAPE] * 6, announced)
    values = [int(reader.read(cap)[1][0, 0, 0]) for _ in range(6)]
    assert values == list(range(6))
    # a right size: every frame in place; a wrong one (or none): the first frame is the capture's own array
    assert (reader.fresh, reader.in_place) == (fresh, 6 - fresh)


def test_reader_copes_with_a_capture_that_ignores_the_buffer() -> None:
    reader = FrameReader(max_buffers=4)
    cap = FakeDecoder([SHAPE] * 20, honours_buffer=False)
    kept = [reader.read(cap)[1] for _ in range(20)]
    assert [int(k[0, 0, 0]) for k in kept] == list(range(20))
    assert reader.fresh == 20
    assert reader.in_place == 0
    assert len(reader.pool) <= 1  # one buffer offered again and again, never the captured frames


# ----------------------------------------------------------------------------------------------------------------
# real video: vtest.avi through the video source and the soak's looping source
# ----------------------------------------------------------------------------------------------------------------

N = 60


@pytest.mark.parametrize("max_buffers", [64, 8])  # 8 < N: the pool fills up and later frames are unpooled
def test_video_source_frames_kept_are_never_overwritten(max_buffers: int) -> None:
    video = shared_path("media/vtest.avi")
    source = VideoSource(video, max_frames=N, max_buffers=max_buffers)
    frames = list(source)
    expected = _plain_frames(video, N)
    assert [f.index for f in frames] == list(range(N))
    for frame, image in zip(frames, expected):
        assert np.array_equal(frame.image, image), f"frame {frame.index} differs from a plain read"
    assert len({id(f.image) for f in frames}) == N
    assert len(source.reader.pool) <= max_buffers


@needs_refcounts
def test_video_source_reuses_a_few_buffers_when_frames_are_dropped() -> None:
    video = shared_path("media/vtest.avi")
    expected = _plain_frames(video, N)
    source = VideoSource(video, max_frames=N)
    pool = source.reader.pool
    for frame in source:
        assert np.array_equal(frame.image, expected[frame.index])
        # decoded into a pooled buffer, not a new array: the first one too (the capture announces its size)
        assert pool.owns(frame.image)
    assert source.reader.in_place == N
    assert pool.allocated <= 3
    assert len(pool) <= 3


@needs_refcounts
def test_video_source_keeping_some_frames_keeps_their_pixels() -> None:
    video = shared_path("media/vtest.avi")
    expected = _plain_frames(video, N)
    kept = [f for f in VideoSource(video, max_frames=N) if f.index % 7 == 0]  # the others are dropped at once
    assert [f.index for f in kept] == list(range(0, N, 7))
    for frame in kept:
        assert np.array_equal(frame.image, expected[frame.index])


@needs_refcounts
def test_looping_video_source_reuses_buffers_and_keeps_held_frames_intact() -> None:
    video = shared_path("media/vtest.avi")
    expected = _plain_frames(video, N)
    stop = threading.Event()
    source = LoopingVideoSource(video, stop=stop)
    kept: list[Frame] = []
    for frame in source:
        assert np.array_equal(frame.image, expected[frame.index])
        if frame.index % 3 == 0:
            kept.append(frame)
        if frame.index == N - 1:
            stop.set()
    for frame in kept:
        assert np.array_equal(frame.image, expected[frame.index])
    pool = source.reader.pool
    assert source.reader.in_place == N
    assert len(pool) <= len(kept) + 3  # the kept frames' buffers plus a few in turn
    del kept, frame
    allocated = pool.allocated
    stop.clear()
    for count, _ in enumerate(source, 1):  # a second run of the same source: the buffers come back, no new ones
        if count == N:
            stop.set()
    assert pool.allocated == allocated
    assert source.reader.in_place == 2 * N


def test_looping_video_source_reuse_across_passes(tmp_path: Path) -> None:
    path = tmp_path / "six.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (32, 24))
    for value in range(6):
        writer.write(np.full((24, 32, 3), value * 40, np.uint8))
    writer.release()
    stop = threading.Event()
    source = LoopingVideoSource(path, stop=stop)
    values = []
    for frame in source:
        values.append(int(round(float(frame.image.mean()) / 40)))
        if len(values) == 20:
            stop.set()
    assert values == [i % 6 for i in range(20)]
    assert source.passes == 4
    if FREE_REFCOUNT is not None:
        assert source.reader.fresh == 0  # the capture announces its size: even the first frame is in place
        assert source.reader.in_place == 20
        assert source.reader.pool.allocated <= 3
