"""``trtapps mot`` and ``trtapps mot-eval``: run trackers on MOTChallenge public detections and score them.

The commands are thin: loading, tracking and scoring live in :mod:`.mot`; tracker options are validated by
the tracker's own options model, so ``--param`` accepts exactly what a pipeline file accepts.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from pydantic import ValidationError

from trtapps.context import RunContext
from trtapps.errors import ConfigError, UserError
from trtapps.paths import check_output_file
from trtapps.registry import ComponentSpec


def parse_params(params: list[str] | None) -> dict[str, Any]:
    """``["key=value", …]`` → a dict; values are YAML scalars (``0.6``, ``true``, ``null``, ``[1, 2]``).

    Raises:
        ConfigError: an item without ``=``.
    """
    out: dict[str, Any] = {}
    for item in params or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--param {item!r}: expected key=value (e.g. --param track_thresh=0.6)")
        try:
            out[key.strip()] = yaml.safe_load(value) if value.strip() else None
        except yaml.YAMLError:
            out[key.strip()] = value
    return out


def tracker_spec(name: str) -> ComponentSpec[Any]:
    """The registered tracker called ``name`` (this plugin's, or any other installed plugin's)."""
    from trtapps_plugins.trackers import tracker_specs

    own = {s.name: s for s in tracker_specs()}
    if name in own:
        return own[name]
    from trtapps.plugins import PluginManager

    registry = PluginManager().registries.tracker
    try:
        return registry.get(name)
    except KeyError:
        raise ConfigError(f"--tracker: {registry.unknown_message(name)}") from None


def validate_options(spec: ComponentSpec[Any], params: dict[str, Any]) -> Any:
    """Build the tracker's options from ``--param`` values; every problem becomes one line.

    Raises:
        ConfigError: unknown keys or invalid values, one ``--param key: message`` line each.
    """
    try:
        return spec.options.model_validate({**params, "type": spec.name})
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"]) or "(options)"
            msg = "unknown option" if err["type"] == "extra_forbidden" else err["msg"]
            fields = ", ".join(sorted(k for k in spec.options.model_fields if k != "type"))
            hint = f" (options of {spec.name}: {fields})" if err["type"] == "extra_forbidden" else ""
            lines.append(f"--param {where}: {msg}{hint}")
        raise ConfigError(lines) from None


def run_mot(
    data: Path,
    tracker: str,
    output: Path,
    params: dict[str, Any] | None = None,
    *,
    reid: str | None = None,
    det_file: str | None = None,
    echo: Any = print,
) -> list[Any]:
    """Track every sequence under ``data`` and write ``output/<SEQ>.txt``; returns the :class:`TrackingRun` s."""
    from trtapps_plugins.trackers import mot

    spec = tracker_spec(tracker)
    params = dict(params or {})
    fields = spec.options.model_fields
    if reid is not None:
        if "reid_model" not in fields:
            raise ConfigError(f"--reid: tracker {tracker!r} uses no appearance model")
        params["reid_model"] = reid
    validate_options(spec, params)  # fail before any work
    wants_appearance = "reid_model" in fields
    context = RunContext(output_dir=Path(output), config_dir=Path.cwd())
    runs = []
    embedder = None
    for seq_path in mot.find_sequences(data):
        seq = mot.load_sequence(seq_path, det_file, appearance=wants_appearance)
        seq_params = dict(params)
        if "frame_rate" in fields and "frame_rate" not in params:
            seq_params["frame_rate"] = seq.frame_rate
        needs_images = wants_appearance and seq.features is None
        if needs_images:
            # ReID runs outside the tracker here so the printed fps is the tracker's alone
            reid_model = seq_params.pop("reid_model", None)
            if reid_model is None:
                raise UserError(
                    f"{seq.path}: no det/det_*.npy appearance features; pass --reid MODEL "
                    "(e.g. osnet_x0_25_msmt17.onnx) to compute them from img1/"
                )
            if embedder is None:
                from trtapps_plugins.trackers.reid import ReidEmbedder

                embedder = ReidEmbedder.from_path(context.resolve_path(reid_model))
        instance = spec.factory(validate_options(spec, seq_params), context)
        run = mot.run_tracker_on_sequence(instance, seq, embedder=embedder if needs_images else None)
        mot.write_mot(Path(output) / f"{seq.name}.txt", run.rows)
        runs.append(run)
        echo(
            f"{seq.name}: {run.frames} frames, {len(run.rows)} boxes, "
            f"{len(set(run.rows[:, 1].tolist())) if len(run.rows) else 0} tracks, tracker {run.fps:,.0f} fps"
            f" ({1000 * run.update_seconds / max(run.frames, 1):.3f} ms/frame, detections from "
            f"{seq.det_source.name if seq.det_source else '?'}"
            + (f", ReID {run.embed_seconds:.1f} s" if run.embed_seconds else "")
            + ")"
            + (f"; {len(run.frame_errors)} unreadable img1/ frame(s), see the warnings" if run.frame_errors else "")
        )
    return runs


def print_report(report: Any, console: Any = None) -> None:
    """A rich table of an :class:`~.mot.EvalReport`."""
    from rich.console import Console
    from rich.table import Table

    from trtapps_plugins.trackers.mot import PROTOCOL

    console = console or Console()
    table = Table(title="MOT metrics", caption=PROTOCOL, caption_justify="left")
    columns = [
        ("mota", "MOTA", "pct"), ("idf1", "IDF1", "pct"), ("num_switches", "IDs", "int"),
        ("num_false_positives", "FP", "int"), ("num_misses", "FN", "int"), ("mostly_tracked", "MT", "int"),
        ("mostly_lost", "ML", "int"), ("recall", "Rcll", "pct"), ("precision", "Prcn", "pct"),
        ("num_unique_objects", "GT IDs", "int"),
    ]
    table.add_column("sequence")
    for _, title, _ in columns:
        table.add_column(title, justify="right")
    names = [n for n in report.rows if n != "OVERALL"] + ["OVERALL"]
    for name in names:
        row = report.rows[name]
        cells = [f"{100 * row[k]:.1f}" if kind == "pct" else f"{int(row[k])}" for k, _, kind in columns]
        table.add_row(name, *cells, style="bold" if name == "OVERALL" else None, end_section=name == names[-2])
    console.print(table)
    if report.missing:
        console.print(f"[yellow]no results for: {', '.join(report.missing)}[/yellow]")


def add_commands(cli: typer.Typer) -> None:
    """Add ``mot`` and ``mot-eval`` to a Typer app."""

    @cli.command("mot")
    def mot_command(
        data: Annotated[Path, typer.Option("--data", help="A MOTChallenge sequence folder or a folder of them.")],
        tracker: Annotated[str, typer.Option("--tracker", help="sort, bytetrack, deepsort or another tracker.")],
        output: Annotated[Path, typer.Option("--output", help="Folder for <SEQ>.txt results.")],
        param: Annotated[
            list[str] | None, typer.Option("--param", "-p", help="Tracker option key=value (repeatable).")
        ] = None,
        reid: Annotated[
            str | None, typer.Option("--reid", help="ReID ONNX model for sequences without det_*.npy features.")
        ] = None,
        det_file: Annotated[
            str | None, typer.Option("--det-file", help="Detections file, relative to each sequence folder.")
        ] = None,
    ) -> None:
        """Run a tracker on MOTChallenge public detections and write MOTChallenge results."""
        runs = run_mot(data, tracker, output, parse_params(param), reid=reid, det_file=det_file, echo=typer.echo)
        frames = sum(r.frames for r in runs)
        seconds = sum(r.update_seconds for r in runs)
        typer.echo(f"{len(runs)} sequence(s), {frames} frames: tracker {frames / max(seconds, 1e-12):,.0f} fps "
                   f"overall; results in {output}")

    @cli.command("mot-eval")
    def mot_eval_command(
        data: Annotated[Path, typer.Option("--data", help="A MOTChallenge sequence folder or a folder of them.")],
        results: Annotated[Path, typer.Option("--results", help="Folder of <SEQ>.txt tracker results.")],
        json_path: Annotated[Path | None, typer.Option("--json", help="Also write the metrics as JSON.")] = None,
    ) -> None:
        """Score tracker results: MOTA, IDF1, ID switches, FP, FN, MT, ML per sequence and overall."""
        from trtapps_plugins.trackers.mot import evaluate

        if not results.is_dir():
            raise UserError(f"{results}: results folder not found")
        if json_path is not None:
            check_output_file(json_path, "--json")  # before the scoring, not after it
        report = evaluate(data, results)
        print_report(report)
        if json_path is not None:
            json_path.parent.mkdir(parents=True, exist_ok=True)
            json_path.write_text(json.dumps(report.to_json(), indent=2) + "\n")
            typer.echo(f"metrics written to {json_path}")
