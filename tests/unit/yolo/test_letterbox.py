"""trtapps.ops.letterbox against independent re-implementations of Ultralytics' and YOLOX's preprocessing.

The reference functions below are written from the upstream code's arithmetic (Ultralytics ``LetterBox`` and
``scale_boxes``, YOLOX ``preproc``), not from the implementation under test.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np
import pytest

from trtapps.ops.letterbox import LetterboxTransform, letterbox, scale_boxes, scale_points


def ultralytics_letterbox(
    img: np.ndarray, new_shape: tuple[int, int], scaleup: bool = True, color: int = 114
) -> tuple[np.ndarray, tuple[int, int], tuple[int, int]]:
    """Ultralytics ``LetterBox(new_shape, auto=False, scaleup=scaleup, center=True)`` on one HWC image.

    Returns the canvas, the unpadded ``(w, h)`` and the ``(left, top)`` padding.
    """
    shape = img.shape[:2]
    r = min(new_shape[0] / shape[0], new_shape[1] / shape[1])
    if not scaleup:
        r = min(r, 1.0)
    new_unpad = round(shape[1] * r), round(shape[0] * r)
    dw, dh = new_shape[1] - new_unpad[0], new_shape[0] - new_unpad[1]
    dw /= 2
    dh /= 2
    if shape[::-1] != new_unpad:
        img = cv2.resize(img, new_unpad, interpolation=cv2.INTER_LINEAR)
    top, bottom = round(dh - 0.1), round(dh + 0.1)
    left, right = round(dw - 0.1), round(dw + 0.1)
    out = cv2.copyMakeBorder(img, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(color, color, color))
    return out, new_unpad, (left, top)


def ultralytics_scale_boxes(img1_shape: tuple[int, int], boxes: np.ndarray, img0_shape: tuple[int, int]) -> np.ndarray:
    """Ultralytics ``scale_boxes(img1_shape, boxes, img0_shape)`` (no ratio_pad) followed by its clipping."""
    boxes = boxes.copy()
    gain = min(img1_shape[0] / img0_shape[0], img1_shape[1] / img0_shape[1])
    pad_x = round((img1_shape[1] - img0_shape[1] * gain) / 2 - 0.1)
    pad_y = round((img1_shape[0] - img0_shape[0] * gain) / 2 - 0.1)
    boxes[..., 0] -= pad_x
    boxes[..., 1] -= pad_y
    boxes[..., 2] -= pad_x
    boxes[..., 3] -= pad_y
    boxes[..., :4] /= gain
    boxes[..., 0] = boxes[..., 0].clip(0, img0_shape[1])
    boxes[..., 1] = boxes[..., 1].clip(0, img0_shape[0])
    boxes[..., 2] = boxes[..., 2].clip(0, img0_shape[1])
    boxes[..., 3] = boxes[..., 3].clip(0, img0_shape[0])
    return boxes


def yolox_preproc(img: np.ndarray, input_size: tuple[int, int]) -> tuple[np.ndarray, float]:
    """YOLOX ``preproc`` (0.2.0+) without the transpose: HWC uint8 canvas and the ratio."""
    padded_img = np.ones((input_size[0], input_size[1], 3), dtype=np.uint8) * 114
    r = min(input_size[0] / img.shape[0], input_size[1] / img.shape[1])
    resized_img = cv2.resize(
        img, (int(img.shape[1] * r), int(img.shape[0] * r)), interpolation=cv2.INTER_LINEAR
    ).astype(np.uint8)
    padded_img[: int(img.shape[0] * r), : int(img.shape[1] * r)] = resized_img
    return padded_img, r


def _random_cases(seed: int, count: int) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """(source, canvas) size pairs: odd sizes, up- and down-scaling, portrait and landscape, small canvases."""
    rng = np.random.default_rng(seed)
    canvases = [(640, 640), (416, 416), (384, 640), (640, 352), (96, 160), (7, 9)]
    cases = []
    for i in range(count):
        canvas = canvases[i % len(canvases)]
        upper = 1500 if i % 3 else max(canvas) // 2 + 2  # every third one is smaller than the canvas: upscale
        cases.append(((int(rng.integers(1, upper)), int(rng.integers(1, upper))), canvas))
    return cases


def _fits(src: tuple[int, int], dst: tuple[int, int], resize: Callable[[float], int] = round) -> bool:
    """Whether the resized image keeps at least one pixel per side (upstream code fails otherwise)."""
    r = min(dst[0] / src[0], dst[1] / src[1])
    return min(resize(src[0] * r), resize(src[1] * r)) > 0


CASES = [
    *_random_cases(seed=0, count=60),
    ((1080, 810), (640, 640)),  # bus.jpg
    ((720, 1280), (640, 640)),  # zidane.jpg
    ((640, 640), (640, 640)),  # no resize at all
    ((4, 3), (6, 6)),  # round(4.5) = 4: Python's banker's rounding decides the width
    ((102, 810), (640, 640)),  # forward top pad 279, scale_boxes' pad_y 280 (Ultralytics' quirk)
    ((1, 997), (640, 640)),  # a 1-pixel strip
]
CASES = [c for c in CASES if _fits(*c)]


@pytest.mark.parametrize(("src", "dst"), CASES)
def test_centred_letterbox_matches_ultralytics_bit_exactly(src: tuple[int, int], dst: tuple[int, int]) -> None:
    rng = np.random.default_rng(src[0] * 7919 + src[1])
    image = rng.integers(0, 256, (*src, 3), dtype=np.uint8)
    expected, (new_w, new_h), (left, top) = ultralytics_letterbox(image, dst)
    out, transform = letterbox(image, dst)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, expected)
    assert transform.new_size == (new_h, new_w)
    assert (transform.left, transform.top) == (left, top)
    assert transform.resized == ((new_h, new_w) != src)


@pytest.mark.parametrize(("src", "dst"), CASES)
def test_inverse_matches_ultralytics_scale_boxes(src: tuple[int, int], dst: tuple[int, int]) -> None:
    rng = np.random.default_rng(src[0] + 31 * src[1])
    transform = LetterboxTransform.compute(src, dst)
    xy = rng.uniform(-20, max(dst) + 20, (200, 2))
    wh = rng.uniform(0, max(dst) / 2, (200, 2))
    boxes = np.concatenate([xy, xy + wh], axis=1)
    expected = ultralytics_scale_boxes(dst, boxes, src)
    np.testing.assert_allclose(scale_boxes(boxes, transform), expected, atol=1e-4, rtol=0)
    # float32 boxes (what the decoder produces) stay float32 and agree to float32 precision
    out32 = scale_boxes(boxes.astype(np.float32), transform)
    assert out32.dtype == np.float32
    np.testing.assert_allclose(out32, expected, atol=1e-3, rtol=1e-6)


def test_inverse_uses_scale_boxes_padding_not_the_forward_one() -> None:
    t = LetterboxTransform.compute((102, 810), (640, 640))
    assert (t.top, t.pad_y) == (279, 280.0)  # round(279.5 - 0.1) vs round((640 - 80.59) / 2 - 0.1)
    assert scale_boxes(np.array([[0.0, 280.0, 10.0, 290.0]]), t)[0, 1] == 0.0


@pytest.mark.parametrize(("src", "dst"), CASES)
def test_scaleup_false_never_enlarges(src: tuple[int, int], dst: tuple[int, int]) -> None:
    image = np.random.default_rng(1).integers(0, 256, (*src, 3), dtype=np.uint8)
    out, t = letterbox(image, dst, scaleup=False)
    np.testing.assert_array_equal(out, ultralytics_letterbox(image, dst, scaleup=False)[0])
    assert t.scale <= 1.0
    assert t.new_size[0] <= src[0]
    assert t.new_size[1] <= src[1]


@pytest.mark.parametrize(("src", "dst"), [c for c in CASES if _fits(*c, resize=int)])
def test_top_left_letterbox_matches_yolox_preproc(src: tuple[int, int], dst: tuple[int, int]) -> None:
    image = np.random.default_rng(src[1] * 7 + src[0]).integers(0, 256, (*src, 3), dtype=np.uint8)
    expected, ratio = yolox_preproc(image, dst)
    out, t = letterbox(image, dst, centered=False)
    np.testing.assert_array_equal(out, expected)
    assert (t.left, t.top, t.pad_x, t.pad_y) == (0, 0, 0.0, 0.0)
    assert t.scale == ratio
    boxes = np.array([[10.0, 20.0, 30.5, 41.0], [0.0, 0.0, dst[1], dst[0]]])
    expected_boxes = boxes / ratio
    expected_boxes[:, 0::2] = expected_boxes[:, 0::2].clip(0, src[1])
    expected_boxes[:, 1::2] = expected_boxes[:, 1::2].clip(0, src[0])
    np.testing.assert_allclose(scale_boxes(boxes, t), expected_boxes, rtol=1e-12)


def test_degenerate_strip_keeps_one_pixel() -> None:
    # upstream code would ask cv2 for a zero-pixel side; we keep one pixel instead
    strip = np.full((999, 1, 3), 9, dtype=np.uint8)
    out, t = letterbox(strip, (416, 416))
    assert t.new_size == (416, 1)
    assert (out[:, t.left] == 9).all()
    assert (out[:, : t.left] == 114).all()


def test_round_trip_of_a_box_drawn_on_the_original() -> None:
    src, dst = (1080, 810), (640, 640)
    t = LetterboxTransform.compute(src, dst)
    original = np.array([[34.0, 230.0, 800.0, 770.0]])
    forward = original * t.scale + [t.pad_x, t.pad_y, t.pad_x, t.pad_y]
    np.testing.assert_allclose(scale_boxes(forward, t), original, atol=1e-9)


def test_points_map_back_like_box_corners_and_clip() -> None:
    t = LetterboxTransform.compute((720, 1280), (640, 640))
    points = np.array([[[100.0, 200.0], [640.0, 640.0], [-5.0, 1.0]]])
    boxes = np.concatenate([points[0, :, :], points[0, :, :]], axis=1)
    expected = scale_boxes(boxes, t)[:, :2]
    out = scale_points(points, t)
    assert out.shape == points.shape
    np.testing.assert_allclose(out[0], expected)
    assert out[..., 0].min() >= 0
    assert out[..., 0].max() <= 1280
    assert out[..., 1].min() >= 0
    assert out[..., 1].max() <= 720
    unclipped = scale_points(points, t, clip=False)
    assert unclipped[0, 2, 0] < 0


def test_letterbox_keeps_other_channel_counts_and_pad_value() -> None:
    gray = np.full((50, 100, 1), 7, dtype=np.uint8)
    out, t = letterbox(gray, (64, 64), pad_value=0)
    assert out.shape == (64, 64, 1)
    assert t.new_size == (32, 64)
    assert (out[: t.top] == 0).all()
    assert (out[t.top : t.top + 32] == 7).all()


def test_bad_sizes_are_refused() -> None:
    with pytest.raises(ValueError, match="positive"):
        LetterboxTransform.compute((0, 10), (640, 640))
    with pytest.raises(ValueError, match=r"\(H, W, C\)"):
        letterbox(np.zeros((10, 10), np.uint8), (32, 32))
