"""``trtapps onnx check`` and ``trtapps onnx fix``: export pitfalls found, fixed and proven.

Thin commands over :mod:`trtapps.onnx.check` and :mod:`trtapps.onnx.fix`. ``check`` exits with status 1 when
an error-severity finding exists (something that breaks a dynamic-batch TensorRT build or gives wrong results at
batch > 1), so it can gate a CI job; ``fix`` refuses with a one-line reason (status 2) when it cannot prove the
fixed model equivalent.
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

onnx_app = typer.Typer(
    name="onnx",
    help="Check ONNX exports for TensorRT pitfalls and fix them (dynamic batch, shape constants), with proof.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

_SEVERITY_STYLE = {"error": "bold red", "warning": "yellow", "info": "dim"}
_BatchDim = Annotated[
    str | None,
    typer.Option("--batch-dim", help="Name of the batch dimension (default: the first dimension of each input)."),
]


def register(app: typer.Typer) -> None:
    """Add the ``onnx`` command group to the root command."""
    app.add_typer(onnx_app, name="onnx")


@onnx_app.command("check")
def check(
    model: Annotated[Path, typer.Argument(help="The ONNX model.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON (stable schema).")] = False,
    batch_dim: _BatchDim = None,
) -> None:
    """Find what breaks a dynamic-batch TensorRT build: shape chains, baked batch sizes, Resize by sizes, ops, opset.

    Exit status 1 when an error-severity finding exists.
    """
    from trtapps.onnx.check import check_model

    report = check_model(model, batch_dim=batch_dim)
    if as_json:
        typer.echo(json.dumps(report.to_json(), indent=2))
    else:
        print_report(report)
    if not report.ok:
        raise typer.Exit(1)


def print_report(report: Any, *, title: str | None = None) -> None:
    """The human form of a :class:`~trtapps.onnx.check.CheckReport`: tensors, then one row per finding."""
    from trtapps.onnx.check import pretty_dims

    out.print(
        f"[bold]{escape(title or report.model)}[/] · opset {report.opset} · IR {report.ir_version} · "
        f"{escape(report.producer or 'unknown producer')}"
    )
    for kind, tensors in (("input", report.inputs), ("output", report.outputs)):
        for t in tensors:
            out.print(f"  {kind:6} {escape(t.name)} {t.dtype} {escape(pretty_dims(t.shape))}")
    batch = "dynamic" if report.dynamic_batch else f"fixed ({report.export_batch})"
    out.print(f"  batch  {batch}" + ("" if report.shape_inference == "ok" else f" · shape inference "
                                     f"{escape(report.shape_inference)}"))
    if report.findings:
        table = Table(show_header=True, header_style="bold", show_lines=True, expand=True)
        table.add_column("severity", no_wrap=True)
        table.add_column("rule", no_wrap=True)
        table.add_column("finding", ratio=3)
        table.add_column("fix", ratio=2)
        for f in report.findings:
            nodes = ""
            if f.nodes:
                shown = ", ".join(f.nodes[:6]) + (f" … (+{len(f.nodes) - 6})" if len(f.nodes) > 6 else "")
                nodes = f"\n[dim]nodes: {escape(shown)}[/]"
            table.add_row(f"[{_SEVERITY_STYLE[f.severity]}]{f.severity}[/]", f.rule, escape(f.message) + nodes,
                          escape(f.fix))
        out.print(table)
    counts = ", ".join(f"{report.count(s)} {s}{'s' if report.count(s) != 1 else ''}" for s in
                       ("error", "warning", "info"))
    verdict = "[green]ok for a dynamic-batch TensorRT build[/]" if report.ok else \
        "[bold red]not ready: fix the errors (many with `trtapps onnx fix`)[/]"
    out.print(f"{counts} · {verdict}")


@onnx_app.command("fix")
def fix(
    model: Annotated[Path, typer.Argument(help="The ONNX model.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Where the fixed model goes.")],
    batch: Annotated[int, typer.Option(min=1, max=256, help="Batch size N of the equivalence proof.")] = 4,
    keep_static: Annotated[
        bool, typer.Option("--keep-static", help="Keep a fixed batch fixed (simplify and verify only).")
    ] = False,
    batch_dim: _BatchDim = None,
    image: Annotated[
        list[Path] | None,
        typer.Option("--image", help="Photo for image inputs in the proof (repeatable; default: the shared media)."),
    ] = None,
    dim: Annotated[
        list[str] | None,
        typer.Option("--dim", help="NAME=VALUE for a dynamic non-batch dimension during the proof (repeatable)."),
    ] = None,
    rel_tol: Annotated[
        float, typer.Option(min=0.0, help="Tolerance: max |diff| <= rel_tol x max(output range, 1).")
    ] = 1e-4,
    as_json: Annotated[bool, typer.Option("--json", help="Print what was done as JSON.")] = False,
) -> None:
    """Make the batch (only it) dynamic, rewrite batch-baking shape constants, simplify, and prove equivalence.

    The fixed model is written only when ONNX Runtime shows that batch 1 and batch N give the per-image outputs
    of the original.
    """
    from trtapps.onnx.fix import fix_model

    result = fix_model(
        model, output, batch=batch, keep_static=keep_static, batch_dim=batch_dim, images=image,
        dims=_parse_dims(dim), rel_tol=rel_tol,
    )
    if as_json:
        typer.echo(json.dumps(result.to_json(), indent=2))
        return
    print_fix(result)


def print_fix(result: Any, *, limit: int = 25) -> None:
    """The human form of a :class:`~trtapps.onnx.fix.FixResult`."""
    v = result.verification
    out.print(f"[bold]{escape(result.source)}[/] → [bold]{escape(result.output)}[/] · "
              f"{'dynamic' if result.dynamic else 'static'} batch · nodes {result.nodes_before} → "
              f"{result.nodes_after}")
    table = Table(title="changes", show_header=True, header_style="bold")
    for col in ("node", "op", "change"):
        table.add_column(col)
    for c in result.changes[:limit]:
        table.add_row(escape(c.node), c.op, escape(c.change))
    if len(result.changes) > limit:
        table.add_row("…", "", f"{len(result.changes) - limit} more (--json lists all)")
    out.print(table)
    if result.removed_nodes or result.added_nodes:
        removed = ", ".join(f"{op} {n}" for op, n in sorted(result.removed_nodes.items())) or "none"
        added = ", ".join(f"{op} {n}" for op, n in sorted(result.added_nodes.items())) or "none"
        out.print(f"removed: {removed} · added: {added}")
    proof = Table(title=f"proof: ONNX Runtime CPU, batch {' and '.join(map(str, v.batches))} vs the original image "
                  "by image", show_header=True, header_style="bold")
    for col, justify in (("output", "left"), ("max |diff|", "right"), ("tolerance", "right"), ("range", "right")):
        proof.add_column(col, justify=justify)  # type: ignore[arg-type]
    for o in v.outputs:
        proof.add_row(escape(o.name), f"{o.max_abs_diff:.3g}", f"{o.tolerance:.3g}", f"{o.value_range:.4g}")
    out.print(proof)
    photos = ", ".join(v.images) if v.images else "none (random inputs only)"
    out.print(f"inputs: {v.random_samples} samples, photos {escape(photos)}, seed 0 · {v.seconds:.1f} s")
    for note in result.notes:
        out.print(f"[yellow]note:[/] {escape(note)}")
    after = result.after
    out.print(f"check after the fix: {after.count('error')} errors, {after.count('warning')} warnings, "
              f"{after.count('info')} info · wrote {escape(result.output)}")


def _parse_dims(items: list[str] | None) -> dict[str, int]:
    dims: dict[str, int] = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or not value.strip().isdigit():
            raise ConfigError(f"--dim {item!r}: expected NAME=VALUE with a positive integer (e.g. --dim height=640)")
        dims[name.strip()] = int(value)
    return dims


__all__ = ["onnx_app", "print_fix", "print_report", "register"]
