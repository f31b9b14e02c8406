"""Ultralytics' own ``predict`` against trtapps on the same ONNX model, the same frames and the same GPU, in one run
(issue 7, part 6).

Three contestants, each at every ``--batches`` size, over the same decoded frames held in memory (1280×720
from face_tracker.mp4 by default), so decoding is on neither side:

1. **Ultralytics**: ``YOLO(model.onnx, task="detect").predict(chunk, batch=B, rect=False, device=0, …)`` called on
   successive chunks of B frames (a list of arrays is one batch for Ultralytics). It runs the ``.onnx`` through
   ONNX Runtime's CUDA provider; ``rect=False`` because it treats a dynamic-batch ONNX as fully dynamic and would
   letterbox to a rectangle the 640×640 model rejects.
2. **trtapps, same backend** (``onnxruntime_cuda``): the full pipeline (``Pipeline.iter_results``) from the same
   frames to host results: level (iii) of ``trtapps bench``.
3. **trtapps, best backend** (``auto``: TensorRT where it is installed, else the same as 2, said so).

Both sides use the same thresholds (``--conf``, ``--iou``: Ultralytics' predict defaults 0.25 and 0.7) and
``max_det``; before timing, the detections of the first ``--check`` frames are compared (greedy same-class
matching, mean IoU of the matched boxes, boxes unmatched on each side), so the comparison is fair. The CPU work
of each side is recorded: process CPU time per image measured over the timed passes, Ultralytics' own per-image
``speed`` split (preprocess, inference, postprocess), trtapps' stage times, and what each does on the CPU.

Run on the GPU machine (Ultralytics and torch installed there; never a trtapps dependency)::

    python benchmarks/peer_ultralytics.py --model .gpudata/models/yolov8n_dequant.onnx \\
        --video .gpudata/media/face_tracker.mp4 --out "$OUT/peer"

A CPU dry run (``--device cpu``) runs the same code with ONNX Runtime's CPU provider on both sides.
Writes ``peer_ultralytics.json`` and ``peer_ultralytics.md`` to ``--out``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from trtapps.bench import read_video_frames  # noqa: E402
from trtapps.bench.core import host, versions  # noqa: E402
from trtapps.bench.levels import full_pipeline  # noqa: E402
from trtapps.bench.resources import CpuClock  # noqa: E402
from trtapps.ops.boxes import box_iou  # noqa: E402

#: the done-when of issue 7: trtapps (same backend) at batch 32 at least this many times Ultralytics' images/s
TARGET_RATIO = 15.0

#: what each side does on the host CPU, on a GPU run and on a CPU dry run
CPU_WORK = {
    "gpu": {
        "ultralytics": "letterbox (cv2.resize + pad) of every frame, np.stack, BGR→RGB and HWC→CHW on the CPU; "
        "torch upload and /255 on the device; for a dynamic-batch ONNX no IOBinding, so the input goes back to a "
        "host array for session.run and the outputs come back to the host, then to the device again; NMS in "
        "torchvision; a Results object per image",
        "trtapps": "the host side of each frame's upload (its copy towards the device) and the bookkeeping of one "
        "Frame and one FrameResult per image; letterbox, normalisation, inference, decode and NMS run on the GPU, "
        "with one small device→host copy of the compact results per batch",
    },
    "cpu": {
        "ultralytics": "everything (CPU dry run): letterbox, normalisation, ONNX Runtime CPU inference, NMS in "
        "torchvision, a Results object per image",
        "trtapps": "everything (CPU dry run): letterbox, normalisation, ONNX Runtime CPU inference, decode and NMS "
        "in NumPy, on a reader and a worker thread",
    },
}


# -- detections and their agreement --------------------------------------------------------------------------------
def match(
    ref_boxes: np.ndarray, ref_cls: np.ndarray, boxes: np.ndarray, cls: np.ndarray, min_iou: float = 0.5
) -> list[tuple[int, int, float]]:
    """Greedy one-to-one matching of same-class boxes by IoU (best pairs first), pairs with IoU ≥ *min_iou*."""
    if len(ref_boxes) == 0 or len(boxes) == 0:
        return []
    iou = box_iou(ref_boxes, boxes)
    iou[ref_cls[:, None] != cls[None, :]] = -1.0
    pairs = []
    while True:
        i, j = np.unravel_index(int(np.argmax(iou)), iou.shape)
        if iou[i, j] < min_iou:
            return pairs
        pairs.append((int(i), int(j), float(iou[i, j])))
        iou[i, :] = -1.0
        iou[:, j] = -1.0


def agreement(ultra: list[dict[str, np.ndarray]], ours: list[dict[str, np.ndarray]]) -> dict[str, Any]:
    """Mean matched IoU, score differences and unmatched counts over frames (Ultralytics as the reference)."""
    ious: list[float] = []
    score_diffs: list[float] = []
    only_ultra = only_ours = 0
    for u, t in zip(ultra, ours):
        pairs = match(u["boxes"], u["cls"], t["boxes"], t["cls"])
        ious += [p[2] for p in pairs]
        score_diffs += [abs(float(u["scores"][i]) - float(t["scores"][j])) for i, j, _ in pairs]
        only_ultra += len(u["boxes"]) - len(pairs)
        only_ours += len(t["boxes"]) - len(pairs)
    return {
        "frames": len(ultra),
        "ultralytics_detections": int(sum(len(u["boxes"]) for u in ultra)),
        "trtapps_detections": int(sum(len(t["boxes"]) for t in ours)),
        "matched": len(ious),
        "mean_matched_iou": round(float(np.mean(ious)), 4) if ious else None,
        "min_matched_iou": round(float(np.min(ious)), 4) if ious else None,
        "max_score_diff": round(float(np.max(score_diffs)), 4) if score_diffs else None,
        "only_ultralytics": only_ultra,
        "only_trtapps": only_ours,
    }


def _ultra_dets(result: Any) -> dict[str, np.ndarray]:
    boxes = result.boxes
    return {"boxes": boxes.xyxy.cpu().numpy().astype(np.float64), "scores": boxes.conf.cpu().numpy(),
            "cls": boxes.cls.cpu().numpy().astype(np.int64)}


def _trt_dets(result: Any) -> dict[str, np.ndarray]:
    d = result.detections
    return {"boxes": np.asarray(d.boxes, np.float64), "scores": np.asarray(d.scores),
            "cls": np.asarray(d.class_ids, np.int64)}


# -- the contestants ----------------------------------------------------------------------------------------------
class Ultralytics:
    """Ultralytics' YOLO on the ONNX model, called the way its docs show for in-memory frames."""

    def __init__(self, model: str, device: str, conf: float, iou: float, max_det: int) -> None:
        os.environ.setdefault("YOLO_AUTOINSTALL", "false")  # never pip-install anything mid-benchmark
        os.environ.setdefault("YOLO_OFFLINE", "1")
        try:
            import ultralytics
            from ultralytics import YOLO
        except ImportError:
            raise SystemExit(  # noqa: B904 - the import error says nothing more useful
"ultralytics is not installed: pip install ultralytics (it is not a trtapps dependency)")
        self.version = ultralytics.__version__
        self.model = YOLO(model, task="detect")
        self.kwargs = {"device": device, "conf": conf, "iou": iou, "max_det": max_det, "rect": False,
                       "imgsz": 640, "verbose": False}

    def predict(self, frames: Sequence[np.ndarray], batch: int) -> list[Any]:
        return list(self.model.predict(list(frames), batch=batch, **self.kwargs))

    def measure(self, frames: Sequence[np.ndarray], batch: int, passes: int) -> dict[str, Any]:
        self.predict(frames[:batch], batch)  # warm-up: session, CUDA context, predictor setup
        speeds = {"preprocess": 0.0, "inference": 0.0, "postprocess": 0.0}
        n = 0
        with CpuClock() as clock:
            for _ in range(passes):
                for k in range(0, len(frames) - batch + 1, batch):
                    for r in self.predict(frames[k:k + batch], batch):
                        n += 1
                        for key in speeds:
                            speeds[key] += float(r.speed.get(key) or 0.0)
        return {
            "images": n,
            "seconds": round(clock.wall_s, 4),
            "img_s": round(n / clock.wall_s, 1),
            "cpu": clock.per_frame(n),
            "speed_ms_per_image": {k: round(v / max(n, 1), 3) for k, v in speeds.items()},
        }


def trtapps_pipeline(
    model: str, backend: str, *, batch: int, device: int, conf: float, iou: float, max_det: int
) -> Any:
    from trtapps.pipeline import Pipeline

    app = {"type": "yolo", "model": model, "batch_size": batch, "conf_threshold": conf, "iou_threshold": iou,
           "max_det": max_det}
    spec: Any = backend if backend == "onnxruntime" else {"type": backend, "device": device}
    return Pipeline.from_objects(app=app, backend=spec)


def measure_trtapps(pipe: Any, frames: Sequence[np.ndarray], passes: int) -> dict[str, Any]:
    run = full_pipeline(pipe, frames, total=passes * (len(frames) // pipe.batch_size) * pipe.batch_size,
                        warmup=2 * pipe.batch_size)
    doc = run.to_json()
    # end to end (start-up and teardown in the time), as Ultralytics' predict loop is timed; the steady rate apart
    return {"images": doc["frames"], "seconds": doc["seconds"], "img_s": doc["end_to_end_img_s"],
            "steady_img_s": doc["img_s"], "cpu": doc["cpu"],
            "stages_ms_per_frame": doc["stages_ms_per_frame"], "latency": doc["latency"]}


# -- report ---------------------------------------------------------------------------------------------------------
def markdown(doc: dict[str, Any]) -> str:
    device = doc["device"]
    lines = [
        "# trtapps vs Ultralytics predict, same ONNX model, same frames, one run",
        "",
        f"Device: {device.get('name', device)} · host {doc['host']['cpu']} ({doc['host']['cores']} cores) · "
        f"model `{Path(doc['model']).name}` · {doc['frames']['count']} frames of {doc['frames']['size']} from "
        f"`{doc['frames']['video']}`, {doc['passes']} pass(es) · thresholds conf {doc['conf']}, IoU {doc['iou']}, "
        f"max_det {doc['max_det']}.",
        f"Versions: {', '.join(f'{k} {v}' for k, v in doc['versions'].items())}.",
        "",
        f"Command: `{doc['command']}`",
        "",
        "| batch | contestant | backend | images/s | × Ultralytics | CPU ms/image | where the time went (ms/image) |",
        "|---:|---|---|---:|---:|---:|---|",
    ]
    for row in doc["results"]:
        u = row["ultralytics"]
        sp = u["speed_ms_per_image"]
        lines.append(f"| {row['batch']} | Ultralytics {doc['ultralytics_version']} predict | {row['ultralytics_backend']} "
                     f"| {u['img_s']:,.1f} | 1.00 | {u['cpu']['ms_per_frame']:.3f} | preprocess {sp['preprocess']:.2f}, "
                     f"inference {sp['inference']:.2f}, postprocess {sp['postprocess']:.2f} |")
        for key, label in (("trtapps_same", "trtapps pipeline"), ("trtapps_best", "trtapps pipeline, best backend")):
            t = row.get(key)
            if t is None:
                continue
            if t.get("same_as") == "trtapps_same":
                lines.append(f"| {row['batch']} | {label} | {t['backend']} | (the row above: TensorRT is not "
                             "installed, the best backend is the same) | | | |")
                continue
            stages = ", ".join(f"{k} {v:.3f}" for k, v in t["stages_ms_per_frame"].items() if v >= 0.001)
            lines.append(f"| {row['batch']} | {label} | {t['backend']} | {t['img_s']:,.1f} | "
                         f"{t['ratio_vs_ultralytics']:.2f} | {t['cpu']['ms_per_frame']:.3f} | {stages} |")
    work = doc["cpu_work"]
    lines += ["", "What each side does on the CPU:", "",
              f"- Ultralytics: {work['ultralytics']}.", f"- trtapps: {work['trtapps']}.", ""]
    a = doc["agreement"]
    lines += [
        f"Same detections? On the first {a['frames']} frames: Ultralytics {a['ultralytics_detections']} boxes, "
        f"trtapps {a['trtapps_detections']}, {a['matched']} matched (same class, IoU ≥ 0.5), mean matched IoU "
        f"{a['mean_matched_iou']}, lowest {a['min_matched_iou']}, largest score difference {a['max_score_diff']}; "
        f"unmatched: {a['only_ultralytics']} only in Ultralytics, {a['only_trtapps']} only in trtapps.",
        "",
    ]
    if doc.get("target"):
        lines.append(doc["target"])
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    data = Path(os.environ.get("TRTAPPS_DATA", REPO.parent / "shared"))
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--model", default=str(data / "models" / "yolov8n_dequant.onnx"))
    parser.add_argument("--video", type=Path, default=data / "media" / "face_tracker.mp4")
    parser.add_argument("--frames", type=int, default=256, help="distinct frames decoded up front")
    parser.add_argument("--passes", type=int, default=2, help="timed passes over the frames, each side")
    parser.add_argument("--batches", default="32,1")
    parser.add_argument("--device", default="0", help="CUDA device ordinal, or cpu for a dry run")
    parser.add_argument("--conf", type=float, default=0.25)
    parser.add_argument("--iou", type=float, default=0.7)
    parser.add_argument("--max-det", type=int, default=300)
    parser.add_argument("--check", type=int, default=8, help="frames whose detections are compared")
    parser.add_argument("--out", type=Path, required=True, help="folder for peer_ultralytics.json and .md")
    args = parser.parse_args(argv)

    cpu = args.device == "cpu"
    same_backend = "onnxruntime" if cpu else "onnxruntime_cuda"
    best_backend = "onnxruntime" if cpu else "auto"
    batches = [int(b) for b in args.batches.split(",")]
    frames = read_video_frames(args.video, args.frames)
    if len(frames) < max(batches):
        raise SystemExit(f"--frames {args.frames}: fewer frames ({len(frames)}) than the largest batch")
    print(f"{len(frames)} frames of {frames[0].shape[1]}x{frames[0].shape[0]} from {args.video.name}; "
          f"batches {batches}; device {args.device}", flush=True)

    ultra = Ultralytics(args.model, "cpu" if cpu else args.device, args.conf, args.iou, args.max_det)
    settings = {"device": 0 if cpu else int(args.device), "conf": args.conf, "iou": args.iou, "max_det": args.max_det}

    # fairness first: the same detections on the first frames
    check = frames[: args.check]
    with trtapps_pipeline(args.model, same_backend, batch=1, **settings) as pipe:
        ours = [_trt_dets(pipe.predict(f)) for f in check]
    theirs = [_ultra_dets(r) for r in ultra.predict(check, len(check))]
    agree = agreement(theirs, ours)
    print(f"agreement on {agree['frames']} frames: mean matched IoU {agree['mean_matched_iou']}, "
          f"matched {agree['matched']}, only Ultralytics {agree['only_ultralytics']}, "
          f"only trtapps {agree['only_trtapps']}", flush=True)

    results = []
    for batch in batches:
        print(f"batch {batch}: Ultralytics predict …", flush=True)
        u = ultra.measure(frames, batch, args.passes)
        row: dict[str, Any] = {"batch": batch, "ultralytics": u,
                               "ultralytics_backend": f"ONNX Runtime {'CPU' if cpu else 'CUDA'} provider"}
        for key, backend in (("trtapps_same", same_backend), ("trtapps_best", best_backend)):
            with trtapps_pipeline(args.model, backend, batch=batch, **settings) as pipe:
                ran = pipe.runner.backend
                if key == "trtapps_best" and ran == row["trtapps_same"]["backend"]:
                    row[key] = {"backend": ran, "same_as": "trtapps_same"}
                    continue
                print(f"batch {batch}: trtapps pipeline on {ran} …", flush=True)
                t = measure_trtapps(pipe, frames, args.passes)
            t["backend"] = ran
            t["ratio_vs_ultralytics"] = round(t["img_s"] / u["img_s"], 2)
            row[key] = t
        print(f"batch {batch}: Ultralytics {u['img_s']:,.1f} img/s, trtapps {row['trtapps_same']['img_s']:,.1f} "
              f"img/s on {same_backend} ({row['trtapps_same']['ratio_vs_ultralytics']:.2f}×)", flush=True)
        results.append(row)

    import cv2

    doc: dict[str, Any] = {
        "benchmark": "peer_ultralytics",
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": shlex.join(["python", "benchmarks/peer_ultralytics.py", *(sys.argv[1:] if argv is None else argv)]),
        "model": args.model,
        "frames": {"video": args.video.name, "count": len(frames), "size": f"{frames[0].shape[1]}x{frames[0].shape[0]}"},
        "passes": args.passes,
        "conf": args.conf, "iou": args.iou, "max_det": args.max_det,
        "device": _device(cpu, 0 if cpu else int(args.device)),
        "host": host(),
        "versions": {**versions(), "ultralytics": ultra.version, "torch": _torch_version(), "cv2": cv2.__version__},
        "ultralytics_version": ultra.version,
        "cpu_work": CPU_WORK["cpu" if cpu else "gpu"],
        "agreement": agree,
        "results": results,
    }
    at32 = next((r for r in results if r["batch"] == 32), None)
    if at32 is not None and not cpu:
        ratio = at32["trtapps_same"]["ratio_vs_ultralytics"]
        doc["target"] = (f"Target (issue 7): trtapps ≥ {TARGET_RATIO:g}× Ultralytics at batch 32 with the same "
                         f"backend: {ratio:.2f}× — {'met' if ratio >= TARGET_RATIO else 'NOT met'}.")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "peer_ultralytics.json").write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    text = markdown(doc)
    (args.out / "peer_ultralytics.md").write_text(text, encoding="utf-8")
    print(text)
    return 0


def _torch_version() -> str | None:
    torch = sys.modules.get("torch")
    return None if torch is None else str(torch.__version__)


def _device(cpu: bool, ordinal: int = 0) -> dict[str, Any]:
    if cpu:
        return {"kind": "cpu", "name": host()["cpu"]}
    from trtapps.gpu.device import gpu_info

    return {"kind": "gpu", **gpu_info(ordinal)}


if __name__ == "__main__":
    start = time.perf_counter()
    code = main()
    print(f"{time.perf_counter() - start:.1f} s", file=sys.stderr)
    sys.exit(code)
