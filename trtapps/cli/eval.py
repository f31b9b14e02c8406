"""``trtapps eval detect`` and ``trtapps eval faces``: accuracy of an app's pipeline on a labelled set.

Thin commands over :mod:`trtapps.evaluation`: the thresholds come from the app family's evaluation preset
(printed with the result; ``--conf``/``--iou`` replace them), the images run through the same pipeline code
as ``trtapps run``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from trtapps.errors import ConfigError
from trtapps.paths import check_output_file

console = Console(stderr=True)
out = Console()

eval_app = typer.Typer(
    name="eval",
    help="Measure accuracy: COCO mAP (detect) or WIDER FACE AP (faces) of an app's own pipeline.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

_PRECISION_HELP = (
    "The precision the --model is in: fp32 (default), fp16 or int8, checked against its ONNX graph (an engine's "
    "was set at its build). eval runs the model as given and converts nothing: make the fp16/int8 model first "
    "with `trtapps build MODEL --app APP --precision fp16|int8` (int8 also --calib IMAGES, images outside the "
    "evaluation set) and pass that with --model."
)
# the options both commands take, declared once
_Model = Annotated[str, typer.Option(help="ONNX model path or model-zoo name.")]
_Backend = Annotated[str, typer.Option(help="auto, onnxruntime, onnxruntime_cuda, tensorrt.")]
_Precision = Annotated[str, typer.Option(help=_PRECISION_HELP)]
_Conf = Annotated[float | None, typer.Option(min=0.0, max=1.0, help="Replace the preset's score threshold.")]
_Iou = Annotated[float | None, typer.Option(min=0.0, max=1.0, help="Replace the preset's NMS IoU.")]
_AppOptions = Annotated[
    list[str] | None,
    typer.Option(
        "--option",
        "-O",
        help="App option KEY=VALUE (YAML value, repeatable), e.g. input_size=[640,640]; wins over the preset.",
    ),
]
_Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")]

_HINTS = (
    ("app.conf_threshold", "--conf"),
    ("app.iou_threshold", "--iou"),
    ("app.batch_size", "--batch"),
    ("app.type", "--app"),
    ("app.model", "--model"),
    ("backend.type", "--backend"),
)


def register(app: typer.Typer) -> None:
    """Add the ``eval`` command group to the root command."""
    app.add_typer(eval_app, name="eval")


@eval_app.command("detect")
def detect(
    app: Annotated[str, typer.Option(help="The app: yolo, or a plugin's detection app.")],
    model: _Model,
    data: Annotated[
        Path,
        typer.Option(
            help="The set: a folder with instances.json + images/ (COCO), or images/ + labels/ + data.yaml (YOLO)."
        ),
    ],
    gt: Annotated[Path | None, typer.Option(help="A COCO instances json replacing the set's ground truth.")] = None,
    backend: _Backend = "auto",
    precision: _Precision = "fp32",
    batch: Annotated[int, typer.Option(min=1, help="Frames per inference call (capped by the model).")] = 8,
    conf: _Conf = None,
    iou: _Iou = None,
    option: _AppOptions = None,
    json_path: Annotated[
        Path | None, typer.Option("--json", help='Write {"mAP50-95", "mAP50", "images", …} to this file.')
    ] = None,
    top: Annotated[int, typer.Option(min=0, help="Classes shown at each end of the per-class table.")] = 5,
    quiet: _Quiet = False,
) -> None:
    """COCO mAP50-95 / mAP50 (pycocotools) of a detection app with its family's evaluation preset."""
    from trtapps.evaluation import evaluate_detection

    _check_json(json_path)

    result = _evaluate(
        evaluate_detection,
        "detect",
        quiet,
        option,
        data,
        app=app,
        model=model,
        gt=gt,
        backend=backend,
        precision=precision,
        batch=batch,
        conf=conf,
        iou=iou,
    )
    table = Table(title=f"detection accuracy · {Path(result.run.model).name} on {data}", header_style="bold")
    for col in ("images", "detections", "mAP50-95", "mAP50"):
        table.add_column(col, justify="right")
    table.add_row(str(result.images), str(result.detections), f"{result.map50_95:.4f}", f"{result.map50:.4f}")
    out.print(table)
    out.print(
        f"backend {result.run.backend} ({result.run.device}) · precision {result.run.precision} · "
        f"classes matched {result.class_matching}"
    )
    present = [c for c in result.score.per_class if c.instances > 0]
    ranked = sorted(present, key=lambda c: (-c.ap, c.name))
    if top and ranked:
        shown = ranked if len(ranked) <= 2 * top else [*ranked[:top], None, *ranked[-top:]]
        per_class = Table(title=f"per-class AP ({len(ranked)} classes with ground truth)", header_style="bold")
        for col in ("class", "instances", "AP50-95", "AP50"):
            per_class.add_column(col, justify="left" if col == "class" else "right")
        for c in shown:
            if c is None:
                per_class.add_row("…", "", "", "")
            else:
                per_class.add_row(c.name, str(c.instances), f"{c.ap:.4f}", f"{c.ap50:.4f}")
        out.print(per_class)
    _print_preset(result, json_path)


@eval_app.command("faces")
def faces(
    app: Annotated[str, typer.Option(help="The app: retinaface, scrfd, or a plugin's face app.")],
    model: _Model,
    data: Annotated[Path, typer.Option(help="The set: a folder with images/<event>/<name>.jpg and wider_gt.json.")],
    gt: Annotated[
        Path | None,
        typer.Option(help="wider_gt.json, or the official ground_truth folder (wider_face_val.mat, wider_*_val.mat)."),
    ] = None,
    backend: _Backend = "auto",
    precision: _Precision = "fp32",
    batch: Annotated[
        int, typer.Option(min=1, help="Frames per inference call; at native size only same-size frames batch.")
    ] = 4,
    conf: _Conf = None,
    iou: _Iou = None,
    option: _AppOptions = None,
    json_path: Annotated[
        Path | None, typer.Option("--json", help='Write {"easy", "medium", "hard", …} to this file.')
    ] = None,
    quiet: _Quiet = False,
) -> None:
    """WIDER FACE AP (easy / medium / hard, IoU 0.5) of a face app with its evaluation preset."""
    from trtapps.evaluation import evaluate_faces
    from trtapps.evaluation.faces import SETTINGS

    _check_json(json_path)

    result = _evaluate(
        evaluate_faces,
        "faces",
        quiet,
        option,
        data,
        app=app,
        model=model,
        gt=gt,
        backend=backend,
        precision=precision,
        batch=batch,
        conf=conf,
        iou=iou,
    )
    table = Table(title=f"WIDER FACE AP · {Path(result.run.model).name} on {data}", header_style="bold")
    table.add_column("setting")
    table.add_column("faces counted", justify="right")
    table.add_column("AP", justify="right")
    for setting in SETTINGS:
        table.add_row(setting, str(result.faces[setting]), f"{result.aps[setting]:.4f}")
    out.print(table)
    out.print(
        f"{result.images} images · {result.detections} detections · backend {result.run.backend} "
        f"({result.run.device}) · precision {result.run.precision}"
    )
    _print_preset(result, json_path)


# -- helpers -------------------------------------------------------------------------------------------------------
def _evaluate(evaluate: Any, task: str, quiet: bool, option: list[str] | None, data: Path, **run: Any) -> Any:
    """Run ``evaluate(data, **run)`` with the ``--option`` app options, under the progress bar; print failures."""
    progress, on_image, on_start = _progress(quiet, task)
    with progress:
        result = _translate(
            lambda: evaluate(
                data,
                **run,
                app_options=_parse_options(option),
                on_image=on_image,
                on_start=on_start,
            )
        )
    _print_failures(result.run.failures)
    return result


def _print_preset(result: Any, json_path: Path | None) -> None:
    """The closing lines of both commands: the preset, its note and the time; then the ``--json`` file."""
    out.print(f"preset {result.run.preset.describe()}")
    out.print(f"[dim]{result.run.preset.note}; {result.run.seconds:.1f} s[/]")
    _write_json(json_path, result.to_json())


def _progress(quiet: bool, task: str) -> tuple[Progress, Any, Any]:
    progress = Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=quiet,
        transient=True,
    )
    bar = progress.add_task(f"eval {task}", total=None)

    def on_start(pipeline: Any, preset: Any) -> None:
        console.print(
            f"[bold]trtapps eval {task}[/] {pipeline.config.app.type} · model {Path(pipeline.runner.model_path).name}"
            f" · backend {pipeline.runner.backend} ({pipeline.runner.device}) · batch {pipeline.batch_size}"
        )
        console.print(f"preset {preset.describe()}")

    def on_image(result: Any) -> None:
        progress.update(bar, advance=1)

    return progress, on_image, on_start


def _translate(call: Any) -> Any:
    """Run *call*; config problems name the command's options rather than pipeline-file paths."""
    try:
        return call()
    except ConfigError as exc:
        problems = []
        for problem in exc.problems:
            problem = problem.replace("<config>: ", "")
            for field, option in _HINTS:
                problem = problem.replace(field, f"{option} ({field})")
            problems.append(re.sub(r"^app\.(\w+)", r"--option \1 (app.\1)", problem))
        raise ConfigError(problems) from None


def _parse_options(items: list[str] | None) -> dict[str, Any]:
    """``["key=value", …]`` → app options; values are YAML (``0.5``, ``true``, ``[640, 640]``).

    Raises:
        ConfigError: an item without ``=``.
    """
    import yaml

    options: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--option {item!r}: expected KEY=VALUE (e.g. --option max_det=100)")
        try:
            options[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError:
            options[key.strip()] = value
    return options


def _print_failures(failures: list[tuple[str, str]]) -> None:
    for path, error in failures[:10]:
        console.print(f"[yellow]failed[/] {path}: {error} (counted as no detections)")
    if len(failures) > 10:
        console.print(f"[yellow]… and {len(failures) - 10} more failed images[/]")


def _check_json(path: Path | None) -> None:
    """Fail before the run, not after it, when the ``--json`` file cannot be written."""
    if path is not None:
        check_output_file(path, "--json")


def _write_json(path: Path | None, document: dict[str, Any]) -> None:
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    console.print(f"wrote {path}")


__all__ = ["eval_app", "register"]
