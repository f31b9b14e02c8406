"""``run_bench``: every measurement of ``trtapps bench`` for one model, in one process, as one JSON document.

For each batch size a pipeline is built (the batch size shapes the runner's buffers), the three levels are
measured on it (:mod:`trtapps.bench.levels`), and its GPU memory is watched from before the model loads to the
end of the full-pipeline run. The pipeline of the largest batch then runs the N-stream measurements
(:mod:`trtapps.bench.streams`). The document records the device, the versions and the command line, so a
result file says what produced it.
"""

from __future__ import annotations

import contextlib
import datetime
import platform
import shlex
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from trtapps.bench.levels import full_pipeline, on_device, runner_gpu_prepost, runner_only
from trtapps.bench.resources import GpuMemoryMonitor, cpu_count, cpu_description
from trtapps.bench.streams import measure_streams

#: frames per measured pipeline run when ``frames`` is not given, at least (GPU) or exactly (CPU)
DEFAULT_FRAMES = {"gpu": 1024, "cpu": 128}
#: a GPU run without ``frames`` lasts about this long at the runner's own rate (level (i)), so that filling and
#: draining the pipeline's queues stays a small part of it: 1,024 frames at batch 32 measured 0.876 of (i) on
#: the H100 where 8,192 frames measured 0.897 (session 5)
GPU_RUN_SECONDS = 3.0
#: the most frames a default GPU run takes
MAX_DEFAULT_FRAMES = 16384


def default_frames(gpu: bool, runner_img_s: float | None) -> int:
    """Frames of a measured pipeline run when the user gave none (see :data:`GPU_RUN_SECONDS`)."""
    if not gpu or not runner_img_s:
        return DEFAULT_FRAMES["gpu" if gpu else "cpu"]
    return int(min(MAX_DEFAULT_FRAMES, max(DEFAULT_FRAMES["gpu"], round(runner_img_s * GPU_RUN_SECONDS))))


@dataclass
class BenchConfig:
    """What to measure. ``frames=None`` picks :func:`default_frames` for the backend that runs."""

    model: str
    app: str = "yolo"
    backend: str = "auto"
    batches: tuple[int, ...] = (1, 8, 32)
    streams: tuple[int, ...] = ()
    frames: int | None = None
    iters: int = 50
    budget_s: float = 10.0  # per level (i)/(ii) measurement: stop timing calls after this once MIN_CALLS ran
    input: dict[str, Any] = field(default_factory=dict)  # {"video": path} or {"images": path}
    app_options: dict[str, Any] = field(default_factory=dict)

    def command(self) -> str:
        """The ``trtapps bench`` command line that reproduces this configuration."""
        args = ["trtapps", "bench", "--model", self.model, "--app", self.app, "--backend", self.backend,
                "--batch", ",".join(map(str, self.batches))]
        for kind, path in self.input.items():
            args += [f"--{kind}", str(path)]
        if self.streams:
            args += ["--streams", ",".join(map(str, self.streams))]
        if self.frames is not None:
            args += ["--frames", str(self.frames)]
        if self.iters != BenchConfig.iters:
            args += ["--iters", str(self.iters)]
        return shlex.join(args)


def _version(module: str) -> str | None:
    mod = sys.modules.get(module)
    if mod is None:
        try:
            mod = __import__(module)
        except Exception:
            return None
    return str(getattr(mod, "__version__", "unknown"))


def versions() -> dict[str, str]:
    """Versions of what took part: Python, trtapps, NumPy, OpenCV, ONNX Runtime, and CuPy/TensorRT when loaded."""
    import trtapps

    found: dict[str, str | None] = {
        "python": platform.python_version(),
        "trtapps": trtapps.__version__,
        "numpy": np.__version__,
        "opencv": _version("cv2"),
        "onnxruntime": _version("onnxruntime"),
    }
    for optional in ("cupy", "tensorrt"):  # only when the run loaded them: importing is slow or fails
        if optional in sys.modules:
            found[optional] = _version(optional)
    try:
        import onnxruntime

        found["onnxruntime_providers"] = ",".join(onnxruntime.get_available_providers())
    except Exception:
        pass
    return {k: v for k, v in found.items() if v is not None}


def host() -> dict[str, Any]:
    return {"cpu": cpu_description(), "cores": cpu_count(), "platform": platform.platform()}


def _gpu_possible(backend: str) -> bool:
    """Whether the run may land on a GPU (so GPU memory is snapshotted before the model loads)."""
    if backend.strip().lower() == "onnxruntime":
        return False
    from trtapps.gpu.device import gpu_reason

    return gpu_reason() is None


def _release_gpu_memory() -> None:
    """Return CuPy's cached blocks, so the next batch's "before" is not the previous pipeline's leftovers."""
    import cupy

    cupy.get_default_memory_pool().free_all_blocks()
    cupy.get_default_pinned_memory_pool().free_all_blocks()


def _input_description(frames: Sequence[np.ndarray], source: dict[str, Any]) -> dict[str, Any]:
    sizes = {(f.shape[1], f.shape[0]) for f in frames}
    size = "x".join(map(str, next(iter(sizes)))) if len(sizes) == 1 else f"{len(sizes)} sizes"
    return {**{k: Path(v).name for k, v in source.items()}, "distinct_frames": len(frames), "size": size}


def _ratio(a: float | None, b: float) -> float | None:
    return round(a / b, 3) if a is not None and b > 0 else None


def run_bench(
    config: BenchConfig, frames: Sequence[np.ndarray], log: Callable[[str], None] = lambda line: None
) -> dict[str, Any]:
    """Measure everything *config* asks on *frames* (decoded BGR images) and return the JSON document.

    Raises:
        UserError: the model, backend or app cannot be used (from building the pipeline), or a measured run
            had failing frames (:class:`~trtapps.bench.levels.BenchError`).
    """
    from trtapps.pipeline import Pipeline

    gpu_possible = _gpu_possible(config.backend)
    doc: dict[str, Any] = {
        "benchmark": "trtapps bench",
        "command": config.command(),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "app": config.app,
        "input": _input_description(frames, config.input),
        "host": host(),
        "levels": [],
        "streams": [],
    }
    pipe: Any = None  # the pipeline of the last batch measured (kept open for the stream runs)
    gpu = False
    measured: set[int] = set()
    try:
        for batch in sorted(set(config.batches)):
            if pipe is not None:  # before the next model loads, so its "before" memory is clean
                pipe.close()
                pipe = None
                if gpu:
                    _release_gpu_memory()
            monitor = GpuMemoryMonitor() if gpu_possible else None
            with monitor if monitor is not None else contextlib.nullcontext():
                log(f"batch {batch}: loading {Path(config.model).name} on {config.backend}")
                app = {**config.app_options, "type": config.app, "model": config.model, "batch_size": batch}
                pipe = Pipeline.from_objects(app=app, backend=config.backend)
                gpu = on_device(pipe)
                if pipe.batch_size in measured:  # the model caps the batch: that size was measured already
                    log(f"batch {batch}: {Path(config.model).name} accepts at most batch {pipe.batch_size}; skipped")
                    continue
                measured.add(pipe.batch_size)
                row = _measure_levels(pipe, frames, config, log)
            doc["levels"].append({
                **row, "requested_batch": batch, "gpu_memory": monitor.report() if monitor and gpu else None
            })
            if "backend" not in doc:
                doc["model"] = str(pipe.runner.model_path)
                doc["backend"] = pipe.runner.backend
                doc["requested_backend"] = config.backend
                doc["device"] = _device(pipe, gpu)
        for streams in config.streams:
            rate = doc["levels"][-1]["i_runner_img_s"] if doc["levels"] else None
            total = config.frames or default_frames(gpu, rate)
            log(f"{streams} streams at batch {pipe.batch_size}: about {total} frames")
            monitor = GpuMemoryMonitor() if gpu else None
            with monitor if monitor is not None else contextlib.nullcontext():
                run, row = measure_streams(pipe, frames, streams, total)
            doc["streams"].append({
                **row, "pipeline": run.to_json(), "gpu_memory": monitor.report() if monitor is not None else None
            })
    finally:
        if pipe is not None:
            pipe.close()
    doc["versions"] = versions()
    return doc


def _measure_levels(
    pipe: Any, frames: Sequence[np.ndarray], config: BenchConfig, log: Callable[[str], None]
) -> dict[str, Any]:
    """The three levels on one pipeline, at its batch size."""
    gpu = on_device(pipe)
    batch = pipe.batch_size
    log(f"batch {batch}: (i) runner only")
    level_i = runner_only(pipe, frames, batch, config.iters, config.budget_s)
    total = max(config.frames or default_frames(gpu, level_i), 2 * batch)
    level_ii = None
    if gpu:
        log(f"batch {batch}: (ii) runner + GPU pre/post")
        level_ii = runner_gpu_prepost(pipe, frames, batch, config.iters, config.budget_s)
    log(f"batch {batch}: (iii) full pipeline, {total} frames")
    run = full_pipeline(pipe, frames, total, warmup=2 * batch)
    return {
        "batch": batch,
        "i_runner_img_s": round(level_i, 1),
        "i_input": "device" if gpu else "host",
        "ii_runner_gpu_prepost_img_s": None if level_ii is None else round(level_ii, 1),
        "iii_pipeline_img_s": round(run.fps, 1),
        "ratio_ii_i": _ratio(level_ii, level_i),
        "ratio_iii_i": _ratio(run.fps, level_i),
        "pipeline": run.to_json(),
    }


def _device(pipe: Any, gpu: bool) -> dict[str, Any]:
    if gpu:
        from trtapps.gpu.device import configure_host_wait, gpu_info
        from trtapps.gpu.frames import stage_mode

        options = getattr(pipe.runner, "provider_options", None) or {}
        return {
            "kind": "gpu",
            **gpu_info(pipe.context.device),
            "host_wait": configure_host_wait(pipe.context.device),
            "frame_staging": stage_mode(),
            "provider_options": {k: v for k, v in options.items() if k != "user_compute_stream"},
        }
    return {"kind": "cpu", "name": cpu_description(), "cores": cpu_count()}
