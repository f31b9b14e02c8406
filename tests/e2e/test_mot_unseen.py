"""SORT and ByteTrack on a MOTChallenge sequence that is not in the shared data: TUD-Stadtmitte (MOT15).

The sequence folder is built by ``benchmarks/mot_unseen.py`` from the ``gt.txt`` / ``test.txt`` that the
motmetrics package ships (no network, no shared data): ``det/det.txt`` holds seeded detections derived from the
ground truth ("gt-jitter"), ``det/det_testtxt.txt`` motmetrics' test.txt boxes without ids. Our trackers run
through the ``trtapps mot`` and ``trtapps mot-eval`` commands. They are compared with the reference numbers
below, which that script measured on the same two detection files (their sha256 is checked first):

* SORT against abewley/sort (the ``sort-track`` 0.0.8 package from PyPI with abewley's ``lap.lapjv``
  assignment): exact, every count equal and the same ids in the same frames (the script also found every box
  equal to the files' 0.01);
* ByteTrack against boxmot 25.0.0's ``ByteTrack``: ours (ifzhang/ByteTrack settings) must reach boxmot's
  MOTA and IDF1 within 0.5 point, and with ``new_track_thresh=0.6`` (boxmot starts tracks at
  ``score >= track_thresh``) it must give boxmot's numbers and ids exactly (the script found the same boxes).

The numbers are those of ``benchmarks/results/mot_unseen.json`` (2026-11-24, trtapps 0.1.0, sort-track 0.0.8 +
filterpy 1.4.5 + lap 0.5.13, boxmot 25.0.0, motmetrics 1.4.0); ``test_committed_json_has_these_numbers`` keeps
the two in step.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

import trtapps_plugins.trackers as trackers_plugin
from conftest import REPO, benchmark_script

#: sha256 of the two detection files that the reference numbers were measured on
DET_SHA256 = {
    "gt-jitter": "59be5027531151cc06299304d50f3ba9315497cb302cebbef30a77046d992662",
    "motmetrics test.txt": "4664a15636e1535f3c5a081e4ba07104f23403fa3419af9d08b12ee1622c2426",
}
#: (MOTA, IDF1, ID switches, FP, FN) of the reference implementations, from benchmarks/results/mot_unseen.json
REFERENCE = {
    ("gt-jitter", "sort"): (0.4982698961937716, 0.3310344827586207, 35, 59, 486),  # abewley/sort
    ("gt-jitter", "bytetrack"): (0.7240484429065743, 0.8450839328537171, 4, 44, 271),  # boxmot 25.0.0
    ("motmetrics test.txt", "sort"): (0.5700692041522492, 0.652888182299947, 6, 33, 458),
    ("motmetrics test.txt", "bytetrack"): (0.5674740484429066, 0.5778947368421052, 6, 41, 453),
}
#: sha256 of the reference outputs' sorted ``frame,id`` pairs (script's ``frame_id_digest``): the same ids in the
#: same frames, row for row (abewley/sort for sort; boxmot for bytetrack with new_track_thresh=0.6)
REFERENCE_FRAME_IDS = {
    ("gt-jitter", "sort"): "0b49d34fc1f7ba67506218b0a8d030a8c25e8fbac29dd7a93e1922392a168c89",
    ("gt-jitter", "bytetrack"): "0e0b02b5c4cd7699b2db12d7e173dbca4690a7e88e9b30e7430d0c8a6d58eb0b",
    ("motmetrics test.txt", "sort"): "5a4cb5a274434c96950bdcd5eeda1db333bb5a85a28f28364f7b3f67b2f0d1be",
    ("motmetrics test.txt", "bytetrack"): "759d1d5bd8f5111a1ebacf49e154bd9ae39c4a20b05723c8c73c1f9b91375d86",
}
#: ours may trail boxmot's MOTA / IDF1 by at most this much (ratio; 0.005 = 0.5 point)
BYTETRACK_TOLERANCE = 0.005


@pytest.fixture(scope="module")
def script() -> ModuleType:
    return benchmark_script("mot_unseen")


@pytest.fixture(scope="module")
def sequence(script: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return script.build_sequence(tmp_path_factory.mktemp("unseen"))


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    cli = typer.Typer()
    trackers_plugin.trtapps_register_commands(cli)
    return cli


def run_commands(app: typer.Typer, seq: Path, tracker: str, params: dict[str, Any], det_file: str | None,
                 out: Path) -> dict[str, float]:
    """``trtapps mot`` then ``trtapps mot-eval --json``; the sequence's metrics."""
    runner = CliRunner()
    args = ["mot", "--data", str(seq), "--tracker", tracker, "--output", str(out)]
    for key, value in params.items():
        args += ["-p", f"{key}={value}"]
    if det_file:
        args += ["--det-file", det_file]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "TUD-Stadtmitte: 179 frames" in result.output
    result = runner.invoke(app, ["mot-eval", "--data", str(seq), "--results", str(out),
                                 "--json", str(out / "metrics.json")])
    assert result.exit_code == 0, result.output
    return json.loads((out / "metrics.json").read_text())["sequences"]["TUD-Stadtmitte"]


def numbers(metrics: dict[str, float]) -> tuple[float, float, int, int, int]:
    return (metrics["mota"], metrics["idf1"], int(metrics["num_switches"]), int(metrics["num_false_positives"]),
            int(metrics["num_misses"]))


def test_sequence_folder_is_the_one_the_references_ran_on(script: ModuleType, sequence: Path) -> None:
    info = (sequence / "seqinfo.ini").read_text()
    assert "seqLength=179" in info
    assert "frameRate=25" in info
    assert "imWidth=640" in info
    gt = (sequence / "gt" / "gt.txt").read_text().splitlines()
    assert len(gt) == 1156  # MOT15 TUD-Stadtmitte: 1156 boxes of 10 people over frames 1..179
    assert {line.split(",")[1] for line in gt} == {str(i) for i in range(1, 11)}
    for name, (det_path, _) in script.DETECTIONS.items():
        assert script.sha256(sequence / det_path) == DET_SHA256[name], (
            f"{name}: the generated detections changed, so the reference numbers no longer apply; rerun "
            "benchmarks/mot_unseen.py and update DET_SHA256 / REFERENCE"
        )


def test_mot_eval_reproduces_motmetrics_own_numbers_for_its_test_txt(
    script: ModuleType, sequence: Path, app: typer.Typer, tmp_path: Path
) -> None:
    # motmetrics' test suite scores its TUD-Stadtmitte test.txt against this gt.txt: the folder and mot-eval agree
    (tmp_path / "TUD-Stadtmitte.txt").write_bytes(script.motmetrics_file("test.txt").read_bytes())
    result = CliRunner().invoke(app, ["mot-eval", "--data", str(sequence), "--results", str(tmp_path),
                                      "--json", str(tmp_path / "m.json")])
    assert result.exit_code == 0, result.output
    row = json.loads((tmp_path / "m.json").read_text())["sequences"]["TUD-Stadtmitte"]
    expected = script.MOTMETRICS_TEST_TXT
    assert row["mota"] == pytest.approx(expected["mota"], abs=1e-6)
    assert row["idf1"] == pytest.approx(expected["idf1"], abs=1e-6)
    for key in ("num_false_positives", "num_misses", "num_switches"):
        assert row[key] == expected[key], key


@pytest.mark.parametrize("detections", ["gt-jitter", "motmetrics test.txt"])
def test_sort_equals_abewley_sort(
    script: ModuleType, sequence: Path, app: typer.Typer, tmp_path: Path, detections: str
) -> None:
    det_file = script.DETECTIONS[detections][1]
    ours = run_commands(app, sequence, "sort", script.PARAMS["sort"], det_file, tmp_path)
    assert numbers(ours) == REFERENCE[(detections, "sort")]
    assert script.frame_id_digest(tmp_path / "TUD-Stadtmitte.txt") == REFERENCE_FRAME_IDS[(detections, "sort")]


@pytest.mark.parametrize("detections", ["gt-jitter", "motmetrics test.txt"])
def test_bytetrack_reaches_boxmot(
    script: ModuleType, sequence: Path, app: typer.Typer, tmp_path: Path, detections: str
) -> None:
    det_file = script.DETECTIONS[detections][1]
    ref = REFERENCE[(detections, "bytetrack")]
    ours = run_commands(app, sequence, "bytetrack", script.PARAMS["bytetrack"], det_file, tmp_path / "a")
    assert ours["mota"] >= ref[0] - BYTETRACK_TOLERANCE, (ours["mota"], ref)
    assert ours["idf1"] >= ref[1] - BYTETRACK_TOLERANCE, (ours["idf1"], ref)
    # with boxmot's start threshold (score >= track_thresh) ours gives boxmot's numbers exactly
    same_start = {**script.PARAMS["bytetrack"], "new_track_thresh": 0.6}
    assert numbers(run_commands(app, sequence, "bytetrack", same_start, det_file, tmp_path / "b")) == ref
    digest = script.frame_id_digest(tmp_path / "b" / "TUD-Stadtmitte.txt")
    assert digest == REFERENCE_FRAME_IDS[(detections, "bytetrack")]


def test_committed_json_has_these_numbers() -> None:
    doc = json.loads((REPO / "benchmarks" / "results" / "mot_unseen.json").read_text())
    for name, sha in DET_SHA256.items():
        assert doc["detections"][name]["sha256"] == sha
    refs = [r for r in doc["results"] if r["run"] in ("ref-sort-lapjv", "ref-boxmot-bytetrack")]
    assert {(r["detections"], r["tracker"]): numbers(r) for r in refs} == REFERENCE
    assert {(r["detections"], r["tracker"]): r["frame_id_sha256"] for r in refs} == REFERENCE_FRAME_IDS
