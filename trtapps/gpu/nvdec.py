"""Video decoding on the GPU with NVDEC (PyNvVideoCodec): frames stay in device memory as NV12.

:class:`NvdecSource` is the ``video`` source with ``decoder: nvdec`` (or ``auto`` on a GPU backend). It reads the
file with PyNvVideoCodec's demuxer and decodes each packet with its decoder (``CreateDecoder(...,
usedevicememory=True)``; not ``SimpleDecoder``, which seeks and failed on the last frame of a test clip), on the
pipeline's device. Every frame comes out as ``Frame(image=<CuPy (H * 3 / 2, W) uint8>, pixel_format="nv12")``,
which the preprocessing kernel reads directly: a decoded frame never visits host memory.

Surface lifetime. The decoder's ``Decode(packet)`` returns frames that point into the decoder's own output
buffers, which later ``Decode`` calls overwrite (PyNvVideoCodec keeps a buffer only when it is locked with
``GetLockedFrame``/``UnlockFrame``, and a pipeline holds far more frames than the decoder has buffers). So each
frame is copied at once, with two ``cudaMemcpy2DAsync`` (luma and chroma plane, any source pitch), into a device
buffer this module owns (:class:`DeviceFrameRing`), on the decoder's own stream: the decoder is created with the
device's primary context and a stream of ours, so its output post-processing and our copies are ordered on one
stream. After the copies of one ``Decode`` call a blocking-sync event is recorded and waited for (the thread sleeps;
no spinning), so a yielded frame is complete for work on any stream. A buffer returns to the ring when the last
view of its frame is gone, and is then reused for a later frame. That is safe because whoever drops the last
reference to a frame has finished the GPU work that reads it (the pipeline keeps each frame until its results are
written, i.e. after the batch's final synchronisation; sinks read pixels through synchronous downloads).

Which pictures are frames. Like FFmpeg (so indices and counts equal OpenCV's), pictures outside the container's
presentation are not delivered and get no index: those shown before the first keyframe (undecodable leading
pictures of a cut stream) and, in MP4/MOV files, those past the end of the track's edit list
(:func:`mp4_presentation_end`). ``face_tracker.mp4`` has one of each: 440 packets, 438 frames. Both checks use
the decoded pictures' presentation timestamps (the packets' ``pts``, carried through the decoder).

Every frame is accounted for: indices are continuous in display order. A packet the decoder rejects becomes one
:class:`~trtapps.stages.FrameFailure` at the next index (H.264/HEVC in MP4/MKV carry one picture per packet; with
B-frames the failed picture's display position is approximate); after ``max_bad_frames`` consecutive failures the
video is taken to have ended, as in :class:`~trtapps.sources.VideoSource`. Frames the header promised that never
came are logged and counted in :attr:`NvdecSource.undelivered`, not reported as failures.

Choosing the decoder (:func:`open_nvdec_source`, called by the ``video`` source): ``opencv`` never uses NVDEC;
``nvdec`` uses it or raises a one-line :class:`~trtapps.errors.BackendUnavailableError` saying why; ``auto`` (the
default) uses it when the run's backend keeps tensors on the GPU (:data:`DEVICE_BACKENDS`) and NVDEC can decode the
file, and otherwise falls back to the OpenCV :class:`~trtapps.sources.VideoSource` with exactly one logged reason:
PyNvVideoCodec missing, no GPU, a codec NVDEC does not decode (checked from the demuxer's codec id before decoding,
e.g. MS-MPEG4v3 in ``vtest.avi``), not 8-bit 4:2:0, or the first frames failing to decode (a trial decode when the
source is built, whose frames are kept and delivered first).
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import math
import struct
import threading
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import cv2

from trtapps.errors import BackendUnavailableError, InputError, error_line
from trtapps.sources import VideoWindow
from trtapps.stages import FrameFailure
from trtapps.structures import Frame

logger = logging.getLogger("trtapps.gpu.nvdec")

#: backends whose runner keeps tensors on the GPU: ``decoder: auto`` picks NVDEC only for these
DEVICE_BACKENDS = frozenset({"tensorrt", "onnxruntime_cuda"})
#: PyNvVideoCodec codec ids (``cudaVideoCodec`` names) NVDEC decodes; the demuxer reports anything else (MS-MPEG4,
#: ProRes, …) as ``NumCodecs``. Whether this GPU's NVDEC has the codec is settled by the trial decode.
NVDEC_CODECS = frozenset({"MPEG1", "MPEG2", "MPEG4", "VC1", "H264", "HEVC", "VP8", "VP9", "AV1"})
#: packets decoded when the source is built to prove NVDEC handles the file (B-frame reordering delays output)
PROBE_PACKETS = 64
#: packet timestamps waiting for their picture beyond which pictures are taken not to carry them
_MAX_UNMATCHED_PTS = 256


class NvdecUnavailable(Exception):
    """NVDEC cannot decode this file here; the message is one line saying why."""


def import_pynvvideocodec() -> Any:
    """The ``PyNvVideoCodec`` module.

    Raises:
        NvdecUnavailable: not installed, or its import fails (no NVIDIA driver, driver too old).
    """
    try:
        import PyNvVideoCodec
    except ImportError as exc:
        raise NvdecUnavailable(f"PyNvVideoCodec is not installed (pip install pynvvideocodec; {exc})") from None
    except Exception as exc:  # it imports the driver's video libraries at import time and raises RuntimeError
        raise NvdecUnavailable(f"PyNvVideoCodec cannot be imported ({error_line(exc)})") from None
    return PyNvVideoCodec


def check_device(device: int) -> None:
    """Raises :class:`NvdecUnavailable` unless CUDA device *device* can be used."""
    from trtapps.gpu.device import gpu_reason

    reason = gpu_reason()
    if reason is not None:
        raise NvdecUnavailable(reason)
    import cupy

    count = int(cupy.cuda.runtime.getDeviceCount())
    if not 0 <= device < count:
        raise NvdecUnavailable(f"CUDA device {device} does not exist (this machine has {count})")


def enum_name(value: Any) -> str:
    """``"H264"`` for ``cudaVideoCodec.H264`` (pybind11 enums: ``.name``, or the text after the last dot)."""
    name = getattr(value, "name", None)
    return str(name if isinstance(name, str) else value).rsplit(".", 1)[-1]


def fourcc_text(value: float) -> str:
    """OpenCV's ``CAP_PROP_FOURCC`` as text (``"MP43"``), or ``"?"``."""
    try:
        code = int(value)
    except (TypeError, ValueError):
        return "?"
    text = "".join(chr((code >> (8 * i)) & 0xFF) for i in range(4))
    return text if code > 0 and text.isprintable() else "?"


# ==============================================================================================================
# MP4 edit lists
# ==============================================================================================================

_MAX_MOOV_BYTES = 64 << 20
_MAX_TOP_BOXES = 4096


def _boxes(data: bytes, start: int, end: int) -> Iterator[tuple[str, int, int]]:
    """``(type, payload start, box end)`` of the ISO-BMFF boxes in ``data[start:end]``."""
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, pos)
        header = 8
        if size == 1:
            if pos + 16 > end:
                return
            size, header = struct.unpack_from(">Q", data, pos + 8)[0], 16
        elif size == 0:
            size = end - pos
        if size < header or pos + size > end:
            return
        yield kind.decode("latin-1"), pos + header, pos + size
        pos += size


def _read_moov(path: Path) -> bytes | None:
    """The ``moov`` box of an MP4/MOV file (read with seeks over the media data), or ``None``."""
    with path.open("rb") as f:
        f.seek(0, 2)
        total = f.tell()
        pos = 0
        for _ in range(_MAX_TOP_BOXES):
            if pos + 8 > total:
                return None
            f.seek(pos)
            head = f.read(16)
            if len(head) < 8:
                return None
            size, kind = struct.unpack_from(">I4s", head, 0)
            header = 8
            if size == 1 and len(head) >= 16:
                size, header = struct.unpack_from(">Q", head, 8)[0], 16
            elif size == 0:
                size = total - pos
            if size < header:
                return None
            if kind == b"moov":
                if size > _MAX_MOOV_BYTES:
                    return None
                f.seek(pos)
                data = f.read(size)
                return data if len(data) == size else None
            pos += size
    return None


def _timescale(data: bytes, start: int) -> int:
    """The timescale of an ``mvhd`` or ``mdhd`` payload (version 0 or 1)."""
    offset = 20 if data[start] == 1 else 12
    return int(struct.unpack_from(">I", data, start + offset)[0])


def mp4_presentation_end(path: str | Path) -> int | None:
    """Where the first video track of an MP4/MOV file stops being presented, in its media timescale.

    FFmpeg's demuxer shifts a track's timestamps by the edit list's ``media_time`` (so presentation starts at 0)
    and drops pictures past the edit's duration; this gives that end, ``segment_duration`` converted from the
    movie timescale to the track's, for the common single-edit case. ``None`` for other containers, files
    without an edit list, several edits or empty edits, and anything unreadable (then no picture is dropped).
    """
    try:
        moov = _read_moov(Path(path))
    except OSError:
        return None
    if moov is None:
        return None
    try:
        return _presentation_end(moov)
    except (struct.error, IndexError, ValueError):
        return None


def _presentation_end(moov: bytes) -> int | None:
    top = next(_boxes(moov, 0, len(moov)), None)
    if top is None or top[0] != "moov":
        return None
    movie_scale = 0
    for kind, start, end in _boxes(moov, top[1], top[2]):
        if kind == "mvhd":
            movie_scale = _timescale(moov, start)
        if kind != "trak":
            continue
        edits: list[tuple[int, int]] = []
        media_scale, handler = 0, ""
        for sub, s_start, s_end in _boxes(moov, start, end):
            if sub == "edts":
                for leaf, l_start, _ in _boxes(moov, s_start, s_end):
                    if leaf == "elst":
                        version, count = moov[l_start], struct.unpack_from(">I", moov, l_start + 4)[0]
                        entry = ">Qq" if version == 1 else ">Ii"
                        step = struct.calcsize(entry) + 4
                        for i in range(count):
                            duration, media_time = struct.unpack_from(entry, moov, l_start + 8 + i * step)
                            edits.append((int(duration), int(media_time)))
            elif sub == "mdia":
                for leaf, l_start, _ in _boxes(moov, s_start, s_end):
                    if leaf == "mdhd":
                        media_scale = _timescale(moov, l_start)
                    elif leaf == "hdlr":
                        handler = moov[l_start + 8 : l_start + 12].decode("latin-1")
        if handler != "vide":
            continue
        if len(edits) != 1 or edits[0][1] < 0 or not movie_scale or not media_scale or edits[0][0] <= 0:
            return None
        return edits[0][0] * media_scale // movie_scale
    return None


# ==============================================================================================================
# decoded surfaces
# ==============================================================================================================


class SurfaceLayout:
    """Where the planes of one decoded NV12 surface are: addresses and row pitches in bytes.

    Attributes:
        width, height: picture size in pixels.
        luma, luma_pitch: address and row pitch of the ``height`` luma rows (``width`` bytes each).
        chroma, chroma_pitch: address and row pitch of the ``height / 2`` interleaved U, V rows (``width`` bytes).
    """

    __slots__ = ("chroma", "chroma_pitch", "height", "luma", "luma_pitch", "width")

    def __init__(self, width: int, height: int, luma: int, luma_pitch: int, chroma: int, chroma_pitch: int) -> None:
        self.width, self.height = width, height
        self.luma, self.luma_pitch = luma, luma_pitch
        self.chroma, self.chroma_pitch = chroma, chroma_pitch

    @property
    def contiguous(self) -> bool:
        """The chroma rows follow the luma rows directly at the same pitch (one 2-D copy moves both planes)."""
        return self.chroma == self.luma + self.height * self.luma_pitch and self.chroma_pitch == self.luma_pitch

    def __repr__(self) -> str:
        return (
            f"SurfaceLayout({self.width}x{self.height}, luma {self.luma:#x} pitch {self.luma_pitch}, "
            f"chroma {self.chroma:#x} pitch {self.chroma_pitch})"
        )


def _pitch(interface: Mapping[str, Any]) -> int:
    """Bytes between rows of a uint8 CUDA array interface (``strides`` is ``None`` for C-contiguous arrays)."""
    shape = [int(v) for v in interface["shape"]]
    strides = interface.get("strides")
    if strides:
        return int(strides[0])
    return math.prod(shape[1:])


def nv12_layout(interfaces: Sequence[Mapping[str, Any]]) -> SurfaceLayout:
    """The :class:`SurfaceLayout` of an NV12 surface from its ``__cuda_array_interface__`` dictionaries.

    PyNvVideoCodec describes a surface either as two planes, luma ``(H, W[, 1])`` and chroma
    ``(H / 2, W / 2, 2)`` or ``(H / 2, W)``, or as one ``(H * 3 / 2, W)`` array (chroma rows right after the luma
    rows). Strides may be absent (contiguous) or give a pitch larger than the width.

    Raises:
        ValueError: not uint8, or shapes that are not NV12.
    """
    if not interfaces:
        raise ValueError("the decoded frame has no planes")
    for interface in interfaces:
        if str(interface.get("typestr", "|u1")) not in ("|u1", "<u1", ">u1"):
            raise ValueError(f"decoded planes must be uint8, got typestr {interface.get('typestr')!r}")
    first = interfaces[0]
    shape = [int(v) for v in first["shape"]]
    luma = int(first["data"][0])
    pitch = _pitch(first)
    if len(interfaces) == 1:
        if len(shape) != 2 or shape[0] % 3 or shape[1] % 2:
            raise ValueError(f"a one-plane NV12 surface must be (H * 3 / 2, W), got shape {tuple(shape)}")
        height, width = shape[0] * 2 // 3, shape[1]
        return SurfaceLayout(width, height, luma, pitch, luma + height * pitch, pitch)
    if len(shape) not in (2, 3) or (len(shape) == 3 and shape[2] != 1):
        raise ValueError(f"the luma plane must be (H, W) or (H, W, 1), got shape {tuple(shape)}")
    height, width = shape[0], shape[1]
    second = interfaces[1]
    chroma_shape = [int(v) for v in second["shape"]]
    expected = ([height // 2, width // 2, 2], [height // 2, width])
    if height % 2 or width % 2 or chroma_shape not in expected:
        raise ValueError(
            f"not an NV12 surface: luma {tuple(shape)}, chroma {tuple(chroma_shape)} "
            f"(expected ({height // 2}, {width // 2}, 2))"
        )
    return SurfaceLayout(width, height, luma, pitch, int(second["data"][0]), _pitch(second))


#: format values already checked to be NV12 (the check runs once per value, not once per picture)
_NV12_FORMATS: set[Any] = set()


def _known_nv12(fmt: Any) -> bool:
    try:
        return fmt in _NV12_FORMATS
    except TypeError:  # an unhashable stand-in: checked every time
        return False


def surface_layout(frame: Any) -> SurfaceLayout:
    """The layout of a PyNvVideoCodec ``DecodedFrame`` (through ``frame.cuda()``, its planes' CUDA array
    interfaces, or the frame's own interface).

    Raises:
        ValueError: the frame is not an NV12 surface in device memory.
    """
    fmt = getattr(frame, "format", None)
    if fmt is not None and not _known_nv12(fmt):
        if enum_name(fmt).upper() != "NV12":
            raise ValueError(f"the decoder produced {enum_name(fmt)} surfaces; only 8-bit 4:2:0 (NV12) is supported")
        with contextlib.suppress(TypeError):
            _NV12_FORMATS.add(fmt)
    views = frame.cuda() if callable(getattr(frame, "cuda", None)) else [frame]
    if not isinstance(views, (list, tuple)):
        views = [views]
    interfaces = []
    for view in views:
        interface = getattr(view, "__cuda_array_interface__", None)
        if interface is None:
            raise ValueError("the decoded frame is not in device memory (no __cuda_array_interface__)")
        interfaces.append(interface)
    return nv12_layout(interfaces)


class LayoutCache:
    """:func:`surface_layout` for one decoder's pictures at a tenth of its cost.

    Reading a picture's planes through ``frame.cuda()`` and its CUDA array interfaces took 9.9 µs per picture on
    the H100's host (``benchmarks/device/surface_costs.py``), about 3 % of a decoding process's CPU per frame.
    The planes' geometry (size, pitches, where the chroma rows start relative to the luma rows) is the same for
    every picture of one shape and strides, so it is read in full once per shape; after that only the luma
    address is asked for (``GetPtrToPlane(0)``, 0.4 µs). Every :data:`CHECK_EVERY`-th picture is read in full
    again and compared; a surface type without ``GetPtrToPlane``, or pictures whose geometry differs from what was
    kept, are read in full from then on.
    """

    CHECK_EVERY = 64

    def __init__(self) -> None:
        self._known: dict[Any, tuple[int, int, int, int, int]] = {}
        self._count = 0
        #: False once the shortcut was found not to hold (every picture is then read in full)
        self.enabled = True

    def layout(self, surface: Any) -> SurfaceLayout:
        plane = getattr(surface, "GetPtrToPlane", None)
        if not self.enabled or not callable(plane):
            return surface_layout(surface)
        key = (getattr(surface, "shape", None), getattr(surface, "strides", None))
        known = self._known.get(key)
        self._count += 1
        if known is not None and self._count % self.CHECK_EVERY:
            width, height, pitch, chroma_offset, chroma_pitch = known
            luma = int(plane(0))
            return SurfaceLayout(width, height, luma, pitch, luma + chroma_offset, chroma_pitch)
        full = surface_layout(surface)
        geometry = (full.width, full.height, full.luma_pitch, full.chroma - full.luma, full.chroma_pitch)
        if int(plane(0)) != full.luma or (known is not None and known != geometry):
            self.enabled = False
        else:
            self._known[key] = geometry
        return full


def surface_pts(surface: Any) -> int | None:
    """The presentation timestamp a decoded picture carries (its packet's ``pts``), or ``None``."""
    value = getattr(surface, "timestamp", None)
    if callable(value):
        value = value()
    if value is None:
        get = getattr(surface, "getPTS", None)
        value = get() if callable(get) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class Lease:
    """Owner of a frame's device memory while the frame uses it: when the last view of the frame dies, the memory
    goes back to where it came from, ``owner._release(key, value)`` (a :class:`DeviceFrameRing` buffer, or a
    worker process's slot: :class:`~trtapps.gpu.nvdec_worker.WorkerSession`)."""

    __slots__ = ("key", "owner", "value")

    def __init__(self, owner: Any, key: Any, value: Any) -> None:
        self.owner, self.key, self.value = owner, key, value

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # at interpreter shutdown the memory is freed with everything else
            self.owner._release(self.key, self.value)


def nv12_view(pointer: int, height: int, width: int, owner: Any, device: int) -> Any:
    """A C-contiguous ``(height * 3 / 2, width)`` uint8 CuPy array over device memory at *pointer* that CuPy does
    not own; *owner* (a :class:`Lease`, a ring) is kept alive as long as the array or any view of it."""
    import cupy

    memory = cupy.cuda.UnownedMemory(pointer, height * 3 // 2 * width, owner, device)
    return cupy.ndarray((height * 3 // 2, width), dtype=cupy.uint8, memptr=cupy.cuda.MemoryPointer(memory, 0))


class FrameRing(Protocol):
    """Where the decoding loop copies each picture: :class:`DeviceFrameRing` in this process,
    :class:`~trtapps.gpu.nvdec_worker.SlabRing` in a worker process."""

    def target(self, height: int, width: int) -> tuple[int, Any]:
        """``(device address, picture)``: where to copy one ``(height * 3 / 2, width)`` NV12 picture, and what the
        decoding loop hands on as that picture once the copy is done (a device array, or a worker's slot)."""
        ...


class DeviceFrameRing:
    """Device buffers of decoded NV12 frames, reused once a frame is no longer referenced.

    :meth:`acquire` hands out a C-contiguous ``(H * 3 / 2, W)`` uint8 CuPy array. Its memory belongs to a buffer
    of this ring; when the array and every view of it have been garbage collected (CPython frees them as soon
    as the last reference goes), the buffer goes back to the ring and the next :meth:`acquire` of that size
    reuses it. The ring grows to the number of frames alive at once (a pipeline's queue and batches in flight)
    and no further; buffers of another size (a resolution change) are kept apart.

    Args:
        device: CUDA device ordinal the buffers live on.
    """

    def __init__(self, device: int = 0) -> None:
        self.device = device
        self._free: dict[tuple[int, int], list[Any]] = {}
        # re-entrant: a garbage collection inside a locked section may run a lease's __del__ in the same thread
        self._lock = threading.RLock()
        self._closed = False
        #: buffers allocated so far
        self.allocated = 0

    def target(self, height: int, width: int) -> tuple[int, Any]:
        """:meth:`acquire`'s array and its device address (the :class:`FrameRing` protocol)."""
        out = self.acquire(height, width)
        return int(out.data.ptr), out

    def acquire(self, height: int, width: int) -> Any:
        """A device array ``(height * 3 / 2, width)`` uint8 for one frame (contents undefined)."""
        import cupy

        key = (int(height), int(width))
        with self._lock:
            free = self._free.get(key)
            buffer = free.pop() if free else None
        with cupy.cuda.Device(self.device):
            if buffer is None:
                buffer = cupy.empty(key[0] * 3 // 2 * key[1], dtype=cupy.uint8)
                with self._lock:
                    self.allocated += 1
            return nv12_view(int(buffer.data.ptr), key[0], key[1], Lease(self, key, buffer), self.device)

    def _release(self, key: tuple[int, int], buffer: Any) -> None:
        with self._lock:
            if not self._closed:
                self._free.setdefault(key, []).append(buffer)

    @property
    def free(self) -> int:
        """Buffers waiting for reuse."""
        with self._lock:
            return sum(len(v) for v in self._free.values())

    def close(self) -> None:
        """Drop the free buffers (frames still alive keep theirs until they die)."""
        with self._lock:
            self._closed = True
            self._free.clear()


# ==============================================================================================================
# one decoding pass over a file
# ==============================================================================================================

#: one decoded picture: (display index, device NV12 array or None when not wanted, error text or None)
DecodeEvent = tuple[int, Any, str | None]


class DecodeLog(Protocol):
    """Where the decoding loop's messages go: a :class:`logging.Logger` in this process, a
    :class:`~trtapps.gpu.nvdec_worker.RemoteLog` in a worker process."""

    def debug(self, msg: str, *args: Any) -> None: ...

    def info(self, msg: str, *args: Any) -> None: ...

    def warning(self, msg: str, *args: Any) -> None: ...


class _DecodeSession:
    """A demuxer + decoder pair reading one file once, yielding :data:`DecodeEvent` in display order."""

    def __init__(
        self,
        nvc: Any,
        path: Path,
        device: int,
        ring: FrameRing,
        wanted: Callable[[int], bool],
        max_bad_frames: int,
        log: DecodeLog,
        presentation_end: int | None = None,
    ) -> None:
        self.path = path
        #: pictures with a pts at or past this are not presented (MP4 edit list), when the timestamps agree
        self.presentation_end = presentation_end
        #: pts of the first keyframe packet: pictures shown before it are undecodable leading pictures
        self.first_key_pts: int | None = None
        #: pictures not delivered because they are outside the presentation
        self.skipped = 0
        self._fed_pts: set[int] = set()  # pts of decoded packets whose picture has not come out yet
        self._pts_trusted = True
        self._pre_key_pts: set[int] = set()  # pts of the packets decoded before the first keyframe
        self.device = device
        self.ring = ring
        self.wanted = wanted
        self.max_bad_frames = max_bad_frames
        self.log = log
        self.next_index = 0
        self.codec = "?"
        self._pending: deque[DecodeEvent] = deque()
        self._layouts = LayoutCache()
        self._decoder: Any = None
        self._demuxer: Any = None
        self._packets: Iterator[Any] | None = None
        self._finished = False
        self._primary: Any = None
        self._nvc = nvc
        self.stream: Any = None
        self._done: Any = None
        try:
            self._cuda_setup()
            self._start()
        except BaseException:
            self.close()
            raise

    def _start(self) -> None:
        nvc, path, device = self._nvc, self.path, self.device
        try:
            self._demuxer = nvc.CreateDemuxer(filename=str(path))
        except Exception as exc:
            raise NvdecUnavailable(f"PyNvVideoCodec's demuxer cannot open the file ({error_line(exc)})") from None
        codec = self._demuxer.GetNvCodecId()
        self.codec = enum_name(codec)
        if self.codec.upper() not in NVDEC_CODECS:
            raise NvdecUnavailable(f"its codec is not one NVDEC decodes (demuxer codec id {self.codec})")
        bit_depth = int(self._demuxer.BitDepth())
        chroma = enum_name(self._demuxer.ChromaFormat())
        if bit_depth != 8 or "420" not in chroma:
            raise NvdecUnavailable(f"{self.codec} {bit_depth}-bit {chroma}: only 8-bit 4:2:0 video decodes to NV12")
        context = self._retain_primary_context()
        try:
            self._decoder = nvc.CreateDecoder(
                gpuid=device, codec=codec, cudacontext=context, cudastream=int(self.stream.ptr), usedevicememory=True
            )
        except Exception as exc:
            raise NvdecUnavailable(f"NVDEC cannot create a {self.codec} decoder ({error_line(exc)})") from None
        self._packets = iter(self._demuxer)

    # -- the CUDA side (separate methods, so the decoding logic can be exercised without a GPU) --------------------
    def _cuda_setup(self) -> None:
        import cupy

        from trtapps.gpu.device import configure_host_wait

        # before this process's first CUDA context: PyNvVideoCodec synchronizes inside Decode, and under CUDA's
        # default a worker process (one context, many cores) spins a core through every such wait
        configure_host_wait(self.device)
        with cupy.cuda.Device(self.device):
            self.stream = cupy.cuda.Stream(non_blocking=True)
            # recorded after each Decode call's copies; block=True: the host sleeps in synchronize(), no spinning
            self._done = cupy.cuda.Event(block=True, disable_timing=True)

    def _on_device(self) -> Any:
        import cupy

        return cupy.cuda.Device(self.device)

    def _wait(self) -> None:
        """Block (sleeping) until the copies enqueued so far on the decoder's stream are done."""
        self._done.record(self.stream)
        self._done.synchronize()

    def _retain_primary_context(self) -> int:
        """The device's primary context (the one CuPy uses), so the decoder can run on a CuPy stream."""
        from cuda.bindings import driver

        from trtapps.gpu import check_cuda

        check_cuda("cuInit", driver.cuInit(0))
        handle = check_cuda("cuDeviceGet", driver.cuDeviceGet(self.device))
        context = check_cuda("cuDevicePrimaryCtxRetain", driver.cuDevicePrimaryCtxRetain(handle))
        self._primary = handle
        return int(context)

    # -- decoding -----------------------------------------------------------------------------------------------
    def prime(self, packets: int) -> None:
        """Decode until the first picture comes out (at most *packets* packets), keeping what was decoded.

        Raises:
            NvdecUnavailable: the first packet fails to decode, or no picture came out.
        """
        for _ in range(packets):
            if self._pending or self._finished:
                break
            self._step(strict=True)
        if not any(error is None for _, _, error in self._pending):
            raise NvdecUnavailable(f"NVDEC decoded no {self.codec} picture from the first {packets} packets")

    def events(self) -> Iterator[DecodeEvent]:
        """Every picture of the file in display order (those decoded by :meth:`prime` first)."""
        bad = 0
        while True:
            while self._pending:
                event = self._pending.popleft()
                bad = bad + 1 if event[2] is not None else 0
                yield event
                if bad > self.max_bad_frames:
                    self.log.warning("%s: %d packets in a row failed to decode; taking the video to have ended",
                                     self.path, bad)
                    return
            if self._finished:
                return
            self._step(strict=False)

    def _step(self, *, strict: bool) -> None:
        """Feed one packet (or the end-of-stream flush) to the decoder and queue what comes out."""
        assert self._packets is not None
        try:
            packet = next(self._packets)
        except StopIteration:
            self._finished = True
            self._flush()
            return
        except Exception as exc:  # a demuxer read error: the readable part has been delivered
            self._finished = True
            self.log.warning("%s: the demuxer failed after frame %d (%s); ending the video",
                             self.path, self.next_index - 1, error_line(exc))
            self._flush()
            return
        try:
            with self.stream:
                surfaces = self._decoder.Decode(packet)
        except Exception as exc:
            if self.first_key_pts is None and not getattr(packet, "key", 0):
                # a picture before the first keyframe (a cut stream): FFmpeg drops it too, it is no frame
                self.skipped += 1
                self.log.debug("%s: packet before the first keyframe failed (%s)", self.path, error_line(exc))
                return
            if strict:
                raise NvdecUnavailable(f"NVDEC failed on the first {self.codec} packets ({error_line(exc)})") from None
            index = self.next_index
            self.next_index += 1
            self._pending.append((index, None, f"{self.path}: frame {index} could not be decoded by NVDEC "
                                  f"({error_line(exc)}); re-encode the file or set source.decoder: opencv"))
            return
        if int(getattr(packet, "bsl", 1) or 0) == 0:  # the demuxer's own end-of-stream packet flushed the decoder
            self._finished = True
        self._note_packet(packet)
        self._take(surfaces, strict=strict)

    def _note_packet(self, packet: Any) -> None:
        """Remember a decoded packet's pts (pictures are matched to it) and where the first keyframe is."""
        pts = getattr(packet, "pts", None)
        if not isinstance(pts, int) or isinstance(pts, bool) or int(getattr(packet, "bsl", 1) or 0) == 0:
            return
        if self._pts_trusted:
            self._fed_pts.add(pts)
            if len(self._fed_pts) > _MAX_UNMATCHED_PTS:  # the pictures do not carry their packets' pts
                self.log.debug("%s: decoded pictures do not carry packet timestamps; presenting every picture",
                               self.path)
                self._pts_trusted = False
                self._fed_pts.clear()
        if self.first_key_pts is not None:
            return
        if not getattr(packet, "key", 0):
            self._pre_key_pts.add(pts)
            return
        self.first_key_pts = pts
        if self.presentation_end is not None and not 0 <= pts < self.presentation_end:
            self.log.debug("%s: first keyframe pts %d outside the edit list's [0, %d): ignoring the edit list",
                           self.path, pts, self.presentation_end)
            self.presentation_end = None

    def _presented(self, surface: Any) -> bool:
        """False for a picture FFmpeg would not show: one decoded before the first keyframe and shown before it
        (its references are missing), or one past the edit list's end. Only pictures carrying the pts of a packet
        fed to the decoder are judged (anything else is presented)."""
        pts = surface_pts(surface)
        if pts is None or not self._pts_trusted or pts not in self._fed_pts:
            return True
        self._fed_pts.discard(pts)
        # decoded before the first keyframe and shown before it: its references are missing
        before_key = self.first_key_pts is not None and pts < self.first_key_pts
        if self.next_index == 0 and before_key and pts in self._pre_key_pts:
            self._pre_key_pts.discard(pts)
            return False
        return self.presentation_end is None or pts < self.presentation_end

    def _flush(self) -> None:
        """End of stream: ask the decoder for the pictures it still holds (reordering delay)."""
        packet_type = getattr(self._nvc, "PacketData", None)
        if packet_type is None:
            return
        try:
            packet = packet_type()
            for field in ("bsl", "bsl_data"):  # an empty packet is the decoder's end-of-stream signal
                with contextlib.suppress(AttributeError, TypeError):
                    setattr(packet, field, 0)
            with self.stream:
                surfaces = self._decoder.Decode(packet)
        except Exception as exc:  # nothing was pending, or the decoder was flushed already
            self.log.debug("%s: end-of-stream flush: %s", self.path, error_line(exc))
            return
        self._take(surfaces, strict=False)

    def _take(self, surfaces: Sequence[Any], *, strict: bool) -> None:
        """Copy the wanted *surfaces* into ring buffers, wait for the copies, and queue their events."""
        if not surfaces:
            return
        events: list[DecodeEvent] = []
        with self._on_device():
            for surface in surfaces:
                if not self._presented(surface):
                    self.skipped += 1
                    continue
                index = self.next_index
                self.next_index += 1
                if not self.wanted(index):
                    events.append((index, None, None))
                    continue
                try:
                    events.append((index, self._copy(surface), None))
                except (ValueError, RuntimeError) as exc:  # CuPy's CUDARuntimeError is a RuntimeError
                    if strict:
                        raise NvdecUnavailable(f"cannot read NVDEC's {self.codec} surfaces ({exc})") from None
                    events.append((index, None, f"{self.path}: frame {index}: {exc}; set source.decoder: opencv"))
            self._wait()
        self._pending.extend(events)

    def _copy(self, surface: Any) -> Any:
        """One decoded surface copied into a ring buffer on the decoder's stream: one 2-D copy when its chroma
        rows follow its luma rows (:attr:`SurfaceLayout.contiguous`), else one per plane."""
        from cupy.cuda import runtime

        layout = self._layouts.layout(surface)
        dst, out = self.ring.target(layout.height, layout.width)
        w, h = layout.width, layout.height
        kind = runtime.memcpyDeviceToDevice
        stream = int(self.stream.ptr)
        if layout.contiguous:
            runtime.memcpy2DAsync(dst, w, layout.luma, layout.luma_pitch, w, h * 3 // 2, kind, stream)
        else:
            runtime.memcpy2DAsync(dst, w, layout.luma, layout.luma_pitch, w, h, kind, stream)
            runtime.memcpy2DAsync(dst + h * w, w, layout.chroma, layout.chroma_pitch, w, h // 2, kind, stream)
        return out

    def close(self, *, destroy: bool = False) -> None:
        """Retire the decoder and demuxer (:func:`retire_decoder`: not destroyed now) with the primary context
        reference they need; with *destroy*, destroy them now (when no other stream is decoding yet)."""
        decoder, demuxer, primary = self._decoder, self._demuxer, self._primary
        self._packets = self._decoder = self._demuxer = self._primary = None
        self._pending.clear()
        if decoder is not None or demuxer is not None or primary is not None:
            if destroy:
                _destroy([(decoder, demuxer, primary)])
            else:
                retire_decoder(decoder, demuxer, primary)


# ==============================================================================================================
# retired decoders
# ==============================================================================================================

#: decoders kept alive after their file ended. Destroying a PyNvVideoCodec decoder holds the GIL for tens of
#: milliseconds (the GIL profile of 16 NVDEC streams on the H100 spent 45 % of its samples there, session 7), which
#: stalls every thread of the pipeline while other streams are still decoding; so a retired decoder is destroyed
#: only when more than this many are kept (the oldest first), or when the process exits.
RETIRED_DECODERS_MAX = 16
_retired: deque[tuple[Any, Any, Any]] = deque()
_retired_lock = threading.Lock()


def retire_decoder(decoder: Any, demuxer: Any, primary: Any) -> None:
    """Keep a finished decoder (and its demuxer, and the primary context handle retained for it) alive for later
    destruction; destroys the oldest ones beyond :data:`RETIRED_DECODERS_MAX`."""
    with _retired_lock:
        _retired.append((decoder, demuxer, primary))
        excess = [_retired.popleft() for _ in range(max(0, len(_retired) - RETIRED_DECODERS_MAX))]
    _destroy(excess)


def destroy_retired_decoders() -> int:
    """Destroy every retired decoder now (at exit, or at a quiet moment of the caller's choosing); returns how
    many there were."""
    with _retired_lock:
        entries = list(_retired)
        _retired.clear()
    count = len(entries)
    _destroy(entries)
    return count


def _destroy(entries: list[tuple[Any, Any, Any]]) -> None:
    """Destroy the decoders and demuxers of *entries* (the list holds their last references), then release the
    primary context references retained for them."""
    primaries = [primary for _, _, primary in entries if primary is not None]
    while entries:
        entries.pop(0)  # oldest first; the popped entry is dropped at once
    for primary in primaries:
        with contextlib.suppress(Exception):  # at exit the driver may be gone already
            from cuda.bindings import driver

            driver.cuDevicePrimaryCtxRelease(primary)


atexit.register(destroy_retired_decoders)


# ==============================================================================================================
# the source
# ==============================================================================================================


#: where a source's decoder runs: ``thread``, the thread that iterates the source, or ``process``, a worker process
#: of its own (:mod:`trtapps.gpu.nvdec_worker`; its own GIL); ``auto`` picks one (:func:`resolve_worker`)
WORKERS = ("auto", "thread", "process")
#: the default of :class:`NvdecSource`'s ``worker`` (and of ``source.decode_worker``)
DEFAULT_WORKER = "auto"


def resolve_worker(worker: str | None) -> tuple[str, str]:
    """``(thread|process, why)`` for a ``decode_worker`` setting (``None``: :data:`DEFAULT_WORKER`).

    ``auto`` is ``process`` when the CUDA MPS control daemon is reachable, else ``thread``. Worker processes decode
    about twice as fast (H100, 8 streams: 6,100-6,200 against 2,000-3,500 fps) because PyNvVideoCodec's ``Decode``
    holds the GIL. Without MPS the GPU time-slices their CUDA contexts with the pipeline's and the 8- and 16-stream
    YOLO pipelines ran only 3 % and 11 % faster than with ``thread``, for ~0.6 GB of GPU memory per worker; under
    MPS they ran at 0.98 of the engine against 0.59-0.67 with ``thread`` (session 9, benchmarks/results/gpu.md).

    Raises:
        ValueError: not one of :data:`WORKERS`.
    """
    from trtapps.gpu.mps import control_pipe

    worker = worker or DEFAULT_WORKER
    if worker not in WORKERS:
        raise ValueError(f"worker must be one of {WORKERS}, got {worker!r}")
    if worker != "auto":
        return worker, f"decode_worker {worker}"
    pipe = control_pipe()
    if pipe is not None:
        return "process", f"decode_worker auto: the CUDA MPS daemon is running ({pipe})"
    return "thread", "decode_worker auto: no CUDA MPS daemon, so worker processes would be time-sliced"


#: videos decoding with NVDEC inside one pipeline's process from which a run is told how to get worker processes
MPS_HINT_STREAMS = 4


def mps_hint(sources: Sequence[Any]) -> str | None:
    """One line of advice when :data:`MPS_HINT_STREAMS` or more videos decode in this process only because no CUDA
    MPS daemon runs (``decode_worker`` left at ``auto``); ``None`` otherwise."""
    inside = [s for s in sources if isinstance(s, NvdecSource) and s.worker == "thread" and s.worker_setting == "auto"]
    if len(inside) < MPS_HINT_STREAMS:
        return None
    return (f"{len(inside)} videos decode with NVDEC in this process, where PyNvVideoCodec holds the GIL; with a "
            "CUDA MPS daemon (cuda_mps: start in the pipeline file, or nvidia-cuda-mps-control -d) decode_worker auto "
            "decodes in worker processes instead (H100, 8-16 streams of YOLOv8n: 0.96 of the engine's rate against "
            "0.70; README, NVDEC)")


#: frames an NVDEC source may queue in the pipeline at least (:class:`~trtapps.stages.Source` ``min_queue``). Its
#: frames wait in GPU memory (1.4 MB each at 720p), and each time its reader blocks on a full queue it is woken
#: only when the queue has drained to half of its share (:class:`~trtapps.batching.Batcher`): with 16 streams and
#: the default queue_size a queue held 8 frames and its reader woke every 4, and the readers' CPU per frame was
#: 1.6-1.8x that of 8 streams (16 frames each) at the same total rate (session 12); with 16 it wakes every 12.
NVDEC_MIN_QUEUE = 16


class NvdecSource(VideoWindow):
    """Frames of a video file decoded by NVDEC into device memory, as NV12 :class:`Frame` objects.

    Same options and frame numbering as :class:`~trtapps.sources.VideoSource` (``Frame.index`` is the frame's
    index in the file; ``timestamp`` is ``index / fps``). See the module docstring for surface lifetime,
    failures and the end of truncated files.

    The file is first probed in this process (a trial decode that proves NVDEC handles it; see
    :func:`open_nvdec_source`). With ``worker="process"`` the probe's decoder is then destroyed and a worker
    process is started at once (so the workers of many sources start together), which decodes the file again
    from the start for the iteration (:mod:`trtapps.gpu.nvdec_worker`); each later iteration starts a new worker.
    With ``worker="thread"`` the iterating thread decodes, beginning with the probe's pictures.

    Args:
        path: the video file.
        start_frame: first frame to deliver.
        stride: deliver every n-th frame from ``start_frame`` on (the others are decoded, not copied).
        max_frames: stop after delivering this many frames (failures included).
        max_bad_frames: consecutive undecodable packets after which the video is taken to have ended.
        source_id: position of this source in a multi-source pipeline.
        device: CUDA device ordinal (the pipeline's).
        log: where warnings go.
        worker: ``"auto"``, ``"process"`` or ``"thread"`` (:data:`WORKERS`, :func:`resolve_worker`); ``None``:
            :data:`DEFAULT_WORKER`.
        processes: with worker processes, how many this device's NVDEC videos share at most
            (:class:`~trtapps.gpu.nvdec_worker.WorkerPool`); ``None``:
            :data:`~trtapps.gpu.nvdec_worker.DECODE_PROCESSES`.

    Raises:
        NvdecUnavailable: NVDEC cannot decode this file here (the message says why, in one line).
        InputError: the file is missing, or ``start_frame`` is past its end.
    """

    min_queue = NVDEC_MIN_QUEUE

    def __init__(
        self,
        path: str | Path,
        *,
        start_frame: int = 0,
        stride: int = 1,
        max_frames: int | None = None,
        max_bad_frames: int = 8,
        source_id: int = 0,
        device: int = 0,
        log: logging.Logger | None = None,
        worker: str | None = None,
        processes: int | None = None,
    ) -> None:
        self._init_window(path, start_frame=start_frame, stride=stride, max_frames=max_frames,
                          max_bad_frames=max_bad_frames, source_id=source_id, log=log or logger)
        self.device = device
        self.worker_setting = worker or DEFAULT_WORKER  # what was asked; self.worker is what runs
        self.worker, why = resolve_worker(worker)
        #: with worker processes: how many this device's videos share at most (the default filled in); else None
        self.processes: int | None = None
        if self.worker == "process":
            from trtapps.gpu.nvdec_worker import DECODE_PROCESSES

            self.processes = processes or DECODE_PROCESSES
        #: seconds this process spent mapping the workers' frame slabs (CUDA IPC)
        self.worker_map_seconds = 0.0
        self._workers: list[Any] = []  # the worker sessions started, until their processes have exited
        if not self.path.is_file():
            raise InputError(f"{self.path}: video file not found; check source.path")
        self._nvc = import_pynvvideocodec()
        check_device(device)
        self.frame_count, self.fps, self.fourcc = _header(self.path)
        past_end = self._past_end()
        if past_end is not None:
            raise past_end
        self.ring = DeviceFrameRing(device)
        self._presentation_end = mp4_presentation_end(self.path)
        probe = self._open_here()
        try:
            probe.prime(PROBE_PACKETS)
        except NvdecUnavailable as exc:
            probe.close()
            raise NvdecUnavailable(f"{exc} (FourCC {self.fourcc})") from None
        self.codec = probe.codec
        self._session: Any = probe
        if self.worker == "process":
            probe.close(destroy=True)  # no other stream decodes yet: destroying it now stalls nobody
            self._session = self._open_worker()
        self.log.info("%s: decoding %s on GPU %d with NVDEC %s (%s)", self.name, self.codec, device,
                      "in a worker process" if self.worker == "process" else "in the reading thread", why)

    def describe(self) -> dict[str, Any]:
        """For the run summary: NVDEC, the codec, where it decoded (and what ``decode_worker`` asked), and the
        frames the header promised that never came (``undelivered``, known at the end)."""
        described = {"decoder": "nvdec", "codec": self.codec, "decode_worker": self.worker,
                     "decode_worker_asked": self.worker_setting, "frames_in_header": self.frame_count,
                     "fps": self.fps, "undelivered": self.undelivered}
        if self.processes is not None:
            described["decode_processes"] = self.processes
        return described

    def _open(self) -> Any:
        return self._open_worker() if self.worker == "process" else self._open_here()

    def _open_here(self) -> _DecodeSession:
        try:
            return _DecodeSession(self._nvc, self.path, self.device, self.ring, self._wanted, self.max_bad_frames,
                                  self.log, self._presentation_end)
        except NvdecUnavailable as exc:
            raise NvdecUnavailable(f"{exc} (FourCC {self.fourcc})") from None

    def _open_worker(self) -> Any:
        from trtapps.gpu import nvdec_worker

        last = None if self.max_frames is None else self.start_frame + self.stride * (self.max_frames - 1)
        job = {"path": str(self.path), "device": self.device, "start_frame": self.start_frame, "stride": self.stride,
               "last_index": last, "max_bad_frames": self.max_bad_frames, "presentation_end": self._presentation_end}
        assert self.processes is not None  # set whenever the source decodes in worker processes
        session = nvdec_worker.WorkerSession(job, self.log, self.name, self.processes)
        self._workers = [w for w in self._workers if w.running()] + [session]
        return session

    def wait_ready(self, timeout: float = 60.0) -> bool:
        """With a worker process: wait until it has started decoding (at most *timeout* s); ``True`` when it has
        or when there is no worker to wait for."""
        session = self._session
        waiter = getattr(session, "wait_ready", None)
        return True if waiter is None else bool(waiter(timeout))

    def workers_alive(self) -> int:
        """Worker processes of this source still running (a worker exits once its video is done and every frame
        it delivered is gone)."""
        self._workers = [w for w in self._workers if w.running()]
        return len(self._workers)

    def __iter__(self) -> Iterator[Frame | FrameFailure]:
        session = self._session if self._session is not None else self._open()
        self._session = None  # a second iteration decodes the file again
        self.undelivered = 0
        delivered = 0
        last = -1
        try:
            for index, image, error in session.events():
                last = index
                if not self._wanted(index):
                    continue
                if self.max_frames is not None and delivered >= self.max_frames:
                    break
                delivered += 1
                if error is not None:
                    yield FrameFailure(source=self.name, index=index, error=error, source_id=self.source_id)
                    continue
                yield Frame(
                    image=image,
                    source=self.name,
                    index=index,
                    timestamp=index / self.fps if self.fps else None,
                    source_id=self.source_id,
                    meta={"fps": self.fps, "frame_count": self.frame_count, "decoder": "nvdec"},
                    pixel_format="nv12",
                )
                if self.max_frames is not None and delivered >= self.max_frames:
                    break
            else:
                promised = self.frame_count - session.skipped  # the header counts the skipped pictures too
                if self.frame_count and last + 1 < promised:
                    self.undelivered = promised - (last + 1)
                    self.log.warning("%s: the header promises %d frames, NVDEC delivered %d; %d never came",
                                     self.name, promised, last + 1, self.undelivered)
        finally:
            if session.skipped:
                self.log.info("%s: %d decoded pictures lie outside the presentation (before the first keyframe or "
                              "past the edit list) and were skipped, as FFmpeg does", self.name, session.skipped)
            self.worker_map_seconds += float(getattr(session, "map_seconds", 0.0))
            session.close()

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None
        self.ring.close()
        for worker in self._workers:
            worker.reap()


def _header(path: Path) -> tuple[int, float | None, str]:
    """Frame count, frame rate and FourCC from the container header (OpenCV's FFmpeg backend)."""
    cap = cv2.VideoCapture(str(path))
    try:
        count = cap.get(cv2.CAP_PROP_FRAME_COUNT) if cap.isOpened() else 0.0
        fps = cap.get(cv2.CAP_PROP_FPS) if cap.isOpened() else 0.0
        fourcc = fourcc_text(cap.get(cv2.CAP_PROP_FOURCC)) if cap.isOpened() else "?"
    finally:
        cap.release()
    frames = int(count) if math.isfinite(count) and count > 0 else 0
    rate = float(fps) if math.isfinite(fps) and 0 < fps < 1000 else None
    return frames, rate, fourcc


# ==============================================================================================================
# decoder choice of the video source
# ==============================================================================================================

DECODERS = ("auto", "opencv", "nvdec")


def open_nvdec_source(
    path: str | Path,
    decoder: str,
    *,
    backend: str | None,
    device: int = 0,
    log: logging.Logger | None = None,
    **options: Any,
) -> NvdecSource | None:
    """The NVDEC source for ``source.decoder`` *decoder*, or ``None`` when the OpenCV source should read the file.

    Args:
        path: the video file.
        decoder: ``"auto"``, ``"opencv"`` or ``"nvdec"``.
        backend: the run's resolved backend name (``auto`` uses NVDEC only for :data:`DEVICE_BACKENDS`).
        device: the pipeline's CUDA device.
        log: where the one fallback reason is logged.
        options: :class:`NvdecSource` keywords (``start_frame``, ``stride``, ``max_frames``, ``max_bad_frames``,
            ``source_id``, ``worker``).

    Raises:
        BackendUnavailableError: ``decoder == "nvdec"`` and NVDEC cannot decode the file here.
        InputError: ``start_frame`` past the end (NVDEC path).
    """
    log = log or logger
    if decoder not in DECODERS:
        raise ValueError(f"decoder must be one of {DECODERS}, got {decoder!r}")
    path = Path(path)
    if decoder == "opencv" or not path.is_file() or path.stat().st_size == 0:
        return None  # the OpenCV source reads it, or reports the missing/empty file in its own words
    if decoder == "auto" and backend not in DEVICE_BACKENDS:
        log.info("%s: decoder auto reads with OpenCV: backend %s keeps frames on the host", path, backend or "?")
        return None
    try:
        return NvdecSource(path, device=device, log=log, **options)
    except NvdecUnavailable as exc:
        if decoder == "nvdec":
            raise BackendUnavailableError(
                f"{path}: source.decoder nvdec cannot decode it: {exc}; set source.decoder: auto (falls back to "
                "OpenCV) or opencv"
            ) from None
        log.warning("%s: decoder auto falls back to OpenCV: %s", path, exc)
        return None
