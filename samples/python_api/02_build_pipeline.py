"""Assemble a pipeline in Python, no YAML: ``Pipeline.from_objects`` → iterate over the results.

    python 02_build_pipeline.py [DATA] [--images bus.jpg zidane.jpg]

Each component is a mapping shaped like its section of a pipeline file (an options model or a ready object works
too), validated by the options model its plugin registered: a misspelt key fails with the allowed fields. With no
sinks, nothing is written; iterating over the pipeline yields one ``FrameResult`` per input frame, in order.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from trtapps import ConfigError
from trtapps.pipeline import Pipeline

HERE = Path(__file__).resolve().parent


def data_folder(argument: str | None) -> Path:
    """The shared data folder: the argument, else ``$TRTAPPS_DATA``, else ``../../../shared`` from this file."""
    folder = Path(argument or os.environ.get("TRTAPPS_DATA") or HERE / "../../../shared").resolve()
    if not (folder / "models").is_dir():
        raise SystemExit(f"{folder} is not the shared data folder (no models/ inside); pass it as DATA")
    return folder


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="?", help="the shared data folder (default: $TRTAPPS_DATA)")
    parser.add_argument("--images", nargs="+", default=["bus.jpg", "zidane.jpg", "street.jpg"], metavar="NAME",
                        help="photos of DATA/media")
    args = parser.parse_args(argv)
    data = data_folder(args.data)
    model = str(data / "models" / "yolov8n_dequant.onnx")

    try:  # validation errors name the field and the fix, before any model is loaded
        Pipeline.from_objects(app={"type": "yolo", "model": model, "conf_treshold": 0.4},
                              source={"type": "images", "path": str(data / "media")})
    except ConfigError as exc:
        print(f"a misspelt option is refused: {exc}")

    pipe = Pipeline.from_objects(
        app={"type": "yolo", "model": model, "conf_threshold": 0.4, "batch_size": 2, "classes": ["person", "bus"]},
        source={"type": "images", "path": [str(data / "media" / name) for name in args.images]},
        postprocess=[{"type": "min_size", "width": 10, "height": 10}],
        sinks=[],  # results come back to Python only
    )
    with pipe:
        for result in pipe:
            dets = result.detections
            if dets is None:  # a frame that could not be read or processed carries its error instead
                print(f"{result.source}: failed: {result.error}")
                continue
            print(f"{Path(result.source).name} ({result.width}x{result.height}): {len(dets)} detections")
            for box, score, class_id in zip(dets.boxes, dets.scores, dets.class_ids, strict=True):
                x1, y1, x2, y2 = (round(float(v)) for v in box)
                print(f"  {result.label(int(class_id)):<8} {score:.2f}  [{x1}, {y1}, {x2}, {y2}]")


if __name__ == "__main__":
    main()
