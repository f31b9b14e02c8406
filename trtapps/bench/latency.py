"""Per-frame latency: from the moment a source yields a frame to the moment its result reaches the caller.

The source stamps each frame as it yields it (:meth:`LatencyRecorder.entered`, called from the pipeline's
reader thread); the caller stamps each result as ``iter_results`` hands it over (:meth:`LatencyRecorder.arrived`).
Frames are matched by ``(source name, frame index)``, which every :class:`~trtapps.structures.FrameResult`
carries back, so the recorder needs nothing from the pipeline's internals. In a throughput run the sources
yield as fast as the pipeline takes frames, so the latency includes the time a frame waits in the pipeline's
bounded queues: it is the latency of a saturated pipeline, the figure that matters for a camera feeding it at
full rate.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

#: the percentiles reported for every latency sample set
PERCENTILES = (50, 90, 99)


class LatencyRecorder:
    """Collects entry times by frame and the latencies of the results that came back.

    One thread stamps entries and another stamps arrivals: single ``dict`` stores and pops are atomic in
    CPython, and a result can only arrive after its frame was stamped, so no lock is needed.
    """

    def __init__(self) -> None:
        self._entered: dict[tuple[str, int], float] = {}
        self.samples: list[float] = []  # seconds
        self.unmatched = 0

    def entered(self, source: str, index: int, at: float | None = None) -> None:
        self._entered[(source, index)] = time.perf_counter() if at is None else at

    def arrived(self, source: str, index: int, at: float | None = None) -> None:
        now = time.perf_counter() if at is None else at
        start = self._entered.pop((source, index), None)
        if start is None:
            self.unmatched += 1  # a result of a frame this recorder never saw enter (another source)
        else:
            self.samples.append(now - start)

    @property
    def pending(self) -> int:
        """Frames that entered and have not come back (0 after a complete run)."""
        return len(self._entered)

    def summary(self) -> dict[str, Any]:
        """``{"count", "mean_ms", "p50_ms", "p90_ms", "p99_ms", "max_ms"}`` (``None`` values without samples)."""
        return latency_summary(self.samples)


def latency_summary(samples_s: list[float]) -> dict[str, Any]:
    """Percentiles of latencies given in seconds, in milliseconds rounded to µs."""
    if not samples_s:
        return {"count": 0, "mean_ms": None, **{f"p{p}_ms": None for p in PERCENTILES}, "max_ms": None}
    ms = np.asarray(samples_s, dtype=np.float64) * 1000.0
    values = np.percentile(ms, PERCENTILES)
    return {
        "count": int(ms.size),
        "mean_ms": round(float(ms.mean()), 3),
        **{f"p{p}_ms": round(float(v), 3) for p, v in zip(PERCENTILES, values)},
        "max_ms": round(float(ms.max()), 3),
    }
