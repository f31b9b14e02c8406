"""Built-in result sinks (``sinks:`` in pipeline files), registered as a core plugin module.

* ``jsonl``: one JSON object per input frame (``FrameResult.to_json()``), one line each.
* ``images``: annotated JPEGs, one per image input (and every n-th frame of videos when asked).
* ``video``: one annotated video per video/camera/stream source.
* ``summary``: the run summary (``RunSummary.to_json()``) as JSON, written at the end.

Relative paths go under the run's output folder (``RunContext.output_path``). Every sink is safe to stop at
any moment: JSONL lines are written whole with one unbuffered write each, images are written to a temporary
file and renamed, and ``close()`` (which the pipeline calls after errors and Ctrl-C too) releases every video
writer so the videos play.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import math
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from pydantic import Field, field_validator

from trtapps.context import RunContext
from trtapps.draw import TrailHistory, annotate
from trtapps.errors import ConfigError, OutputError, UserError
from trtapps.hookspecs import hookimpl
from trtapps.registry import ComponentSpec, Register, SinkOptions
from trtapps.sources import IMAGE_EXTENSIONS
from trtapps.structures import FrameResult, to_host

logger = logging.getLogger("trtapps.sinks")


def is_image_result(result: FrameResult) -> bool:
    """True when *result* comes from a still image: index 0, no timestamp, an image file extension.

    Video, camera and stream frames carry timestamps (failed frames of them never reach an image writer).
    """
    return (result.index == 0 and result.timestamp is None
            and Path(result.source).suffix.lower() in IMAGE_EXTENSIONS)


def safe_stem(source: str) -> str:
    """A file-name-safe stem for a source path or URL (``rtsp://h/cam1`` → ``cam1``, ``camera:0`` → ``camera_0``)."""
    tail = source.rstrip("/").split("?")[0]
    stem = Path(tail).stem if "://" not in tail or "/" in tail.split("://", 1)[1] else tail.split("://", 1)[1]
    stem = re.sub(r"[^\w.-]+", "_", stem).strip("._")
    return stem or "source"


def refuse_input_as_output(path: Path, result: FrameResult, sink: str) -> None:
    """Raise :class:`OutputError` when *path*, where *sink* is about to write, is the file *result* was read from
    (``predict -s clip.mp4 -o .`` would otherwise truncate the video while it is being read)."""
    source = Path(result.source)
    try:
        same = os.path.samefile(path, source)
    except OSError:  # one of them does not exist (yet), or the source is a URL
        same = path.resolve() == source.resolve() if "://" not in result.source else False
    if same:
        raise OutputError(f"{sink} sink: {path} is an input of this run and would be overwritten; choose another "
                          "output folder (--output) or sink path")


def _write_atomic(path: Path, data: bytes) -> None:
    """Write *data* to *path* through a temporary file, so an interrupted run never leaves half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _json_safe(value: Any) -> Any:
    """*value* with non-finite floats replaced by ``None`` (strict JSON has no NaN/Infinity)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def _result_image(result: FrameResult, sink: str) -> np.ndarray:
    if result.image is None:
        raise RuntimeError(
            f"sink {sink!r} got frame {result.index} of {result.source} without its image; the pipeline must "
            "keep host frames for sinks with needs_images=True"
        )
    return to_host(result.image)


# ==============================================================================================================
# jsonl
# ==============================================================================================================


class JsonlOptions(SinkOptions):
    """Per-frame results as JSON Lines."""

    type: str = "jsonl"
    path: str = Field("results.jsonl", description="Output file, relative to the run's output folder.")
    append: bool = Field(False, description="Append to an existing file instead of replacing it.")


class JsonlSink:
    """One line per frame result; each line is written whole and unbuffered, so an interrupted run leaves
    only complete lines.

    Args:
        path: the output file (parent folders are created).
        append: append instead of truncating.
    """

    needs_images = False

    def __init__(self, path: str | Path, *, append: bool = False) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Unbuffered binary: each line reaches the OS in one write() call, nothing waits in a Python buffer.
        self._file: Any = open(self.path, "ab" if append else "wb", buffering=0)  # noqa: SIM115 - closed in close()
        self.lines = 0

    def write(self, result: FrameResult) -> None:
        record = result.to_json()
        try:
            text = json.dumps(record, ensure_ascii=False, allow_nan=False)
        except ValueError:  # a NaN/inf slipped into a box or score
            text = json.dumps(_json_safe(record), ensure_ascii=False, allow_nan=False)
        data = memoryview((text + "\n").encode("utf-8"))
        if self._file is None:
            raise RuntimeError(f"jsonl sink {self.path} is closed")
        while data:  # a regular file takes the whole line at once; loop only for short writes
            written = self._file.write(data)
            data = data[written:]
        self.lines += 1

    def close(self, summary: Any = None) -> None:
        if self._file is None:
            return
        with contextlib.suppress(OSError):  # e.g. a pipe or a file system without fsync
            os.fsync(self._file.fileno())
        self._file.close()
        self._file = None


# ==============================================================================================================
# images
# ==============================================================================================================


class ImagesSinkOptions(SinkOptions):
    """Annotated images (JPEG)."""

    type: str = "images"
    dir: str = Field("images", description="Output folder, relative to the run's output folder.")
    every_n: int | None = Field(
        None, ge=1, description="Also save every n-th frame (by frame index) of video/camera/stream sources."
    )
    quality: int = Field(95, ge=1, le=100, description="JPEG quality.")
    show_scores: bool = Field(True, description="Print scores next to the class names.")


class ImagesSink:
    """Writes ``<dir>/<stem>.jpg`` per image input (``<stem>_1.jpg``… when stems repeat) and, with
    ``every_n``, ``<dir>/<stem>_<frame:06d>.jpg`` for frames of other sources. Failed frames are skipped.

    Args:
        directory: output folder (created).
        every_n: save frames of video sources whose index is a multiple of this (none when ``None``).
        quality: JPEG quality.
        show_scores: include scores in labels.
    """

    needs_images = True

    def __init__(self, directory: str | Path, *, every_n: int | None = None, quality: int = 95,
                 show_scores: bool = True) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.every_n = every_n
        self.quality = quality
        self.show_scores = show_scores
        self._stems: dict[tuple[int, str], str] = {}
        self._used: set[str] = set()
        self.written: list[Path] = []

    def _stem(self, result: FrameResult) -> str:
        key = (result.source_id, result.source)
        if key not in self._stems:
            base = safe_stem(result.source)
            stem, n = base, 0
            while stem.lower() in self._used:
                n += 1
                stem = f"{base}_{n}"
            self._used.add(stem.lower())
            self._stems[key] = stem
        return self._stems[key]

    def write(self, result: FrameResult) -> None:
        if not result.ok:
            return
        if is_image_result(result):
            name = f"{self._stem(result)}.jpg"
        elif self.every_n is not None and result.index % self.every_n == 0:
            name = f"{self._stem(result)}_{result.index:06d}.jpg"
        else:
            return
        image = annotate(_result_image(result, "images"), result.detections, result.labels,
                         show_scores=self.show_scores)
        ok, buffer = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self.quality])
        if not ok:
            raise RuntimeError(f"images sink: JPEG encoding of {result.source} frame {result.index} failed")
        path = self.dir / name
        refuse_input_as_output(path, result, "images")
        _write_atomic(path, buffer.tobytes())
        self.written.append(path)

    def close(self, summary: Any = None) -> None:
        """Nothing to flush: every image is complete once written."""


# ==============================================================================================================
# video
# ==============================================================================================================


class VideoSinkOptions(SinkOptions):
    """Annotated videos, one per video/camera/stream source."""

    type: str = "video"
    path: str = Field(
        "{stem}.mp4",
        description="Output file per source, relative to the run's output folder; {stem}: the source's file "
        "name without extension, {source_id}: its position.",
    )
    fps: float | None = Field(None, gt=0, description="Frame rate; default: measured from the source timestamps.")
    codec: str = Field("mp4v", description="FourCC of the encoder (mp4v works everywhere; avc1 needs an H.264 "
                       "encoder in OpenCV's FFmpeg).")
    trail: int = Field(0, ge=0, description="Draw each track's last n centres (0: no trails).")
    show_scores: bool = Field(True, description="Print scores next to the class names.")

    @field_validator("codec")
    @classmethod
    def _fourcc(cls, value: str) -> str:
        if len(value) != 4:
            raise ValueError(f"codec must be a 4-character FourCC such as 'mp4v', but got {value!r}")
        return value

    @field_validator("path")
    @classmethod
    def _placeholders(cls, value: str) -> str:
        try:
            value.format(stem="x", source_id=0)
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"{value!r}: only {{stem}} and {{source_id}} may appear in braces ({exc})") from None
        return value


#: results buffered per source to measure the frame rate from timestamps before the writer opens
FPS_PROBE_FRAMES = 8
DEFAULT_FPS = 25.0


@dataclass
class _Stream:
    """The writer state of one source."""

    path: Path
    writer: Any = None
    size: tuple[int, int] | None = None  # (width, height)
    fps: float | None = None
    pending: list[tuple[np.ndarray | None, float | None]] = field(default_factory=list)  # (image, timestamp)
    last: np.ndarray | None = None
    frames: int = 0
    resized_warned: bool = False
    broken: bool = False  # the writer could not be opened: the error was raised once, the source is dropped


class VideoSink:
    """One annotated video per source, one output frame per input frame result.

    Frame count and timing: every result adds exactly one frame, so the output runs in step with the input. A
    failed frame repeats the previous output frame (black when the source has not delivered a frame yet).
    Without ``fps``, the rate comes from the timestamps of the first results (``stride`` and live rates included),
    else 25. Frames whose size differs from the first frame are resized to it. Image inputs are skipped (use
    the ``images`` sink).

    Args:
        path: output path template (``{stem}``, ``{source_id}``); relative to *output_dir*.
        output_dir: where relative paths go (``None``: as given).
        fps: fixed output rate.
        codec: FourCC.
        trail: track trail length (0: none).
        show_scores: include scores in labels.
    """

    needs_images = True

    def __init__(self, path: str = "{stem}.mp4", *, output_dir: Path | None = None, fps: float | None = None,
                 codec: str = "mp4v", trail: int = 0, show_scores: bool = True) -> None:
        self.template = path
        self.output_dir = output_dir
        self.fps = fps
        self.codec = codec
        self.show_scores = show_scores
        self.trails = TrailHistory(trail) if trail > 0 else None
        self._streams: dict[tuple[int, str], _Stream] = {}
        self._used: set[Path] = set()
        self._skipped_images = False

    @property
    def paths(self) -> list[Path]:
        """The output file of every source seen so far."""
        return [s.path for s in self._streams.values()]

    def _path_for(self, result: FrameResult) -> Path:
        path = Path(self.template.format(stem=safe_stem(result.source), source_id=result.source_id))
        if self.output_dir is not None and not path.expanduser().is_absolute():
            path = self.output_dir / path
        path = path.expanduser()
        candidate, n = path, 0
        while candidate in self._used:
            n += 1
            candidate = path.with_name(f"{path.stem}_{n}{path.suffix}")
        refuse_input_as_output(candidate, result, "video")
        self._used.add(candidate)
        return candidate

    def write(self, result: FrameResult) -> None:
        if is_image_result(result):
            if not self._skipped_images:
                logger.info("video sink: skipping image inputs (%s); the images sink writes them", result.source)
                self._skipped_images = True
            return
        key = (result.source_id, result.source)
        stream = self._streams.get(key)
        if stream is None:
            stream = self._streams[key] = _Stream(self._path_for(result))
        if stream.broken:
            return
        image: np.ndarray | None = None
        if result.ok:
            if self.trails is not None and result.detections is not None:
                self.trails.update(key, result.detections)
            image = annotate(_result_image(result, "video"), result.detections, result.labels,
                             trails=self.trails, source=key, show_scores=self.show_scores)
        if stream.writer is None:
            stream.pending.append((image, result.timestamp if result.ok else None))
            good = sum(1 for img, _ in stream.pending if img is not None)
            if good and (self.fps is not None or good >= FPS_PROBE_FRAMES):
                self._open(stream)
            return
        self._emit(stream, image)

    def _measure_fps(self, stream: _Stream) -> float:
        """Results per second of source time over the buffered results (failures count as frames)."""
        stamped = [(i, t) for i, (img, t) in enumerate(stream.pending) if img is not None and t is not None]
        if len(stamped) >= 2:
            (i0, t0), (i1, t1) = stamped[0], stamped[-1]
            if t1 > t0:
                fps = (i1 - i0) / (t1 - t0)
                if 0.5 <= fps <= 480:
                    return round(fps, 3)
        return DEFAULT_FPS

    def _open(self, stream: _Stream) -> None:
        first = next(img for img, _ in stream.pending if img is not None)
        height, width = first.shape[:2]
        stream.size = (width, height)
        stream.fps = self.fps or self._measure_fps(stream)
        stream.path.parent.mkdir(parents=True, exist_ok=True)
        writer = cv2.VideoWriter(str(stream.path), cv2.VideoWriter.fourcc(*self.codec), stream.fps, stream.size)
        if not writer.isOpened():
            writer.release()
            stream.broken = True
            stream.pending = []
            raise UserError(
                f"video sink: cannot write {stream.path} with codec {self.codec!r}; use codec mp4v and a .mp4 or "
                ".avi path"
            )
        stream.writer = writer
        pending, stream.pending = stream.pending, []
        for img, _ in pending:
            self._emit(stream, img)

    def _emit(self, stream: _Stream, image: np.ndarray | None) -> None:
        assert stream.size is not None
        width, height = stream.size
        if image is None:
            image = stream.last if stream.last is not None else np.zeros((height, width, 3), np.uint8)
        elif (image.shape[1], image.shape[0]) != stream.size:
            if not stream.resized_warned:
                logger.warning("video sink: %s changes size from %dx%d to %dx%d; resizing to the first size",
                               stream.path.name, width, height, image.shape[1], image.shape[0])
                stream.resized_warned = True
            image = cv2.resize(image, stream.size, interpolation=cv2.INTER_AREA)
        stream.writer.write(np.ascontiguousarray(image))
        stream.last = image
        stream.frames += 1

    def close(self, summary: Any = None) -> None:
        """Flush buffered frames and release every writer (also after errors and Ctrl-C)."""
        errors: list[BaseException] = []
        for stream in self._streams.values():
            try:
                if stream.writer is None and any(img is not None for img, _ in stream.pending):
                    self._open(stream)
                elif stream.writer is None and stream.pending:
                    logger.warning("video sink: %s not written: every frame of its source failed", stream.path)
                    stream.pending = []
            except BaseException as exc:  # keep releasing the other writers
                errors.append(exc)
            finally:
                if stream.writer is not None:
                    stream.writer.release()
                    stream.writer = None
        if errors:
            raise errors[0]


# ==============================================================================================================
# summary
# ==============================================================================================================


class SummarySinkOptions(SinkOptions):
    """The run summary as JSON."""

    type: str = "summary"
    path: str = Field("summary.json", description="Output file, relative to the run's output folder.")


class SummarySink:
    """Writes ``summary.to_json()`` when the run closes (atomically: a complete file or none)."""

    needs_images = False

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def write(self, result: FrameResult) -> None:
        """Per-frame results are not needed: the summary counts them."""

    def close(self, summary: Any = None) -> None:
        if summary is None:
            logger.warning("summary sink: no run summary was given; %s not written", self.path)
            return
        data = summary.to_json() if hasattr(summary, "to_json") else dict(summary)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(_json_safe(data), indent=2, ensure_ascii=False, allow_nan=False)
        _write_atomic(self.path, (text + "\n").encode("utf-8"))


# ==============================================================================================================
# registration
# ==============================================================================================================


def _jsonl(options: JsonlOptions, context: RunContext) -> JsonlSink:
    return JsonlSink(context.output_path(options.path), append=options.append)


def _images(options: ImagesSinkOptions, context: RunContext) -> ImagesSink:
    return ImagesSink(context.output_path(options.dir), every_n=options.every_n, quality=options.quality,
                      show_scores=options.show_scores)


@functools.lru_cache(maxsize=16)
def video_writer_works(suffix: str, codec: str) -> bool:
    """Whether OpenCV can write *suffix* files (``.mp4``) with FourCC *codec* here: a tiny trial file."""
    log = cv2.utils.logging
    level = log.getLogLevel()
    log.setLogLevel(log.LOG_LEVEL_SILENT)  # a failed trial is an answer, not a warning
    try:
        with tempfile.TemporaryDirectory(prefix="trtapps-codec-") as folder:
            path = str(Path(folder) / f"probe{suffix}")
            writer = cv2.VideoWriter(path, cv2.VideoWriter.fourcc(*codec), 25.0, (64, 64))
            works = bool(writer.isOpened())
            writer.release()
            return works
    finally:
        log.setLogLevel(level)


def _video(options: VideoSinkOptions, context: RunContext) -> VideoSink:
    # checked before the run, not at the first frame: by then the other sinks have written part of the results
    suffix = Path(options.path).suffix
    if not video_writer_works(suffix, options.codec):
        raise ConfigError(f"video sink: OpenCV cannot write {suffix or 'extension-less'} files with codec "
                          f"{options.codec!r} here; use codec mp4v and a .mp4 or .avi path")
    return VideoSink(options.path, output_dir=context.output_path("."), fps=options.fps, codec=options.codec,
                     trail=options.trail, show_scores=options.show_scores)


def _summary(options: SummarySinkOptions, context: RunContext) -> SummarySink:
    return SummarySink(context.output_path(options.path))


@hookimpl
def trtapps_register_sinks(register: Register) -> None:
    register(ComponentSpec("jsonl", JsonlOptions, _jsonl, summary="per-frame results as JSON Lines"))
    register(ComponentSpec("images", ImagesSinkOptions, _images,
                           summary="annotated JPEGs of image inputs (and every n-th video frame)"))
    register(ComponentSpec("video", VideoSinkOptions, _video, summary="one annotated video per video/stream source"))
    register(ComponentSpec("summary", SummarySinkOptions, _summary, summary="the run summary as JSON"))
