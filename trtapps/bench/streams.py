"""N-stream aggregate throughput: N sources handed to one pipeline at once, as N cameras would be.

Each stream is its own :class:`~trtapps.bench.sources.ListSource` (its own name, so results and latencies are
matched per stream; its own starting offset in the decoded frames, so streams do not show the same picture in
lockstep). The pipeline decides how it interleaves and batches them; the benchmark only counts what comes out:
aggregate frames per second over the run's wall time, latency per frame across all streams, CPU time per frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from trtapps.bench.latency import LatencyRecorder
from trtapps.bench.levels import PipelineRun, measure_pipeline
from trtapps.bench.sources import ListSource


def stream_sources(
    frames: Sequence[np.ndarray], streams: int, per_stream: int, recorder: LatencyRecorder | None = None
) -> list[ListSource]:
    """*streams* sources named ``stream0`` … of *per_stream* frames each, starting at spread-out offsets."""
    step = max(1, len(frames) // max(streams, 1))
    return [
        ListSource(frames, per_stream, name=f"stream{i}", recorder=recorder, offset=i * step)
        for i in range(streams)
    ]


def per_stream_frames(total: int, streams: int, batch: int) -> int:
    """Frames each stream gives so that the run holds about *total* frames, and at least one batch per stream."""
    return max(batch, -(-total // streams))


def measure_streams(
    pipeline: Any, frames: Sequence[np.ndarray], streams: int, total: int
) -> tuple[PipelineRun, dict[str, Any]]:
    """One run of *streams* sources; returns the measured run and the row fields describing it."""
    per_stream = per_stream_frames(total, streams, pipeline.batch_size)
    recorder = LatencyRecorder()
    run = measure_pipeline(pipeline, stream_sources(frames, streams, per_stream, recorder), recorder)
    row = {
        "streams": streams,
        "batch": pipeline.batch_size,
        "frames_per_stream": per_stream,
        "aggregate_fps": round(run.fps, 1),
        "fps_per_stream": round(run.fps / streams, 1),
    }
    return run, row
