"""End to end with the real shared models on ONNX Runtime (CPU): face counts, scores and landmark geometry match
the verified results in ``shared/models/MANIFEST.md``; batching and misfit models."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import cv2
import numpy as np
import pytest

from conftest import shared_path
from trtapps.errors import ModelError
from trtapps.runners.onnxruntime import OnnxRuntimeRunner
from trtapps.stages import App
from trtapps.structures import Detections, Frame
from trtapps_plugins.retinaface import RetinaFaceApp, RetinaFaceOptions, ScrfdApp, ScrfdOptions


def load_runner(name: str) -> OnnxRuntimeRunner:
    return OnnxRuntimeRunner(shared_path(f"models/{name}"))


@pytest.fixture(scope="module")
def mnet() -> Iterator[Any]:
    runner = load_runner("retinaface_mnet025.onnx")
    yield runner
    runner.close()


@pytest.fixture(scope="module")
def scrfd() -> Iterator[Any]:
    runner = load_runner("scrfd_500m_bnkps.onnx")
    yield runner
    runner.close()


_IMAGES: dict[str, np.ndarray] = {}


def image(name: str) -> Frame:
    if name not in _IMAGES:
        loaded = cv2.imread(str(shared_path(f"media/{name}.jpg")))
        assert loaded is not None, f"cannot read media/{name}.jpg"
        _IMAGES[name] = loaded
    return Frame(image=_IMAGES[name], source=f"{name}.jpg")


def detect(app: App, runner: Any, frames: list[Frame]) -> list[Detections]:
    feeds, metas = app.preprocess(frames)
    return app.decode(runner.infer(feeds), frames, metas)


def retinaface(runner: Any, **options: Any) -> RetinaFaceApp:
    app = RetinaFaceApp(RetinaFaceOptions(model="m.onnx", **options))
    app.bind(runner)
    return app


def scrfd_app(runner: Any, **options: Any) -> ScrfdApp:
    app = ScrfdApp(ScrfdOptions(model="m.onnx", **options))
    app.bind(runner)
    return app


def assert_plausible_faces(det: Detections, min_score: float) -> None:
    """Scores sorted and above the threshold; landmarks: eyes above nose above mouth, left eye first, in box."""
    assert det.landmarks is not None
    assert det.landmarks.shape == (len(det), 5, 2)
    assert (det.scores >= min_score).all()
    assert (np.diff(det.scores) <= 0).all()
    assert (det.boxes[:, 2] > det.boxes[:, 0]).all()
    assert (det.boxes[:, 3] > det.boxes[:, 1]).all()
    for box, (left_eye, right_eye, nose, mouth_left, mouth_right) in zip(
        det.boxes, det.landmarks, strict=True
    ):
        assert left_eye[0] < right_eye[0]
        assert mouth_left[0] < mouth_right[0]
        assert max(left_eye[1], right_eye[1]) < nose[1] < min(mouth_left[1], mouth_right[1])
        points = np.stack([left_eye, right_eye, nose, mouth_left, mouth_right])
        assert (points[:, 0] >= box[0]).all()
        assert (points[:, 0] <= box[2]).all()
        assert (points[:, 1] >= box[1]).all()
        assert (points[:, 1] <= box[3]).all()


# -- retinaface -----------------------------------------------------------------------------------------------


def test_retinaface_group_native_size_finds_24_faces(mnet: Any) -> None:
    app = retinaface(mnet)
    assert app.input_size is None
    det = detect(app, mnet, [image("group")])[0]
    assert len(det) == 24
    assert_plausible_faces(det, 0.6)
    h, w = image("group").image.shape[:2]
    assert (det.boxes[:, 0] > -5).all()
    assert (det.boxes[:, 2] < w + 5).all()
    assert (det.boxes[:, 3] < h + 5).all()


@pytest.mark.parametrize(("name", "scores"), [("zidane", [0.999, 0.999]), ("bus", [0.992, 0.966])])
def test_retinaface_zidane_and_bus_find_two_faces(mnet: Any, name: str, scores: list[float]) -> None:
    det = detect(retinaface(mnet), mnet, [image(name)])[0]
    assert len(det) == 2
    np.testing.assert_allclose(det.scores, scores, atol=1.5e-3)
    assert_plausible_faces(det, 0.6)


def test_retinaface_second_weights_agree() -> None:
    runner = load_runner("retinaface_mnet025_yakhyo.onnx")
    app = retinaface(runner)
    counts = [len(d) for d in (detect(app, runner, [image(n)])[0] for n in ("group", "zidane", "bus"))]
    assert counts == [24, 2, 2]
    assert_plausible_faces(detect(app, runner, [image("group")])[0], 0.6)


def test_retinaface_fixed_640_input_still_finds_24(mnet: Any) -> None:
    app = retinaface(mnet, input_size=[640, 640])
    assert app.batch_key(image("group")) is None
    det = detect(app, mnet, [image("group")])[0]
    assert len(det) == 24
    assert_plausible_faces(det, 0.6)
    native = detect(retinaface(mnet), mnet, [image("group")])[0]
    # the same faces, found at a 0.625 scale: centres within a few pixels of the native-size ones
    centres = (det.boxes[:, :2] + det.boxes[:, 2:]) / 2
    native_centres = (native.boxes[:, :2] + native.boxes[:, 2:]) / 2
    nearest = np.linalg.norm(centres[:, None] - native_centres[None], axis=-1).min(axis=1)
    assert (nearest < 6).all()


def test_evaluation_threshold_keeps_the_display_faces_first(mnet: Any) -> None:
    display = detect(retinaface(mnet), mnet, [image("group")])[0]
    evaluation = detect(retinaface(mnet, conf_threshold=0.02), mnet, [image("group")])[0]
    assert len(evaluation) > len(display)
    np.testing.assert_array_equal(evaluation.boxes[:24], display.boxes)
    np.testing.assert_array_equal(evaluation.landmarks[:24], display.landmarks)


def test_retinaface_batch_of_two_equals_one_by_one(mnet: Any) -> None:
    app = retinaface(mnet)
    group = image("group")
    mirrored = Frame(image=np.ascontiguousarray(group.image[:, ::-1]), source="group_mirrored.jpg")
    together = detect(app, mnet, [group, mirrored])
    for batched, f in zip(together, [group, mirrored], strict=True):
        alone = detect(app, mnet, [f])[0]
        assert len(batched) == len(alone) == 24
        np.testing.assert_allclose(batched.boxes, alone.boxes, atol=1e-3)
        np.testing.assert_allclose(batched.scores, alone.scores, atol=1e-5)
        np.testing.assert_allclose(batched.landmarks, alone.landmarks, atol=1e-3)
    # the mirrored image finds the mirrored faces
    w = group.width
    mirrored_x = np.sort(w - together[1].boxes[:, [2, 0]], axis=0)
    np.testing.assert_allclose(mirrored_x, np.sort(together[0].boxes[:, [0, 2]], axis=0), atol=3.0)


def test_mixed_sizes_at_native_size_are_split_by_batch_key(mnet: Any) -> None:
    app = retinaface(mnet)
    frames = [image("group"), image("zidane"), image("bus"), image("group")]
    with pytest.raises(ValueError, match="batch_key"):
        app.preprocess(frames)
    batches: dict[Any, list[int]] = defaultdict(list)
    for i, f in enumerate(frames):
        batches[app.batch_key(f)].append(i)
    assert sorted(batches.values()) == [[0, 3], [1], [2]]
    results: dict[int, Detections] = {}
    for indices in batches.values():
        results.update(zip(indices, detect(app, mnet, [frames[i] for i in indices]), strict=True))
    assert [len(results[i]) for i in range(4)] == [24, 2, 2, 24]
    np.testing.assert_allclose(results[0].boxes, results[3].boxes, atol=1e-3)


# -- scrfd ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "count", "scores"),
    [("group", 24, None), ("zidane", 2, [0.799, 0.783]), ("bus", 2, [0.854, 0.762])],
)
def test_scrfd_finds_the_manifest_faces(
    scrfd: Any, name: str, count: int, scores: list[float] | None
) -> None:
    app = scrfd_app(scrfd)
    assert app.input_size == (640, 640)
    det = detect(app, scrfd, [image(name)])[0]
    assert len(det) == count
    assert_plausible_faces(det, 0.5)
    if scores is not None:
        np.testing.assert_allclose(det.scores, scores, atol=1.5e-3)


def test_scrfd_and_retinaface_find_the_same_faces_on_group(mnet: Any, scrfd: Any) -> None:
    a = detect(scrfd_app(scrfd), scrfd, [image("group")])[0]
    b = detect(retinaface(mnet), mnet, [image("group")])[0]
    centres_a = (a.boxes[:, :2] + a.boxes[:, 2:]) / 2
    centres_b = (b.boxes[:, :2] + b.boxes[:, 2:]) / 2
    nearest = np.linalg.norm(centres_a[:, None] - centres_b[None], axis=-1).min(axis=1)
    assert (nearest < 10).all()


# -- misfits --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("app", "model"),
    [
        (RetinaFaceApp, "osnet_x0_25_msmt17.onnx"),
        (RetinaFaceApp, "scrfd_500m_bnkps.onnx"),
        (ScrfdApp, "retinaface_mnet025.onnx"),
        (ScrfdApp, "osnet_x0_25_msmt17.onnx"),
    ],
)
def test_misfit_models_raise_one_line_model_errors(app: type[App], model: str) -> None:
    runner = load_runner(model)
    options = RetinaFaceOptions if app is RetinaFaceApp else ScrfdOptions
    with pytest.raises(ModelError) as exc:
        app(options(model=model)).bind(runner)  # type: ignore[call-arg]
    message = str(exc.value)
    assert "\n" not in message
    assert str(runner.model_path) in message
    assert "use " in message


def test_fixed_scrfd_refuses_another_input_size(scrfd: Any) -> None:
    with pytest.raises(ModelError, match=r"fixed at 640.*remove app.input_size"):
        scrfd_app(scrfd, input_size=[480, 640])


def test_a_partly_fixed_input_size_error_names_the_app() -> None:
    from types import SimpleNamespace

    from trtapps_plugins.retinaface._common import resolve_input_size

    runner: Any = SimpleNamespace(model_path="m.onnx", inputs=[SimpleNamespace(describe=lambda: "input [1, 3, 640, ?]")])
    with pytest.raises(ModelError) as exc:
        resolve_input_size(runner, "scrfd", (640, None), None, (640, 640))
    assert str(exc.value) == (
        "m.onnx: the model's input is input [1, 3, 640, ?] (only one of height and width is fixed); set "
        "app.input_size to [height, width] for app 'scrfd'"
    )
