"""Soak run (issue 7): a small model over looping video sources for M minutes; memory must stay flat and no
frame may be lost.

Every ``--interval`` seconds it prints a line (time, frames, fps, RSS, GPU memory); at the end, the table of
samples and the verdict: RSS (and GPU memory on a GPU backend) grew less than 2 % after the warm-up, and frames
in = frames out + counted drops with no failed frame. The exit status is 0 for PASS, 1 for FAIL. See
``docs/benchmarking.md``.

Planned runs::

    python benchmarks/soak.py --minutes 10 --backend onnxruntime_cuda --json soak_gpu.json   # GPU machine
    python benchmarks/soak.py --minutes 30 --backend onnxruntime --json soak_cpu.json        # CPU
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from pathlib import Path

from rich.console import Console

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from trtapps.bench.soak import SoakConfig, run_soak, sample_line, soak_table, verdict_lines  # noqa: E402
from trtapps.errors import UserError  # noqa: E402

DATA = Path(os.environ.get("TRTAPPS_DATA", REPO.parent / "shared"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--minutes", type=float, required=True, help="how long the sources keep looping")
    parser.add_argument("--backend", default="auto", help="auto, onnxruntime, onnxruntime_cuda, tensorrt")
    parser.add_argument("--model", default=str(DATA / "models" / "yolox_nano.onnx"),
                        help="a small model (default: yolox_nano.onnx from TRTAPPS_DATA; yolov8n_dequant.onnx "
                             "also fits)")
    parser.add_argument("--app", default="yolo")
    parser.add_argument("--video", type=Path, default=DATA / "media" / "face_tracker.mp4",
                        help="decoded over and over (default: face_tracker.mp4 from TRTAPPS_DATA)")
    parser.add_argument("--streams", type=int, default=1, help="looping sources given to the pipeline at once")
    parser.add_argument("--decoder", choices=("opencv", "nvdec"), default="opencv",
                        help="nvdec: the GPU decodes, frames stay on it (needs a GPU backend and PyNvVideoCodec)")
    parser.add_argument("--decode-worker", choices=("auto", "thread", "process"), default="auto",
                        help="with --decoder nvdec: source.decode_worker (process: the shared worker processes)")
    parser.add_argument("--batch", type=int, default=1, help="batch size (capped by the model)")
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between samples")
    parser.add_argument("--warmup", type=float, default=None,
                        help="seconds left out of the growth check (default: 10 %% of the run, 10 to 120 s)")
    parser.add_argument("--json", type=Path, help="write the samples and the verdict here")
    args = parser.parse_args(argv)

    console = Console()
    config = SoakConfig(model=args.model, video=args.video, minutes=args.minutes, backend=args.backend,
                        app=args.app, streams=args.streams, batch=args.batch, interval_s=args.interval,
                        warmup_s=args.warmup, decoder=args.decoder, decode_worker=args.decode_worker)
    console.print(f"[bold]soak[/] {Path(args.model).name} · backend {args.backend} · {args.streams} stream(s) of "
                  f"{args.video.name} ({args.decoder}) · {args.minutes:g} min · sample every {args.interval:g} s · warm-up "
                  f"{config.warmup:g} s")
    try:
        doc = run_soak(config, on_sample=lambda row: console.print(sample_line(row), highlight=False))
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    doc["command"] = shlex.join(["python", "benchmarks/soak.py", *(sys.argv[1:] if argv is None else argv)])
    console.print(soak_table(doc))
    for line in verdict_lines(doc):
        console.print(line, highlight=False)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
        console.print(f"wrote {args.json}")
    return 0 if doc["verdict"]["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
