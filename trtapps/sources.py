"""Built-in frame sources (``source:`` in pipeline files), registered as a core plugin module.

* ``images``: image files: a file, a folder, a glob pattern, or a list of those; ``pkg:<package>/<path>`` names
  a file shipped inside an installed Python package (the quickstart's sample photo).
* ``video``: a video file read with OpenCV, with ``start_frame``, ``stride`` and ``max_frames``; or, with
  ``decoder: nvdec`` (``auto``, the default, on a GPU backend), decoded on the GPU by NVDEC into NV12 device frames
  (:mod:`trtapps.gpu.nvdec`, which falls back to OpenCV with one logged reason when it cannot decode the file).
* ``camera``: a local camera by index.
* ``stream``: an RTSP/HTTP(S) stream URL (any URL OpenCV's FFmpeg backend opens, ``file://`` included).

Unreadable inputs never stop a run: an image that cannot be decoded and the frames of a broken stretch of
video are yielded as :class:`~trtapps.stages.FrameFailure` so every input frame is accounted for. Inputs that
cannot be opened at all raise :class:`~trtapps.errors.InputError` when the source is built, before the run.

Video, end of stream and broken stretches (``video``): OpenCV's FFmpeg backend conceals most corrupt data
itself (it drops or repairs packets without reporting an error, so frame indices after such damage can be
shifted). When ``read()`` does fail before the frame count of the file header is reached, the source seeks to
the failed frame and then to each following one (at most ``max_bad_frames`` probes, one seek each). A probe
counts only if the capture then reports that position and returns a new image (past the readable data, OpenCV
returns the last decodable frame again for any position). If a probe reads, the frames before it are yielded
as failures (they certainly exist: a later frame does) and reading goes on from there. If none reads, the
stream is taken to have ended: the file is truncated, or its header over-counts (common for MP4 files with
edit lists). The frames the header promised but never delivered are *not* yielded as failures, since they
may not exist; they are logged as a warning and counted in :attr:`VideoSource.undelivered`. A longer broken
stretch than ``max_bad_frames`` therefore ends the video early.

Live sources (``camera``, ``stream``) reconnect on read failure with exponential backoff (``backoff.initial``
doubling up to ``backoff.max`` seconds), logging each attempt. Frame indices keep increasing across
reconnects; frames lost while disconnected have no index and are not reported as failures. After
``max_reconnects`` consecutive attempts without a frame the source raises :class:`InputError`; without
``reconnect`` the first read failure ends the source cleanly (the end of a finite stream).

Frame memory (``video``, ``camera``, ``stream``): frames are decoded into a bounded set of reused buffers
(:mod:`trtapps.framebuffers`), not a new array each: one allocation per frame, freed in other threads, fragments
glibc's heap in long runs. A buffer is reused only once nothing references it any more (a ``Frame``, a view of
its image, a queue), so a frame that is kept is never overwritten.
"""

from __future__ import annotations

import glob
import importlib.metadata
import importlib.resources
import logging
import math
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal, Protocol

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from trtapps.context import RunContext
from trtapps.errors import FrameError, InputError
from trtapps.framebuffers import DEFAULT_MAX_BUFFERS, DecodesIntoBuffers, FrameReader
from trtapps.hookspecs import hookimpl
from trtapps.paths import unreadable
from trtapps.registry import ComponentSpec, Register, SourceOptions
from trtapps.stages import FrameFailure, Source
from trtapps.structures import Frame

logger = logging.getLogger("trtapps.sources")

#: file extensions the ``images`` source picks up from folders and glob patterns (lower case)
IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".jpe", ".png", ".bmp", ".dib", ".tif", ".tiff", ".webp", ".jp2", ".pbm", ".pgm",
     ".ppm", ".pnm"}
)

PKG_PREFIX = "pkg:"

# Distributions whose name differs from the package they install (for the "pip install …" hint).
_KNOWN_DISTRIBUTIONS = {
    "cv2": "opencv-python-headless",
    "PIL": "pillow",
    "skimage": "scikit-image",
    "sklearn": "scikit-learn",
    "yaml": "pyyaml",
}


class Capture(Protocol):
    """The part of ``cv2.VideoCapture`` the video, camera and stream sources use (the test seam)."""

    def isOpened(self) -> bool: ...  # OpenCV's name

    def read(self, image: np.ndarray | None = None) -> tuple[bool, Any]:
        """The next frame; decoded into *image* (returned as the frame) when its shape and dtype fit."""
        ...

    def grab(self) -> bool: ...

    def get(self, prop: int) -> float: ...

    def set(self, prop: int, value: float) -> bool: ...

    def release(self) -> None: ...


CaptureFactory = Callable[[], Capture]


def _as_bgr(image: Any) -> np.ndarray | None:
    """*image* as a contiguous ``(H, W, 3)`` uint8 BGR array, or ``None`` when it is not a usable image."""
    if not isinstance(image, np.ndarray) or image.size == 0 or image.dtype != np.uint8:
        return None
    if image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1):
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    if image.ndim == 3 and image.shape[2] == 3:
        return image
    return None


# ==============================================================================================================
# images
# ==============================================================================================================


def resolve_pkg_path(spec: str) -> Path:
    """The file a ``pkg:<package>/<path inside the package>`` path names, through ``importlib.resources``.

    Raises:
        InputError: malformed spec, package not installed, or package not installed as plain files.
    """
    body = spec[len(PKG_PREFIX):]
    package, _, inner = body.partition("/")
    if not package or not inner.strip("/"):
        raise InputError(
            f"{spec}: expected pkg:<package>/<path inside the package>, "
            "e.g. pkg:matplotlib/mpl-data/sample_data/grace_hopper.jpg"
        )
    try:
        root = importlib.resources.files(package)
    except ModuleNotFoundError:
        raise InputError(
            f"{spec}: Python package {package!r} is not installed; pip install {_distribution_of(package)}"
        ) from None
    except Exception as exc:  # a broken package: say which, in one line
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise InputError(
            f"{spec}: cannot import package {package!r} ({type(exc).__name__}: {first}); reinstall it"
        ) from None
    target = root.joinpath(*[part for part in inner.split("/") if part])
    if not isinstance(target, Path):
        raise InputError(
            f"{spec}: package {package!r} is not installed as plain files (zipped?); "
            f"reinstall it with pip install --force-reinstall {_distribution_of(package)}"
        )
    return target


def _distribution_of(package: str) -> str:
    """The distribution to ``pip install`` for an import name (best guess when it is not installed)."""
    top = package.split(".")[0]
    if top in _KNOWN_DISTRIBUTIONS:
        return _KNOWN_DISTRIBUTIONS[top]
    try:
        dists = importlib.metadata.packages_distributions().get(top)
    except Exception:  # metadata of some installed distribution is broken
        dists = None
    return dists[0] if dists else top.replace("_", "-")


def _is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def expand_image_paths(
    paths: str | Sequence[str], *, recursive: bool = False, base_dir: Path | None = None
) -> list[Path]:
    """The image files of an ``images`` source, in order.

    Each item is a file, a folder (its image files, sorted; with *recursive* its sub-folders too), a glob
    pattern (matching image files, sorted; ``**`` descends with *recursive*), or ``pkg:<package>/<path>``.
    Plain file paths are kept even when they do not exist (the source yields a failure for them).

    Raises:
        InputError: a folder or pattern that matches no image, a malformed ``pkg:`` path, or nothing at all
            that exists.
    """
    items = [paths] if isinstance(paths, str) else list(paths)
    out: list[Path] = []
    where = f" (relative paths are resolved against {base_dir})" if base_dir is not None else ""
    for item in items:
        if item.startswith(PKG_PREFIX):
            path = resolve_pkg_path(item)
            pattern = str(path)
        else:
            path = pattern_path = Path(item).expanduser()
            pattern = str(pattern_path)
            if base_dir is not None and not path.is_absolute():
                path = base_dir / path
                pattern = str(Path(glob.escape(str(base_dir))) / pattern_path)  # the folder's name is literal
        if glob.has_magic(pattern) and not path.exists():  # an existing "photo [1].jpg" is a file, not a pattern
            matches = [Path(m) for m in sorted(glob.glob(pattern, recursive=recursive))]
            files = [m for m in matches if m.is_file() and _is_image_file(m)]
            if not files:
                found = f"{len(matches)} non-image entries" if matches else "nothing"
                raise InputError(
                    f"{item}: pattern matches {found}{where}; check source.path "
                    f"(image extensions: {', '.join(sorted(IMAGE_EXTENSIONS))})"
                )
            out.extend(files)
        elif path.is_dir():
            walk = path.rglob("*") if recursive else path.iterdir()
            files = sorted(p for p in walk if p.is_file() and _is_image_file(p))
            if not files:
                hint = "" if recursive else " (set source.recursive: true to include sub-folders)"
                raise InputError(f"{item}: folder contains no image files{hint}; check source.path")
            out.extend(files)
        else:
            out.append(path)
    if not any(p.exists() for p in out):
        listed = ", ".join(str(p) for p in out[:3]) + (", …" if len(out) > 3 else "")
        raise InputError(f"{listed}: no such file or folder{where}; check source.path")
    return out


def jpeg_is_complete(data: bytes) -> bool:
    """True when the JPEG stream in *data* reaches its end-of-image marker.

    Walks the marker segments (skipping EXIF thumbnails inside APP segments) and the entropy-coded data of each
    scan, so bytes appended after the image (camera trailers, motion-photo videos) do not matter and a file cut
    anywhere before the end marker is caught. Structures it does not understand count as complete (the decoder
    then decides).
    """
    n = len(data)
    pos = 2  # after SOI
    while pos + 2 <= n:
        if data[pos] != 0xFF:
            return True
        marker = data[pos + 1]
        if marker == 0xD9:  # EOI
            return True
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:  # markers without a length
            pos += 2
            continue
        if pos + 4 > n:
            return False
        end = pos + 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
        if marker != 0xDA:  # not a scan: skip the segment
            pos = end
            continue
        scan = end  # entropy-coded data: it ends at the first FF not followed by 00 (stuffing) or a restart
        while True:
            ff = data.find(b"\xff", scan)
            if ff < 0 or ff + 1 >= n:
                return False
            following = data[ff + 1]
            if following == 0x00 or following == 0xFF or 0xD0 <= following <= 0xD7:
                scan = ff + 1
                continue
            pos = ff
            break
    return False


def read_image(path: Path) -> np.ndarray:
    """Decode one image file to ``(H, W, 3)`` uint8 BGR.

    Raises:
        FrameError: with a one-line message saying what is wrong with the file and the fix.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise FrameError(f"{path}: file not found; check the path or remove it from source.path") from None
    except IsADirectoryError:
        raise FrameError(f"{path}: is a folder, not an image file; list the folder itself in source.path") from None
    except OSError as exc:
        raise FrameError(f"{path}: cannot read the file ({exc.strerror or exc}); check its permissions") from None
    if not data:
        raise FrameError(f"{path}: empty file (0 bytes); copy the image again or remove it")
    if data[:3] == b"\xff\xd8\xff" and not jpeg_is_complete(data):
        # OpenCV would return the part before the cut with a grey bottom: a wrong image, not a readable one.
        raise FrameError(f"{path}: truncated JPEG (no end-of-image marker); copy or download the file again")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    image = _as_bgr(image)
    if image is None:
        raise FrameError(
            f"{path}: not a readable image (corrupt data or a format OpenCV cannot decode); "
            "convert it to JPEG/PNG or remove it"
        )
    return image


class ImagesOptions(SourceOptions):
    """Image files: a file, a folder, a glob pattern, or a list of them."""

    type: str = "images"
    path: str | list[str] = Field(
        description="File, folder, glob pattern (e.g. 'photos/*.jpg'), pkg:<package>/<path>, or a list of them; "
        "relative to the config file."
    )
    recursive: bool = Field(False, description="Include sub-folders of folders; let '**' in patterns recurse.")

    @field_validator("path")
    @classmethod
    def _not_empty(cls, value: str | list[str]) -> str | list[str]:
        items = [value] if isinstance(value, str) else value
        if not items or any(not item.strip() for item in items):
            raise ValueError("give at least one non-empty path")
        return value


class ImagesSource:
    """Still images; each image is its own source (``Frame.source`` = its path) with index 0.

    Args:
        paths: see :func:`expand_image_paths`.
        recursive: descend into sub-folders.
        max_frames: stop after this many images.
        base_dir: folder relative paths are resolved against (the config file's folder).
        source_id: position of this source in a multi-source pipeline.
    """

    def __init__(
        self,
        paths: str | Sequence[str],
        *,
        recursive: bool = False,
        max_frames: int | None = None,
        base_dir: Path | None = None,
        source_id: int = 0,
    ) -> None:
        self.paths = expand_image_paths(paths, recursive=recursive, base_dir=base_dir)
        if max_frames is not None:
            self.paths = self.paths[:max_frames]
        self.name = paths if isinstance(paths, str) else ", ".join(paths)
        self.source_id = source_id

    def __iter__(self) -> Iterator[Frame | FrameFailure]:
        for path in self.paths:
            source = str(path)
            try:
                image = read_image(path)
            except FrameError as exc:
                yield FrameFailure(source=source, index=0, error=str(exc), source_id=self.source_id)
                continue
            yield Frame(image=image, source=source, index=0, timestamp=None, source_id=self.source_id)

    def __len__(self) -> int:
        return len(self.paths)

    def close(self) -> None:
        """Nothing to release: every file is read and closed in one go."""


# ==============================================================================================================
# video
# ==============================================================================================================


class VideoOptions(SourceOptions):
    """A video file, decoded with OpenCV (FFmpeg backend)."""

    type: str = "video"
    path: str = Field(description="Video file, relative to the config file.")
    start_frame: int = Field(0, ge=0, description="First frame to read (0-based).")
    stride: int = Field(1, ge=1, description="Read every n-th frame (frame indices stay those of the file).")
    max_bad_frames: int = Field(
        8, ge=0, description="Frames probed (one seek each) after a read failure before the video is taken to "
        "have ended; longer broken stretches end it."
    )
    decoder: Literal["auto", "opencv", "nvdec"] = Field(
        "auto", description="opencv: FFmpeg on the CPU; nvdec: the GPU's video decoder (PyNvVideoCodec), frames "
        "stay on the GPU; auto: nvdec with a GPU backend when it can decode the file, else opencv (reason logged)."
    )
    decode_worker: Literal["auto", "thread", "process"] = Field(
        "auto", description="Where NVDEC decodes: thread, the thread that reads the source; process, worker "
        "processes (their own Python GIL; frames cross through CUDA IPC, never the host; about a second to start "
        "and ~0.6 GB of GPU memory each), which pays off only while CUDA MPS runs; auto: process when the CUDA MPS "
        "daemon is running, else thread (README, NVDEC)."
    )
    decode_processes: int | None = Field(
        None, ge=1, le=64, description="With decode_worker process: the run's NVDEC videos share at most this many "
        "worker processes per GPU (default 2), each decoding several videos in turn. Fewer processes spend less "
        "CPU per frame, more decode faster (16 1080p videos on an H100: 0.31 ms of decoding CPU per frame and "
        "4,486 frames/s in 2 processes, 0.41 ms and 4,584 frames/s in 4; 16 720p videos: 6,687 frames/s in 2, "
        "9,621 in 4); raise it for engines faster than that; one process per video: at least the number of videos."
    )


class VideoWindow:
    """Which frames of a video file a source delivers (``start_frame``, ``stride``, ``max_frames``), and the counts
    that go with them; shared by :class:`VideoSource` and :class:`trtapps.gpu.nvdec.NvdecSource`.

    A subclass calls :meth:`_init_window` first, sets ``frame_count`` from the file header (0: unknown), then
    raises :meth:`_past_end` when it is not ``None``.
    """

    frame_count: int = 0

    def _init_window(
        self,
        path: str | Path,
        *,
        start_frame: int,
        stride: int,
        max_frames: int | None,
        max_bad_frames: int,
        source_id: int,
        log: logging.Logger,
    ) -> None:
        if stride < 1 or start_frame < 0 or (max_frames is not None and max_frames < 1):
            raise ValueError(f"invalid stride={stride}, start_frame={start_frame} or max_frames={max_frames}")
        self.path = Path(path)
        self.name = str(path)
        self.start_frame = start_frame
        self.stride = stride
        self.max_frames = max_frames
        self.max_bad_frames = max_bad_frames
        self.source_id = source_id
        self.log = log
        #: frames the header promised that the stream never delivered (known after iterating)
        self.undelivered = 0

    def _past_end(self) -> InputError | None:
        """The error for a ``start_frame`` at or past the header's frame count, else ``None``."""
        if self.frame_count and self.start_frame >= self.frame_count:
            return InputError(
                f"{self.path}: source.start_frame {self.start_frame} is past the end of the video "
                f"({self.frame_count} frames); lower it"
            )
        return None

    def __len__(self) -> int:
        """Frames this source will deliver according to the file header (0 when the header has no count)."""
        if not self.frame_count:
            return 0
        n = math.ceil((self.frame_count - self.start_frame) / self.stride)
        return min(n, self.max_frames) if self.max_frames is not None else n

    def _wanted(self, pos: int) -> bool:
        return frame_wanted(pos, self.start_frame, self.stride)


def frame_wanted(pos: int, start_frame: int, stride: int) -> bool:
    """Whether the frame at index *pos* of a video is delivered with ``start_frame`` and ``stride``."""
    return pos >= start_frame and (pos - start_frame) % stride == 0


class VideoSource(VideoWindow, DecodesIntoBuffers):
    """Frames of a video file; ``Frame.index`` is the frame's index in the file.

    See the module docstring for what happens at broken stretches and at the end of truncated files.

    Args:
        path: the video file.
        start_frame: first frame to deliver.
        stride: deliver every n-th frame from ``start_frame`` on.
        max_frames: stop after delivering this many frames (failures included).
        max_bad_frames: frames probed after a read failure before giving up.
        source_id: position of this source in a multi-source pipeline.
        capture_factory: builds the capture (default: ``cv2.VideoCapture(path)``); tests pass fakes.
        log: where warnings go.
        max_buffers: frame buffers kept for reuse (:mod:`trtapps.framebuffers`): frames are decoded into
            buffers nothing references any more instead of a new array each.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        start_frame: int = 0,
        stride: int = 1,
        max_frames: int | None = None,
        max_bad_frames: int = 8,
        source_id: int = 0,
        capture_factory: CaptureFactory | None = None,
        log: logging.Logger | None = None,
        max_buffers: int = DEFAULT_MAX_BUFFERS,
    ) -> None:
        self._init_window(path, start_frame=start_frame, stride=stride, max_frames=max_frames,
                          max_bad_frames=max_bad_frames, source_id=source_id, log=log or logger)
        #: decodes into reused buffers (one pool for every iteration of this source)
        self.reader = FrameReader(max_buffers=max_buffers)
        self._live: Capture | None = None
        if capture_factory is None:
            if why := unreadable(self.path):
                raise InputError(f"{self.path}: video file {why}; check source.path")
            if self.path.stat().st_size == 0:
                raise InputError(f"{self.path}: video file is empty (0 bytes); copy it again")
            capture_factory = _file_capture(self.path)
        self._factory = capture_factory
        cap = capture_factory()
        if not cap.isOpened():
            cap.release()
            raise InputError(
                f"{self.path}: cannot open as a video (unsupported format, or a corrupt or truncated file); "
                "check that it plays, or re-encode it (ffmpeg -i in -c:v libx264 out.mp4)"
            )
        self._cap: Capture | None = cap
        count = _finite(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        self.frame_count = int(count) if count and count > 0 else 0
        fps = _finite(cap.get(cv2.CAP_PROP_FPS))
        self.fps: float | None = fps if fps and fps > 0 else None
        past_end = self._past_end()
        if past_end is not None:
            cap.release()
            raise past_end

    def describe(self) -> dict[str, Any]:
        """For the run summary: decoded on the CPU by OpenCV (FFmpeg); ``undelivered``: frames the header
        promised that the file did not have (known once it was read to the end)."""
        return {"decoder": "opencv", "frames_in_header": self.frame_count, "fps": self.fps,
                "undelivered": self.undelivered}

    def _frame(self, cap: Capture, image: np.ndarray, pos: int) -> Frame:
        msec = _finite(cap.get(cv2.CAP_PROP_POS_MSEC))
        if msec is not None and msec >= 0 and (msec > 0 or pos == 0):
            timestamp: float | None = msec / 1000.0
        elif self.fps:
            timestamp = pos / self.fps
        else:
            timestamp = None
        meta = {"fps": self.fps, "frame_count": self.frame_count}
        return Frame(image=image, source=self.name, index=pos, timestamp=timestamp, source_id=self.source_id,
                     meta=meta)

    def _failure(self, pos: int, error: str) -> FrameFailure:
        return FrameFailure(source=self.name, index=pos, error=error, source_id=self.source_id)

    def __iter__(self) -> Iterator[Frame | FrameFailure]:
        cap = self._cap if self._cap is not None else self._factory()
        self._cap = None  # a second iteration opens a fresh capture
        self._live = cap
        self.undelivered = 0
        try:
            pos = 0
            if self.start_frame and cap.set(cv2.CAP_PROP_POS_FRAMES, self.start_frame):
                pos = self.start_frame  # else: grab from 0 up to start_frame
            delivered = 0
            # the last decoded image (to spot stale frames after a seek); it keeps its buffer from being reused
            previous: np.ndarray | None = None
            while self.max_frames is None or delivered < self.max_frames:
                wanted = self._wanted(pos)
                image = None
                if wanted:
                    ok, raw = self.reader.read(cap)
                    image = _as_bgr(raw) if ok else None
                    ok = image is not None
                else:
                    ok = cap.grab()
                if ok:
                    if wanted:
                        assert image is not None
                        yield self._frame(cap, image, pos)
                        previous = image
                        delivered += 1
                    pos += 1
                    continue
                if not self.frame_count or pos >= self.frame_count:
                    break  # the normal end
                found = self._probe(cap, pos, previous)
                if found is None:
                    self.undelivered = self.frame_count - pos
                    self.log.warning(
                        "%s: stream ended at frame %d but the header counts %d frames; frames %d-%d were not "
                        "delivered (truncated file, or the header over-counts)",
                        self.name, pos, self.frame_count, pos, self.frame_count - 1,
                    )
                    break
                probe, probe_image = found
                if probe > pos:
                    self.log.warning("%s: frames %d-%d are unreadable; skipped", self.name, pos, probe - 1)
                for bad in range(pos, probe):
                    if self._wanted(bad) and (self.max_frames is None or delivered < self.max_frames):
                        yield self._failure(
                            bad, f"{self.name}: frame {bad} is unreadable (broken stretch of video); "
                            "re-encode the file to recover it"
                        )
                        delivered += 1
                if self._wanted(probe) and (self.max_frames is None or delivered < self.max_frames):
                    yield self._frame(cap, probe_image, probe)
                    delivered += 1
                previous = probe_image
                pos = probe + 1
        finally:
            cap.release()
            self._live = None

    def _probe(self, cap: Capture, pos: int, previous: np.ndarray | None) -> tuple[int, np.ndarray] | None:
        """Seek to *pos* and the frames after it; the first one that really reads, or ``None`` (stream ended).

        OpenCV's seek is not trustworthy past the readable data: it can return the last decodable frame again
        for any later position. A probe counts only when the capture reports the probed position afterwards
        and the image differs from the last delivered one.
        """
        last = min(pos + self.max_bad_frames, self.frame_count - 1)
        for probe in range(pos, last + 1):
            if not cap.set(cv2.CAP_PROP_POS_FRAMES, probe):
                continue
            ok, raw = cap.read()
            image = _as_bgr(raw) if ok else None
            if image is None or _finite(cap.get(cv2.CAP_PROP_POS_FRAMES)) != probe + 1:
                continue
            if previous is not None and previous.shape == image.shape and np.array_equal(previous, image):
                continue
            return probe, image
        return None

    def close(self) -> None:
        for cap in (self._cap, self._live):
            if cap is not None:
                cap.release()
        self._cap = None


def _file_capture(path: Path) -> CaptureFactory:
    def factory() -> Capture:
        return cv2.VideoCapture(str(path))

    return factory


def _finite(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


# ==============================================================================================================
# camera and stream: live sources that reconnect
# ==============================================================================================================


class Backoff(BaseModel):
    """Reconnect delays: ``initial`` seconds, doubled after each failed attempt, capped at ``max``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    initial: float = Field(1.0, gt=0, description="First delay in seconds.")
    max: float = Field(30.0, gt=0, description="Longest delay in seconds.")

    @model_validator(mode="after")
    def _ordered(self) -> Backoff:
        if self.max < self.initial:
            raise ValueError(f"backoff.max ({self.max}) must be at least backoff.initial ({self.initial})")
        return self


class LiveOptions(SourceOptions):
    """Options shared by live sources (reconnect policy)."""

    reconnect: bool = Field(True, description="Reopen the input after a read failure.")
    backoff: Backoff = Field(default_factory=Backoff, description="Delays between reconnect attempts.")
    max_reconnects: int | None = Field(
        None, ge=0, description="Consecutive failed attempts before giving up (unlimited when omitted)."
    )


class CameraOptions(LiveOptions):
    """A local camera (V4L2, DirectShow, AVFoundation) by index."""

    type: str = "camera"
    index: int = Field(0, ge=0, description="Camera index (0: the first camera).")
    width: int | None = Field(None, ge=1, description="Requested frame width.")
    height: int | None = Field(None, ge=1, description="Requested frame height.")
    fps: float | None = Field(None, gt=0, description="Requested frame rate.")
    max_reconnects: int | None = Field(5, ge=0, description="Consecutive failed attempts before giving up.")


class StreamOptions(LiveOptions):
    """A network stream (RTSP, HTTP(S), or any URL OpenCV's FFmpeg backend opens)."""

    type: str = "stream"
    url: str = Field(description="Stream URL, e.g. rtsp://user:pass@host:554/stream.")
    timeout: float = Field(10.0, gt=0, description="Seconds to wait when opening or reading before it counts as lost.")

    @field_validator("url")
    @classmethod
    def _has_scheme(cls, value: str) -> str:
        if "://" not in value:
            raise ValueError(f"{value!r} is not a URL; use rtsp://…, http://… (use source type 'video' for files)")
        return value


_CREDENTIALS = re.compile(r"(?<=://)[^/@\s]+@")


def redact_url(url: str) -> str:
    """*url* with any ``user:password@`` replaced by ``***@`` (for logs and results)."""
    return _CREDENTIALS.sub("***@", url)


class LiveSource(DecodesIntoBuffers):
    """A capture read until it ends, reopened with exponential backoff when reading fails.

    Args:
        name: the source string of its frames (credentials removed).
        capture_factory: opens the capture; called again for each reconnect.
        reconnect: reopen after a read failure (else the first failure ends the source).
        backoff: delays between attempts.
        max_reconnects: consecutive failed attempts (without a frame in between) before raising
            :class:`InputError`; ``None``: unlimited.
        max_frames: stop after this many frames.
        source_id: position of this source in a multi-source pipeline.
        open_error: the one-line message raised when the first open fails.
        sleep: waits between attempts (default: a wait that :meth:`close` cuts short; tests pass a recorder).
        clock: monotonic seconds, for timestamps.
        log: where attempts are logged.
        max_buffers: frame buffers kept for reuse (:mod:`trtapps.framebuffers`).
    """

    #: frames cannot wait: when the model falls behind, the pipeline drops the oldest queued frame (counted)
    live = True

    def __init__(
        self,
        name: str,
        capture_factory: CaptureFactory,
        *,
        reconnect: bool = True,
        backoff: Backoff | None = None,
        max_reconnects: int | None = None,
        max_frames: int | None = None,
        source_id: int = 0,
        open_error: str | None = None,
        sleep: Callable[[float], object] | None = None,
        clock: Callable[[], float] = time.monotonic,
        log: logging.Logger | None = None,
        max_buffers: int = DEFAULT_MAX_BUFFERS,
    ) -> None:
        self.name = name
        #: decodes into reused buffers, across reconnects too (a changed resolution just moves to new buffers)
        self.reader = FrameReader(max_buffers=max_buffers)
        self._factory = capture_factory
        self.reconnect = reconnect
        self.backoff = backoff or Backoff()
        self.max_reconnects = max_reconnects
        self.max_frames = max_frames
        self.source_id = source_id
        self._closed = threading.Event()
        self._sleep = sleep if sleep is not None else self._closed.wait
        self._clock = clock
        self.log = log or logger
        #: successful reopenings so far
        self.reconnects = 0
        cap = capture_factory()
        if not cap.isOpened():
            cap.release()
            raise InputError(open_error or f"{name}: cannot be opened; check the input")
        self._cap: Capture | None = cap
        self.fps: float | None = None
        fps = _finite(cap.get(cv2.CAP_PROP_FPS))
        if fps and 0 < fps < 1000:
            self.fps = fps

    def __len__(self) -> int:
        return 0  # unknown in advance

    def __iter__(self) -> Iterator[Frame | FrameFailure]:
        cap = self._cap if self._cap is not None else self._factory()
        self._cap = cap
        index = 0
        attempts = 0
        delay = self.backoff.initial
        start = self._clock()
        try:
            while self.max_frames is None or index < self.max_frames:
                ok, raw = self.reader.read(cap) if cap.isOpened() else (False, None)
                image = _as_bgr(raw) if ok else None
                if image is not None:
                    attempts, delay = 0, self.backoff.initial
                    yield Frame(image=image, source=self.name, index=index, timestamp=self._clock() - start,
                                source_id=self.source_id, meta={"fps": self.fps, "reconnects": self.reconnects})
                    index += 1
                    continue
                if not self.reconnect:
                    self.log.info("%s: ended after %d frames", self.name, index)
                    return
                cap.release()
                while True:
                    if self.max_reconnects is not None and attempts >= self.max_reconnects:
                        raise InputError(
                            f"{self.name}: lost after frame {index - 1} and {attempts} reconnect attempts failed; "
                            "check the device/network, or raise source.max_reconnects"
                        )
                    attempts += 1
                    limit = "∞" if self.max_reconnects is None else str(self.max_reconnects)
                    self.log.warning("%s: read failed after frame %d; reconnect attempt %d/%s in %.1f s",
                                     self.name, index - 1, attempts, limit, delay)
                    self._sleep(delay)
                    if self._closed.is_set():
                        return
                    delay = min(delay * 2.0, self.backoff.max)
                    try:
                        cap = self._factory()
                    except Exception as exc:  # a factory may raise instead of returning a closed capture
                        self.log.warning("%s: reconnect attempt %d raised %s: %s",
                                         self.name, attempts, type(exc).__name__, exc)
                        continue
                    self._cap = cap
                    if cap.isOpened():
                        self.reconnects += 1
                        self.log.info("%s: reconnected (attempt %d)", self.name, attempts)
                        break
                    cap.release()
        finally:
            if self._cap is not None:
                self._cap.release()
            self._cap = None

    def close(self) -> None:
        """Release the capture; a reconnect wait in progress ends at once and the iteration stops."""
        self._closed.set()
        if self._cap is not None:
            self._cap.release()
            self._cap = None


def camera_capture(index: int, width: int | None = None, height: int | None = None,
                   fps: float | None = None) -> CaptureFactory:
    """A factory opening camera *index* with the requested size and rate (the driver may pick others)."""

    def factory() -> Capture:
        cap = cv2.VideoCapture(index)
        if cap.isOpened():
            for prop, value in ((cv2.CAP_PROP_FRAME_WIDTH, width), (cv2.CAP_PROP_FRAME_HEIGHT, height),
                                (cv2.CAP_PROP_FPS, fps)):
                if value is not None:
                    cap.set(prop, float(value))
        return cap

    return factory


def stream_capture(url: str, timeout: float = 10.0) -> CaptureFactory:
    """A factory opening *url* with OpenCV's FFmpeg backend and open/read timeouts."""
    ms = int(timeout * 1000)

    def factory() -> Capture:
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms]
        return cv2.VideoCapture(url, cv2.CAP_FFMPEG, params)

    return factory


class CameraSource(LiveSource):
    """A local camera; see :class:`LiveSource` for the reconnect behaviour."""

    def __init__(self, index: int = 0, *, width: int | None = None, height: int | None = None,
                 fps: float | None = None, capture_factory: CaptureFactory | None = None, **kwargs: Any) -> None:
        super().__init__(
            f"camera:{index}",
            capture_factory or camera_capture(index, width, height, fps),
            open_error=f"camera {index}: cannot be opened; check it is connected and not in use "
            "by another program, or pick another source.index",
            **kwargs,
        )


class StreamSource(LiveSource):
    """A network stream; see :class:`LiveSource` for the reconnect behaviour."""

    def __init__(self, url: str, *, timeout: float = 10.0, capture_factory: CaptureFactory | None = None,
                 **kwargs: Any) -> None:
        name = redact_url(url)
        super().__init__(
            name,
            capture_factory or stream_capture(url, timeout),
            open_error=f"{name}: stream cannot be opened; check source.url, the credentials and the network "
            "(try: ffprobe <url>)",
            **kwargs,
        )


# ==============================================================================================================
# registration
# ==============================================================================================================


def _images(options: ImagesOptions, context: RunContext) -> ImagesSource:
    return ImagesSource(options.path, recursive=options.recursive, max_frames=options.max_frames,
                        base_dir=context.config_dir)


def _video(options: VideoOptions, context: RunContext) -> Source:
    path = context.resolve_path(options.path)
    log = context.logger.getChild("sources")
    common: dict[str, Any] = {"start_frame": options.start_frame, "stride": options.stride,
                              "max_frames": options.max_frames, "max_bad_frames": options.max_bad_frames, "log": log}
    if options.decoder != "opencv":
        from trtapps.gpu.nvdec import open_nvdec_source

        gpu = open_nvdec_source(path, options.decoder, backend=context.backend, device=context.device,
                                worker=options.decode_worker, processes=options.decode_processes, **common)
        if gpu is not None:
            return gpu
    return VideoSource(path, **common)


def _live_kwargs(options: LiveOptions, context: RunContext) -> dict[str, Any]:
    return {
        "reconnect": options.reconnect,
        "backoff": options.backoff,
        "max_reconnects": options.max_reconnects,
        "max_frames": options.max_frames,
        "log": context.logger.getChild("sources"),
    }


def _camera(options: CameraOptions, context: RunContext) -> CameraSource:
    return CameraSource(options.index, width=options.width, height=options.height, fps=options.fps,
                        **_live_kwargs(options, context))


def _stream(options: StreamOptions, context: RunContext) -> StreamSource:
    return StreamSource(options.url, timeout=options.timeout, **_live_kwargs(options, context))


@hookimpl
def trtapps_register_sources(register: Register) -> None:
    register(ComponentSpec("images", ImagesOptions, _images,
                           summary="image files: a file, folder, glob pattern or list (pkg:<package>/<path> too)"))
    register(ComponentSpec("video", VideoOptions, _video,
                           summary="a video file (OpenCV/FFmpeg, or NVDEC on the GPU), with start_frame, stride and "
                           "max_frames"))
    register(ComponentSpec("camera", CameraOptions, _camera,
                           summary="a local camera by index, reconnecting with backoff"))
    register(ComponentSpec("stream", StreamOptions, _stream,
                           summary="an RTSP/HTTP stream URL, reconnecting with backoff"))
