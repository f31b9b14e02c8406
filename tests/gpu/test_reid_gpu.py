"""ReID crops and embeddings on the GPU equal the CPU's: the device cropper (one fused-kernel launch per frame,
straight into the runner's input buffer) and OSNet on ONNX Runtime CUDA against the host cropper and OSNet on
ONNX Runtime CPU, on real person boxes from face_tracker.mp4.

Acceptance: the same crops within float32 rounding, and the same embeddings to a cosine ≥ 0.999 per box, for a
host frame (uploaded once), a device frame, a device frame with padded rows, odd box sizes, boxes touching or
crossing the border, zero boxes, more boxes than one batch (chunked), and an input buffer poisoned with NaN.
"""

from __future__ import annotations

from collections.abc import Iterator

import cv2
import numpy as np
import pytest

from conftest import shared_path
from trtapps.pipeline import Pipeline
from trtapps.runners.onnxruntime import OnnxRuntimeRunner
from trtapps_plugins.trackers.reid import CropSpec, ReidEmbedder, crop_boxes_device, crop_boxes_host

pytestmark = pytest.mark.gpu

cp = pytest.importorskip("cupy")

FRAMES = (0, 100, 200, 300, 400)
MIN_COSINE = 0.999
CROP_ATOL = 2e-6  # the kernel divides by 255·std, the host multiplies by its reciprocal: ≤ a few ulp


def _osnet() -> str:
    return str(shared_path("models/osnet_x0_25_msmt17.onnx"))


@pytest.fixture(scope="module")
def people() -> list[tuple[np.ndarray, np.ndarray]]:
    """``(frame, person boxes)`` of a few face_tracker.mp4 frames, boxes from YOLOv8n on the CPU."""
    app = {
        "type": "yolo",
        "model": str(shared_path("models/yolov8n_dequant.onnx")),
        "conf_threshold": 0.3,
        "classes": ["person"],
    }
    cap = cv2.VideoCapture(str(shared_path("media/face_tracker.mp4")))
    found = []
    with Pipeline.from_objects(app=app, backend="onnxruntime") as detector:
        for index in FRAMES:
            cap.set(cv2.CAP_PROP_POS_FRAMES, index)
            ok, image = cap.read()
            assert ok, f"face_tracker.mp4 frame {index}"
            found.append((image, np.asarray(detector.predict(image).detections.boxes, np.float32)))
    cap.release()
    assert sum(len(b) for _, b in found) >= 8, "too few people found to compare embeddings"
    return found


@pytest.fixture(scope="module")
def cpu() -> Iterator[ReidEmbedder]:
    embedder = ReidEmbedder(OnnxRuntimeRunner(_osnet()), batch_size=8)
    yield embedder
    embedder.close()


@pytest.fixture(scope="module")
def gpu() -> Iterator[ReidEmbedder]:
    from trtapps.runners.onnxruntime_cuda import OnnxRuntimeCudaRunner

    embedder = ReidEmbedder(OnnxRuntimeCudaRunner(_osnet(), max_batch=8, tf32=False), batch_size=8)
    yield embedder
    embedder.close()


def assert_same_embeddings(got: np.ndarray, expected: np.ndarray, where: str) -> None:
    assert isinstance(got, np.ndarray), f"{where}: embeddings must come back as NumPy"
    assert got.shape == expected.shape, where
    assert got.dtype == np.float32, where
    assert np.isfinite(got).all(), where
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, rtol=1e-5, err_msg=where)
    cosine = (got * expected).sum(axis=1)
    assert cosine.min() >= MIN_COSINE, f"{where}: cosine {cosine.min():.6f} between GPU and CPU embeddings"


def odd_boxes(image: np.ndarray) -> np.ndarray:
    """Odd sizes, sub-pixel boxes and boxes touching or crossing every border."""
    h, w = image.shape[:2]
    return np.array(
        [
            [0, 0, 37, 91],  # the top-left corner
            [-15.5, -20.2, 60.7, 133.3],  # crossing the top-left border
            [w - 49.3, h - 201.9, w + 30, h + 12],  # crossing the bottom-right border
            [w - 1, h - 1, w, h],  # the last pixel
            [640.2, 300.7, 640.9, 301.1],  # less than a pixel
            [101.5, 55.5, 104.5, 700.5],  # 4 px wide, very tall
            [200, 400, 1100, 407],  # very wide, 7 px tall
            [0, 0, w, h],  # the whole frame
            [2000, 900, 2100, 1000],  # outside the frame: the nearest pixel
        ],
        dtype=np.float32,
    )


def test_runner_residency_picks_the_device_cropper(gpu: ReidEmbedder, cpu: ReidEmbedder) -> None:
    assert gpu.on_device
    assert gpu.cropper is crop_boxes_device
    assert not cpu.on_device
    assert cpu.cropper is crop_boxes_host


def test_device_crops_equal_host_crops(people: list[tuple[np.ndarray, np.ndarray]]) -> None:
    spec = CropSpec()
    for i, (image, boxes) in enumerate(people):
        for what, b in (("people", boxes), ("odd boxes", odd_boxes(image))):
            if not len(b):
                continue
            got = crop_boxes_device(cp.asarray(image), b, spec).get()
            np.testing.assert_allclose(got, crop_boxes_host(image, b, spec), rtol=0, atol=CROP_ATOL,
                                       err_msg=f"frame {FRAMES[i]} {what}")


def test_gpu_embeddings_equal_cpu_on_real_crops(
    people: list[tuple[np.ndarray, np.ndarray]], gpu: ReidEmbedder, cpu: ReidEmbedder
) -> None:
    for i, (image, boxes) in enumerate(people):
        if not len(boxes):
            continue
        expected = cpu(image, boxes)
        assert_same_embeddings(gpu(image, boxes), expected, f"frame {FRAMES[i]}, host frame")
        assert_same_embeddings(gpu(cp.asarray(image), boxes), expected, f"frame {FRAMES[i]}, device frame")


def test_device_frame_with_padded_rows(people: list[tuple[np.ndarray, np.ndarray]], gpu: ReidEmbedder,
                                       cpu: ReidEmbedder) -> None:
    """A device view into a larger frame (row pitch > 3·width) is read in place, like the host view."""
    image, boxes = max(people, key=lambda p: len(p[1]))
    x0, y0 = 100, 40
    view = image[y0:, x0:]
    shifted = boxes - np.float32([x0, y0, x0, y0])
    device_view = cp.asarray(image)[y0:, x0:]
    assert device_view.strides[0] > 3 * device_view.shape[1]
    assert_same_embeddings(gpu(device_view, shifted), cpu(view, shifted), "device view")


def test_odd_sizes_and_border_boxes(people: list[tuple[np.ndarray, np.ndarray]], gpu: ReidEmbedder,
                                    cpu: ReidEmbedder) -> None:
    image = people[0][0]
    boxes = odd_boxes(image)
    assert_same_embeddings(gpu(cp.asarray(image), boxes), cpu(image, boxes), "odd boxes")


def test_zero_boxes(people: list[tuple[np.ndarray, np.ndarray]], gpu: ReidEmbedder) -> None:
    image = people[0][0]
    for frame in (image, cp.asarray(image)):
        feats = gpu(frame, np.zeros((0, 4), np.float32))
        assert feats.shape == (0, 512)
        assert feats.dtype == np.float32


def test_more_boxes_than_one_batch_are_chunked(people: list[tuple[np.ndarray, np.ndarray]], gpu: ReidEmbedder,
                                               cpu: ReidEmbedder) -> None:
    image, boxes = max(people, key=lambda p: len(p[1]))
    rng = np.random.default_rng(0)
    many = np.concatenate([boxes, odd_boxes(image)])
    many = np.concatenate([many, many + rng.uniform(-6, 6, many.shape).astype(np.float32)])[:21]
    assert len(many) == 21 > gpu.batch_size
    assert_same_embeddings(gpu(cp.asarray(image), many), cpu(image, many), "21 boxes, batches of 8")
    assert gpu.device_buffer.shape[0] >= gpu.padded_rows(21) == 24


def test_poisoned_input_buffer_changes_nothing(people: list[tuple[np.ndarray, np.ndarray]], gpu: ReidEmbedder,
                                               cpu: ReidEmbedder) -> None:
    """Every row the model sees is written by the crop kernel, the padding rows included (3 boxes → 4 rows)."""
    image = people[0][0]
    boxes = odd_boxes(image)[:3]
    frame = cp.asarray(image)
    clean = gpu(frame, boxes)
    gpu.device_buffer.fill(cp.nan)
    poisoned = gpu(frame, boxes)
    assert np.isfinite(poisoned).all()
    np.testing.assert_allclose(poisoned, clean, rtol=0, atol=1e-5)
    assert_same_embeddings(poisoned, cpu(image, boxes), "after poisoning")


def test_nv12_device_frames_are_read_in_place(people: list[tuple[np.ndarray, np.ndarray]], gpu: ReidEmbedder,
                                              cpu: ReidEmbedder) -> None:
    """A decoder's NV12 surface (here with a padded pitch, as NVDEC leaves it): the crop kernel converts while it
    samples, equal to OpenCV's conversion followed by the host cropper; on a CPU ReID runner the frame is
    converted on the GPU and downloaded."""
    from trtapps.ops.preprocess import bgr_to_nv12

    image, boxes = max(people, key=lambda p: len(p[1]))
    nv12 = bgr_to_nv12(image)
    bgr = cv2.cvtColor(nv12, cv2.COLOR_YUV2BGR_NV12)
    pitch = nv12.shape[1] + 256
    surface = cp.zeros((nv12.shape[0], pitch), dtype=cp.uint8)
    surface[:, : nv12.shape[1]] = cp.asarray(nv12)
    frame = surface[:, : nv12.shape[1]]
    assert frame.strides[0] == pitch
    both = np.concatenate([boxes, odd_boxes(image)])
    spec = CropSpec()
    crops = crop_boxes_device(frame, both, spec, pixel_format="nv12").get()
    np.testing.assert_allclose(crops, crop_boxes_host(bgr, both, spec), rtol=0, atol=CROP_ATOL)
    expected = cpu(bgr, both)
    assert_same_embeddings(gpu(frame, both, pixel_format="nv12"), expected, "NV12 surface, GPU ReID")
    np.testing.assert_array_equal(cpu(frame, both, pixel_format="nv12"), expected)  # CPU ReID, device NV12
