"""Built-in sources: images (files, folders, globs, pkg: paths, corrupt files), video, camera and stream."""

from __future__ import annotations

import logging
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from pydantic import ValidationError

import trtapps.sources as sources_module
from conftest import require_module, shared_path
from trtapps.context import RunContext
from trtapps.errors import InputError
from trtapps.framebuffers import FREE_REFCOUNT
from trtapps.plugins import PluginManager
from trtapps.registry import ComponentSpec, SourceOptions
from trtapps.sources import (
    Backoff,
    CameraSource,
    ImagesOptions,
    ImagesSource,
    StreamOptions,
    StreamSource,
    VideoOptions,
    VideoSource,
    jpeg_is_complete,
    redact_url,
)
from trtapps.stages import FrameFailure, Source
from trtapps.structures import Frame


def _one_line(exc: pytest.ExceptionInfo[BaseException]) -> str:
    message = str(exc.value)
    assert "\n" not in message, message
    return message


def test_registered_through_the_hook_like_any_plugin() -> None:
    collected: list[ComponentSpec[object]] = []
    sources_module.trtapps_register_sources(register=collected.append)
    assert [s.name for s in collected] == ["images", "video", "camera", "stream"]
    assert all(issubclass(s.options, SourceOptions) for s in collected)
    registry = PluginManager(entry_points=False).registries.source
    for spec in collected:
        assert registry.get(spec.name).plugin == "trtapps.sources"
        assert registry.get(spec.name).options is spec.options
        assert spec.options.model_fields["max_frames"].default is None


# ----------------------------------------------------------------------------------------------------------------
# images
# ----------------------------------------------------------------------------------------------------------------


def test_single_real_image() -> None:
    bus = shared_path("media/bus.jpg")
    source = ImagesSource(str(bus))
    assert isinstance(source, Source)
    items = list(source)
    assert len(source) == 1
    assert len(items) == 1
    frame = items[0]
    assert isinstance(frame, Frame)
    assert frame.image.shape == (1080, 810, 3)
    assert frame.image.dtype == np.uint8
    assert (frame.source, frame.index, frame.timestamp) == (str(bus), 0, None)


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    """A folder mixing a real photo, broken images and a non-image file."""
    data = shared_path("media/bus.jpg").read_bytes()
    folder = tmp_path / "imgs"
    folder.mkdir()
    (folder / "a_good.jpg").write_bytes(data)
    (folder / "b_random.jpg").write_bytes(np.random.default_rng(0).integers(0, 256, 4096, np.uint8).tobytes())
    (folder / "c_truncated.jpg").write_bytes(data[: len(data) // 2])
    (folder / "d_empty.png").write_bytes(b"")
    (folder / "e_zidane.JPG").write_bytes(shared_path("media/zidane.jpg").read_bytes())
    (folder / "notes.txt").write_text("not an image")
    return folder


def test_folder_with_corrupt_files_yields_failures_and_goes_on(image_folder: Path) -> None:
    items = list(ImagesSource(str(image_folder)))
    names = [Path(item.source).name for item in items]
    assert names == ["a_good.jpg", "b_random.jpg", "c_truncated.jpg", "d_empty.png", "e_zidane.JPG"]
    good, rnd, trunc, empty, zidane = items
    assert isinstance(good, Frame)
    assert good.image.shape == (1080, 810, 3)
    assert isinstance(zidane, Frame)
    assert zidane.image.shape == (720, 1280, 3)
    for failure, words in ((rnd, "not a readable image"), (trunc, "truncated JPEG"), (empty, "empty file")):
        assert isinstance(failure, FrameFailure)
        assert failure.index == 0
        assert Path(failure.source).parent == image_folder
        assert words in failure.error
        assert "\n" not in failure.error
        assert Path(failure.source).name in failure.error


@pytest.mark.parametrize("progressive", [False, True])
def test_jpeg_completeness_check(tmp_path: Path, progressive: bool) -> None:
    """Cut anywhere before the end marker → incomplete; bytes appended after the image (camera trailers,
    motion-photo videos) → still complete, and the image still reads."""
    image = cv2.imread(str(shared_path("media/zidane.jpg")))
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_PROGRESSIVE, int(progressive)])
    assert ok
    data = encoded.tobytes()
    assert jpeg_is_complete(data)
    for cut in (3, 200, len(data) // 3, len(data) - 100, len(data) - 2, len(data) - 1):
        assert not jpeg_is_complete(data[:cut]), cut
    trailer = data + np.random.default_rng(2).integers(0, 256, 50_000, np.uint8).tobytes()
    assert jpeg_is_complete(trailer)
    (tmp_path / "trailer.jpg").write_bytes(trailer)
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) * 3 // 4])
    cut, good = ImagesSource(str(tmp_path))  # sorted: cut.jpg, trailer.jpg
    assert isinstance(cut, FrameFailure)
    assert "truncated JPEG" in cut.error
    assert isinstance(good, Frame)
    assert good.image.shape == image.shape


def test_non_image_and_missing_files_in_a_list_are_failures(image_folder: Path) -> None:
    missing = image_folder / "gone.jpg"
    items = list(ImagesSource([str(image_folder / "notes.txt"), str(missing), str(image_folder / "a_good.jpg")]))
    assert [type(i) for i in items] == [FrameFailure, FrameFailure, Frame]
    assert "not a readable image" in items[0].error
    assert "file not found" in items[1].error
    assert str(missing) in items[1].error


def test_missing_folder_raises_one_line_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError) as exc:
        ImagesSource(str(tmp_path / "no_such_folder"))
    message = _one_line(exc)
    assert "no_such_folder" in message
    assert "no such file or folder" in message
    assert "source.path" in message


def test_folder_without_images_raises(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "x.jpg").write_bytes(b"1")
    with pytest.raises(InputError) as exc:
        ImagesSource(str(tmp_path))
    assert "no image files" in _one_line(exc)
    assert "recursive" in str(exc.value)
    assert [Path(p).name for p in ImagesSource(str(tmp_path), recursive=True).paths] == ["x.jpg"]


def test_glob_patterns(image_folder: Path) -> None:
    source = ImagesSource(str(image_folder / "*_*.jpg"))
    assert [p.name for p in source.paths] == ["a_good.jpg", "b_random.jpg", "c_truncated.jpg"]
    nested = image_folder / "deeper"
    nested.mkdir()
    (nested / "z.jpg").write_bytes((image_folder / "a_good.jpg").read_bytes())
    flat = ImagesSource(str(image_folder.parent / "**" / "*.jpg"))
    deep = ImagesSource(str(image_folder.parent / "**" / "*.jpg"), recursive=True)
    assert "z.jpg" not in [p.name for p in flat.paths]
    assert "z.jpg" in [p.name for p in deep.paths]
    with pytest.raises(InputError) as exc:
        ImagesSource(str(image_folder / "*.webp"))
    assert "pattern matches nothing" in _one_line(exc)
    with pytest.raises(InputError, match="non-image"):
        ImagesSource(str(image_folder / "*.txt"))


def test_brackets_in_names_are_literal_when_the_path_exists(tmp_path: Path) -> None:
    data = shared_path("media/bus.jpg").read_bytes()
    folder = tmp_path / "shots [1]"
    folder.mkdir()
    (folder / "photo [a].jpg").write_bytes(data)
    (folder / "b.jpg").write_bytes(data)
    assert [p.name for p in ImagesSource(str(folder / "photo [a].jpg")).paths] == ["photo [a].jpg"]
    # a pattern relative to a config folder whose name has brackets: the folder part is not a pattern
    assert [p.name for p in ImagesSource("*.jpg", base_dir=folder).paths] == ["b.jpg", "photo [a].jpg"]


def test_list_and_max_frames(image_folder: Path) -> None:
    source = ImagesSource([str(image_folder / "e_zidane.JPG"), str(image_folder)], max_frames=3)
    assert len(source) == 3
    assert [Path(f.source).name for f in source] == ["e_zidane.JPG", "a_good.jpg", "b_random.jpg"]


def test_relative_paths_resolve_against_the_config_folder(image_folder: Path) -> None:
    pm = PluginManager(entry_points=False)
    spec = pm.registries.source.get("images")
    assert spec.options is ImagesOptions
    options = ImagesOptions.model_validate({"type": "images", "path": "imgs/a_good.jpg"})
    source = spec.factory(options, RunContext(config_dir=image_folder.parent))
    (frame,) = list(source)
    assert isinstance(frame, Frame)
    assert frame.source == str(image_folder / "a_good.jpg")
    with pytest.raises(ValidationError):
        ImagesOptions.model_validate({"type": "images", "path": []})
    with pytest.raises(ValidationError):
        ImagesOptions.model_validate({"type": "images", "path": "x", "colour": 1})


def test_pkg_path_resolves_inside_an_installed_package() -> None:
    require_module("matplotlib", "its sample photo is the test image (the test extra installs it)")
    source = ImagesSource("pkg:matplotlib/mpl-data/sample_data/grace_hopper.jpg")
    (frame,) = list(source)
    assert isinstance(frame, Frame)
    assert frame.image.shape == (600, 512, 3)
    assert frame.source.endswith("mpl-data/sample_data/grace_hopper.jpg")
    assert Path(frame.source).is_file()


def test_pkg_path_errors_are_one_line() -> None:
    with pytest.raises(InputError) as exc:
        ImagesSource("pkg:no_such_pkg_xyz/data/a.jpg")
    assert "pip install no-such-pkg-xyz" in _one_line(exc)
    with pytest.raises(InputError) as exc:
        ImagesSource("pkg:trtapps")
    assert "pkg:<package>/<path inside the package>" in _one_line(exc)
    with pytest.raises(InputError) as exc:
        ImagesSource("pkg:trtapps/no/such/file.jpg")
    assert "no such file" in _one_line(exc)


# ----------------------------------------------------------------------------------------------------------------
# video: real files
# ----------------------------------------------------------------------------------------------------------------


def test_vtest_frame_count_and_indices() -> None:
    video = shared_path("media/vtest.avi")
    source = VideoSource(video)
    assert isinstance(source, Source)
    assert (len(source), source.fps) == (795, 10.0)
    indices = []
    for item in source:
        assert isinstance(item, Frame)
        indices.append(item.index)
    assert indices == list(range(795))
    assert item.image.shape == (576, 768, 3)
    assert item.timestamp == pytest.approx(79.4)
    assert source.undelivered == 0


@pytest.mark.parametrize(
    ("start", "stride", "max_frames", "expected"),
    [
        (0, 7, None, list(range(0, 795, 7))),
        (10, 3, 5, [10, 13, 16, 19, 22]),
        (790, 2, None, [790, 792, 794]),
    ],
)
def test_vtest_start_stride_max_frames(start: int, stride: int, max_frames: int | None, expected: list[int]) -> None:
    source = VideoSource(shared_path("media/vtest.avi"), start_frame=start, stride=stride, max_frames=max_frames)
    assert len(source) == len(expected)
    frames = list(source)
    assert [f.index for f in frames] == expected
    assert [f.timestamp for f in frames] == pytest.approx([i / 10 for i in expected])


def test_seeked_start_frame_is_the_right_frame() -> None:
    video = shared_path("media/vtest.avi")
    sequential = [f.image for f, _ in zip(VideoSource(video, max_frames=40), range(40), strict=False)]
    (seeked,) = list(VideoSource(video, start_frame=37, max_frames=1))
    assert seeked.index == 37
    assert np.array_equal(seeked.image, sequential[37])


def test_video_options_through_the_registry(tmp_path: Path) -> None:
    shared_path("media/vtest.avi")
    pm = PluginManager(entry_points=False)
    spec = pm.registries.source.get("video")
    options = VideoOptions.model_validate({"type": "video", "path": "media/vtest.avi", "stride": 100})
    source = spec.factory(options, RunContext(config_dir=shared_path("media").parent))
    assert [f.index for f in source] == list(range(0, 795, 100))
    with pytest.raises(ValidationError):
        VideoOptions.model_validate({"type": "video", "path": "x.mp4", "stride": 0})


def test_unopenable_videos_raise_at_construction(tmp_path: Path) -> None:
    with pytest.raises(InputError) as exc:
        VideoSource(tmp_path / "missing.mp4")
    assert "not found" in _one_line(exc)
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(InputError, match="empty"):
        VideoSource(tmp_path / "empty.mp4")
    (tmp_path / "noise.mp4").write_bytes(np.random.default_rng(1).integers(0, 256, 50_000, np.uint8).tobytes())
    with pytest.raises(InputError) as exc:
        VideoSource(tmp_path / "noise.mp4")
    assert "cannot open as a video" in _one_line(exc)
    with pytest.raises(InputError) as exc:
        VideoSource(shared_path("media/vtest.avi"), start_frame=795)
    assert "past the end" in _one_line(exc)


def test_truncated_face_tracker_without_index_cannot_be_opened(tmp_path: Path) -> None:
    """face_tracker.mp4 keeps its index (moov) at the end: its first 40 % is not a playable file."""
    data = shared_path("media/face_tracker.mp4").read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: int(len(data) * 0.4)])
    with pytest.raises(InputError) as exc:
        VideoSource(cut)
    assert "truncated" in _one_line(exc)


def _mp4_boxes(data: bytes | bytearray, start: int, end: int) -> Iterator[tuple[bytes, int, int, int]]:
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack(">I4s", data[pos : pos + 8])
        header = 8
        if size == 1:
            size, header = struct.unpack(">Q", data[pos + 8 : pos + 16])[0], 16
        elif size == 0:
            size = end - pos
        yield kind, pos, header, size
        pos += size


def _faststart(data: bytes) -> bytes:
    """*data* (an MP4 with its moov box after mdat) rewritten with moov first, chunk offsets patched."""
    top = list(_mp4_boxes(data, 0, len(data)))
    moov = next(b for b in top if b[0] == b"moov")
    assert moov[1] > next(b for b in top if b[0] == b"mdat")[1], "moov is already in front"
    box = bytearray(data[moov[1] : moov[1] + moov[3]])

    def patch(start: int, end: int) -> None:
        for kind, pos, header, size in _mp4_boxes(box, start, end):
            if kind in (b"trak", b"mdia", b"minf", b"stbl"):
                patch(pos + header, pos + size)
            elif kind in (b"stco", b"co64"):
                fmt, width = (">I", 4) if kind == b"stco" else (">Q", 8)
                (count,) = struct.unpack(">I", box[pos + header + 4 : pos + header + 8])
                for i in range(count):
                    at = pos + header + 8 + i * width
                    (offset,) = struct.unpack(fmt, box[at : at + width])
                    box[at : at + width] = struct.pack(fmt, offset + len(box))

    patch(8, len(box))
    out = bytearray()
    for kind, pos, _, size in top:
        if kind == b"mdat":
            out += box
        if kind != b"moov":
            out += data[pos : pos + size]
    return bytes(out)


def test_truncated_face_tracker_ends_cleanly(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """With its index in front, the first 40 % of face_tracker.mp4 opens, delivers ~175 of the 440 frames
    the header counts, and ends without failures: the missing frames are not known to exist."""
    data = _faststart(shared_path("media/face_tracker.mp4").read_bytes())
    cut = tmp_path / "cut_faststart.mp4"
    cut.write_bytes(data[: int(len(data) * 0.4)])
    source = VideoSource(cut, max_bad_frames=3)
    assert len(source) == 440
    with caplog.at_level(logging.WARNING, logger="trtapps.sources"):
        items = list(source)
    assert all(isinstance(i, Frame) for i in items)
    delivered = len(items)
    assert 100 < delivered < 300
    assert [i.index for i in items] == list(range(delivered))
    assert source.undelivered == 440 - delivered
    assert f"stream ended at frame {delivered}" in caplog.text


def test_zeroed_stretch_in_the_middle_still_accounts_for_every_frame(tmp_path: Path) -> None:
    """FFmpeg skips the zeroed packets; the source seeks past the early end and reaches the header count."""
    data = bytearray(shared_path("media/vtest.avi").read_bytes())
    middle = len(data) // 2
    data[middle : middle + 300_000] = bytes(300_000)
    broken = tmp_path / "holes.avi"
    broken.write_bytes(bytes(data))
    source = VideoSource(broken)
    indices = [item.index for item in source]
    assert indices == list(range(795))
    assert source.undelivered == 0


# ----------------------------------------------------------------------------------------------------------------
# video: simulated breakage through the capture seam
# ----------------------------------------------------------------------------------------------------------------


def _decode_into(buffer: np.ndarray | None, decoded: np.ndarray) -> np.ndarray:
    """What ``cv2.VideoCapture.read(buffer)`` returns: *buffer* itself, overwritten, when it fits; else new."""
    if buffer is not None and buffer.shape == decoded.shape and buffer.dtype == decoded.dtype:
        buffer[...] = decoded
        return buffer
    return decoded


class FakeVideo:
    """A capture over *frames* frames, like OpenCV's: a failed read stays failed until the next seek."""

    def __init__(self, frames: int, *, count: int | None = None, bad: set[int] | frozenset[int] = frozenset(),
                 fps: float = 10.0) -> None:
        self.frames, self.count, self.bad, self.fps = frames, frames if count is None else count, bad, fps
        self.pos = 0
        self.failed = False
        self.released = False
        self.seeks: list[int] = []

    def isOpened(self) -> bool:
        return True

    def grab(self) -> bool:
        if self.failed or self.pos >= self.frames or self.pos in self.bad:
            self.failed = True
            return False
        self.pos += 1
        return True

    def read(self, image: np.ndarray | None = None) -> tuple[bool, np.ndarray | None]:
        if not self.grab():
            return False, None
        return True, _decode_into(image, np.full((4, 6, 3), (self.pos - 1) % 256, np.uint8))

    def get(self, prop: int) -> float:
        return {cv2.CAP_PROP_FRAME_COUNT: self.count, cv2.CAP_PROP_FPS: self.fps,
                cv2.CAP_PROP_POS_FRAMES: self.pos}.get(prop, 0.0)

    def set(self, prop: int, value: float) -> bool:
        if prop != cv2.CAP_PROP_POS_FRAMES:
            return False
        self.pos, self.failed = int(value), False
        self.seeks.append(int(value))
        return True

    def release(self) -> None:
        self.released = True


def _video(fake: FakeVideo, **kwargs: object) -> VideoSource:
    return VideoSource("fake.mp4", capture_factory=lambda: fake, **kwargs)  # type: ignore[arg-type]


def test_broken_stretch_becomes_failures_and_reading_goes_on() -> None:
    fake = FakeVideo(50, bad={20, 21, 22})
    items = list(_video(fake))
    assert [i.index for i in items] == list(range(50))
    failed = [i.index for i in items if isinstance(i, FrameFailure)]
    assert failed == [20, 21, 22]
    assert all("unreadable" in i.error and "\n" not in i.error for i in items if isinstance(i, FrameFailure))
    assert int(items[23].image[0, 0, 0]) == 23  # the image of frame 23 is frame 23's
    assert fake.released


def test_frames_decoded_into_reused_buffers_keep_their_pixels_around_a_broken_stretch() -> None:
    # kept: every frame keeps its own pixels (the fake decodes in place like OpenCV, so an overwrite would show)
    items = list(_video(FakeVideo(40, bad={20, 21})))
    frames = [i for i in items if isinstance(i, Frame)]
    assert [int(f.image[0, 0, 0]) for f in frames] == [f.index for f in frames]
    assert len({id(f.image) for f in frames}) == len(frames) == 38
    # dropped at once: a few buffers take turns, and every frame still shows its own pixels when it arrives
    source = _video(FakeVideo(40, bad={20, 21}))
    seen = [(item.index, int(item.image[0, 0, 0])) for item in source if isinstance(item, Frame)]
    assert seen == [(i, i) for i in range(40) if i not in (20, 21)]
    if FREE_REFCOUNT is not None:  # (buffers are never reused where reference counts are not trusted)
        assert source.reader.pool.allocated <= 3
        assert source.reader.in_place >= 30


def test_broken_stretch_with_stride_reports_only_wanted_frames() -> None:
    items = list(_video(FakeVideo(30, bad={9, 10, 11}), start_frame=1, stride=2, max_frames=10))
    assert [i.index for i in items] == [1, 3, 5, 7, 9, 11, 13, 15, 17, 19]
    assert [i.index for i in items if isinstance(i, FrameFailure)] == [9, 11]


def test_stretch_longer_than_max_bad_frames_ends_the_video() -> None:
    source = _video(FakeVideo(60, bad=set(range(20, 40))), max_bad_frames=5)
    items = list(source)
    assert [i.index for i in items] == list(range(20))
    assert source.undelivered == 40


def test_header_over_count_ends_without_failures() -> None:
    source = _video(FakeVideo(30, count=33))
    assert len(source) == 33
    items = list(source)
    assert len(items) == 30
    assert all(isinstance(i, Frame) for i in items)
    assert source.undelivered == 3


def test_video_iterates_again_with_a_fresh_capture() -> None:
    made: list[FakeVideo] = []

    def factory() -> FakeVideo:
        made.append(FakeVideo(5))
        return made[-1]

    source = VideoSource("fake.mp4", capture_factory=factory)  # type: ignore[arg-type]
    assert [f.index for f in source] == [f.index for f in source] == [0, 1, 2, 3, 4]
    assert len(made) == 2
    assert all(c.released for c in made)


# ----------------------------------------------------------------------------------------------------------------
# camera and stream: reconnect with backoff
# ----------------------------------------------------------------------------------------------------------------


class FakeLive:
    """A live capture that delivers *frames* frames, then drops (``opened=False``: cannot connect)."""

    def __init__(self, frames: int = 0, *, opened: bool = True) -> None:
        self.frames, self.opened = frames, opened
        self.released = False

    def isOpened(self) -> bool:
        return self.opened and not self.released

    def read(self, image: np.ndarray | None = None) -> tuple[bool, np.ndarray | None]:
        if self.frames <= 0:
            return False, None
        self.frames -= 1
        return True, _decode_into(image, np.zeros((8, 8), np.uint8))  # grey: the source must make it BGR

    def grab(self) -> bool:
        return self.read()[0]

    def get(self, prop: int) -> float:
        return 25.0 if prop == cv2.CAP_PROP_FPS else 0.0

    def set(self, prop: int, value: float) -> bool:
        return False

    def release(self) -> None:
        self.released = True


class Script:
    """A capture factory returning the given captures in order (then closed ones)."""

    def __init__(self, *captures: FakeLive) -> None:
        self.captures = list(captures)
        self.calls = 0

    def __call__(self) -> FakeLive:
        self.calls += 1
        return self.captures.pop(0) if self.captures else FakeLive(opened=False)


def test_stream_reconnects_with_exponential_backoff(caplog: pytest.LogCaptureFixture) -> None:
    script = Script(FakeLive(3), FakeLive(opened=False), FakeLive(opened=False), FakeLive(2), FakeLive(1))
    delays: list[float] = []
    source = StreamSource("rtsp://user:secret@cam.local/live", capture_factory=script, sleep=delays.append,
                          backoff=Backoff(initial=0.5, max=1.5), max_reconnects=3, max_frames=6)
    assert len(source) == 0
    with caplog.at_level(logging.INFO, logger="trtapps.sources"):
        frames = list(source)
    assert [f.index for f in frames] == [0, 1, 2, 3, 4, 5]
    assert all(f.image.shape == (8, 8, 3) for f in frames)
    # drop after 3 frames: 0.5 (closed), 1.0 (closed), 1.5 (opened); drop after 2 more: backoff reset to 0.5
    assert delays == [0.5, 1.0, 1.5, 0.5]
    assert source.reconnects == 2
    assert caplog.text.count("reconnect attempt") == 4
    assert "secret" not in caplog.text
    assert frames[0].source == "rtsp://***@cam.local/live"
    timestamps = [f.timestamp for f in frames]
    assert timestamps == sorted(timestamps)


def test_stream_gives_up_after_max_reconnects() -> None:
    delays: list[float] = []
    source = StreamSource("rtsp://cam/live", capture_factory=Script(FakeLive(2)), sleep=delays.append,
                          backoff=Backoff(initial=1, max=3), max_reconnects=4)
    seen: list[int] = []
    with pytest.raises(InputError) as exc:
        seen.extend(f.index for f in source)
    assert seen == [0, 1]
    assert delays == [1, 2, 3, 3]
    assert "4 reconnect attempts failed" in _one_line(exc)
    assert "max_reconnects" in str(exc.value)


def test_close_cuts_a_reconnect_wait_short() -> None:
    source = StreamSource("rtsp://cam/live", capture_factory=Script(FakeLive(1)), backoff=Backoff(initial=60, max=60))
    iterator = iter(source)
    assert next(iterator).index == 0
    timer = threading.Timer(0.2, source.close)  # as the pipeline does after Ctrl-C
    timer.start()
    started = time.monotonic()
    assert list(iterator) == []
    assert time.monotonic() - started < 10
    timer.join()


def test_without_reconnect_a_drop_ends_the_source() -> None:
    script = Script(FakeLive(4), FakeLive(10))
    source = StreamSource("http://cam/mjpg", capture_factory=script, reconnect=False, sleep=pytest.fail)
    assert [f.index for f in source] == [0, 1, 2, 3]
    assert script.calls == 1


def test_camera_uses_the_same_reconnect_logic() -> None:
    delays: list[float] = []
    camera = CameraSource(2, capture_factory=Script(FakeLive(2), FakeLive(2)), sleep=delays.append, max_frames=4)
    frames = list(camera)
    assert [(f.source, f.index) for f in frames] == [("camera:2", i) for i in range(4)]
    assert delays == [1.0]
    assert camera.reconnects == 1


def test_live_sources_that_cannot_open_raise_at_construction() -> None:
    with pytest.raises(InputError) as exc:
        CameraSource(57)  # no such camera here
    assert "camera 57" in _one_line(exc)
    with pytest.raises(InputError) as exc:
        StreamSource("rtsp://u:p@host/x", capture_factory=Script(FakeLive(opened=False)))
    message = _one_line(exc)
    assert "rtsp://***@host/x" in message
    assert "u:p" not in message


def test_stream_over_a_local_file_url_reconnects_with_increasing_indices(tmp_path: Path) -> None:
    clip = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (64, 48))
    for i in range(6):
        writer.write(np.full((48, 64, 3), 40 * i, np.uint8))
    writer.release()
    spec = PluginManager(entry_points=False).registries.source.get("stream")
    options = StreamOptions.model_validate({"type": "stream", "url": clip.as_uri(), "reconnect": False})
    once = spec.factory(options, RunContext())
    assert isinstance(once, StreamSource)
    assert [f.index for f in once] == list(range(6))
    looped = StreamSource(clip.as_uri(), max_frames=15, sleep=lambda _: None)
    frames = list(looped)
    assert [f.index for f in frames] == list(range(15))
    levels = [round(float(f.image.mean()) / 40) for f in frames]
    assert levels == [0, 1, 2, 3, 4, 5] * 2 + [0, 1, 2]
    assert looped.reconnects == 2


def test_stream_options_validate() -> None:
    options = StreamOptions.model_validate({"type": "stream", "url": "rtsp://h/s", "backoff": {"initial": 0.2}})
    assert (options.backoff.initial, options.backoff.max, options.max_reconnects) == (0.2, 30.0, None)
    with pytest.raises(ValidationError, match="not a URL"):
        StreamOptions.model_validate({"type": "stream", "url": "video.mp4"})
    with pytest.raises(ValidationError, match=r"at least backoff\.initial"):
        StreamOptions.model_validate({"type": "stream", "url": "rtsp://h/s", "backoff": {"initial": 5, "max": 1}})
    assert redact_url("rtsp://admin:pw@10.0.0.2:554/a?b=1") == "rtsp://***@10.0.0.2:554/a?b=1"
    assert redact_url("http://host/x") == "http://host/x"
