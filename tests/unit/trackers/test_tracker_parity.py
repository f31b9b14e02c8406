"""Acceptance numbers on the shared MOTChallenge data: each tracker against its reference implementation.

The reference scores are ``mot/MANIFEST.md``'s (reference implementations, MOTChallenge protocol, motmetrics),
given to one decimal; ours are compared at the same precision. The ID-switch counts are integers and must be
equal.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import shared_path
from trtapps_plugins.trackers.bytetrack import ByteTracker, ByteTrackOptions
from trtapps_plugins.trackers.deepsort import DeepSortOptions, DeepSortTracker
from trtapps_plugins.trackers.mot import evaluate, find_sequences, load_sequence, run_tracker_on_sequence
from trtapps_plugins.trackers.sort import SortOptions, SortTracker

MOT15 = ["ADL-Rundle-6", "ETH-Bahnhof", "ETH-Sunnyday", "KITTI-13", "TUD-Campus", "Venice-2"]
MOT17_09 = ["MOT17-09-FRCNN", "MOT17-09-SDP"]


@pytest.fixture(scope="module")
def mot_dir() -> Path:
    return shared_path("mot")


def track(mot_dir: Path, names: list[str], make, appearance: bool = False) -> dict:
    results = {}
    for path in find_sequences(mot_dir):
        if path.name in names:
            seq = load_sequence(path, appearance=appearance)
            results[seq.name] = run_tracker_on_sequence(make(seq), seq).rows
    assert sorted(results) == sorted(names)
    return results


def pct(value: float) -> float:
    return round(100 * value, 1)


def test_sort_reproduces_the_published_mot15_and_mot17_numbers(mot_dir: Path) -> None:
    make = lambda seq: SortTracker(SortOptions(max_age=1, min_hits=3, iou_threshold=0.3))  # noqa: E731
    report = evaluate(mot_dir, track(mot_dir, MOT15, make), MOT15)
    assert pct(report.overall["mota"]) == 34.7
    assert pct(report.overall["idf1"]) == 47.9
    assert report.overall["num_switches"] == 247
    # SORT's published per-sequence numbers (MANIFEST): MOTA / FP / FN / ID switches
    for name, (mota, fp, fn, ids) in {
        "TUD-Campus": (62.7, 15, 113, 6),
        "ETH-Sunnyday": (59.1, 319, 418, 22),
        "Venice-2": (18.6, 1650, 4109, 57),
    }.items():
        row = report.rows[name]
        assert (pct(row["mota"]), row["num_false_positives"], row["num_misses"], row["num_switches"]) == (
            mota, fp, fn, ids
        ), name

    report = evaluate(mot_dir, track(mot_dir, MOT17_09, make), MOT17_09)
    assert (pct(report.overall["mota"]), pct(report.overall["idf1"])) == (55.8, 51.8)
    assert report.overall["num_switches"] == 75


def test_bytetrack_matches_the_reference_on_mot17_09(mot_dir: Path) -> None:
    def make(seq):
        return ByteTracker(
            ByteTrackOptions(
                track_thresh=0.6, low_thresh=0.1, match_thresh=0.9, track_buffer=30, frame_rate=seq.frame_rate
            )
        )

    report = evaluate(mot_dir, track(mot_dir, MOT17_09, make), MOT17_09)
    assert pct(report.overall["mota"]) >= 58.8
    assert pct(report.overall["idf1"]) >= 58.0
    assert report.overall["num_switches"] == 38


def test_deepsort_matches_the_reference_with_shipped_features(mot_dir: Path) -> None:
    options = DeepSortOptions(min_confidence=0.3, max_cosine_distance=0.2, nn_budget=100)
    report = evaluate(
        mot_dir, track(mot_dir, MOT17_09, lambda seq: DeepSortTracker(options), appearance=True), MOT17_09
    )
    assert pct(report.overall["mota"]) >= 59.6
    assert pct(report.overall["idf1"]) >= 56.4
    assert report.overall["num_switches"] == 41


def test_mot16_protocol_drops_boxes_on_distractors(mot_dir: Path) -> None:
    # MOT16-09 (DPM): SORT scores 37.0 with the devkit's distractor preprocessing, as the MANIFEST reports
    make = lambda seq: SortTracker(SortOptions())  # noqa: E731
    report = evaluate(mot_dir, track(mot_dir, ["MOT16-09"], make), ["MOT16-09"])
    assert (pct(report.overall["mota"]), pct(report.overall["idf1"])) == (37.0, 41.7)
    assert report.overall["num_switches"] == 89
