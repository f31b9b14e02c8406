"""Frames copied to the GPU by their reader threads (DeviceFrameStager) and many sources batched together."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from conftest import shared_path
from trtapps.pipeline import Pipeline
from trtapps.structures import HOST_IMAGE_KEY, Frame

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize("mode", ["pageable", "pinned", "direct"])
def test_the_stager_copies_exact_pixels_from_many_reader_threads_with_few_slots(mode: str) -> None:
    import cupy

    from trtapps.gpu.frames import DeviceFrameStager
    from trtapps.gpu.memory import pinned_array

    # far fewer slots than frames and fewer copy threads than readers: reuse under pressure
    stager = DeviceFrameStager(slots=5, copy_threads=2, mode=mode)
    assert stager.mode == mode
    rng = np.random.default_rng(7)
    sizes = [(720, 1280), (37, 53), (1080, 1920), (241, 199), (1, 1)]
    staged: list[Frame] = []
    cond = threading.Condition()
    errors: list[BaseException] = []

    def reader(seed: int) -> None:
        local = np.random.default_rng(seed)
        try:
            for i in range(40):
                h, w = sizes[int(local.integers(len(sizes)))]
                image = local.integers(0, 256, (h, w, 3), dtype=np.uint8)
                if i % 2:  # as a source decoding into page-locked buffers: copied straight by this thread in direct
                    pinned = pinned_array(image.shape)
                    pinned[...] = image
                    image = pinned
                frame = Frame(image, f"s{seed}", i)
                stager.stage(frame)
                with cond:
                    staged.append(frame)
                    cond.notify()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=reader, args=(int(rng.integers(1000)),)) for _ in range(4)]
    for t in threads:
        t.start()
    stream = cupy.cuda.Stream(non_blocking=True)
    checked = 0
    held: list[Frame] = []
    while checked < 160 and not errors:
        with cond:
            while not staged:
                cond.wait(5)
            # a batch of up to 4 frames (from several readers and copy threads): one wait per copy thread
            batch, staged[:] = staged[: 1 + checked % 4], staged[1 + checked % 4 :]
        DeviceFrameStager.wait(batch, stream)
        for frame in batch:
            assert isinstance(frame.image, cupy.ndarray)
            with stream:
                copy = cupy.empty_like(frame.image)
                copy[...] = frame.image  # read on the consumer's stream, after the copy's event
                host = copy.get(stream=stream)
            stream.synchronize()
            assert np.array_equal(host, frame.meta[HOST_IMAGE_KEY]), f"{frame.source} frame {frame.index}"
            assert frame.host_image() is frame.meta[HOST_IMAGE_KEY]
            held.append(frame)
            if len(held) == 3 or checked % 7 == 0:  # a batch's frames go back with one event; single ones too
                stager.release_all(held, stream)
                held.clear()
            checked += 1
    for t in threads:
        t.join(10)
    assert not errors, errors
    assert checked == 160
    # only the direct mode takes page-locked frames straight from the reader; the others copy every frame
    assert (stager.direct, stager.copied) == ((80, 80) if mode == "direct" else (0, 160))
    stager.release_all(held, stream)
    stager.close()


class Memory:
    """A source of in-memory frames."""

    def __init__(self, name: str, frames: list[np.ndarray]) -> None:
        self.name = name
        self.frames = frames

    def __iter__(self) -> Iterator[Frame]:
        return iter(Frame(f, self.name, i) for i, f in enumerate(self.frames))

    def __len__(self) -> int:
        return len(self.frames)

    def close(self) -> None:
        pass


def _video_frames(count: int) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(shared_path("media/face_tracker.mp4")))
    frames = []
    while len(frames) < count:
        ok, frame = cap.read()
        assert ok
        frames.append(frame)
    cap.release()
    return frames


def _key(results: list[Any]) -> dict[tuple[int, int], Any]:
    return {(r.source_id, r.index): r for r in results}


def test_many_sources_on_the_gpu_give_the_cpu_results_per_source_in_order(tmp_path: Path) -> None:
    video = _video_frames(24)
    stills = [cv2.imread(str(shared_path(f"media/{n}"))) for n in ("bus.jpg", "zidane.jpg", "street.jpg")]
    sources = lambda: [Memory("video", video), Memory("stills", stills * 3), Memory("reversed", video[::-1])]  # noqa: E731
    app = {"type": "yolo", "model": str(shared_path("models/yolov8n_dequant.onnx")), "batch_size": 8}
    with Pipeline.from_objects(app=app, backend="onnxruntime_cuda") as gpu, \
            Pipeline.from_objects(app=app, backend="onnxruntime") as cpu:
        assert gpu.device_path
        g = list(gpu.iter_results(write=False, sources=sources()))
        c = _key(list(cpu.iter_results(write=False, sources=sources())))
    assert len(g) == len(c) == 24 + 9 + 24
    for sid in (0, 1, 2):
        assert [r.index for r in g if r.source_id == sid] == sorted(r.index for r in g if r.source_id == sid)
    for r in g:
        other = c[(r.source_id, r.index)]
        assert r.error is None
        assert other.error is None
        assert len(r.detections) == len(other.detections), (r.source_id, r.index)
        if len(other.detections):
            assert np.abs(r.detections.boxes - other.detections.boxes).max() < 1.0
            assert np.abs(r.detections.scores - other.detections.scores).max() <= 0.01


def test_sinks_that_draw_get_the_source_pixels_without_a_download(tmp_path: Path) -> None:
    frames = _video_frames(6)
    app = {"type": "yolo", "model": str(shared_path("models/yolov8n_dequant.onnx")), "batch_size": 4}
    with Pipeline.from_objects(app=app, backend="onnxruntime_cuda",
                               sinks=[{"type": "images", "dir": "drawn", "every_n": 1}], output=tmp_path) as gpu:
        results = list(gpu.iter_results(sources=[Memory("video", frames)]))
    assert len(results) == 6
    for r, f in zip(results, frames):
        assert isinstance(r.image, np.ndarray)
        assert np.array_equal(r.image, f)
    assert len(list((tmp_path / "drawn").rglob("*.jpg"))) == 6


def test_video_frames_decoded_into_page_locked_buffers_cross_with_one_dma_and_match_the_copied_path(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    from trtapps.gpu.frames import STAGE_MODE_ENV
    from trtapps.gpu.memory import is_pinned_array
    from trtapps.metrics import RunSummary

    video = str(shared_path("media/face_tracker.mp4"))
    app = {"type": "yolo", "model": str(shared_path("models/yolov8n_dequant.onnx")), "batch_size": 8}
    runs: dict[str, tuple[list[Any], RunSummary]] = {}
    for mode in ("direct", "pinned"):
        monkeypatch.setenv(STAGE_MODE_ENV, mode)
        summary = RunSummary()
        # a drawing sink keeps each frame's host image in its result, so the test sees where it was decoded
        with Pipeline.from_objects(app=app, backend="onnxruntime_cuda", output=tmp_path / mode,
                                   source={"type": "video", "path": video, "decoder": "opencv", "max_frames": 60},
                                   sinks=[{"type": "images", "dir": "drawn", "every_n": 1000}]) as gpu:
            assert gpu.device_path
            results = list(gpu.iter_results(summary=summary))
        runs[mode] = (results, summary)
        pinned = [is_pinned_array(r.image) for r in results]
        assert all(pinned) if mode == "direct" else not any(pinned), mode
    (direct, summary), (copied, copied_summary) = runs["direct"], runs["pinned"]
    assert len(direct) == len(copied) == 60
    assert summary.staging == {"direct": 60, "copied": 0}
    assert copied_summary.staging == {"direct": 0, "copied": 60}
    for a, b in zip(direct, copied):
        assert np.array_equal(a.image, b.image), a.index
        assert np.array_equal(a.detections.boxes, b.detections.boxes), a.index  # same pixels, same kernels
        assert np.array_equal(a.detections.scores, b.detections.scores), a.index
