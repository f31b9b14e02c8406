"""SCRFD app: anchor centres and decode against insightface's SCRFD (rewritten in ``face_reference``), output
matching by shape, the +1 NMS convention, bind checks and preprocessing."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import pytest
from face_reference import FakeRunner, assert_one_line_model_error, ref_scrfd_centres, ref_scrfd_detect

from trtapps.errors import ModelError
from trtapps.structures import Detections, Frame
from trtapps_plugins.retinaface import ScrfdApp, ScrfdOptions, anchor_centers

STRIDES = (8, 16, 32)


def layout(height: int, width: int, batch: int | None = 1) -> list[tuple[str, tuple[int | None, ...]]]:
    """insightface's 9 outputs (score_*, bbox_*, kps_*) for a height × width input."""
    rows = {s: (height // s) * (width // s) * 2 for s in STRIDES}
    return [
        (f"{head}_{s}", (batch, rows[s], k))
        for head, k in (("score", 1), ("bbox", 4), ("kps", 10))
        for s in STRIDES
    ]


def make_app(runner: FakeRunner, **options: Any) -> ScrfdApp:
    app = ScrfdApp(ScrfdOptions(model="scrfd.onnx", **options))
    app.bind(runner)
    return app


def random_outputs(
    rng: np.random.Generator, height: int, width: int, batch: int = 1
) -> dict[str, np.ndarray]:
    outs = {}
    for name, shape in layout(height, width, batch):
        if name.startswith("score"):
            outs[name] = rng.uniform(0, 1, shape).astype(np.float32)
        elif name.startswith("bbox"):
            outs[name] = rng.uniform(0.2, 4.0, shape).astype(np.float32)
        else:
            outs[name] = rng.normal(0, 1.5, shape).astype(np.float32)
    return outs


def frame(height: int, width: int, seed: int = 0) -> Frame:
    image = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return Frame(image=image, source="synthetic")


def run_decode(app: ScrfdApp, frames: list[Frame], outputs: dict[str, np.ndarray]) -> list[Detections]:
    _, metas = app.preprocess(frames)
    return app.decode(outputs, frames, metas)


def canonical(outputs: dict[str, np.ndarray], b: int = 0) -> list[np.ndarray]:
    """insightface's ``net_outs`` order, unbatched."""
    return [outputs[name][b] for name, _ in layout(1, 1)]


@pytest.mark.parametrize(("height", "width"), [(640, 640), (128, 160), (96, 64)])
@pytest.mark.parametrize("anchors", [1, 2])
def test_anchor_centres_equal_the_loop_reference(height: int, width: int, anchors: int) -> None:
    for stride in (8, 16, 32, 64):
        np.testing.assert_array_equal(
            anchor_centers(height, width, stride, anchors), ref_scrfd_centres(height, width, stride, anchors)
        )
    assert anchor_centers(640, 640, 8, 2).shape == (12800, 2)


@pytest.mark.parametrize(("frame_hw", "scale"), [((64, 80), 2.0), ((256, 320), 0.5), ((128, 160), 1.0)])
def test_decode_equals_insightface_reference(frame_hw: tuple[int, int], scale: float) -> None:
    height, width = 128, 160
    runner = FakeRunner([("input.1", (1, 3, None, None))], layout(height, width))
    app = make_app(runner, input_size=(height, width), conf_threshold=0.5, iou_threshold=0.4)
    outputs = random_outputs(np.random.default_rng(11), height, width)
    det = run_decode(app, [frame(*frame_hw)], outputs)[0]
    ref_det, ref_kps = ref_scrfd_detect(canonical(outputs), scale, size=(height, width))
    assert len(det) == ref_det.shape[0] > 5
    np.testing.assert_array_equal(det.scores, ref_det[:, 4])
    np.testing.assert_allclose(det.boxes, ref_det[:, :4], rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(det.landmarks, ref_kps, rtol=1e-5, atol=1e-3)


def test_outputs_are_matched_by_shape_not_name_or_order() -> None:
    height, width = 128, 160
    outputs = random_outputs(np.random.default_rng(12), height, width)
    base = make_app(FakeRunner([("input.1", (1, 3, height, width))], layout(height, width)))
    expected = run_decode(base, [frame(height, width)], outputs)[0]

    # renamed and shuffled, fixed row counts: matched by (rows, width)
    names = [n for n, _ in layout(height, width)]
    order = np.random.default_rng(0).permutation(len(names))
    renamed = {names[i]: f"out{k}" for k, i in enumerate(order)}
    shapes = dict(layout(height, width))
    runner = FakeRunner(
        [("x", (1, 3, height, width))], [(renamed[names[i]], shapes[names[i]]) for i in order]
    )
    app = make_app(runner)
    got = run_decode(app, [frame(height, width)], {renamed[n]: a for n, a in outputs.items()})[0]
    np.testing.assert_array_equal(got.boxes, expected.boxes)
    np.testing.assert_array_equal(got.landmarks, expected.landmarks)

    # dynamic row counts, reversed order: matched by the _<stride> name suffix
    dynamic = [(n, (None, None, s[2])) for n, s in reversed(layout(height, width))]
    app = make_app(FakeRunner([("x", (None, 3, None, None))], dynamic), input_size=(height, width))
    got = run_decode(app, [frame(height, width)], outputs)[0]
    np.testing.assert_array_equal(got.boxes, expected.boxes)


def test_unbatched_outputs_and_batches() -> None:
    height, width = 64, 64
    outputs = random_outputs(np.random.default_rng(13), height, width, batch=2)
    app = make_app(FakeRunner([("x", (None, 3, height, width))], layout(height, width, batch=None)))
    both = run_decode(app, [frame(height, width, 1), frame(height, width, 2)], outputs)
    assert len(both) == 2
    for b in range(2):
        ref_det, _ = ref_scrfd_detect(canonical(outputs, b), 1.0, size=(height, width))
        np.testing.assert_allclose(both[b].boxes, ref_det[:, :4], rtol=1e-5, atol=1e-3)
    # older exports give [N, k] without the batch axis: decoded as a batch of one
    unbatched = {name: array[0] for name, array in outputs.items()}
    single = run_decode(app, [frame(height, width, 1)], unbatched)[0]
    np.testing.assert_array_equal(single.boxes, both[0].boxes)
    with pytest.raises(ValueError, match="batch of 2"):
        run_decode(app, [frame(height, width, 1), frame(height, width, 2)], unbatched)


def test_nms_uses_plus_one_pixel_areas_and_threshold_is_inclusive() -> None:
    height, width = 64, 64
    outputs = {name: np.zeros(shape, np.float32) for name, shape in layout(height, width)}
    # stride 8: prior 0 sits at (0, 0), prior 2 at (8, 0); boxes [-4, -4, 12, 12] and [4, -4, 20, 12]
    outputs["score_8"][0, 0, 0] = 0.9
    outputs["score_8"][0, 2, 0] = 0.5
    outputs["bbox_8"][0, [0, 2]] = [0.5, 0.5, 1.5, 1.5]
    runner = FakeRunner([("x", (1, 3, height, width))], layout(height, width))
    at_035 = run_decode(make_app(runner, iou_threshold=0.35), [frame(height, width)], outputs)[0]
    at_037 = run_decode(make_app(runner, iou_threshold=0.37), [frame(height, width)], outputs)[0]
    assert len(at_035) == 1  # +1 IoU 0.36 > 0.35 (standard IoU would be 0.333 and keep it)
    np.testing.assert_allclose(at_035.boxes[0], [-4, -4, 12, 12])
    assert len(at_037) == 2
    assert at_037.scores.tolist() == [pytest.approx(0.9), 0.5]  # score == conf_threshold is kept
    np.testing.assert_allclose(at_037.boxes[1], [4, -4, 20, 12])
    np.testing.assert_allclose(at_037.landmarks[1], np.tile([8.0, 0.0], (5, 1)))


def test_preprocess_is_rgb_normalised_top_left() -> None:
    app = make_app(FakeRunner([("input.1", (1, 3, 64, 64))], layout(64, 64)))
    f = frame(20, 40)
    feeds, metas = app.preprocess([f])
    blob = feeds["input.1"]
    assert blob.shape == (1, 3, 64, 64)
    assert blob.dtype == np.float32
    assert metas[0].resized_size == (32, 64)
    resized = cv2.resize(f.image, (64, 32), interpolation=cv2.INTER_LINEAR).astype(np.float32)
    expected = (resized[..., ::-1] - 127.5) / 128.0
    np.testing.assert_allclose(blob[0, :, :32, :], expected.transpose(2, 0, 1), atol=1e-6)
    np.testing.assert_allclose(blob[0, :, 32:, :], -127.5 / 128.0)
    assert app.batch_key(f) is None


def test_default_size_for_dynamic_models_is_640() -> None:
    app = make_app(
        FakeRunner([("x", (None, 3, None, None))], [(n, (None, None, s[2])) for n, s in layout(640, 640)])
    )
    assert app.input_size == (640, 640)


@pytest.mark.parametrize(
    ("inputs", "outputs", "options", "fragment"),
    [
        (
            [("input", (None, 3, None, None))],
            [("loc", (None, None, 4)), ("conf", (None, None, 2)), ("landmarks", (None, None, 10))],
            {},
            "has 3",
        ),
        ([("x", (1, 3, 640, 640))], layout(640, 640)[:6], {}, "has 6"),
        ([("x", (1, 3, 640, 640))], layout(640, 640), {"input_size": (480, 640)}, "fixed at 640"),
        ([("x", (1, 3, None, None))], layout(640, 640), {"input_size": (500, 640)}, "multiple of 32"),
        ([("x", (1, 3, 640, 640))], layout(320, 320), {}, "rows"),
        (
            [("x", (1, 3, 640, 640))],
            [(n, (1, s[1], 3)) for n, s in layout(640, 640)],
            {},
            "not [B, N, 1|4|10]",
        ),
        (
            [("x", (1, 3, 640, 640))],
            [(n, (1, s[1], 4)) for n, s in layout(640, 640)],
            {},
            "0/9/0 outputs 1/4/10 wide",
        ),
    ],
)
def test_bind_refuses_models_that_do_not_fit(
    inputs: list[tuple[str, tuple[int | None, ...]]],
    outputs: list[tuple[str, tuple[int | None, ...]]],
    options: dict[str, Any],
    fragment: str,
) -> None:
    app = ScrfdApp(ScrfdOptions(model="scrfd.onnx", **options))
    with pytest.raises(ModelError) as exc:
        app.bind(FakeRunner(inputs, outputs))
    assert_one_line_model_error(exc, fragment)


def test_options_defaults() -> None:
    options = ScrfdOptions(model="m.onnx")
    assert (options.conf_threshold, options.iou_threshold, options.input_size) == (0.5, 0.4, None)
