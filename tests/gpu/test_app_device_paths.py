"""The apps' GPU data paths against their CPU paths: the same detections from the same frames.

Device path: host frames uploaded with ``cupy.asarray`` on a non-default stream → ``preprocess_device`` → the
``onnxruntime_cuda`` runner (or, where onnxruntime-gpu is missing, ONNX Runtime on the CPU behind a
``cupy.asnumpy``/``cupy.asarray`` round trip) → ``decode_device``. CPU path: ``preprocess`` → ONNX Runtime on the
CPU → ``decode``. Acceptance (the GPU issue's rule): same count, same classes, IoU ≥ 0.99 and score within 0.01
for every detection, landmarks within 1 px; through the round trip (identical model outputs) the detections
must agree to float32 rounding.

Also checked: the device input tensor equals the CPU tensor exactly (float32), with the app's device input
buffer poisoned (NaN) before the preprocessing that is compared, so an unwritten pixel fails; and
``decode_device`` on the very outputs ``decode`` got gives ``decode``'s detections, including the options that
take the device-only code (``classes`` masking, agnostic NMS, the best ``max_candidates``/``top_k`` gathered
before NMS, ``conf_activation`` decided on the device).

Images: the four shared images, frames 0, 150 and 300 of ``face_tracker.mp4`` (used by no CPU test), and
unseen photos: scikit-image's samples (skipped with the reason where scikit-image is not installed) and
matplotlib's ``grace_hopper.jpg``. :data:`DATA_FILES` lists what these tests read from ``TRTAPPS_DATA``.

Run: ``pytest -m gpu tests/gpu/test_app_device_paths.py -rA``.
"""

from __future__ import annotations

import importlib.resources
import importlib.util
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from conftest import shared_path
from trtapps import App, Detections, Frame, Residency, RunContext
from trtapps.ops.boxes import box_iou
from trtapps.runners.base import Runner
from trtapps.runners.onnxruntime import OnnxRuntimeRunner
from trtapps_plugins.retinaface import RetinaFaceApp, RetinaFaceOptions
from trtapps_plugins.yolo.app import YoloApp, create_app
from trtapps_plugins.yolo.options import YoloOptions

pytestmark = pytest.mark.gpu

#: every file these tests read from TRTAPPS_DATA (copy them into the GPU machine's data folder)
DATA_FILES = (
    "models/yolov8n_dequant.onnx",
    "models/yolox_nano.onnx",
    "models/retinaface_mnet025.onnx",
    "media/bus.jpg",
    "media/zidane.jpg",
    "media/street.jpg",
    "media/group.jpg",
    "media/face_tracker.mp4",
)
SHARED_IMAGES = ("bus.jpg", "zidane.jpg", "street.jpg", "group.jpg")
VIDEO, VIDEO_FRAMES = "face_tracker.mp4", (0, 150, 300)
#: unseen photos shipped inside Python packages (read through importlib.resources)
SKIMAGE_IMAGES = ("astronaut.png", "coffee.png", "chelsea.png", "motorcycle_left.png", "rocket.jpg")
MATPLOTLIB_IMAGES = ("grace_hopper.jpg",)
IMAGE_SETS = ("shared", "video", "skimage", "matplotlib")

YOLOV8N, YOLOX_NANO, RETINAFACE = "models/yolov8n_dequant.onnx", "models/yolox_nano.onnx", "models/retinaface_mnet025.onnx"


# -- images -----------------------------------------------------------------------------------------------------------
def _read(path: Path | Any, name: str) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert image is not None, f"cannot read {name}"
    return image


def _package_images(package: str, folder: str, names: Sequence[str]) -> list[tuple[str, np.ndarray]]:
    if importlib.util.find_spec(package) is None:
        pytest.skip(f"{package} is not installed here, so its sample photos (unseen images) are not available")
    root = importlib.resources.files(package).joinpath(folder) if folder else importlib.resources.files(package)
    images = []
    for name in names:
        resource = root.joinpath(name)
        if not resource.is_file():
            pytest.skip(f"{package} has no sample {name} here")
        with importlib.resources.as_file(resource) as path:
            images.append((f"{package}:{name}", _read(path, name)))
    return images


def load_set(name: str) -> list[tuple[str, np.ndarray]]:
    """``(label, BGR uint8 image)`` of one image set; skips when its source is missing here."""
    if name == "shared":
        return [(n, _read(shared_path(f"media/{n}"), n)) for n in SHARED_IMAGES]
    if name == "video":
        capture = cv2.VideoCapture(str(shared_path(f"media/{VIDEO}")))
        try:
            frames = []
            for index in VIDEO_FRAMES:
                capture.set(cv2.CAP_PROP_POS_FRAMES, index)
                ok, frame = capture.read()
                assert ok, f"cannot read frame {index} of {VIDEO}"
                frames.append((f"{VIDEO}#{index}", frame))
            return frames
        finally:
            capture.release()
    if name == "skimage":
        return _package_images("skimage", "data", SKIMAGE_IMAGES)
    if name == "matplotlib":
        return _package_images("matplotlib", "mpl-data/sample_data", MATPLOTLIB_IMAGES)
    raise ValueError(name)


def load_available(names: Sequence[str] = IMAGE_SETS) -> list[tuple[str, np.ndarray]]:
    """The images of every set whose source exists here (the shared images and the video frames at least)."""
    images = load_set("shared") + load_set("video")
    for name in names:
        if name in ("shared", "video"):
            continue
        try:
            images += load_set(name)
        except pytest.skip.Exception:
            continue
    return images


def frames_of(images: Sequence[tuple[str, np.ndarray]]) -> list[Frame]:
    return [Frame(image, label, i) for i, (label, image) in enumerate(images)]


# -- runners and apps -------------------------------------------------------------------------------------------------
class RoundTripRunner(OnnxRuntimeRunner):
    """ONNX Runtime on the CPU behind a device runner's interface: CuPy feeds are copied to the host on the
    caller's stream and the outputs back (the device path's runner where onnxruntime-gpu is missing)."""

    backend = "onnxruntime_roundtrip"
    device = "cuda:0"
    residency = Residency.DEVICE

    def _infer(self, feeds: Mapping[str, Any], stream: Any) -> dict[str, Any]:
        import cupy

        stream = stream if stream is not None else cupy.cuda.get_current_stream()
        host = {name: cupy.asnumpy(array, stream=stream) for name, array in feeds.items()}
        outputs = super()._infer(host, stream)
        with stream:
            return {name: cupy.asarray(array) for name, array in outputs.items()}


def device_runner(model: str, stream: Any) -> Runner:
    from trtapps.runners.onnxruntime_cuda import OnnxRuntimeCudaRunner, available

    path = shared_path(model)
    if available() is None:
        return OnnxRuntimeCudaRunner(path, stream=stream, max_batch=16, cudnn_conv_algo_search="HEURISTIC", tf32=False)
    return RoundTripRunner(path)


def exact_runner(runner: Runner) -> bool:
    """True when the device runner computes exactly what the CPU runner computes (the round trip)."""
    return isinstance(runner, RoundTripRunner)


@pytest.fixture(scope="module")
def cp() -> Any:
    return pytest.importorskip("cupy")


@pytest.fixture(scope="module")
def stream(cp: Any) -> Any:
    return cp.cuda.Stream(non_blocking=True)


@pytest.fixture(scope="module")
def runners(stream: Any) -> Iterator[dict[str, tuple[Runner, Runner]]]:
    """``model → (CPU runner, device runner)``, created on first use."""
    made: dict[str, tuple[Runner, Runner]] = {}

    class Lazy(dict):  # type: ignore[type-arg]
        def __missing__(self, model: str) -> tuple[Runner, Runner]:
            made[model] = (OnnxRuntimeRunner(shared_path(model)), device_runner(model, stream))
            return made[model]

    yield Lazy()
    for cpu, device in made.values():
        cpu.close()
        device.close()


def yolo_app(runner: Runner, **options: Any) -> YoloApp:
    app = create_app(YoloOptions(model="model.onnx", **options), RunContext())
    app.bind(runner)
    return app


def retinaface_app(runner: Runner, **options: Any) -> RetinaFaceApp:
    app = RetinaFaceApp(RetinaFaceOptions(model="model.onnx", **options))
    app.bind(runner)
    return app


def make_app(kind: str, runner: Runner, options: Mapping[str, Any]) -> App:
    return yolo_app(runner, **options) if kind == "yolo" else retinaface_app(runner, **options)


# -- the two paths ------------------------------------------------------------------------------------------------------
def upload(cp: Any, images: Sequence[np.ndarray], stream: Any) -> list[Any]:
    with stream:
        return [cp.asarray(image) for image in images]


def preprocess_poisoned(cp: Any, app: App, images: Sequence[Any], frames: Sequence[Frame], stream: Any) -> tuple[Any, Any]:
    """``preprocess_device`` into the app's reused input buffer after filling it with NaN."""
    first, _ = app.preprocess_device(images, frames, stream)
    with stream:
        for array in first.values():
            array.fill(np.nan)
    inputs, metas = app.preprocess_device(images, frames, stream)
    for name, array in inputs.items():
        assert array.data.ptr == first[name].data.ptr, "the device input buffer was not reused"
    return inputs, metas


def device_path(cp: Any, app: App, runner: Runner, frames: Sequence[Frame], stream: Any) -> tuple[list[Detections], dict[str, np.ndarray]]:
    images = upload(cp, [f.image for f in frames], stream)
    inputs, metas = preprocess_poisoned(cp, app, images, frames, stream)
    host_inputs = {name: cp.asnumpy(array, stream=stream) for name, array in inputs.items()}
    outputs = runner.infer(inputs, stream)
    detections = app.decode_device(outputs, frames, metas, stream)
    for dets in detections:
        assert isinstance(dets.boxes, np.ndarray), "decode_device must return host Detections"
    return detections, host_inputs


def cpu_path(app: App, runner: Runner, frames: Sequence[Frame]) -> tuple[list[Detections], dict[str, np.ndarray]]:
    inputs, metas = app.preprocess(frames)
    return app.decode(runner.infer(inputs), frames, metas), inputs


# -- comparisons --------------------------------------------------------------------------------------------------------
def assert_same(gpu: Detections, cpu: Detections, where: str, *, exact: bool) -> None:
    """The acceptance rule; *exact*: the model outputs were identical, so float32 rounding is all that may differ."""
    assert len(gpu) == len(cpu), f"{where}: {len(gpu)} detections on the GPU path, {len(cpu)} on the CPU path"
    if len(cpu) == 0:
        return
    np.testing.assert_array_equal(np.sort(gpu.class_ids), np.sort(cpu.class_ids), err_msg=where)
    iou = box_iou(cpu.boxes, gpu.boxes) * (cpu.class_ids[:, None] == gpu.class_ids[None, :])
    rows, cols = linear_sum_assignment(-iou)
    assert iou[rows, cols].min() >= 0.99, f"{where}: IoU {iou[rows, cols].min():.5f}"
    assert np.abs(gpu.scores[cols] - cpu.scores[rows]).max() <= 0.01, where
    if cpu.landmarks is not None:
        assert gpu.landmarks is not None, where
        assert np.abs(gpu.landmarks[cols] - cpu.landmarks[rows]).max() <= 1.0, where
    if exact:
        assert_identical(gpu, cpu, where)


def assert_identical(gpu: Detections, cpu: Detections, where: str, *, score_rtol: float = 0.0) -> None:
    """Same detections in the same order: ids and scores equal, coordinates equal up to ``expf``'s ulps."""
    assert len(gpu) == len(cpu), f"{where}: {len(gpu)} detections on the GPU path, {len(cpu)} on the CPU path"
    np.testing.assert_array_equal(gpu.class_ids, cpu.class_ids, err_msg=where)
    np.testing.assert_allclose(gpu.scores, cpu.scores, rtol=score_rtol, atol=0, err_msg=where)
    np.testing.assert_allclose(gpu.boxes, cpu.boxes, rtol=1e-5, atol=1e-3, err_msg=where)
    if cpu.landmarks is not None:
        assert gpu.landmarks is not None, where
        np.testing.assert_allclose(gpu.landmarks, cpu.landmarks, rtol=1e-5, atol=1e-3, err_msg=where)


def assert_same_tensors(gpu: Mapping[str, np.ndarray], cpu: Mapping[str, np.ndarray], where: str) -> None:
    assert set(gpu) == set(cpu)
    for name in cpu:
        assert not np.isnan(gpu[name].astype(np.float32)).any(), f"{where}: unwritten input values (NaN poison)"
        assert gpu[name].dtype == cpu[name].dtype, where
        np.testing.assert_array_equal(gpu[name], cpu[name], err_msg=f"{where}: input {name}")


def check_paths(
    cp: Any, kind: str, model: str, options: Mapping[str, Any], batches: Sequence[Sequence[tuple[str, np.ndarray]]],
    runners: Mapping[str, tuple[Runner, Runner]], stream: Any,
) -> int:
    """Run every batch through both paths and compare; returns the number of CPU detections seen."""
    cpu_runner, gpu_runner = runners[model]
    cpu_app, gpu_app = make_app(kind, cpu_runner, options), make_app(kind, gpu_runner, options)
    assert gpu_app.supports_device
    seen = 0
    for batch in batches:
        frames = frames_of(batch)
        where = f"{Path(model).stem} {dict(options)} on {[label for label, _ in batch]}"
        gpu, gpu_inputs = device_path(cp, gpu_app, gpu_runner, frames, stream)
        cpu, cpu_inputs = cpu_path(cpu_app, cpu_runner, frames)
        assert_same_tensors(gpu_inputs, cpu_inputs, where)
        assert len(gpu) == len(cpu) == len(frames)
        for (label, _), g, c in zip(batch, gpu, cpu):
            assert_same(g, c, f"{where}: {label}", exact=exact_runner(gpu_runner))
            seen += len(c)
    return seen


# -- preprocessing --------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("model", "options"),
    [(YOLOV8N, {}), (YOLOX_NANO, {}), (YOLOX_NANO, {"yolox_legacy": True})],
    ids=["yolov8n", "yolox_nano", "yolox_legacy"],
)
def test_yolo_device_tensor_equals_cpu_tensor_on_a_mixed_size_batch(
    cp: Any, stream: Any, runners: Any, model: str, options: dict[str, Any]
) -> None:
    """Every image available in one batch (preprocessing only: YOLOX-nano's batch-1 limit is the model's)."""
    cpu_runner, _ = runners[model]
    app = yolo_app(cpu_runner, **options)
    images = load_available()
    frames = frames_of(images)
    inputs, _ = preprocess_poisoned(cp, app, upload(cp, [f.image for f in frames], stream), frames, stream)
    gpu = {name: cp.asnumpy(array, stream=stream) for name, array in inputs.items()}
    cpu, _ = app.preprocess(frames)
    assert_same_tensors(gpu, cpu, f"{model} {options}")


@pytest.mark.parametrize("input_size", [None, (640, 640)], ids=["native", "fixed640"])
def test_retinaface_device_tensor_equals_cpu_tensor(cp: Any, stream: Any, runners: Any, input_size: Any) -> None:
    cpu_runner, _ = runners[RETINAFACE]
    app = retinaface_app(cpu_runner, input_size=input_size)
    images = load_available()
    batches = [[item] for item in images] if input_size is None else [images]
    for batch in batches:
        frames = frames_of(batch)
        inputs, _ = preprocess_poisoned(cp, app, upload(cp, [f.image for f in frames], stream), frames, stream)
        gpu = {name: cp.asnumpy(array, stream=stream) for name, array in inputs.items()}
        assert_same_tensors(gpu, app.preprocess(frames)[0], f"retinaface {input_size} {[b[0] for b in batch]}")


# -- the whole device path -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("image_set", IMAGE_SETS)
def test_yolov8n_device_path_matches_cpu_path(cp: Any, stream: Any, runners: Any, image_set: str) -> None:
    images = load_set(image_set)
    seen = check_paths(cp, "yolo", YOLOV8N, {}, [[item] for item in images] + [images], runners, stream)
    assert seen > 0


def test_yolov8n_device_path_matches_cpu_path_on_one_batch_of_all_sizes(cp: Any, stream: Any, runners: Any) -> None:
    images = load_available()
    assert len({im.shape for _, im in images}) >= 5, "the batch must mix frame sizes"
    seen = check_paths(cp, "yolo", YOLOV8N, {}, [images], runners, stream)
    assert seen > 20


@pytest.mark.parametrize("image_set", IMAGE_SETS)
def test_yolox_nano_device_path_matches_cpu_path(cp: Any, stream: Any, runners: Any, image_set: str) -> None:
    images = load_set(image_set)
    seen = check_paths(cp, "yolo", YOLOX_NANO, {"conf_threshold": 0.3}, [[item] for item in images], runners, stream)
    assert seen > 0


@pytest.mark.parametrize("image_set", IMAGE_SETS)
@pytest.mark.parametrize("input_size", [None, (640, 640)], ids=["native", "fixed640"])
def test_retinaface_device_path_matches_cpu_path(
    cp: Any, stream: Any, runners: Any, image_set: str, input_size: Any
) -> None:
    images = load_set(image_set)
    batches: list[list[tuple[str, np.ndarray]]] = [[item] for item in images]
    if input_size is not None or len({im.shape for _, im in images}) == 1:
        batches.append(list(images))  # a batch: any sizes at 640, same-size frames at native size
    options = {"conf_threshold": 0.5, "input_size": input_size}
    seen = check_paths(cp, "retinaface", RETINAFACE, options, batches, runners, stream)
    if image_set in ("shared", "video"):
        assert seen > 0


# -- decode_device on decode's own outputs -----------------------------------------------------------------------------------
YOLO_DECODE_OPTIONS = [
    {},
    {"iou_threshold": 0.7, "clip_boxes": False},
    {"classes": ["person", "car"]},
    {"classes": ["person", "tie", "bus"], "agnostic_nms": True, "max_det": 3},
    {"conf_threshold": 0.01, "multi_label": True, "max_candidates": 700},
    {"conf_threshold": 0.05, "multi_label": True, "classes": [0, 2], "agnostic_nms": True, "max_candidates": 120},
]


@pytest.mark.parametrize("options", YOLO_DECODE_OPTIONS, ids=lambda o: ",".join(o) or "defaults")
@pytest.mark.parametrize("model", [YOLOV8N, YOLOX_NANO], ids=["yolov8n", "yolox_nano"])
def test_yolo_decode_device_equals_decode_on_the_same_outputs(
    cp: Any, stream: Any, runners: Any, model: str, options: dict[str, Any]
) -> None:
    cpu_runner, _ = runners[model]
    app = yolo_app(cpu_runner, **options)
    batch = 1 if model == YOLOX_NANO else 8
    images = load_set("shared") + load_set("video")
    total = 0
    for start in range(0, len(images), batch):
        frames = frames_of(images[start : start + batch])
        inputs, metas = app.preprocess(frames)
        outputs = cpu_runner.infer(inputs)
        cpu = app.decode(outputs, frames, metas)
        with stream:
            device_outputs = {name: cp.asarray(array) for name, array in outputs.items()}
        gpu = app.decode_device(device_outputs, frames, metas, stream)
        for frame, g, c in zip(frames, gpu, cpu):
            assert_identical(g, c, f"{Path(model).stem} {options} {frame.source}")
            total += len(c)
    assert total > 0


RETINAFACE_DECODE_OPTIONS = [
    ({}, "probabilities"),
    ({"conf_threshold": 0.02, "top_k": 100, "max_det": 20}, "probabilities"),
    ({"conf_threshold": 0.02}, "probabilities"),  # default top_k 5000 < 16800 priors at 640: gathered
    ({"conf_activation": "softmax", "conf_threshold": 0.3}, "logits"),
    ({"conf_threshold": 0.3}, "logits"),  # auto must see logits
]


@pytest.mark.parametrize(("options", "conf_form"), RETINAFACE_DECODE_OPTIONS, ids=lambda o: str(o))
@pytest.mark.parametrize("input_size", [None, (640, 640)], ids=["native", "fixed640"])
def test_retinaface_decode_device_equals_decode_on_the_same_outputs(
    cp: Any, stream: Any, runners: Any, input_size: Any, options: dict[str, Any], conf_form: str
) -> None:
    cpu_runner, _ = runners[RETINAFACE]
    app = retinaface_app(cpu_runner, input_size=input_size, **options)
    images = load_set("shared") + load_set("video")
    batches = [[item] for item in images] if input_size is None else [images[:4], images[4:]]
    total = 0
    for batch in batches:
        frames = frames_of(batch)
        inputs, metas = app.preprocess(frames)
        outputs = dict(cpu_runner.infer(inputs))
        if conf_form == "logits":  # log-probabilities: softmax gives the probabilities back
            with np.errstate(divide="ignore"):
                outputs["conf"] = np.log(outputs["conf"]).astype(np.float32)
        cpu = app.decode(outputs, frames, metas)
        with stream:
            device_outputs = {name: cp.asarray(array) for name, array in outputs.items()}
        gpu = app.decode_device(device_outputs, frames, metas, stream)
        for frame, g, c in zip(frames, gpu, cpu):
            # the softmax goes through expf on the GPU: scores agree to an ulp or two
            assert_identical(g, c, f"retinaface {input_size} {options} {frame.source}",
                             score_rtol=1e-6 if conf_form == "logits" else 0.0)
            total += len(c)
    assert total > 0
