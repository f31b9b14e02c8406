"""RetinaFace app: decode against biubug6's detect.py (rewritten in ``face_reference``) on random heads, the +1
NMS convention, conf activation, output matching, bind checks, preprocessing and the top-left canvas."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import pytest
from face_reference import FakeRunner, assert_one_line_model_error, py_cpu_nms, ref_retinaface_detect
from pydantic import ValidationError

import trtapps
from trtapps.errors import ModelError
from trtapps.ops.nms import nms
from trtapps.registry import Registry
from trtapps.stages import App
from trtapps.structures import Detections, Frame
from trtapps_plugins import retinaface as plugin
from trtapps_plugins.retinaface import (
    CanvasTransform,
    RetinaFaceApp,
    RetinaFaceOptions,
    face_scores,
    prior_boxes,
    resize_into_canvas,
)

DYNAMIC_INPUT = [("input", (None, 3, None, None))]
THREE_HEADS = [("loc", (None, None, 4)), ("conf", (None, None, 2)), ("landmarks", (None, None, 10))]


def make_app(runner: FakeRunner | None = None, **options: Any) -> RetinaFaceApp:
    app = RetinaFaceApp(RetinaFaceOptions(model="face.onnx", **options))
    app.bind(runner or FakeRunner(DYNAMIC_INPUT, THREE_HEADS))
    return app


def softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)


def random_heads(
    rng: np.random.Generator, n: int, batch: int = 1
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(loc, conf probabilities, landmarks, conf logits)``, each ``(batch, n, k)`` float32."""
    loc = rng.normal(0.0, 1.0, (batch, n, 4)).astype(np.float32)
    logits = rng.normal(0.0, 2.0, (batch, n, 2)).astype(np.float32)
    landmarks = rng.normal(0.0, 1.0, (batch, n, 10)).astype(np.float32)
    return loc, softmax(logits), landmarks, logits


def frame(height: int, width: int, seed: int = 0) -> Frame:
    image = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return Frame(image=image, source=f"synthetic_{height}x{width}")


def run_decode(app: RetinaFaceApp, frames: list[Frame], outputs: dict[str, np.ndarray]) -> list[Detections]:
    _, metas = app.preprocess(frames)
    return app.decode(outputs, frames, metas)


def assert_matches_reference(det: Detections, dets: np.ndarray, landmarks: np.ndarray) -> None:
    assert len(det) == dets.shape[0] > 0
    np.testing.assert_allclose(det.scores, dets[:, 4], rtol=0, atol=0)
    np.testing.assert_allclose(det.boxes, dets[:, :4], rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(det.landmarks, landmarks.reshape(-1, 5, 2), rtol=1e-5, atol=1e-3)
    np.testing.assert_array_equal(det.class_ids, np.zeros(len(det), np.int32))


# -- decode against the reference ------------------------------------------------------------------------------


def test_decode_without_suppression_equals_reference_decode() -> None:
    height, width = 96, 128
    n = prior_boxes(height, width).shape[0]
    loc, conf, ldm, _ = random_heads(np.random.default_rng(1), n)
    app = make_app(conf_threshold=0.5, iou_threshold=1.0, top_k=100_000, max_det=100_000)
    det = run_decode(app, [frame(height, width)], {"loc": loc, "conf": conf, "landmarks": ldm})[0]
    dets, lms = ref_retinaface_detect(
        loc[0], conf[0], ldm[0], height, width, confidence_threshold=0.5, nms_threshold=1.0
    )
    assert len(det) == int((conf[0, :, 1] > 0.5).sum())
    assert_matches_reference(det, dets, lms)


@pytest.mark.parametrize(("top_k", "max_det"), [(5000, 750), (120, 15)])
def test_decode_with_nms_equals_reference_detect(top_k: int, max_det: int) -> None:
    height, width = 160, 224
    n = prior_boxes(height, width).shape[0]
    loc, conf, ldm, _ = random_heads(np.random.default_rng(2), n)
    app = make_app(conf_threshold=0.3, iou_threshold=0.4, top_k=top_k, max_det=max_det)
    det = run_decode(app, [frame(height, width)], {"loc": loc, "conf": conf, "landmarks": ldm})[0]
    dets, lms = ref_retinaface_detect(
        loc[0], conf[0], ldm[0], height, width, confidence_threshold=0.3, top_k=top_k, keep_top_k=max_det
    )
    assert_matches_reference(det, dets, lms)
    if max_det == 15:
        assert len(det) == 15


def test_fixed_input_size_maps_back_by_the_resize_factor() -> None:
    # a 100×200 frame in a 96×128 input: width binds, resized to 64×128, factor 0.64 on both axes
    app = make_app(input_size=(96, 128), conf_threshold=0.4, iou_threshold=0.4)
    n = prior_boxes(96, 128).shape[0]
    loc, conf, ldm, _ = random_heads(np.random.default_rng(3), n)
    f = frame(100, 200)
    feeds, metas = app.preprocess([f])
    assert feeds["input"].shape == (1, 3, 96, 128)
    assert metas[0].resized_size == (64, 128)
    det = app.decode({"loc": loc, "conf": conf, "landmarks": ldm}, [f], metas)[0]
    dets, lms = ref_retinaface_detect(loc[0], conf[0], ldm[0], 96, 128, resize=0.64, confidence_threshold=0.4)
    assert_matches_reference(det, dets, lms)


def test_batch_decodes_each_image_with_its_own_heads() -> None:
    height, width = 64, 96
    n = prior_boxes(height, width).shape[0]
    loc, conf, ldm, _ = random_heads(np.random.default_rng(4), n, batch=3)
    app = make_app(conf_threshold=0.5)
    frames = [frame(height, width, seed=s) for s in range(3)]
    dets = run_decode(app, frames, {"loc": loc, "conf": conf, "landmarks": ldm})
    assert len(dets) == 3
    for b in range(3):
        ref, lms = ref_retinaface_detect(loc[b], conf[b], ldm[b], height, width, confidence_threshold=0.5)
        assert_matches_reference(dets[b], ref, lms)


def test_wrong_prior_count_is_a_clear_error() -> None:
    app = make_app()
    rng = np.random.default_rng(5)
    loc, conf, ldm, _ = random_heads(rng, prior_boxes(64, 64).shape[0] + 2)
    with pytest.raises(ValueError, match="priors"):
        run_decode(app, [frame(64, 64)], {"loc": loc, "conf": conf, "landmarks": ldm})


# -- NMS convention -------------------------------------------------------------------------------------------


def two_neighbour_heads(height: int = 64, width: int = 64) -> dict[str, np.ndarray]:
    """Only priors 0 and 2 score: 16-px squares at (4, 4) and (12, 4), loc = 0 → boxes = priors.

    IoU without +1: 128 / 384 = 0.333; with +1 pixel areas: 153 / 425 = 0.36.
    """
    n = prior_boxes(height, width).shape[0]
    conf = np.zeros((1, n, 2), np.float32)
    conf[..., 0] = 1.0
    conf[0, 0] = [0.1, 0.9]
    conf[0, 2] = [0.2, 0.8]
    return {
        "loc": np.zeros((1, n, 4), np.float32),
        "conf": conf,
        "landmarks": np.zeros((1, n, 10), np.float32),
    }


def test_nms_uses_plus_one_pixel_areas() -> None:
    heads = two_neighbour_heads()
    boxes = np.array([[-4, -4, 12, 12], [4, -4, 20, 12]], np.float64)
    # the case discriminates: standard IoU keeps both at 0.35, +1 IoU suppresses the second
    assert len(nms(boxes, np.array([0.9, 0.8]), 0.35, plus_one=False)) == 2
    assert py_cpu_nms(np.hstack([boxes, [[0.9], [0.8]]]), 0.35) == [0]

    at_035 = run_decode(make_app(iou_threshold=0.35, conf_threshold=0.5), [frame(64, 64)], heads)[0]
    at_037 = run_decode(make_app(iou_threshold=0.37, conf_threshold=0.5), [frame(64, 64)], heads)[0]
    assert len(at_035) == 1
    np.testing.assert_allclose(at_035.boxes[0], [-4, -4, 12, 12], atol=1e-5)
    assert at_035.scores[0] == pytest.approx(0.9)
    assert len(at_037) == 2


def test_conf_threshold_is_strict() -> None:
    heads = two_neighbour_heads()
    det = run_decode(make_app(conf_threshold=0.8, iou_threshold=1.0), [frame(64, 64)], heads)[0]
    assert det.scores.tolist() == [pytest.approx(0.9)]


# -- conf activation ------------------------------------------------------------------------------------------


def test_face_scores_auto_detects_logits() -> None:
    rng = np.random.default_rng(6)
    logits = rng.normal(0, 3, (50, 2)).astype(np.float32)
    probabilities = softmax(logits)
    np.testing.assert_allclose(face_scores(probabilities, "auto"), probabilities[:, 1])
    np.testing.assert_allclose(face_scores(logits, "auto"), probabilities[:, 1], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(face_scores(logits, "softmax"), probabilities[:, 1], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(face_scores(logits, "none"), logits[:, 1])
    with pytest.raises(ValueError, match="activation"):
        face_scores(logits, "sigmoid")


def test_logit_heads_give_the_same_faces_as_softmaxed_heads() -> None:
    height, width = 96, 96
    loc, conf, ldm, logits = random_heads(np.random.default_rng(7), prior_boxes(height, width).shape[0])
    app = make_app(conf_threshold=0.6)
    from_probabilities = run_decode(app, [frame(height, width)], {"loc": loc, "conf": conf, "landmarks": ldm})
    from_logits = run_decode(app, [frame(height, width)], {"loc": loc, "conf": logits, "landmarks": ldm})
    assert len(from_logits[0]) == len(from_probabilities[0]) > 0
    np.testing.assert_allclose(from_logits[0].boxes, from_probabilities[0].boxes, atol=1e-4)
    np.testing.assert_allclose(from_logits[0].scores, from_probabilities[0].scores, atol=1e-5)


# -- output matching ------------------------------------------------------------------------------------------


def test_packed_16_wide_output_decodes_like_three_heads() -> None:
    height, width = 64, 128
    loc, conf, ldm, logits = random_heads(np.random.default_rng(8), prior_boxes(height, width).shape[0])
    separate = run_decode(make_app(), [frame(height, width)], {"loc": loc, "conf": conf, "landmarks": ldm})[0]
    packed_app = make_app(FakeRunner(DYNAMIC_INPUT, [("output", (None, None, 16))]))
    # tensorRT_Pro's export drops the softmax: feed logits, as it would
    packed = np.concatenate([loc, logits, ldm], axis=-1)
    joined = run_decode(packed_app, [frame(height, width)], {"output": packed})[0]
    assert len(joined) == len(separate) > 0
    np.testing.assert_allclose(joined.boxes, separate.boxes, atol=1e-4)
    np.testing.assert_allclose(joined.landmarks, separate.landmarks, atol=1e-4)


def test_unnamed_outputs_are_matched_by_width() -> None:
    height, width = 64, 64
    loc, conf, ldm, _ = random_heads(np.random.default_rng(9), prior_boxes(height, width).shape[0])
    named = run_decode(make_app(), [frame(height, width)], {"loc": loc, "conf": conf, "landmarks": ldm})[0]
    runner = FakeRunner(
        DYNAMIC_INPUT, [("out_a", (None, None, 10)), ("out_b", (None, None, 2)), ("out_c", (None, None, 4))]
    )
    shuffled = run_decode(
        make_app(runner), [frame(height, width)], {"out_a": ldm, "out_b": conf, "out_c": loc}
    )[0]
    np.testing.assert_array_equal(shuffled.boxes, named.boxes)
    np.testing.assert_array_equal(shuffled.landmarks, named.landmarks)


# -- bind -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("inputs", "outputs", "fragment"),
    [
        ([("images", (None, 3, 256, 128))], [("output", (None, 512))], "rank 3"),
        (DYNAMIC_INPUT, [("loc", (None, None, 4)), ("conf", (None, None, 2))], "2 outputs"),
        (DYNAMIC_INPUT, [("output", (None, None, 15))], "16 wide"),
        (
            DYNAMIC_INPUT,
            [("loc", (None, None, 4)), ("conf", (None, None, 3)), ("landmarks", (None, None, 10))],
            "'conf' is 3 wide",
        ),
        (
            DYNAMIC_INPUT,
            [("a", (None, None, 4)), ("b", (None, None, 4)), ("c", (None, None, 10))],
            "4, 2 and 10",
        ),
        ([("input", (None, 1, None, None))], THREE_HEADS, "3 channels"),
        ([("input", (None, 3, None))], THREE_HEADS, "NCHW"),
        ([("a", (None, 3, None, None)), ("b", (None, 3, None, None))], THREE_HEADS, "one image input"),
        ([("input", (None, 3, 640, None))], THREE_HEADS, "app.input_size"),
        (
            [("input", (1, 3, 640, 640))],
            [("loc", (1, 16000, 4)), ("conf", (1, 16000, 2)), ("landmarks", (1, 16000, 10))],
            "16800",
        ),
        (
            DYNAMIC_INPUT,
            [("loc", (None, 16800, 4)), ("conf", (None, 16800, 2)), ("landmarks", (None, 4200, 10))],
            "disagree",
        ),
    ],
)
def test_bind_refuses_models_that_do_not_fit(
    inputs: list[tuple[str, tuple[int | None, ...]]],
    outputs: list[tuple[str, tuple[int | None, ...]]],
    fragment: str,
) -> None:
    app = RetinaFaceApp(RetinaFaceOptions(model="face.onnx"))
    with pytest.raises(ModelError) as exc:
        app.bind(FakeRunner(inputs, outputs))
    assert_one_line_model_error(exc, fragment)


def test_bind_refuses_integer_inputs() -> None:
    with pytest.raises(ModelError) as exc:
        RetinaFaceApp(RetinaFaceOptions(model="face.onnx")).bind(
            FakeRunner(DYNAMIC_INPUT, THREE_HEADS, dtype=np.uint8)
        )
    assert_one_line_model_error(exc, "floating-point")


def test_fixed_model_size_is_used_and_a_contradicting_input_size_refused() -> None:
    fixed = FakeRunner([("input", (1, 3, 480, 640))], [(n, (1, 12600, s[-1])) for n, s in THREE_HEADS])
    app = make_app(fixed)
    assert app.input_size == (480, 640)
    assert app.batch_key(frame(100, 50)) is None
    same = make_app(fixed, input_size=(480, 640))
    assert same.input_size == (480, 640)
    with pytest.raises(ModelError) as exc:
        make_app(fixed, input_size=(640, 640))
    assert_one_line_model_error(exc, "fixed at 480")


def test_batch_key_is_the_frame_size_only_at_native_size() -> None:
    native = make_app()
    assert native.input_size is None
    assert native.batch_key(frame(48, 80)) == (48, 80)
    assert native.batch_key(frame(80, 48)) != native.batch_key(frame(48, 80))
    resized = make_app(input_size=(320, 320))
    assert resized.batch_key(frame(48, 80)) is None


def test_unbound_app_refuses_to_run() -> None:
    app = RetinaFaceApp(RetinaFaceOptions(model="face.onnx"))
    with pytest.raises(RuntimeError, match="bind"):
        app.preprocess([frame(32, 32)])


# -- preprocessing --------------------------------------------------------------------------------------------


def test_native_preprocess_is_bgr_minus_mean_nchw() -> None:
    app = make_app()
    frames = [frame(40, 56, seed=1), frame(40, 56, seed=2)]
    feeds, metas = app.preprocess(frames)
    blob = feeds["input"]
    assert blob.shape == (2, 3, 40, 56)
    assert blob.dtype == np.float32
    assert blob.flags.c_contiguous
    for b, f in enumerate(frames):
        expected = f.image.astype(np.float32) - np.array([104, 117, 123], np.float32)
        np.testing.assert_array_equal(blob[b], expected.transpose(2, 0, 1))
        assert metas[b].is_identity


def test_native_preprocess_refuses_mixed_sizes() -> None:
    with pytest.raises(ValueError, match="batch_key"):
        make_app().preprocess([frame(40, 56), frame(56, 40)])


def test_fixed_preprocess_pads_with_the_mean() -> None:
    app = make_app(input_size=(64, 64), mean=(100.5, 110.0, 120.0))
    f = frame(30, 60)  # width binds: 32×64, top-left
    blob = app.preprocess([f])[0]["input"][0]
    expected = cv2.resize(f.image, (64, 32), interpolation=cv2.INTER_LINEAR).astype(np.float32)
    expected -= np.array([100.5, 110.0, 120.0], np.float32)
    np.testing.assert_array_equal(blob[:, :32, :], expected.transpose(2, 0, 1))
    assert not blob[:, 32:, :].any()


# -- the top-left canvas --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("src", "dst", "resized"),
    [
        ((684, 1024), (640, 640), (427, 640)),
        ((1080, 810), (640, 640), (640, 480)),
        ((100, 100), (640, 640), (640, 640)),
        ((720, 1280), (480, 640), (360, 640)),
        ((481, 737), (480, 640), (417, 640)),
        ((1000, 10), (64, 64), (64, 1)),
    ],
)
def test_canvas_fit_keeps_the_aspect_ratio(
    src: tuple[int, int], dst: tuple[int, int], resized: tuple[int, int]
) -> None:
    t = CanvasTransform.fit(src, dst)
    assert t.resized_size == resized
    points = np.array([[0, 0, src[1], src[0]], [3.5, 7.25, 10, 20]], np.float32)
    np.testing.assert_allclose(t.points_to_source(t.points_to_canvas(points)), points, rtol=1e-6)
    corner = t.points_to_canvas(np.array([src[1], src[0]], np.float32))
    np.testing.assert_allclose(corner, [resized[1], resized[0]], rtol=1e-6)


def test_resize_into_canvas_places_the_image_top_left() -> None:
    image = np.full((50, 100, 3), 200, np.uint8)
    canvas, t = resize_into_canvas(image, (80, 80), fill=(1, 2, 3))
    assert canvas.shape == (80, 80, 3)
    assert canvas.dtype == np.uint8
    assert t.resized_size == (40, 80)
    assert (canvas[:40] == 200).all()
    assert (canvas[40:] == np.array([1, 2, 3], np.uint8)).all()
    assert t.scale_x == pytest.approx(0.8)
    assert t.scale_y == pytest.approx(0.8)


def test_canvas_transform_refuses_the_wrong_image() -> None:
    t = CanvasTransform.fit((10, 20), (32, 32))
    with pytest.raises(ValueError, match="transform is for"):
        t.resize(np.zeros((20, 10, 3), np.uint8))


# -- options and registration ---------------------------------------------------------------------------------


def test_options_validate_bounds_and_shapes() -> None:
    options = RetinaFaceOptions(model="m.onnx", input_size=[480, 640])
    assert options.input_size == (480, 640)
    assert options.conf_threshold == 0.6
    assert (options.iou_threshold, options.top_k, options.max_det) == (0.4, 5000, 750)
    assert options.mean == (104.0, 117.0, 123.0)
    for bad in (
        {"conf_threshold": 1.5},
        {"iou_threshold": -0.1},
        {"top_k": 0},
        {"input_size": [640]},
        {"input_size": [8, 640]},
        {"conf_activation": "sigmoid"},
        {"unknown": 1},
    ):
        with pytest.raises(ValidationError):
            RetinaFaceOptions(model="m.onnx", **bad)


def test_plugin_registers_both_apps() -> None:
    specs: list[trtapps.ComponentSpec[Any]] = []
    plugin.trtapps_register_apps(register=specs.append)
    registry = Registry("app")
    for spec in specs:
        registry.add(spec, "retinaface")
    assert registry.names() == ["retinaface", "scrfd"]
    for name in ("retinaface", "scrfd"):
        spec = registry.get(name)
        assert spec.plugin == "retinaface"
        assert spec.summary
        app = spec.factory(spec.options(model="m.onnx"), trtapps.RunContext())
        assert isinstance(app, App)
        assert list(app.labels) == ["face"]
        assert app.keypoints == 5
