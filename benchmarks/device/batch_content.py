"""One GPU batch of NV12 frames through the pipeline's device path, outside the pipeline's threads: does its time
depend on how many distinct frames the batch holds? (Session 8: one stream of device frames ran the pipeline at
362-485 fps, eight streams of the same frames at 2,976; a one-stream batch holds 32 distinct frames, an 8-stream
batch 4 frames 8 times each.)

Usage (GPU machine): ``python benchmarks/device/batch_content.py --model M.onnx --video clip.mp4``
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--video", required=True)
    parser.add_argument("--iters", type=int, default=30)
    parser.add_argument("--search", default="auto", help="the runner's cudnn_conv_algo_search")
    args = parser.parse_args()

    from trtapps.gpu.nvdec import NvdecSource
    from trtapps.gpu.stream import pipeline_stream
    from trtapps.metrics import RunSummary
    from trtapps.pipeline import Pipeline
    from trtapps.structures import Frame

    images = [f.image.copy() for f in NvdecSource(args.video, worker="thread", max_frames=64)]
    backend = {"type": "onnxruntime_cuda", "cudnn_conv_algo_search": args.search}
    with Pipeline.from_objects(app={"type": "yolo", "model": args.model, "batch_size": 32}, backend=backend) as pipe:
        print(f"cudnn_conv_algo_search {pipe.runner.provider_options.get('cudnn_conv_algo_search')}")
        stream = pipeline_stream(pipe.context, pipe.context.device)
        summary = RunSummary()
        layouts = {"32 distinct": list(range(32)), "4 distinct x 8": [i % 4 for i in range(32)],
                   "1 frame x 32": [0] * 32, "32 distinct (32..63)": list(range(32, 64))}
        for name, picks in layouts.items():
            frames = [Frame(image=images[i], source="s", index=k, pixel_format="nv12") for k, i in enumerate(picks)]
            for _ in range(3):
                pipe._submit_on_device(frames, summary)()
            stream.synchronize()
            t0 = time.perf_counter()
            for _ in range(args.iters):
                pipe._submit_on_device(frames, summary)()
            whole = (time.perf_counter() - t0) / args.iters
            t0 = time.perf_counter()
            for _ in range(args.iters):
                inputs, _ = pipe.app.preprocess_device([f.image for f in frames], frames, stream)
                stream.synchronize()
            pre = (time.perf_counter() - t0) / args.iters
            t0 = time.perf_counter()
            for _ in range(args.iters):
                pipe.runner.infer(inputs, stream)
                stream.synchronize()
            infer = (time.perf_counter() - t0) / args.iters
            print(f"{name:>22}: whole batch {1000 * whole:7.2f} ms · preprocess {1000 * pre:6.2f} ms · "
                  f"inference {1000 * infer:6.2f} ms", flush=True)
        # batch sizes alternating, as at the end of every run (a last, partial batch): is a size change costly?
        for sizes in ([32, 24] * 4, [32] * 4 + [24] * 4, [32, 16, 8, 24, 32]):
            times = []
            for n in sizes:
                frames = [Frame(image=images[i], source="s", index=i, pixel_format="nv12") for i in range(n)]
                stream.synchronize()
                t0 = time.perf_counter()
                pipe._submit_on_device(frames, summary)()
                times.append(f"{n}:{1000 * (time.perf_counter() - t0):.1f}")
            print("batch size: ms per batch  " + "  ".join(times), flush=True)


if __name__ == "__main__":
    main()
