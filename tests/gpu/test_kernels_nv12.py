"""The NV12 paths of the GPU kernels against their references (run on a machine with an NVIDIA GPU and CuPy).

The reference of preprocessing an NV12 frame is ``cv2.cvtColor(nv12, cv2.COLOR_YUV2BGR_NV12)`` followed by the
BGR reference (:func:`trtapps.ops.preprocess.preprocess_reference` with ``pixel_formats``); the kernel must equal it
bit for bit (float32; float16: the same rounding), like the BGR path. :func:`trtapps.gpu.color.nv12_to_bgr` must
equal ``cv2.cvtColor`` exactly. Inputs: random NV12 (even sizes, odd multiples of 2 included), real pictures made
NV12 through OpenCV's I420 (:func:`~trtapps.ops.preprocess.bgr_to_nv12`), batches mixing NV12 and BGR frames of
different sizes, crops at odd offsets, and surfaces whose row pitch exceeds the width. Every output buffer is
poisoned (NaN, or 0xAB bytes) first, so an unwritten value fails.

Run: ``pytest -m gpu tests/gpu/test_kernels_nv12.py -rA``.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import pytest

from conftest import shared_path
from kernel_checks import assert_kernel_output  # tests/kernel_checks.py
from trtapps.ops.letterbox import LetterboxTransform
from trtapps.ops.preprocess import bgr_to_nv12, image_size, preprocess_reference, rects_from_boxes, rois_from_letterbox

pytestmark = pytest.mark.gpu

# name: (centred, out size, swap_rb, scale, mean, std, pad) — the apps' settings (see tests/gpu/test_kernels.py)
CONFIGS: dict[str, tuple[Any, ...]] = {
    "raw": (True, (640, 640), False, 1.0, 0.0, 1.0, 114),
    "yolov8": (True, (640, 640), True, 1.0, 0.0, 255.0, 114),
    "yolox": (False, (416, 416), False, 1.0, 0.0, 1.0, 114),
    "retinaface": (False, (640, 640), False, 1.0, (104.0, 117.0, 123.0), 1.0, (104.0, 117.0, 123.0)),
    "imagenet": (True, (384, 640), True, 1 / 255, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), 0),
}
EXACT = ("raw", "yolov8", "yolox", "retinaface")


@pytest.fixture(scope="module")
def cp() -> Any:
    return pytest.importorskip("cupy")


def _nv12(seed: int, height: int, width: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height * 3 // 2, width), dtype=np.uint8)


def _bgr(seed: int, height: int, width: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _real(name: str) -> np.ndarray:
    image = cv2.imread(str(shared_path(f"media/{name}.jpg")))
    assert image is not None
    return image


def _pitched(cp: Any, image: np.ndarray, pad: int) -> Any:
    """*image* on the device as a view whose rows are *pad* bytes longer than its width (garbage in the padding)."""
    rows, width = image.shape[:2]
    extra = (width + pad,) if image.ndim == 2 else (width + pad, image.shape[2])
    surface = cp.asarray(np.random.default_rng(pad).integers(0, 256, (rows, *extra), dtype=np.uint8))
    surface[:, :width] = cp.asarray(image)
    return surface[:, :width]




def _run(
    cp: Any,
    images: list[np.ndarray],
    formats: list[str],
    config: str,
    dtype: Any,
    *,
    sources: list[Any] | None = None,
    stream: Any = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The kernel's and the reference's output for one batch (*sources*: device inputs, default uploads)."""
    from trtapps.ops.cuda.preprocess import preprocess_batch

    centred, size, swap, scale, mean, std, pad = CONFIGS[config]
    sizes = [image_size(im, f) for im, f in zip(images, formats)]
    rois = rois_from_letterbox([LetterboxTransform.compute(s, size, centered=centred) for s in sizes])
    out = cp.full((len(images), 3, *size), np.nan, dtype=dtype)
    device = sources if sources is not None else [cp.asarray(im) for im in images]
    kwargs = {"pad_value": pad, "swap_rb": swap, "scale": scale, "mean": mean, "std": std}
    if stream is not None:
        cp.cuda.Device().synchronize()  # the uploads and the poisoning ran on the default stream
    preprocess_batch(device, out, rois, pixel_formats=formats, stream=stream, **kwargs)
    if stream is not None:
        stream.synchronize()
    expected = preprocess_reference(images, size, rois, pixel_formats=formats, dtype=dtype, **kwargs)
    return out.get(), expected


# -- preprocessing ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_random_nv12_and_bgr_mixed_in_one_batch(cp: Any, config: str, dtype: Any, record_property: Any) -> None:
    images = [_nv12(1, 1080, 1920), _bgr(2, 480, 640), _nv12(3, 518, 334), _nv12(4, 2, 2), _bgr(5, 517, 333)]
    formats = ["nv12", "bgr", "nv12", "nv12", "bgr"]
    got, expected = _run(cp, images, formats, config, dtype)
    assert_kernel_output(got, expected, record_property, exact=config in EXACT, rtol=1e-6 if dtype == np.float32 else 1e-3)


@pytest.mark.parametrize("name", ["bus", "zidane", "group", "street"])
def test_real_pictures_through_nv12(cp: Any, name: str, record_property: Any) -> None:
    image = _real(name)
    nv12 = bgr_to_nv12(image)
    for config in ("yolov8", "yolox", "retinaface"):
        got, expected = _run(cp, [nv12, image], ["nv12", "bgr"], config, np.float32)
        assert_kernel_output(got, expected, record_property, exact=True)
        # the NV12 copy of a picture letterboxes to nearly the picture itself (4:2:0 + limited range)
        assert np.abs(got[0] - got[1]).mean() < (4.0 / 255 if config == "yolov8" else 4.0)


def test_nv12_surfaces_with_a_pitch_larger_than_the_width(cp: Any, record_property: Any) -> None:
    images = [_nv12(6, 720, 1280), bgr_to_nv12(_real("bus")), _bgr(7, 300, 200)]
    formats = ["nv12", "nv12", "bgr"]
    sources = [_pitched(cp, images[0], 256), _pitched(cp, images[1], 38), _pitched(cp, images[2], 7)]
    assert sources[0].strides[0] == 1280 + 256
    assert sources[1].strides[0] == 810 + 38
    for dtype in (np.float32, np.float16):
        got, expected = _run(cp, images, formats, "yolov8", dtype, sources=sources)
        assert_kernel_output(got, expected, record_property, exact=True)


def test_nv12_crops_at_odd_offsets(cp: Any, record_property: Any) -> None:
    from trtapps.ops.cuda.preprocess import preprocess_batch

    nv12 = bgr_to_nv12(_real("street"))
    boxes = np.array([[100.7, 51.2, 181.9, 400.0], [0, 0, 1330, 1330], [1301.5, 1320.2, 1350, 1400], [5, 7, 6, 9]])
    rects = rects_from_boxes(boxes, (1330, 1330))
    assert (rects[:, :2] % 2).any(), "the crops must start at odd pixels"
    rois = np.tile([0, 0, 128, 256], (len(boxes), 1))
    kwargs = {"swap_rb": True, "scale": 1 / 255, "mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)}
    device = cp.asarray(nv12)
    out = cp.full((len(boxes), 3, 256, 128), np.nan, dtype=np.float32)
    preprocess_batch([device] * len(boxes), out, rois, src_rects=rects, pixel_formats=["nv12"] * len(boxes), **kwargs)
    formats = ["nv12"] * len(boxes)
    expected = preprocess_reference([nv12] * len(boxes), (256, 128), rois, src_rects=rects, pixel_formats=formats,
                                    **kwargs)
    assert_kernel_output(out.get(), expected, record_property, exact=False)


def test_nv12_on_a_side_stream(cp: Any, record_property: Any) -> None:
    stream = cp.cuda.Stream(non_blocking=True)
    got, expected = _run(cp, [_nv12(8, 1080, 1920)] * 3, ["nv12"] * 3, "yolov8", np.float32, stream=stream)
    assert_kernel_output(got, expected, record_property, exact=True)


def test_nv12_arguments_are_checked(cp: Any) -> None:
    from trtapps.ops.cuda.preprocess import preprocess_batch

    out = cp.zeros((1, 3, 8, 8), cp.float32)
    rois = [[0, 0, 8, 8]]
    with pytest.raises(ValueError, match="NV12"):
        preprocess_batch([cp.zeros((16, 10), cp.uint8)], out, rois, pixel_formats=["nv12"])  # 16 rows: not H * 3 / 2
    with pytest.raises(ValueError, match="NV12"):
        preprocess_batch([cp.zeros((15, 10, 3), cp.uint8)], out, rois, pixel_formats=["nv12"])
    with pytest.raises(ValueError, match="packed rows"):
        preprocess_batch([cp.zeros((15, 20), cp.uint8)[:, ::2]], out, rois, pixel_formats=["nv12"])
    with pytest.raises(ValueError, match="pixel formats"):
        preprocess_batch([cp.zeros((15, 10), cp.uint8)], out, rois, pixel_formats=["nv12", "bgr"])
    with pytest.raises(ValueError, match="pixel_formats"):
        preprocess_batch([cp.zeros((15, 10), cp.uint8)], out, rois, pixel_formats=["yuyv"])


# -- NV12 -> BGR ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [(2, 2), (4, 6), (518, 334), (1080, 1920)])
def test_nv12_to_bgr_equals_opencv(cp: Any, size: tuple[int, int]) -> None:
    from trtapps.gpu.color import nv12_to_bgr

    nv12 = _nv12(sum(size), *size)
    got = nv12_to_bgr(cp.asarray(nv12))
    assert got.shape == (*size, 3)
    assert got.dtype == np.uint8
    np.testing.assert_array_equal(got.get(), cv2.cvtColor(nv12, cv2.COLOR_YUV2BGR_NV12))


def test_nv12_to_bgr_of_frames_pitched_surfaces_and_given_outputs(cp: Any) -> None:
    from trtapps.gpu.color import nv12_to_bgr
    from trtapps.structures import Frame

    image = _real("zidane")
    nv12 = bgr_to_nv12(image)
    expected = cv2.cvtColor(nv12, cv2.COLOR_YUV2BGR_NV12)
    frame = Frame(image=cp.asarray(nv12), source="zidane", pixel_format="nv12")
    assert (frame.height, frame.width) == (720, 1280)
    stream = cp.cuda.Stream(non_blocking=True)
    cp.cuda.Device().synchronize()  # the upload ran on the default stream
    got = nv12_to_bgr(frame, stream)
    stream.synchronize()
    np.testing.assert_array_equal(got.get(), expected)
    out = cp.full((720, 1280, 3), 0xAB, dtype=cp.uint8)
    assert nv12_to_bgr(_pitched(cp, nv12, 256), out=out) is out
    np.testing.assert_array_equal(out.get(), expected)
    assert np.abs(expected.astype(int) - image.astype(int)).mean() < 4.0
    bgr = Frame(image=cp.asarray(image), source="zidane")
    assert nv12_to_bgr(bgr) is bgr.image
    with pytest.raises(TypeError, match="CuPy"):
        nv12_to_bgr(nv12)
    with pytest.raises(ValueError, match="out must be"):
        nv12_to_bgr(cp.asarray(nv12), out=cp.empty((720, 1280, 4), cp.uint8))
