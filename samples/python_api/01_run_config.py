"""Run a pipeline file from Python: ``Pipeline.from_file`` → ``run()`` → the run summary.

    python 01_run_config.py [DATA] [--output DIR] [--images bus.jpg zidane.jpg]

DATA is the trtapps shared data folder (models/, media/); default: ``$TRTAPPS_DATA``, else ``../../../shared``
relative to this file. ``yolo_images.yaml`` reads it through ``${env:TRTAPPS_DATA}``; ``--images`` replaces the
file's source (``overrides`` replace whole top-level sections, like ``trtapps run --source``).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from trtapps.pipeline import Pipeline

HERE = Path(__file__).resolve().parent
CONFIG = HERE / "yolo_images.yaml"


def data_folder(argument: str | None) -> Path:
    """The shared data folder: the argument, else ``$TRTAPPS_DATA``, else ``../../../shared`` from this file."""
    folder = Path(argument or os.environ.get("TRTAPPS_DATA") or HERE / "../../../shared").resolve()
    if not (folder / "models").is_dir():
        raise SystemExit(f"{folder} is not the shared data folder (no models/ inside); pass it as DATA")
    return folder


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="?", help="the shared data folder (default: $TRTAPPS_DATA)")
    parser.add_argument("--output", type=Path, default=Path("runs/01_run_config"), help="where the sinks write")
    parser.add_argument("--images", nargs="+", metavar="NAME", help="photos of DATA/media to use instead of all")
    args = parser.parse_args(argv)
    data = data_folder(args.data)

    os.environ["TRTAPPS_DATA"] = str(data)  # what ${env:TRTAPPS_DATA} in the pipeline file expands to
    overrides: dict[str, object] = {"output": str(args.output)}
    if args.images:
        overrides["source"] = {"type": "images", "path": [str(data / "media" / name) for name in args.images]}

    with Pipeline.from_file(CONFIG, overrides=overrides) as pipe:
        summary = pipe.run()  # every frame to the sinks; returns the RunSummary

    print(f"frames in {summary.frames_in} · out {summary.frames_out} · failed {summary.frames_failed} · "
          f"detections {summary.detections} · backend {summary.backend} · {summary.fps:.1f} fps")
    for stage, timer in summary.stages.items():
        print(f"  {stage:<12} {timer.ms_per_frame:8.2f} ms/frame")
    for line in (args.output / "results.jsonl").read_text().splitlines():
        record = json.loads(line)
        labels = sorted(d["label"] for d in record.get("detections", []))
        print(f"{Path(record['source']).name}: {len(labels)} detections ({', '.join(labels)})")
    print(f"results in {args.output.resolve()}")


if __name__ == "__main__":
    main()
