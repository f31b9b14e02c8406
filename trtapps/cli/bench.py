"""``trtapps bench``: throughput, latency and cost of a model's pipeline on this machine.

A thin command over :mod:`trtapps.bench`: it decodes the frames once, runs :func:`~trtapps.bench.run_bench`,
prints the tables, and writes the JSON document and the plots. ``--show`` prints (and plots) a document written
earlier, e.g. on a GPU machine without matplotlib.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from trtapps.bench.levels import BenchError
from trtapps.paths import check_output_file

console = Console(stderr=True)
out = Console()

#: frames decoded up front from --video / --images; runs cycle through them
DISTINCT_FRAMES = 64


def register(app: typer.Typer) -> None:
    """Add the ``bench`` command to the root command."""
    app.command("bench")(bench)


def bench(
    model: Annotated[str | None, typer.Option(help="ONNX model path or model-zoo name.")] = None,
    app: Annotated[str, typer.Option(help="The app: yolo, retinaface, scrfd, or a plugin's.")] = "yolo",
    backend: Annotated[str, typer.Option(help="auto, onnxruntime, onnxruntime_cuda, tensorrt.")] = "auto",
    batch: Annotated[str, typer.Option(help="Batch sizes, comma-separated; one pipeline is built per size.")] = (
        "1,8,32"
    ),
    video: Annotated[
        Path | None, typer.Option(help=f"A video; its first {DISTINCT_FRAMES} frames are decoded once and cycled.")
    ] = None,
    images: Annotated[
        Path | None, typer.Option(help=f"A folder of images (up to {DISTINCT_FRAMES}), decoded once and cycled.")
    ] = None,
    streams: Annotated[
        str | None, typer.Option(help="Stream counts, e.g. 1,8,16: N sources at once through the largest batch.")
    ] = None,
    frames: Annotated[
        int | None,
        typer.Option(min=1, help="Frames per measured pipeline run (split over the streams); "
                     "default on a GPU about 3 s at the runner's rate (1024 to 16384), 128 on the CPU."),
    ] = None,
    iters: Annotated[int, typer.Option(min=1, help="Timed calls for levels (i) and (ii) (fewer after 10 s).")] = 50,
    json_path: Annotated[Path | None, typer.Option("--json", help="Write the whole result document here.")] = None,
    plots: Annotated[
        Path | None, typer.Option(help="Write PNG plots to this folder (needs matplotlib: the bench extra).")
    ] = None,
    show: Annotated[
        Path | None, typer.Option(help="Print (and with --plots, plot) a --json document instead of measuring.")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress lines.")] = False,
) -> None:
    """Images/s at three levels (runner, + GPU pre/post, full pipeline), N streams, latency, CPU and GPU memory."""
    from trtapps.bench import BenchConfig, read_image_frames, read_video_frames, run_bench
    from trtapps.bench.report import print_report, require_matplotlib, write_plots

    if plots is not None:
        require_matplotlib()  # fail before minutes of measuring, not after
    if json_path is not None and show is None:
        check_output_file(json_path, "--json")
    if show is not None:
        doc = _load(show)
    else:
        if model is None:
            raise BenchError("--model is required (an ONNX model path or model-zoo name), unless --show is given")
        if (video is None) == (images is None):
            raise BenchError("give exactly one of --video FILE or --images FOLDER: the frames to run on")
        config = BenchConfig(
            model=model,
            app=app,
            backend=backend,
            batches=_int_list(batch, "--batch"),
            streams=_int_list(streams, "--streams") if streams else (),
            frames=frames,
            iters=iters,
            input={"video": video} if video is not None else {"images": images},
        )
        if video is not None:
            decoded = read_video_frames(video, DISTINCT_FRAMES)
        else:
            assert images is not None  # exactly one of the two, checked above
            decoded = read_image_frames(images, DISTINCT_FRAMES)
        log = (lambda line: None) if quiet else (lambda line: console.print(f"[dim]bench[/] {line}"))
        doc = run_bench(config, decoded, log=log)
    print_report(doc, out)
    if json_path is not None and show is None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
        console.print(f"wrote {json_path}")
    if plots is not None:
        for path in write_plots(doc, plots):
            console.print(f"wrote {path}")


def _int_list(value: str, option: str) -> tuple[int, ...]:
    """``"1,8,32"`` → ``(1, 8, 32)``.

    Raises:
        BenchError: anything but positive integers separated by commas.
    """
    try:
        numbers = tuple(int(part) for part in value.split(",") if part.strip())
    except ValueError:
        numbers = ()
    if not numbers or min(numbers) < 1:
        raise BenchError(f"{option} {value!r}: expected positive integers separated by commas, e.g. 1,8,32")
    return numbers


def _load(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BenchError(f"--show {path}: cannot read a JSON document ({type(exc).__name__}: {exc})") from None
    if not isinstance(doc, dict) or doc.get("benchmark") != "trtapps bench":
        raise BenchError(f"--show {path}: not a document written by trtapps bench --json")
    return doc


__all__ = ["bench", "register"]
