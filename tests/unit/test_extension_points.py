"""Extension points a plugin reaches through hooks other than apps and sinks: ``trtapps_register_commands`` (a
command on the ``trtapps`` CLI), ``trtapps_register_sources`` (a frame source used in a run),
``trtapps_register_backends`` (a backend wrapping the ONNX Runtime runner, by name and through ``auto``) and
``trtapps_register_trackers`` (one tracker per source), each with an inline plugin object."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import typer
from pydantic import Field
from typer.testing import CliRunner

from conftest import shared_path
from trtapps import (
    BackendOptions,
    ComponentSpec,
    ConfigError,
    Detections,
    Frame,
    FrameFailure,
    Runner,
    SinkOptions,
    SourceOptions,
    TrackerOptions,
    hookimpl,
)
from trtapps.cli import build_app
from trtapps.errors import BackendUnavailableError, InputError, OutputError, StageError
from trtapps.metrics import RunSummary
from trtapps.plugins import PluginManager
from trtapps.runners.onnxruntime import OnnxRuntimeRunner
from trtapps.testing import InlinePlugin, synthetic_frames

pytest_plugins = ["trtapps.testing.plugin"]


def retinaface() -> dict[str, Any]:
    return {"type": "retinaface", "model": str(shared_path("models/retinaface_mnet025.onnx"))}


# -- trtapps_register_commands ------------------------------------------------------------------------------------------
class GreetingCommands:
    """A plugin adding ``trtapps greet`` to the command line."""

    @hookimpl
    def trtapps_register_commands(self, cli: typer.Typer) -> None:
        @cli.command("greet")
        def greet(
            name: str = typer.Argument(help="Who to greet."),
            shout: bool = typer.Option(False, "--shout", help="Upper case."),
        ) -> None:
            """Greet someone (added by a plugin)."""
            text = f"hello {name}"
            typer.echo(text.upper() if shout else text)


def test_a_plugin_adds_a_command_to_the_cli() -> None:
    manager = PluginManager([GreetingCommands()])
    app = build_app(manager)
    runner = CliRunner()
    result = runner.invoke(app, ["greet", "trtapps", "--shout"])
    assert result.exit_code == 0, result.output
    assert result.output == "HELLO TRTAPPS\n"
    listing = runner.invoke(app, ["--help"])
    assert "greet" in listing.output
    assert "run" in listing.output  # the built-in commands are still there
    assert manager.infos["GreetingCommands-0"].hooks == ["trtapps_register_commands"]
    assert "greet" not in runner.invoke(build_app(PluginManager()), ["--help"]).output  # one manager, one CLI


class BrokenCommands:
    @hookimpl
    def trtapps_register_commands(self, cli: typer.Typer) -> None:
        raise RuntimeError("cannot build my commands")


def test_a_plugin_whose_commands_fail_is_reported_and_the_cli_still_works(capsys: pytest.CaptureFixture[str]) -> None:
    manager = PluginManager([BrokenCommands(), GreetingCommands()])
    app = build_app(manager)
    warning = capsys.readouterr().err
    assert warning.startswith("warning: plugin 'BrokenCommands-0': trtapps_register_commands raised RuntimeError")
    assert "cannot build my commands (its commands are missing; other plugins are unaffected)" in warning
    (failure,) = manager.failures
    assert failure.name == "BrokenCommands-0"
    assert "trtapps_register_commands raised RuntimeError: cannot build my commands" in failure.reason
    assert CliRunner().invoke(app, ["greet", "you"]).output == "hello you\n"


# -- trtapps_register_sources -------------------------------------------------------------------------------------------
class SyntheticOptions(SourceOptions):
    """Deterministic synthetic frames; frame ``fail_at`` cannot be "decoded"."""

    type: str = "synthetic"
    count: int = Field(4, ge=1, description="How many frames.")
    fail_at: int | None = Field(None, ge=0, description="Deliver this frame as a failure.")


class SyntheticSource:
    def __init__(self, options: SyntheticOptions) -> None:
        self.name = "synthetic"
        self.count = min(options.count, options.max_frames or options.count)
        self.fail_at = options.fail_at
        self.closed = False

    def __iter__(self) -> Iterator[Frame | FrameFailure]:
        for frame in synthetic_frames(self.count, ((120, 160), (96, 128)), source=self.name):
            if frame.index == self.fail_at:
                yield FrameFailure(self.name, frame.index, "synthetic decode error")
            else:
                yield frame

    def __len__(self) -> int:
        return self.count

    def close(self) -> None:
        self.closed = True


def test_a_plugin_source_is_validated_and_runs(make_pipeline: Any) -> None:
    built: list[SyntheticSource] = []

    def factory(options: SyntheticOptions, context: Any) -> SyntheticSource:
        built.append(SyntheticSource(options))
        return built[-1]

    plugin = InlinePlugin("synthetic_source", sources=[ComponentSpec("synthetic", SyntheticOptions, factory,
                                                                     "deterministic synthetic frames")])
    with pytest.raises(ConfigError, match=r"source\.cout: unknown field 'cout'; did you mean 'count'\?"):
        make_pipeline({"app": retinaface(), "source": {"type": "synthetic", "cout": 3}}, plugins=[plugin])

    pipe = make_pipeline({"app": retinaface(), "source": {"type": "synthetic", "count": 5, "fail_at": 2,
                                                          "max_frames": 4}, "sinks": [{"type": "jsonl"}]},
                         plugins=[plugin])
    results = list(pipe)
    assert [(r.source, r.index, r.ok) for r in results] == [
        ("synthetic", 0, True), ("synthetic", 1, True), ("synthetic", 2, False), ("synthetic", 3, True)
    ]
    assert results[2].error == "synthetic decode error"
    assert [(r.width, r.height) for r in results if r.ok] == [(160, 120), (128, 96), (128, 96)]
    assert len(built) == 1
    assert built[0].closed  # the pipeline closes its sources
    assert pipe.registries.source.get("synthetic").plugin == "synthetic_source"


class BrokenSinkOptions(SinkOptions):
    type: str = "broken"


def test_a_run_that_cannot_start_closes_the_sources_and_sinks_it_opened(make_pipeline: Any) -> None:
    built: list[SyntheticSource] = []

    def source_factory(options: SyntheticOptions, context: Any) -> SyntheticSource:
        if options.count == 13:
            raise RuntimeError("the thirteenth camera is unplugged")
        if options.count == 14:
            raise PermissionError(13, "Permission denied", "/data/locked")
        built.append(SyntheticSource(options))
        return built[-1]

    def broken_sink(options: SinkOptions, context: Any) -> Any:
        raise OSError("the disk is full")

    plugin = InlinePlugin("unlucky", sources=[ComponentSpec("synthetic", SyntheticOptions, source_factory)],
                          sinks=[ComponentSpec("broken", BrokenSinkOptions, broken_sink)])
    pipe = make_pipeline({"app": retinaface(), "sources": [{"type": "synthetic"}, {"type": "synthetic", "count": 13}]},
                         plugins=[plugin])
    with pytest.raises(StageError, match="thirteenth camera"):
        pipe.build_sources()
    assert len(built) == 1
    assert built[0].closed  # the first was built, then closed when the second failed
    pipe = make_pipeline({"app": retinaface(), "sources": [{"type": "synthetic", "count": 14}]}, plugins=[plugin])
    with pytest.raises(InputError) as refused:  # an OSError of a source is the user's input, in one line
        pipe.build_sources()
    assert str(refused.value) == ("source 'synthetic': /data/locked: Permission denied; check the path and its "
                                  "permissions")

    pipe = make_pipeline({"app": retinaface(), "sources": [{"type": "synthetic"}, {"type": "synthetic"}],
                          "sinks": [{"type": "jsonl"}, {"type": "broken"}]}, plugins=[plugin])
    summary = RunSummary()
    with pytest.raises(OutputError, match="the disk is full"):
        next(pipe.iter_results(summary=summary))
    assert len(built) == 3
    assert all(s.closed for s in built[1:])
    assert "the disk is full" in summary.error


# -- trtapps_register_backends ------------------------------------------------------------------------------------------
class CountingOptions(BackendOptions):
    """ONNX Runtime on the CPU, counting the batches it runs."""

    type: str = "counting_ort"
    threads: int = Field(1, ge=0, description="Intra-op threads.")


class CountingRunner(Runner):
    """Wraps :class:`OnnxRuntimeRunner`; records the batch size of every call."""

    backend = "counting_ort"

    def __init__(self, model_path: Path, threads: int) -> None:
        self.inner = OnnxRuntimeRunner(model_path, threads=threads)
        self.model_path = self.inner.model_path
        self.inputs, self.outputs, self.metadata = self.inner.inputs, self.inner.outputs, self.inner.metadata
        self.batches: list[int] = []
        self.closed = False

    def _infer(self, feeds: Mapping[str, Any], stream: Any) -> dict[str, Any]:
        self.batches.append(int(next(iter(feeds.values())).shape[0]))
        return self.inner.infer(feeds, stream)

    def close(self) -> None:
        self.inner.close()
        self.closed = True


def counting_backend(available: str | None = None, priority: int = 1000) -> InlinePlugin:
    def factory(options: CountingOptions, context: Any, model_path: Path) -> CountingRunner:
        return CountingRunner(model_path, options.threads)

    spec = ComponentSpec("counting_ort", CountingOptions, factory, "ONNX Runtime, counting batches",
                         available=lambda: available, priority=priority)
    return InlinePlugin("counting", backends=[spec])


def yolo_on_photos(**extra: Any) -> dict[str, Any]:
    images = [str(shared_path(f"media/{name}")) for name in ("bus.jpg", "zidane.jpg", "street.jpg")]
    return {"app": {"type": "yolo", "model": str(shared_path("models/yolov8n_dequant.onnx")), "batch_size": 2},
            "source": {"type": "images", "path": images}, "sinks": [], **extra}


def test_a_plugin_backend_runs_the_model_by_name(make_pipeline: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRTAPPS_BACKEND", raising=False)
    pipe = make_pipeline(yolo_on_photos(backend={"type": "counting_ort", "threads": 2}), plugins=[counting_backend()])
    assert isinstance(pipe.runner, CountingRunner)
    summary = pipe.run()
    assert pipe.runner.batches == [2, 1]  # batch_size 2 over three photos
    assert summary.backend == "counting_ort"
    assert pipe.info().backend == "counting_ort"
    wrapped = [r.detections for r in pipe.iter_results(write=False)]

    plain = make_pipeline(yolo_on_photos(backend="onnxruntime"))
    for got, want in zip(wrapped, (r.detections for r in plain.iter_results(write=False)), strict=True):
        assert isinstance(got, Detections)
        np.testing.assert_array_equal(got.class_ids, want.class_ids)
        np.testing.assert_allclose(got.boxes, want.boxes, atol=1e-3)
    pipe.close()
    assert pipe.runner.closed


def test_backend_auto_takes_the_highest_priority_backend_that_can_run(
    make_pipeline: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TRTAPPS_BACKEND", raising=False)
    assert make_pipeline(yolo_on_photos(), plugins=[counting_backend()]).runner.backend == "counting_ort"
    unusable = counting_backend(available="the counting card is not plugged in")
    assert make_pipeline(yolo_on_photos(), plugins=[unusable]).runner.backend == "onnxruntime"
    with pytest.raises(BackendUnavailableError, match="'counting_ort' cannot run here: the counting card is not"):
        make_pipeline(yolo_on_photos(backend="counting_ort"), plugins=[counting_backend("the counting card is not")])


# -- trtapps_register_trackers ------------------------------------------------------------------------------------------
class NumberingOptions(TrackerOptions):
    type: str = "numbering"
    first: int = Field(1, description="The first track id.")


class NumberingTracker:
    """Gives every detection a new id, counting per tracker (i.e. per source)."""

    def __init__(self, first: int) -> None:
        self.next_id = first

    def update(self, detections: Detections, frame: Frame) -> Detections:
        ids = np.arange(self.next_id, self.next_id + len(detections))
        self.next_id += len(detections)
        return detections.replace(track_ids=ids)


def test_a_plugin_tracker_gets_one_instance_per_source(make_pipeline: Any, tmp_path: Path) -> None:
    made: list[NumberingTracker] = []

    def factory(options: NumberingOptions, context: Any) -> NumberingTracker:
        made.append(NumberingTracker(options.first))
        return made[-1]

    plugin = InlinePlugin("numbering", trackers=[ComponentSpec("numbering", NumberingOptions, factory,
                                                               "numbers every detection")])
    zidane = str(shared_path("media/zidane.jpg"))
    pipe = make_pipeline({"app": retinaface(), "sources": [{"type": "images", "path": [zidane, zidane]},
                                                           {"type": "images", "path": zidane}],
                          "tracker": {"type": "numbering", "first": 10}, "sinks": [{"type": "jsonl"}]},
                         plugins=[plugin])
    pipe.run()
    lines = [json.loads(line) for line in (tmp_path / "out" / "results.jsonl").read_text().splitlines()]
    ids = {sid: [[d["track_id"] for d in line["detections"]] for line in lines if line["source_id"] == sid]
           for sid in (0, 1)}
    assert ids == {0: [[10, 11], [12, 13]], 1: [[10, 11]]}  # two faces per photo; the second source starts again
    assert len(made) == 2


class ClosingTracker(NumberingTracker):
    closed = 0

    def close(self) -> None:
        self.closed += 1


def test_trackers_with_close_are_closed_when_the_run_ends(make_pipeline: Any) -> None:
    made: list[ClosingTracker] = []

    def factory(options: NumberingOptions, context: Any) -> ClosingTracker:
        made.append(ClosingTracker(options.first))
        return made[-1]

    plugin = InlinePlugin("closing", trackers=[ComponentSpec("numbering", NumberingOptions, factory)])
    zidane = str(shared_path("media/zidane.jpg"))
    pipe = make_pipeline({"app": retinaface(), "sources": [{"type": "images", "path": zidane}] * 2,
                          "tracker": {"type": "numbering"}}, plugins=[plugin])
    pipe.run()
    assert [t.closed for t in made] == [1, 1]
