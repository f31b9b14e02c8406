"""Hunt for the intermittent CUDA-graph test failure (sessions 12 and 13): a graph replay's output differing from
a direct run's on the same input, seen only while another process used the GPU.

Repeats the pattern of ``tests/gpu/test_cuda_graphs.py`` (YOLOv8n, batch sizes 8, 2, 8, 2, 1, 8, a new rotation
of 8 real images per call, HEURISTIC cuDNN search, TF32 off) ``--iters`` times, optionally beside a GPU load in
another process (``--load matmul``: CuPy matrix products in a loop). On every mismatch it tells which side moved:
it runs the direct runner and the graph again on the same input, reads the graph's input buffer back, and looks
for the output among earlier inputs' (a stale input). Prints one JSON line per mismatch and a summary.

Usage (GPU machine): ``python benchmarks/device/graph_race.py --iters 300 --load matmul --mode zero_copy``
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

_LOAD = """
import cupy as cp, time
a = cp.random.rand(8192, 8192, dtype=cp.float32)
end = time.time() + {seconds}
while time.time() < end:
    for _ in range(20):
        a = a @ a
        a /= cp.abs(a).max() + 1
    cp.cuda.Device().synchronize()
"""


def _runner(model: Path, **kwargs: Any) -> Any:
    from trtapps.runners.onnxruntime_cuda import OnnxRuntimeCudaRunner

    return OnnxRuntimeCudaRunner(model, max_batch=8, cudnn_conv_algo_search="HEURISTIC", tf32=False,
                                 pad_batch=False, **kwargs)


def main() -> int:
    import cupy as cp

    from conftest import shared_path
    from letterboxed_media import batch_of

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=300)
    parser.add_argument("--load", choices=("none", "matmul"), default="none")
    parser.add_argument("--mode", choices=("zero_copy", "copy"), default="zero_copy",
                        help="zero_copy: the input is written into runner.input_buffer; copy: a CuPy array is fed")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    images = batch_of(8)
    load = None
    if args.load == "matmul":
        load = subprocess.Popen([sys.executable, "-c", _LOAD.format(seconds=600)])
        time.sleep(3)
    sizes = (8, 2, 8, 2, 1, 8)
    mismatches: list[dict[str, Any]] = []
    start = time.perf_counter()
    try:
        with _runner(shared_path("models/yolov8n_dequant.onnx")) as direct, \
                _runner(shared_path("models/yolov8n_dequant.onnx"), cuda_graph=True) as graphed:
            assert graphed.cuda_graph, graphed.cuda_graph_problem
            stream = graphed.stream
            earlier: dict[int, list[tuple[int, np.ndarray]]] = {}

            def graph_run(x: np.ndarray, batch: int) -> tuple[np.ndarray, Any]:
                if args.mode == "zero_copy":
                    feed = graphed.input_buffer("images", batch)
                    with stream:
                        feed.set(x, stream=stream)
                else:
                    with stream:
                        feed = cp.asarray(x)
                return graphed.infer({"images": feed}, stream)["output0"].get(stream=stream), feed

            def direct_run(x: np.ndarray) -> np.ndarray:
                with stream:
                    return direct.infer({"images": cp.asarray(x)}, stream)["output0"].get(stream=stream)

            for step in range(args.iters):
                batch = sizes[step % len(sizes)]
                x = np.ascontiguousarray(np.roll(images, step, axis=0)[:batch])
                got, feed = graph_run(x, batch)
                want = direct_run(x)
                if not np.array_equal(got, want):
                    input_ok = bool(np.array_equal(feed.get(stream=stream), x))
                    want_again = direct_run(x)
                    got_again, _ = graph_run(x, batch)
                    stale = [s for s, w in earlier.get(batch, []) if np.array_equal(got, w)]
                    rows = [int(b) for b in range(batch) if not np.array_equal(got[b], want[b])]
                    record = {"step": step, "batch": batch, "mismatched_fraction": float(np.mean(got != want)),
                              "rows_differing": rows, "graph_input_read_back_equal": input_ok,
                              "direct_again_equals_direct": bool(np.array_equal(want_again, want)),
                              "graph_again_equals_direct": bool(np.array_equal(got_again, want)),
                              "graph_again_equals_graph": bool(np.array_equal(got_again, got)),
                              "graph_output_equals_direct_output_of_steps": stale}
                    mismatches.append(record)
                    print(json.dumps(record), flush=True)
                earlier.setdefault(batch, []).append((step, want))
                earlier[batch] = earlier[batch][-6:]
    finally:
        if load is not None:
            load.kill()
            load.wait()
    summary = {"iters": args.iters, "mode": args.mode, "load": args.load, "mismatches": len(mismatches),
               "seconds": round(time.perf_counter() - start, 1), "records": mismatches}
    print(f"{args.mode}, load {args.load}: {len(mismatches)} mismatches in {args.iters} calls "
          f"({summary['seconds']} s)")
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
