"""YOLO + DeepSORT with OSNet on the GPU (``configs/yolo_deepsort.yaml`` with ``backend: onnxruntime_cuda``) against
the same pipeline on the CPU, over the whole of face_tracker.mp4.

The detector and the tracker's ReID model both run on the GPU (the DeepSORT ReID backend follows the pipeline's),
crops cut from the frame on the device. Criteria, measured on the JSONL of each run:

* each person keeps their id: the two people standing in the hall for the whole clip are each reported under one
  id in every frame from the third on (``n_init`` = 3), on the GPU as on the CPU (the CPU criterion of
  ``tests/e2e/test_tracking_runs.py``, over the full clip);
* the GPU run finds the CPU run's identities: the number of confirmed tracks is the CPU's ± 2, and boxes matched
  between the runs (IoU ≥ 0.5, frame by frame) carry corresponding ids — for ≥ 95 % of the matched boxes the GPU
  id maps to the CPU id that GPU id maps to most often;
* the annotated video is written with every frame, and the MOTChallenge file with every tracked box.
"""

from __future__ import annotations

import collections
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import REPO, shared_path
from trtapps.config.loader import load_config
from trtapps.ops.boxes import box_iou
from trtapps.pipeline import Pipeline
from trtapps.plugins import PluginManager
from trtapps_plugins.trackers.deepsort import build_deepsort

pytestmark = pytest.mark.gpu

FRAMES = 438  # face_tracker.mp4 delivers 438 frames (its header says 440)
N_INIT = 3

Tracks = dict[int, dict[int, np.ndarray]]  # frame → track id → xyxy box


def run_deepsort(tmp_path: Path, backend: str) -> tuple[Path, Tracks]:
    """Run ``configs/yolo_deepsort.yaml`` on *backend*; the output folder and the tracked boxes by frame."""
    shared_path("media/face_tracker.mp4")
    shared_path("models/osnet_x0_25_msmt17.onnx")
    manager = PluginManager()
    cfg = load_config(
        REPO / "configs" / "yolo_deepsort.yaml", manager.registries, overrides={"output": str(tmp_path), "backend": backend}
    )
    with Pipeline(cfg, manager=manager) as pipe:
        assert pipe.runner.backend == backend
        if backend != "onnxruntime":
            assert pipe.device_path, "the GPU data path was not taken"
        assert cfg.tracker is not None
        tracker = build_deepsort(cfg.tracker, pipe.context)  # the factory the pipeline calls, with the run's context
        assert tracker.embedder is not None
        assert tracker.embedder.runner.backend == backend, "the ReID model does not follow the pipeline's backend"
        assert tracker.embedder.on_device == (backend != "onnxruntime")
        tracker.close()  # lets its ReID model go: the run's own trackers load theirs
        summary = pipe.run()
    assert summary.frames_failed == 0, summary.failures
    tracks: Tracks = {}
    for line in (tmp_path / "results.jsonl").read_text().splitlines():
        record = json.loads(line)
        tracks[record["frame"]] = {d["track_id"]: np.asarray(d["box"], np.float64) for d in record["detections"]}
    return tmp_path, tracks


def frames_per_id(tracks: Tracks) -> collections.Counter[int]:
    return collections.Counter(i for frame in tracks.values() for i in frame)


def id_agreement(gpu: Tracks, cpu: Tracks) -> tuple[float, int]:
    """Share of IoU-matched box pairs whose GPU id maps to the CPU id it maps to most often; and the pair count."""
    pairs: collections.Counter[tuple[int, int]] = collections.Counter()
    for frame, g in gpu.items():
        c = cpu.get(frame, {})
        if not g or not c:
            continue
        g_ids, c_ids = list(g), list(c)
        iou = box_iou(np.stack([g[i] for i in g_ids]), np.stack([c[i] for i in c_ids]))
        for row in range(len(g_ids)):
            col = int(iou[row].argmax())
            if iou[row, col] >= 0.5:
                pairs[(g_ids[row], c_ids[col])] += 1
    total = sum(pairs.values())
    best: dict[int, int] = collections.defaultdict(int)
    for (g_id, _), n in pairs.items():
        best[g_id] = max(best[g_id], n)
    return (sum(best.values()) / total if total else 0.0), total


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Tracks]]:
    return {
        backend: run_deepsort(tmp_path_factory.mktemp(backend), backend)
        for backend in ("onnxruntime_cuda", "onnxruntime")
    }


def test_people_who_stay_keep_their_id_on_gpu_and_cpu(runs: dict[str, tuple[Path, Tracks]]) -> None:
    for backend, (_, tracks) in runs.items():
        assert len(tracks) == FRAMES, backend
        longest = [n for _, n in frames_per_id(tracks).most_common(2)]
        assert longest == [FRAMES - (N_INIT - 1)] * 2, f"{backend}: the two standing people's ids last {longest} frames"


def test_gpu_tracks_are_the_cpu_tracks(runs: dict[str, tuple[Path, Tracks]]) -> None:
    gpu, cpu = runs["onnxruntime_cuda"][1], runs["onnxruntime"][1]
    n_gpu, n_cpu = len(frames_per_id(gpu)), len(frames_per_id(cpu))
    assert abs(n_gpu - n_cpu) <= 2, f"{n_gpu} confirmed tracks on the GPU, {n_cpu} on the CPU"
    agreement, pairs = id_agreement(gpu, cpu)
    boxes = sum(len(f) for f in cpu.values())
    assert pairs >= 0.95 * boxes, f"only {pairs} of the CPU's {boxes} tracked boxes found in the GPU run"
    assert agreement >= 0.95, f"GPU and CPU ids agree on {agreement:.3f} of {pairs} matched boxes"


def test_gpu_run_writes_the_annotated_video_and_mot_file(runs: dict[str, tuple[Path, Tracks]]) -> None:
    out, tracks = runs["onnxruntime_cuda"]
    cap = cv2.VideoCapture(str(out / "face_tracker.mp4"))
    assert cap.isOpened()
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == FRAMES
    cap.release()
    rows = (out / "face_tracker.txt").read_text().splitlines()
    assert len(rows) == sum(len(f) for f in tracks.values())
