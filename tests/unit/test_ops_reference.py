"""The NumPy references of the GPU kernels, on the CPU.

* :func:`trtapps.ops.preprocess.resize_linear_u8` (the kernel's integer arithmetic) equals ``cv2.resize``
  (INTER_LINEAR, uint8) exactly, and :func:`preprocess_reference` equals the apps' letterbox paths.
* A NumPy emulation of the preprocessing kernel, driven by the packed ``(B, 12)`` parameter array exactly as
  the kernel reads it, equals :func:`preprocess_reference`.
* The decode references equal the CPU app decoders (``trtapps_plugins``), and the NMS reference equals the
  YOLO app's decode + NMS + ``scale_boxes``.
* A NumPy emulation of the bitmask NMS kernels (sort keys from float bits, 64-wide mask blocks, greedy scan)
  equals the greedy reference, ties included.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from trtapps.ops.decode import (
    FACE_WIDTH,
    YOLO_WIDTH,
    decode_retinaface_reference,
    decode_yolo_rows_reference,
    decode_yolov8_reference,
    image_params,
    map_records,
    nms_reference,
    params_from_letterbox,
    records_to_detections,
    retinaface_priors,
    sort_records,
    yolox_grid_table,
)
from trtapps.ops.letterbox import LetterboxTransform, letterbox, scale_boxes
from trtapps.ops.nms import MAX_WH
from trtapps.ops.preprocess import (
    PARAMS_PER_IMAGE,
    check_geometry,
    pack_preprocess_params,
    per_channel,
    preprocess_reference,
    rects_from_boxes,
    resize_linear_u8,
    resize_scale,
    rois_from_letterbox,
)
from trtapps.structures import Detections
from trtapps.testing.heads import synthetic_faces, synthetic_rows, synthetic_v8

# -- cv2 fixed-point resize emulation -----------------------------------------------------------------------

RESIZE_CASES = [
    # (src h, src w, dst h, dst w)
    (517, 333, 640, 413),  # up, non-integer, odd sizes
    (1080, 1920, 360, 640),  # 1080p letterbox: down 3x exactly
    (1080, 1920, 720, 1280),  # down 1.5x
    (480, 640, 480, 640),  # identity
    (480, 640, 240, 320),  # exact 2x down: cv2 switches to its INTER_AREA fast path
    (333, 517, 666, 1034),  # exact 2x up
    (333, 517, 111, 172),  # down by non-integer ~3x
    (7, 5, 640, 640),  # extreme upscale
    (1, 1, 5, 9),
    (5, 1, 9, 3),
    (1, 7, 4, 2),
    (2, 2, 1, 1),
    (256, 128, 256, 128),
]


@pytest.mark.parametrize(("sh", "sw", "dh", "dw"), RESIZE_CASES)
def test_resize_linear_u8_equals_cv2(sh: int, sw: int, dh: int, dw: int) -> None:
    rng = np.random.default_rng(sh * 7919 + sw * 31 + dh + dw)
    image = rng.integers(0, 256, (sh, sw, 3), dtype=np.uint8)
    expected = cv2.resize(image, (dw, dh), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_array_equal(resize_linear_u8(image, (dw, dh)), expected)


def test_resize_linear_u8_equals_cv2_random_sizes() -> None:
    rng = np.random.default_rng(2024)
    for _ in range(150):
        sh, sw, dh, dw = (int(v) for v in rng.integers(1, 300, 4))
        image = rng.integers(0, 256, (sh, sw, 3), dtype=np.uint8)
        expected = cv2.resize(image, (dw, dh), interpolation=cv2.INTER_LINEAR)
        np.testing.assert_array_equal(resize_linear_u8(image, (dw, dh)), expected, err_msg=f"{(sh, sw, dh, dw)}")


def test_resize_linear_u8_on_a_smooth_image_and_a_grey_one() -> None:
    # structured content (gradients, edges) as well as noise; single-channel input too
    y, x = np.mgrid[0:301, 0:457]
    ramp_x = ((x * 255) // 456).astype(np.uint8)
    ramp_y = ((y * 255) // 300).astype(np.uint8)
    edges = np.where((x // 40 + y // 40) % 2 == 0, 20, 235).astype(np.uint8)
    image = np.stack([ramp_x, ramp_y, edges], -1)
    for size in ((640, 421), (213, 140), (457, 301)):
        np.testing.assert_array_equal(resize_linear_u8(image, size), cv2.resize(image, size))
        np.testing.assert_array_equal(resize_linear_u8(image[..., 0], size), cv2.resize(image[..., 0], size))


def test_resize_scale_is_cv2s_double() -> None:
    assert resize_scale(1920, 640) == 1.0 / (640 / 1920)
    assert resize_scale(333, 666) == 0.5


# -- preprocess_reference vs the apps' letterbox paths ------------------------------------------------------

SIZES = [(1080, 1920), (480, 640), (517, 333)]


def _images(seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in SIZES]


@pytest.mark.parametrize("centered", [True, False])
def test_preprocess_reference_equals_yolo_app_letterbox(centered: bool) -> None:
    images = _images(1)
    transforms = [LetterboxTransform.compute(im.shape[:2], (640, 640), centered=centered) for im in images]
    rois = rois_from_letterbox(transforms)
    got = preprocess_reference(images, (640, 640), rois, pad_value=114, swap_rb=True, scale=1.0, mean=0.0, std=255.0)
    for b, image in enumerate(images):
        canvas, _ = letterbox(image, (640, 640), centered=centered)
        expected = canvas.transpose(2, 0, 1)[::-1].astype(np.float32)
        expected /= 255  # the YOLO app's arithmetic
        np.testing.assert_array_equal(got[b], expected)


def test_preprocess_reference_yolox_raw_pixels() -> None:
    images = _images(2)
    transforms = [LetterboxTransform.compute(im.shape[:2], (416, 416), centered=False) for im in images]
    got = preprocess_reference(images, (416, 416), rois_from_letterbox(transforms), pad_value=114)
    for b, image in enumerate(images):
        canvas, _ = letterbox(image, (416, 416), centered=False)
        np.testing.assert_array_equal(got[b], canvas.transpose(2, 0, 1).astype(np.float32))


def test_preprocess_reference_mean_padding_is_exactly_zero() -> None:
    images = _images(3)
    mean = (104.0, 117.0, 123.0)
    rois = np.array([[0, 0, 640, 360], [0, 0, 640, 480], [0, 0, 413, 640]])
    got = preprocess_reference(images, (640, 640), rois, pad_value=mean, mean=mean)
    for b, image in enumerate(images):
        w, h = int(rois[b][2]), int(rois[b][3])
        inside = cv2.resize(image, (int(w), int(h))).astype(np.float32) - np.float32(mean)
        np.testing.assert_array_equal(got[b, :, :h, :w], inside.transpose(2, 0, 1))
        assert not got[b, :, h:, :].any()
        assert not got[b, :, :, w:].any()


def test_preprocess_reference_fixed_point_path_and_float16() -> None:
    images = _images(4)
    rois = np.array([[0, 140, 640, 360], [0, 80, 640, 480], [113, 0, 413, 640]])
    kwargs = {
        "pad_value": 114,
        "swap_rb": True,
        "scale": 1 / 255,
        "mean": (0.485, 0.456, 0.406),
        "std": (0.229, 0.224, 0.225),
    }
    a = preprocess_reference(images, (640, 640), rois, **kwargs)
    b = preprocess_reference(images, (640, 640), rois, resize="fixed_point", **kwargs)
    np.testing.assert_array_equal(a, b)
    half = preprocess_reference(images, (640, 640), rois, dtype=np.float16, **kwargs)
    assert half.dtype == np.float16
    np.testing.assert_array_equal(half, a.astype(np.float16))


def test_preprocess_reference_crops_equal_cv2_on_the_crop() -> None:
    image = _images(5)[0]
    boxes = np.array([[100.7, 50.2, 180.9, 400.0], [0, 0, 1920, 1080], [1900.5, 1070.2, 1950, 1100]])
    rects = rects_from_boxes(boxes, image.shape[:2])
    np.testing.assert_array_equal(rects, [[100, 50, 80, 350], [0, 0, 1920, 1080], [1900, 1070, 20, 10]])
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    got = preprocess_reference(
        [image] * 3,
        (256, 128),
        np.tile([0, 0, 128, 256], (3, 1)),
        src_rects=rects,
        swap_rb=True,
        scale=1 / 255,
        mean=mean,
        std=std,
    )
    for b, (x, y, w, h) in enumerate(rects):
        crop = cv2.resize(image[y : y + h, x : x + w], (128, 256))[..., ::-1].astype(np.float32)
        expected = (crop * np.float32(1 / 255) - np.float32(mean)) / np.float32(std)
        np.testing.assert_array_equal(got[b], expected.transpose(2, 0, 1))


def test_check_geometry_rejects_bad_rectangles() -> None:
    sizes = [(100, 200)]
    with pytest.raises(ValueError, match="rois"):
        check_geometry(sizes, (64, 64), [[0, 0, 65, 10]])
    with pytest.raises(ValueError, match="rois"):
        check_geometry(sizes, (64, 64), [[0, 0, 0, 10]])
    with pytest.raises(ValueError, match="src_rects"):
        check_geometry(sizes, (64, 64), [[0, 0, 64, 64]], [[150, 0, 51, 10]])
    with pytest.raises(ValueError, match="shape"):
        check_geometry(sizes, (64, 64), [[0, 0, 64]])
    with pytest.raises(ValueError, match="3 numbers"):
        per_channel((1.0, 2.0), "mean")


def test_check_geometry_names_the_first_bad_image_of_a_batch() -> None:
    sizes = [(100, 200), (50, 60), (100, 200), (100, 200)]
    good = [[0, 0, 64, 64]] * 4
    rects = [[0, 0, 200, 100], [0, 0, 60, 50], [150, 0, 51, 10], [0, 0, 200, 100]]
    message = r"src_rects\[2\] = \(150, 0, 51, 10\) is empty or outside the 200x100 image 2$"
    with pytest.raises(ValueError, match=message):
        check_geometry(sizes, (64, 64), good, rects)
    rois = [[0, 0, 64, 64], [0, 0, 64, 64], [0, 0, 64, 64], [10, 0, 60, 64]]
    with pytest.raises(ValueError, match=r"rois\[3\] = \(10, 0, 60, 64\) is empty or outside the 64x64 output$"):
        check_geometry(sizes, (64, 64), rois, rects[:2] + [[0, 0, 200, 100]] * 2)
    # a bad ROI and a bad crop in one batch: the first image at fault is named, its ROI before its crop
    with pytest.raises(ValueError, match=r"rois\[2\]"):
        check_geometry(sizes, (64, 64), [[0, 0, 64, 64], [0, 0, 64, 64], [0, 0, 0, 1], [0, 0, 64, 64]], rects)
    got_rois, got_rects = check_geometry(sizes, (64, 64), good)
    assert got_rects.tolist() == [[0, 0, 200, 100], [0, 0, 60, 50], [0, 0, 200, 100], [0, 0, 200, 100]]
    assert got_rois.dtype == np.int64
    assert got_rects.dtype == np.int64


def test_pack_preprocess_params_scales_are_resize_scale_bits() -> None:
    rng = np.random.default_rng(3)
    sizes = [(int(h), int(w)) for h, w in rng.integers(2, 4000, (64, 2))]
    rois = np.array([[0, 0, int(w), int(h)] for h, w in rng.integers(1, 1000, (64, 2))], np.int64)
    _, rects = check_geometry(sizes, (1000, 1000), rois)
    params = pack_preprocess_params(list(range(64)), [4096] * 64, rois, rects)
    want = [[resize_scale(int(r[2]), int(o[2])), resize_scale(int(r[3]), int(o[3]))] for r, o in zip(rects, rois)]
    assert params[:, 10:12].view(np.float64).tolist() == want


# -- the preprocessing kernel, emulated from its packed parameters ------------------------------------------


def _emulate_kernel(
    images: list[np.ndarray],
    params: np.ndarray,
    out_size: tuple[int, int],
    *,
    swap_rb: bool,
    scale: float,
    mean: np.ndarray,
    std: np.ndarray,
    pad: np.ndarray,
) -> np.ndarray:
    """The arithmetic of preprocess.cu, reading geometry and scales only from the packed parameter rows."""
    out_h, out_w = out_size
    out = np.empty((len(images), 3, out_h, out_w), np.float32)
    for b, image in enumerate(images):
        p = params[b]
        crop_x, crop_y, crop_w, crop_h = (int(v) for v in p[2:6])
        roi_x, roi_y, roi_w, roi_h = (int(v) for v in p[6:10])
        scale_x, scale_y = p[10:12].view(np.float64)

        def coords(n: int, s: float) -> tuple[np.ndarray, np.ndarray]:
            f = ((np.arange(n) + 0.5) * s - 0.5).astype(np.float32)
            i = np.floor(f).astype(np.int64)
            return (f - i.astype(np.float32)).astype(np.float32), i

        fy, sy = coords(roi_h, float(scale_y))
        by0 = np.rint((np.float32(1) - fy) * np.float32(2048)).astype(np.int64)
        by1 = np.rint(fy * np.float32(2048)).astype(np.int64)
        r0, r1 = np.clip(sy, 0, crop_h - 1), np.clip(sy + 1, 0, crop_h - 1)
        fx, sx = coords(roi_w, float(scale_x))
        fx[sx < 0], sx[sx < 0] = 0, 0
        edge = sx >= crop_w - 1
        fx[edge], sx[edge] = 0, crop_w - 1
        ax0 = np.rint((np.float32(1) - fx) * np.float32(2048)).astype(np.int64)
        ax1 = np.rint(fx * np.float32(2048)).astype(np.int64)
        c0, c1 = sx, np.minimum(sx + 1, crop_w - 1)
        src = image[crop_y : crop_y + crop_h, crop_x : crop_x + crop_w].astype(np.int64)
        h0 = src[r0][:, c0] * ax0[None, :, None] + src[r0][:, c1] * ax1[None, :, None]
        h1 = src[r1][:, c0] * ax0[None, :, None] + src[r1][:, c1] * ax1[None, :, None]
        v = (((by0[:, None, None] * (h0 >> 4)) >> 16) + ((by1[:, None, None] * (h1 >> 4)) >> 16) + 2) >> 2
        v = np.clip(v, 0, 255).astype(np.float32)
        if swap_rb:
            v = v[..., ::-1]
        plane = np.empty((out_h, out_w, 3), np.float32)
        plane[...] = pad
        plane[roi_y : roi_y + roi_h, roi_x : roi_x + roi_w] = v
        out[b] = ((plane * np.float32(scale) - mean) / std).transpose(2, 0, 1)
    return out


@pytest.mark.parametrize("swap_rb", [True, False])
def test_kernel_emulation_from_packed_params_equals_reference(swap_rb: bool) -> None:
    images = _images(6)
    transforms = [LetterboxTransform.compute(im.shape[:2], (640, 640)) for im in images]
    rois, rects = check_geometry([im.shape[:2] for im in images], (640, 640), rois_from_letterbox(transforms))
    rects[1] = (17, 9, 300, 211)  # one crop, to exercise the crop offsets
    pointers = [0x7F0000000000 + 4096 * b for b in range(3)]
    params = pack_preprocess_params(pointers, [im.strides[0] for im in images], rois, rects)
    assert params.shape == (3, PARAMS_PER_IMAGE)
    assert params.dtype == np.int64
    assert list(params[:, 0].view(np.uint64)) == pointers
    assert list(params[:, 1]) == [1920 * 3, 640 * 3, 333 * 3]
    np.testing.assert_array_equal(params[:, 2:6], rects)
    np.testing.assert_array_equal(params[:, 6:10], rois)
    assert params[0, 10:12].view(np.float64).tolist() == [1 / (640 / 1920), 1 / (360 / 1080)]

    mean, std, pad = per_channel((10.0, 20.0, 30.0), "m"), per_channel((2.0, 4.0, 8.0), "s"), per_channel(114, "p")
    emulated = _emulate_kernel(images, params, (640, 640), swap_rb=swap_rb, scale=1.5, mean=mean, std=std, pad=pad)
    reference = preprocess_reference(
        images, (640, 640), rois, src_rects=rects, pad_value=114, swap_rb=swap_rb, scale=1.5, mean=mean, std=std
    )
    np.testing.assert_array_equal(emulated, reference)


# -- decode references vs the CPU app decoders --------------------------------------------------------------


def _plugin_records(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    rec = np.empty((boxes.shape[0], YOLO_WIDTH), np.float32)
    rec[:, :4], rec[:, 4], rec[:, 5], rec[:, 6] = boxes, scores, classes, anchors
    return sort_records(rec)


@pytest.mark.parametrize("multi_label", [False, True])
def test_decode_yolov8_reference_equals_yolo_app(multi_label: bool) -> None:
    from trtapps_plugins.yolo.decode import DecodeParams, candidates_v8

    pred = synthetic_v8(2, seed=7)
    got = decode_yolov8_reference(pred, 0.25, multi_label=multi_label)
    params = DecodeParams(conf_threshold=0.25, multi_label=multi_label)
    for b in range(2):
        boxes, scores, classes = candidates_v8(pred[b], params)
        # the app does not report anchors: recover them by matching rows (boxes are unique per anchor)
        cls = pred[b, 4:]
        alive = np.flatnonzero(cls.max(axis=0) > 0.25)
        if multi_label:
            rows, _ = np.nonzero(cls[:, alive].T > 0.25)
            anchors = alive[rows]
        else:
            anchors = alive
        np.testing.assert_array_equal(got[b], _plugin_records(boxes, scores, classes, anchors))
        assert got[b].shape[0] > 50


@pytest.mark.parametrize("raw", [False, True])
def test_decode_rows_reference_equals_yolo_app(raw: bool) -> None:
    from trtapps_plugins.yolo.decode import DecodeParams, candidates_v5, decode_yolox_boxes, yolox_grid

    pred = synthetic_rows(2, anchors=3549, seed=11, raw=raw)
    grid = yolox_grid_table((416, 416)) if raw else None
    got = decode_yolo_rows_reference(pred, 0.25, grid=grid)
    for b in range(2):
        alive = np.flatnonzero(pred[b, :, 4] > 0.25)
        rows = pred[b, alive]
        if raw:
            g, s = yolox_grid((416, 416), 3549)
            rows = decode_yolox_boxes(rows, g[alive], s[alive])
        boxes, scores, classes = candidates_v5(rows, DecodeParams(conf_threshold=0.25))
        scores_all = rows[:, 5:] * rows[:, 4:5]
        anchors = alive[np.flatnonzero(scores_all.max(axis=1) > 0.25)]
        np.testing.assert_array_equal(got[b], _plugin_records(boxes, scores, classes, anchors))
        assert got[b].shape[0] > 20


def test_grid_and_priors_equal_the_apps() -> None:
    from trtapps_plugins.retinaface.retinaface import prior_boxes
    from trtapps_plugins.yolo.decode import yolox_grid

    grid, strides = yolox_grid((416, 416), 3549)
    table = yolox_grid_table((416, 416))
    np.testing.assert_array_equal(table[:, :2], grid)
    np.testing.assert_array_equal(table[:, 2:], strides)
    for size in ((640, 640), (684, 1024), (517, 333)):
        np.testing.assert_array_equal(retinaface_priors(size), prior_boxes(*size))


def test_nms_reference_equals_yolo_app_decode_and_scale_boxes() -> None:
    from trtapps_plugins.yolo.decode import DecodeParams, decode

    pred = synthetic_v8(3, seed=5)
    transforms = [LetterboxTransform.compute(s, (640, 640)) for s in SIZES]
    params = params_from_letterbox(transforms)
    candidates = decode_yolov8_reference(pred, 0.25)
    kept = nms_reference(candidates, 0.45, max_det=300, params=params, clip=True)
    for b in range(3):
        boxes, scores, classes = decode(pred[b], "v8", DecodeParams(conf_threshold=0.25, iou_threshold=0.45))
        boxes = scale_boxes(boxes, transforms[b], clip=True)
        np.testing.assert_array_equal(kept[b][:, :4], boxes)
        np.testing.assert_array_equal(kept[b][:, 4], scores)
        np.testing.assert_array_equal(kept[b][:, 5], classes)
        assert 5 < kept[b].shape[0] < candidates[b].shape[0]


def test_mapping_in_decode_equals_mapping_after() -> None:
    pred = synthetic_v8(3, seed=9)
    transforms = [LetterboxTransform.compute(s, (640, 640)) for s in SIZES]
    params = params_from_letterbox(transforms)
    mapped = decode_yolov8_reference(pred, 0.25, params=params, clip=True)
    unmapped = decode_yolov8_reference(pred, 0.25)
    for b in range(3):
        np.testing.assert_array_equal(sort_records(map_records(unmapped[b], params[b], clip=True)), mapped[b])
        expected = scale_boxes(unmapped[b][:, :4], transforms[b], clip=True)
        np.testing.assert_array_equal(map_records(unmapped[b], params[b], clip=True)[:, :4], expected)


def test_decode_retinaface_reference_equals_the_app() -> None:
    from trtapps_plugins.retinaface._common import CanvasTransform
    from trtapps_plugins.retinaface.retinaface import decode_boxes, decode_landmarks, face_scores, prior_boxes

    size = (640, 640)
    loc, conf, landmarks, logits = synthetic_faces(2, size, 3, same_faces=True)
    priors = retinaface_priors(size)
    transform = CanvasTransform.fit((1080, 1920), size)
    params = np.stack([image_params(transform.scale_x, transform.scale_y, 0, 0, 1920, 1080)] * 2)
    got = decode_retinaface_reference(loc, conf, landmarks, priors, size, 0.6, params=params)
    got_logits = decode_retinaface_reference(loc, logits, landmarks, priors, size, 0.6, logits=True, params=params)
    for b in range(2):
        scores = face_scores(conf[b], "none")
        idx = np.flatnonzero(scores > 0.6)
        boxes = decode_boxes(loc[b, idx], prior_boxes(*size)[idx]) * np.float32([640, 640, 640, 640])
        points = decode_landmarks(landmarks[b, idx], prior_boxes(*size)[idx]) * np.float32([640, 640])
        rec = np.empty((idx.size, FACE_WIDTH), np.float32)
        rec[:, :4] = transform.points_to_source(boxes)
        rec[:, 4] = scores[idx]
        rec[:, 5:15] = transform.points_to_source(points).reshape(-1, 10)
        rec[:, 15] = idx
        np.testing.assert_array_equal(got[b], sort_records(rec))
        assert got[b].shape[0] >= 30
        # logits: same faces, scores within float32 rounding of the softmax
        assert got_logits[b].shape[0] == got[b].shape[0]
        np.testing.assert_allclose(got_logits[b][:, 4], got[b][:, 4], rtol=1e-5)


def test_records_to_detections() -> None:
    yolo = np.array([[1, 2, 3, 4, 0.9, 7, 100]], np.float32)
    det = records_to_detections(yolo)
    assert det.class_ids.tolist() == [7]
    assert det.boxes.tolist() == [[1, 2, 3, 4]]
    face = np.arange(16, dtype=np.float32)[None]
    det = records_to_detections(face)
    assert det.landmarks.shape == (1, 5, 2)
    assert det.landmarks[0, 4].tolist() == [13, 14]
    assert len(records_to_detections(np.zeros((0, 7), np.float32))) == 0


@pytest.mark.parametrize("width", [YOLO_WIDTH, FACE_WIDTH])
@pytest.mark.parametrize("n", [0, 1, 9])
def test_records_to_detections_equal_checked_construction(width: int, n: int) -> None:
    """The unchecked constructor records_to_detections uses gives what the checked one gives, field by field."""
    rec = np.random.default_rng(n).uniform(0, 50, (n, width)).astype(np.float32)
    fast = records_to_detections(rec)
    checked = Detections(
        boxes=rec[:, :4], scores=rec[:, 4],
        class_ids=rec[:, 5].astype(np.int32) if width == YOLO_WIDTH else np.zeros(n, np.int32),
        landmarks=None if width == YOLO_WIDTH else rec[:, 5:15].reshape(-1, 5, 2),
    )
    for name in ("boxes", "scores", "class_ids", "landmarks", "track_ids", "embeddings"):
        got, want = getattr(fast, name), getattr(checked, name)
        if want is None:
            assert got is None, name
        else:
            assert got.dtype == want.dtype, name
            assert got.shape == want.shape, name
            np.testing.assert_array_equal(got, want, err_msg=name)


def test_params_from_letterbox_stacks_image_params() -> None:
    transforms = [LetterboxTransform.compute(size, (640, 640), centered=centered)
                  for size, centered in (((720, 1280), True), ((333, 517), False), ((1080, 1920), True))]
    want = np.stack([image_params(t.scale, t.scale, t.pad_x, t.pad_y, t.src_size[1], t.src_size[0])
                     for t in transforms])
    got = params_from_letterbox(transforms)
    assert got.dtype == np.float32
    assert np.array_equal(got, want)
    assert params_from_letterbox([]).shape == (0, 6)


# -- the bitmask NMS kernels, emulated ----------------------------------------------------------------------


def _sort_keys(records: np.ndarray) -> np.ndarray:
    """nms.cu's candidate_key: (~ordered(score bits)) << 32 | anchor << 11 | class."""
    bits = records[:, 4].astype(np.float32).view(np.uint32).astype(np.uint64)
    ordered = np.where(bits & 0x80000000, ~bits & 0xFFFFFFFF, bits | 0x80000000)
    desc = ~ordered & 0xFFFFFFFF
    yolo = records.shape[1] == YOLO_WIDTH
    anchor = records[:, 6 if yolo else 15].astype(np.uint64)
    cls = records[:, 5].astype(np.uint64) if yolo else np.zeros(records.shape[0], np.uint64)
    return (desc << np.uint64(32)) | (anchor << np.uint64(11)) | cls


def _bitmask_nms(records: np.ndarray, iou: float, *, max_det: int, class_aware: bool, plus_one: bool) -> np.ndarray:
    """sort_candidates + nms_mask + nms_scan_gather for one image, in NumPy, following the kernels' loops."""
    n = records.shape[0]
    order = np.argsort(_sort_keys(records), kind="stable")
    yolo = records.shape[1] == YOLO_WIDTH
    rec = records[order].astype(np.float64)
    off = rec[:, 5] * MAX_WH if (class_aware and yolo) else np.zeros(n)
    box = rec[:, :4] + off[:, None]
    e = 1.0 if plus_one else 0.0
    area = (box[:, 2] - box[:, 0] + e) * (box[:, 3] - box[:, 1] + e)
    words = (n + 63) // 64
    mask = np.zeros((n, words), np.uint64)
    for rb in range(words):
        for cb in range(rb, words):
            for t in range(min(64, n - rb * 64)):
                i = rb * 64 + t
                bits = 0
                for j in range(t + 1 if rb == cb else 0, min(64, n - cb * 64)):
                    k = cb * 64 + j
                    w = max(0.0, min(box[i, 2], box[k, 2]) - max(box[i, 0], box[k, 0]) + e)
                    h = max(0.0, min(box[i, 3], box[k, 3]) - max(box[i, 1], box[k, 1]) + e)
                    inter = w * h
                    union = area[i] + area[k] - inter
                    value = inter / max(union, 1e-12) if union > 0 else 0.0
                    if value > iou:
                        bits |= 1 << j
                mask[i, cb] = bits
    removed = np.zeros(words, np.uint64)
    kept: list[int] = []
    for w in range(words):
        if len(kept) >= max_det:
            break
        cur = int(removed[w])
        for j in range(min(64, n - w * 64)):
            if (cur >> j) & 1:
                continue
            i = w * 64 + j
            kept.append(int(order[i]))
            if len(kept) >= max_det:
                break
            cur |= int(mask[i, w])
            removed[w + 1 :] |= mask[i, w + 1 :]
    return records[kept]


@pytest.mark.parametrize(
    ("class_aware", "plus_one", "max_det"),
    [(True, False, 300), (False, False, 300), (True, True, 7), (False, True, 1000)],
)
def test_bitmask_nms_emulation_equals_greedy_reference(class_aware: bool, plus_one: bool, max_det: int) -> None:
    pred = synthetic_v8(2, seed=13, objects=10)
    candidates = decode_yolov8_reference(pred, 0.25, multi_label=True)
    for recs in candidates:
        rng = np.random.default_rng(len(recs))
        shuffled = recs[rng.permutation(len(recs))]  # the GPU compaction order is arbitrary
        got = _bitmask_nms(shuffled, 0.45, max_det=max_det, class_aware=class_aware, plus_one=plus_one)
        expected = nms_reference([shuffled], 0.45, max_det=max_det, class_aware=class_aware, plus_one=plus_one)[0]
        np.testing.assert_array_equal(got, expected)
        assert len(recs) > 64  # several mask words


def test_bitmask_nms_ties_and_identical_boxes() -> None:
    rec = np.zeros((130, YOLO_WIDTH), np.float32)
    rng = np.random.default_rng(0)
    rec[:, :2] = rng.uniform(0, 50, (130, 2)).round()
    rec[:, 2:4] = rec[:, :2] + rng.uniform(10, 40, (130, 2)).round()
    rec[:, 4] = rng.choice([0.5, 0.75, 0.9], 130)  # many exact ties
    rec[:, 5] = rng.integers(0, 3, 130)
    rec[:, 6] = rng.permutation(130) * 3
    rec[10:20, :4] = rec[9, :4]  # identical boxes: IoU exactly 1
    for class_aware in (True, False):
        got = _bitmask_nms(rec, 0.5, max_det=300, class_aware=class_aware, plus_one=False)
        expected = nms_reference([rec], 0.5, max_det=300, class_aware=class_aware)[0]
        np.testing.assert_array_equal(got, expected)


def test_sort_keys_order_like_sort_records() -> None:
    pred = synthetic_v8(1, seed=21)
    recs = decode_yolov8_reference(pred, 0.25, multi_label=True)[0]
    shuffled = recs[np.random.default_rng(1).permutation(len(recs))]
    keys = _sort_keys(shuffled)
    assert len(np.unique(keys)) == len(keys)
    np.testing.assert_array_equal(shuffled[np.argsort(keys)], recs)
    loc, conf, landmarks, _ = synthetic_faces(1, (320, 320), 4, same_faces=True)
    faces = decode_retinaface_reference(loc, conf, landmarks, retinaface_priors((320, 320)), (320, 320), 0.5)[0]
    reversed_faces = faces[::-1]
    np.testing.assert_array_equal(reversed_faces[np.argsort(_sort_keys(reversed_faces))], faces)


# -- kernel sources and the CuPy-free import ----------------------------------------------------------------

KERNEL_VARIANTS = [
    (("common.cuh", "preprocess.cu"), {"OUT_FP16": 0}),
    (("common.cuh", "preprocess.cu"), {"OUT_FP16": 1}),
    (("common.cuh", "decode.cu"), {"IN_FP16": 0}),
    (("common.cuh", "decode.cu"), {"IN_FP16": 1}),
    (("common.cuh", "nms.cu"), {}),
]


def test_kernel_sources_ship_with_the_package() -> None:
    from trtapps.gpu.kernels import build_source, load_source

    for name in ("common.cuh", "preprocess.cu", "decode.cu", "nms.cu"):
        assert "__" in load_source(name)
    code = build_source(("common.cuh", "preprocess.cu"), {"OUT_FP16": 1})
    assert code.startswith("#define OUT_FP16 1\n")
    assert 'extern "C" __global__ void letterbox_normalize(' in code
    with pytest.raises(FileNotFoundError):
        load_source("missing.cu")


def test_gpu_modules_import_without_cupy() -> None:
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['cupy'] = None\n"
        "import trtapps.gpu.kernels as k, trtapps.ops.cuda.preprocess, trtapps.ops.cuda.decode, trtapps.ops.cuda.nms\n"
        "from trtapps.errors import BackendUnavailableError\n"
        "try:\n    k.cupy_module()\nexcept BackendUnavailableError as e:\n    print('unavailable:', e)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "unavailable: the GPU kernels need CuPy" in result.stdout


@pytest.mark.parametrize(("sources", "defines"), KERNEL_VARIANTS)
def test_kernels_compile_with_nvrtc_without_a_gpu(sources: tuple[str, ...], defines: dict[str, int]) -> None:
    """Where CuPy and NVRTC are installed (no GPU needed): every kernel variant compiles for sm_90, no FMA."""
    pytest.importorskip("cupy")
    from trtapps.gpu.kernels import BASE_OPTIONS, build_source

    try:
        from cupy.cuda.compiler import _NVRTCProgram

        program = _NVRTCProgram(build_source(sources, defines), "trtapps.cu")
    except Exception as exc:  # NVRTC library missing, or CuPy's internals moved
        pytest.skip(f"NVRTC is not usable here ({type(exc).__name__}: {exc})")
    ptx, _ = program.compile((*BASE_OPTIONS, "-ftz=true", "-arch=compute_90"))
    text = ptx.decode() if isinstance(ptx, bytes) else ptx
    entries = {line.split()[-1].rstrip("(") for line in text.splitlines() if ".entry" in line}
    expected = {
        "preprocess.cu": {"letterbox_normalize"},
        "decode.cu": {"decode_yolov8", "decode_yolo_rows", "decode_retinaface"},
        "nms.cu": {"sort_candidates", "nms_mask", "nms_scan_gather"},
    }[sources[-1]]
    assert entries == expected
    if sources[-1] != "decode.cu":  # decode.cu's only fma come from expf's own implementation
        assert " fma." not in text
