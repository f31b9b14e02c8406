"""The dynamic batcher: many sources, per-source order, round robin, max wait, live drops, staging."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from trtapps.batching import Batcher
from trtapps.metrics import RunSummary
from trtapps.stages import FrameFailure
from trtapps.structures import Frame


class ListFeed:
    """A source of ``n`` tiny frames; optional delay per frame, optional gate before frame ``gate_at``."""

    def __init__(self, name: str, n: int, *, delay: float = 0.0, live: bool = False,
                 gate_at: int | None = None, fail_at: tuple[int, ...] = (), shape: tuple[int, int] = (4, 6)) -> None:
        self.name = name
        self.n = n
        self.delay = delay
        self.live = live
        self.gate_at = gate_at
        self.gate = threading.Event()
        self.fail_at = fail_at
        self.shape = shape
        self.closed = False

    def __iter__(self) -> Iterator[Frame | FrameFailure]:
        for i in range(self.n):
            if self.gate_at is not None and i == self.gate_at:
                self.gate.wait(10)
            if self.delay:
                time.sleep(self.delay)
            if i in self.fail_at:
                yield FrameFailure(self.name, i, f"{self.name}: frame {i} is unreadable")
            else:
                yield Frame(np.zeros((*self.shape, 3), np.uint8), source=self.name, index=i)

    def __len__(self) -> int:
        return self.n

    def close(self) -> None:
        self.closed = True


def make(sources: list[Any], **kw: Any) -> tuple[Batcher, RunSummary, threading.Event]:
    summary, stop = RunSummary(), threading.Event()
    options: dict[str, Any] = {"max_batch": 4, "max_wait": 0.05, "capacity": 8}
    options.update(kw)
    return Batcher(sources, summary=summary, stop=stop, **options), summary, stop


def drain(batcher: Batcher, consume_delay: float = 0.0) -> list[list[Any]]:
    batcher.start()
    batches = []
    while (batch := batcher.next_batch()) is not None:
        batches.append(batch)
        if consume_delay:
            time.sleep(consume_delay)
    assert batcher.join(5)
    return batches


def by_source(batches: list[list[Any]]) -> dict[int, list[int]]:
    seen: dict[int, list[int]] = {}
    for batch in batches:
        for item in batch:
            seen.setdefault(item.source_id, []).append(item.index)
    return seen


def test_each_source_keeps_its_order_and_every_frame_arrives() -> None:
    sources = [ListFeed("a", 23, delay=0.001), ListFeed("b", 17), ListFeed("c", 5, delay=0.003)]
    batcher, summary, _ = make(sources)
    batches = drain(batcher)
    assert by_source(batches) == {0: list(range(23)), 1: list(range(17)), 2: list(range(5))}
    assert all(sum(isinstance(i, Frame) for i in b) <= 4 for b in batches)
    assert summary.frames_in == 45
    assert summary.frames_dropped == 0


def test_sources_share_batches_round_robin() -> None:
    sources = [ListFeed("a", 8, gate_at=0), ListFeed("b", 8, gate_at=0)]
    batcher, _, _ = make(sources, capacity=8)
    batcher.start()
    for s in sources:
        s.gate.set()
    deadline = time.monotonic() + 10
    while any(len(f.queue) < 8 for f in batcher.feeds):  # both queues fill up before the first batch is taken
        assert time.monotonic() < deadline
        time.sleep(0.01)
    first = batcher.next_batch()
    assert first is not None
    assert sorted(item.source_id for item in first) == [0, 0, 1, 1]
    assert [item.index for item in first if item.source_id == 0] == [0, 1]
    while batcher.next_batch() is not None:
        pass
    assert batcher.join(5)


def test_a_partly_filled_batch_leaves_after_max_wait() -> None:
    slow = ListFeed("slow", 3, gate_at=1)  # frame 0 comes at once, frame 1 only when the gate opens
    batcher, _, _ = make([slow], max_wait=0.02)
    batcher.start()
    first = batcher.next_batch()
    assert first is not None
    assert [f.index for f in first] == [0]
    slow.gate.set()
    rest = []
    while (batch := batcher.next_batch()) is not None:
        rest.extend(f.index for f in batch)
    assert rest == [1, 2]
    assert batcher.join(5)


def test_without_a_wait_limit_slow_files_still_fill_every_batch() -> None:
    import math

    slow = ListFeed("slow", 10, delay=0.02)  # slower than the batcher's default 10 ms for live sources
    batches = drain(make([slow], max_wait=math.inf)[0])
    assert [len(b) for b in batches] == [4, 4, 2]


def test_frames_with_different_keys_never_share_a_batch_and_order_holds() -> None:
    small, large = ListFeed("s", 6, shape=(4, 6)), ListFeed("l", 6, shape=(8, 8))
    batcher, _, _ = make([small, large], key=lambda f: f.image.shape)
    batches = drain(batcher)
    for batch in batches:
        assert len({item.image.shape for item in batch}) == 1
    assert by_source(batches) == {0: list(range(6)), 1: list(range(6))}


def test_read_failures_keep_their_place() -> None:
    src = ListFeed("v", 9, fail_at=(0, 4, 5))
    batcher, summary, _ = make([src])
    batches = drain(batcher)
    flat = [item for b in batches for item in b]
    assert [i.index for i in flat] == list(range(9))
    assert [i.index for i in flat if isinstance(i, FrameFailure)] == [0, 4, 5]
    assert summary.frames_in == 9


def test_a_file_source_waits_for_the_model_and_loses_nothing() -> None:
    src = ListFeed("file", 40)
    batcher, summary, _ = make([src], capacity=3)
    batches = drain(batcher, consume_delay=0.005)
    assert by_source(batches) == {0: list(range(40))}
    assert summary.frames_dropped == 0


def test_a_source_asking_for_a_longer_queue_gets_it_the_others_keep_their_share() -> None:
    roomy, plain = ListFeed("nvdec", 30, gate_at=20), ListFeed("file", 30, gate_at=20)
    roomy.min_queue = 12  # type: ignore[attr-defined]
    batcher, _, _ = make([roomy, plain], capacity=3)
    assert [f.capacity for f in batcher.feeds] == [12, 3]
    assert [f.low_water for f in batcher.feeds] == [1, 1]  # woken at half of the share: more frames per wake
    batcher.start()
    deadline = time.monotonic() + 5
    while [len(f.queue) for f in batcher.feeds] != [12, 3] and time.monotonic() < deadline:
        time.sleep(0.01)
    assert [len(f.queue) for f in batcher.feeds] == [12, 3]  # each reader stopped at its own limit
    roomy.gate.set()
    plain.gate.set()
    batches = []
    while (batch := batcher.next_batch()) is not None:
        batches.append(batch)
    assert batcher.join(5)
    assert by_source(batches) == {0: list(range(30)), 1: list(range(30))}


def test_a_live_source_drops_its_oldest_frames_counted_when_the_model_falls_behind() -> None:
    live = ListFeed("cam", 60, live=True)
    discarded: list[int] = []
    staged: list[str] = []

    def stage(frame: Frame) -> None:
        staged.append(threading.current_thread().name)

    batcher, summary, _ = make([live], capacity=3, stage=stage, discard=lambda f: discarded.append(f.index))
    batches = drain(batcher, consume_delay=0.02)
    delivered = by_source(batches)[0]
    assert delivered == sorted(delivered)  # still in order
    assert summary.frames_dropped > 0
    assert summary.dropped == {"cam": summary.frames_dropped}
    assert summary.frames_in == len(delivered) + summary.frames_dropped == 60
    assert sorted(discarded) == sorted(set(range(60)) - set(delivered))  # dropped frames give their slots back
    assert set(staged) == {"trtapps-reader-0"}  # staging runs in the reader thread


def test_stop_ends_batches_and_readers() -> None:
    endless = ListFeed("e", 10**9)
    batcher, _, stop = make([endless], capacity=2)
    batcher.start()
    assert batcher.next_batch()
    stop.set()
    batcher.wake()
    calls = 1
    while batcher.next_batch() is not None:  # what was queued may still come out, nothing more is read
        calls += 1
        assert calls <= 3
    assert batcher.join(5)
    assert batcher.drain() == []


def test_a_source_that_dies_is_reported_as_an_input_error() -> None:
    class Broken(ListFeed):
        def __iter__(self) -> Iterator[Frame | FrameFailure]:
            yield Frame(np.zeros((4, 6, 3), np.uint8), source="x", index=0)
            raise OSError("device unplugged")

    batcher, _, _ = make([Broken("x", 2), ListFeed("ok", 3)])
    batches = drain(batcher)
    assert by_source(batches) == {0: [0], 1: [0, 1, 2]}
    assert len(batcher.errors) == 1
    assert "x: reading frames failed: device unplugged" in str(batcher.errors[0])


@pytest.mark.parametrize("bad", [{"max_batch": 0}, {"capacity": 0}, {"max_wait": -1}])
def test_invalid_settings_are_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        make([ListFeed("a", 1)], **bad)


class CountingCondition(threading.Condition):
    """A condition that counts how often a waiter returned from ``wait`` (woken or timed out)."""

    def __init__(self, lock: Any) -> None:
        super().__init__(lock)
        self.returns = 0

    def wait(self, timeout: float | None = None) -> bool:
        woken = super().wait(timeout)
        self.returns += 1
        return woken


def test_blocked_readers_wake_only_for_room_in_their_own_queue() -> None:
    # 8 file sources behind a slow consumer: every reader sits on a full queue most of the time. A reader must be
    # woken when the consumer takes from *its* queue, not by every other reader's put or every batch (with one
    # shared condition, 16 NVDEC readers spent half the pipeline process's CPU waking up for nothing)
    sources = [ListFeed(f"s{i}", 30) for i in range(8)]
    batcher, _, _ = make(sources, max_batch=4, max_wait=float("inf"), capacity=2)
    rooms = []
    for feed in batcher.feeds:
        feed.room = CountingCondition(batcher._lock)
        rooms.append(feed.room)
    batches = drain(batcher, consume_delay=0.002)
    frames = sum(len(b) for b in batches)
    assert frames == 240
    # each reader waits at most once per frame the consumer took from its queue (timeouts every 0.1 s aside)
    assert sum(r.returns for r in rooms) <= frames + 8 * 5


def test_consumer_wakes_when_its_batch_can_fill_not_per_frame() -> None:
    sources = [ListFeed(f"s{i}", 64, delay=0.0005) for i in range(4)]
    batcher, _, _ = make(sources, max_batch=16, max_wait=float("inf"), capacity=32)
    batcher._ready = ready = CountingCondition(batcher._lock)
    batches = drain(batcher)
    assert sum(len(b) for b in batches) == 256
    assert all(len(b) == 16 for b in batches)  # files: full batches only
    # one wake-up per batch (plus the first item and the 0.1 s timeouts), against one per frame before
    assert ready.returns <= 3 * len(batches) + 10


def test_a_frame_with_another_key_closes_the_waiting_batch_at_once() -> None:
    # max_wait is unbounded for files: the consumer must still be woken when a frame with another key arrives,
    # or a batch of one size would wait for frames that can never join it
    small, large = ListFeed("small", 1, shape=(4, 6)), ListFeed("large", 1, shape=(8, 6), gate_at=0)
    batcher, _, _ = make([small, large], max_batch=4, max_wait=float("inf"), capacity=4,
                         key=lambda f: f.image.shape)
    batcher.start()
    threading.Timer(0.05, large.gate.set).start()
    t0 = time.monotonic()
    first = batcher.next_batch()  # "small"'s frame, waiting to fill its batch until "large"'s frame comes
    assert first is not None
    assert [f.source for f in first] == ["small"]
    assert time.monotonic() - t0 < 2.0  # not the gate's 10 s
    second = batcher.next_batch()
    assert second is not None
    assert [f.source for f in second] == ["large"]


@pytest.mark.parametrize("seed", range(40))
def test_random_mixes_of_sources_never_hang_and_account_for_every_frame(seed: int) -> None:
    # files and live sources, failures, two frame sizes (keys), slow readers, a slow consumer, every wait mode,
    # and a stop in the middle of some runs: the batcher ends, and without a stop frames in = out + dropped
    rng = np.random.default_rng(seed)
    sources = [
        ListFeed(f"s{i}", int(rng.integers(0, 40)), delay=float(rng.choice([0.0, 0.0005])), live=bool(rng.random() < 0.3),
                 fail_at=tuple(int(v) for v in rng.choice(40, 2)), shape=(4, 6) if rng.random() < 0.5 else (8, 6))
        for i in range(int(rng.integers(1, 7)))
    ]
    batcher, _, stop = make(sources, max_batch=int(rng.integers(1, 12)), capacity=int(rng.integers(1, 6)),
                            max_wait=float(rng.choice([0.0, 0.003, float("inf")])), key=lambda f: f.image.shape)
    stop_after = int(rng.choice([0, 3, 8]))
    batcher.start()
    taken, batches, t0 = 0, 0, time.monotonic()
    while (batch := batcher.next_batch()) is not None:
        taken += len(batch)
        batches += 1
        assert len({f.image.shape for f in batch if isinstance(f, Frame)}) <= 1  # one key per batch
        if rng.random() < 0.2:
            time.sleep(0.002)
        if batches == stop_after:
            stop.set()
            batcher.wake()
        assert time.monotonic() - t0 < 20, "the batcher stopped handing out batches"
    assert batcher.join(5)
    if not stop.is_set():
        assert taken + sum(f.dropped for f in batcher.feeds) == sum(s.n for s in sources)
