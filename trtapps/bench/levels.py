"""The three levels of the GPU issue, for one built pipeline and one batch size.

(i)   **runner only**: one batch of model inputs already where the runner wants them (on the device for a GPU
      backend, in host memory on the CPU), ``runner.infer`` and nothing else: the ceiling.
(ii)  **runner + GPU pre/post** (GPU backends whose app has a GPU path): the batch's frames in pinned host
      memory, one host→device copy, the app's preprocessing kernel, the runner, the decode/NMS kernels and the
      one small copy of compact results back. No Python per-frame objects, no threads.
(iii) **full pipeline**: ``Pipeline.iter_results`` from decoded frames in ordinary host memory (a
      :class:`~trtapps.bench.sources.ListSource`) to :class:`~trtapps.structures.FrameResult` objects in the
      caller's hands: everything a user's run does except decoding the video and writing sinks. The frames
      are not page-locked, so on the GPU path each one is copied by the staging threads (a video source decodes
      into page-locked buffers instead: ``benchmarks/results/gpu.md``, session 7).

(i) and (ii) are the median of per-call times (each call synchronised), as in ``benchmarks/results/gpu.md``;
(iii) is the steady rate of a whole run: frames over the time from the first batch's results to the last result
(:class:`PipelineRun`; until session 8 it was frames over the whole call, start-up and teardown included). The
end-to-end rate, start-up and teardown are reported next to it,
with the run's latency, CPU time (whole call) and stage times.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from trtapps.bench.latency import LatencyRecorder
from trtapps.bench.resources import CpuClock
from trtapps.bench.sources import ListSource
from trtapps.errors import UserError
from trtapps.metrics import RunSummary
from trtapps.stages import Residency
from trtapps.structures import Frame

#: fewest timed calls of level (i) or (ii), whatever the time budget
MIN_CALLS = 3


class BenchError(UserError):
    """A benchmark cannot run as asked (missing optional package, frames failing in the measured run)."""


def on_device(pipeline: Any) -> bool:
    """True when the pipeline's runner takes device (CuPy) arrays: a GPU backend."""
    return pipeline.runner.residency is Residency.DEVICE


def time_calls(
    fn: Callable[[], Any], sync: Callable[[], Any], iters: int, budget_s: float, warmup: int
) -> list[float]:
    """Seconds per call of *fn* (each followed by *sync*): *iters* calls, or fewer once *budget_s* is spent.

    A slow CPU backend at batch 32 would otherwise take minutes for numbers that are stable after a few calls.
    """
    for _ in range(warmup):
        fn()
    sync()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < max(iters, MIN_CALLS):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
        if len(times) >= MIN_CALLS and time.perf_counter() - start > budget_s:
            break
    return times


def _batch_frames(frames: Sequence[np.ndarray], batch: int) -> list[Frame]:
    return [Frame(frames[i % len(frames)], source="bench", index=i) for i in range(batch)]


def _nothing() -> None:
    """The CPU backend's synchronisation: ``infer`` has returned, the work is done."""


def runner_only(pipeline: Any, frames: Sequence[np.ndarray], batch: int, iters: int, budget_s: float) -> float:
    """Level (i): images/s of ``runner.infer`` on one prepared batch (device inputs on a GPU backend)."""
    host_inputs, _ = pipeline.app.preprocess(_batch_frames(frames, batch))
    if on_device(pipeline):
        import cupy

        from trtapps.gpu.stream import pipeline_stream

        stream = pipeline_stream(pipeline.context, pipeline.context.device)
        with stream:
            inputs = {k: cupy.asarray(v) for k, v in host_inputs.items()}
        stream.synchronize()
        times = time_calls(lambda: pipeline.runner.infer(inputs, stream), stream.synchronize, iters, budget_s, 5)
    else:
        times = time_calls(lambda: pipeline.runner.infer(host_inputs), _nothing, iters, budget_s, 1)
    return batch / statistics.median(times)


def runner_gpu_prepost(
    pipeline: Any, frames: Sequence[np.ndarray], batch: int, iters: int, budget_s: float
) -> float | None:
    """Level (ii): images/s from pinned host frames to compact host results; ``None`` without a GPU path."""
    if not (on_device(pipeline) and getattr(pipeline.app, "supports_device", False)):
        return None
    import cupy

    from trtapps.gpu.memory import PinnedBuffer
    from trtapps.gpu.stream import pipeline_stream

    stream = pipeline_stream(pipeline.context, pipeline.context.device)
    batch_frames = _batch_frames(frames, batch)
    sizes = [f.image.nbytes for f in batch_frames]
    offsets = np.cumsum([0, *sizes])
    pinned = PinnedBuffer(int(offsets[-1]))
    try:
        packed = pinned.view((int(offsets[-1]),), np.uint8)
        for f, o, n in zip(batch_frames, offsets, sizes):
            packed[o:o + n] = f.image.reshape(-1)
        staging = cupy.empty(int(offsets[-1]), cupy.uint8)

        def step() -> Any:
            with stream:
                staging.set(packed, stream=stream)
                views = [staging[o:o + n].reshape(f.image.shape) for f, o, n in zip(batch_frames, offsets, sizes)]
                inputs, metas = pipeline.app.preprocess_device(views, batch_frames, stream)
                outputs = pipeline.runner.infer(inputs, stream)
                return pipeline.app.decode_device(outputs, batch_frames, metas, stream)

        times = time_calls(step, stream.synchronize, iters, budget_s, 5)
    finally:
        stream.synchronize()
        pinned.free()
    return batch / statistics.median(times)


@dataclass
class PipelineRun:
    """One measured run of ``iter_results`` over some sources.

    ``seconds`` is the whole call, start-up (threads, buffers, the first batch's latency) and teardown after the
    last result (threads joined, sources closed, memory freed) included; ``steady_frames`` results arrived in the
    ``steady_seconds`` from the first batch's last result to the last result. :attr:`fps` is the steady rate, what
    the pipeline sustains (level (i) is a steady rate too: the median batch time), and falls back to the
    end-to-end rate when the run is too short for a window (at most two batches).
    """

    frames: int
    seconds: float
    latency: dict[str, Any]
    cpu: dict[str, Any]
    summary: dict[str, Any] = field(default_factory=dict)
    steady_frames: int = 0
    steady_seconds: float = 0.0
    startup_seconds: float = 0.0
    teardown_seconds: float = 0.0

    @property
    def end_to_end_fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    @property
    def fps(self) -> float:
        if self.steady_frames > 0 and self.steady_seconds > 0:
            return self.steady_frames / self.steady_seconds
        return self.end_to_end_fps

    def to_json(self) -> dict[str, Any]:
        return {
            "frames": self.frames,
            "seconds": round(self.seconds, 4),
            "img_s": round(self.fps, 1),
            "end_to_end_img_s": round(self.end_to_end_fps, 1),
            "steady_frames": self.steady_frames,
            "steady_seconds": round(self.steady_seconds, 4),
            "startup_seconds": round(self.startup_seconds, 4),
            "teardown_seconds": round(self.teardown_seconds, 4),
            "latency": self.latency,
            "cpu": self.cpu,
            **self.summary,
        }


def measure_pipeline(pipeline: Any, sources: Sequence[ListSource], recorder: LatencyRecorder) -> PipelineRun:
    """Run *sources* through the pipeline (no sinks) and measure it.

    Raises:
        BenchError: a frame failed or went missing: numbers of a broken run would mislead.
    """
    expected = sum(len(s) for s in sources)
    summary = RunSummary()
    frames = 0
    first_error: str | None = None
    failed = 0
    batch = max(1, int(getattr(pipeline, "batch_size", 1)))
    window_start = last = 0.0
    with CpuClock() as clock:
        for result in pipeline.iter_results(write=False, sources=list(sources), summary=summary):
            last = time.perf_counter()
            recorder.arrived(result.source, result.index, at=last)
            frames += 1
            if frames == batch:  # the first batch is out: the steady window starts here
                window_start = last
            if result.error is not None:
                failed += 1
                first_error = first_error or f"{result.source} frame {result.index}: {result.error}"
    ended = time.perf_counter()
    if failed:
        raise BenchError(f"{failed} of {frames} frames failed in the benchmark run; first: {first_error}")
    if frames != expected or recorder.pending:
        raise BenchError(f"the benchmark run returned {frames} results for {expected} frames")
    report = summary.to_json()
    steady = frames - batch if frames > 2 * batch else 0
    return PipelineRun(
        frames=frames,
        seconds=clock.wall_s,
        steady_frames=steady,
        steady_seconds=last - window_start if steady else 0.0,
        startup_seconds=clock.wall_s - (ended - window_start) if steady else 0.0,
        teardown_seconds=ended - last,
        latency=recorder.summary(),
        cpu=clock.per_frame(frames),
        summary={
            "frames_in": report["frames_in"],
            "frames_out": report["frames_out"],
            "frames_dropped": report["frames_dropped"],
            "staging": report["staging"],
            "stages_ms_per_frame": {name: s["ms_per_frame"] for name, s in report["stages"].items()},
        },
    )


def full_pipeline(pipeline: Any, frames: Sequence[np.ndarray], total: int, warmup: int) -> PipelineRun:
    """Level (iii): a warm-up run of *warmup* frames (threads, allocations), then *total* frames measured."""
    if warmup:
        measure_pipeline(pipeline, [ListSource(frames, warmup, name="warmup")], LatencyRecorder())
    recorder = LatencyRecorder()
    return measure_pipeline(pipeline, [ListSource(frames, total, name="memory", recorder=recorder)], recorder)
