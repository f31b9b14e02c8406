"""Measuring trtapps: ``trtapps bench`` and the benchmark scripts under ``benchmarks/`` are built from this.

* :mod:`~trtapps.bench.sources`: decoded frames replayed from memory (:class:`ListSource`) and a video looped
  for soak runs (:class:`LoopingVideoSource`), both stamping when each frame enters the pipeline;
* :mod:`~trtapps.bench.levels`: the three levels (runner only; runner + GPU pre/post; full pipeline);
* :mod:`~trtapps.bench.streams`: N sources through one pipeline, aggregate frames per second;
* :mod:`~trtapps.bench.latency`: per-frame latency from the source's yield to the result's arrival;
* :mod:`~trtapps.bench.resources`: CPU time per frame, resident memory, GPU memory;
* :mod:`~trtapps.bench.core`: :func:`run_bench`, everything for one model as one JSON document;
* :mod:`~trtapps.bench.report`: tables and PNG plots of such a document;
* :mod:`~trtapps.bench.soak`: a long run over looping sources, sampled, with a verdict on memory and frames.

Everything goes through the public pipeline API (``Pipeline.from_objects``, ``iter_results(sources=...)``,
``RunSummary``) plus the app and runner contracts, so what is measured is what users run.
"""

from __future__ import annotations

from trtapps.bench.core import BenchConfig, run_bench
from trtapps.bench.latency import LatencyRecorder, latency_summary
from trtapps.bench.levels import BenchError
from trtapps.bench.sources import ListSource, LoopingVideoSource, read_image_frames, read_video_frames

__all__ = [
    "BenchConfig",
    "BenchError",
    "LatencyRecorder",
    "ListSource",
    "LoopingVideoSource",
    "latency_summary",
    "read_image_frames",
    "read_video_frames",
    "run_bench",
]
