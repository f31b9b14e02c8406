"""Frames decoded by OpenCV straight into page-locked buffers (``TRTAPPS_STAGE=direct``, the default) against
the copy-thread path (``TRTAPPS_STAGE=pinned``): a GPU pipeline over N video sources, alternating the two modes in
one process, each run a fresh pipeline.

Usage: ``python benchmarks/video_staging.py --model M --video V [--streams 4] [--frames 600] [--rounds 2] [--json OUT]``

Each run reads ``--frames`` frames from each of ``--streams`` copies of the video (``decoder: opencv``) through
YOLO at batch 32 on ``onnxruntime_cuda`` and reports frames/s, host CPU ms per frame (the whole process: decoding
included) and how the frames crossed (``staging``). Prints one line per run; ``--json`` writes them all.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from typing import Any

from trtapps.bench.resources import CpuClock
from trtapps.gpu.frames import STAGE_MODE_ENV
from trtapps.metrics import RunSummary
from trtapps.pipeline import Pipeline


def run_once(model: str, video: str, streams: int, frames: int, batch: int, mode: str) -> dict[str, Any]:
    """One pipeline run over *streams* copies of *video* with the staging *mode*."""
    os.environ[STAGE_MODE_ENV] = mode
    sources = [{"type": "video", "path": video, "decoder": "opencv", "max_frames": frames} for _ in range(streams)]
    app = {"type": "yolo", "model": model, "batch_size": batch}
    summary = RunSummary()
    with Pipeline.from_objects(app=app, source=sources, backend="onnxruntime_cuda") as pipe, CpuClock() as clock:
        done = sum(1 for r in pipe.iter_results(write=False, summary=summary) if r.error is None)
    return {
        "mode": mode,
        "streams": streams,
        "frames": done,
        "expected": streams * frames,
        "fps": round(done / clock.wall_s, 1) if clock.wall_s > 0 else 0.0,
        "cpu": clock.per_frame(done),
        "staging": summary.staging,
        "stages_ms_per_frame": {k: v["ms_per_frame"] for k, v in summary.to_json()["stages"].items()},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--video", required=True)
    parser.add_argument("--streams", type=int, default=4)
    parser.add_argument("--frames", type=int, default=600)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--modes", nargs="+", default=["direct", "pinned"])
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    run_once(args.model, args.video, 1, 64, args.batch, args.modes[0])  # warm-up: CUDA context, kernels, session
    runs = []
    for round_ in range(1, args.rounds + 1):
        for mode in args.modes:
            row = run_once(args.model, args.video, args.streams, args.frames, args.batch, mode)
            row["round"] = round_
            runs.append(row)
            print(f"{mode:<8} round {round_}: {row['frames']}/{row['expected']} frames, {row['fps']:.1f} fps, "
                  f"cpu {row['cpu']['ms_per_frame']:.3f} ms/frame ({row['cpu']['cores_busy']} cores), "
                  f"staging {row['staging']}, stages {row['stages_ms_per_frame']}", flush=True)
    if args.json:
        from trtapps.gpu.device import gpu_info

        doc = {"created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "device": gpu_info(0),
               "python": platform.python_version(), "argv": sys.argv[1:], "runs": runs}
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
