"""Built-in sinks: JSONL, annotated images, annotated video and the run summary."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from pydantic import ValidationError

import trtapps.sinks as sinks_module
from conftest import shared_path
from trtapps.context import RunContext
from trtapps.errors import ConfigError, OutputError, UserError
from trtapps.metrics import RunSummary
from trtapps.plugins import PluginManager
from trtapps.registry import ComponentSpec, SinkOptions
from trtapps.sinks import (
    ImagesSink,
    JsonlSink,
    SummarySink,
    VideoSink,
    VideoSinkOptions,
    safe_stem,
)
from trtapps.sources import VideoSource
from trtapps.stages import Sink
from trtapps.structures import Detections, Frame, FrameResult

LABELS = ["person", "bicycle", "car"]


def _dets(n: int, *, offset: float = 0.0) -> Detections:
    boxes = np.array([[10 + 30 * i + offset, 20, 40 + 30 * i + offset, 80] for i in range(n)], np.float32)
    return Detections(boxes=boxes.reshape(n, 4), scores=np.linspace(0.9, 0.5, n, dtype=np.float32),
                      class_ids=np.arange(n, dtype=np.int32) % 3)


def _ok(source: str, index: int, image: np.ndarray | None = None, *, timestamp: float | None = None,
        n: int = 2, source_id: int = 0) -> FrameResult:
    h, w = (image.shape[:2] if image is not None else (120, 160))
    return FrameResult(source=source, index=index, width=w, height=h, detections=_dets(n, offset=index),
                       image=image, timestamp=timestamp, labels=LABELS, source_id=source_id)


def _failed(source: str, index: int, source_id: int = 0) -> FrameResult:
    return FrameResult(source, index, 0, 0, error=f"{source}: frame {index} is unreadable", source_id=source_id)


def _registered(name: str, options: dict[str, object], output_dir: Path) -> Sink:
    spec = PluginManager(entry_points=False).registries.sink.get(name)
    sink = spec.factory(spec.options.model_validate({"type": name, **options}), RunContext(output_dir=output_dir))
    assert isinstance(sink, Sink)
    return sink  # type: ignore[no-any-return]


def test_registered_through_the_hook_like_any_plugin() -> None:
    collected: list[ComponentSpec[object]] = []
    sinks_module.trtapps_register_sinks(register=collected.append)
    assert [s.name for s in collected] == ["jsonl", "images", "video", "summary"]
    assert all(issubclass(s.options, SinkOptions) for s in collected)
    registry = PluginManager(entry_points=False).registries.sink
    for spec in collected:
        assert registry.get(spec.name).plugin == "trtapps.sinks"


# ----------------------------------------------------------------------------------------------------------------
# jsonl
# ----------------------------------------------------------------------------------------------------------------


def test_jsonl_one_parseable_line_per_result(tmp_path: Path) -> None:
    sink = _registered("jsonl", {}, tmp_path / "run" / "nested")
    assert isinstance(sink, JsonlSink)
    assert sink.needs_images is False
    results = [_ok("a.jpg", 0), _failed("v.mp4", 3), _ok("v.mp4", 4, n=0)]
    for result in results:
        sink.write(result)
    sink.close(RunSummary())
    lines = (tmp_path / "run" / "nested" / "results.jsonl").read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines]
    assert records == [r.to_json() for r in results]
    assert records[0]["detections"][1]["label"] == "bicycle"
    assert records[1] == {"source": "v.mp4", "source_id": 0, "frame": 3, "error": "v.mp4: frame 3 is unreadable"}
    sink.close(None)  # closing twice is harmless


class _SpyFile:
    """Counts the write calls reaching the file object."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.calls: list[int] = []

    def write(self, data: memoryview) -> int:
        self.calls.append(len(data))
        return int(self.real.write(data))

    def fileno(self) -> int:
        return int(self.real.fileno())

    def close(self) -> None:
        self.real.close()


def test_jsonl_lines_are_complete_after_an_interruption(tmp_path: Path) -> None:
    """Each line reaches the file in one unbuffered write call, so the file holds only whole lines at any
    moment: here a Ctrl-C after three results, before close()."""
    path = tmp_path / "results.jsonl"
    sink = JsonlSink(path)
    spy = sink._file = _SpyFile(sink._file)

    def run() -> None:
        for i in range(5):
            if i == 3:
                raise KeyboardInterrupt
            sink.write(_ok("clip.mp4", i, n=40))  # long lines (several KB each)

    with pytest.raises(KeyboardInterrupt):
        run()
    text = path.read_text(encoding="utf-8")  # what a reader sees before close()
    sink.close()  # no summary, as after a crash
    assert text.endswith("\n")
    assert [json.loads(line)["frame"] for line in text.splitlines()] == [0, 1, 2]
    assert len(spy.calls) == 3
    assert all(size > 2000 for size in spy.calls)
    assert path.read_text(encoding="utf-8") == text


def test_jsonl_append_and_non_finite_values(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    first = JsonlSink(path)
    first.write(_ok("a.jpg", 0))
    first.close()
    second = JsonlSink(path, append=True)
    nan = FrameResult("b.jpg", 0, 10, 10, detections=Detections(
        boxes=np.array([[0, 0, np.inf, 5]], np.float32), scores=np.array([np.nan], np.float32),
        class_ids=np.array([0], np.int32)))
    second.write(nan)
    second.close()
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 2
    det = json.loads(lines[1])["detections"][0]  # strict JSON: NaN/inf become null
    assert det["score"] is None
    assert det["box"][2] is None
    assert "NaN" not in lines[1]


# ----------------------------------------------------------------------------------------------------------------
# images
# ----------------------------------------------------------------------------------------------------------------


def test_images_sink_writes_annotated_jpegs_with_unique_names(tmp_path: Path) -> None:
    bus = cv2.imread(str(shared_path("media/bus.jpg")))
    sink = _registered("images", {}, tmp_path)
    assert isinstance(sink, ImagesSink)
    assert sink.needs_images is True
    sink.write(_ok("/data/a/bus.jpg", 0, bus))
    sink.write(_ok("/data/b/bus.jpg", 0, bus))  # same stem, other folder
    sink.write(_ok("/data/a/bus.jpg", 0, bus))  # the same input again keeps its name
    sink.write(_failed("/data/c/broken.jpg", 0))
    sink.write(_ok("/data/clip.mp4", 0, bus, timestamp=0.0))  # video frames: not without every_n
    sink.close(None)
    out = tmp_path / "images"
    assert sorted(p.name for p in out.iterdir()) == ["bus.jpg", "bus_1.jpg"]
    written = cv2.imread(str(out / "bus.jpg"))
    assert written.shape == bus.shape
    changed = (np.abs(written.astype(int) - bus.astype(int)).max(axis=2) > 60)
    assert changed[20:80, 10].mean() > 0.8  # the first box's left edge was drawn
    assert changed[600:, 400:].mean() < 0.01  # far from the boxes: only JPEG noise


def test_images_sink_every_n_for_video_frames(tmp_path: Path) -> None:
    sink = ImagesSink(tmp_path / "frames", every_n=5)
    image = np.zeros((60, 80, 3), np.uint8)
    for i in range(12):
        sink.write(_ok("rtsp://***@cam/live" if i % 2 else "/v/clip.mp4", i, image, timestamp=i / 10))
    sink.write(_failed("/v/clip.mp4", 20))
    sink.close(None)
    assert sorted(p.name for p in (tmp_path / "frames").iterdir()) == [
        "clip_000000.jpg", "clip_000010.jpg", "live_000005.jpg",
    ]


def test_sinks_refuse_to_write_over_an_input_of_the_run(tmp_path: Path) -> None:
    image = np.zeros((60, 80, 3), np.uint8)
    photo = tmp_path / "images" / "bus.jpg"  # `predict -s out/images -o out`: the annotated copy would replace it
    photo.parent.mkdir()
    photo.write_bytes(b"the original")
    sink = _registered("images", {}, tmp_path)
    with pytest.raises(OutputError, match=r"images sink: .*bus\.jpg is an input of this run"):
        sink.write(_ok(str(photo), 0, image))
    assert photo.read_bytes() == b"the original"
    clip = tmp_path / "clip.mp4"  # `predict -s out/clip.mp4 -o out`: {stem}.mp4 is the input itself
    clip.write_bytes(b"the original video")
    video = _registered("video", {}, tmp_path)
    with pytest.raises(OutputError, match=r"video sink: .*clip\.mp4 is an input of this run"):
        video.write(_ok(str(clip), 0, image, timestamp=0.0))
    video.close(None)
    assert clip.read_bytes() == b"the original video"


def test_images_sink_needs_the_image(tmp_path: Path) -> None:
    sink = ImagesSink(tmp_path)
    with pytest.raises(RuntimeError, match="needs_images"):
        sink.write(_ok("x.jpg", 0, None))


def test_safe_stem() -> None:
    assert safe_stem("/a/b/bus.jpg") == "bus"
    assert safe_stem("camera:0") == "camera_0"
    assert safe_stem("rtsp://***@10.0.0.2:554/stream1?x=1") == "stream1"
    assert safe_stem("rtsp://host") == "host"


# ----------------------------------------------------------------------------------------------------------------
# video
# ----------------------------------------------------------------------------------------------------------------


def _read_all(path: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    assert cap.isOpened(), path
    frames = []
    while True:
        ok, image = cap.read()
        if not ok:
            break
        frames.append(image)
    cap.release()
    return frames


def test_video_sink_from_real_frames_reopens_with_count_size_and_rate(tmp_path: Path) -> None:
    """vtest.avi (10 fps) read with stride 2 gives 5 results per second: the output runs at 5 fps, one frame
    per result, the failed one repeating the frame before it."""
    sink = _registered("video", {}, tmp_path / "run")
    assert isinstance(sink, VideoSink)
    frames = [f for f in VideoSource(shared_path("media/vtest.avi"), stride=2, max_frames=20) if isinstance(f, Frame)]
    for frame in frames:
        if frame.index == 10:
            sink.write(_failed(frame.source, frame.index))
            continue
        sink.write(_ok(frame.source, frame.index, frame.image, timestamp=frame.timestamp))
    sink.close(RunSummary())
    path = tmp_path / "run" / "vtest.mp4"
    assert sink.paths == [path]
    cap = cv2.VideoCapture(str(path))
    assert (cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (768, 576)
    assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(5.0)
    cap.release()
    written = _read_all(path)
    assert len(written) == 20
    # frame 10 (the 6th result) failed: the 6th output frame repeats the 5th
    assert np.abs(written[5].astype(int) - written[4].astype(int)).mean() < 1.0
    assert np.abs(written[6].astype(int) - written[5].astype(int)).mean() > 1.0


def test_video_sink_black_frames_before_the_first_good_one_and_one_file_per_source(tmp_path: Path) -> None:
    sink = VideoSink(output_dir=tmp_path, fps=12.5)
    grey = np.full((48, 64, 3), 200, np.uint8)
    sink.write(_failed("/a/cam.mp4", 0))
    sink.write(_ok("/b/cam.mp4", 0, grey, n=0, source_id=1, timestamp=0.0))  # same stem, other source
    for i in range(1, 4):
        sink.write(_ok("/a/cam.mp4", i, grey, n=0, timestamp=i / 12.5))
    sink.write(_ok("/x/photo.jpg", 0, grey))  # image inputs are the images sink's job
    sink.close(None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cam.mp4", "cam_1.mp4"]
    first = _read_all(tmp_path / "cam.mp4")
    assert len(first) == 4
    assert first[0].mean() < 10  # black stand-in for the failed first frame
    assert abs(first[1].mean() - 200) < 10
    assert len(_read_all(tmp_path / "cam_1.mp4")) == 1
    assert cv2.VideoCapture(str(tmp_path / "cam.mp4")).get(cv2.CAP_PROP_FPS) == pytest.approx(12.5)


def test_video_sink_plays_after_an_interrupted_run(tmp_path: Path) -> None:
    """Stopped mid-stream (Ctrl-C), the file still plays once close() ran, also for fewer frames than the
    rate probe buffers."""
    sink = VideoSink(output_dir=tmp_path, trail=5)
    image = np.zeros((96, 128, 3), np.uint8)

    def run() -> None:
        for i in range(100):
            if i == 5:
                raise KeyboardInterrupt
            result = _ok("rtsp://***@cam/live", i, image, n=1, timestamp=i * 0.04)
            assert result.detections is not None
            result.detections = result.detections.replace(track_ids=np.array([3]))
            sink.write(result)

    with pytest.raises(KeyboardInterrupt):
        run()
    sink.close(None)  # what the pipeline does after Ctrl-C
    written = _read_all(tmp_path / "live.mp4")
    assert len(written) == 5
    assert written[0].shape == (96, 128, 3)
    assert cv2.VideoCapture(str(tmp_path / "live.mp4")).get(cv2.CAP_PROP_FPS) == pytest.approx(25.0)


def test_video_sink_resizes_frames_that_change_size(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    sink = VideoSink(output_dir=tmp_path, fps=10)
    with caplog.at_level(logging.WARNING, logger="trtapps.sinks"):
        sink.write(_ok("s.mp4", 0, np.zeros((40, 60, 3), np.uint8), n=0))
        sink.write(_ok("s.mp4", 1, np.zeros((80, 120, 3), np.uint8), n=0))
        sink.close(None)
    written = _read_all(tmp_path / "s.mp4")
    assert [w.shape for w in written] == [(40, 60, 3), (40, 60, 3)]
    assert "resizing" in caplog.text


def test_video_sink_options_and_writer_errors(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="FourCC"):
        VideoSinkOptions.model_validate({"type": "video", "codec": "h264x"})
    with pytest.raises(ValidationError, match="stem"):
        VideoSinkOptions.model_validate({"type": "video", "path": "{name}.mp4"})
    for options in ({"codec": "abcd"}, {"path": "{stem}.txt"}):  # refused before the run, not at its 8th frame
        with pytest.raises(ConfigError, match=r"video sink: OpenCV cannot write .* use codec mp4v"):
            _registered("video", options, tmp_path)
    sink = VideoSink("{source_id}-{stem}.unknownext", output_dir=tmp_path, fps=10)
    with pytest.raises(UserError) as exc:
        sink.write(_ok("clip.mp4", 0, np.zeros((16, 16, 3), np.uint8), n=0))
    assert "0-clip.unknownext" in str(exc.value)
    assert "\n" not in str(exc.value)
    sink.write(_ok("clip.mp4", 1, np.zeros((16, 16, 3), np.uint8), n=0))  # that source is given up: no retry
    sink.close(None)  # and closing does not raise the same error again
    assert not any(tmp_path.iterdir())


# ----------------------------------------------------------------------------------------------------------------
# summary
# ----------------------------------------------------------------------------------------------------------------


def test_summary_sink_writes_the_run_summary(tmp_path: Path) -> None:
    sink = _registered("summary", {"path": "out/summary.json"}, tmp_path)
    assert isinstance(sink, SummarySink)
    summary = RunSummary(frames_in=3, frames_out=3, frames_failed=1, detections=7, backend="onnxruntime")
    summary.add_time("infer", 0.5, 2)
    sink.write(_ok("a.jpg", 0))
    assert not (tmp_path / "out" / "summary.json").exists()
    summary.finished = summary.started + 2.0
    sink.close(summary)
    data = json.loads((tmp_path / "out" / "summary.json").read_text(encoding="utf-8"))
    assert data == summary.to_json()
    assert data["frames_failed"] == 1
    assert data["stages"]["infer"]["frames"] == 2


def test_summary_sink_without_a_summary_writes_nothing(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    sink = SummarySink(tmp_path / "summary.json")
    with caplog.at_level(logging.WARNING, logger="trtapps.sinks"):
        sink.close(None)
    assert not (tmp_path / "summary.json").exists()
    assert "not written" in caplog.text


def test_the_summary_lists_the_first_failures_and_counts_them_all(monkeypatch: pytest.MonkeyPatch) -> None:
    import trtapps.metrics as metrics

    monkeypatch.setattr(metrics, "FAILURES_KEPT", 3)
    summary = RunSummary()
    for frame in range(5):
        summary.add_failure("cam", frame, "unreadable")
    listed = summary.to_json()
    assert listed["frames_failed"] == 5
    assert [f["frame"] for f in listed["failures"]] == [0, 1, 2]
