"""The conformance suites of ``trtapps.testing`` run against the built-in components (yolo and retinaface apps,
jsonl and summary sinks, class_filter and min_score postprocessors), the pytest plugin's fixtures, and the suites
catching components that break the contract."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
from pydantic import ConfigDict

from conftest import shared_path
from trtapps import (
    App,
    AppOptions,
    ComponentSpec,
    Detections,
    Frame,
    FrameResult,
    RunContext,
    Runner,
    SinkOptions,
    TensorInfo,
    testing,
)
from trtapps.pipeline import Pipeline
from trtapps.plugins import PluginManager
from trtapps.testing import InlinePlugin, synthetic_frames, synthetic_image
from trtapps.testing.suites import AppSuite, PostprocessorSuite, SinkSuite

pytest_plugins = ["trtapps.testing.plugin"]


# -- the suites against the built-ins ---------------------------------------------------------------------------------
class TestYoloConformance(AppSuite):
    app_options: ClassVar[dict[str, Any]] = {"type": "yolo", "model": "<set by suite_options>", "conf_threshold": 0.25}
    expect_detections = True

    @pytest.fixture(scope="class")
    @classmethod
    def suite_options(cls) -> dict[str, Any]:
        return {**cls.app_options, "model": str(shared_path("models/yolov8n_dequant.onnx"))}

    @pytest.fixture(scope="class")
    @classmethod
    def suite_images(cls) -> list[Any]:
        return [shared_path("media/bus.jpg"), shared_path("media/zidane.jpg")]


class TestRetinaFaceConformance(AppSuite):
    """Native size (dynamic H/W): frames of different sizes never share a batch, which the suite must respect."""

    app_options: ClassVar[dict[str, Any]] = {"type": "retinaface", "model": "<set by suite_options>"}
    synthetic_sizes = ((240, 320), (240, 320), (200, 300))
    expect_detections = True

    @pytest.fixture(scope="class")
    @classmethod
    def suite_options(cls) -> dict[str, Any]:
        return {**cls.app_options, "model": str(shared_path("models/retinaface_mnet025.onnx"))}

    @pytest.fixture(scope="class")
    @classmethod
    def suite_images(cls) -> list[Any]:
        return [shared_path("media/zidane.jpg"), shared_path("media/zidane.jpg")]


class TestRetinaFaceFixedSizeConformance(AppSuite):
    app_options: ClassVar[dict[str, Any]] = {"type": "retinaface", "model": "<set by suite_options>", "input_size": [320, 320]}

    @pytest.fixture(scope="class")
    @classmethod
    def suite_options(cls) -> dict[str, Any]:
        return {**cls.app_options, "model": str(shared_path("models/retinaface_mnet025.onnx"))}


class TestJsonlSinkConformance(SinkSuite):
    sink_options: ClassVar[dict[str, Any]] = {"type": "jsonl", "path": "results.jsonl"}

    def check_output(self, output_dir: Path, results: Any) -> None:
        lines = [json.loads(line) for line in (output_dir / "results.jsonl").read_text().splitlines()]
        assert [(r["source"], r["frame"]) for r in lines] == [(r.source, r.index) for r in results]
        assert [len(r.get("detections", [])) for r in lines] == [len(r.detections or ()) for r in results]
        assert "error" in lines[-1]


class TestSummarySinkConformance(SinkSuite):
    sink_options: ClassVar[dict[str, Any]] = {"type": "summary", "path": "summary.json"}

    def check_output(self, output_dir: Path, results: Any) -> None:
        summary = json.loads((output_dir / "summary.json").read_text())
        assert summary["frames_out"] == len(results)
        assert summary["frames_failed"] == 1


class TestClassFilterConformance(PostprocessorSuite):
    postprocessor_options: ClassVar[dict[str, Any]] = {"type": "class_filter", "keep": ["person", 2]}


class TestMinScoreConformance(PostprocessorSuite):
    postprocessor_options: ClassVar[dict[str, Any]] = {"type": "min_score", "threshold": 0.5}


# -- the suites catch broken components --------------------------------------------------------------------------------
class SloppyOptions(AppOptions):
    """Accepts unknown keys: the suite must refuse it."""

    model_config: ClassVar[ConfigDict] = ConfigDict(**{**AppOptions.model_config, "extra": "allow"})
    type: str = "sloppy"


class SquashingApp(App):
    """Ignores the aspect ratio and forgets to map boxes back (boxes stay in 64×64 model pixels × 20)."""

    labels = ("thing",)

    def preprocess(self, frames: Any) -> tuple[dict[str, Any], list[Any]]:
        return {"x": np.zeros((len(frames), 1), np.float32)}, [None] * len(frames)

    def decode(self, outputs: Any, frames: Any, metas: Any) -> list[Detections]:
        return [Detections(np.array([[0, 0, 64 * 20, 64 * 20]]), [0.9], [0]) for _ in frames]


class EchoRunner(Runner):
    """A host runner with one input ``x`` (any batch) that echoes it as ``y``."""

    backend = "echo"

    def __init__(self) -> None:
        self.inputs = [TensorInfo("x", (None, 1), np.dtype(np.float32))]
        self.outputs = [TensorInfo("y", (None, 1), np.dtype(np.float32))]
        self.metadata = {}
        self.model_path = Path("echo.onnx")

    def _infer(self, feeds: Any, stream: Any) -> dict[str, Any]:
        return {"y": feeds["x"]}


def test_suite_refuses_options_that_accept_unknown_keys() -> None:
    from trtapps.testing.suites import _check_options_model

    spec = ComponentSpec("sloppy", SloppyOptions, lambda o, c: SquashingApp(), "an app with sloppy options")
    with pytest.raises(AssertionError, match="must forbid unknown keys"):
        _check_options_model(spec, AppOptions, {"type": "sloppy", "model": "m.onnx"})


def test_suite_catches_boxes_outside_the_frame(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run the decode check of AppSuite on an app that leaves boxes in model pixels: it must fail, naming why."""
    from trtapps.testing.suites import BoundApp

    suite = AppSuite()
    frames = synthetic_frames(2)
    bound = BoundApp(app=SquashingApp(), runner=EchoRunner(), options=AppOptions(type="x", model="m"),
                     context=RunContext())
    batched = {f.index: d for f, d in zip(frames, AppSuite._detect(bound, frames))}
    with pytest.raises(AssertionError, match="box right edge beyond the frame width"):
        suite.test_decode_gives_one_detections_per_frame_in_original_pixels(bound, frames, batched)


class ForgetfulSink:
    """Writes nothing and cannot be closed twice."""

    needs_images = False

    def __init__(self) -> None:
        self.closed = False

    def write(self, result: FrameResult) -> None:
        pass

    def close(self, summary: Any = None) -> None:
        if self.closed:
            raise RuntimeError("already closed")
        self.closed = True


def test_sink_suite_catches_a_sink_that_writes_nothing(tmp_path: Path) -> None:
    suite = SinkSuite()
    with pytest.raises(AssertionError, match="wrote nothing"):
        suite.test_write_and_close_with_a_summary(ForgetfulSink(), tmp_path)
    with pytest.raises(RuntimeError, match="already closed"):
        suite.test_close_twice(ForgetfulSink())


# -- helpers and the pytest plugin's fixtures --------------------------------------------------------------------------
def test_synthetic_frames_are_deterministic_and_of_mixed_sizes(synthetic_frames: list[Frame]) -> None:
    again = testing.synthetic_frames()
    assert len(synthetic_frames) == len(again) == 4
    assert len({(f.height, f.width) for f in synthetic_frames}) == 4
    assert [f.index for f in synthetic_frames] == [0, 1, 2, 3]
    for frame, other in zip(synthetic_frames, again):
        assert frame.image.dtype == np.uint8
        assert frame.image.shape[2] == 3
        assert np.array_equal(frame.image, other.image)
    assert not np.array_equal(synthetic_image(64, 64, seed=1), synthetic_image(64, 64, seed=2))
    assert synthetic_image(64, 64).std() > 20  # structure, not a flat frame


def test_plugin_manager_fixture_loads_core_and_entry_point_plugins(plugin_manager: PluginManager) -> None:
    assert {"yolo", "retinaface"} <= set(plugin_manager.registries.app.names())
    assert "jsonl" in plugin_manager.registries.sink
    assert not plugin_manager.failures, plugin_manager.failure_lines()


class CollectOptions(SinkOptions):
    type: str = "collect"


class CollectSink:
    needs_images = False

    def __init__(self) -> None:
        self.results: list[FrameResult] = []
        self.summary: Any = None

    def write(self, result: FrameResult) -> None:
        self.results.append(result)

    def close(self, summary: Any) -> None:
        self.summary = summary


def test_make_pipeline_with_an_inline_plugin(make_pipeline: Any, tmp_path: Path) -> None:
    collected = CollectSink()
    plugin = InlinePlugin("collector", sinks=[ComponentSpec("collect", CollectOptions, lambda o, c: collected,
                                                            "keeps results in memory")])
    pipe: Pipeline = make_pipeline(
        {
            "app": {"type": "retinaface", "model": str(shared_path("models/retinaface_mnet025.onnx"))},
            "source": {"type": "images", "path": str(shared_path("media/zidane.jpg"))},
            "sinks": [{"type": "collect"}, {"type": "jsonl"}],
        },
        plugins=[plugin],
    )
    summary = pipe.run()
    assert pipe.registries.sink.get("collect").plugin == "collector"
    assert pipe.manager.infos["collector"].hooks == ["trtapps_register_sinks"]
    assert [len(r.detections or ()) for r in collected.results] == [2]  # the manifest: two faces on zidane.jpg
    assert collected.summary is summary
    assert summary.frames_out == 1
    assert (tmp_path / "out" / "results.jsonl").is_file()  # output defaults under tmp_path


def test_report_header_names_trtapps_and_the_plugins() -> None:
    import trtapps
    from trtapps.testing.plugin import pytest_report_header

    (line, *failures) = pytest_report_header(None)  # type: ignore[arg-type]
    assert line.startswith(f"trtapps {trtapps.__version__}; plugins: ")
    assert f"yolo (trtapps {trtapps.__version__})" in line
    assert not failures
