"""GPU pipeline benchmark (issue 3), now a thin wrapper over ``trtapps bench`` (:mod:`trtapps.bench`).

Measures the three levels — (i) runner only, input on the device; (ii) runner + GPU pre/post from pinned
memory; (iii) the full pipeline from decoded frames to results on the host — at each batch size, with their
ratios, latency, CPU time and GPU memory, then the same full pipeline on the CPU backend (batch 8) for
comparison, and writes both documents into one JSON file.

Usage (on the GPU machine): ``python benchmarks/gpu_pipeline.py --model M.onnx --video clip.mp4 --json out.json``
(the same as ``trtapps bench --model M.onnx --video clip.mp4 --backend onnxruntime_cuda --json out.json`` plus
``trtapps bench ... --backend onnxruntime --batch 8 --frames 64``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rich.console import Console

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from trtapps.bench import BenchConfig, read_video_frames, run_bench  # noqa: E402
from trtapps.bench.report import print_report  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--video", required=True, type=Path, help="its first 64 frames are decoded once and cycled")
    parser.add_argument("--batches", default="1,8,32")
    parser.add_argument("--iters", type=int, default=50)
    parser.add_argument("--backend", default="onnxruntime_cuda")
    parser.add_argument("--streams", default="", help="also N-stream runs at the largest batch, e.g. 8,16")
    parser.add_argument("--no-cpu", action="store_true", help="skip the CPU-backend comparison")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    console = Console()
    err = Console(stderr=True)
    frames = read_video_frames(args.video, 64)
    gpu = BenchConfig(
        model=args.model,
        backend=args.backend,
        batches=tuple(int(b) for b in args.batches.split(",")),
        streams=tuple(int(s) for s in args.streams.split(",") if s),
        iters=args.iters,
        input={"video": args.video},
    )
    result = {"benchmark": "gpu_pipeline", "gpu": run_bench(gpu, frames, log=lambda s: err.print(f"[dim]{s}[/]"))}
    print_report(result["gpu"], console)
    if not args.no_cpu:
        cpu = BenchConfig(model=args.model, backend="onnxruntime", batches=(8,), frames=64, iters=5,
                          input={"video": args.video})
        result["cpu"] = run_bench(cpu, frames, log=lambda s: err.print(f"[dim]CPU {s}[/]"))
        print_report(result["cpu"], console)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        err.print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
