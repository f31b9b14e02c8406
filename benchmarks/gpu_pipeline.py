"""GPU pipeline benchmark (issue 3): three levels for one model, measured in one run, with their ratios.

(i)   runner only: the input batch already on the device;
(ii)  runner + GPU pre/post: frames in pinned host memory → one H2D copy → preprocessing kernel → runner →
      decode/NMS kernels → compact results on the host;
(iii) the full pipeline (``Pipeline.iter_results``: reader, batcher, worker, results) from decoded frames in
      ordinary host memory to ``FrameResult`` objects on the host;
plus the same pipeline on the CPU backend for comparison.

Usage (on the GPU machine): ``python benchmarks/gpu_pipeline.py --model M.onnx --video clip.mp4 --json out.json``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np


def read_frames(video: Path, count: int) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(video))
    frames = []
    while len(frames) < count:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    if not frames:
        raise SystemExit(f"{video}: no frames")
    return frames


class ListSource:
    """An in-memory source of already decoded frames (so decoding is not part of the measurement)."""

    name = "memory"

    def __init__(self, frames: list[np.ndarray], total: int) -> None:
        self.frames = frames
        self.total = total

    def __iter__(self) -> Any:
        from trtapps.structures import Frame

        for i in range(self.total):
            yield Frame(self.frames[i % len(self.frames)], source="memory", index=i)

    def __len__(self) -> int:
        return self.total

    def close(self) -> None:
        pass


def timed(fn: Any, iters: int, sync: Any) -> list[float]:
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return times


def bench_levels(model: str, frames: list[np.ndarray], batch: int, iters: int, backend: str) -> dict[str, Any]:
    import cupy

    from trtapps.gpu.stream import pipeline_stream
    from trtapps.pipeline import Pipeline
    from trtapps.structures import Frame

    pipe = Pipeline.from_objects(app={"type": "yolo", "model": model, "batch_size": batch}, backend=backend)
    assert pipe.device_path, "the GPU data path is not active"
    stream = pipeline_stream(pipe.context, pipe.context.device)
    batch_frames = [Frame(frames[i % len(frames)], "memory", i) for i in range(batch)]

    # (i) runner only
    host_inputs, _ = pipe.app.preprocess(batch_frames)
    dev_inputs = {k: cupy.asarray(v) for k, v in host_inputs.items()}
    for _ in range(5):
        pipe.runner.infer(dev_inputs, stream)
    stream.synchronize()
    t_i = timed(lambda: pipe.runner.infer(dev_inputs, stream), iters, stream.synchronize)

    # (ii) runner + GPU pre/post from pinned host memory
    from trtapps.gpu.memory import PinnedBuffer

    sizes = [f.image.nbytes for f in batch_frames]
    pinned = PinnedBuffer(sum(sizes))
    packed = pinned.view((sum(sizes),), np.uint8)
    offsets = np.cumsum([0, *sizes])
    for f, o, n in zip(batch_frames, offsets, sizes):
        packed[o:o + n] = f.image.reshape(-1)
    staging = cupy.empty(sum(sizes), cupy.uint8)

    def level_ii() -> list[Any]:
        with stream:
            staging.set(packed, stream=stream)
            views = [staging[o:o + n].reshape(f.image.shape) for f, o, n in zip(batch_frames, offsets, sizes)]
            inputs, metas = pipe.app.preprocess_device(views, batch_frames, stream)
            outputs = pipe.runner.infer(inputs, stream)
            return pipe.app.decode_device(outputs, batch_frames, metas, stream)

    for _ in range(5):
        level_ii()
    t_ii = timed(level_ii, iters, stream.synchronize)

    # (iii) full pipeline
    total = batch * max(iters, 8)
    for _ in range(2):  # warm-up runs (threads, allocations)
        list(pipe.iter_results(write=False, sources=[ListSource(frames, batch * 4)]))
    t0 = time.perf_counter()
    n = sum(1 for _ in pipe.iter_results(write=False, sources=[ListSource(frames, total)]))
    t_iii = time.perf_counter() - t0
    assert n == total
    pipe.close()
    pinned.free()

    ips_i = batch / statistics.median(t_i)
    ips_ii = batch / statistics.median(t_ii)
    ips_iii = total / t_iii
    return {
        "batch": batch,
        "backend": backend,
        "i_runner_img_s": round(ips_i, 1),
        "ii_runner_gpu_prepost_img_s": round(ips_ii, 1),
        "iii_pipeline_img_s": round(ips_iii, 1),
        "ratio_ii_i": round(ips_ii / ips_i, 3),
        "ratio_iii_i": round(ips_iii / ips_i, 3),
    }


def bench_cpu(model: str, frames: list[np.ndarray], batch: int, total: int) -> dict[str, Any]:
    from trtapps.pipeline import Pipeline

    pipe = Pipeline.from_objects(app={"type": "yolo", "model": model, "batch_size": batch}, backend="onnxruntime")
    list(pipe.iter_results(write=False, sources=[ListSource(frames, batch)]))
    t0 = time.perf_counter()
    n = sum(1 for _ in pipe.iter_results(write=False, sources=[ListSource(frames, total)]))
    elapsed = time.perf_counter() - t0
    pipe.close()
    return {"batch": batch, "backend": "onnxruntime (CPU)", "iii_pipeline_img_s": round(n / elapsed, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--video", required=True, help="decoded once up front; frames cycle")
    parser.add_argument("--batches", default="1,8,32")
    parser.add_argument("--iters", type=int, default=50)
    parser.add_argument("--backend", default="onnxruntime_cuda")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    import cupy
    import onnxruntime

    from trtapps.gpu.device import gpu_info

    frames = read_frames(Path(args.video), 64)
    rows = [bench_levels(args.model, frames, int(b), args.iters, args.backend) for b in args.batches.split(",")]
    cpu = bench_cpu(args.model, frames, 8, 64)
    info = gpu_info(0)
    result = {
        "benchmark": "gpu_pipeline",
        "model": Path(args.model).name,
        "frames": f"{frames[0].shape[1]}x{frames[0].shape[0]} from {Path(args.video).name}",
        "device": info,
        "versions": {"python": platform.python_version(), "numpy": np.__version__, "cupy": cupy.__version__,
                     "onnxruntime": onnxruntime.__version__, "opencv": cv2.__version__},
        "cpu_count": os.cpu_count(),
        "gpu": rows,
        "cpu": cpu,
    }
    print(f"device: {info.get('name')} · model {result['model']} · frames {result['frames']}")
    print(f"{'batch':>5} {'(i) runner':>12} {'(ii) +GPU pre/post':>19} {'(iii) pipeline':>15} {'ii/i':>6} {'iii/i':>6}")
    for r in rows:
        print(f"{r['batch']:>5} {r['i_runner_img_s']:>12.1f} {r['ii_runner_gpu_prepost_img_s']:>19.1f} "
              f"{r['iii_pipeline_img_s']:>15.1f} {r['ratio_ii_i']:>6.3f} {r['ratio_iii_i']:>6.3f}")
    print(f"CPU path (ONNX Runtime CPU, {os.cpu_count()} cores, batch 8): {cpu['iii_pipeline_img_s']} img/s")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
