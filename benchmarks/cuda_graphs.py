"""CUDA graphs benchmark (issue 7, part 3): the same model with and without graphs, measured in one run.

For each batch size (default 1, 8, 32), two levels, each without and with CUDA graphs:

(i)  runner only, the input batch already on the device:
     ``direct``     the runner without graphs (the caller's array bound as is);
     ``graph``      ``cuda_graph=True``: the input copied into the graph's buffer, then one replay;
     ``graph, 0-copy`` the input already in ``runner.input_buffer`` (what preprocessing can write into).
(ii) runner + GPU pre/post, from frames in pinned host memory to detections on the host:
     ``direct``     one H2D copy, the app's preprocessing kernel, the runner without graphs, the app's
                    decode + NMS kernels and one D2H copy (``benchmarks/gpu_pipeline.py`` level ii);
     ``graph``      the same with the graph runner;
     ``all graphs`` preprocessing written straight into the runner's input buffer, the runner's graph, and the
                    decode + NMS kernels and the D2H copy captured with :class:`trtapps.gpu.graphs.GraphCache`
                    (YOLOv8 heads without ``classes``; capacity 4096 keeps NMS on its shared-memory sort). Its
                    detections are checked to equal the app's own decode of the same outputs before it is timed.

Times are host wall-clock per batch (call + stream synchronisation), median over ``--iters`` calls after
``--warmup`` calls (which include every capture); images/s = batch / median. The gain is graph images/s over
direct images/s at the same level. Before timing, the graph runner's outputs are compared with the direct
runner's: equal bit for bit when both sessions chose the same cuDNN algorithms (``--cudnn HEURISTIC``); with
EXHAUSTIVE search the two sessions time algorithms separately, so expect ~1e-6 relative differences there.

Usage (GPU machine, after ``source benchmarks/device/setup.sh``)::

    python benchmarks/cuda_graphs.py --json "$OUT/cuda_graphs.json"
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

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DATA = Path(os.environ.get("TRTAPPS_DATA", REPO.parent / "shared"))

#: the decode capacity of the captured variant (NMS sorts in shared memory up to this many candidates)
CAPTURED_CAPACITY = 4096


def read_frames(video: Path, count: int) -> list[np.ndarray]:
    import cv2

    cap = cv2.VideoCapture(str(video))
    frames: list[np.ndarray] = []
    while len(frames) < count:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    if not frames:
        raise SystemExit(f"{video}: no frames")
    return frames


def timed(fn: Callable[[], Any], sync: Callable[[], Any], iters: int, warmup: int) -> dict[str, float]:
    """Median and p90 host milliseconds of ``fn(); sync()`` over *iters* calls after *warmup* calls."""
    for _ in range(warmup):
        fn()
        sync()
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    return {"median_ms": statistics.median(times), "p90_ms": times[min(len(times) - 1, int(0.9 * len(times)))]}


def pipeline(model: Path, batch: int, backend: str, cudnn: str, cuda_graph: bool) -> Any:
    from trtapps.pipeline import Pipeline
    from trtapps.registry import BackendOptions
    from trtapps.runners.onnxruntime_cuda import OnnxRuntimeCudaOptions
    from trtapps.runners.tensorrt import TensorRTOptions

    options: BackendOptions
    if backend == "onnxruntime_cuda":
        options = OnnxRuntimeCudaOptions(cuda_graph=cuda_graph, cudnn_conv_algo_search=cudnn)
    else:
        options = TensorRTOptions(cuda_graph=cuda_graph)
    pipe = Pipeline.from_objects(app={"type": "yolo", "model": str(model), "batch_size": batch}, backend=options)
    if not pipe.device_path:
        raise SystemExit(f"backend {backend}: the GPU data path is not active")
    return pipe


class PinnedFrames:
    """The batch's frames packed in one pinned host buffer, and device views after one H2D copy."""

    def __init__(self, frames: list[np.ndarray]) -> None:
        import cupy

        from trtapps.gpu.memory import PinnedBuffer

        self.shapes = [f.shape for f in frames]
        self.sizes = [f.nbytes for f in frames]
        self.offsets = np.cumsum([0, *self.sizes])
        self.pinned = PinnedBuffer(int(sum(self.sizes)))
        packed = self.pinned.view((int(sum(self.sizes)),), np.uint8)
        for f, o, n in zip(frames, self.offsets, self.sizes):
            packed[o:o + n] = f.reshape(-1)
        self.packed = packed
        self.staging = cupy.empty(int(sum(self.sizes)), cupy.uint8)

    def upload(self, stream: Any) -> list[Any]:
        self.staging.set(self.packed, stream=stream)
        return [self.staging[o:o + n].reshape(s) for o, n, s in zip(self.offsets, self.sizes, self.shapes)]

    def close(self) -> None:
        self.pinned.free()


class CapturedDecode:
    """YOLOv8 decode + NMS + the compact D2H copy of one batch size, replayed from a CUDA graph.

    The same kernels and arguments as :meth:`YoloApp.decode_device` for a v8 head without ``classes`` and
    ``multi_label``, on buffers allocated once (the graph's addresses) and a device copy of the letterbox
    parameters refreshed before each launch.
    """

    def __init__(self, app: Any, batch: int, stream: Any) -> None:
        import cupy
        import cupyx

        from trtapps.gpu.graphs import GraphCache
        from trtapps.ops.cuda.decode import allocate_candidates
        from trtapps.ops.cuda.nms import CompactDetections

        opts = app.options
        self.app, self.batch, self.stream = app, batch, stream
        self.conf, self.iou, self.max_det = opts.conf_threshold, opts.iou_threshold, opts.max_det
        self.class_aware, self.clip = not opts.agnostic_nms, opts.clip_boxes
        with stream:
            self.params = cupy.empty((batch, 6), cupy.float32)
            self.candidates = allocate_candidates(batch, CAPTURED_CAPACITY, 7)
            self.compact = CompactDetections.allocate(batch, self.max_det, 7, CAPTURED_CAPACITY)
        self.pinned = cupyx.empty_pinned((int(self.compact.storage.size),), dtype=np.float32)
        self.cache = GraphCache(f"yolo decode+nms batch {batch}")

    @staticmethod
    def problem(app: Any) -> str | None:
        """Why this variant cannot stand for the app's decode, or ``None``."""
        if app.head.layout != "v8":
            return f"head layout {app.head.layout} (the captured variant is written for YOLOv8 heads)"
        if app.options.classes or app.options.multi_label:
            return "classes / multi_label are set (the captured variant leaves them out)"
        return None

    def __call__(self, pred: Any, metas: list[Any]) -> list[Any]:
        from trtapps.gpu.graphs import array_key
        from trtapps.ops.cuda.decode import decode_yolov8
        from trtapps.ops.cuda.nms import CompactDetections, HostCompact, nms_batched
        from trtapps.ops.decode import params_from_letterbox

        stream = self.stream
        self.params.set(params_from_letterbox(metas), stream=stream)

        def work() -> Any:
            found = decode_yolov8(pred, self.conf, out=self.candidates, stream=stream)
            result = nms_batched(
                found, self.iou, max_det=self.max_det, class_aware=self.class_aware, params=self.params,
                clip=self.clip, out=self.compact, stream=stream,
            )
            return result.storage  # the download stays outside the graph: CuPy refuses D2H during a capture

        self.cache.run(array_key(pred), work, stream).get(stream=stream, out=self.pinned, blocking=False)
        stream.synchronize()
        storage = self.pinned
        view = CompactDetections.from_storage(storage, self.batch, self.max_det, 7, CAPTURED_CAPACITY)
        host = HostCompact(view.kept, view.found, view.records, CAPTURED_CAPACITY, storage)
        return [host.detections(b) for b in range(self.batch)]


def same_detections(a: list[Any], b: list[Any]) -> bool:
    return len(a) == len(b) and all(
        np.array_equal(x.boxes, y.boxes) and np.array_equal(x.scores, y.scores)
        and np.array_equal(x.class_ids, y.class_ids)
        for x, y in zip(a, b)
    )


def bench_batch(model: Path, frames: list[np.ndarray], batch: int, args: argparse.Namespace) -> dict[str, Any]:
    import cupy

    from trtapps.gpu.stream import pipeline_stream
    from trtapps.ops.cuda.preprocess import preprocess_batch
    from trtapps.structures import Frame

    direct = pipeline(model, batch, args.backend, args.cudnn, cuda_graph=False)
    graphed = pipeline(model, batch, args.backend, args.cudnn, cuda_graph=True)
    row: dict[str, Any] = {"batch": batch, "graph_runner_active": bool(graphed.runner.cuda_graph)}
    problem = getattr(graphed.runner, "cuda_graph_problem", None)
    if problem:
        row["graph_problem"] = problem
    batch_frames = [Frame(frames[i % len(frames)], "memory", i) for i in range(batch)]
    name = graphed.app.head.input_name
    output = graphed.app.head.output_name
    host_inputs, _ = direct.app.preprocess(batch_frames)
    times: dict[str, dict[str, float]] = {}

    # (i) runner only ------------------------------------------------------------------------------------------
    for label, pipe in (("direct", direct), ("graph", graphed)):
        stream = pipeline_stream(pipe.context, pipe.context.device)
        with stream:
            feeds = {k: cupy.asarray(v) for k, v in host_inputs.items()}

        def runner_only(pipe: Any = pipe, feeds: dict[str, Any] = feeds, stream: Any = stream) -> Any:
            return pipe.runner.infer(feeds, stream)

        times[f"i {label}"] = timed(runner_only, stream.synchronize, args.iters, args.warmup)
    g_stream = pipeline_stream(graphed.context, graphed.context.device)
    zero_copy = graphed.runner.input_buffer(name, batch)
    zero_copy.set(host_inputs[name], stream=g_stream)
    times["i graph, 0-copy"] = timed(lambda: graphed.runner.infer({name: zero_copy}, g_stream),
                                     g_stream.synchronize, args.iters, args.warmup)
    d_stream = pipeline_stream(direct.context, direct.context.device)
    with d_stream:
        want = direct.runner.infer({name: cupy.asarray(host_inputs[name])}, d_stream)[output].get(stream=d_stream)
    got = graphed.runner.infer({name: zero_copy}, g_stream)[output].get(stream=g_stream)
    row["max_abs_diff_graph_vs_direct"] = float(np.abs(got - want).max())

    # (ii) runner + GPU pre/post --------------------------------------------------------------------------------
    staged = {label: PinnedFrames([f.image for f in batch_frames]) for label in ("direct", "graph", "all")}

    def level_ii(pipe: Any, label: str) -> Callable[[], list[Any]]:
        stream = pipeline_stream(pipe.context, pipe.context.device)

        def run() -> list[Any]:
            with stream:
                images = staged[label].upload(stream)
                inputs, metas = pipe.app.preprocess_device(images, batch_frames, stream)
                outputs = pipe.runner.infer(inputs, stream)
                return pipe.app.decode_device(outputs, batch_frames, metas, stream)

        return run

    times["ii direct"] = timed(level_ii(direct, "direct"), d_stream.synchronize, args.iters, args.warmup)
    times["ii graph"] = timed(level_ii(graphed, "graph"), g_stream.synchronize, args.iters, args.warmup)

    why_not = CapturedDecode.problem(graphed.app)
    if why_not is None:
        captured = CapturedDecode(graphed.app, batch, g_stream)

        def all_graphs() -> list[Any]:
            with g_stream:
                images = staged["all"].upload(g_stream)
                metas, rois, kwargs = graphed.app.preprocess_arguments([im.shape[:2] for im in images])
                preprocess_batch(images, graphed.runner.input_buffer(name, batch), rois, stream=g_stream, **kwargs)
                outputs = graphed.runner.infer({name: graphed.runner.input_buffer(name, batch)}, g_stream)
                return captured(outputs[output], metas)

        reference = level_ii(graphed, "graph")()
        for _ in range(3):  # the direct call (the capture follows it) and two replays give the app's detections
            if not same_detections(all_graphs(), reference):
                raise SystemExit(f"batch {batch}: captured decode + NMS differs from the app's decode_device")
        times["ii all graphs"] = timed(all_graphs, g_stream.synchronize, args.iters, args.warmup)
        row["decode_capture_problem"] = captured.cache.problem
        row["detections_per_image"] = round(sum(len(d.scores) for d in reference) / batch, 2)
    else:
        row["all_graphs_skipped"] = why_not
    for s in staged.values():
        s.close()
    direct.close()
    graphed.close()

    for label, t in times.items():
        row[label] = {"median_ms": round(t["median_ms"], 4), "p90_ms": round(t["p90_ms"], 4),
                      "img_s": round(batch / t["median_ms"] * 1000, 1)}
    for level in ("i", "ii"):
        base = row[f"{level} direct"]["img_s"]
        row[f"{level} gain"] = {k.split(" ", 1)[1]: round(v["img_s"] / base, 3)
                                for k, v in row.items() if isinstance(v, dict) and k.startswith(f"{level} ")
                                and "img_s" in v and k != f"{level} direct"}
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=DATA / "models" / "yolov8n_dequant.onnx")
    parser.add_argument("--video", type=Path, default=DATA / "media" / "face_tracker.mp4",
                        help="frames decoded once up front (1280x720 by default); batches cycle through them")
    parser.add_argument("--batches", default="1,8,32")
    parser.add_argument("--iters", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--backend", default="onnxruntime_cuda", choices=["onnxruntime_cuda", "tensorrt"])
    parser.add_argument("--cudnn", default="EXHAUSTIVE", choices=["EXHAUSTIVE", "HEURISTIC", "DEFAULT"],
                        help="cuDNN algorithm search of both ONNX Runtime sessions")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    import cupy
    import cv2

    from trtapps.gpu.device import gpu_info

    frames = read_frames(args.video, 64)
    rows = [bench_batch(args.model, frames, int(b), args) for b in args.batches.split(",")]
    versions = {"python": platform.python_version(), "numpy": np.__version__, "cupy": cupy.__version__,
                "opencv": cv2.__version__}
    try:
        import onnxruntime

        versions["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        pass
    if args.backend == "tensorrt":
        import tensorrt

        versions["tensorrt"] = tensorrt.__version__
    info = gpu_info(0)
    result = {
        "benchmark": "cuda_graphs",
        "model": args.model.name,
        "backend": args.backend,
        "cudnn_conv_algo_search": args.cudnn if args.backend == "onnxruntime_cuda" else None,
        "frames": f"{frames[0].shape[1]}x{frames[0].shape[0]} from {args.video.name}",
        "iters": args.iters,
        "warmup": args.warmup,
        "device": info,
        "versions": versions,
        "cpu_count": os.cpu_count(),
        "results": rows,
    }
    print(f"device: {info.get('name')} · {args.backend} · model {args.model.name} · frames {result['frames']} · "
          f"median of {args.iters}")
    print(f"{'batch':>5}  {'level':<22} {'ms/batch':>9} {'p90':>8} {'img/s':>9} {'gain':>6}")
    for row in rows:
        for label in ("i direct", "i graph", "i graph, 0-copy", "ii direct", "ii graph", "ii all graphs"):
            if label not in row:
                continue
            t = row[label]
            level, variant = label.split(" ", 1)
            gain = "" if variant == "direct" else f"{row[f'{level} gain'][variant]:.3f}"
            print(f"{row['batch']:>5}  {label:<22} {t['median_ms']:>9.3f} {t['p90_ms']:>8.3f} {t['img_s']:>9.1f} "
                  f"{gain:>6}")
        notes = [f"graphs {'on' if row['graph_runner_active'] else 'OFF: ' + str(row.get('graph_problem'))}",
                 f"max |graph - direct| = {row['max_abs_diff_graph_vs_direct']:.3g}"]
        if row.get("decode_capture_problem"):
            notes.append(f"decode capture not possible: {row['decode_capture_problem']}")
        if row.get("all_graphs_skipped"):
            notes.append(f"'all graphs' skipped: {row['all_graphs_skipped']}")
        print(f"{'':>7}" + "; ".join(notes))
    one = next((r for r in rows if r["batch"] == 1), None)
    if one is not None:
        print(f"batch 1 gain: runner only x{one['i gain']['graph']:.2f} (x{one['i gain']['graph, 0-copy']:.2f} "
              f"zero-copy), runner + GPU pre/post x{one['ii gain']['graph']:.2f}"
              + (f", all graphs x{one['ii gain']['all graphs']:.2f}" if "all graphs" in one["ii gain"] else ""))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
