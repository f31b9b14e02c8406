"""A scripted PyNvVideoCodec and the NVDEC decoding loop with its CUDA calls stubbed, for tests without a GPU
(tests/unit/test_nv12_reference.py, tests/unit/test_nvdec_worker.py)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

import trtapps.gpu.nvdec as nvdec


def tiny_clip(path: Path, frames: int = 5) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (64, 48))
    for i in range(frames):
        writer.write(np.full((48, 64, 3), (40 * i) % 256, np.uint8))
    writer.release()
    return path


class Packet:
    def __init__(self, pts: int, key: bool = False, bsl: int = 100, fail: bool = False) -> None:
        self.pts, self.key, self.bsl, self.fail = pts, int(key), bsl, fail


class Picture:
    """A decoded picture: NV12 format, its packet's pts."""

    def __init__(self, pts: int) -> None:
        self.timestamp = pts
        self.format = "Pixel_Format.NV12"


class FakeDecoder:
    """Returns pictures in pts order with a two-picture reordering delay, everything left on a flush packet.

    ``stamp`` maps a packet's pts to the timestamp its picture carries (the identity, as PyNvVideoCodec does)."""

    def __init__(self, stamp: Any = None) -> None:
        self.held: list[int] = []
        self.flushes = 0
        self.stamp = stamp or (lambda pts: pts)

    def Decode(self, packet: Packet) -> list[Picture]:
        if packet.bsl == 0:
            self.flushes += 1
            out, self.held = sorted(self.held), []
            return [Picture(self.stamp(p)) for p in out]
        if packet.fail:
            raise RuntimeError("PyNvVCExceptionDecode: bad slice")
        self.held.append(packet.pts)
        if len(self.held) <= 2:
            return []
        self.held.sort()
        return [Picture(self.stamp(self.held.pop(0)))]


class FakeDemuxer:
    def __init__(self, packets: list[Packet], codec: str, bit_depth: int, eos_packet: bool) -> None:
        self.packets, self.codec, self.bit_depth, self.eos_packet = packets, codec, bit_depth, eos_packet

    def GetNvCodecId(self) -> str:
        return f"cudaVideoCodec.{self.codec}"

    def BitDepth(self) -> int:
        return self.bit_depth

    def ChromaFormat(self) -> str:
        return "cudaVideoChromaFormat.YUV420"

    def __iter__(self) -> Any:
        yield from self.packets
        if self.eos_packet:
            yield Packet(-1, bsl=0)


class FakeNvc:
    """The part of the PyNvVideoCodec module the source uses."""

    def __init__(self, packets: list[Packet], codec: str = "H264", bit_depth: int = 8, eos_packet: bool = False,
                 stamp: Any = None):
        self.packets, self.codec, self.bit_depth, self.eos_packet = packets, codec, bit_depth, eos_packet
        self.stamp = stamp
        self.decoders: list[FakeDecoder] = []

    def CreateDemuxer(self, filename: str) -> FakeDemuxer:
        return FakeDemuxer(self.packets, self.codec, self.bit_depth, self.eos_packet)

    def CreateDecoder(self, **kwargs: Any) -> FakeDecoder:
        assert kwargs["usedevicememory"] is True
        self.decoders.append(FakeDecoder(self.stamp))
        return self.decoders[-1]

    @staticmethod
    def PacketData() -> Packet:
        return Packet(-1, bsl=0)


class FakeStream:
    ptr = 1234

    def __enter__(self) -> FakeStream:
        return self

    def __exit__(self, *args: object) -> None:
        return None


class CpuSession(nvdec._DecodeSession):
    """The decoding loop as it is, with the GPU calls replaced: a "copy" is a tiny NV12 array holding the pts."""

    copies = 0

    def _cuda_setup(self) -> None:
        self.stream = FakeStream()

    def _on_device(self) -> Any:

        return contextlib.nullcontext()

    def _wait(self) -> None:
        return None

    def _retain_primary_context(self) -> int:
        return 0

    def _copy(self, surface: Any) -> np.ndarray:
        CpuSession.copies += 1
        return np.full((6, 4), surface.timestamp % 256, np.uint8)


def make_packets(n: int, *, fail: tuple[int, ...] = (), keys: tuple[int, ...] = (0,)) -> list[Packet]:
    return [Packet(pts=i, key=i in keys, fail=i in fail) for i in range(n)]


def install_fake_nvdec(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    """Install a scripted PyNvVideoCodec (decoding in the reading thread); returns
    ``make(packets, **nvc) -> (clip path, fake module)``."""
    monkeypatch.setattr(nvdec, "check_device", lambda device: None)
    monkeypatch.setattr(nvdec, "_DecodeSession", CpuSession)
    monkeypatch.setattr(nvdec, "mp4_presentation_end", lambda path: None)
    monkeypatch.setattr(nvdec, "DEFAULT_WORKER", "thread")
    CpuSession.copies = 0

    def make(packets: list[Packet], frames_in_header: int = 0, **kwargs: Any) -> tuple[Path, FakeNvc]:
        fake = FakeNvc(packets, **kwargs)
        monkeypatch.setattr(nvdec, "import_pynvvideocodec", lambda: fake)
        clip = tiny_clip(tmp_path / "clip.mp4", frames_in_header) if frames_in_header else tmp_path / "clip.bin"
        if not frames_in_header:
            clip.write_bytes(b"\0" * 64)
        return clip, fake

    return make
