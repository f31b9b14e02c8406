"""The built-in commands: run, predict, validate, schema, plugins."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from trtapps.cli import interrupts
from trtapps.errors import ConfigError, ModelError, UserError
from trtapps.sources import IMAGE_EXTENSIONS

console = Console(stderr=True)
out = Console()

def source_from_argument(value: str) -> dict[str, Any]:
    """A source mapping for a ``--source`` value: a camera index, a stream URL, images (an image file, a folder,
    a glob, a ``pkg:`` resource), or else a video (any other file: FFmpeg reads far more containers than a list
    here would name, e.g. ``.3gp``)."""
    if value.isdigit():
        return {"type": "camera", "index": int(value)}
    if re.match(r"^(rtsp|rtmp|http|https|udp|tcp)://", value, re.IGNORECASE):
        return {"type": "stream", "url": value}
    if value.startswith("pkg:") or any(c in value for c in "*?["):
        return {"type": "images", "path": value}
    path = Path(value)
    suffix = path.suffix.lower()
    if suffix and suffix not in IMAGE_EXTENSIONS and not path.is_dir():
        return {"type": "video", "path": str(path.resolve())}
    return {"type": "images", "path": str(path.resolve())}


def _sources_override(sources: list[str] | None) -> dict[str, Any]:
    if not sources:
        return {}
    merged: list[dict[str, Any]] = []
    for mapping in map(source_from_argument, sources):
        if mapping["type"] == "images" and merged and merged[-1]["type"] == "images":
            merged[-1]["path"].append(mapping["path"])  # images side by side on the command line: one source
        elif mapping["type"] == "images":
            merged.append({"type": "images", "path": [mapping["path"]]})
        else:
            merged.append(mapping)
    return {"sources": merged}  # in the order given: source_id is the position


#: modules of ``trtapps.cli`` that add command groups, each through its own ``register(app)``
COMMAND_MODULES = ("eval", "onnx", "build", "models", "bench")


def register(app: typer.Typer) -> None:
    import importlib

    app.command("run")(run)
    app.command("predict")(predict)
    app.command("validate")(validate)
    app.command("schema")(schema)
    app.command("plugins")(plugins)
    for name in COMMAND_MODULES:
        importlib.import_module(f"trtapps.cli.{name}").register(app)


# -- run -------------------------------------------------------------------------------------------------------------
def run(
    config: Annotated[Path, typer.Argument(help="The pipeline file (YAML).")],
    source: Annotated[
        list[str] | None, typer.Option("--source", "-s", help="Replace the config's source (repeatable).")
    ] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Output folder for the sinks.")] = None,
    backend: Annotated[str | None, typer.Option(help="auto, onnxruntime, onnxruntime_cuda, tensorrt.")] = None,
    batch: Annotated[int | None, typer.Option(min=1, help="Frames per inference call.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Run a pipeline file over its sources and write its sinks."""
    from trtapps.config.loader import load_config
    from trtapps.pipeline import Pipeline
    from trtapps.plugins import PluginManager

    manager = PluginManager()
    _warn_plugin_failures(manager)
    overrides: dict[str, Any] = _sources_override(source)
    if output is not None:
        overrides["output"] = str(output)
    if backend is not None:
        overrides["backend"] = backend
    cfg = load_config(config, manager.registries, overrides=overrides)
    if batch is not None:
        try:
            cfg.app = type(cfg.app).model_validate({**cfg.app.model_dump(), "batch_size": batch})
        except ValidationError as exc:
            reason = exc.errors()[0]["msg"].lower()
            raise ConfigError(f"--batch {batch}: {reason} (app.batch_size of {config})") from None
    pipe = Pipeline(cfg, manager=manager)
    _execute(pipe, quiet)


def _execute(pipe: Any, quiet: bool) -> None:
    """Run *pipe* over its sources with a progress bar; the pipeline is closed however the run ends."""
    try:
        sources = pipe.build_sources()
        try:
            total = sum(len(s) for s in sources) or None
            info = pipe.info(sources)
        except BaseException:  # the run never started, so it cannot close them
            for source in sources:
                source.close()
            raise
        console.print(
            f"[bold]trtapps[/] {info.app} · model {Path(info.model).name} · backend {info.backend} ({info.device})"
            f" · batch {info.batch_size} · {len(sources)} source(s) · output {pipe.context.output_dir}"
        )
        progress = Progress(
            TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[fps]:.1f} fps"), TimeElapsedColumn(), console=console, disable=quiet,
            transient=False,
        )
        with progress:
            task = progress.add_task("frames", total=total, fps=0.0)

            def on_result(result: Any, summary: Any) -> None:
                progress.update(task, advance=1, fps=summary.fps)

            interrupts.current.check()  # a Ctrl-C swallowed while the pipeline was being built
            summary = pipe.run(on_result=on_result, sources=sources)
    finally:
        pipe.close()
    _print_summary(summary, pipe.context.output_dir)


def _print_summary(summary: Any, output_dir: Path) -> None:
    table = Table(title="run summary", show_header=True, header_style="bold")
    table.add_column("stage")
    table.add_column("frames", justify="right")
    table.add_column("ms/frame", justify="right")
    table.add_column("fps", justify="right")
    for name, timer in summary.stages.items():
        table.add_row(name, str(timer.frames), f"{timer.ms_per_frame:.2f}", f"{timer.fps:.1f}")
    console.print(table)
    console.print(
        f"frames in {summary.frames_in} · out {summary.frames_out} · failed {summary.frames_failed} · "
        f"detections {summary.detections} · {summary.fps:.1f} fps overall · backend {summary.backend} · "
        f"results in {output_dir}"
    )
    for failure in summary.failures[:10]:
        console.print(f"[yellow]failed[/] {failure['source']} frame {failure['frame']}: {failure['error']}")
    if summary.frames_failed > 10:
        console.print(f"[yellow]… and {summary.frames_failed - 10} more failures (see the JSONL)[/]")


# -- predict ---------------------------------------------------------------------------------------------------------
def predict(
    app: Annotated[str, typer.Option(help="The app: yolo, retinaface, scrfd, or a plugin's.")],
    model: Annotated[str, typer.Option(help="ONNX model path or model-zoo name.")],
    source: Annotated[list[str], typer.Option("--source", "-s", help="Images, folders, globs, videos, URLs.")],
    conf: Annotated[float | None, typer.Option(min=0.0, max=1.0, help="Score threshold.")] = None,
    iou: Annotated[float | None, typer.Option(min=0.0, max=1.0, help="NMS IoU threshold.")] = None,
    imgsz: Annotated[int | None, typer.Option(min=32, help="Square input size (models with dynamic H/W).")] = None,
    backend: Annotated[str, typer.Option(help="auto, onnxruntime, onnxruntime_cuda, tensorrt.")] = "auto",
    batch: Annotated[int, typer.Option(min=1, help="Frames per inference call.")] = 1,
    output: Annotated[Path, typer.Option("--output", "-o", help="Output folder.")] = Path("runs/predict"),
    no_save: Annotated[bool, typer.Option("--no-save", help="Only results.jsonl, no annotated media.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
) -> None:
    """Detect with a model on images or videos, no config file needed: writes DIR/results.jsonl and media."""
    from trtapps.config.loader import validate_data
    from trtapps.pipeline import Pipeline
    from trtapps.plugins import PluginManager

    manager = PluginManager()
    _warn_plugin_failures(manager)
    app_options: dict[str, Any] = {"type": app, "model": model, "batch_size": batch}
    if conf is not None:
        app_options["conf_threshold"] = conf
    if iou is not None:
        app_options["iou_threshold"] = iou
    if imgsz is not None:
        app_options["input_size"] = [imgsz, imgsz]
    sources = _sources_override(source)["sources"]
    sinks: list[dict[str, Any]] = [{"type": "jsonl", "path": "results.jsonl"}]
    if not no_save:
        if any(s["type"] == "images" for s in sources):
            sinks.append({"type": "images"})
        if any(s["type"] != "images" for s in sources):
            sinks.append({"type": "video"})
    sinks.append({"type": "summary"})
    data = {"name": "predict", "app": app_options, "sources": sources, "sinks": sinks, "backend": backend,
            "output": str(output)}
    try:
        cfg = validate_data(data, manager.registries)
    except ConfigError as exc:
        # the lines name config paths; translate the common ones back to the options the user typed
        raise ConfigError([_predict_hint(p) for p in exc.problems]) from None
    try:
        pipe = Pipeline(cfg, manager=manager)
    except ModelError as exc:  # e.g. --imgsz on a model fixed at another size
        raise ModelError(_predict_hint(str(exc))) from None
    _execute(pipe, quiet)


def _predict_hint(problem: str) -> str:
    """A problem of the config predict builds, with the options the user typed beside the fields they set."""
    problem = problem.replace("<config>: ", "")
    for field, option in (("app.conf_threshold", "--conf"), ("app.iou_threshold", "--iou"),
                          ("app.input_size", "--imgsz"), ("app.type", "--app"), ("app.model", "--model"),
                          ("app.batch_size", "--batch"), ("backend.type", "--backend")):
        problem = problem.replace(field, f"{option} ({field})")
    return problem


# -- validate / schema / plugins -------------------------------------------------------------------------------------
def validate(config: Annotated[Path, typer.Argument(help="The pipeline file (YAML).")]) -> None:
    """Check a pipeline file (both validation phases, model path) without running anything."""
    from trtapps.config.loader import load_config
    from trtapps.plugins import PluginManager
    from trtapps.zoo import resolve_model

    manager = PluginManager()
    _warn_plugin_failures(manager)
    cfg = load_config(config, manager.registries)
    model_path = resolve_model(cfg.app.model, cfg.config_dir)
    out.print(
        f"ok: {config} — app {cfg.app.type} ({model_path}), {len(cfg.sources)} source(s), "
        f"{len(cfg.postprocess)} postprocessor(s), tracker {cfg.tracker.type if cfg.tracker else 'none'}, "
        f"{len(cfg.sinks)} sink(s), backend {cfg.backend.type}"
    )


def schema(
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write to this file (default: stdout).")] = None,
) -> None:
    """Write the JSON Schema of pipeline files, including the installed plugins' options."""
    from trtapps.config.jsonschema import pipeline_schema
    from trtapps.plugins import PluginManager

    text = json.dumps(pipeline_schema(PluginManager().registries), indent=2) + "\n"
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        console.print(f"wrote {output}")


def plugins(
    all_: Annotated[bool, typer.Option("--all", help="Include the core's own plugin modules.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """List installed plugins: distribution, version, hooks and what each registers."""
    from trtapps.plugins import PluginManager

    manager = PluginManager()
    infos = manager.plugin_infos(include_core=all_)
    if as_json:
        typer.echo(json.dumps({
            "plugins": [{"name": i.name, "module": i.module, "distribution": i.distribution, "version": i.version,
                         "core": i.core, "hooks": i.hooks, "registers": i.components} for i in infos],
            "failures": [{"name": f.name, "distribution": f.distribution, "reason": f.reason}
                         for f in manager.failures],
        }, indent=2))
        return
    table = Table(show_header=True, header_style="bold")
    for col in ("plugin", "distribution", "version", "registers", "hooks"):
        table.add_column(col)
    for i in infos:
        registers = "; ".join(f"{kind}: {', '.join(names)}" for kind, names in sorted(i.components.items()))
        hooks = ", ".join(h.removeprefix("trtapps_") for h in i.hooks)
        table.add_row(i.name, i.distribution or ("core" if i.core else "-"), i.version or "-", registers or "-", hooks)
    out.print(table)
    for failure in manager.failures:
        out.print(f"[red]broken[/] {failure}")


def _warn_plugin_failures(manager: Any) -> None:
    for line in manager.failure_lines():
        console.print(f"[yellow]warning:[/] {line} (other plugins are unaffected)")


__all__ = ["UserError", "register", "source_from_argument"]
