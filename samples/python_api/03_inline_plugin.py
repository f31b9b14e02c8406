"""A custom sink as an inline plugin: a plugin object passed with ``plugins=[...]``, no package, no entry point.

    python 03_inline_plugin.py [DATA] [--output DIR] [--images bus.jpg zidane.jpg]

``CropsPlugin`` registers sink ``crops`` (one JPEG per detection, cut from the frame) on this pipeline's own plugin
manager only; other pipelines and the ``trtapps`` command do not see it. The same hook, in a module named by an
entry point, makes it an installable plugin (see samples/trtapps-example-plugin).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

import cv2
from pydantic import Field

from trtapps import ComponentSpec, FrameResult, RunContext, SinkOptions, hookimpl
from trtapps.pipeline import Pipeline

HERE = Path(__file__).resolve().parent


class CropsOptions(SinkOptions):
    """The ``sinks:`` mapping of the crops sink."""

    type: str = "crops"
    dir: str = Field("crops", description="Output folder, relative to the run's output folder.")
    min_score: float = Field(0.5, ge=0.0, le=1.0, description="Only crop detections scoring at least this.")


class CropsSink:
    """Writes ``<dir>/<image stem>_<n>_<label>.jpg`` for every detection scoring at least ``min_score``."""

    needs_images = True  # the pipeline keeps each frame in result.image for this sink

    def __init__(self, directory: Path, min_score: float) -> None:
        self.dir = directory
        self.min_score = min_score
        self.written: list[Path] = []
        self.dir.mkdir(parents=True, exist_ok=True)

    def write(self, result: FrameResult) -> None:
        if result.detections is None or result.image is None:  # a failed frame
            return
        stem = Path(result.source).stem
        for n, (box, score, class_id) in enumerate(
            zip(result.detections.boxes, result.detections.scores, result.detections.class_ids, strict=True)
        ):
            if score < self.min_score:
                continue
            x1, y1, x2, y2 = (round(float(v)) for v in box)
            crop = result.image[y1:y2, x1:x2]
            if crop.size:
                path = self.dir / f"{stem}_{n:03d}_{result.label(int(class_id)).replace(' ', '_')}.jpg"
                cv2.imwrite(str(path), crop)
                self.written.append(path)

    def close(self, summary: Any) -> None:
        print(f"crops: {len(self.written)} crops of {summary.frames_out} frames in {self.dir}")


class CropsPlugin:
    """A plugin object: hook implementations as methods."""

    def __init__(self) -> None:
        self.__name__ = "crops"  # the plugin's name in errors and listings (default: "CropsPlugin-0")

    @hookimpl
    def trtapps_register_sinks(self, register: Any) -> None:
        register(ComponentSpec("crops", CropsOptions, self.create, summary="one JPEG per detection"))

    @staticmethod
    def create(options: CropsOptions, context: RunContext) -> CropsSink:
        return CropsSink(context.output_path(options.dir), options.min_score)


def data_folder(argument: str | None) -> Path:
    """The shared data folder: the argument, else ``$TRTAPPS_DATA``, else ``../../../shared`` from this file."""
    folder = Path(argument or os.environ.get("TRTAPPS_DATA") or HERE / "../../../shared").resolve()
    if not (folder / "models").is_dir():
        raise SystemExit(f"{folder} is not the shared data folder (no models/ inside); pass it as DATA")
    return folder


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="?", help="the shared data folder (default: $TRTAPPS_DATA)")
    parser.add_argument("--output", type=Path, default=Path("runs/03_inline_plugin"), help="where the sinks write")
    parser.add_argument("--images", nargs="+", default=["bus.jpg", "zidane.jpg"], metavar="NAME",
                        help="photos of DATA/media")
    args = parser.parse_args(argv)
    data = data_folder(args.data)

    with Pipeline.from_objects(
        app={"type": "yolo", "model": str(data / "models" / "yolov8n_dequant.onnx")},
        source={"type": "images", "path": [str(data / "media" / name) for name in args.images]},
        sinks=[{"type": "crops", "min_score": 0.5}, {"type": "jsonl"}],
        output=args.output,
        plugins=[CropsPlugin()],
    ) as pipe:
        print(f"sink 'crops' registered by plugin {pipe.registries.sink.get('crops').plugin!r}")
        pipe.run()
    for path in sorted((args.output / "crops").iterdir()):
        print(f"  {path.name}")


if __name__ == "__main__":
    main()
