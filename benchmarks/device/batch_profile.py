"""The host work of one batch on the GPU data path, function by function (cProfile), and its CPU per frame.

``Pipeline.process_batch`` on a batch of NV12 device frames (what NVDEC sources deliver) runs, on one thread,
what a run splits between its inference thread (preprocessing kernel, runner, decode/NMS kernels, the async
download) and its main thread (the batch's detections, each frame's result). The CPU time per frame of that loop
(``time.thread_time``, without the profiler) and cProfile's top functions by own time show which Python costs
per batch and per frame.

Usage (GPU machine)::

    python benchmarks/device/batch_profile.py --model yolov8n_dequant.onnx --video face_tracker.mp4 \
        --out "$OUT/batch_profile.txt"
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import sys
import time
from pathlib import Path

import cv2

HERE = Path(__file__).resolve().parent
try:  # the trtapps on PYTHONPATH (ab_batch_profile.sh puts an older tree first), else this checkout's
    import trtapps  # noqa: F401
except ImportError:
    sys.path.insert(0, str(HERE.parents[1]))
sys.path.insert(0, str(HERE.parent))  # nvdec_pipeline: its per-thread CPU reader
from nvdec_pipeline import thread_cpu_ns  # noqa: E402


def native_thread_cpu(name: str) -> float:
    """CPU seconds of this process's threads whose OS name is *name* (e.g. CUDA's ``cuda-EvtHandlr``, which
    wakes the threads sleeping in blocking CUDA waits)."""
    total = 0
    for task in Path("/proc/self/task").iterdir():
        try:
            if (task / "comm").read_text().strip() == name:
                total += thread_cpu_ns(task.name)
        except OSError:  # the thread ended
            continue
    return total / 1e9


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--video", required=True)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--iters", type=int, default=200)
    parser.add_argument("--no-cuda-graph", action="store_true")
    parser.add_argument("--top", type=int, default=45)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--cuda-mps", action="store_true", help="run as a client of a CUDA MPS daemon (started here)")
    args = parser.parse_args(argv)
    if args.cuda_mps:
        from trtapps.gpu.mps import start_for_run

        start_for_run()

    import cupy

    from trtapps import Frame
    from trtapps.ops.preprocess import bgr_to_nv12
    from trtapps.pipeline import Pipeline

    cap = cv2.VideoCapture(args.video)
    frames = []
    while len(frames) < args.batch:
        ok, image = cap.read()
        if not ok:
            break
        frames.append(Frame(image=cupy.asarray(bgr_to_nv12(image)), source=args.video, index=len(frames),
                            pixel_format="nv12"))
    cap.release()
    backend = {"type": "onnxruntime_cuda", "cuda_graph": not args.no_cuda_graph}
    with Pipeline.from_objects(app={"type": "yolo", "model": args.model, "batch_size": args.batch},
                               backend=backend) as pipe:
        for _ in range(20):
            pipe.process_batch(frames)
        cpu0, wall0, evt0 = time.thread_time(), time.perf_counter(), native_thread_cpu("cuda-EvtHandlr")
        for _ in range(args.iters):
            pipe.process_batch(frames)
        cpu, wall = time.thread_time() - cpu0, time.perf_counter() - wall0
        evt = native_thread_cpu("cuda-EvtHandlr") - evt0
        profile = cProfile.Profile()
        profile.enable()
        for _ in range(args.iters):
            pipe.process_batch(frames)
        profile.disable()
    n = args.iters * len(frames)
    import trtapps

    head = {"trtapps": str(Path(trtapps.__file__).parent), "frames_per_batch": len(frames), "iters": args.iters, "cuda_graph": not args.no_cuda_graph,
            "cpu_us_per_frame": round(1e6 * cpu / n, 2), "wall_us_per_frame": round(1e6 * wall / n, 2),
            "cuda_event_handler_us_per_frame": round(1e6 * evt / n, 2), "cuda_mps": args.cuda_mps,
            "host_wait": os.environ.get("TRTAPPS_CUDA_WAIT", "block")}
    text = io.StringIO()
    stats = pstats.Stats(profile, stream=text)
    stats.sort_stats("tottime").print_stats(args.top)
    stats.sort_stats("cumulative").print_stats(args.top)
    report = json.dumps(head) + "\n" + text.getvalue()
    print(report[:6000])
    if args.out:
        args.out.write_text(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
