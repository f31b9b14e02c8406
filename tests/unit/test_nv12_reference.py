"""NV12 on the CPU: the NumPy references of the NV12 kernels, and the NVDEC source's decisions without a GPU.

* :func:`nv12_to_bgr_reference` (the kernels' fixed-point BT.601 arithmetic) equals
  ``cv2.cvtColor(..., COLOR_YUV2BGR_NV12)`` on random frames, on real pictures and on every (U, V) pair;
  :func:`bgr_to_nv12` makes the NV12 layout a decoder produces from OpenCV's I420.
* :func:`preprocess_reference` with ``pixel_formats`` is the BGR path on the converted picture, crops included,
  and its fixed-point NV12 path equals the cv2 one; :func:`pack_preprocess_params` stores the format and the
  chroma plane address, and a NumPy emulation of the kernel reading a pitched decoder surface (chroma after
  padding rows) and a pitched BGR image through those parameters equals the reference.
* The NVDEC source's surface layout parsing (PyNvVideoCodec's two-plane and one-plane descriptions, padded pitches)
  and its decoder choice: ``opencv`` and ``auto`` on a host backend never touch NVDEC, ``auto`` falls back to
  OpenCV with exactly one logged reason when PyNvVideoCodec is missing or cannot decode the file, ``nvdec`` fails
  with a one-line error.
* The decoding loop of :class:`~trtapps.gpu.nvdec.NvdecSource` driven by a scripted PyNvVideoCodec (reordering
  delay, end-of-stream flush, undecodable packets, a picture before the first keyframe, an MP4 edit list), with
  only the CUDA calls stubbed: indices continuous, failures in place, start/stride/max_frames like OpenCV's.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from pydantic import ValidationError

import trtapps.gpu.nvdec as nvdec
from conftest import shared_path
from nvdec_fakes import CpuSession, Packet, install_fake_nvdec, make_packets, tiny_clip  # tests/nvdec_fakes.py
from trtapps.context import RunContext
from trtapps.errors import BackendUnavailableError, InputError
from trtapps.gpu.nvdec import (
    LayoutCache,
    NvdecUnavailable,
    enum_name,
    fourcc_text,
    nv12_layout,
    open_nvdec_source,
    surface_layout,
)
from trtapps.ops.letterbox import LetterboxTransform
from trtapps.ops.preprocess import (
    PARAMS_PER_IMAGE,
    PIXEL_FORMAT_CODES,
    bgr_to_nv12,
    check_geometry,
    image_size,
    nv12_size,
    nv12_to_bgr_reference,
    pack_preprocess_params,
    preprocess_reference,
    resize_coefficients,
    rois_from_letterbox,
)
from trtapps.sources import VideoOptions, VideoSource, trtapps_register_sources
from trtapps.stages import FrameFailure


def _read(name: str) -> np.ndarray:
    image = cv2.imread(str(shared_path(f"media/{name}")))
    assert image is not None
    return image


def _random_nv12(seed: int, height: int, width: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height * 3 // 2, width), dtype=np.uint8)


# -- colour conversion ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [(2, 2), (4, 6), (10, 2), (48, 34), (720, 1280), (1080, 1920)])
def test_nv12_reference_equals_opencv_on_random_frames(size: tuple[int, int]) -> None:
    nv12 = _random_nv12(sum(size), *size)
    expected = cv2.cvtColor(nv12, cv2.COLOR_YUV2BGR_NV12)
    got = nv12_to_bgr_reference(nv12)
    assert got.shape == (*size, 3)
    np.testing.assert_array_equal(got, expected)


def test_nv12_reference_equals_opencv_on_every_chroma_pair() -> None:
    # a 512 x 512 picture whose 256 x 256 chroma blocks hold every (U, V) pair once, with random luma: every
    # clamp of the formula (both ends, all three channels) is reached
    h = w = 512
    u, v = np.meshgrid(np.arange(256, dtype=np.uint8), np.arange(256, dtype=np.uint8), indexing="ij")
    nv12 = np.empty((h * 3 // 2, w), np.uint8)
    nv12[:h] = np.random.default_rng(3).integers(0, 256, (h, w), dtype=np.uint8)
    chroma = nv12[h:].reshape(h // 2, w // 2, 2)
    chroma[..., 0], chroma[..., 1] = u, v
    expected = cv2.cvtColor(nv12, cv2.COLOR_YUV2BGR_NV12)
    np.testing.assert_array_equal(nv12_to_bgr_reference(nv12), expected)
    assert expected.min() == 0
    assert expected.max() == 255


def test_bgr_to_nv12_is_opencvs_i420_with_interleaved_chroma() -> None:
    image = _read("zidane.jpg")
    h, w = image.shape[:2]
    nv12 = bgr_to_nv12(image)
    i420 = cv2.cvtColor(image, cv2.COLOR_BGR2YUV_I420)
    assert nv12.shape == (h * 3 // 2, w)
    np.testing.assert_array_equal(nv12[:h], i420[:h])
    quarter = (h // 2) * (w // 2)
    chroma = nv12[h:].reshape(h // 2, w // 2, 2)
    np.testing.assert_array_equal(chroma[..., 0].reshape(-1), i420[h:].reshape(-1)[:quarter])
    np.testing.assert_array_equal(chroma[..., 1].reshape(-1), i420[h:].reshape(-1)[quarter:])
    # the round trip is a real picture again (4:2:0 subsampling and limited range cost a few levels)
    back = nv12_to_bgr_reference(nv12)
    np.testing.assert_array_equal(back, cv2.cvtColor(nv12, cv2.COLOR_YUV2BGR_NV12))
    assert np.abs(back.astype(int) - image.astype(int)).mean() < 4.0


def test_nv12_shapes_are_checked() -> None:
    assert nv12_size((1620, 1920)) == (1080, 1920)
    assert image_size(np.zeros((6, 4), np.uint8), "nv12") == (4, 4)
    assert image_size(np.zeros((5, 7, 3), np.uint8)) == (5, 7)
    for bad in [(1621, 1920), (1620, 1921), (8, 4), (1620,), (1620, 1920, 1)]:
        with pytest.raises(ValueError, match="NV12"):
            nv12_size(bad)
    with pytest.raises(ValueError, match="pixel format"):
        image_size(np.zeros((6, 4), np.uint8), "yuyv")
    with pytest.raises(ValueError, match="even"):
        bgr_to_nv12(np.zeros((5, 4, 3), np.uint8))


# -- the preprocessing reference --------------------------------------------------------------------------------------

YOLO: dict[str, Any] = {"pad_value": 114, "swap_rb": True, "std": 255.0}


def test_preprocess_reference_nv12_is_the_bgr_path_on_the_converted_picture() -> None:
    nv12 = [_random_nv12(1, 720, 1280), bgr_to_nv12(_read("bus.jpg"))]
    bgr = [cv2.cvtColor(n, cv2.COLOR_YUV2BGR_NV12) for n in nv12]
    extra = np.random.default_rng(2).integers(0, 256, (333, 517, 3), dtype=np.uint8)
    images: list[np.ndarray] = [nv12[0], extra, nv12[1]]
    formats = ["nv12", "bgr", "nv12"]
    sizes = [image_size(im, f) for im, f in zip(images, formats)]
    rois = rois_from_letterbox([LetterboxTransform.compute(s, (640, 640)) for s in sizes])
    got = preprocess_reference(images, (640, 640), rois, pixel_formats=formats, **YOLO)
    expected = preprocess_reference([bgr[0], extra, bgr[1]], (640, 640), rois, **YOLO)
    np.testing.assert_array_equal(got, expected)
    fixed = preprocess_reference(images, (640, 640), rois, pixel_formats=formats, resize="fixed_point", **YOLO)
    np.testing.assert_array_equal(fixed, expected)


def test_preprocess_reference_nv12_crops_are_picture_rectangles() -> None:
    nv12 = _random_nv12(4, 240, 320)
    bgr = cv2.cvtColor(nv12, cv2.COLOR_YUV2BGR_NV12)
    rects = np.array([[17, 9, 101, 77], [0, 1, 320, 239], [301, 200, 19, 40]])  # odd offsets and sizes
    rois = np.array([[0, 0, 64, 128]] * 3)
    got = preprocess_reference([nv12] * 3, (128, 64), rois, src_rects=rects, pixel_formats=["nv12"] * 3)
    expected = preprocess_reference([bgr] * 3, (128, 64), rois, src_rects=rects)
    np.testing.assert_array_equal(got, expected)


def test_preprocess_reference_rejects_bad_formats() -> None:
    nv12 = _random_nv12(5, 4, 4)
    rois = [[0, 0, 4, 4]]
    with pytest.raises(ValueError, match="pixel formats for 1 images"):
        preprocess_reference([nv12], (4, 4), rois, pixel_formats=["nv12", "bgr"])
    with pytest.raises(ValueError, match="pixel_formats\\[0\\]"):
        preprocess_reference([nv12], (4, 4), rois, pixel_formats=["i420"])
    with pytest.raises(ValueError, match="NV12"):
        preprocess_reference([nv12[:-1]], (4, 4), rois, pixel_formats=["nv12"])


def test_packed_params_carry_format_and_chroma_plane() -> None:
    sizes = [(720, 1280), (480, 640)]
    rois, rects = check_geometry(sizes, (640, 640), [[0, 140, 640, 360], [0, 80, 640, 480]])
    luma = [0x7F0000000000, 0x7F0000100000]
    chroma = [luma[0] + 720 * 1536, 0]
    params = pack_preprocess_params(luma, [1536, 640 * 3], rois, rects, ["nv12", "bgr"], chroma)
    assert params.shape == (2, PARAMS_PER_IMAGE) == (2, 14)
    assert list(params[:, 12]) == [PIXEL_FORMAT_CODES["nv12"], PIXEL_FORMAT_CODES["bgr"]] == [1, 0]
    assert list(params[:, 13].view(np.uint64)) == [luma[0] + 720 * 1536, 0]
    assert list(params[:, 1]) == [1536, 1920]
    plain = pack_preprocess_params(luma, [1536, 1920], rois, rects)
    np.testing.assert_array_equal(plain[:, :12], params[:, :12])
    assert list(plain[:, 12:].reshape(-1)) == [0, 0, 0, 0]
    with pytest.raises(ValueError, match="chroma"):
        pack_preprocess_params(luma, [1536, 1920], rois, rects, ["nv12", "bgr"])
    with pytest.raises(ValueError, match="unknown pixel format"):
        pack_preprocess_params(luma, [1536, 1920], rois, rects, ["rgb", "bgr"], chroma)


def _fetch(memory: np.ndarray, p: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """B, G, R of source pixels (crop-relative columns *xs*, rows *ys*) read as preprocess.cu reads them."""
    ptr, pitch, nv12, chroma = int(p[0]), int(p[1]), int(p[12]) == 1, int(p[13:14].view(np.uint64)[0])
    xx, yy = (int(p[2]) + xs)[None, :], (int(p[3]) + ys)[:, None]
    if not nv12:
        return np.stack([memory[ptr + yy * pitch + xx * 3 + c] for c in range(3)], -1).astype(np.int64)
    luma = memory[ptr + yy * pitch + xx].astype(np.int64)
    u = memory[chroma + (yy >> 1) * pitch + (xx >> 1) * 2].astype(np.int64) - 128
    v = memory[chroma + (yy >> 1) * pitch + (xx >> 1) * 2 + 1].astype(np.int64) - 128
    base = np.maximum(luma - 16, 0) * 1220542 + (1 << 19)
    bgr = [(base + 2116026 * u) >> 20, (base - 852492 * v - 409993 * u) >> 20, (base + 1673527 * v) >> 20]
    return np.clip(np.stack(bgr, -1), 0, 255)


def _emulate_kernel_on_memory(memory: np.ndarray, params: np.ndarray, out_size: tuple[int, int]) -> np.ndarray:
    """preprocess.cu's arithmetic (raw pixel values, pad 114), reading every pixel through the packed parameters'
    addresses, pitches, crop offsets, format codes and chroma plane addresses from one flat "device memory"."""
    out_h, out_w = out_size
    out = np.full((len(params), 3, out_h, out_w), 114, np.float32)
    for b, p in enumerate(params):
        crop_w, crop_h = int(p[4]), int(p[5])
        roi_x, roi_y, roi_w, roi_h = (int(v) for v in p[6:10])
        y0, y1, b0, b1 = resize_coefficients(crop_h, roi_h, clamp=False)
        x0, x1, a0, a1 = resize_coefficients(crop_w, roi_w, clamp=True)
        h0 = _fetch(memory, p, x0, y0) * a0[None, :, None] + _fetch(memory, p, x1, y0) * a1[None, :, None]
        h1 = _fetch(memory, p, x0, y1) * a0[None, :, None] + _fetch(memory, p, x1, y1) * a1[None, :, None]
        value = (((b0[:, None, None] * (h0 >> 4)) >> 16) + ((b1[:, None, None] * (h1 >> 4)) >> 16) + 2) >> 2
        region = np.clip(value, 0, 255).astype(np.float32).transpose(2, 0, 1)
        out[b, :, roi_y : roi_y + roi_h, roi_x : roi_x + roi_w] = region
    return out


def test_kernel_addressing_of_pitched_nv12_surfaces_and_crops() -> None:
    # one flat memory: a 720p NV12 surface with 1536-byte rows and its chroma plane after 16 padding rows (as a
    # decoder surface), then a pitched BGR image
    nv12 = bgr_to_nv12(_read("zidane.jpg"))
    bgr = np.random.default_rng(9).integers(0, 256, (211, 333, 3), dtype=np.uint8)
    memory = np.random.default_rng(10).integers(0, 256, 4_000_000, dtype=np.uint8)  # garbage around the images
    luma_at, pitch, chroma_at, bgr_at, bgr_pitch = 64, 1536, 64 + 736 * 1536, 3_000_000, 333 * 3 + 21
    for row in range(720):
        memory[luma_at + row * pitch : luma_at + row * pitch + 1280] = nv12[row]
    for row in range(360):
        memory[chroma_at + row * pitch : chroma_at + row * pitch + 1280] = nv12[720 + row]
    for row in range(211):
        memory[bgr_at + row * bgr_pitch : bgr_at + row * bgr_pitch + 999] = bgr[row].reshape(-1)
    images = [nv12, nv12, bgr]
    formats = ["nv12", "nv12", "bgr"]
    rects = np.array([[0, 0, 1280, 720], [101, 37, 333, 251], [3, 5, 300, 200]])  # a crop at odd offsets
    rois = np.array([[0, 140, 640, 360], [10, 20, 300, 400], [0, 0, 640, 427]])
    rois, rects = check_geometry([(720, 1280), (720, 1280), (211, 333)], (640, 640), rois, rects)
    params = pack_preprocess_params([luma_at, luma_at, bgr_at], [pitch, pitch, bgr_pitch], rois, rects, formats,
                                    [chroma_at, chroma_at, 0])
    emulated = _emulate_kernel_on_memory(memory, params, (640, 640))
    expected = preprocess_reference(images, (640, 640), rois, src_rects=rects, pixel_formats=formats)
    np.testing.assert_array_equal(emulated, expected)


def test_colour_kernels_compile_with_nvrtc_without_a_gpu() -> None:
    """Where CuPy and NVRTC are installed (no GPU needed): the NV12 → BGR module builds, with both kernels."""
    pytest.importorskip("cupy")
    from trtapps.gpu.color import SOURCES
    from trtapps.gpu.kernels import BASE_OPTIONS, build_source

    try:
        from cupy.cuda.compiler import _NVRTCProgram

        program = _NVRTCProgram(build_source(SOURCES, {"OUT_FP16": 0}), "trtapps.cu")
    except Exception as exc:  # NVRTC library missing, or CuPy's internals moved
        pytest.skip(f"NVRTC is not usable here ({type(exc).__name__}: {exc})")
    ptx, _ = program.compile((*BASE_OPTIONS, "-ftz=true", "-arch=compute_90"))
    text = ptx.decode() if isinstance(ptx, bytes) else ptx
    entries = {line.split()[-1].rstrip("(") for line in text.splitlines() if ".entry" in line}
    assert entries == {"letterbox_normalize", "nv12_to_bgr"}
    assert " fma." not in text


# -- NVDEC surfaces ---------------------------------------------------------------------------------------------------


def _cai(ptr: int, shape: tuple[int, ...], strides: tuple[int, ...] | None = None) -> dict[str, Any]:
    return {"data": (ptr, False), "shape": shape, "strides": strides, "typestr": "|u1", "version": 3}


def test_two_plane_surface_layouts() -> None:
    # PyNvVideoCodec's planes: luma (H, W, 1) and chroma (H/2, W/2, 2), contiguous
    layout = nv12_layout([_cai(0x1000, (720, 1280, 1)), _cai(0x1000 + 720 * 1280, (360, 640, 2))])
    assert (layout.width, layout.height) == (1280, 720)
    assert (layout.luma, layout.luma_pitch) == (0x1000, 1280)
    assert (layout.chroma, layout.chroma_pitch) == (0x1000 + 720 * 1280, 1280)
    assert layout.contiguous  # one copy moves both planes
    # a pitched surface (rows of 2048 bytes), chroma after padding rows, planes described as 2-D
    layout = nv12_layout([_cai(0x2000, (1080, 1920), (2048, 1)), _cai(0x9000000, (540, 1920), (2048, 1))])
    assert (layout.width, layout.height, layout.luma_pitch, layout.chroma_pitch) == (1920, 1080, 2048, 2048)
    assert layout.chroma == 0x9000000
    assert not layout.contiguous  # padding rows between the planes: a copy per plane
    assert "1920x1080" in repr(layout)


def test_one_plane_surface_layout() -> None:
    layout = nv12_layout([_cai(0x4000, (1620, 1920), (2048, 1))])
    assert (layout.width, layout.height, layout.luma_pitch) == (1920, 1080, 2048)
    assert layout.chroma == 0x4000 + 1080 * 2048
    assert layout.contiguous


def test_non_nv12_surfaces_are_refused() -> None:
    with pytest.raises(ValueError, match="uint8"):
        nv12_layout([{**_cai(1, (720, 1280, 1)), "typestr": "<u2"}, _cai(2, (360, 640, 2))])
    with pytest.raises(ValueError, match="not an NV12 surface"):
        nv12_layout([_cai(1, (720, 1280, 1)), _cai(2, (720, 1280, 1)), _cai(3, (720, 1280, 1))])  # YUV444
    with pytest.raises(ValueError, match="one-plane"):
        nv12_layout([_cai(1, (720, 1280, 3))])
    with pytest.raises(ValueError, match="no planes"):
        nv12_layout([])


class _View:
    def __init__(self, interface: dict[str, Any]) -> None:
        self.__cuda_array_interface__ = interface


class _Surface:
    """The parts of a PyNvVideoCodec DecodedFrame that :func:`surface_layout` reads."""

    def __init__(self, fmt: str, planes: list[dict[str, Any]]) -> None:
        self.format = type("Pixel_Format", (), {"name": fmt})()
        self._planes = planes

    def cuda(self) -> list[_View]:
        return [_View(p) for p in self._planes]


def test_surface_layout_reads_decoded_frames() -> None:
    planes = [_cai(0x1000, (64, 96, 1)), _cai(0x1000 + 64 * 96, (32, 48, 2))]
    layout = surface_layout(_Surface("NV12", planes))
    assert (layout.width, layout.height, layout.luma_pitch) == (96, 64, 96)
    with pytest.raises(ValueError, match="P016"):
        surface_layout(_Surface("P016", planes))


class _PlaneSurface(_Surface):
    """A decoded frame that also gives its luma address, shape and strides (PyNvVideoCodec 2.x)."""

    def __init__(self, fmt: str, planes: list[dict[str, Any]]) -> None:
        super().__init__(fmt, planes)
        self.shape, self.strides = (96, 96), (96, 1)
        self.reads = 0

    def cuda(self) -> list[_View]:
        self.reads += 1
        return super().cuda()

    def GetPtrToPlane(self, index: int) -> int:
        return int(self._planes[index]["data"][0])


def _nv12_surface(luma: int, chroma_gap: int = 0) -> _PlaneSurface:
    chroma = luma + 64 * 96 + chroma_gap
    return _PlaneSurface("NV12", [_cai(luma, (64, 96, 1)), _cai(chroma, (32, 48, 2))])


def test_the_layout_cache_reads_each_shape_once_and_rechecks_it() -> None:
    cache = LayoutCache()
    surfaces = [_nv12_surface(0x100000 * (i + 1)) for i in range(cache.CHECK_EVERY + 2)]
    for surface in surfaces:
        got, want = cache.layout(surface), surface_layout(surface)
        assert repr(got) == repr(want)
    assert cache.enabled
    # read in full (cuda()) once for the shape, once at the periodic check; the rest from the luma address alone
    assert sum(s.reads for s in surfaces) == 2 * len(surfaces) - (len(surfaces) - 2)


def test_the_layout_cache_gives_up_when_pictures_of_one_shape_differ() -> None:
    cache = LayoutCache()
    cache.CHECK_EVERY = 2
    cache.layout(_nv12_surface(0x100000))
    moved = _nv12_surface(0x200000, chroma_gap=512)  # same shape and strides, chroma rows elsewhere
    assert repr(cache.layout(moved)) == repr(surface_layout(moved))  # the periodic check reads it in full
    assert not cache.enabled
    other = _nv12_surface(0x300000, chroma_gap=1024)
    assert repr(cache.layout(other)) == repr(surface_layout(other))
    plain = _Surface("NV12", [_cai(0x1000, (64, 96, 1)), _cai(0x1000 + 64 * 96, (32, 48, 2))])
    assert repr(LayoutCache().layout(plain)) == repr(surface_layout(plain))  # no GetPtrToPlane: read in full


def test_enum_names_and_fourcc() -> None:
    assert enum_name(type("E", (), {"name": "H264"})()) == "H264"
    assert enum_name("cudaVideoCodec.HEVC") == "HEVC"
    assert fourcc_text(float(cv2.VideoWriter_fourcc(*"MP43"))) == "MP43"
    assert fourcc_text(0.0) == "?"
    assert fourcc_text(float("nan")) == "?"


# -- choosing the decoder ---------------------------------------------------------------------------------------------


@pytest.fixture
def no_pynvvideocodec(monkeypatch: pytest.MonkeyPatch) -> None:
    """PyNvVideoCodec missing, whatever this machine has installed."""

    def missing() -> Any:
        raise NvdecUnavailable("PyNvVideoCodec is not installed (pip install pynvvideocodec)")

    monkeypatch.setattr(nvdec, "import_pynvvideocodec", missing)


def _records(caplog: pytest.LogCaptureFixture, name: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if name in r.getMessage()]


def test_opencv_and_host_backends_never_try_nvdec(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    def fail() -> Any:
        raise AssertionError("NVDEC must not be tried")

    monkeypatch.setattr(nvdec, "import_pynvvideocodec", fail)
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"\0" * 16)
    caplog.set_level(logging.INFO)
    assert open_nvdec_source(clip, "opencv", backend="onnxruntime_cuda") is None
    assert open_nvdec_source(clip, "auto", backend="onnxruntime") is None
    assert open_nvdec_source(clip, "auto", backend=None) is None
    assert len(_records(caplog, "keeps frames on the host")) == 2
    # a missing file is left to the OpenCV source, which reports it in its own words
    assert open_nvdec_source(tmp_path / "absent.mp4", "nvdec", backend="onnxruntime_cuda") is None
    with pytest.raises(ValueError, match="decoder must be one of"):
        open_nvdec_source(clip, "ffmpeg", backend="onnxruntime_cuda")


@pytest.mark.usefixtures("no_pynvvideocodec")
def test_auto_falls_back_with_one_reason_and_nvdec_fails_in_one_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"\0" * 16)
    caplog.set_level(logging.INFO)
    assert open_nvdec_source(clip, "auto", backend="onnxruntime_cuda") is None
    reasons = [r for r in caplog.records if "falls back to OpenCV" in r.getMessage()]
    assert len(reasons) == 1
    assert reasons[0].levelno == logging.WARNING
    assert "PyNvVideoCodec is not installed" in reasons[0].getMessage()
    with pytest.raises(BackendUnavailableError) as exc:
        open_nvdec_source(clip, "nvdec", backend="onnxruntime")
    message = str(exc.value)
    assert "\n" not in message
    assert "source.decoder nvdec cannot decode it" in message
    assert "PyNvVideoCodec is not installed" in message





@pytest.mark.usefixtures("no_pynvvideocodec")
def test_video_source_option_picks_the_decoder(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    tiny_clip(tmp_path / "clip.mp4")
    specs: list[Any] = []
    trtapps_register_sources(register=specs.append)
    video = next(s for s in specs if s.name == "video")
    assert VideoOptions(path="x.mp4").decoder == "auto"
    with pytest.raises(ValidationError, match="decoder"):
        VideoOptions(path="x.mp4", decoder="ffmpeg")
    assert VideoOptions(path="x.mp4").decode_worker == "auto"
    assert VideoOptions(path="x.mp4", decode_worker="process").decode_worker == "process"
    with pytest.raises(ValidationError, match="decode_worker"):
        VideoOptions(path="x.mp4", decode_worker="fork")
    caplog.set_level(logging.INFO)
    context = RunContext(config_dir=tmp_path, backend="onnxruntime_cuda")
    source = video.factory(VideoOptions(path="clip.mp4", max_frames=3), context)
    assert isinstance(source, VideoSource)
    assert [f.index for f in source] == [0, 1, 2]
    assert len([r for r in caplog.records if "falls back to OpenCV" in r.getMessage()]) == 1
    with pytest.raises(BackendUnavailableError):
        video.factory(VideoOptions(path="clip.mp4", decoder="nvdec"), context)
    assert isinstance(video.factory(VideoOptions(path="clip.mp4", decoder="opencv"), context), VideoSource)


# -- the decoding loop, with a scripted PyNvVideoCodec and the CUDA calls stubbed -------------------------------------


@pytest.fixture
def fake_nvdec(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    """Install a scripted PyNvVideoCodec; returns ``make(packets, **nvc) -> (clip path, fake module)``."""
    return install_fake_nvdec(monkeypatch, tmp_path)


def _pts_of(frame: Any) -> int:
    return int(frame.image[0, 0])


def test_nvdec_source_delivers_every_picture_in_display_order(fake_nvdec: Any) -> None:
    clip, fake = fake_nvdec(make_packets(10), frames_in_header=10)
    source = nvdec.NvdecSource(clip, device=0)
    assert len(source) == 10
    frames = list(source)
    assert [f.index for f in frames] == list(range(10))
    assert [_pts_of(f) for f in frames] == list(range(10))
    assert all(f.pixel_format == "nv12" and (f.height, f.width) == (4, 4) for f in frames)
    assert frames[3].timestamp == pytest.approx(0.3)
    assert frames[0].meta["decoder"] == "nvdec"
    assert source.undelivered == 0
    assert fake.decoders[0].flushes == 1  # no end-of-stream packet from the demuxer: the source flushed
    # a second pass decodes the file again with a new decoder
    assert [f.index for f in source] == list(range(10))
    assert len(fake.decoders) == 2


def test_nvdec_source_leaves_the_flush_to_the_demuxers_end_packet(fake_nvdec: Any) -> None:
    clip, fake = fake_nvdec(make_packets(6), eos_packet=True)
    assert [f.index for f in nvdec.NvdecSource(clip)] == list(range(6))
    assert fake.decoders[0].flushes == 1


def test_pictures_outside_the_presentation_are_no_frames(fake_nvdec: Any, monkeypatch: pytest.MonkeyPatch,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    # like face_tracker.mp4: a picture before the first keyframe, one past the edit list's end
    packets = make_packets(12, keys=(1, 7))
    clip, _ = fake_nvdec(packets)
    monkeypatch.setattr(nvdec, "mp4_presentation_end", lambda path: 11)
    caplog.set_level(logging.INFO)
    frames = list(nvdec.NvdecSource(clip))
    assert [f.index for f in frames] == list(range(10))
    assert [_pts_of(f) for f in frames] == list(range(1, 11))
    assert len(_records(caplog, "2 decoded pictures lie outside the presentation")) == 1
    # an edit list in other units than the timestamps (the first keyframe past its end) is ignored
    monkeypatch.setattr(nvdec, "mp4_presentation_end", lambda path: 1)
    assert [_pts_of(f) for f in nvdec.NvdecSource(clip)] == list(range(1, 12))


@pytest.mark.parametrize("stamp", [lambda pts: -7, lambda pts: 1000 + pts], ids=["constant", "shifted"])
def test_pictures_without_their_packets_timestamps_are_all_presented(
    fake_nvdec: Any, monkeypatch: pytest.MonkeyPatch, stamp: Any
) -> None:
    clip, _ = fake_nvdec(make_packets(12, keys=(1, 7)), stamp=stamp)
    monkeypatch.setattr(nvdec, "mp4_presentation_end", lambda path: 11)
    assert [f.index for f in nvdec.NvdecSource(clip)] == list(range(12))


def test_only_pictures_decoded_before_the_first_keyframe_are_leading(fake_nvdec: Any) -> None:
    # pts 3 is decoded before the keyframe (pts 2) but shown after it; pts 0 and 1 are shown before the keyframe
    # but decoded after it (they can reference it): nothing is undecodable, every picture is a frame
    packets = [Packet(3), Packet(2, key=True), Packet(0), Packet(1), *[Packet(p) for p in range(4, 8)]]
    clip, _ = fake_nvdec(packets)
    assert [_pts_of(f) for f in nvdec.NvdecSource(clip)] == [0, 1, 2, 3, 4, 5, 6, 7]


def test_undecodable_packets_become_failures_at_their_index(fake_nvdec: Any) -> None:
    clip, _ = fake_nvdec(make_packets(10, fail=(4,)))
    items = list(nvdec.NvdecSource(clip))
    assert [i.index for i in items] == list(range(10))
    failures = [i for i in items if isinstance(i, FrameFailure)]
    # the failed packet takes the next index when it fails: with this decoder's two-picture reordering delay,
    # index 2 (its display position is approximate, as documented); every packet is still one item
    assert [f.index for f in failures] == [2]
    assert "could not be decoded by NVDEC" in failures[0].error
    assert "\n" not in failures[0].error
    assert sorted(_pts_of(i) for i in items if not isinstance(i, FrameFailure)) == [0, 1, 2, 3, 5, 6, 7, 8, 9]


def test_a_broken_stretch_longer_than_max_bad_frames_ends_the_video(
    fake_nvdec: Any, caplog: pytest.LogCaptureFixture
) -> None:
    clip, _ = fake_nvdec(make_packets(20, fail=tuple(range(5, 20))), frames_in_header=20)
    source = nvdec.NvdecSource(clip, max_bad_frames=3)
    items = list(source)
    assert [i.index for i in items] == list(range(len(items)))
    assert sum(isinstance(i, FrameFailure) for i in items) == 4
    assert len(_records(caplog, "4 packets in a row failed")) == 1
    assert source.undelivered == 20 - len(items)


def test_start_stride_and_max_frames_like_the_opencv_source(fake_nvdec: Any) -> None:
    clip, _ = fake_nvdec(make_packets(12), frames_in_header=12)
    source = nvdec.NvdecSource(clip, start_frame=2, stride=3, max_frames=3)
    assert len(source) == 3
    frames = list(source)
    assert [f.index for f in frames] == [2, 5, 8]
    assert CpuSession.copies <= 5  # only wanted pictures are copied (the probe copies none it does not keep)
    with pytest.raises(InputError, match="start_frame 12 is past the end"):
        nvdec.NvdecSource(clip, start_frame=12)


@pytest.mark.parametrize(
    ("kwargs", "packets", "reason"),
    [
        ({"codec": "NumCodecs"}, make_packets(3), "not one NVDEC decodes (demuxer codec id NumCodecs)"),
        ({"bit_depth": 10}, make_packets(3), "10-bit"),
        ({}, make_packets(3, fail=(0,)), "NVDEC failed on the first H264 packets"),
        ({}, [], "decoded no H264 picture"),
    ],
)
def test_auto_falls_back_when_nvdec_cannot_decode_the_file(
    fake_nvdec: Any, caplog: pytest.LogCaptureFixture, kwargs: dict[str, Any], packets: list[Packet], reason: str
) -> None:
    clip, _ = fake_nvdec(packets, **kwargs)
    caplog.set_level(logging.INFO)
    assert open_nvdec_source(clip, "auto", backend="tensorrt") is None
    fallbacks = _records(caplog, "falls back to OpenCV")
    assert len(fallbacks) == 1
    assert reason in fallbacks[0].getMessage()
    with pytest.raises(BackendUnavailableError, match="cannot decode it"):
        open_nvdec_source(clip, "nvdec", backend="tensorrt")


def test_nvdec_is_chosen_on_a_gpu_backend(fake_nvdec: Any) -> None:
    clip, _ = fake_nvdec(make_packets(4))
    source = open_nvdec_source(clip, "auto", backend="onnxruntime_cuda", max_frames=2)
    assert isinstance(source, nvdec.NvdecSource)
    assert [f.index for f in source] == [0, 1]


def test_mp4_edit_list_ends(tmp_path: Path) -> None:
    # face_tracker.mp4: one edit of 14.7 s (movie timescale 1000) over a 10 MHz track; MOT17-09: 17.5 s at 15360
    assert nvdec.mp4_presentation_end(shared_path("media/face_tracker.mp4")) == 147_000_000
    assert nvdec.mp4_presentation_end(shared_path("media/MOT17-09.mp4")) == 17_500 * 15360 // 1000
    assert nvdec.mp4_presentation_end(shared_path("media/vtest.avi")) is None  # not an MP4
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(shared_path("media/MOT17-09.mp4").read_bytes()[:4096])  # no moov box
    assert nvdec.mp4_presentation_end(cut) is None
    assert nvdec.mp4_presentation_end(tmp_path / "absent.mp4") is None
