"""GPU kernels against their NumPy references (run on a machine with an NVIDIA GPU and CuPy).

Every output buffer is poisoned (NaN) before the launch, so a value the kernel forgot to write fails the
comparison. Preprocessing must equal ``cv2.resize`` + normalisation exactly; decode and NMS must equal the
references of :mod:`trtapps.ops.decode` exactly, except the coordinates that go through ``expf`` (YOLOX and
RetinaFace sizes), which get an ulp-level tolerance.

Run: ``pytest -m gpu tests/gpu/test_kernels.py -rA``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np
import pytest

from conftest import shared_path
from kernel_checks import assert_kernel_output  # tests/kernel_checks.py
from trtapps.errors import CudaError
from trtapps.ops.decode import (
    FACE_WIDTH,
    YOLO_WIDTH,
    decode_retinaface_reference,
    decode_yolo_rows_reference,
    decode_yolov8_reference,
    image_params,
    nms_reference,
    params_from_letterbox,
    retinaface_priors,
    sort_records,
    yolox_grid_table,
)
from trtapps.ops.letterbox import LetterboxTransform
from trtapps.ops.preprocess import preprocess_reference, rects_from_boxes, rois_from_letterbox
from trtapps.testing.heads import synthetic_faces, synthetic_rows, synthetic_v8

pytestmark = pytest.mark.gpu

SIZES = [(1080, 1920), (480, 640), (517, 333)]  # 1080p, VGA, odd sizes


@pytest.fixture(scope="module")
def cp() -> Any:
    return pytest.importorskip("cupy")


def _images(seed: int, sizes: Sequence[tuple[int, int]] = SIZES) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in sizes]


def _poisoned(cp: Any, shape: tuple[int, ...], dtype: Any) -> Any:
    return cp.full(shape, np.nan, dtype=dtype)




# -- preprocessing ------------------------------------------------------------------------------------------

# name: (centred, out size, swap_rb, scale, mean, std, pad)
CONFIGS: dict[str, tuple[Any, ...]] = {
    "raw": (True, (640, 640), False, 1.0, 0.0, 1.0, 114),  # the uint8 values themselves
    "yolov8": (True, (640, 640), True, 1.0, 0.0, 255.0, 114),  # the YOLO app's v / 255
    "yolox": (False, (416, 416), False, 1.0, 0.0, 1.0, 114),
    "retinaface": (False, (640, 640), False, 1.0, (104.0, 117.0, 123.0), 1.0, (104.0, 117.0, 123.0)),
    "imagenet": (True, (384, 640), True, 1 / 255, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), 0),
}


def _run_config(cp: Any, images: list[np.ndarray], config: str, dtype: Any, stream: Any = None) -> tuple[Any, Any]:
    from trtapps.ops.cuda.preprocess import preprocess_batch

    centred, size, swap, scale, mean, std, pad = CONFIGS[config]
    transforms = [LetterboxTransform.compute(im.shape[:2], size, centered=centred) for im in images]
    rois = rois_from_letterbox(transforms)
    out = _poisoned(cp, (len(images), 3, *size), dtype)
    sources = [cp.asarray(im) for im in images]
    preprocess_batch(sources, out, rois, pad_value=pad, swap_rb=swap, scale=scale, mean=mean, std=std, stream=stream)
    expected = preprocess_reference(
        images, size, rois, pad_value=pad, swap_rb=swap, scale=scale, mean=mean, std=std, dtype=dtype
    )
    return out, expected


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_preprocess_mixed_size_batch_matches_reference(cp: Any, config: str, dtype: Any, record_property: Any) -> None:
    out, expected = _run_config(cp, _images(1), config, dtype)
    # exact scale/mean/std: bit for bit; ImageNet constants: the same float32 operations, so equal as well, but
    # only ulp-level agreement is required (half an fp16 ulp for float16)
    exact = config in ("raw", "yolov8", "yolox", "retinaface")
    assert_kernel_output(out.get(), expected, record_property, exact=exact, rtol=1e-6 if dtype == np.float32 else 1e-3)


def test_preprocess_raw_values_equal_cv2_resize(cp: Any, record_property: Any) -> None:
    images = _images(2)
    out, _ = _run_config(cp, images, "raw", np.float32)
    got = out.get()
    for b, image in enumerate(images):
        t = LetterboxTransform.compute(image.shape[:2], (640, 640))
        new_h, new_w = t.new_size
        resized = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
        region = got[b, :, t.top : t.top + new_h, t.left : t.left + new_w].transpose(1, 2, 0)
        assert_kernel_output(region, resized.astype(np.float32), record_property, exact=True)


@pytest.mark.parametrize("name", ["bus", "zidane", "group", "street"])
def test_preprocess_real_images(cp: Any, name: str, record_property: Any) -> None:
    image = cv2.imread(str(shared_path(f"media/{name}.jpg")))
    assert image is not None
    for config in ("yolov8", "yolox", "retinaface"):
        out, expected = _run_config(cp, [image, image[::2, ::3].copy()], config, np.float32)
        assert_kernel_output(out.get(), expected, record_property, exact=True)


@pytest.mark.parametrize(
    ("src", "dst"), [((720, 1280), (360, 640)), ((640, 640), (640, 640)), ((333, 517), (666, 1034))]
)
def test_preprocess_exact_2x_and_identity(
    cp: Any, src: tuple[int, int], dst: tuple[int, int], record_property: Any
) -> None:
    # an exact 2x reduction takes cv2's INTER_AREA fast path, identity is a copy: both must still match
    from trtapps.ops.cuda.preprocess import preprocess_batch

    image = _images(3, [src])[0]
    out = _poisoned(cp, (1, 3, *dst), np.float32)
    rois = [[0, 0, dst[1], dst[0]]]
    preprocess_batch([cp.asarray(image)], out, rois)
    expected = cv2.resize(image, (dst[1], dst[0]), interpolation=cv2.INTER_LINEAR).astype(np.float32)
    assert_kernel_output(out.get()[0].transpose(1, 2, 0), expected, record_property, exact=True)


def test_preprocess_reid_crops(cp: Any, record_property: Any) -> None:
    from trtapps.ops.cuda.preprocess import preprocess_batch

    image = _images(4, [(1080, 1920)])[0]
    boxes = np.array([[100.7, 50.2, 180.9, 400.0], [0, 0, 1920, 1080], [1900.5, 1070.2, 1950, 1100], [5, 7, 6, 9]])
    rects = rects_from_boxes(boxes, image.shape[:2])
    rois = np.tile([0, 0, 128, 256], (len(boxes), 1))
    kwargs = {"swap_rb": True, "scale": 1 / 255, "mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)}
    device_image = cp.asarray(image)
    out = _poisoned(cp, (len(boxes), 3, 256, 128), np.float32)
    preprocess_batch([device_image] * len(boxes), out, rois, src_rects=rects, **kwargs)
    expected = preprocess_reference([image] * len(boxes), (256, 128), rois, src_rects=rects, **kwargs)
    assert_kernel_output(out.get(), expected, record_property, exact=False)


def test_preprocess_pitched_views_and_4d_batches(cp: Any, record_property: Any) -> None:
    from trtapps.ops.cuda.preprocess import preprocess_batch

    big = _images(5, [(700, 900)])[0]
    view = cp.asarray(big)[10:527, 20:353]  # rows 900*3 bytes apart, 333 pixels wide
    assert view.strides[0] == 900 * 3
    out = _poisoned(cp, (1, 3, 640, 640), np.float32)
    t = LetterboxTransform.compute((517, 333), (640, 640))
    preprocess_batch([view], out, rois_from_letterbox([t]))
    expected = preprocess_reference([big[10:527, 20:353]], (640, 640), rois_from_letterbox([t]))
    assert_kernel_output(out.get(), expected, record_property, exact=True)

    stack = _images(6, [(480, 640)] * 4)
    out4 = _poisoned(cp, (4, 3, 640, 640), np.float16)
    rois = rois_from_letterbox([LetterboxTransform.compute((480, 640), (640, 640))] * 4)
    preprocess_batch(cp.asarray(np.stack(stack)), out4, rois, swap_rb=True, std=255.0)
    expected4 = preprocess_reference(stack, (640, 640), rois, swap_rb=True, std=255.0, dtype=np.float16)
    assert_kernel_output(out4.get(), expected4, record_property, exact=True)


def test_preprocess_on_a_side_stream(cp: Any, record_property: Any) -> None:
    stream = cp.cuda.Stream(non_blocking=True)
    out, expected = _run_config(cp, _images(7), "yolov8", np.float32, stream=stream)
    stream.synchronize()
    assert_kernel_output(out.get(), expected, record_property, exact=True)


def test_preprocess_rejects_bad_arguments(cp: Any) -> None:
    from trtapps.ops.cuda.preprocess import preprocess_batch

    image = cp.zeros((10, 10, 3), cp.uint8)
    out = cp.zeros((1, 3, 8, 8), cp.float32)
    with pytest.raises(ValueError, match="rois"):
        preprocess_batch([image], out, [[0, 0, 9, 8]])
    with pytest.raises(ValueError, match="uint8"):
        preprocess_batch([image.astype(cp.float32)], out, [[0, 0, 8, 8]])
    with pytest.raises(ValueError, match="packed pixels"):
        preprocess_batch([cp.zeros((10, 10, 4), cp.uint8)[..., :3]], out, [[0, 0, 8, 8]])
    with pytest.raises(ValueError, match="source images"):
        preprocess_batch([image, image], out, [[0, 0, 8, 8]])
    with pytest.raises(ValueError, match="float32 or float16"):
        preprocess_batch([image], cp.zeros((1, 3, 8, 8), cp.float64), [[0, 0, 8, 8]])


# -- decode helpers (the synthetic heads are trtapps.testing.heads) ------------------------------------------


def _params(sizes: Sequence[tuple[int, int]], input_size: tuple[int, int], centred: bool = True) -> np.ndarray:
    return params_from_letterbox([LetterboxTransform.compute(s, input_size, centered=centred) for s in sizes])


def _candidates_host(candidates: Any) -> tuple[np.ndarray, list[np.ndarray]]:
    counts = candidates.counts.get()
    records = candidates.records.get()
    valid = [records[b, : min(int(c), candidates.capacity)] for b, c in enumerate(counts)]
    for b, rows in enumerate(valid):
        assert not np.isnan(rows).any(), f"image {b}: a candidate slot below the count was not written"
    return counts, [sort_records(v) for v in valid]


def _poisoned_candidates(cp: Any, batch: int, capacity: int, width: int) -> Any:
    from trtapps.ops.cuda.decode import Candidates

    return Candidates(_poisoned(cp, (batch, capacity, width), np.float32), cp.full((batch,), -7, cp.int32))


def _assert_records(got: list[np.ndarray], expected: list[np.ndarray], *, exp_cols: Sequence[int] = ()) -> None:
    """Equal record lists; columns in *exp_cols* (coordinates through expf) within an ulp-level tolerance."""
    assert [len(g) for g in got] == [len(e) for e in expected]
    for g, e in zip(got, expected, strict=True):
        exact = [c for c in range(e.shape[1]) if c not in exp_cols]
        np.testing.assert_array_equal(g[:, exact], e[:, exact])
        if exp_cols:
            np.testing.assert_allclose(g[:, list(exp_cols)], e[:, list(exp_cols)], rtol=2e-6, atol=1e-4)


# -- decode -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize("multi_label", [False, True])
@pytest.mark.parametrize("mapped", [False, True])
def test_decode_yolov8_matches_reference(cp: Any, dtype: Any, multi_label: bool, mapped: bool) -> None:
    from trtapps.ops.cuda.decode import decode_yolov8

    pred = synthetic_v8(3, seed=1).astype(dtype)
    params = _params(SIZES, (640, 640)) if mapped else None
    out = _poisoned_candidates(cp, 3, 4096, YOLO_WIDTH)
    result = decode_yolov8(cp.asarray(pred), 0.25, params=params, multi_label=multi_label, out=out)
    counts, got = _candidates_host(result)
    expected = decode_yolov8_reference(pred, 0.25, params=params, multi_label=multi_label)
    assert counts.tolist() == [len(e) for e in expected]
    assert min(counts) > 50
    _assert_records(got, expected)


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_decode_yolov5_matches_reference(cp: Any, dtype: Any) -> None:
    from trtapps.ops.cuda.decode import decode_yolov5

    pred = synthetic_rows(3, anchors=25200, seed=2).astype(dtype)
    params = _params(SIZES, (640, 640))
    for multi_label in (False, True):
        out = _poisoned_candidates(cp, 3, 4096, YOLO_WIDTH)
        result = decode_yolov5(cp.asarray(pred), 0.3, params=params, multi_label=multi_label, out=out)
        counts, got = _candidates_host(result)
        expected = decode_yolo_rows_reference(pred, 0.3, params=params, multi_label=multi_label)
        assert min(counts) > 20
        _assert_records(got, expected)


def test_decode_yolox_matches_reference(cp: Any) -> None:
    from trtapps.ops.cuda.decode import decode_yolox

    pred = synthetic_rows(2, anchors=3549, seed=3, raw=True)
    params = _params(SIZES[:2], (416, 416), centred=False)
    result = decode_yolox(cp.asarray(pred), 0.3, input_size=(416, 416), params=params)
    counts, got = _candidates_host(result)
    expected = decode_yolo_rows_reference(pred, 0.3, grid=yolox_grid_table((416, 416)), params=params)
    assert min(counts) > 20
    _assert_records(got, expected, exp_cols=(0, 1, 2, 3))
    with pytest.raises(ValueError, match="rows"):
        decode_yolox(cp.asarray(pred), 0.3, input_size=(640, 640))


@pytest.mark.parametrize("layout", ["separate", "packed"])
@pytest.mark.parametrize("logits", [False, True])
def test_decode_retinaface_matches_reference(cp: Any, layout: str, logits: bool) -> None:
    from trtapps.ops.cuda.decode import decode_retinaface

    size = (640, 640)
    loc, conf, landmarks, raw_logits = synthetic_faces(2, size, 4)
    scores = raw_logits if logits else conf
    params = np.stack([image_params(640 / 1920, 360 / 1080, 0, 0, 1920, 1080)] * 2)
    if layout == "packed":
        packed = cp.asarray(np.concatenate([loc, scores, landmarks], axis=-1))
        heads = (packed[..., 0:4], packed[..., 4:6], packed[..., 6:16])
    else:
        heads = (cp.asarray(loc), cp.asarray(scores), cp.asarray(landmarks))
    out = _poisoned_candidates(cp, 2, 1024, FACE_WIDTH)
    result = decode_retinaface(*heads, 0.6, input_size=size, logits=logits, params=params, out=out)
    counts, got = _candidates_host(result)
    expected = decode_retinaface_reference(
        loc, scores, landmarks, retinaface_priors(size), size, 0.6, logits=logits, params=params
    )
    assert min(counts) >= 30
    if logits:  # the score itself goes through expf: compare image by image in anchor order
        got = [g[np.argsort(g[:, 15])] for g in got]
        expected = [e[np.argsort(e[:, 15])] for e in expected]
        _assert_records(got, expected, exp_cols=(0, 1, 2, 3, 4))
    else:
        _assert_records(got, expected, exp_cols=(0, 1, 2, 3))


def test_decode_with_nothing_above_the_threshold(cp: Any) -> None:
    from trtapps.ops.cuda.decode import decode_yolov5, decode_yolov8

    pred = synthetic_v8(2, seed=5)
    out = _poisoned_candidates(cp, 2, 256, YOLO_WIDTH)
    assert decode_yolov8(cp.asarray(pred), 0.99, out=out).counts.get().tolist() == [0, 0]
    rows = synthetic_rows(2, seed=5)
    assert decode_yolov5(cp.asarray(rows), 0.99).counts.get().tolist() == [0, 0]


def test_decode_overflow_is_counted_and_stays_in_bounds(cp: Any) -> None:
    from trtapps.ops.cuda.decode import decode_yolov8

    pred = synthetic_v8(2, seed=6)
    pred[1, 4:] = 0.0  # image 1: no candidates at all
    pred[1, 4, :5] = 0.9  # ... but five
    out = _poisoned_candidates(cp, 2, 64, YOLO_WIDTH)
    result = decode_yolov8(cp.asarray(pred), 0.25, multi_label=True, out=out)
    counts = result.counts.get()
    expected = decode_yolov8_reference(pred, 0.25, multi_label=True)
    assert counts.tolist() == [len(expected[0]), 5]
    assert counts[0] > 64  # overflowed: the counter kept counting
    records = result.records.get()
    assert not np.isnan(records[0]).any()  # every slot of the full image written
    members = {tuple(r) for r in expected[0]}
    assert all(tuple(r) in members for r in records[0])  # ... with real candidates
    np.testing.assert_array_equal(sort_records(records[1, :5]), expected[1])  # image 1 untouched by image 0
    assert np.isnan(records[1, 5:]).all()


# -- NMS ----------------------------------------------------------------------------------------------------


def _host_lists(host: Any) -> list[np.ndarray]:
    lists = [np.array(host.records_of(b)) for b in range(host.records.shape[0])]
    for b in range(host.records.shape[0]):
        assert not host.records[b, int(host.kept[b]) :].any(), "rows past the kept count must be zero"
    return lists


@pytest.mark.parametrize(
    ("class_aware", "plus_one", "max_det", "map_after"),
    [(True, False, 300, True), (False, False, 300, True), (True, True, 5, False), (False, True, 1000, False)],
)
def test_nms_matches_reference(cp: Any, class_aware: bool, plus_one: bool, max_det: int, map_after: bool) -> None:
    from trtapps.ops.cuda.decode import decode_yolov8
    from trtapps.ops.cuda.nms import download_compact, nms_batched

    pred = synthetic_v8(3, seed=7, objects=15)
    params = _params(SIZES, (640, 640))
    candidates = decode_yolov8(cp.asarray(pred), 0.25, multi_label=True, params=None if map_after else params)
    compact = nms_batched(
        candidates,
        0.45,
        max_det=max_det,
        class_aware=class_aware,
        plus_one=plus_one,
        params=params if map_after else None,
    )
    host = download_compact(compact)
    expected_candidates = decode_yolov8_reference(pred, 0.25, multi_label=True, params=None if map_after else params)
    expected = nms_reference(
        expected_candidates,
        0.45,
        max_det=max_det,
        class_aware=class_aware,
        plus_one=plus_one,
        params=params if map_after else None,
    )
    assert host.found.tolist() == [len(c) for c in expected_candidates]
    assert host.kept.tolist() == [len(e) for e in expected]
    assert not host.overflowed.any()
    for got, exp in zip(_host_lists(host), expected, strict=True):
        np.testing.assert_array_equal(got, exp)  # same records, same (greedy) order
    assert min(host.kept) >= min(5, max_det)


def test_nms_ties_identical_boxes_and_shuffled_slots(cp: Any) -> None:
    from trtapps.ops.cuda.decode import Candidates
    from trtapps.ops.cuda.nms import download_compact, nms_batched

    rng = np.random.default_rng(8)
    batch, n, capacity = 2, 300, 512
    rec = np.zeros((batch, capacity, YOLO_WIDTH), np.float32)
    for b in range(batch):
        r = rec[b, :n]
        r[:, :2] = rng.uniform(0, 60, (n, 2)).round()
        r[:, 2:4] = r[:, :2] + rng.uniform(10, 40, (n, 2)).round()
        r[:, 4] = rng.choice([0.5, 0.75, 0.9], n)  # exact score ties everywhere
        r[:, 5] = rng.integers(0, 3, n)
        r[:, 6] = rng.permutation(n) * 7  # unique anchors, slots not in anchor order
        r[20:40, :4] = r[19, :4]  # identical boxes (IoU exactly 1)
        r[20:40, 4] = r[19, 4]
    counts = np.array([n, n - 50], np.int32)
    for class_aware in (True, False):
        cands = Candidates(cp.asarray(rec), cp.asarray(counts))
        host = download_compact(nms_batched(cands, 0.5, max_det=300, class_aware=class_aware))
        expected = nms_reference([rec[0, :n], rec[1, : n - 50]], 0.5, max_det=300, class_aware=class_aware)
        for got, exp in zip(_host_lists(host), expected, strict=True):
            np.testing.assert_array_equal(got, exp)


def test_nms_sorts_large_images_in_global_memory(cp: Any) -> None:
    """More than 4096 candidates in an image: its sort runs in the global scratch; the image beside it, with a
    few candidates in the same large buffer, sorts in shared memory. Both equal the reference."""
    from trtapps.ops.cuda.decode import decode_yolov8
    from trtapps.ops.cuda.nms import download_compact, nms_batched

    pred = synthetic_v8(3, seed=9, objects=30)
    pred[1, 4:] *= 0.02  # few candidates over the threshold in this image
    candidates = decode_yolov8(cp.asarray(pred), 0.005, multi_label=True, capacity=8192)
    found = candidates.counts.get()
    assert (found[[0, 2]] > 4096).all()
    assert 0 < found[1] < 4096
    assert (found <= 8192).all()
    compact = nms_batched(candidates, 0.6, max_det=1000)
    compact.records.fill(np.nan)  # poison, then run again into the same buffer
    host = download_compact(nms_batched(candidates, 0.6, max_det=1000, out=compact))
    expected = nms_reference(decode_yolov8_reference(pred, 0.005, multi_label=True), 0.6, max_det=1000)
    for got, exp in zip(_host_lists(host), expected, strict=True):
        np.testing.assert_array_equal(got, exp)


def test_nms_few_candidates_in_a_large_buffer(cp: Any) -> None:
    """The app's usual case: a buffer for all 8400 anchors of odd-sized real-like heads, a few dozen candidates
    per image (and one image with none)."""
    from trtapps.ops.cuda.decode import decode_yolov8
    from trtapps.ops.cuda.nms import download_compact, nms_batched

    pred = synthetic_v8(5, seed=12, objects=20)
    pred[3, 4:] = 0.0
    candidates = decode_yolov8(cp.asarray(pred), 0.25, capacity=8400)
    found = candidates.counts.get()
    assert found[3] == 0
    assert (found[[0, 1, 2, 4]] > 0).all()
    host = download_compact(nms_batched(candidates, 0.45, max_det=300))
    expected = nms_reference(decode_yolov8_reference(pred, 0.25), 0.45, max_det=300)
    for got, exp in zip(_host_lists(host), expected, strict=True):
        np.testing.assert_array_equal(got, exp)


def test_nms_empty_images_and_overflow_flags(cp: Any) -> None:
    from trtapps.ops.cuda.decode import decode_yolov8
    from trtapps.ops.cuda.nms import download_compact, nms_batched

    pred = synthetic_v8(2, seed=10)
    pred[0, 4:] = 0.0
    candidates = decode_yolov8(cp.asarray(pred), 0.25, capacity=32)
    compact = nms_batched(candidates, 0.45, max_det=100)
    compact.records.fill(np.nan)  # poison, then run again into the same buffer
    compact = nms_batched(candidates, 0.45, max_det=100, out=compact)
    host = download_compact(compact)
    assert host.kept[0] == 0
    assert host.found[0] == 0
    assert not host.records[0].any()
    assert host.found[1] > 32
    assert host.overflowed.tolist() == [False, True]
    assert 0 < host.kept[1] <= 32
    assert not np.isnan(host.records).any()


def test_retinaface_decode_and_nms_match_reference(cp: Any) -> None:
    from trtapps.ops.cuda.decode import decode_retinaface
    from trtapps.ops.cuda.nms import download_compact, nms_batched

    size = (480, 640)
    loc, conf, landmarks, _ = synthetic_faces(2, size, 11)
    loc[:, :, 2:] = 0.0  # sizes without expf rounding, so NMS decisions are bit-comparable
    params = np.stack([image_params(0.5, 0.5, 0, 0, 1280, 960)] * 2)
    cands = decode_retinaface(
        cp.asarray(loc), cp.asarray(conf), cp.asarray(landmarks), 0.02, input_size=size, params=params
    )
    host = download_compact(nms_batched(cands, 0.4, max_det=750, plus_one=True))
    expected = nms_reference(
        decode_retinaface_reference(loc, conf, landmarks, retinaface_priors(size), size, 0.02, params=params),
        0.4,
        max_det=750,
        plus_one=True,
    )
    for got, exp in zip(_host_lists(host), expected, strict=True):
        np.testing.assert_array_equal(got, exp)
    det = host.detections(0)
    assert det.landmarks is not None
    assert det.landmarks.shape == (int(host.kept[0]), 5, 2)


def test_download_compact_reuses_its_pinned_buffer(cp: Any) -> None:
    from trtapps.ops.cuda.decode import decode_yolov8
    from trtapps.ops.cuda.nms import download_compact, nms_batched

    stream = cp.cuda.Stream(non_blocking=True)
    pred = cp.asarray(synthetic_v8(2, seed=12))
    compact = nms_batched(decode_yolov8(pred, 0.25, stream=stream), 0.45, stream=stream)
    first = download_compact(compact, stream=stream)
    kept = first.kept.copy()
    second = download_compact(compact, out=first.storage, stream=stream)
    assert second.storage is first.storage
    assert second.kept.tolist() == kept.tolist()
    det = second.detections(1)
    assert len(det) == kept[1]


# -- kernels module -----------------------------------------------------------------------------------------


def test_kernels_are_memoised_and_launch_errors_name_the_kernel(cp: Any) -> None:
    from trtapps.gpu.kernels import get_function

    kernel = get_function(("common.cuh", "nms.cu"), "sort_candidates")
    assert get_function(("common.cuh", "nms.cu"), "sort_candidates") is kernel
    records = cp.zeros((1, 8, YOLO_WIDTH), cp.float32)
    records[0, :, 4] = cp.arange(8, dtype=cp.float32)  # scores 0..7: best last
    counts = cp.full((1,), 8, cp.int32)
    order = cp.full((1, 8), -1, cp.int32)
    null = np.uint64(0)
    args = (records, counts, np.int32(8), np.int32(YOLO_WIDTH), np.int32(5), np.int32(6), np.int32(8), null, null,
            np.int32(0), order)
    with pytest.raises(CudaError, match="sort_candidates"):
        kernel((1,), (2048,), args, shared_mem=80)  # more threads per block than any GPU allows
    kernel((1,), (8,), args, shared_mem=80)  # the failed launch left no sticky error
    assert order.get()[0].tolist() == [7, 6, 5, 4, 3, 2, 1, 0]  # best score first
    with pytest.raises(CudaError, match="no_such_kernel"):
        get_function(("common.cuh", "nms.cu"), "no_such_kernel")


# -- real models: GPU post-processing of ONNX Runtime (CPU) outputs vs the CPU apps -------------------------


def test_yolov8_real_outputs_match_the_cpu_app(cp: Any) -> None:
    ort = pytest.importorskip("onnxruntime")
    from trtapps.ops.cuda.decode import decode_yolov8
    from trtapps.ops.cuda.nms import download_compact, nms_batched
    from trtapps.ops.cuda.preprocess import preprocess_batch
    from trtapps.ops.letterbox import scale_boxes
    from trtapps_plugins.yolo.decode import DecodeParams, decode

    names = ("bus", "zidane", "street")
    images = [cv2.imread(str(shared_path(f"media/{n}.jpg"))) for n in names]
    session = ort.InferenceSession(str(shared_path("models/yolov8n_dequant.onnx")), providers=["CPUExecutionProvider"])
    transforms = [LetterboxTransform.compute(im.shape[:2], (640, 640)) for im in images]
    blob = cp.full((3, 3, 640, 640), np.nan, cp.float32)
    preprocess_batch([cp.asarray(im) for im in images], blob, rois_from_letterbox(transforms), swap_rb=True, std=255.0)
    expected_blob = preprocess_reference(images, (640, 640), rois_from_letterbox(transforms), swap_rb=True, std=255.0)
    np.testing.assert_array_equal(blob.get(), expected_blob)
    pred = session.run(None, {"images": expected_blob})[0]
    host = download_compact(
        nms_batched(decode_yolov8(cp.asarray(pred), 0.25), 0.45, params=params_from_letterbox(transforms))
    )
    for b in range(3):
        boxes, scores, classes = decode(pred[b], "v8", DecodeParams(conf_threshold=0.25, iou_threshold=0.45))
        got = host.records_of(b)
        np.testing.assert_array_equal(got[:, :4], scale_boxes(boxes, transforms[b]))
        np.testing.assert_array_equal(got[:, 4], scores)
        np.testing.assert_array_equal(got[:, 5], classes)
    assert int(host.kept[0]) >= 5  # bus.jpg: 4 persons and the bus


def test_retinaface_real_outputs_find_the_manifest_faces(cp: Any) -> None:
    ort = pytest.importorskip("onnxruntime")
    from trtapps.ops.cuda.decode import decode_retinaface
    from trtapps.ops.cuda.nms import download_compact, nms_batched
    from trtapps.ops.cuda.preprocess import preprocess_batch

    image = cv2.imread(str(shared_path("media/group.jpg")))  # 1024x684: 24 faces at conf 0.6, NMS 0.4
    h, w = image.shape[:2]
    session = ort.InferenceSession(
        str(shared_path("models/retinaface_mnet025.onnx")), providers=["CPUExecutionProvider"]
    )
    mean = (104.0, 117.0, 123.0)
    blob = cp.full((1, 3, h, w), np.nan, cp.float32)
    preprocess_batch([cp.asarray(image)], blob, [[0, 0, w, h]], mean=mean)
    host_blob = blob.get()
    np.testing.assert_array_equal(host_blob, (image.astype(np.float32) - np.float32(mean)).transpose(2, 0, 1)[None])
    loc, conf, landmarks = session.run(["loc", "conf", "landmarks"], {"input": host_blob})
    cands = decode_retinaface(cp.asarray(loc), cp.asarray(conf), cp.asarray(landmarks), 0.6, input_size=(h, w))
    host = download_compact(nms_batched(cands, 0.4, max_det=750, plus_one=True))
    expected = nms_reference(
        decode_retinaface_reference(loc, conf, landmarks, retinaface_priors((h, w)), (h, w), 0.6),
        0.4,
        max_det=750,
        plus_one=True,
    )[0]
    assert int(host.kept[0]) == len(expected) == 24
    got = host.records_of(0)
    np.testing.assert_array_equal(got[:, 4], expected[:, 4])
    np.testing.assert_allclose(got[:, :4], expected[:, :4], rtol=2e-6, atol=1e-3)
    np.testing.assert_allclose(got[:, 5:], expected[:, 5:], rtol=2e-6, atol=1e-3)
