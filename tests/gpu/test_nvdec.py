"""NVDEC decoding (PyNvVideoCodec) against OpenCV's FFmpeg decoding, on the GPU machine.

* Every frame: NVDEC delivers exactly the frames OpenCV reads (face_tracker.mp4: 438 of 440 packets, one before the
  first keyframe and one past the MP4 edit list; MOT17-09.mp4: 525), indices continuous, no failure.
* Pixels: both decoders implement the same H.264, so the decoded YUV planes agree and the differences come from the
  colour conversion (NVDEC's NV12 converted with OpenCV's BT.601 formula by :func:`trtapps.gpu.color.nv12_to_bgr`,
  OpenCV's frames converted by FFmpeg's swscale) and from the deblocking/IDCT rounding freedom the standard leaves.
  Bound: mean absolute difference per frame < 3 levels (the measured mean and max are printed and recorded).
* Surface lifetime: a frame's buffer is reused only after every view of it is gone, and frames kept alive keep
  their pixels while later frames are decoded; in a worker process too, which exits once its last frame is gone.
* Decoding in a worker process gives bit-identical frames to decoding in the reading thread, and a
  4-stream YOLO pipeline gives identical detections either way.
* A YOLOv8n pipeline on NVDEC frames (NV12 read directly by the preprocessing kernel) finds what the same pipeline
  finds on OpenCV frames: per frame the same count ± 2, and ≥ 95 % of the boxes matched with IoU ≥ 0.9.
* A process that only decodes (a worker process, or a decode-only program) sleeps in CUDA's waits: the decoder sets
  the primary context's blocking-sync flag before it creates the context.
* ``decoder: auto`` on ``vtest.avi`` (MS-MPEG4v3, which NVDEC does not decode) logs one reason and runs on OpenCV;
  ``decoder: nvdec`` fails in one line.

Run: ``pytest -m gpu tests/gpu/test_nvdec.py -rA -s`` (needs PyNvVideoCodec; skipped without it).
"""

from __future__ import annotations

import gc
import logging
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from conftest import shared_path
from trtapps.errors import BackendUnavailableError
from trtapps.ops.boxes import box_iou
from trtapps.pipeline import Pipeline
from trtapps.stages import FrameFailure

pytestmark = pytest.mark.gpu

#: bound on the mean |NVDEC − OpenCV| per frame, in 8-bit levels (see the module docstring)
MEAN_DIFF_BOUND = 3.0


@pytest.fixture(scope="module")
def cp() -> Any:
    cupy = pytest.importorskip("cupy")
    pytest.importorskip("PyNvVideoCodec")
    return cupy


def _opencv_frames(path: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    return frames


@pytest.mark.parametrize("worker", ["process", "thread"])
@pytest.mark.parametrize(("name", "size", "expected"), [("face_tracker.mp4", (720, 1280), 438),
                                                          ("MOT17-09.mp4", (1080, 1920), 525)])
def test_nvdec_frames_equal_opencv_frames(
    cp: Any, name: str, size: tuple[int, int], expected: int, worker: str, record_property: Any
) -> None:
    from trtapps.gpu.color import nv12_to_bgr
    from trtapps.gpu.nvdec import NvdecSource

    path = shared_path(f"media/{name}")
    reference = _opencv_frames(path)
    source = NvdecSource(path, worker=worker)
    means, maxima, indices = [], [], []
    for item in source:
        assert not isinstance(item, FrameFailure), item.error
        assert item.pixel_format == "nv12"
        assert (item.height, item.width) == size
        assert isinstance(item.image, cp.ndarray)
        indices.append(item.index)
        if item.index < len(reference) and item.index % 2 == 0:  # every other frame keeps the test short
            bgr = nv12_to_bgr(item).get()
            diff = np.abs(bgr.astype(np.int16) - reference[item.index].astype(np.int16))
            means.append(float(diff.mean()))
            maxima.append(int(diff.max()))
    source.close()
    record_property("frames_nvdec", len(indices))
    record_property("frames_opencv", len(reference))
    record_property("mean_abs_diff_mean", float(np.mean(means)))
    record_property("mean_abs_diff_worst_frame", float(np.max(means)))
    record_property("max_abs_diff", int(np.max(maxima)))
    print(f"{name} ({worker}): NVDEC {len(indices)} frames, OpenCV {len(reference)}; |NVDEC - OpenCV| mean "
          f"{np.mean(means):.3f} (worst frame {np.max(means):.3f}), max {np.max(maxima)} over {len(means)} frames")
    assert len(reference) == expected
    assert indices == list(range(len(reference)))
    assert max(means) < MEAN_DIFF_BOUND


def test_start_stride_and_max_frames_match_the_opencv_source(cp: Any) -> None:
    from trtapps.gpu.nvdec import NvdecSource
    from trtapps.sources import VideoSource

    path = shared_path("media/face_tracker.mp4")
    kwargs = {"start_frame": 5, "stride": 7, "max_frames": 20}
    nv = [f.index for f in NvdecSource(path, **kwargs)]
    cv = [f.index for f in VideoSource(path, **kwargs)]
    assert nv == cv == list(range(5, 5 + 7 * 20, 7))


def test_frames_decoded_in_a_worker_process_equal_frames_decoded_here(cp: Any) -> None:
    from trtapps.gpu.nvdec import NvdecSource

    path = shared_path("media/MOT17-09.mp4")
    runs = {}
    for worker in ("thread", "process"):
        source = NvdecSource(path, worker=worker, start_frame=3, stride=2, max_frames=150)
        runs[worker] = [(f.index, f.image.copy()) for f in source]  # private copies: the slots go back at once
        source.close()
    here, there = runs["thread"], runs["process"]
    assert [i for i, _ in there] == [i for i, _ in here] == list(range(3, 3 + 2 * 150, 2))
    different = [i for (i, a), (_, b) in zip(here, there) if not bool(cp.array_equal(a, b))]
    assert different == [], f"frames {different[:10]} differ between the worker process and this process"


def test_videos_sharing_one_worker_process_each_get_their_own_exact_frames(cp: Any) -> None:
    from trtapps.gpu.nvdec import NvdecSource
    from trtapps.gpu.nvdec_worker import POOL

    paths = [shared_path("media/face_tracker.mp4"), shared_path("media/MOT17-09.mp4"),
             shared_path("media/face_tracker.mp4")]
    expected = []
    for i, path in enumerate(paths):
        source = NvdecSource(path, worker="thread", start_frame=i, max_frames=40)
        expected.append([(f.index, f.image.copy()) for f in source])
        source.close()
    shared = [NvdecSource(path, worker="process", processes=1, start_frame=i, max_frames=40)
              for i, path in enumerate(paths)]
    assert len(POOL.pids()) == 1  # three videos, one decoding process
    readers = [iter(s) for s in shared]
    got: list[list[Any]] = [[] for _ in shared]
    for _ in range(40):  # read side by side, as the pipeline's readers do
        for frames, reader in zip(got, readers, strict=True):
            frame = next(reader)
            frames.append((frame.index, frame.image.copy()))
            del frame
    for i, (want, have) in enumerate(zip(expected, got, strict=True)):
        assert [k for k, _ in have] == [k for k, _ in want] == list(range(i, i + 40)), i
        different = [k for (k, a), (_, b) in zip(want, have, strict=True) if not bool(cp.array_equal(a, b))]
        assert different == [], f"video {i}: frames {different[:10]} differ from decoding in this process"
    for reader in readers:
        assert list(reader) == []
    for source in shared:
        source.close()
    deadline = time.monotonic() + 30
    while POOL.pids() and time.monotonic() < deadline:  # the process exits once its last video is let go
        time.sleep(0.05)
    assert POOL.pids() == []


def test_worker_slots_are_reused_only_once_released_and_the_worker_exits(cp: Any) -> None:
    from trtapps.gpu.nvdec import NvdecSource
    from trtapps.gpu.nvdec_worker import AHEAD

    source = NvdecSource(shared_path("media/face_tracker.mp4"), max_frames=120, worker="process")
    kept = []
    pointers = set()
    for frame in source:
        pointers.add(int(frame.image.data.ptr))
        if frame.index % 30 == 0:
            kept.append((frame.index, frame.image, frame.image.copy()))
        del frame
    # dropped frames gave their slots back to the worker: a few slabs served 120 frames
    assert len(pointers) <= 2 * (AHEAD + len(kept) + 4), len(pointers)
    for index, live, private in kept:
        assert bool((live == private).all()), f"frame {index} was overwritten by a later frame"
    assert source.workers_alive() == 1  # its frames are alive: the worker keeps their memory
    del kept, live, private
    gc.collect()
    source.close()  # the last frame is gone: the worker was told so and is waited for
    assert source.workers_alive() == 0


def test_frame_buffers_are_reused_only_once_released(cp: Any) -> None:
    from trtapps.gpu.nvdec import NvdecSource

    source = NvdecSource(shared_path("media/face_tracker.mp4"), max_frames=60, worker="thread")
    kept = []
    pointers = set()
    for frame in source:
        pointers.add(frame.image.data.ptr)
        if frame.index % 20 == 0:
            kept.append((frame.index, frame.image, frame.image.copy()))  # the live frame and a private copy
        del frame
    gc.collect()
    # dropped frames gave their buffers back: a handful of buffers served 60 frames, kept ones stayed private
    assert source.ring.allocated <= len(kept) + 12, source.ring.allocated
    assert len(pointers) <= source.ring.allocated
    for index, live, private in kept:
        assert bool((live == private).all()), f"frame {index} was overwritten by a later frame"
    assert len({int(live.data.ptr) for _, live, _ in kept}) == len(kept)
    free_before = source.ring.free
    del kept, live, private
    gc.collect()
    assert source.ring.free == free_before + 3


def test_four_streams_decoded_in_worker_processes_give_the_same_detections(cp: Any) -> None:
    app = {"type": "yolo", "model": str(shared_path("models/yolov8n_dequant.onnx")), "batch_size": 16}
    path = str(shared_path("media/face_tracker.mp4"))
    runs = {}
    for worker in ("process", "thread"):
        source = {"type": "video", "path": path, "decoder": "nvdec", "decode_worker": worker, "max_frames": 90}
        with Pipeline.from_objects(app=app, source=[source] * 4, backend="onnxruntime_cuda") as pipe:
            runs[worker] = {(r.source_id, r.index): r for r in pipe.iter_results(write=False)}
    there, here = runs["process"], runs["thread"]
    assert sorted(there) == sorted(here) == [(s, i) for s in range(4) for i in range(90)]
    for key, r in there.items():
        other = here[key]
        assert r.error is None, key
        assert other.error is None, key
        assert len(r.detections) == len(other.detections), key
        assert np.array_equal(r.detections.class_ids, other.detections.class_ids), key
        if len(r.detections):  # same pixels; batches mix the streams differently from run to run, and the
            # convolutions' float sums differ slightly with the batch's composition (0.012 px seen on the H100)
            assert np.abs(r.detections.boxes - other.detections.boxes).max() < 0.1, key
            assert np.abs(r.detections.scores - other.detections.scores).max() < 1e-3, key


def test_yolo_on_nvdec_frames_matches_yolo_on_opencv_frames(cp: Any) -> None:
    app = {"type": "yolo", "model": str(shared_path("models/yolov8n_dequant.onnx")), "batch_size": 8}
    path = str(shared_path("media/face_tracker.mp4"))
    runs = {}
    for decoder in ("nvdec", "opencv"):
        source = {"type": "video", "path": path, "decoder": decoder, "max_frames": 200}
        with Pipeline.from_objects(app=app, source=source, backend="onnxruntime_cuda") as pipe:
            assert pipe.device_path
            runs[decoder] = list(pipe.iter_results(write=False))
    nv, cv = runs["nvdec"], runs["opencv"]
    assert [r.index for r in nv] == [r.index for r in cv] == list(range(200))
    matched = total = 0
    worst_count = 0
    for a, b in zip(nv, cv):
        assert a.error is None
        assert b.error is None
        assert (a.width, a.height) == (b.width, b.height) == (1280, 720)
        worst_count = max(worst_count, abs(len(a.detections) - len(b.detections)))
        if len(b.detections) == 0 or len(a.detections) == 0:
            total += len(b.detections)
            continue
        iou = box_iou(b.detections.boxes, a.detections.boxes)
        same_class = b.detections.class_ids[:, None] == a.detections.class_ids[None, :]
        best = np.where(same_class, iou, 0.0).max(axis=1)
        matched += int((best >= 0.9).sum())
        total += len(b.detections)
    print(f"YOLOv8n on NVDEC vs OpenCV frames: {matched}/{total} boxes matched (IoU >= 0.9), "
          f"largest per-frame count difference {worst_count}")
    assert total > 200
    assert worst_count <= 2
    assert matched >= 0.95 * total


def test_auto_falls_back_to_opencv_on_vtest_with_one_reason(cp: Any, caplog: pytest.LogCaptureFixture) -> None:
    app = {"type": "yolo", "model": str(shared_path("models/yolov8n_dequant.onnx")), "batch_size": 4}
    path = str(shared_path("media/vtest.avi"))
    caplog.set_level(logging.INFO)
    with Pipeline.from_objects(app=app, source={"type": "video", "path": path, "max_frames": 8},
                               backend="onnxruntime_cuda") as pipe:
        results = list(pipe.iter_results(write=False))
    assert [r.index for r in results] == list(range(8))
    assert all(r.error is None for r in results)
    reasons = [r.getMessage() for r in caplog.records if "falls back to OpenCV" in r.getMessage()]
    assert len(reasons) == 1, reasons
    assert "vtest.avi" in reasons[0]
    print(reasons[0])
    with pytest.raises(BackendUnavailableError) as exc, \
            Pipeline.from_objects(app=app, source={"type": "video", "path": path, "decoder": "nvdec"},
                                  backend="onnxruntime_cuda") as pipe:
        pipe.build_sources()
    assert "\n" not in str(exc.value)


def test_a_process_that_only_decodes_waits_for_the_gpu_without_spinning(cp: Any) -> None:
    # a fresh interpreter: nothing else has created the CUDA context, as in a decoding worker process
    code = (
        "import sys\n"
        "from trtapps.gpu.nvdec import NvdecSource\n"
        "from trtapps.gpu.device import host_wait_flags\n"
        "frames = list(NvdecSource(sys.argv[1], worker='thread', max_frames=3))\n"
        "print(len(frames), host_wait_flags(0))\n"
    )
    done = subprocess.run([sys.executable, "-c", code, str(shared_path("media/face_tracker.mp4"))],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    frames, flags = done.stdout.split()[-2:]
    assert frames == "3"
    assert int(flags) == 0x04, f"CU_CTX_SCHED flags {flags}: 4 (blocking sync) expected"


def test_four_videos_left_at_auto_without_mps_decode_here_and_the_run_is_told_about_mps(
        cp: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from trtapps.gpu import nvdec

    monkeypatch.setenv("CUDA_MPS_PIPE_DIRECTORY", str(tmp_path))  # an empty folder: no MPS daemon to be found
    path = shared_path("media/face_tracker.mp4")
    sources = [nvdec.NvdecSource(path, max_frames=4, source_id=i) for i in range(nvdec.MPS_HINT_STREAMS)]
    try:
        assert [s.worker for s in sources] == ["thread"] * nvdec.MPS_HINT_STREAMS
        assert all(len(list(s)) == 4 for s in sources)
        hint = nvdec.mps_hint(sources)
        assert hint is not None
        assert "nvidia-cuda-mps-control -d" in hint
    finally:
        for source in sources:
            source.close()


def test_a_pipeline_file_with_cuda_mps_start_decodes_in_worker_processes_under_its_own_daemon(
        cp: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A fresh interpreter runs a 4-video file with ``cuda_mps: start``: it starts a daemon, joins it (nvidia-smi
    lists it as an MPS client, type M+C), auto picks worker processes, every frame comes out, and the daemon is
    gone after the process ends."""
    import os
    import tempfile
    import time

    from trtapps.gpu.mps import control_pipe

    video = shared_path("media/face_tracker.mp4")
    config = tmp_path / "mps.yaml"
    sources = "\n".join(f"  - {{type: video, path: {video}, decoder: nvdec, max_frames: 40}}" for _ in range(4))
    config.write_text(f"cuda_mps: start\nsources:\n{sources}\napp: {{type: yolo, model: "
                      f"{shared_path('models/yolov8n_dequant.onnx')}, batch_size: 16}}\nbackend: onnxruntime_cuda\n"
                      f"sinks: [{{type: jsonl, path: {tmp_path / 'out.jsonl'}}}]\n")
    code = (
        "import logging, os, subprocess, sys\n"
        "logging.basicConfig(level=logging.INFO, stream=sys.stderr)\n"
        "from trtapps.pipeline import Pipeline\n"
        "with Pipeline.from_file(sys.argv[1]) as pipe:\n"
        "    summary = pipe.run()\n"
        "    smi = subprocess.run(['nvidia-smi'], capture_output=True, text=True).stdout\n"
        "    mine = [l for l in smi.splitlines() if f' {os.getpid()} ' in l]\n"
        "    print('frames', summary.frames_out, 'type', 'M+C' if any('M+C' in l for l in mine) else mine)\n"
    )
    short = tempfile.mkdtemp(prefix="mps")  # the daemon's folders (a Unix socket path has at most 107 bytes)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CUDA_MPS_")}
    env["TMPDIR"] = short
    done = subprocess.run([sys.executable, "-c", code, str(config)], capture_output=True, text=True, timeout=300,
                          env=env, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split()[-4:] == ["frames", "160", "type", "M+C"], done.stdout
    assert "started a CUDA MPS daemon" in done.stderr
    assert done.stderr.count("in a worker process (decode_worker auto: the CUDA MPS daemon is running") >= 4
    # told to quit at exit, the daemon stops once its last client has gone; it leaves its control socket behind,
    # with nobody listening on it any more
    monkeypatch.setenv("CUDA_MPS_PIPE_DIRECTORY", str(Path(short) / f"trtapps-mps-{os.getuid()}" / "pipe"))
    for _ in range(100):
        if control_pipe() is None:
            break
        time.sleep(0.1)
    assert control_pipe() is None, "the MPS daemon is still running after the run"
