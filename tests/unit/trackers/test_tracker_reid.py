"""The OSNet embedder on real video: unit-norm 512-d features that tell people apart across frames; the crop
rectangles and arithmetic both croppers share; the ReID backend following the pipeline's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from conftest import shared_path
from trtapps.context import RunContext
from trtapps.errors import ConfigError, InputError
from trtapps.ops.boxes import box_iou
from trtapps.ops.preprocess import preprocess_reference
from trtapps.runners.onnxruntime import OnnxRuntimeRunner
from trtapps_plugins.trackers import reid
from trtapps_plugins.trackers.deepsort import DeepSortOptions, build_deepsort
from trtapps_plugins.trackers.reid import CropSpec, ReidEmbedder, build_reid_runner, crop_boxes_host, crop_rects


@pytest.fixture(scope="module")
def embedder() -> ReidEmbedder:
    return ReidEmbedder(OnnxRuntimeRunner(shared_path("models/osnet_x0_25_msmt17.onnx")), batch_size=8)


def moving_people(frames: set[int]) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Walking people in vtest.avi found by background subtraction: ``{frame: (image, xyxy boxes)}``."""
    cap = cv2.VideoCapture(str(shared_path("media/vtest.avi")))
    assert cap.isOpened()
    sub = cv2.createBackgroundSubtractorMOG2(history=100, varThreshold=25, detectShadows=False)
    found = {}
    for index in range(max(frames) + 1):
        ok, image = cap.read()
        assert ok, f"vtest.avi ended at frame {index}"
        mask = sub.apply(image)
        if index in frames:
            mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
            mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, np.ones((9, 5), np.uint8))
            _, _, stats, _ = cv2.connectedComponentsWithStats(mask)
            boxes = [[x, y, x + w, y + h] for x, y, w, h, area in stats[1:] if area > 400 and 1.3 < h / w < 4]
            found[index] = (image, np.asarray(boxes, dtype=np.float32).reshape(-1, 4))
    cap.release()
    return found


def test_crops_are_plain_resized_rgb_imagenet_normalised() -> None:
    image = np.zeros((100, 200, 3), np.uint8)
    image[:, :, 0] = 255  # pure blue in BGR
    batch = crop_boxes_host(image, np.array([[10, 10, 60, 90], [-20, -5, 5, 400]], np.float32), CropSpec())
    assert batch.shape == (2, 3, 256, 128)
    assert batch.dtype == np.float32
    # RGB order: channel 2 (blue) is 1.0 after scaling, channels 0/1 are 0.0, then ImageNet mean/std
    np.testing.assert_allclose(batch[0, :, 0, 0], [(0 - 0.485) / 0.229, (0 - 0.456) / 0.224, (1 - 0.406) / 0.225],
                               rtol=1e-5)
    assert np.isfinite(batch).all()  # the box sticking out of the image is clipped, not empty


def test_embeddings_are_unit_512d_and_same_person_is_nearest(embedder: ReidEmbedder) -> None:
    starts = range(60, 300, 30)
    people = moving_people({t + k for t in starts for k in (0, 2)})
    same, different, rank1 = [], [], []
    for t in starts:
        (img_a, boxes_a), (img_b, boxes_b) = people[t], people[t + 2]
        emb_a, emb_b = embedder(img_a, boxes_a), embedder(img_b, boxes_b)
        assert emb_a.shape == (len(boxes_a), 512)
        assert emb_a.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(emb_a, axis=1), 1.0, rtol=1e-5)
        if not len(boxes_a) or not len(boxes_b):
            continue
        iou = box_iou(boxes_a, boxes_b)
        dist = 1.0 - emb_a @ emb_b.T
        for i in range(len(boxes_a)):
            j = int(iou[i].argmax())
            if iou[i, j] > 0.5:  # the same person two frames later
                same.append(dist[i, j])
                rank1.append(int(dist[i].argmin()) == j)
                different.extend(dist[i, iou[i] < 0.1])
    assert len(same) >= 10
    assert len(different) >= 20
    assert np.mean(same) < 0.25
    assert np.mean(different) > 0.4
    assert np.mean(rank1) >= 0.9


def test_empty_and_fixed_batch_calls(embedder: ReidEmbedder) -> None:
    image = np.full((240, 320, 3), 128, np.uint8)
    assert embedder(image, np.zeros((0, 4), np.float32)).shape[0] == 0
    boxes = np.tile(np.array([[10, 10, 60, 120]], np.float32), (11, 1))  # more than one batch of 8
    feats = embedder(image, boxes)
    assert feats.shape == (11, 512)
    np.testing.assert_allclose(feats, np.repeat(feats[:1], 11, axis=0), atol=1e-5)


def test_crop_rects_round_outwards_and_clip_to_the_image() -> None:
    boxes = np.array(
        [
            [10.2, 20.7, 30.1, 40.0],  # fractional: floor the top-left, ceil the bottom-right
            [-20, -5, 5, 400],  # sticks out: clipped
            [250, 120, 260, 130],  # outside: the nearest pixel
            [50, 50, 50, 50],  # degenerate: one pixel
        ]
    )
    np.testing.assert_array_equal(
        crop_rects(boxes, (100, 200)), [[10, 20, 21, 20], [0, 0, 5, 100], [199, 99, 1, 1], [50, 50, 1, 1]]
    )


def test_host_cropper_equals_the_device_kernels_arithmetic() -> None:
    """The GPU cropper is the fused preprocessing kernel, whose host twin is ``preprocess_reference`` with
    ``resize="fixed_point"`` (bit-exact, tests/gpu/test_kernels.py): the host cropper must equal it on the same
    rectangles within float32 rounding, so GPU and CPU crops are the same."""
    cap = cv2.VideoCapture(str(shared_path("media/face_tracker.mp4")))
    ok, image = cap.read()
    cap.release()
    assert ok
    h, w = image.shape[:2]
    boxes = np.array(
        [[300.4, 100.6, 377.9, 555.1], [0, 0, 13, 7], [w - 41.5, h - 300.2, w + 20, h + 5], [640, 360, 641, 361]]
    )
    spec = CropSpec()
    rows = len(boxes)
    reference = preprocess_reference(
        [image] * rows,
        (spec.height, spec.width),
        np.tile([0, 0, spec.width, spec.height], (rows, 1)),
        src_rects=crop_rects(boxes, (h, w)),
        swap_rb=True,
        mean=spec.pixel_mean().tolist(),
        std=spec.pixel_std().tolist(),
        resize="fixed_point",
    )
    np.testing.assert_allclose(crop_boxes_host(image, boxes, spec), reference, rtol=0, atol=2e-6)


def test_device_batches_are_padded_to_one_shape(embedder: ReidEmbedder) -> None:
    assert embedder.batch_size == 8
    padded = {n: embedder.padded_rows(n) for n in (1, 2, 3, 5, 8, 9, 11, 16, 21)}
    assert padded == {1: 8, 2: 8, 3: 8, 5: 8, 8: 8, 9: 16, 11: 16, 16: 16, 21: 24}


def test_nv12_frames_are_converted_like_opencv_on_the_cpu(embedder: ReidEmbedder) -> None:
    nv12 = np.random.default_rng(1).integers(0, 256, (360, 320), dtype=np.uint8)  # a 320x240 picture
    boxes = np.array([[10, 20, 90, 230], [200.5, 0, 320, 240]], np.float32)
    bgr = cv2.cvtColor(nv12, cv2.COLOR_YUV2BGR_NV12)
    np.testing.assert_array_equal(embedder(nv12, boxes, pixel_format="nv12"), embedder(bgr, boxes))
    with pytest.raises(InputError, match="BGR or NV12"):
        embedder(bgr, boxes, pixel_format="rgba")


def test_deepsort_reid_backend_follows_the_pipeline(monkeypatch: pytest.MonkeyPatch) -> None:
    model = shared_path("models/osnet_x0_25_msmt17.onnx")
    asked: list[tuple[str, Any]] = []

    def fake_runner(path: Path, backend: str, context: Any, **kw: Any) -> OnnxRuntimeRunner:
        asked.append((backend, context))
        return OnnxRuntimeRunner(path)

    monkeypatch.setattr(reid, "build_reid_runner", fake_runner)
    gpu_run = RunContext(backend="onnxruntime_cuda")
    build_deepsort(DeepSortOptions(reid_model=str(model)), gpu_run)
    build_deepsort(DeepSortOptions(reid_model=str(model), reid_backend="onnxruntime"), gpu_run)
    build_deepsort(DeepSortOptions(reid_model=str(model)), RunContext(backend="onnxruntime"))
    build_deepsort(DeepSortOptions(reid_model=str(model)), None)  # trtapps mot: no pipeline
    assert [b for b, _ in asked] == ["onnxruntime_cuda", "onnxruntime", "onnxruntime", "onnxruntime"]
    assert asked[0][1] is gpu_run  # the run's context: its device and CUDA stream


def test_deepsort_trackers_of_one_pipeline_share_one_reid_model_closed_with_the_last(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    model = shared_path("models/osnet_x0_25_msmt17.onnx")
    closed: list[OnnxRuntimeRunner] = []

    class Runner(OnnxRuntimeRunner):
        def close(self) -> None:
            closed.append(self)
            super().close()

    monkeypatch.setattr(reid, "build_reid_runner", lambda path, backend, context, **kw: Runner(path))
    run = RunContext(backend="onnxruntime")
    first, second = (build_deepsort(DeepSortOptions(reid_model=str(model)), run) for _ in range(2))
    assert first.embedder is second.embedder  # one model for every source of the pipeline
    first.close()
    first.close()  # twice is once
    assert closed == []  # the second tracker still uses it
    second.close()
    assert closed == [second.embedder.runner]
    third = build_deepsort(DeepSortOptions(reid_model=str(model)), run)  # a later run loads it again
    assert third.embedder is not second.embedder
    third.embedder.close()  # closed behind the trackers' backs (not through tracker.close())
    fourth = build_deepsort(DeepSortOptions(reid_model=str(model)), run)
    assert not fourth.embedder.closed  # a closed model is never handed out
    assert len(closed) == 2


def test_unknown_reid_backend_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"tracker\.reid_backend"):
        build_reid_runner(shared_path("models/osnet_x0_25_msmt17.onnx"), "no_such_backend")
