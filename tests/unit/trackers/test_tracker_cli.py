"""Registration, the ``mot`` sink, and the ``mot`` / ``mot-eval`` commands on a bare Typer app."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

import trtapps_plugins.trackers as trackers_plugin
from conftest import shared_path
from trtapps import Detections, FrameResult, RunContext
from trtapps.errors import ConfigError, UserError
from trtapps.plugins import PluginManager
from trtapps_plugins.trackers.cli import parse_params, run_mot
from trtapps_plugins.trackers.mot import evaluate
from trtapps_plugins.trackers.sink import MotSinkOptions, build_mot_sink


@pytest.fixture
def app() -> typer.Typer:
    cli = typer.Typer()
    trackers_plugin.trtapps_register_commands(cli)
    return cli


def test_plugin_registers_trackers_and_sink_through_the_plugin_manager() -> None:
    pm = PluginManager(plugins=[trackers_plugin], entry_points=False)
    assert not [f for f in pm.failures if f.name == trackers_plugin.__name__]
    assert {"sort", "bytetrack", "deepsort"} <= set(pm.registries.tracker.names())
    assert "mot" in pm.registries.sink.names()
    spec = pm.registries.tracker.get("bytetrack")
    options = spec.options.model_validate({"type": "bytetrack", "track_thresh": 0.6})
    tracker = spec.factory(options, RunContext())
    assert tracker.update(Detections.empty(), None).track_ids.shape == (0,)


def test_registration_hooks_hand_over_specs_with_factories() -> None:
    trackers: list = []
    trackers_plugin.trtapps_register_trackers(register=trackers.append)
    sinks: list = []
    trackers_plugin.trtapps_register_sinks(register=sinks.append)
    assert [s.name for s in trackers] == ["sort", "bytetrack", "deepsort"]
    assert [s.name for s in sinks] == ["mot"]
    for spec in trackers:  # every factory builds a working tracker from default options
        tracker = spec.factory(spec.options(), RunContext())
        assert len(tracker.update(Detections.empty(), None)) == 0


def test_mot_sink_writes_one_file_per_source_and_closes(tmp_path: Path) -> None:
    sink = build_mot_sink(MotSinkOptions(), RunContext(output_dir=tmp_path))
    assert sink.needs_images is False
    tracked = Detections(
        boxes=np.array([[10, 20, 40, 80]], np.float32), scores=np.array([0.5], np.float32),
        class_ids=np.zeros(1, np.int32), track_ids=np.array([7]),
    )
    for index in range(2):
        sink.write(FrameResult(source="/videos/a.mp4", index=index, width=64, height=64, detections=tracked))
    sink.write(FrameResult(source="/videos/b.mp4", index=0, width=64, height=64, detections=tracked, source_id=1))
    sink.write(FrameResult(source="/videos/b.mp4", index=1, width=64, height=64, error="corrupt", source_id=1))
    sink.close(None)
    sink.close(None)
    assert (tmp_path / "mot" / "a.txt").read_text() == "1,7,10.00,20.00,30.00,60.00,0.5,-1,-1,-1\n" \
                                                      "2,7,10.00,20.00,30.00,60.00,0.5,-1,-1,-1\n"
    assert (tmp_path / "mot" / "b.txt").read_text().count("\n") == 1


def test_mot_sink_numbers_an_image_sequence_by_position_and_names_it_after_the_sequence(tmp_path: Path) -> None:
    sink = build_mot_sink(MotSinkOptions(), RunContext(output_dir=tmp_path))
    tracked = Detections(
        boxes=np.array([[10, 20, 40, 80]], np.float32), scores=np.array([0.5], np.float32),
        class_ids=np.zeros(1, np.int32), track_ids=np.array([3]),
    )
    frames = [f"/data/MOT17-09/img1/{i:06d}.jpg" for i in (1, 2, 3)]  # image results all have index 0
    sink.write(FrameResult(source=frames[0], index=0, width=64, height=64, detections=tracked))
    sink.write(FrameResult(source=frames[1], index=0, width=64, height=64, error="corrupt"))  # still frame 2
    sink.write(FrameResult(source=frames[2], index=0, width=64, height=64, detections=tracked))
    sink.write(FrameResult(source="/shots/a.png", index=0, width=64, height=64, detections=tracked, source_id=1))
    sink.close(None)
    assert (tmp_path / "mot" / "MOT17-09.txt").read_text() == "1,3,10.00,20.00,30.00,60.00,0.5,-1,-1,-1\n" \
                                                             "3,3,10.00,20.00,30.00,60.00,0.5,-1,-1,-1\n"
    assert (tmp_path / "mot" / "shots.txt").read_text().startswith("1,3,")


def test_params_are_yaml_scalars_and_validated_by_the_options_model(tmp_path: Path) -> None:
    assert parse_params(["track_thresh=0.6", "fuse_score=false", "new_track_thresh=null"]) == {
        "track_thresh": 0.6, "fuse_score": False, "new_track_thresh": None,
    }
    data = shared_path("mot/MOT15/TUD-Campus")
    with pytest.raises(ConfigError) as err:
        run_mot(data, "bytetrack", tmp_path, {"track_tresh": 0.6, "match_thresh": 2}, echo=lambda s: None)
    lines = err.value.problems
    assert any(line.startswith("--param track_tresh: unknown option") for line in lines)
    assert any(line.startswith("--param match_thresh:") for line in lines)
    with pytest.raises(ConfigError, match="did you mean 'sort'"):
        run_mot(data, "sortt", tmp_path, echo=lambda s: None)
    with pytest.raises(ConfigError, match="--param"):
        parse_params(["oops"])
    with pytest.raises(UserError, match="no det/det_"):
        run_mot(data, "deepsort", tmp_path, echo=lambda s: None)


def test_mot_then_mot_eval_commands(app: typer.Typer, tmp_path: Path) -> None:
    runner = CliRunner()
    data = shared_path("mot/MOT15")
    out = tmp_path / "sort"
    result = runner.invoke(app, ["mot", "--data", str(data / "TUD-Campus"), "--tracker", "sort",
                                 "--param", "max_age=1", "-p", "min_hits=3", "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert "TUD-Campus: 71 frames" in result.output
    assert "fps" in result.output
    assert (out / "TUD-Campus.txt").read_text().splitlines()[0].count(",") == 9

    result = runner.invoke(app, ["mot-eval", "--data", str(data), "--results", str(out),
                                 "--json", str(tmp_path / "m.json")])
    assert result.exit_code == 0, result.output
    assert "TUD-Campus" in result.output
    assert "62.7" in result.output
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["sequences"]["TUD-Campus"]["num_false_positives"] == 15
    assert sorted(metrics["missing"]) == ["ADL-Rundle-6", "ETH-Bahnhof", "ETH-Sunnyday", "KITTI-13", "Venice-2"]

    bad = runner.invoke(app, ["mot", "--data", str(data), "--tracker", "sort", "-p", "max_age=-1",
                              "--output", str(out)])
    assert isinstance(bad.exception, ConfigError)
    assert "--param max_age" in str(bad.exception)


def test_det_file_selects_other_detections_per_sequence(tmp_path: Path) -> None:
    data = shared_path("mot/MOT15/ETH-Sunnyday")
    frcnn = run_mot(data, "sort", tmp_path / "a", {"min_hits": 0}, echo=lambda s: None)[0]
    acf = run_mot(data, "sort", tmp_path / "b", {"min_hits": 0}, det_file="det/det_acf.txt", echo=lambda s: None)[0]
    assert frcnn.frames == acf.frames == 354
    assert len(frcnn.rows) != len(acf.rows)
    with pytest.raises(UserError, match="not found"):
        run_mot(data, "sort", tmp_path / "c", det_file="det/nope.txt", echo=lambda s: None)


def test_empty_results_count_every_ground_truth_box_as_missed(tmp_path: Path) -> None:
    (tmp_path / "TUD-Campus.txt").write_text("")
    report = evaluate(shared_path("mot/MOT15"), tmp_path, ["TUD-Campus"])
    row = report.rows["TUD-Campus"]
    assert row["num_misses"] == 359  # the MANIFEST's evaluated GT boxes of TUD-Campus
    assert row["num_false_positives"] == 0
    with pytest.raises(UserError, match="nothing to evaluate"):
        evaluate(shared_path("mot/MOT15"), tmp_path / "nowhere")


def test_deepsort_command_with_a_reid_model_on_frames(app: typer.Typer, tmp_path: Path) -> None:
    model = shared_path("models/osnet_x0_25_msmt17.onnx")
    result = CliRunner().invoke(app, ["mot", "--data", str(shared_path("mot/MOT15/TUD-Campus")),
                                      "--tracker", "deepsort", "--reid", str(model), "--output", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "ReID" in result.output
    rows = np.loadtxt(tmp_path / "TUD-Campus.txt", delimiter=",", ndmin=2)
    assert rows.shape[1] == 10
    assert len(rows) > 100
    assert rows[:, 0].min() >= 1
    assert rows[:, 0].max() <= 71
