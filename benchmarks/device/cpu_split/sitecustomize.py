"""Where a decoding process's CPU goes, call by call: put this folder first on PYTHONPATH and set
``TRTAPPS_CPU_SPLIT`` to a folder; every Python process that starts then wraps the decoding loop's steps
(:mod:`trtapps.gpu.nvdec`, :mod:`trtapps.gpu.nvdec_worker`) with the calling thread's CPU clock
(``time.thread_time_ns``: user + system time, sleeping not counted) and, at exit, writes
``<folder>/cpu_<pid>.json``: when it started and ended, per step the calls, the CPU nanoseconds spent inside
(inclusive) and the median call's (which leaves one-time costs out: CUDA graph captures, first calls), and the
process's user and system time (``os.times``).

A sampling profiler cannot tell a thread sleeping in a driver call from one spinning there; this can, for the
price of two clock reads per wrapped call (about a microsecond). Only benchmarks use it (``cpu_split.py``).
"""

from __future__ import annotations

import atexit
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

_FOLDER = os.environ.get("TRTAPPS_CPU_SPLIT")
_STARTED = time.time()
_STATS: dict[str, list[int]] = {}
_SAMPLES: dict[str, list[int]] = {}  # each call's CPU nanoseconds (medians leave one-time costs out)
_MAX_SAMPLES = 500_000
_INSIDE = threading.local()  # the keys being timed on this thread


def _timed(owner: Any, name: str, key: str, within: str | None = None) -> None:
    """Time *owner*.*name* as *key*; with *within*, only calls made inside a call timed as *within* (the runner's
    ``infer`` inside a pipeline batch, not in the benchmark's engine-only loop)."""
    original = getattr(owner, name)
    static = isinstance(vars(owner).get(name), staticmethod) if isinstance(owner, type) else False
    stats = _STATS.setdefault(key, [0, 0])
    samples = _SAMPLES.setdefault(key, [])

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        inside = getattr(_INSIDE, "keys", None)
        if inside is None:
            inside = _INSIDE.keys = set()
        if within is not None and within not in inside:
            return original(*args, **kwargs)
        inside.add(key)
        start = time.thread_time_ns()
        try:
            return original(*args, **kwargs)
        finally:
            spent = time.thread_time_ns() - start
            stats[0] += 1
            stats[1] += spent
            if len(samples) < _MAX_SAMPLES:
                samples.append(spent)
            inside.discard(key)

    wrapper.__wrapped__ = original  # type: ignore[attr-defined]
    setattr(owner, name, staticmethod(wrapper) if static else wrapper)


class _TimedPackets:
    """The demuxer's packet iterator, timed."""

    def __init__(self, packets: Any) -> None:
        self._packets = packets
        self._stats = _STATS.setdefault("demux", [0, 0])

    def __iter__(self) -> _TimedPackets:
        return self

    def __next__(self) -> Any:
        start = time.thread_time_ns()
        try:
            return next(self._packets)
        finally:
            self._stats[0] += 1
            self._stats[1] += time.thread_time_ns() - start


def _median(samples: list[int] | None) -> int:
    return sorted(samples)[len(samples) // 2] if samples else 0


def _write() -> None:
    times = os.times()
    out = {"pid": os.getpid(), "started": _STARTED, "ended": time.time(), "user_s": times.user, "system_s": times.system,
           "steps": {key: {"calls": calls, "cpu_ns": ns, "median_ns": _median(_SAMPLES.get(key))}
                     for key, (calls, ns) in _STATS.items()}}
    Path(_FOLDER or ".", f"cpu_{os.getpid()}.json").write_text(json.dumps(out))


def _install() -> None:
    from trtapps.gpu import nvdec, nvdec_worker

    session = nvdec._DecodeSession
    for name, key in (("_step", "step"), ("_take", "take"), ("_wait", "wait"), ("_copy", "copy"),
                      ("_start", "open"), ("close", "close")):
        _timed(session, name, key)
    _timed(nvdec, "_destroy", "destroy")
    opened = session._start

    def _start(self: Any) -> None:
        opened(self)
        self._packets = _TimedPackets(self._packets)

    session._start = _start  # type: ignore[method-assign]
    _timed(nvdec_worker.VideoTask, "step", "task_step")
    _timed(nvdec_worker.VideoTask, "flush", "send")
    _timed(nvdec_worker.WorkerChannel, "pump", "receive")
    _timed(nvdec_worker.SlabRing, "target", "slot")
    _install_pipeline()
    atexit.register(_write)


def _install_pipeline() -> None:
    """The pipeline's process, by thread: readers (frames received, batched), inference (a batch queued on the
    GPU), main (results turned into frames' results)."""
    import onnxruntime

    from trtapps import batching, pipeline
    from trtapps.gpu import frames, graphs, nvdec_worker
    from trtapps.ops.cuda import decode, nms, preprocess
    from trtapps.runners import onnxruntime_cuda
    from trtapps_plugins.yolo import app

    submit = "inference.submit"
    for owner, name, key, within in (
        (nvdec_worker.WorkerSession, "_frame", "reader.frame", None),
        (nvdec_worker.WorkerSession, "_release", "reader.release", None),
        (nvdec_worker.WorkerSession, "_send", "reader.send", None),
        (batching.Batcher, "_put", "reader.batcher_put", None),
        (batching.Batcher, "next_batch", "inference.next_batch", None),
        (pipeline.Pipeline, "_submit_on_device", "inference.submit", None),
        (frames.DeviceFrameStager, "wait", "inference.submit.stager_wait", submit),
        (frames.FrameUploader, "upload", "inference.submit.upload", submit),
        (app.YoloApp, "preprocess_device", "inference.submit.preprocess", submit),
        (onnxruntime_cuda.OnnxRuntimeCudaRunner, "infer", "inference.submit.infer", submit),
        (app.YoloApp, "decode_device_async", "inference.submit.decode", submit),
        (preprocess, "preprocess_batch", "inference.submit.preprocess.kernel", submit),
        (graphs, "copy_into", "inference.submit.infer.copy_into", submit),
        (onnxruntime.InferenceSession, "run_with_iobinding", "inference.submit.infer.ort_run", submit),
        (decode, "decode_yolov8", "inference.submit.decode.yolov8", submit),
        (app, "top_candidates", "inference.submit.decode.top_candidates", submit),
        (nms, "nms_batched", "inference.submit.decode.nms", submit),
        (nms.PendingCompact, "__init__", "inference.submit.decode.download", submit),
        (nms.PendingCompact, "wait", "main.results_wait", None),
        (app.YoloApp, "_host_detections", "main.host_detections", None),
        (pipeline.Pipeline, "_finish_frame", "main.finish_frame", None),
        (frames.DeviceFrameStager, "release_all", "main.release_frames", None),
    ):
        _timed(owner, name, key, within)


if _FOLDER:
    try:
        _install()
    except Exception as exc:  # never break the process being measured
        print(f"cpu_split: not installed ({type(exc).__name__}: {exc})")
