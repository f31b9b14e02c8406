"""Many sources, one model: a reader thread per source and a dynamic batcher between them and the runner.

Each source is read by its own thread into its own bounded queue, so a slow camera never holds up a file and N
streams decode in parallel. :meth:`Batcher.next_batch` builds one batch from the heads of all queues in
turn (round robin, so every source gets its share), up to ``max_batch`` frames; when fewer are ready it waits at
most ``max_wait`` seconds for more, which bounds the latency a partly filled batch adds. Frames only ever leave a
queue from its head, so **each source's frames stay in order** through the whole pipeline.

Back-pressure is per source. A file source blocks when its queue is full: nothing is lost, reading simply waits
for the model. A live source (``source.live`` is true: cameras, network streams) cannot be paused, so a full
queue drops its *oldest* frame, which is counted (``RunSummary.frames_dropped`` and per source in
``RunSummary.dropped``) and reported: frames in = frames out + frames dropped, always.

Optionally each frame is *staged* by the thread that read it (the GPU data path copies it to device memory
there, see :class:`trtapps.gpu.frames.DeviceFrameStager`), so the inference thread receives frames ready to use.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from trtapps.errors import InputError, UserError
from trtapps.metrics import RunSummary, Stopwatch
from trtapps.stages import FrameFailure, Source
from trtapps.structures import Frame

Item = Frame | FrameFailure


class _Feed:
    """One source's queue and state (guarded by the batcher's lock); its reader waits on ``room``."""

    __slots__ = ("capacity", "done", "dropped", "live", "low_water", "name", "queue", "room", "source", "source_id")

    def __init__(self, source: Source, source_id: int, capacity: int, lock: threading.Lock) -> None:
        self.source = source
        self.source_id = source_id
        self.name = str(getattr(source, "name", type(source).__name__))
        self.live = bool(getattr(source, "live", False))
        self.capacity = max(capacity, int(getattr(source, "min_queue", 0) or 0))
        # a reader blocked on a full queue is woken once it has drained to here, and then refills several frames
        # in a row, instead of waking (a futex, a context switch, the GIL) for every frame taken. Half of the
        # source's share, not of a longer min_queue: such a queue refills more frames per wake (12 of 16 for an
        # NVDEC source at 16 streams, as measured in session 13) and still keeps its share's half in reserve
        self.low_water = capacity // 2
        self.queue: deque[Item] = deque()
        self.done = False
        self.dropped = 0
        self.room = threading.Condition(lock)  # notified when the consumer takes from this queue


class Batcher:
    """Reads *sources* concurrently and hands out batches (see the module docstring).

    Args:
        sources: the run's sources; ``Frame.source_id`` becomes each one's position.
        max_batch: frames per batch at most.
        max_wait: seconds a partly filled batch waits for more frames (``math.inf``: until it is full or the
            sources have ended).
        capacity: frames queued per source at most (more for a source whose ``min_queue`` says so: the fewer
            frames a queue holds, the more often its reader blocks on it and is woken, and with 16 NVDEC streams
            the readers' wake-ups were a third of the pipeline process's CPU).
        summary: counts frames in/dropped and the read/stage times.
        stop: set to stop reading (Ctrl-C, an error, the consumer gave up).
        key: frames batch together only when their keys are equal (``App.batch_key``).
        stage: called on each frame in its reader thread before it is queued (e.g. the copy to the GPU).
        discard: called on a frame that is dropped or abandoned after staging (e.g. to free its GPU slot).
    """

    def __init__(
        self,
        sources: Sequence[Source],
        *,
        max_batch: int,
        max_wait: float,
        capacity: int,
        summary: RunSummary,
        stop: threading.Event,
        key: Callable[[Frame], Any] = lambda frame: None,
        stage: Callable[[Frame], None] | None = None,
        discard: Callable[[Frame], None] | None = None,
    ) -> None:
        if max_batch < 1 or capacity < 1 or max_wait < 0:
            raise ValueError(f"invalid max_batch={max_batch}, capacity={capacity} or max_wait={max_wait}")
        self.max_batch = max_batch
        self.max_wait = max_wait
        self.summary = summary
        self.stop = stop
        self.key = key
        self.stage = stage
        self.discard = discard
        # One lock, one condition per waiter: each reader waits on its feed's ``room`` and is woken only when
        # the consumer takes from its queue; the consumer waits on ``_ready`` and is woken only when what it
        # waits for is there (``_want`` items queued, a key that closes its batch, a source that ended). With one
        # condition for all, every put and every batch woke every blocked reader: with 16 NVDEC streams half of
        # the pipeline process's on-CPU samples were readers waking up to find their queue still full (session 10).
        self._lock = threading.Lock()
        self._ready = threading.Condition(self._lock)
        self.feeds = [_Feed(source, i, capacity, self._lock) for i, source in enumerate(sources)]
        self.errors: list[BaseException] = []
        self._queued = 0  # items in all queues
        self._want = 1  # items the waiting consumer needs before it is worth waking
        self._batch_key: Any = _UNSET  # the key of the batch the consumer is filling (a different key closes it)
        self._turn = 0  # the feed a batch starts from (round robin)
        self._threads: list[threading.Thread] = []

    # -- readers ---------------------------------------------------------------------------------------------------
    def start(self) -> None:
        for feed in self.feeds:
            thread = threading.Thread(
                target=self._read, args=(feed,), name=f"trtapps-reader-{feed.source_id}", daemon=True
            )
            self._threads.append(thread)
            thread.start()

    def join(self, timeout: float) -> bool:
        """Wait for the readers to end (a live source may sit in a blocking read up to its own timeout)."""
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        return not any(t.is_alive() for t in self._threads)

    def wake(self) -> None:
        """Wake every waiting thread (call after setting ``stop``)."""
        with self._lock:
            self._ready.notify_all()
            for feed in self.feeds:
                feed.room.notify_all()

    def _read(self, feed: _Feed) -> None:
        try:
            iterator = iter(feed.source)
            while not self.stop.is_set():
                t0 = time.perf_counter()
                try:
                    item = next(iterator)
                except StopIteration:
                    break
                self.summary.add_time("read", time.perf_counter() - t0, 1)
                if isinstance(item, FrameFailure):
                    item = FrameFailure(item.source, item.index, item.error, feed.source_id)
                else:
                    item.source_id = feed.source_id
                self.summary.count(frames_in=1)
                if self.stage is not None and isinstance(item, Frame):
                    with Stopwatch(self.summary, "stage", 1):
                        self.stage(item)
                self._put(feed, item)
        except BaseException as exc:  # reported by the consumer; a source that dies mid-run is an input error
            if not self.stop.is_set():
                self.errors.append(exc if isinstance(exc, UserError) else InputError(f"{feed.name}: reading "
                                                                                     f"frames failed: {exc}"))
        finally:
            with self._lock:
                feed.done = True
                self._ready.notify_all()

    def _put(self, feed: _Feed, item: Item) -> None:
        dropped: Item | None = None
        with self._lock:
            while len(feed.queue) >= feed.capacity and not self.stop.is_set():
                if feed.live:  # a live source cannot wait: its oldest queued frame makes room
                    dropped = feed.queue.popleft()
                    self._queued -= 1
                    feed.dropped += 1
                    self.summary.count_drop(feed.name)
                    break
                feed.room.wait(timeout=0.1)
            if self.stop.is_set():
                abandoned: Item | None = item
            else:
                feed.queue.append(item)
                self._queued += 1
                abandoned = None
                if self._queued >= self._want or self._closes_batch(item):
                    self._ready.notify()
        for lost in (dropped, abandoned):
            if isinstance(lost, Frame) and self.discard is not None:
                self.discard(lost)

    def _closes_batch(self, item: Item) -> bool:
        """Whether *item* ends the batch the consumer is filling (a frame whose key differs from the batch's)."""
        return self._batch_key is not _UNSET and isinstance(item, Frame) and self.key(item) != self._batch_key

    # -- batches ---------------------------------------------------------------------------------------------------
    def next_batch(self) -> list[Item] | None:
        """The next batch: frames (and read failures, in their place) from the queues' heads.

        Returns ``None`` once every source has ended and every queue is empty, or when ``stop`` is set.
        At least one item is returned otherwise; at most ``max_batch`` frames.
        """
        batch: list[Item] = []
        with self._lock:
            while not self._queued:
                if self.stop.is_set() or all(f.done for f in self.feeds):
                    return None
                self._want = 1
                self._ready.wait(timeout=0.1)
            deadline = time.monotonic() + self.max_wait
            key: Any = _UNSET
            try:
                while True:
                    key = self._take(batch, key)
                    frames = sum(1 for item in batch if isinstance(item, Frame))
                    if frames >= self.max_batch or self.stop.is_set():
                        break
                    if self._queued:  # heads left whose key does not match: batch them next
                        break
                    if all(f.done for f in self.feeds):
                        break
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    # woken when the batch can be filled, a frame with another key or a source's end comes, and
                    # regularly to notice stop
                    self._want, self._batch_key = self.max_batch - frames, key
                    self._ready.wait(timeout=min(remaining, 0.1))
            finally:
                self._want, self._batch_key = 1, _UNSET
            self._turn = (self._turn + 1) % len(self.feeds)
        return batch

    def _take(self, batch: list[Item], key: Any) -> Any:
        """Move head items into *batch*, one per feed per round, while they fit; returns the batch's key."""
        frames = sum(1 for item in batch if isinstance(item, Frame))
        n = len(self.feeds)
        progressed = True
        while progressed and frames < self.max_batch and len(batch) < 4 * self.max_batch:
            progressed = False
            for k in range(n):
                feed = self.feeds[(self._turn + k) % n]
                if not feed.queue:
                    continue
                head = feed.queue[0]
                if isinstance(head, FrameFailure):
                    batch.append(self._pop(feed))
                    progressed = True
                    continue
                head_key = self.key(head)
                if key is not _UNSET and head_key != key:
                    continue
                key = head_key
                batch.append(self._pop(feed))
                frames += 1
                progressed = True
                if frames >= self.max_batch:
                    break
        return key

    def _pop(self, feed: _Feed) -> Item:
        """The head of *feed*'s queue, removed; its reader, if blocked on a full queue, is woken when the queue
        reaches its low-water mark (lock held)."""
        self._queued -= 1
        item = feed.queue.popleft()
        if len(feed.queue) == feed.low_water:
            feed.room.notify()
        return item

    def drain(self) -> list[Item]:
        """Remove and return whatever is still queued (the run is stopping)."""
        with self._lock:
            items = [item for f in self.feeds for item in f.queue]
            for f in self.feeds:
                f.queue.clear()
                f.room.notify_all()
            self._queued = 0
        return items


class _Unset:
    def __repr__(self) -> str:
        return "<unset>"


_UNSET: Any = _Unset()
