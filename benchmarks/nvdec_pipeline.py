"""N H.264 streams decoded by NVDEC through one YOLO pipeline, against what limits it (issue 7's done-when).

In one run, for each stream count N:

* **decode only**: N NVDEC sources (the same source class the pipeline uses), frames left on the device;
* **engine only**: the runner alone at the pipeline's batch size, input already on the device (level (i));
* **pipeline**: N ``video`` sources with ``decoder: nvdec`` through ``Pipeline.iter_results`` (NV12 frames read
  by the preprocessing kernel, inference, decode/NMS, results on the host);

and prints the pipeline's aggregate fps over ``min(decode only, engine only)`` (target ≥ 0.90) and the host CPU
time per frame (process CPU time over the measured window / frames; target ≤ 0.2 ms).

The pipeline is timed from its first result to its last (decoder start-up and the first batch are excluded;
the same is true of the decode-only figure, which skips an untimed warm-up pass).

Usage (GPU machine): ``python benchmarks/nvdec_pipeline.py --model M.onnx --video clip.mp4 --json out.json``
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import cv2

sys.path.insert(0, str(Path(__file__).resolve().parent))


def pipeline_fps(model: str, video: str, streams: int, batch: int, frames: int) -> dict[str, Any]:
    from trtapps.pipeline import Pipeline

    source = {"type": "video", "path": video, "decoder": "nvdec", "max_frames": frames}
    app = {"type": "yolo", "model": model, "batch_size": batch}
    with Pipeline.from_objects(app=app, source=[source] * streams, backend="onnxruntime_cuda") as pipe:
        # warm-up: every batch size the measured run can meet has been seen once (cuDNN picks algorithms per shape)
        list(pipe.iter_results(write=False, sources=pipe.build_sources()))
        sources = pipe.build_sources()
        assert all(type(s).__name__ == "NvdecSource" for s in sources), "NVDEC was not used"
        count, first_t, first_cpu, first_n = 0, 0.0, 0.0, 0
        failed = 0
        for result in pipe.iter_results(write=False, sources=sources):
            count += 1
            failed += result.error is not None
            if count == batch:  # the first batch is out: the steady window starts
                first_t, first_cpu, first_n = time.perf_counter(), time.process_time(), count
        elapsed = time.perf_counter() - first_t
        cpu = time.process_time() - first_cpu
    n = count - first_n
    return {"streams": streams, "frames": count, "failed": failed, "fps": round(n / elapsed, 1),
            "cpu_ms_per_frame": round(1000 * cpu / n, 4)}


class GilProbe:
    """A pure-Python loop on its own thread: how many iterations per second it gets while something else runs.

    Compared with the same loop's rate on an idle interpreter, it tells how much of the GIL the other work
    leaves to Python threads (decoders that hold the GIL while they wait for the hardware starve the pipeline's
    Python threads; ones that release it leave the probe near its idle rate).
    """

    def __init__(self) -> None:
        import threading

        self.count = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._spin, daemon=True)

    def _spin(self) -> None:
        while not self._stop.is_set():
            for _ in range(1000):
                self.count += 1
            time.sleep(0)

    def __enter__(self) -> GilProbe:
        self.start = time.perf_counter()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.rate = self.count / (time.perf_counter() - self.start)


def idle_probe_rate(seconds: float = 1.0) -> float:
    with GilProbe() as probe:
        time.sleep(seconds)
    return probe.rate


def engine_fps(model: str, video: str, batch: int) -> float:
    from trtapps.bench.levels import runner_only
    from trtapps.pipeline import Pipeline

    cap = cv2.VideoCapture(video)
    frames = [cap.read()[1] for _ in range(batch)]
    cap.release()
    with Pipeline.from_objects(app={"type": "yolo", "model": model, "batch_size": batch},
                               backend="onnxruntime_cuda") as pipe:
        return float(runner_only(pipe, frames, batch, iters=50, budget_s=20.0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--video", required=True, help="an H.264 file; every stream reads it")
    parser.add_argument("--streams", default="8,16")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--frames", type=int, default=0, help="frames per stream (0: the whole file)")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--switch-interval", type=float, default=None,
                        help="sys.setswitchinterval for the run, in seconds (Python's default: 0.005)")
    args = parser.parse_args()
    if args.switch_interval is not None:
        sys.setswitchinterval(args.switch_interval)

    from nvdec_decode import measure_decode

    from trtapps.bench.core import versions
    from trtapps.gpu.device import gpu_info

    total = int(cv2.VideoCapture(args.video).get(cv2.CAP_PROP_FRAME_COUNT))
    per_stream = args.frames or total
    engine = engine_fps(args.model, args.video, args.batch)
    rows = []
    idle = idle_probe_rate()
    for n in (int(s) for s in args.streams.split(",")):
        with GilProbe() as probe:
            decode = measure_decode([args.video], streams=n, frames=per_stream, decoder="nvdec")
        pipe = pipeline_fps(args.model, args.video, n, args.batch, per_stream)
        bound = min(decode["fps"], engine)
        rows.append({**pipe, "decode_only_fps": round(decode["fps"], 1), "engine_only_fps": round(engine, 1),
                     "gil_left_while_decoding": round(probe.rate / idle, 3),
                     "ratio": round(pipe["fps"] / bound, 3), "limited_by": "decode" if decode["fps"] < engine
                     else "engine"})
    info = gpu_info(0)
    doc = {"benchmark": "nvdec_pipeline", "model": Path(args.model).name, "video": Path(args.video).name,
           "batch": args.batch, "frames_per_stream": per_stream, "device": info, "versions": versions(),
           "switch_interval_s": sys.getswitchinterval(), "rows": rows,
           "targets": {"ratio": 0.90, "cpu_ms_per_frame": 0.2}}
    print(f"device: {info.get('name')} · {doc['model']} batch {args.batch} · {doc['video']} × N (NVDEC)")
    print(f"{'N':>3} {'pipeline fps':>13} {'decode-only':>12} {'engine-only':>12} {'ratio':>6} {'CPU ms/frame':>13}")
    for r in rows:
        print(f"{r['streams']:>3} {r['fps']:>13.1f} {r['decode_only_fps']:>12.1f} {r['engine_only_fps']:>12.1f} "
              f"{r['ratio']:>6.3f} {r['cpu_ms_per_frame']:>13.4f}")
    for r in rows:
        print(f"{r['streams']:>3} streams: a pure-Python thread kept {r['gil_left_while_decoding']:.0%} of its idle "
              "loop rate while NVDEC decoded")
    if args.json:
        args.json.write_text(json.dumps(doc, indent=2))


if __name__ == "__main__":
    main()
