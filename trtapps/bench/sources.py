"""Sources made for measuring: decoded frames replayed from memory, and a video looped for a soak run.

Both are ordinary :class:`~trtapps.stages.Source` objects handed to ``Pipeline.iter_results(sources=[...])``,
so a benchmark exercises exactly the code a user's run does. They stamp every frame with the moment it is
yielded to the pipeline (``Frame.meta["bench.entered"]``, and in a :class:`LatencyRecorder` when given one),
which is where a frame's latency starts: the frame has entered the pipeline once the reader takes it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
from collections.abc import Generator, Iterator, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from trtapps.bench.latency import LatencyRecorder
from trtapps.errors import InputError
from trtapps.framebuffers import DEFAULT_MAX_BUFFERS, DecodesIntoBuffers, FrameReader
from trtapps.sources import IMAGE_EXTENSIONS
from trtapps.stages import FrameFailure
from trtapps.structures import Frame

#: ``Frame.meta`` key of the ``time.perf_counter()`` at which the source yielded the frame
ENTERED = "bench.entered"


def read_video_frames(path: Path, count: int) -> list[np.ndarray]:
    """The first *count* frames of a video, decoded once up front (decoding is not what a benchmark times).

    Raises:
        InputError: the video cannot be opened or has no readable frame.
    """
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise InputError(f"--video {path}: cannot open the video (missing, or a codec OpenCV lacks)")
    frames: list[np.ndarray] = []
    try:
        while len(frames) < count:
            ok, frame = cap.read()
            if not ok:
                break
            frames.append(frame)
    finally:
        cap.release()
    if not frames:
        raise InputError(f"--video {path}: no frame could be decoded")
    return frames


def read_image_frames(folder: Path, count: int) -> list[np.ndarray]:
    """Up to *count* images of a folder (sorted by name), decoded once up front.

    Raises:
        InputError: the folder is missing or holds no readable image.
    """
    if not folder.is_dir():
        raise InputError(f"--images {folder}: not a folder; give a folder of images")
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
    frames = []
    for path in paths:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is not None:
            frames.append(image)
        if len(frames) >= count:
            break
    if not frames:
        raise InputError(f"--images {folder}: no readable image ({', '.join(sorted(IMAGE_EXTENSIONS))})")
    return frames


class ListSource:
    """Already decoded frames yielded *total* times, cycling through the list from *offset*.

    The frames are ordinary host arrays (as a decoder leaves them), not pinned: moving them to the device is
    part of what the pipeline is measured doing (the source takes no page-locked buffers from the pipeline, so
    on the GPU path every frame goes through the staging copy threads). Each source of a multi-stream run gets
    its own *name*, which results carry back, so latencies are matched per stream.
    """

    def __init__(
        self,
        frames: Sequence[np.ndarray],
        total: int,
        name: str = "memory",
        recorder: LatencyRecorder | None = None,
        offset: int = 0,
    ) -> None:
        if not frames:
            raise ValueError("ListSource needs at least one frame")
        self.frames = list(frames)
        self.total = int(total)
        self.name = name
        self.recorder = recorder
        self.offset = int(offset)
        self.yielded = 0

    def __iter__(self) -> Iterator[Frame]:
        frames, n = self.frames, len(self.frames)
        for i in range(self.total):
            frame = Frame(frames[(self.offset + i) % n], source=self.name, index=i)
            self.yielded += 1  # counted before the yield: the pipeline has the frame even if it never asks again
            yield _entered(frame, self.recorder)

    def __len__(self) -> int:
        return self.total

    def close(self) -> None:
        """Nothing to release: the frames belong to the caller."""


class _LoopingSource:
    """What the looping sources share: a video read pass after pass until *deadline* (``time.perf_counter()``) or
    *stop*, frame indices that keep increasing across passes (every frame is distinct), each frame stamped as it
    enters the pipeline, and a pass that gives nothing taken as an error. A subclass gives one pass
    (:meth:`_pass`), numbering its items from ``self.yielded``."""

    path: Path
    name: str

    def _init_loop(self, path: Path, deadline: float | None, stop: threading.Event | None, name: str | None,
                   recorder: LatencyRecorder | None) -> None:
        self.path = Path(path)
        self.deadline = deadline
        self.stop = stop or threading.Event()
        self.name = name or self.path.name
        self.recorder = recorder
        self.yielded = 0
        self.passes = 0

    def _done(self) -> bool:
        return self.stop.is_set() or (self.deadline is not None and time.perf_counter() >= self.deadline)

    def _pass(self) -> Generator[Frame | FrameFailure, None, None]:
        """One pass over the video, items numbered from ``self.yielded`` on (it counts up as they go out)."""
        raise NotImplementedError

    def __iter__(self) -> Iterator[Frame | FrameFailure]:
        while not self._done():
            got = 0
            with contextlib.closing(self._pass()) as items:  # closed early: the pass releases its decoder now
                for item in items:
                    got += 1
                    self.yielded += 1
                    yield item if isinstance(item, FrameFailure) else _entered(item, self.recorder)
                    del item
                    if self._done():
                        break
            self.passes += 1
            if got == 0 and not self._done():
                raise InputError(f"{self.path}: a whole pass over the video gave no frame")

    def __len__(self) -> int:
        return 0  # unknown in advance: the run is bounded by time

    def close(self) -> None:
        self.stop.set()


class LoopingVideoSource(_LoopingSource, DecodesIntoBuffers):
    """A video decoded with OpenCV over and over, until *deadline* (``time.perf_counter()``) or *stop*.

    The soak run's input: decoding stays in the loop (a leak in the decoder path shows up too), the file is
    reopened at its end, and frame indices keep increasing across passes so every frame is distinct. Frames are
    decoded into reused buffers (:class:`~trtapps.framebuffers.FrameReader`, at most *max_buffers* kept, across
    passes), as the ``video`` source does: a new array per frame fragments the heap over a long run.

    Raises:
        InputError: the video cannot be opened, or a whole pass yields no frame.
    """

    def __init__(
        self,
        path: Path,
        deadline: float | None = None,
        stop: threading.Event | None = None,
        name: str | None = None,
        recorder: LatencyRecorder | None = None,
        max_buffers: int = DEFAULT_MAX_BUFFERS,
    ) -> None:
        self._init_loop(path, deadline, stop, name, recorder)
        self.reader = FrameReader(max_buffers=max_buffers)
        self._check_opens()

    def _check_opens(self) -> None:
        cap = cv2.VideoCapture(str(self.path))
        try:
            if not cap.isOpened():
                raise InputError(f"{self.path}: cannot open the video (missing, or a codec OpenCV lacks)")
        finally:
            cap.release()

    def _pass(self) -> Generator[Frame, None, None]:
        cap = cv2.VideoCapture(str(self.path))
        try:
            while True:
                ok, image = self.reader.read(cap)
                if not ok:
                    return
                yield Frame(image, source=self.name, index=self.yielded)
        finally:
            cap.release()


class LoopingNvdecSource(_LoopingSource):
    """A video decoded by NVDEC over and over, until *deadline* (``time.perf_counter()``) or *stop*: the NVDEC
    soak's input (:class:`~trtapps.gpu.nvdec.NvdecSource`, frames in device memory as NV12).

    Each pass iterates the NVDEC source again; with worker processes (*worker* ``process``, or ``auto`` under CUDA
    MPS) that is a new video for the worker pool each pass, so starting, sharing and retiring decoding processes
    is soaked too. Frame indices keep increasing across passes; a frame that failed to decode is passed on as the
    failure it is (the soak's verdict counts it).

    Raises:
        BackendUnavailableError: NVDEC cannot decode the video here (the reason in one line).
        InputError: a whole pass yields no frame.
    """

    def __init__(
        self,
        path: Path,
        deadline: float | None = None,
        stop: threading.Event | None = None,
        name: str | None = None,
        recorder: LatencyRecorder | None = None,
        device: int = 0,
        worker: str | None = None,
        processes: int | None = None,
    ) -> None:
        from trtapps.errors import BackendUnavailableError
        from trtapps.gpu.nvdec import NvdecSource, NvdecUnavailable

        self._init_loop(path, deadline, stop, name, recorder)
        try:
            self.source = NvdecSource(self.path, device=device, worker=worker, processes=processes)
        except NvdecUnavailable as exc:
            raise BackendUnavailableError(f"{self.path}: NVDEC cannot decode it here: {exc}") from None

    def _pass(self) -> Generator[Frame | FrameFailure, None, None]:
        for item in self.source:
            if isinstance(item, FrameFailure):
                yield dataclasses.replace(item, source=self.name, index=self.yielded)
            else:
                yield dataclasses.replace(item, source=self.name, index=self.yielded, meta=dict(item.meta))
            del item

    def describe(self) -> dict[str, Any]:
        return self.source.describe()

    def close(self) -> None:
        super().close()
        self.source.close()


def _entered(frame: Frame, recorder: LatencyRecorder | None) -> Frame:
    """Stamp the frame as entering the pipeline now (the last thing before it is yielded)."""
    now = time.perf_counter()
    frame.meta[ENTERED] = now
    if recorder is not None:
        recorder.entered(frame.source, frame.index, now)
    return frame
