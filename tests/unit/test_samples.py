"""The samples work as documented: each ``samples/python_api`` script in a subprocess against the shared data, the
examples of ``docs/plugins.md`` as one plugin module (registered, its command run, its components and lifecycle
hooks used in a run), and the example plugin package's own test suite when it is installed."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import REPO, require_module, shared_path
from trtapps import ComponentSpec, ConfigError, ModelError, PostprocessorOptions, hookspecs
from trtapps.cli import build_app
from trtapps.errors import StageError
from trtapps.pipeline import Pipeline
from trtapps.plugins import PluginManager
from trtapps.testing import InlinePlugin

PYTHON_API = REPO / "samples" / "python_api"
EXAMPLE_PLUGIN = REPO / "samples" / "trtapps-example-plugin"


def data() -> Path:
    """The shared data folder (skips, or fails under CI=true, when the files the samples use are missing)."""
    shared_path("media/zidane.jpg")
    return shared_path("models/yolov8n_dequant.onnx").parents[1]


def read_image(path: Path) -> np.ndarray:
    image = cv2.imread(str(path))
    assert image is not None, f"cannot read {path}"
    return image


def run_sample(script: str, *args: str, env: dict[str, str] | None = None, pass_data: bool = True) -> str:
    command = [sys.executable, str(PYTHON_API / script), *([str(data())] if pass_data else []), *args]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env, cwd=PYTHON_API)
    assert proc.returncode == 0, f"{script} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


# -- samples/python_api ---------------------------------------------------------------------------------------------------
def test_01_run_config(tmp_path: Path) -> None:
    out = run_sample("01_run_config.py", "--output", str(tmp_path), "--images", "bus.jpg", "zidane.jpg")
    assert "frames in 2 · out 2 · failed 0 · detections 8 · backend onnxruntime" in out
    assert "bus.jpg: 5 detections (bus, person, person, person, person)" in out
    assert "zidane.jpg: 3 detections (person, person, tie)" in out
    assert len((tmp_path / "results.jsonl").read_text().splitlines()) == 2
    assert json.loads((tmp_path / "summary.json").read_text())["frames_out"] == 2


def test_02_build_pipeline_reads_trtapps_data_from_the_environment() -> None:
    env = {**os.environ, "TRTAPPS_DATA": str(data())}
    out = run_sample("02_build_pipeline.py", "--images", "bus.jpg", env=env, pass_data=False)
    assert "app.conf_treshold: unknown field 'conf_treshold'; did you mean 'conf_threshold'?" in out
    assert "bus.jpg (810x1080): 4 detections" in out
    labels = re.findall(r"^  (\w+) +0\.\d\d  \[", out, re.MULTILINE)
    assert sorted(labels) == ["bus", "person", "person", "person"]  # classes: [person, bus], conf 0.4


def test_03_inline_plugin_writes_crops(tmp_path: Path) -> None:
    out = run_sample("03_inline_plugin.py", "--output", str(tmp_path), "--images", "bus.jpg")
    assert "sink 'crops' registered by plugin 'crops'" in out
    assert "crops: 4 crops of 1 frames" in out
    crops = sorted(p.name for p in (tmp_path / "crops").iterdir())
    assert crops == ["bus_000_person.jpg", "bus_001_person.jpg", "bus_002_person.jpg", "bus_003_bus.jpg"]
    bus = read_image(tmp_path / "crops" / "bus_003_bus.jpg")
    assert bus.shape[:2] == pytest.approx((770 - 230, 800 - 34), abs=3)  # the manifest's bus box
    assert (tmp_path / "results.jsonl").is_file()


def test_04_async_service_answers_every_request() -> None:
    out = run_sample("04_async_service.py", "--clients", "3", "--requests", "6", "--images", "bus.jpg", "zidane.jpg")
    counts = re.findall(r"^request +\d+: (\S+) +(\d+) detections", out, re.MULTILINE)
    assert counts == [("bus.jpg", "5"), ("zidane.jpg", "3")] * 3
    assert "6 requests from 3 clients" in out
    assert "all 6 results match predict()" in out


def test_samples_refuse_a_folder_without_the_data(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, str(PYTHON_API / "02_build_pipeline.py"), str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert "is not the shared data folder (no models/ inside); pass it as DATA" in proc.stderr


# -- docs/plugins.md ------------------------------------------------------------------------------------------------------
def docs_plugin() -> ModuleType:
    """Every ```python block of docs/plugins.md, executed in order as one module named ``run_report``."""
    text = (REPO / "docs" / "plugins.md").read_text()
    module = ModuleType("run_report")
    for block in re.findall(r"```python\n(.*?)```", text, re.DOTALL):
        exec(compile(block, str(REPO / "docs" / "plugins.md"), "exec"), module.__dict__)
    return module


class ExplodeOptions(PostprocessorOptions):
    type: str = "explode_after_first"


def explode_after_first(options: Any, context: Any) -> Any:
    def step(detections: Any, frame: Any) -> Any:
        if frame.index > 0:
            raise RuntimeError("boom")
        return detections

    return step


EXPLODER = InlinePlugin("exploder", postprocessors=[ComponentSpec("explode_after_first", ExplodeOptions,
                                                                   explode_after_first, "fails from frame 1 on")])


def test_docs_examples_form_a_plugin_implementing_every_hook() -> None:
    module = docs_plugin()
    manager = PluginManager([module])
    assert not manager.failures, manager.failure_lines()
    info = manager.infos["run_report"]
    hooks = sorted(name for name in dir(hookspecs) if name.startswith("trtapps_"))
    assert info.hooks == hooks
    assert info.components == {"app": ["whole_frame"], "source": ["npy"], "sink": ["counts"], "tracker": ["iou"],
                               "postprocessor": ["min_area"], "backend": ["openvino"]}
    available = manager.registries.backend.get("openvino").available
    assert available is not None
    reason = available()
    assert reason is None or "OpenVINO" in reason
    result = CliRunner().invoke(build_app(manager), ["labels", str(shared_path("models/yolov8n_dequant.onnx"))])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("0\tperson\n1\tbicycle\n2\tcar\n")


def test_docs_examples_run_in_a_pipeline(tmp_path: Path) -> None:
    zidane = read_image(shared_path("media/zidane.jpg"))
    np.save(tmp_path / "frames.npy", np.stack([zidane] * 3))
    module = docs_plugin()
    data = {
        "source": {"type": "npy", "path": str(tmp_path / "frames.npy")},
        "app": {"type": "retinaface", "model": str(shared_path("models/retinaface_mnet025.onnx"))},
        "postprocess": [{"type": "min_area", "pixels": 100}],
        "tracker": {"type": "iou"},
        "sinks": [{"type": "counts"}, {"type": "jsonl"}],
        "output": str(tmp_path / "out"),
        "plugins": {"run_report": {"path": "report.json", "max_failures": 3}},
    }
    summary = Pipeline.from_dict(data, plugins=[module]).run()
    assert summary.frames_out == 3
    assert json.loads((tmp_path / "out" / "counts.json").read_text()) == {"face": 6}  # two faces per frame
    lines = [json.loads(line) for line in (tmp_path / "out" / "results.jsonl").read_text().splitlines()]
    ids = [sorted(d["track_id"] for d in line["detections"]) for line in lines]
    assert ids == [[1, 2]] * 3  # the same frame three times: the IoU tracker keeps both ids
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["app"] == "retinaface"
    assert report["summary"]["frames_out"] == 3

    with pytest.raises(ConfigError, match=r"plugins\.run_report: unknown settings \['bogus'\]"):
        Pipeline.from_dict({**data, "plugins": {"run_report": {"bogus": 1}}}, plugins=[module])
    with pytest.raises(ModelError, match="app whole_frame needs one image input and one \\[batch, classes\\] output"):
        Pipeline.from_dict({**data, "app": {"type": "whole_frame", "model": str(shared_path(
            "models/yolov8n_dequant.onnx"))}}, plugins=[module])


def test_docs_stage_error_policy_aborts_after_max_failures(tmp_path: Path) -> None:
    zidane = read_image(shared_path("media/zidane.jpg"))
    np.save(tmp_path / "frames.npy", np.stack([zidane] * 4))
    data = {
        "source": {"type": "npy", "path": str(tmp_path / "frames.npy")},
        "app": {"type": "retinaface", "model": str(shared_path("models/retinaface_mnet025.onnx"))},
        "postprocess": [{"type": "explode_after_first"}],
        "sinks": [{"type": "jsonl"}],
        "output": str(tmp_path / "skip"),
        "plugins": {"run_report": {"max_failures": 5}},
    }
    summary = Pipeline.from_dict(data, plugins=[docs_plugin(), EXPLODER]).run()
    assert (summary.frames_out, summary.frames_failed) == (4, 3)  # under the limit: on_error (skip) decides

    aborting = {**data, "output": str(tmp_path / "abort"), "plugins": {"run_report": {"max_failures": 1}}}
    with pytest.raises(StageError, match="boom"):
        Pipeline.from_dict(aborting, plugins=[docs_plugin(), EXPLODER]).run()
    report = json.loads((tmp_path / "abort" / "report.json").read_text())
    assert report["summary"]["error"].startswith("StageError")
    assert report["summary"]["frames_failed"] == 1  # the first failure was skipped, the second aborted


# -- samples/trtapps-example-plugin ---------------------------------------------------------------------------------------
def test_example_plugin_passes_its_own_tests() -> None:
    require_module("trtapps_example", "the example plugin: pip install -e samples/trtapps-example-plugin")
    env = {**os.environ, "TRTAPPS_DATA": str(data())}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=EXAMPLE_PLUGIN,
                          capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert re.search(r"^\d+ passed in ", proc.stdout.splitlines()[-1]), proc.stdout[-2000:]
