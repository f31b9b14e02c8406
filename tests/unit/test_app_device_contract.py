"""The GPU data path of the built-in apps, checked without a GPU.

The CUDA kernels equal their NumPy twins (:mod:`trtapps.ops.preprocess`, :mod:`trtapps.ops.decode`; checked on a
GPU by ``tests/gpu/test_kernels.py``). So what the apps add on top — the kernel arguments, the ``classes`` mask,
the best-``max_candidates``/``top_k`` gather, the candidate buffer sizes, the ``conf_activation`` decision, the
host-decode fallback — is checked here by composing the twins exactly as ``decode_device`` composes the kernels
and comparing with the CPU path on real model outputs. The GPU itself is exercised by
``tests/gpu/test_app_device_paths.py``.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from conftest import REPO, shared_path
from trtapps import App, Detections, Frame, RunContext, TensorInfo
from trtapps.ops.decode import (
    decode_retinaface_reference,
    decode_yolo_rows_reference,
    decode_yolov8_reference,
    map_records,
    nms_reference,
    params_from_letterbox,
    records_to_detections,
    sort_records,
    yolox_grid_table,
)
from trtapps.ops.preprocess import preprocess_reference
from trtapps.postprocess import resolve_classes
from trtapps.runners.base import Runner
from trtapps.runners.onnxruntime import OnnxRuntimeRunner
from trtapps_plugins.retinaface import RetinaFaceApp, RetinaFaceOptions, ScrfdApp, face_scores, prior_boxes
from trtapps_plugins.retinaface import _device as face_device
from trtapps_plugins.retinaface._common import CanvasTransform
from trtapps_plugins.yolo import device as yolo_device
from trtapps_plugins.yolo.app import IMAGENET_MEAN, IMAGENET_STD, YoloApp, create_app
from trtapps_plugins.yolo.options import YoloOptions

MAX_ANCHORS, MAX_CLASSES, NMS_MAX = 1 << 21, 1 << 11, 1 << 18


class ShapeRunner(Runner):
    """A runner that only describes a model (for binding with a float16 input); it never runs."""

    backend = "shapes"

    def __init__(self, inputs: Sequence[TensorInfo], outputs: Sequence[TensorInfo]) -> None:
        self.model_path = Path("/models/shapes.onnx")
        self.inputs, self.outputs, self.metadata = list(inputs), list(outputs), {}

    def _infer(self, feeds: Mapping[str, Any], stream: Any) -> dict[str, Any]:
        raise AssertionError("this model description is not meant to run")


@pytest.fixture(scope="module")
def yolov8n() -> OnnxRuntimeRunner:
    return OnnxRuntimeRunner(shared_path("models/yolov8n_dequant.onnx"))


@pytest.fixture(scope="module")
def yolox_nano() -> OnnxRuntimeRunner:
    return OnnxRuntimeRunner(shared_path("models/yolox_nano.onnx"))


@pytest.fixture(scope="module")
def retinaface() -> OnnxRuntimeRunner:
    return OnnxRuntimeRunner(shared_path("models/retinaface_mnet025.onnx"))


@pytest.fixture(scope="module")
def images() -> list[np.ndarray]:
    """The shared photos, plus crops and a small copy of them for odd and upscaled letterbox sizes."""
    photos = [cv2.imread(str(shared_path(f"media/{n}"))) for n in ("bus.jpg", "zidane.jpg", "street.jpg")]
    assert all(p is not None for p in photos)
    crops = [photos[0][:517, :333], photos[1][101:300, 7:650], cv2.resize(photos[2], (97, 61))]
    return [np.ascontiguousarray(im) for im in photos + crops]


def yolo_app(runner: Runner, **options: Any) -> YoloApp:
    app = create_app(YoloOptions(model="model.onnx", **options), RunContext())
    app.bind(runner)
    return app


def frames_of(images: Sequence[np.ndarray]) -> list[Frame]:
    return [Frame(image, "test", i) for i, image in enumerate(images)]


# -- the contract --------------------------------------------------------------------------------------------------------
def test_the_builtin_apps_declare_their_gpu_paths() -> None:
    assert YoloApp.supports_device is True
    assert RetinaFaceApp.supports_device is True
    assert ScrfdApp.supports_device is False  # no SCRFD decode kernel: SCRFD stays on the host path
    for cls in (YoloApp, RetinaFaceApp):
        assert cls.preprocess_device is not App.preprocess_device
        assert cls.decode_device_async is not App.decode_device_async


class _DecodeOnly(App):
    """An app with the host methods stubbed; subclasses add one of the two device decodes."""

    def preprocess(self, frames: Sequence[Frame]) -> tuple[dict[str, Any], list[Any]]:
        return {}, []

    def decode(self, outputs: Mapping[str, Any], frames: Sequence[Frame], metas: Sequence[Any]) -> list[Detections]:
        return []


def test_either_device_decode_gives_the_other() -> None:
    """An app implements decode_device or decode_device_async; the base class derives the missing one."""
    found = [Detections.empty()]

    class Sync(_DecodeOnly):
        def decode_device(self, outputs: Any, frames: Any, metas: Any, stream: Any) -> list[Detections]:
            return found

    class Async(_DecodeOnly):
        waited = 0

        def decode_device_async(self, outputs: Any, frames: Any, metas: Any, stream: Any) -> Any:
            def finish() -> list[Detections]:
                Async.waited += 1
                return found
            return finish

    assert Sync().decode_device_async({}, [], [], None)() is found
    assert Async().decode_device({}, [], [], None) is found
    assert Async.waited == 1
    with pytest.raises(NotImplementedError, match="has no GPU decoding"):
        _DecodeOnly().decode_device({}, [], [], None)
    with pytest.raises(NotImplementedError, match="has no GPU decoding"):
        _DecodeOnly().decode_device_async({}, [], [], None)


def test_the_plugins_import_and_run_on_the_cpu_without_cupy() -> None:
    """CuPy is imported inside the device methods only: with it unimportable the apps still load and work."""
    code = """
import sys

class NoCupy:
    def find_spec(self, name, path=None, target=None):
        if name == "cupy" or name.startswith(("cupy.", "cupyx")):
            raise ImportError("cupy is blocked in this test")
        return None

sys.meta_path.insert(0, NoCupy())
from trtapps_plugins.yolo.app import YoloApp
from trtapps_plugins.retinaface import RetinaFaceApp, RetinaFaceOptions
from trtapps_plugins.yolo.device import candidate_plan
from trtapps_plugins.retinaface._device import face_plan
assert YoloApp.supports_device and RetinaFaceApp.supports_device
assert candidate_plan(8400, 80, multi_label=False, max_candidates=30000, nms_max=1 << 18).decode_capacity == 8400
assert face_plan(16800, 5000, 1 << 18).nms_capacity == 5000
assert not any(m == "cupy" or m.startswith(("cupy.", "cupyx")) for m in sys.modules), "cupy was imported"
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_device_helpers_need_a_bound_app() -> None:
    app = create_app(YoloOptions(model="model.onnx"), RunContext())
    with pytest.raises(RuntimeError, match="bind"):
        app.preprocess_arguments([(480, 640)])
    face = RetinaFaceApp(RetinaFaceOptions(model="model.onnx"))
    with pytest.raises(RuntimeError, match="bind"):
        face.preprocess_arguments([(480, 640)])


# -- YOLO preprocessing arguments ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("variant", "legacy", "expected"),
    [
        ("v8", False, yolo_device.Normalisation(centered=True, swap_rb=True, std=255.0, imagenet=False)),
        ("v5", True, yolo_device.Normalisation(centered=True, swap_rb=True, std=255.0, imagenet=False)),
        ("yolox", False, yolo_device.Normalisation(centered=False, swap_rb=False, std=1.0, imagenet=False)),
        ("yolox", True, yolo_device.Normalisation(centered=False, swap_rb=True, std=255.0, imagenet=True)),
    ],
)
def test_normalisation_per_variant(variant: str, legacy: bool, expected: yolo_device.Normalisation) -> None:
    assert yolo_device.normalisation(variant, legacy) == expected


def imagenet_twin(x: np.ndarray) -> np.ndarray:
    """The arithmetic of the device's ImageNet pass (``imagenet_normalise``), per element, in NumPy."""
    mean = np.asarray(IMAGENET_MEAN, dtype=np.float64)[None, :, None, None]
    std = np.asarray(IMAGENET_STD, dtype=np.float64)[None, :, None, None]
    t = (x.astype(np.float64) - mean).astype(np.float32)
    return (t.astype(np.float64) / std).astype(np.float32)


@pytest.mark.parametrize("legacy", [False, True], ids=["yolox", "yolox_legacy"])
def test_yolox_kernel_arguments_reproduce_the_cpu_tensor(
    yolox_nano: OnnxRuntimeRunner, images: list[np.ndarray], legacy: bool
) -> None:
    app = yolo_app(yolox_nano, yolox_legacy=legacy)
    cpu, cpu_metas = app.preprocess(frames_of(images))
    metas, rois, kwargs = app.preprocess_arguments([im.shape[:2] for im in images])
    assert metas == cpu_metas
    twin = preprocess_reference(images, app.head.input_size, rois, **kwargs)
    if legacy:
        twin = imagenet_twin(twin)
    np.testing.assert_array_equal(twin, cpu["images"])


def test_yolov8_kernel_arguments_reproduce_the_cpu_tensor(yolov8n: OnnxRuntimeRunner, images: list[np.ndarray]) -> None:
    app = yolo_app(yolov8n)
    cpu, cpu_metas = app.preprocess(frames_of(images))
    metas, rois, kwargs = app.preprocess_arguments([im.shape[:2] for im in images])
    assert metas == cpu_metas
    np.testing.assert_array_equal(preprocess_reference(images, (640, 640), rois, **kwargs), cpu["images"])


def test_float16_yolo_input_gets_the_same_rounding(images: list[np.ndarray]) -> None:
    runner = ShapeRunner(
        [TensorInfo("images", (None, 3, 320, 480), np.dtype(np.float16))],
        [TensorInfo("output0", (None, 84, 3150), np.dtype(np.float16))],
    )
    app = yolo_app(runner)
    cpu, _ = app.preprocess(frames_of(images))
    _, rois, kwargs = app.preprocess_arguments([im.shape[:2] for im in images])
    twin = preprocess_reference(images, (320, 480), rois, dtype=np.float16, **kwargs)
    assert cpu["images"].dtype == np.float16
    np.testing.assert_array_equal(twin, cpu["images"])


# -- RetinaFace preprocessing arguments -----------------------------------------------------------------------------------
@pytest.mark.parametrize("input_size", [None, (640, 640), (480, 640)], ids=["native", "640", "480x640"])
def test_retinaface_kernel_arguments_reproduce_the_cpu_tensor(
    retinaface: OnnxRuntimeRunner, images: list[np.ndarray], input_size: Any
) -> None:
    app = RetinaFaceApp(RetinaFaceOptions(model="model.onnx", input_size=input_size))
    app.bind(retinaface)
    batches = [[im] for im in images] if input_size is None else [images]
    for batch in batches:
        cpu, cpu_metas = app.preprocess(frames_of(batch))
        metas, rois, kwargs = app.preprocess_arguments([im.shape[:2] for im in batch])
        assert metas == cpu_metas
        twin = preprocess_reference(batch, metas[0].dst_size, rois, **kwargs)
        np.testing.assert_array_equal(twin, cpu["input"])


def test_retinaface_native_size_refuses_mixed_sizes_like_the_cpu_path(retinaface: OnnxRuntimeRunner) -> None:
    app = RetinaFaceApp(RetinaFaceOptions(model="model.onnx"))
    app.bind(retinaface)
    with pytest.raises(ValueError, match="different sizes"):
        app.preprocess_arguments([(480, 640), (720, 1280)])
    with pytest.raises(ValueError, match="at least one frame"):
        app.preprocess_arguments([])


def test_float16_retinaface_input_gets_the_same_rounding(images: list[np.ndarray]) -> None:
    runner = ShapeRunner(
        [TensorInfo("input", (None, 3, None, None), np.dtype(np.float16))],
        [TensorInfo(n, (None, None, w), np.dtype(np.float16)) for n, w in (("loc", 4), ("conf", 2), ("landmarks", 10))],
    )
    app = RetinaFaceApp(RetinaFaceOptions(model="model.onnx", input_size=(320, 320)))
    app.bind(runner)
    cpu, _ = app.preprocess(frames_of(images))
    _, rois, kwargs = app.preprocess_arguments([im.shape[:2] for im in images])
    np.testing.assert_array_equal(preprocess_reference(images, (320, 320), rois, dtype=np.float16, **kwargs), cpu["input"])


# -- candidate buffers ----------------------------------------------------------------------------------------------------
def test_yolo_candidate_plan() -> None:
    plan = yolo_device.candidate_plan(8400, 80, multi_label=False, max_candidates=30000, nms_max=NMS_MAX)
    assert (plan.decode_capacity, plan.nms_capacity, plan.gather) == (8400, 8400, False)
    plan = yolo_device.candidate_plan(8400, 80, multi_label=True, max_candidates=30000, nms_max=NMS_MAX)
    assert (plan.decode_capacity, plan.nms_capacity, plan.gather) == (672000, 30000, True)
    assert plan.lost([100, 30000, 672000]).tolist() == [False, False, False]  # the CPU also keeps only 30000
    plan = yolo_device.candidate_plan(8400, 80, multi_label=True, max_candidates=1_000_000, nms_max=NMS_MAX)
    assert (plan.decode_capacity, plan.nms_capacity) == (672000, NMS_MAX)
    assert plan.lost([NMS_MAX, NMS_MAX + 1]).tolist() == [False, True]
    plan = yolo_device.candidate_plan(4_000_000, 80, multi_label=True, max_candidates=30000, nms_max=NMS_MAX)
    assert plan.decode_capacity == yolo_device.MAX_DECODE_CAPACITY
    assert plan.lost([yolo_device.MAX_DECODE_CAPACITY + 1]).tolist() == [True]


def test_face_plan() -> None:
    plan = face_device.face_plan(16800, 5000, NMS_MAX)
    assert (plan.decode_capacity, plan.nms_capacity, plan.gather) == (16800, 5000, True)
    assert not plan.lost([16800]).any()
    plan = face_device.face_plan(4200, 5000, NMS_MAX)
    assert (plan.decode_capacity, plan.nms_capacity, plan.gather) == (4200, 4200, False)
    plan = face_device.face_plan(400_000, 1_000_000, NMS_MAX)
    assert plan.nms_capacity == NMS_MAX
    assert plan.lost([NMS_MAX, NMS_MAX + 1]).tolist() == [False, True]


def test_the_app_sizes_its_candidate_buffers_from_the_head(yolov8n: OnnxRuntimeRunner) -> None:
    assert yolo_app(yolov8n).candidate_plan((4, 84, 8400)).decode_capacity == 8400
    plan = yolo_app(yolov8n, multi_label=True, max_candidates=500).candidate_plan((4, 84, 8400))
    assert (plan.decode_capacity, plan.nms_capacity) == (672000, 500)


@pytest.mark.parametrize(
    ("layout", "shape", "problem"),
    [
        ("v8", (1, 84, 8400), None),
        ("v5", (1, 25200, 85), None),
        ("yolox_raw", (1, 3549, 85), None),
        ("v8", (1, 4 + 2048, 8400), None),
        ("v8", (1, 4 + 2049, 8400), "2049 classes exceed the 2048"),
        ("v5", (1, 25200, 5 + 3000), "3000 classes exceed"),
        ("v8", (1, 84, 1 << 21), "anchors exceed"),
        ("yolox_raw", (1, (1 << 21) - 1, 85), None),
    ],
)
def test_heads_the_kernels_cannot_take_are_decoded_on_the_host(
    layout: str, shape: tuple[int, ...], problem: str | None
) -> None:
    found = yolo_device.device_decode_problem(layout, shape, MAX_ANCHORS, MAX_CLASSES)
    if problem is None:
        assert found is None
    else:
        assert found is not None
        assert problem in found


def test_candidate_keys_sort_like_the_references() -> None:
    rng = np.random.default_rng(3)
    n, capacity = 500, 640
    records = np.zeros((2, capacity, 7), np.float32)
    records[..., :4] = rng.uniform(0, 600, (2, capacity, 4))
    records[..., 4] = rng.choice(np.float32([0.3, 0.5, 0.5000001, 0.9]), (2, capacity))  # many ties
    records[..., 5] = rng.integers(0, 80, (2, capacity))
    records[..., 6] = rng.integers(0, 8400, (2, capacity))
    records[1, 300:] = np.nan  # beyond its count: never read
    counts = np.array([n, 300], np.int32)
    for b in range(2):
        valid = int(counts[b])
        keys = yolo_device.candidate_keys(np, records, counts, class_col=5, anchor_col=6)[b]
        order = np.argsort(keys, kind="stable")
        np.testing.assert_array_equal(records[b, order[:valid]], sort_records(records[b, :valid]))
        assert (keys[valid:] == np.iinfo(np.uint64).max).all()
        best = yolo_device.top_candidates(np, records, counts, 50, class_col=5, anchor_col=6)
        np.testing.assert_array_equal(best[b, :50], sort_records(records[b, :valid])[:50])


def test_masked_classes_sort_after_every_kept_candidate() -> None:
    records = np.zeros((1, 4, 7), np.float32)
    records[0, :, 4] = [0.9, 0.8, 0.3, 0.7]
    records[0, :, 5] = [1, 2, 2, 5]
    yolo_device.mask_classes(np, records, np.float32([2, 7]))
    np.testing.assert_array_equal(records[0, :, 4], np.float32([-1, 0.8, 0.3, -1]))
    keys = yolo_device.candidate_keys(np, records, np.array([4], np.int32), class_col=5, anchor_col=6)
    assert np.argsort(keys[0]).tolist()[:2] == [1, 2]


# -- the decode strategy on real model outputs ------------------------------------------------------------------------------
def emulate_yolo_decode_device(app: YoloApp, pred: np.ndarray, metas: Sequence[Any], seed: int) -> list[Detections]:
    """:meth:`YoloApp.decode_device` with each kernel replaced by its NumPy twin (candidates in random slot order,
    as the kernels' atomic compaction leaves them)."""
    head, opts = app.head, app.options
    classes = None if opts.classes is None else np.asarray(resolve_classes(opts.classes, app.labels, "classes"))
    plan = app.candidate_plan(pred.shape)
    if head.layout == "v8":
        found = decode_yolov8_reference(pred, opts.conf_threshold, multi_label=opts.multi_label)
    else:
        grid = yolox_grid_table(head.input_size, app.yolox_strides) if head.layout == "yolox_raw" else None
        found = decode_yolo_rows_reference(pred, opts.conf_threshold, grid=grid, multi_label=opts.multi_label)
    rng = np.random.default_rng(seed)
    records = np.full((len(found), plan.decode_capacity, 7), np.nan, np.float32)
    counts = np.array([len(f) for f in found], np.int32)
    for b, recs in enumerate(found):
        records[b, : len(recs)] = rng.permutation(recs)
    if classes is not None:
        yolo_device.mask_classes(np, records, classes.astype(np.float32))
    if plan.gather:
        records = yolo_device.top_candidates(np, records, counts, plan.nms_capacity, class_col=5, anchor_col=6)
    capacity = records.shape[1]
    kept = nms_reference(
        [records[b, : min(int(counts[b]), capacity)] for b in range(len(found))],
        opts.iou_threshold,
        max_det=opts.max_det,
        class_aware=not opts.agnostic_nms,
        params=params_from_letterbox(metas),
        clip=opts.clip_boxes,
    )
    results = []
    for recs in kept:
        dets = records_to_detections(recs)
        if classes is not None:
            keep = np.isin(dets.class_ids, classes)
            dets = Detections(dets.boxes[keep], dets.scores[keep], dets.class_ids[keep])
        results.append(dets)
    return results


def assert_identical(got: Detections, want: Detections, where: str) -> None:
    assert len(got) == len(want), f"{where}: {len(got)} detections, expected {len(want)}"
    np.testing.assert_array_equal(got.class_ids, want.class_ids, err_msg=where)
    np.testing.assert_array_equal(got.scores, want.scores, err_msg=where)
    np.testing.assert_array_equal(got.boxes, want.boxes, err_msg=where)
    if want.landmarks is not None:
        assert got.landmarks is not None
        np.testing.assert_array_equal(got.landmarks, want.landmarks, err_msg=where)


YOLO_OPTIONS = [
    {},
    {"iou_threshold": 0.7, "clip_boxes": False},
    {"classes": ["person", "car"], "max_det": 4},
    {"classes": ["person", "tie", "bus"], "agnostic_nms": True, "max_det": 3},
    {"conf_threshold": 0.01, "multi_label": True, "max_candidates": 700},
    {"conf_threshold": 0.05, "multi_label": True, "classes": [0, 2], "agnostic_nms": True, "max_candidates": 120},
    {"conf_threshold": 0.001, "max_candidates": 50},
]


@pytest.mark.parametrize("options", YOLO_OPTIONS, ids=lambda o: ",".join(o) or "defaults")
@pytest.mark.parametrize("model", ["yolov8n", "yolox_nano"])
def test_the_device_decode_strategy_gives_the_cpu_detections(
    request: pytest.FixtureRequest, images: list[np.ndarray], model: str, options: dict[str, Any]
) -> None:
    runner = request.getfixturevalue(model)
    app = yolo_app(runner, **options)
    batch = 1 if model == "yolox_nano" else 3
    total = 0
    for start in range(0, len(images), batch):
        frames = frames_of(images[start : start + batch])
        inputs, metas = app.preprocess(frames)
        outputs = runner.infer(inputs)
        want = app.decode(outputs, frames, metas)
        got = emulate_yolo_decode_device(app, outputs[app.head.output_name], metas, seed=start)
        for i, (g, w) in enumerate(zip(got, want)):
            assert_identical(g, w, f"{model} {options} image {start + i}")
            total += len(w)
    assert total > 0


def emulate_retinaface_decode_device(
    app: RetinaFaceApp, outputs: Mapping[str, np.ndarray], metas: Sequence[CanvasTransform], seed: int
) -> list[Detections]:
    """:meth:`RetinaFaceApp.decode_device` with each kernel replaced by its NumPy twin."""
    opts = app.options
    loc, conf, landmarks = outputs["loc"], outputs["conf"], outputs["landmarks"]
    height, width = metas[0].dst_size
    priors = prior_boxes(height, width)
    stats = face_device.probability_stats(np, conf)
    logits = opts.conf_activation == "softmax" or (
        opts.conf_activation == "auto" and not face_device.are_probabilities(stats, conf.size)
    )
    found = decode_retinaface_reference(
        loc, conf, landmarks, priors, (height, width), opts.conf_threshold,
        logits=logits, params=face_device.canvas_params(metas), clip=False,
    )
    plan = app.face_plan(priors.shape[0])
    rng = np.random.default_rng(seed)
    records = np.full((len(found), plan.decode_capacity, 16), np.nan, np.float32)
    counts = np.array([len(f) for f in found], np.int32)
    for b, recs in enumerate(found):
        records[b, : len(recs)] = rng.permutation(recs)
    if plan.gather:
        records = face_device.top_candidates(np, records, counts, plan.nms_capacity)
    capacity = records.shape[1]
    kept = nms_reference(
        [records[b, : min(int(counts[b]), capacity)] for b in range(len(found))],
        opts.iou_threshold,
        max_det=opts.max_det,
        plus_one=True,
    )
    return [records_to_detections(k) for k in kept]


@pytest.mark.parametrize(
    ("options", "logits"),
    [
        ({}, False),
        ({"conf_threshold": 0.02, "top_k": 100, "max_det": 20}, False),
        ({"conf_threshold": 0.02}, False),
        ({"conf_threshold": 0.3, "conf_activation": "softmax"}, True),
        ({"conf_threshold": 0.3}, True),
    ],
    ids=lambda o: str(o),
)
@pytest.mark.parametrize("input_size", [None, (640, 640)], ids=["native", "fixed640"])
def test_the_face_decode_strategy_gives_the_cpu_faces(
    retinaface: OnnxRuntimeRunner, images: list[np.ndarray], input_size: Any, options: dict[str, Any], logits: bool
) -> None:
    app = RetinaFaceApp(RetinaFaceOptions(model="model.onnx", input_size=input_size, **options))
    app.bind(retinaface)
    batches = [[im] for im in images] if input_size is None else [images]
    total = 0
    for index, batch in enumerate(batches):
        frames = frames_of(batch)
        inputs, metas = app.preprocess(frames)
        outputs = dict(retinaface.infer(inputs))
        if logits:
            with np.errstate(divide="ignore"):
                outputs["conf"] = np.log(outputs["conf"]).astype(np.float32)
        want = app.decode(outputs, frames, metas)
        got = emulate_retinaface_decode_device(app, outputs, metas, seed=index)
        for i, (g, w) in enumerate(zip(got, want)):
            assert_identical(g, w, f"retinaface {input_size} {options} batch {index} image {i}")
            total += len(w)
    assert total > 0


# -- conf_activation and the mapping back -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "conf",
    [
        np.float32([[[0.2, 0.8], [0.9, 0.1]]]),
        np.float32([[[0.2, 0.8005], [1.0, 0.0]]]),
        np.float32([[[0.2, 0.8011], [0.9, 0.1]]]),
        np.float32([[[-0.1, 1.1], [0.5, 0.5]]]),
        np.float32([[[3.0, -2.0], [0.5, 0.5]]]),
        np.float32([[[np.nan, 0.5], [0.5, 0.5]]]),
        np.zeros((1, 0, 2), np.float32),
    ],
)
def test_conf_activation_auto_decides_like_face_scores(conf: np.ndarray) -> None:
    stats = face_device.probability_stats(np, conf)
    probabilities = face_device.are_probabilities(stats, conf.size)
    # face_scores returns conf[..., 1] itself for probabilities, a computed softmax otherwise
    expected = np.shares_memory(face_scores(conf, "auto"), conf) or conf.size == 0
    assert probabilities == expected


def test_canvas_params_map_like_points_to_source() -> None:
    assert face_device.canvas_params([CanvasTransform.identity(480, 640)] * 2) is None
    metas = [CanvasTransform.fit((517, 333), (640, 640)), CanvasTransform.identity(640, 640)]
    params = face_device.canvas_params(metas)
    assert params is not None
    assert params.dtype == np.float32
    assert params.shape == (2, 6)
    rng = np.random.default_rng(0)
    points = rng.uniform(-20, 660, (50, 16)).astype(np.float32)
    for meta, row in zip(metas, params):
        mapped = map_records(points, row, clip=False)
        cols = [*range(4), *range(5, 15)]
        want = points[:, cols] if meta.is_identity else meta.points_to_source(points[:, cols])
        np.testing.assert_array_equal(mapped[:, cols], want)
