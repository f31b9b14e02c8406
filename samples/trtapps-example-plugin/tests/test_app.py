"""The example plugin: the trtapps conformance suites for app ``yolo_e2e`` and sink ``csv``, then what is specific
to them: same detections as the built-in ``yolo`` app on the model the end-to-end head was built from, threshold
semantics, misfit models, the CSV contents, discovery through the entry point, and the sample config."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
from conftest import SAMPLE, data_file, load_make_e2e_model
from trtapps import Detections, FrameResult, ModelError
from trtapps.cli import build_app, main
from trtapps.runners.onnxruntime import OnnxRuntimeRunner
from trtapps.testing import load_frame
from trtapps.testing.suites import AppSuite, SinkSuite
from typer.testing import CliRunner

import trtapps_example
from trtapps_example.app import YoloE2EApp
from trtapps_example.options import YoloE2EOptions
from trtapps_example.sinks import COLUMNS


# -- conformance ---------------------------------------------------------------------------------------------------
class TestYoloE2EConformance(AppSuite):
    app_options: ClassVar[dict[str, Any]] = {"type": "yolo_e2e", "model": "set by suite_options"}
    expect_detections = True

    @pytest.fixture(scope="class")
    @classmethod
    def suite_options(cls, e2e_model: Path) -> dict[str, Any]:
        return {**cls.app_options, "model": str(e2e_model)}

    @pytest.fixture(scope="class")
    @classmethod
    def suite_images(cls) -> list[Any]:
        return [data_file("media/bus.jpg"), data_file("media/zidane.jpg")]


class TestCsvSinkConformance(SinkSuite):
    sink_options: ClassVar[dict[str, Any]] = {"type": "csv", "path": "detections.csv"}

    def check_output(self, output_dir: Path, results: list[FrameResult]) -> None:
        with open(output_dir / "detections.csv", newline="") as f:
            rows = list(csv.reader(f))
        assert tuple(rows[0]) == COLUMNS
        expected = [(r.source, str(r.index)) for r in results for _ in range(len(r.detections or ()))]
        assert [(row[0], row[1]) for row in rows[1:]] == expected


# -- the app -------------------------------------------------------------------------------------------------------
def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in ``a`` (n, 4) with every box in ``b`` (m, 4)."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_a = np.prod(a[:, 2:] - a[:, :2], axis=1)
    area_b = np.prod(b[:, 2:] - b[:, :2], axis=1)
    return inter / (area_a[:, None] + area_b[None, :] - inter)


def sort_by_score(d: Detections) -> Detections:
    return d[np.lexsort((d.boxes[:, 0], -d.scores))]


def test_rows_are_the_builtin_yolo_candidates_before_nms(
    make_pipeline: Any, e2e_model: Path, yolov8_onnx: Path
) -> None:
    """With NMS disabled (IoU threshold 1), the built-in app keeps every candidate above the threshold: the same
    anchors, scores and boxes the end-to-end head returns (it is made from the very same model)."""
    bus = data_file("media/bus.jpg")
    source = {"type": "images", "path": str(bus)}
    yolo = make_pipeline({"app": {"type": "yolo", "model": str(yolov8_onnx), "iou_threshold": 1.0}, "source": source})
    e2e = make_pipeline({"app": {"type": "yolo_e2e", "model": str(e2e_model)}, "source": source})
    want = sort_by_score(yolo.predict(bus).detections)
    got = sort_by_score(e2e.predict(bus).detections)
    assert 5 < len(got) < 300  # many duplicates (no NMS), but fewer than K: nothing above 0.25 was cut off
    assert len(got) == len(want)
    np.testing.assert_array_equal(got.class_ids, want.class_ids)
    np.testing.assert_allclose(got.scores, want.scores, atol=1e-5)
    np.testing.assert_allclose(got.boxes, want.boxes, atol=0.05)


def test_top_detections_on_bus_are_the_bus_and_the_people(
    make_pipeline: Any, e2e_model: Path, yolov8_onnx: Path
) -> None:
    """Every detection of the built-in app (with NMS) is among the end-to-end rows, same class, IoU > 0.9."""
    bus = data_file("media/bus.jpg")
    source = {"type": "images", "path": str(bus)}
    reference = make_pipeline({"app": {"type": "yolo", "model": str(yolov8_onnx)}, "source": source})
    e2e = make_pipeline({"app": {"type": "yolo_e2e", "model": str(e2e_model)}, "source": source})
    ref, got = reference.predict(bus), e2e.predict(bus)
    labels = sorted(ref.label(int(c)) for c in ref.detections.class_ids)
    assert labels == ["bus", "person", "person", "person", "person"]
    overlaps = iou(ref.detections.boxes, got.detections.boxes)
    same_class = ref.detections.class_ids[:, None] == got.detections.class_ids[None, :]
    best = np.where(same_class, overlaps, 0).max(axis=1)
    assert (best > 0.9).all(), best
    assert got.labels == ref.labels  # class names from the model's metadata


def test_threshold_only_keeps_rows_above_it(e2e_model: Path) -> None:
    frames = [load_frame(data_file("media/zidane.jpg"))]
    counts = {}
    with OnnxRuntimeRunner(e2e_model) as runner:
        for threshold in (0.25, 0.6):
            app = YoloE2EApp(YoloE2EOptions(model=str(e2e_model), conf_threshold=threshold))
            app.bind(runner)
            inputs, metas = app.preprocess(frames)
            (dets,) = app.decode(runner.infer(inputs), frames, metas)
            assert (dets.scores > threshold).all()
            counts[threshold] = len(dets)
    assert counts[0.25] > counts[0.6] > 0


def test_bind_refuses_a_model_without_an_end_to_end_head(yolov8_onnx: Path) -> None:
    app = YoloE2EApp(YoloE2EOptions(model=str(yolov8_onnx)))
    with OnnxRuntimeRunner(yolov8_onnx) as runner, pytest.raises(
        ModelError, match=r"needs one output \[batch, K, 6\].*use app 'yolo'"
    ):
        app.bind(runner)


def test_names_option_replaces_the_metadata_names(e2e_model: Path) -> None:
    app = YoloE2EApp(YoloE2EOptions(model=str(e2e_model), names=[f"c{i}" for i in range(80)]))
    with OnnxRuntimeRunner(e2e_model) as runner:
        app.bind(runner)
    assert app.labels[:2] == ("c0", "c1")
    with pytest.raises(ValueError, match="at least one class name"):
        YoloE2EOptions(model="m.onnx", names=[])


def test_make_e2e_model_refuses_other_heads(tmp_path: Path) -> None:
    faces = data_file("models/retinaface_mnet025.onnx")  # three outputs
    with pytest.raises(ValueError, match="expected one output"):
        load_make_e2e_model().make_e2e_model(faces, tmp_path / "x.onnx")


# -- the sink in a run, discovery, the sample config ------------------------------------------------------------
def test_csv_rows_match_the_jsonl_lines(make_pipeline: Any, e2e_model: Path, tmp_path: Path) -> None:
    images = [str(data_file("media/bus.jpg")), str(data_file("media/zidane.jpg"))]
    pipe = make_pipeline({
        "app": {"type": "yolo_e2e", "model": str(e2e_model), "conf_threshold": 0.5, "batch_size": 2},
        "source": {"type": "images", "path": images},
        "sinks": [{"type": "csv"}, {"type": "jsonl"}],
    })
    summary = pipe.run()
    with open(tmp_path / "out" / "detections.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    lines = [json.loads(line) for line in (tmp_path / "out" / "results.jsonl").read_text().splitlines()]
    expected = [(line["source"], str(line["frame"]), d["label"], d["box"])
                for line in lines for d in line["detections"]]
    got = [(r["source"], r["frame"], r["label"], [float(r[k]) for k in ("x1", "y1", "x2", "y2")]) for r in rows]
    assert got == expected
    assert len(rows) == summary.detections > 0


def test_discovered_through_its_entry_point(plugin_manager: Any) -> None:
    info = plugin_manager.infos["yolo_e2e"]
    assert (info.distribution, info.version) == ("trtapps-example-plugin", trtapps_example.__version__)
    assert info.components == {"app": ["yolo_e2e"], "sink": ["csv"]}
    assert plugin_manager.registries.app.get("yolo_e2e").plugin == "yolo_e2e"


def test_trtapps_plugins_lists_it() -> None:
    result = CliRunner().invoke(build_app(), ["plugins", "--json"])
    assert result.exit_code == 0, result.output
    (entry,) = [p for p in json.loads(result.output)["plugins"] if p["name"] == "yolo_e2e"]
    assert entry["distribution"] == "trtapps-example-plugin"
    assert entry["version"] == trtapps_example.__version__
    assert entry["registers"] == {"app": ["yolo_e2e"], "sink": ["csv"]}


def test_the_example_config_runs(e2e_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data_file("media/bus.jpg")
    monkeypatch.setenv("YOLO_E2E_MODEL", str(e2e_model))
    main(["run", str(SAMPLE / "configs" / "example.yaml"), "--output", str(tmp_path), "--quiet"])
    summary = json.loads((tmp_path / "summary.json").read_text())
    with open(tmp_path / "detections.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert summary["frames_failed"] == 0
    assert summary["frames_out"] >= 4  # the shared photos
    assert len(rows) == summary["detections"]
    assert {"bus", "person"} <= {r["label"] for r in rows if r["source"].endswith("bus.jpg")}
