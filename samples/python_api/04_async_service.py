"""Serve requests from many threads: ``Pipeline.submit()`` returns a future; concurrent requests share batches.

    python 04_async_service.py [DATA] [--clients 4] [--requests 16] [--images bus.jpg zidane.jpg]

A small service loop: ``--clients`` threads each send requests (one image each) and wait for their futures. The
pipeline's service thread groups requests arriving together into batches of up to ``batch_size`` and runs them
through the model; every future gets exactly its own image's result. ``predict()`` is the synchronous
single-image call, used here to check the answers.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from trtapps import Detections, FrameResult
from trtapps.pipeline import Pipeline

HERE = Path(__file__).resolve().parent


def data_folder(argument: str | None) -> Path:
    """The shared data folder: the argument, else ``$TRTAPPS_DATA``, else ``../../../shared`` from this file."""
    folder = Path(argument or os.environ.get("TRTAPPS_DATA") or HERE / "../../../shared").resolve()
    if not (folder / "models").is_dir():
        raise SystemExit(f"{folder} is not the shared data folder (no models/ inside); pass it as DATA")
    return folder


def detections_of(result: FrameResult) -> Detections:
    """The detections of a result; a failed frame (``result.error`` set) carries none."""
    if result.detections is None:
        raise RuntimeError(f"{result.source}: {result.error}")
    return result.detections


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="?", help="the shared data folder (default: $TRTAPPS_DATA)")
    parser.add_argument("--clients", type=int, default=4, help="concurrent client threads")
    parser.add_argument("--requests", type=int, default=16, help="requests in total")
    parser.add_argument("--images", nargs="+", default=["bus.jpg", "zidane.jpg", "street.jpg"], metavar="NAME",
                        help="photos of DATA/media the clients send, in turn")
    args = parser.parse_args(argv)
    data = data_folder(args.data)
    paths = [data / "media" / name for name in args.images]
    images = []
    for path in paths:
        image = cv2.imread(str(path))  # BGR uint8, what submit() and predict() take (or a path)
        if image is None:
            raise SystemExit(f"{path}: cannot read the image")
        images.append(image)

    with Pipeline.from_objects(
        app={"type": "yolo", "model": str(data / "models" / "yolov8n_dequant.onnx"), "batch_size": 4},
        source={"type": "images", "path": [str(p) for p in paths]},  # required by the config; submit() ignores it
    ) as pipe:
        expected = [detections_of(pipe.predict(image)) for image in images]  # synchronous, one image each

        def request(i: int) -> tuple[int, int, float]:
            which = i % len(images)
            t0 = time.perf_counter()
            detections = detections_of(pipe.submit(images[which]).result(timeout=120))  # blocks this client only
            latency = time.perf_counter() - t0
            same = len(detections) == len(expected[which]) and np.allclose(
                detections.boxes, expected[which].boxes, atol=1e-2)
            if not same:
                raise RuntimeError(f"request {i}: the batched result differs from predict()")
            return which, len(detections), latency

        t0 = time.perf_counter()
        with ThreadPoolExecutor(max_workers=args.clients) as clients:
            answers = list(clients.map(request, range(args.requests)))
        wall = time.perf_counter() - t0

    for i, (which, count, latency) in enumerate(answers):
        print(f"request {i:3d}: {paths[which].name:<12} {count:3d} detections  {1000 * latency:7.1f} ms")
    latencies = [latency for _, _, latency in answers]
    print(f"{len(answers)} requests from {args.clients} clients in {wall:.2f} s: {len(answers) / wall:.1f} images/s, "
          f"median latency {1000 * statistics.median(latencies):.0f} ms")
    print(f"all {len(answers)} results match predict()")


if __name__ == "__main__":
    main()
