"""``trtapps build`` (check → fix → precision → ONNX or TensorRT engine) and ``trtapps info`` (what a model is).

Thin commands over :mod:`trtapps.build`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from trtapps.errors import ConfigError

console = Console(stderr=True)
out = Console()


def register(app: typer.Typer) -> None:
    """Add the ``build`` and ``info`` commands to the root command."""
    app.command("build")(build)
    app.command("info")(info)


def build(
    model: Annotated[str, typer.Argument(help="The ONNX model (a path or a model-zoo name).")],
    app: Annotated[str, typer.Option(help="The app that runs it: yolo, retinaface, scrfd, or a plugin's.")],
    variant: Annotated[str | None, typer.Option(help="The app's head variant (yolo: v5, v8, yolox).")] = None,
    precision: Annotated[str, typer.Option(help="fp32, fp16 or int8 (int8 needs --calib).")] = "fp32",
    max_batch: Annotated[int, typer.Option("--max-batch", min=1, max=1024, help="Largest batch (min is 1).")] = 1,
    calib: Annotated[
        Path | None, typer.Option(help="Calibration images (int8; for fp16 the first ones check the outputs).")
    ] = None,
    backend: Annotated[str, typer.Option(help="onnxruntime (writes the ONNX) or tensorrt (an engine).")] = (
        "onnxruntime"
    ),
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Where the product goes.")] = None,
    input_size: Annotated[
        str | None, typer.Option("--input-size", help="HxW for TensorRT engines of models with dynamic H/W (640x640).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print what was built as JSON.")] = False,
) -> None:
    """Prepare a model: check the export, fix it (dynamic batch, proven), set its precision, build the engine."""
    from trtapps.build import build_model

    result = build_model(
        model, app=app, variant=variant, precision=precision, max_batch=max_batch, calib=calib, backend=backend,
        output=output, input_size=_parse_size(input_size),
    )
    if as_json:
        typer.echo(json.dumps(result.to_json(), indent=2))
        return
    c = result.check
    out.print(f"[bold]check[/] {escape(str(result.source))}: {c['error']} errors, {c['warning']} warnings, "
              f"{c['info']} info (`trtapps onnx check` lists them)")
    f = result.fix
    proof = ", ".join(f"{k} {v:.3g}" for k, v in f["proof"]["max_abs_diff"].items())
    out.print(f"[bold]fix[/] {'dynamic' if f['dynamic_batch'] else 'static'} batch, {f['changes']} changes, nodes "
              f"{f['nodes'][0]} → {f['nodes'][1]}; proof at batch {f['proof']['batches']}: max |diff| {proof}")
    for line in result.precision_lines:
        out.print(("[bold]precision[/] " if not line.startswith(" ") else "") + escape(line))
    if result.engine is not None:
        out.print(f"[bold]engine[/] {escape(result.engine_note)}")
        out.print(f"wrote {escape(str(result.engine))} (+ {escape(result.engine.with_suffix('.json').name)}, "
                  f"{escape(result.onnx.name)}) · batch 1..{result.max_batch}")
    else:
        out.print(f"wrote {escape(str(result.onnx))} · {result.precision} · batch 1..{result.max_batch} · "
                  "`trtapps info` shows its metadata")


def info(
    path: Annotated[Path, typer.Argument(help="An ONNX model or a TensorRT engine (with its .json side file).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """Show a model's inputs/outputs, precision, batch range, app/variant, class names and build metadata."""
    from trtapps.build import model_info
    from trtapps.onnx.graph import format_dims

    found = model_info(path)
    if as_json:
        typer.echo(json.dumps(found.to_json(), indent=2, default=str))
        return
    out.print(f"[bold]{escape(found.path)}[/] · {found.kind}")
    table = Table(show_header=True, header_style="bold")
    for col in ("", "name", "dtype", "shape"):
        table.add_column(col)
    for kind, tensors in (("input", found.inputs), ("output", found.outputs)):
        for t in tensors:
            shape = format_dims(t["shape"] or [])  # no shape at all: [] (not [?])
            if t.get("profile"):
                shape += f"  profile min {t['profile'][0]} opt {t['profile'][1]} max {t['profile'][2]}"
            table.add_row(kind, escape(t["name"]), t["dtype"], escape(shape))
    out.print(table)
    b = found.batch
    batch = f"{b.get('min')}..{b.get('max') if b.get('max') is not None else 'any'} ({b.get('from')})"
    out.print(f"precision [bold]{escape(found.precision)}[/] · batch {batch} · app {found.app or '-'} · "
              f"variant {found.variant or '-'}")
    if found.labels:
        shown = ", ".join(found.labels[:12]) + (f", … ({len(found.labels)} classes)" if len(found.labels) > 12 else "")
        out.print(f"classes: {escape(shown)}")
    for key, value in found.build.items():
        out.print(f"{key}: {escape(_short(value))}")
    others = {k: v for k, v in found.metadata.items() if not k.startswith("trtapps.") and k != "names"}
    for key, value in others.items():
        out.print(f"[dim]{escape(key)}: {escape(_short(value))}[/]")


def _short(value: Any, limit: int = 160) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _parse_size(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    parts = text.lower().replace(",", "x").split("x")
    if len(parts) != 2 or not all(p.strip().isdigit() and int(p) > 0 for p in parts):
        raise ConfigError(f"--input-size {text!r}: expected HEIGHTxWIDTH, e.g. 640x640")
    return int(parts[0]), int(parts[1])


__all__ = ["build", "info", "register"]
