"""Run accounting: frames in/out/failed and time spent per stage."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any


@dataclass
class StageTimer:
    """Wall time spent in one stage and how many frames went through it."""

    seconds: float = 0.0
    frames: int = 0
    calls: int = 0

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    @property
    def ms_per_frame(self) -> float:
        return 1000.0 * self.seconds / self.frames if self.frames else 0.0


#: failed frames a run summary lists (it counts all of them)
FAILURES_KEPT = 1000


@dataclass
class RunSummary:
    """What a run did. ``frames_in == frames_out + frames_dropped + frames_unfinished`` holds at the end of every
    run: failed frames are written too, only live sources drop frames (the oldest queued, when the model falls
    behind), and only a run that stopped early (Ctrl-C, an error, ``on_error: abort``) leaves frames unfinished.

    Attributes:
        frames_in: frames the sources delivered, including frames that failed to decode.
        frames_out: frame results written to the sinks.
        frames_failed: frames recorded with an error (unreadable, or a stage failed on them).
        frames_dropped: frames of live sources dropped because their queue was full; ``dropped`` per source.
        frames_unfinished: frames read from the sources but neither written nor dropped because the run stopped
            early (they were queued or in the batch being processed).
        detections: total detections written.
        stages: time per stage (read, stage, upload, preprocess, infer, decode, results, postprocess, track,
            write; on the GPU path the model stages are host enqueue times and ``results`` the wait for them).
        backend: the inference backend that ran.
        staging: on the GPU path, how host frames crossed to the device: ``direct`` (one DMA from the page-locked
            buffer the source decoded into) and ``copied`` (through a staging thread's copy); ``None`` elsewhere.
        error: why the run stopped early (``"interrupted"`` after Ctrl-C), or ``None``.
        sources: per source, its name and type and what its ``describe()`` says (e.g. ``decoder: nvdec``,
            ``decode_worker: process``).
        failures: the first :data:`FAILURES_KEPT` failed frames (source, frame, error); ``frames_failed``
            counts them all.
        cuda_mps: the CUDA MPS control pipe the run started or joined for ``cuda_mps: start``, else ``None``.
    """

    frames_in: int = 0
    frames_out: int = 0
    frames_failed: int = 0
    frames_dropped: int = 0
    frames_unfinished: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    detections: int = 0
    started: float = field(default_factory=time.perf_counter)
    finished: float | None = None
    stages: dict[str, StageTimer] = field(default_factory=lambda: defaultdict(StageTimer))
    backend: str | None = None
    device: str | None = None
    staging: dict[str, int] | None = None
    error: str | None = None
    failures: list[dict[str, Any]] = field(default_factory=list)
    sources: list[dict[str, Any]] = field(default_factory=list)
    cuda_mps: str | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def count(self, **increments: int) -> None:
        """Add to counters from any thread, e.g. ``count(frames_in=1)``."""
        with self._lock:
            for name, n in increments.items():
                setattr(self, name, getattr(self, name) + n)

    def add_failure(self, source: str, frame: int, error: str) -> None:
        """Count a failed frame; the first :data:`FAILURES_KEPT` are listed (a long live run that keeps failing
        must not grow without bound; the JSONL has every one)."""
        self.frames_failed += 1
        if len(self.failures) < FAILURES_KEPT:
            self.failures.append({"source": source, "frame": frame, "error": error})

    def count_drop(self, source: str) -> None:
        with self._lock:
            self.frames_dropped += 1
            self.dropped[source] = self.dropped.get(source, 0) + 1

    def add_time(self, stage: str, seconds: float, frames: int) -> None:
        with self._lock:
            t = self.stages[stage]
            t.seconds += seconds
            t.frames += frames
            t.calls += 1

    @property
    def wall_seconds(self) -> float:
        end = self.finished if self.finished is not None else time.perf_counter()
        return end - self.started

    @property
    def fps(self) -> float:
        return self.frames_out / self.wall_seconds if self.wall_seconds > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "frames_in": self.frames_in,
            "frames_out": self.frames_out,
            "frames_failed": self.frames_failed,
            "frames_dropped": self.frames_dropped,
            "frames_unfinished": self.frames_unfinished,
            "dropped": dict(self.dropped),
            "detections": self.detections,
            "seconds": round(self.wall_seconds, 3),
            "fps": round(self.fps, 2),
            "backend": self.backend,
            "device": self.device,
            "staging": self.staging,
            "cuda_mps": self.cuda_mps,
            "sources": self.sources,
            "error": self.error,
            "stages": {
                name: {"seconds": round(t.seconds, 4), "frames": t.frames, "fps": round(t.fps, 2),
                       "ms_per_frame": round(t.ms_per_frame, 3)}
                for name, t in self.stages.items()
            },
            "failures": self.failures,
        }


class Stopwatch:
    """``with Stopwatch(summary, "infer", frames=8): ...`` adds the elapsed time to a stage."""

    def __init__(self, summary: RunSummary, stage: str, frames: int = 1) -> None:
        self.summary = summary
        self.stage = stage
        self.frames = frames

    def __enter__(self) -> Stopwatch:
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.summary.add_time(self.stage, time.perf_counter() - self.t0, self.frames)
