"""DeepSORT's ReID step: crops + embeddings per second on the GPU (device cropper) and on the CPU.

Run on the GPU machine::

    python benchmarks/reid_gpu.py --json "$OUT/reid_gpu.json"

Workload: person boxes of real frames — MOT17-09's public FRCNN detections with score ≥ 0.3 (DeepSORT's
``min_confidence``) on the first ``--frames`` frames of ``media/MOT17-09.mp4`` (1920×1080) — embedded with
``osnet_x0_25_msmt17.onnx`` (256×128 crops, 512-d), exactly as :class:`~trtapps_plugins.trackers.reid.ReidEmbedder`
does inside the tracker: one call per frame with that frame's boxes, unit-length features back on the host.

Paths compared (each figure: the median of ``--repeats`` timed passes after one untimed warm-up pass, which
also runs ONNX Runtime's cuDNN algorithm search for every batch shape):

* ``cpu``: host frame, host cropper (``cv2.resize`` per box), ONNX Runtime CPU on all cores — DeepSORT on a CPU
  pipeline;
* ``gpu, device frame``: the frame already on the GPU (the GPU data path), one crop-kernel launch per frame into
  the runner's input buffer, ONNX Runtime CUDA, L2 normalisation on the device, only ``(N, 512)`` back;
* ``gpu, host frame``: the same after one upload of the frame (a CPU pipeline with the ReID model on the GPU);
* ``gpu, host crops``: crops cut on the CPU and uploaded (the usual design), for comparison with the device cropper.

``--batches`` also times calls of N boxes (boxes of consecutive frames pooled and cut from one frame: the same
work per crop, more crops per call), and the crop kernel alone is timed with CUDA events (µs per crop).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "plugins"))

from trtapps.bench.resources import cpu_description  # noqa: E402
from trtapps.runners.onnxruntime import OnnxRuntimeRunner  # noqa: E402
from trtapps_plugins.trackers.mot import load_sequence  # noqa: E402
from trtapps_plugins.trackers.reid import (  # noqa: E402
    CropSpec,
    ReidEmbedder,
    build_reid_runner,
    crop_boxes_device,
    crop_boxes_host,
)

MIN_SCORE = 0.3


def load_workload(data: Path, frames: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(frame, xyxy boxes)`` for the first *frames* frames of MOT17-09 with its public FRCNN detections."""
    seq = load_sequence(data / "mot" / "MOT17" / "MOT17-09-FRCNN")
    cap = cv2.VideoCapture(str(data / "media" / "MOT17-09.mp4"))
    out = []
    for index in range(1, frames + 1):
        ok, image = cap.read()
        if not ok:
            break
        dets = seq.frame_detections(index)
        out.append((image, np.asarray(dets.boxes[dets.scores >= MIN_SCORE], np.float32)))
    cap.release()
    if not out:
        raise SystemExit(f"{data}/media/MOT17-09.mp4: no frames")
    return out


def time_passes(run_pass: Callable[[], None], repeats: int) -> list[float]:
    """Seconds of each timed pass, after one untimed warm-up pass."""
    run_pass()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run_pass()
        times.append(time.perf_counter() - start)
    return times


def row(name: str, crops: int, calls: int, times: list[float], **extra: Any) -> dict[str, Any]:
    seconds = statistics.median(times)
    return {
        "name": name,
        "crops": crops,
        "calls": calls,
        "seconds_median": seconds,
        "seconds_all": times,
        "crops_per_s": crops / seconds,
        "ms_per_call": 1000 * seconds / calls,
        **extra,
    }


def per_frame(
    name: str,
    embedder: ReidEmbedder,
    frames: list[tuple[Any, np.ndarray]],
    repeats: int,
    sync: Callable[[], None],
) -> dict[str, Any]:
    work = [(image, boxes) for image, boxes in frames if len(boxes)]

    def run_pass() -> None:
        for image, boxes in work:
            embedder(image, boxes)
        sync()

    times = time_passes(run_pass, repeats)
    return row(name, sum(len(b) for _, b in work), len(work), times, frames=len(frames))


def time_calls(
    embedder: ReidEmbedder, image: Any, boxes: np.ndarray, calls: int, sync: Callable[[], None], repeats: int
) -> list[float]:
    """Seconds of each timed pass of *calls* embedder calls on the same frame and boxes."""

    def run_pass() -> None:
        for _ in range(calls):
            embedder(image, boxes)
        sync()

    return time_passes(run_pass, repeats)


def pooled(frames: list[tuple[np.ndarray, np.ndarray]], size: int) -> np.ndarray:
    """*size* boxes taken from consecutive frames' detections (all cut from the first frame)."""
    boxes = np.concatenate([b for _, b in frames])
    reps = -(-size // len(boxes))
    return np.tile(boxes, (reps, 1))[:size]


def crop_kernel_us(cp: Any, image: Any, boxes: np.ndarray, spec: CropSpec, out: Any, iters: int) -> float:
    """Median µs per crop of one :func:`crop_boxes_device` call (CUDA events, parameters upload included)."""
    stream = cp.cuda.get_current_stream()
    for _ in range(5):
        crop_boxes_device(image, boxes, spec, out=out)
    times = []
    for _ in range(iters):
        start, end = cp.cuda.Event(), cp.cuda.Event()
        start.record(stream)
        crop_boxes_device(image, boxes, spec, out=out)
        end.record(stream)
        end.synchronize()
        times.append(cp.cuda.get_elapsed_time(start, end))
    return 1000 * statistics.median(times) / len(boxes)


def machine() -> dict[str, Any]:
    import onnxruntime

    cpu = cpu_description()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "versions": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "opencv": cv2.__version__,
            "onnxruntime": onnxruntime.__version__,
        },
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


def markdown(result: dict[str, Any]) -> str:
    """The section for benchmarks/results/trackers.md (to paste after a GPU run)."""
    info, host = result["device"], result["machine"]
    cpu_rows = [r for r in result["per_frame"] if r["name"].startswith("cpu")]
    cpu_rate = cpu_rows[0]["crops_per_s"] if cpu_rows else None
    lines = [
        "## DeepSORT ReID on the GPU: crops + embeddings per second (`benchmarks/reid_gpu.py`)",
        "",
        f"GPU: {info.get('name')} (driver CUDA {info.get('driver_version')}, CuPy {result['cupy']}); host: "
        f"{host['cpu']}, {host['cores']} cores; onnxruntime {host['versions']['onnxruntime']}, "
        f"opencv {host['versions']['opencv']}. {host['date']}.",
        "",
        f"Model `{result['model']}`, batch size {result['batch_size']}. Workload: {result['workload']}. One embedder "
        "call per frame with that frame's boxes, unit-length features back on the host; median of "
        f"{len(result['per_frame'][0]['seconds_all'])} passes after a warm-up pass.",
        "",
        "| path | crops/s | ms per frame | vs CPU |",
        "|---|---:|---:|---:|",
    ]
    for r in result["per_frame"]:
        ratio = f"{r['crops_per_s'] / cpu_rate:.1f}×" if cpu_rate else ""
        lines.append(f"| {r['name']} | {r['crops_per_s']:,.0f} | {r['ms_per_call']:.2f} | {ratio} |")
    lines += ["", "| boxes per call | path | crops/s | ms per call |", "|---:|---|---:|---:|"]
    for r in result["per_batch"]:
        path = r["name"].rsplit(",", 1)[0]
        lines.append(f"| {r['boxes_per_call']} | {path} | {r['crops_per_s']:,.0f} | {r['ms_per_call']:.2f} |")
    kernel = result["crop_kernel"]
    lines += [
        "",
        f"The crop kernel alone (one launch for {kernel['boxes']} boxes of a 1920×1080 frame, CUDA events): "
        f"{kernel['us_per_crop']:.2f} µs per crop.",
        "",
        "Command: `python benchmarks/reid_gpu.py --json benchmarks/results/reid_gpu.json --markdown reid_gpu.md`",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    default_data = Path(os.environ.get("TRTAPPS_DATA", REPO.parent / "shared"))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=default_data, help="the shared data folder")
    parser.add_argument("--model", type=Path, help="ReID model (default: DATA/models/osnet_x0_25_msmt17.onnx)")
    parser.add_argument("--frames", type=int, default=100, help="frames of MOT17-09 (1-based from the first)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32, help="crops per inference call (DeepSORT's default)")
    parser.add_argument("--batches", default="1,8,32,64,128", help="boxes per call for the batch sweep")
    parser.add_argument("--gpu-backend", default="onnxruntime_cuda", help="onnxruntime_cuda or tensorrt")
    parser.add_argument("--no-cpu", action="store_true", help="skip the CPU rows")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--markdown", type=Path, help="write the trackers.md section here")
    args = parser.parse_args(argv)

    import cupy as cp

    from trtapps.gpu.device import gpu_info

    model = args.model or args.data / "models" / "osnet_x0_25_msmt17.onnx"
    frames = load_workload(args.data, args.frames)
    boxes_per_frame = [len(b) for _, b in frames]
    gpu = ReidEmbedder(build_reid_runner(model, args.gpu_backend, batch_size=args.batch_size),
                       batch_size=args.batch_size)
    gpu_sync = gpu.stream.synchronize
    device_frames = [(cp.asarray(image), boxes) for image, boxes in frames]
    cp.cuda.Device().synchronize()

    # crops cut on the CPU from the host frame, uploaded as one batch (the embedder uploads a host batch)
    gpu_host_crops = ReidEmbedder(gpu.runner, batch_size=args.batch_size, cropper=crop_boxes_host)

    rows = [
        per_frame(f"gpu ({args.gpu_backend}), device frame", gpu, device_frames, args.repeats, gpu_sync),
        per_frame(f"gpu ({args.gpu_backend}), host frame", gpu, frames, args.repeats, gpu_sync),
    ]
    rows.append(per_frame(f"gpu ({args.gpu_backend}), host crops", gpu_host_crops, frames, args.repeats, gpu_sync))
    cpu = None
    if not args.no_cpu:
        cpu = ReidEmbedder(OnnxRuntimeRunner(model), batch_size=args.batch_size)
        rows.append(per_frame("cpu (onnxruntime)", cpu, frames, args.repeats, lambda: None))

    sweep = []
    image0, device0 = frames[0][0], device_frames[0][0]
    for size in (int(s) for s in args.batches.split(",") if s):
        boxes = pooled(frames, size)
        calls = max(1, 256 // size)
        cases: list[tuple[str, ReidEmbedder, Any, Callable[[], None]]] = [
            ("gpu, device frame", gpu, device0, gpu_sync),
        ]
        if cpu is not None:
            cases.append(("cpu", cpu, image0, lambda: None))
        for label, embedder, image, sync in cases:
            times = time_calls(embedder, image, boxes, calls, sync, args.repeats)
            sweep.append(row(f"{label}, {size} boxes/call", size * calls, calls, times, boxes_per_call=size))

    many = pooled(frames, 64)
    out = cp.empty((64, 3, gpu.spec.height, gpu.spec.width), dtype=cp.float32)
    kernel = {
        "boxes": 64,
        "us_per_crop": crop_kernel_us(cp, device0, many, gpu.spec, out, 50),
        "frame_boxes": int(boxes_per_frame[0]),
    }

    info = gpu_info(0)
    result = {
        "benchmark": "reid_gpu",
        "model": Path(model).name,
        "workload": (
            f"MOT17-09 frames 1-{len(frames)} (1920x1080, media/MOT17-09.mp4), MOT17-09-FRCNN public detections "
            f"with score >= {MIN_SCORE}: {sum(boxes_per_frame)} boxes, {statistics.mean(boxes_per_frame):.1f} per "
            f"frame (max {max(boxes_per_frame)})"
        ),
        "batch_size": args.batch_size,
        "gpu_backend": args.gpu_backend,
        "device": info,
        "cupy": cp.__version__,
        "machine": machine(),
        "per_frame": rows,
        "per_batch": sweep,
        "crop_kernel": kernel,
    }
    print(f"device: {info.get('name')} · {result['model']} · {result['workload']}")
    print(f"{'path':<44} {'crops/s':>10} {'ms/frame':>9}")
    for r in rows:
        print(f"{r['name']:<44} {r['crops_per_s']:>10,.0f} {r['ms_per_call']:>9.2f}")
    print(f"{'batch sweep':<44} {'crops/s':>10} {'ms/call':>9}")
    for r in sweep:
        print(f"{r['name']:<44} {r['crops_per_s']:>10,.0f} {r['ms_per_call']:>9.2f}")
    print(f"crop kernel alone: {kernel['us_per_crop']:.2f} us per crop (64 boxes, one launch)")
    section = markdown(result)
    print("\n" + section)
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(section + "\n", encoding="utf-8")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.json}")
    gpu.close()
    if cpu is not None:
        cpu.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
