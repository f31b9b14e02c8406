"""Does NVDEC decoding slow the inference engine down? Level (i) (the runner alone, batch 32, input on the device)
measured idle and while N NVDEC streams decode in the background, with the decoders in this process (threads)
and in worker processes (``decode_worker: process``; other CUDA contexts, which the GPU time-slices with ours).

In the 8-stream NVDEC pipeline the inference thread spent 81 % of its wall time inside ONNX Runtime's
``run_with_iobinding`` at twice the engine-only time per batch, with the GIL mostly free; this tells whether the
GPU, not Python, is what the decoders take from the engine.

Usage (GPU machine): ``python benchmarks/device/engine_under_decode.py --model M.onnx --video clip.mp4 --json out``
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))


def background_decode(video: str, streams: int, worker: str, stop: threading.Event, counts: list[int]) -> list[Any]:
    from trtapps.gpu.nvdec import NvdecSource

    def loop(i: int) -> None:
        source = NvdecSource(video, worker=worker)
        while not stop.is_set():
            upcoming = NvdecSource(video, worker=worker)  # its worker starts while this one is read
            for frame in source:
                counts[i] += 1
                del frame
                if stop.is_set():
                    break
            source.close()
            source = upcoming
        source.close()

    threads = [threading.Thread(target=loop, args=(i,), daemon=True) for i in range(streams)]
    for t in threads:
        t.start()
    return threads


class DeviceFrames:
    """NV12 frames already on the device, yielded *total* times (a source with nothing left to decode)."""

    def __init__(self, frames: list[Any], total: int, name: str) -> None:
        self.frames, self.total, self.name = frames, total, name

    def __iter__(self) -> Any:
        from trtapps.structures import Frame

        for i in range(self.total):
            yield Frame(image=self.frames[i % len(self.frames)], source=self.name, index=i, pixel_format="nv12")

    def __len__(self) -> int:
        return self.total

    def close(self) -> None:
        """The frames belong to the caller."""


def pipeline_without_decoding(pipe: Any, video: str, streams: int, per_stream: int, batch: int) -> float:
    """The NVDEC pipeline's work minus the decoding: NV12 frames decoded beforehand, kept on the device."""
    from trtapps.gpu.nvdec import NvdecSource

    frames = [f.image.copy() for f in NvdecSource(video, worker="thread", max_frames=64)]
    make = lambda: [DeviceFrames(frames, per_stream, f"s{i}") for i in range(streams)]  # noqa: E731
    list(pipe.iter_results(write=False, sources=make()))
    from trtapps.metrics import RunSummary

    summary = RunSummary()
    count, t0, t1 = 0, 0.0, 0.0
    for _ in pipe.iter_results(write=False, sources=make(), summary=summary):
        count += 1
        if count == batch:
            t0 = time.perf_counter()
        t1 = time.perf_counter()
    teardown = time.perf_counter() - t1
    print(f"  ({streams} streams: teardown after the last result {teardown:.3f} s, not counted)")
    for name, t in summary.stages.items():  # calls = batches for the model stages
        print(f"  stage {name:>12}: {t.calls:5d} calls, {t.frames:6d} frames, {1000 * t.seconds / max(1, t.calls):8.3f} "
              "ms per call")
    return (count - batch) / (t1 - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--video", required=True)
    parser.add_argument("--streams", type=int, default=8)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--only-pipeline", action="store_true", help="skip the background-decoding runs")
    args = parser.parse_args()

    import cv2

    from trtapps.bench.levels import runner_only
    from trtapps.pipeline import Pipeline

    cap = cv2.VideoCapture(args.video)
    frames = [cap.read()[1] for _ in range(args.batch)]
    cap.release()
    rows = []
    with Pipeline.from_objects(app={"type": "yolo", "model": args.model, "batch_size": args.batch},
                               backend="onnxruntime_cuda") as pipe:
        idle = runner_only(pipe, frames, args.batch, iters=50, budget_s=10.0)
        rows.append({"decoding": "none", "engine_img_s": round(idle, 1)})
        print(f"engine alone: {idle:.1f} img/s", flush=True)
        fps = pipeline_without_decoding(pipe, args.video, args.streams, 440, args.batch)
        rows.append({"decoding": "none", "pipeline_from_device_nv12_fps": round(fps, 1)})
        print(f"pipeline, {args.streams} streams of NV12 frames already on the device: {fps:.1f} fps", flush=True)
        for worker in () if args.only_pipeline else ("thread", "process"):
            stop = threading.Event()
            counts = [0] * args.streams
            threads = background_decode(args.video, args.streams, worker, stop, counts)
            time.sleep(3.0)  # workers up and decoding
            c0, t0 = sum(counts), time.perf_counter()
            engine = runner_only(pipe, frames, args.batch, iters=10_000, budget_s=args.seconds)
            decode = (sum(counts) - c0) / (time.perf_counter() - t0)
            stop.set()
            for t in threads:
                t.join(30)
            rows.append({"decoding": f"{args.streams} streams, {worker}", "engine_img_s": round(engine, 1),
                         "decode_fps_meanwhile": round(decode, 1), "engine_vs_idle": round(engine / idle, 3)})
            print(rows[-1], flush=True)
    if args.json:
        args.json.write_text(json.dumps({"rows": rows}, indent=2))


if __name__ == "__main__":
    main()
