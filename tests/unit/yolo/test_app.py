"""App ``yolo``: options, registration, model binding (variant, size, names, misfits), preprocessing, decoding,
and end-to-end runs of the real models in ``TRTAPPS_DATA`` through ONNX Runtime."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pluggy
import pytest
from pydantic import ValidationError

from conftest import shared_path  # tests/conftest.py, on sys.path through pytest's rootdir conftest import
from trtapps import ConfigError, Detections, Frame, ModelError, RunContext, Runner, TensorInfo
from trtapps.hookspecs import PROJECT
from trtapps.ops.letterbox import LetterboxTransform, letterbox
from trtapps.registry import ComponentSpec, Registry
from trtapps.runners.onnxruntime import OnnxRuntimeRunner
from trtapps_plugins import yolo as yolo_plugin
from trtapps_plugins.yolo.app import YoloApp, create_app
from trtapps_plugins.yolo.decode import yolox_grid
from trtapps_plugins.yolo.names import COCO80
from trtapps_plugins.yolo.options import YoloOptions

NAMES3 = "{0: 'cat', 1: 'dog', 2: 'bird'}"


class FakeRunner(Runner):
    """A runner with a made-up model description; ``infer`` returns what *respond* computes from the feeds."""

    backend = "fake"

    def __init__(
        self,
        input_shape: tuple[int | None, ...] = (None, 3, 640, 640),
        output_shapes: Sequence[tuple[int | None, ...]] = ((None, 84, 8400),),
        metadata: Mapping[str, str] | None = None,
        respond: Callable[[Mapping[str, Any]], np.ndarray] | None = None,
        dtype: Any = np.float32,
        inputs: int = 1,
    ) -> None:
        self.model_path = Path("/models/fake.onnx")
        self.inputs = [TensorInfo(f"images{i or ''}", input_shape, np.dtype(dtype)) for i in range(inputs)]
        self.outputs = [TensorInfo(f"output{i}", s, np.dtype(np.float32)) for i, s in enumerate(output_shapes)]
        self.metadata = dict(metadata or {})
        self.respond = respond
        self.calls = 0

    def _infer(self, feeds: Mapping[str, Any], stream: Any) -> dict[str, Any]:
        self.calls += 1
        assert self.respond is not None, "this fake model was not expected to run"
        return {self.outputs[0].name: self.respond(feeds)}


def bound(runner: Runner, **options: Any) -> YoloApp:
    app = create_app(YoloOptions(model="fake.onnx", **options), RunContext())
    app.bind(runner)
    return app


def yolox_head(decoded: bool) -> Callable[[Mapping[str, Any]], np.ndarray]:
    """A 416² YOLOX-nano-shaped head (1, 3549, 85): raw grid offsets, or the same boxes decoded to pixels."""

    def respond(feeds: Mapping[str, Any]) -> np.ndarray:
        rng = np.random.default_rng(0)
        rows = np.zeros((3549, 85), np.float32)
        rows[:, :2] = rng.uniform(-0.5, 1.5, (3549, 2))
        rows[:, 2:4] = rng.normal(0, 1, (3549, 2))
        if decoded:
            grid, strides = yolox_grid((416, 416), 3549)
            rows[:, :2] = (rows[:, :2] + grid) * strides
            rows[:, 2:4] = np.exp(rows[:, 2:4]) * strides
        return rows[None]

    return respond


def run(app: YoloApp, runner: Runner, images: Sequence[np.ndarray]) -> list[Detections]:
    frames = [Frame(image, f"image{i}") for i, image in enumerate(images)]
    feeds, metas = app.preprocess(frames)
    return app.decode(runner.infer(feeds), frames, metas)


def one_line_model_error(excinfo: pytest.ExceptionInfo[ModelError]) -> str:
    message = str(excinfo.value)
    assert "\n" not in message
    return message


# -- options and registration ----------------------------------------------------------------------------------


def test_option_defaults() -> None:
    o = YoloOptions(model="m.onnx")
    assert o.type == "yolo"
    assert (o.variant, o.conf_threshold, o.iou_threshold, o.max_det) == ("auto", 0.25, 0.45, 300)
    assert (o.agnostic_nms, o.multi_label, o.yolox_legacy) == (False, False, False)
    assert o.input_size is None
    assert o.names is None
    assert all(field.description for field in YoloOptions.model_fields.values())


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("conf_threshold", 1.5, "less than or equal to 1"),
        ("iou_threshold", -0.1, "greater than or equal to 0"),
        ("max_det", 0, "greater than or equal to 1"),
        ("variant", "v7", "'auto', 'v5', 'v8' or 'yolox'"),
        ("input_size", [100, 100], "multiples of 32"),
        ("input_size", [640, 640, 3], "at most 2 items"),
        ("names", [], "non-empty"),
        ("type", "retinaface", "'yolo'"),
        ("conf", 0.3, "Extra inputs are not permitted"),
    ],
)
def test_bad_options_are_pydantic_errors(field: str, value: Any, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        YoloOptions(model="m.onnx", **{field: value})


def test_input_size_accepts_one_number_for_a_square() -> None:
    assert YoloOptions.model_validate({"model": "m.onnx", "input_size": 320}).input_size == (320, 320)
    assert YoloOptions.model_validate({"model": "m.onnx", "input_size": [384, 640]}).input_size == (384, 640)


def test_plugin_registers_app_yolo() -> None:
    pm = pluggy.PluginManager(PROJECT)
    pm.register(yolo_plugin)
    specs: list[ComponentSpec[Any]] = []
    pm.hook.trtapps_register_apps(register=specs.append)
    assert [s.name for s in specs] == ["yolo"]
    registry = Registry("app")
    registry.add(specs[0], "yolo")  # validates the options base and the name
    spec = registry.get("yolo")
    assert spec.options is YoloOptions
    assert spec.summary
    app = spec.factory(YoloOptions(model="m.onnx"), RunContext())
    assert isinstance(app, YoloApp)
    assert app.batch_key(Frame(np.zeros((4, 4, 3), np.uint8), "x")) is None


# -- binding: variant, input size, names, classes ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("output", "metadata", "respond", "variant", "layout"),
    [
        ((None, 84, 8400), {}, None, "v8", "v8"),
        ((None, 84, None), {}, None, "v8", "v8"),  # dynamic anchors: channel-first all the same
        ((1, 25200, 85), {"stride": "32", "names": "{0: 'person'}"}, None, "v5", "v5"),
        ((1, 3549, 85), {}, yolox_head(decoded=False), "yolox", "yolox_raw"),
        ((1, 3549, 85), {}, yolox_head(decoded=True), "yolox", "v5"),
    ],
)
def test_variant_is_detected_from_layout_and_metadata(
    output: tuple[int | None, ...], metadata: dict[str, str], respond: Any, variant: str, layout: str
) -> None:
    size = 416 if output[1] == 3549 else 640
    app = bound(FakeRunner((1, 3, size, size), [output], metadata, respond))
    assert (app.head.variant, app.head.layout) == (variant, layout)


def test_explicit_variant_wins() -> None:
    ultralytics_meta = {"stride": "32"}
    runner = FakeRunner((1, 3, 416, 416), [(1, 3549, 85)], ultralytics_meta, yolox_head(decoded=False))
    assert bound(runner).head.variant == "v5"
    assert bound(runner, variant="yolox").head.layout == "yolox_raw"
    plain = FakeRunner((1, 3, 416, 416), [(1, 3549, 85)])
    assert bound(plain, variant="v5").head.variant == "v5"
    assert plain.calls == 0  # only YOLOX heads are probed


def test_explicit_variant_that_contradicts_the_layout_is_a_model_error() -> None:
    with pytest.raises(ModelError) as excinfo:
        bound(FakeRunner((1, 3, 640, 640), [(1, 25200, 85)]), variant="v8")
    message = one_line_model_error(excinfo)
    assert "fake.onnx" in message
    assert "[batch, 4+classes, anchors]" in message
    assert "[1, 25200, 85]" in message


@pytest.mark.parametrize(
    ("runner", "options", "problem"),
    [
        (FakeRunner(inputs=2), {}, "needs one image input, the model has 2"),
        (FakeRunner(input_shape=(1, 640, 640, 3)), {}, "is not NCHW with 3 channels"),
        (FakeRunner(input_shape=(1, 3, 640)), {}, "is not NCHW with 3 channels"),
        (FakeRunner(dtype=np.uint8), {}, "is not a float tensor"),
        (FakeRunner(output_shapes=[(1, 116, 8400), (1, 32, 160, 160)]), {}, "the model has 2"),
        (FakeRunner(output_shapes=[(1, 1000)]), {}, "has rank 2, app yolo needs rank 3"),
        (FakeRunner(metadata={"task": "segment"}), {}, "is a 'segment' model"),
        (FakeRunner(output_shapes=[(1, 300, 6)], metadata={"end2end": "True"}), {}, "end-to-end"),
        (FakeRunner(output_shapes=[(1, 8400, 5)]), {"variant": "v5"}, "leaves 0 class channels"),
        (FakeRunner(output_shapes=[(None, None, None)]), {}, "set app.variant"),
        (FakeRunner(input_shape=(None, 3, None, None)), {}, "dynamic size [?, 3, ?, ?]; set app.input_size"),
        (FakeRunner(), {"input_size": (320, 320)}, "fixed at 640x640, but app.input_size is 320x320"),
        (FakeRunner(metadata={"names": NAMES3}), {"names": ["a", "b"]}, "80 classes, app.names gives 2"),
        (
            FakeRunner((1, 3, 640, 640), [(1, 3549, 85)], respond=yolox_head(decoded=False)),
            {},
            "3549 rows does not fit a 640x640 input",
        ),
    ],
)
def test_models_that_do_not_fit_raise_one_line_model_errors(
    runner: FakeRunner, options: dict[str, Any], problem: str
) -> None:
    with pytest.raises(ModelError) as excinfo:
        bound(runner, **options)
    message = one_line_model_error(excinfo)
    assert message.startswith("/models/fake.onnx: ")
    assert problem in message
    assert message.count(";") >= 1  # problem; fix


def test_input_size_of_dynamic_models_from_the_option_or_the_imgsz_metadata() -> None:
    dynamic = FakeRunner(input_shape=(None, 3, None, None), output_shapes=[(None, 84, None)])
    assert bound(dynamic, input_size=[384, 640]).head.input_size == (384, 640)
    dynamic.metadata["imgsz"] = "[320, 480]"
    assert bound(dynamic).head.input_size == (320, 480)
    assert bound(dynamic, input_size=256).head.input_size == (256, 256)  # the option wins


def test_names_come_from_the_option_then_metadata_then_coco_then_ids(tmp_path: Path) -> None:
    seven = FakeRunner(output_shapes=[(None, 7 + 4, 8400)])
    assert bound(seven).labels == tuple(str(i) for i in range(7))
    assert bound(seven).head.names_from == "ids"
    coco = bound(FakeRunner())
    assert (coco.labels, coco.head.names_from) == (COCO80, "coco80")
    three = FakeRunner(output_shapes=[(None, 7, 8400)], metadata={"names": NAMES3})
    assert bound(three).labels == ("cat", "dog", "bird")
    assert bound(three, names=["a", "b", "c"]).labels == ("a", "b", "c")
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "pets.names").write_text("kitten\n puppy \n\nchick\n", encoding="utf-8")
    app = create_app(YoloOptions(model="m.onnx", names="models/pets.names"), RunContext(config_dir=tmp_path))
    app.bind(three)
    assert app.labels == ("kitten", "puppy", "chick")
    assert app.head.names_from == "option"


def test_unreadable_names_files_are_config_errors(tmp_path: Path) -> None:
    context = RunContext(config_dir=tmp_path)
    with pytest.raises(ConfigError, match=r"app.names: cannot read .*missing.names"):
        create_app(YoloOptions(model="m.onnx", names="missing.names"), context)
    (tmp_path / "empty.names").write_text("\n\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="has no class names"):
        create_app(YoloOptions(model="m.onnx", names="empty.names"), context)


def test_coco80_matches_the_shared_names_file() -> None:
    names = shared_path("models/coco80.names").read_text(encoding="utf-8").split("\n")
    assert tuple(n for n in names if n) == COCO80


def test_classes_accept_ids_and_names() -> None:
    app = bound(FakeRunner(), classes=["person", 2, "bus"])
    assert app._params.classes is not None
    np.testing.assert_array_equal(app._params.classes, [0, 2, 5])


def test_unknown_class_names_are_config_errors() -> None:
    with pytest.raises(ConfigError, match=r"app\.classes: unknown class 'persn'; the model's classes are: person"):
        bound(FakeRunner(), classes=["persn"])


def test_a_refused_model_leaves_the_bound_app_as_it_was() -> None:
    app = bound(FakeRunner())
    head, labels = app.head, app.labels
    with pytest.raises(ModelError):
        app.bind(FakeRunner(output_shapes=[(1, 1000)]))
    three = FakeRunner(output_shapes=[(None, 7, 8400)], metadata={"names": NAMES3})
    app_with_classes = bound(FakeRunner(), classes=["person"])
    with pytest.raises(ConfigError):
        app_with_classes.bind(three)  # "person" is not among cat/dog/bird
    assert (app.head, app.labels) == (head, labels)
    assert app_with_classes.labels == COCO80
    assert app_with_classes.head.num_classes == 80


# -- preprocessing and decoding with fake models -------------------------------------------------------------------


def _images() -> list[np.ndarray]:
    rng = np.random.default_rng(3)
    return [rng.integers(0, 256, shape, dtype=np.uint8) for shape in [(480, 640, 3), (333, 101, 3), (700, 700, 3)]]


def test_ultralytics_preprocessing_is_rgb_over_255_in_a_centred_letterbox() -> None:
    app = bound(FakeRunner())
    images = _images()
    feeds, metas = app.preprocess([Frame(im, "x") for im in images])
    batch = feeds["images"]
    assert batch.shape == (3, 3, 640, 640)
    assert batch.dtype == np.float32
    assert batch.flags.c_contiguous
    for image, plane, meta in zip(images, batch, metas, strict=True):
        canvas, transform = letterbox(image, (640, 640))
        # Ultralytics: im[..., ::-1].transpose(2, 0, 1), float32, /= 255
        expected = np.ascontiguousarray(canvas[..., ::-1].transpose(2, 0, 1)).astype(np.float32)
        expected /= 255
        np.testing.assert_array_equal(plane, expected)
        assert meta == transform


def test_yolox_preprocessing_is_raw_bgr_top_left() -> None:
    app = bound(FakeRunner((1, 3, 416, 416), [(1, 3549, 85)], respond=yolox_head(decoded=False)))
    image = _images()[1]
    feeds, metas = app.preprocess([Frame(image, "x")])
    canvas, transform = letterbox(image, (416, 416), centered=False)
    np.testing.assert_array_equal(feeds["images"][0], canvas.transpose(2, 0, 1).astype(np.float32))
    assert metas == [transform]
    assert metas[0].left == metas[0].top == 0


def test_yolox_legacy_preprocessing_is_rgb_imagenet_normalised() -> None:
    runner = FakeRunner((1, 3, 416, 416), [(1, 3549, 85)], respond=yolox_head(decoded=False))
    app = bound(runner, yolox_legacy=True)
    image = _images()[0]
    feeds, _ = app.preprocess([Frame(image, "x")])
    canvas, _ = letterbox(image, (416, 416), centered=False)
    rgb = canvas[..., ::-1].astype(np.float64) / 255.0
    expected = ((rgb - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]).transpose(2, 0, 1)
    np.testing.assert_allclose(feeds["images"][0], expected, rtol=0, atol=1e-5)


def test_float16_models_get_float16_inputs() -> None:
    app = bound(FakeRunner(dtype=np.float16))
    feeds, _ = app.preprocess([Frame(_images()[0], "x")])
    assert feeds["images"].dtype == np.float16
    assert app.head.input_dtype == np.float16


def test_decode_maps_boxes_back_to_each_frame() -> None:
    """One v8 detection per frame at a known canvas position, for two frames of different sizes."""
    head = np.zeros((2, 84, 8400), np.float32)
    head[:, :4, 0] = [320, 320, 100, 50]  # cx, cy, w, h in canvas pixels
    head[0, 4 + 5, 0] = 0.9  # bus
    head[1, 4 + 0, 0] = 0.6  # person
    runner = FakeRunner(respond=lambda feeds: head[: feeds["images"].shape[0]])
    app = bound(runner)
    images = [np.zeros((720, 1280, 3), np.uint8), np.zeros((1080, 810, 3), np.uint8)]
    dets = run(app, runner, images)
    # 1280×720 → gain 0.5, no horizontal padding, 140 rows on top: x = x' / 0.5, y = (y' - 140) / 0.5
    np.testing.assert_allclose(dets[0].boxes, [[540, 310, 740, 410]])
    np.testing.assert_array_equal(dets[0].class_ids, [5])
    # 810×1080 → gain 640/1080, pad_x = round((640 - 480) / 2 - 0.1) = 80
    g = 640 / 1080
    np.testing.assert_allclose(dets[1].boxes, [[(270 - 80) / g, 295 / g, (370 - 80) / g, 345 / g]], rtol=1e-6)
    np.testing.assert_allclose(dets[1].scores, [0.6])


def test_decode_refuses_mismatched_batches_and_unbound_use() -> None:
    app = bound(FakeRunner())
    frames = [Frame(_images()[0], "x")]
    with pytest.raises(ValueError, match="2 outputs and 1 metas for 1 frames"):
        app.decode(
            {"output0": np.zeros((2, 84, 8400), np.float32)}, frames, [LetterboxTransform.compute((1, 1), (1, 1))]
        )
    with pytest.raises(RuntimeError, match="bind"):
        create_app(YoloOptions(model="m.onnx"), RunContext()).preprocess(frames)


# -- end to end with the real models -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def yolov8n() -> OnnxRuntimeRunner:
    return OnnxRuntimeRunner(shared_path("models/yolov8n_dequant.onnx"))


@pytest.fixture(scope="module")
def yolox_nano() -> OnnxRuntimeRunner:
    return OnnxRuntimeRunner(shared_path("models/yolox_nano.onnx"))


def image(name: str) -> np.ndarray:
    img = cv2.imread(str(shared_path(f"media/{name}")))
    assert img is not None, name
    return img


def labelled(app: YoloApp, dets: Detections) -> list[tuple[str, float]]:
    return [(app.labels[c], float(s)) for c, s in zip(dets.class_ids, dets.scores, strict=True)]


def test_yolov8n_on_bus_and_zidane(yolov8n: OnnxRuntimeRunner) -> None:
    app = bound(yolov8n, conf_threshold=0.25, iou_threshold=0.45)
    assert (app.head.variant, app.head.input_size, app.head.names_from) == ("v8", (640, 640), "metadata")
    bus, zidane = run(app, yolov8n, [image("bus.jpg"), image("zidane.jpg")])

    found = labelled(app, bus)
    assert sorted(label for label, _ in found) == ["bus", "person", "person", "person", "person"]
    persons = sorted((s for label, s in found if label == "person"), reverse=True)
    np.testing.assert_allclose(persons, [0.907, 0.901, 0.900, 0.374], atol=0.01)
    (i,) = np.flatnonzero(bus.class_ids == 5)
    assert abs(float(bus.scores[i]) - 0.832) <= 0.01
    np.testing.assert_allclose(bus.boxes[i], [34, 230, 800, 770], atol=2)
    assert bus.boxes[:, 0::2].max() <= 810
    assert bus.boxes[:, 1::2].max() <= 1080
    assert bus.boxes.min() >= 0

    found = labelled(app, zidane)
    assert [label for label, _ in found] == ["person", "person", "tie"]
    np.testing.assert_allclose([s for _, s in found], [0.878, 0.863, 0.353], atol=0.01)


def test_yolox_nano_on_bus(yolox_nano: OnnxRuntimeRunner) -> None:
    app = bound(yolox_nano, conf_threshold=0.3)
    assert (app.head.variant, app.head.layout, app.head.input_size) == ("yolox", "yolox_raw", (416, 416))
    assert app.head.names_from == "coco80"
    (bus,) = run(app, yolox_nano, [image("bus.jpg")])
    found = labelled(app, bus)
    assert [label for label, _ in found] == ["bus", "person", "person", "person"]
    np.testing.assert_allclose([s for _, s in found], [0.909, 0.855, 0.806, 0.687], atol=0.01)


def test_mixed_sizes_in_one_batch_match_one_by_one(yolov8n: OnnxRuntimeRunner) -> None:
    app = bound(yolov8n)
    images = [image("bus.jpg"), image("zidane.jpg"), image("street.jpg"), image("bus.jpg")[100:700, 50:]]
    batched = run(app, yolov8n, images)
    for img, together in zip(images, batched, strict=True):
        (alone,) = run(app, yolov8n, [img])
        assert len(alone) == len(together) > 0
        np.testing.assert_array_equal(together.class_ids, alone.class_ids)
        np.testing.assert_allclose(together.scores, alone.scores, atol=1e-5)
        np.testing.assert_allclose(together.boxes, alone.boxes, atol=1e-3)


def test_classes_filter_on_a_real_image(yolov8n: OnnxRuntimeRunner) -> None:
    app = bound(yolov8n, classes=["bus"])
    (dets,) = run(app, yolov8n, [image("bus.jpg")])
    assert labelled(app, dets)[0][0] == "bus"
    assert len(dets) == 1


@pytest.mark.parametrize(
    ("model", "problem"),
    [
        ("retinaface_mnet025.onnx", "the model has 3 (loc float32"),
        ("osnet_x0_25_msmt17.onnx", "has rank 2, app yolo needs rank 3"),
    ],
)
def test_other_apps_models_are_refused(model: str, problem: str) -> None:
    runner = OnnxRuntimeRunner(shared_path(f"models/{model}"))
    with pytest.raises(ModelError) as excinfo:
        bound(runner)
    message = one_line_model_error(excinfo)
    assert message.startswith(f"{runner.model_path}: ")
    assert problem in message
