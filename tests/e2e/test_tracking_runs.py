"""Trackers inside pipelines: track ids in the JSONL, MOTChallenge txt, annotated video, id persistence."""

from __future__ import annotations

import collections
import json
from pathlib import Path

import cv2

from conftest import REPO, shared_path
from trtapps.config.loader import load_config
from trtapps.pipeline import Pipeline
from trtapps.plugins import PluginManager


def run_config(name: str, tmp_path: Path, max_frames: int) -> Path:
    shared_path("media/vtest.avi")
    manager = PluginManager()
    cfg = load_config(REPO / "configs" / name, manager.registries, overrides={"output": str(tmp_path)})
    cfg.sources = [type(cfg.sources[0]).model_validate({**cfg.sources[0].model_dump(), "max_frames": max_frames})]
    Pipeline(cfg, manager=manager).run()
    return tmp_path


def test_bytetrack_pipeline_writes_ids_mot_file_and_video(tmp_path: Path) -> None:
    out = run_config("yolo_bytetrack.yaml", tmp_path, 60)
    lines = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert len(lines) == 60
    tracked = [d for line in lines for d in line["detections"]]
    assert tracked
    assert all("track_id" in d and d["label"] == "person" for d in tracked)
    mot = [row.split(",") for row in (out / "vtest.txt").read_text().splitlines()]
    assert len(mot) == len(tracked)
    assert {int(r[0]) for r in mot} <= set(range(1, 61))  # MOT frames are 1-based
    cap = cv2.VideoCapture(str(out / "vtest.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 60


def test_deepsort_with_osnet_keeps_the_ids_of_people_who_stay(tmp_path: Path) -> None:
    shared_path("models/osnet_x0_25_msmt17.onnx")
    out = run_config("yolo_deepsort.yaml", tmp_path, 90)
    counts: collections.Counter[int] = collections.Counter()
    for line in (out / "results.jsonl").read_text().splitlines():
        for det in json.loads(line)["detections"]:
            counts[det["track_id"]] += 1
    # the two people standing in the hall for the whole clip keep one id each over all 90 frames
    # (a track is reported from its third frame on: n_init = 3)
    assert [c for _, c in counts.most_common(2)] == [88, 88]
