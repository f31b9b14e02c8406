"""configs/yolo_multistream.yaml: three videos through one model at once, results routed back per source."""

from __future__ import annotations

import json
from pathlib import Path

import cv2

from conftest import REPO, shared_path
from trtapps.config.loader import load_config
from trtapps.pipeline import Pipeline
from trtapps.plugins import PluginManager

FRAMES = 12


def test_three_videos_share_batches_and_each_gets_its_own_ordered_outputs(tmp_path: Path) -> None:
    for name in ("face_tracker.mp4", "MOT17-09.mp4", "vtest.avi"):
        shared_path(f"media/{name}")
    manager = PluginManager()
    cfg = load_config(REPO / "configs" / "yolo_multistream.yaml", manager.registries,
                      overrides={"output": str(tmp_path)})
    cfg.sources = [type(s).model_validate({**s.model_dump(), "max_frames": FRAMES, "decoder": "opencv"})
                   for s in cfg.sources]
    summary = Pipeline(cfg, manager=manager).run()
    assert summary.frames_in == summary.frames_out == 3 * FRAMES
    assert summary.frames_dropped == 0
    assert summary.stages["infer"].calls < 3 * FRAMES / 2  # frames of different sources shared batches

    lines = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert len(lines) == 3 * FRAMES
    for sid, stem in enumerate(("face_tracker", "MOT17-09", "vtest")):
        mine = [line for line in lines if line["source_id"] == sid]
        assert [line["frame"] for line in mine] == list(range(FRAMES))  # each source in order
        assert {Path(line["source"]).stem for line in mine} == {stem}
        ids = {d["track_id"] for line in mine for d in line["detections"]}
        assert ids, f"{stem}: no tracked person"
        assert min(ids) == 1  # one tracker per source: every source's ids start at 1
        video = cv2.VideoCapture(str(tmp_path / f"{stem}.mp4"))
        assert int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == FRAMES
        video.release()
        assert (tmp_path / "mot" / f"{stem}.txt").is_file()
