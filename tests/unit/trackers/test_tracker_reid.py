"""The OSNet embedder on real video: unit-norm 512-d features that tell people apart across frames."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from conftest import shared_path
from trtapps.ops.boxes import box_iou
from trtapps.runners.onnxruntime import OnnxRuntimeRunner
from trtapps_plugins.trackers.reid import CropSpec, ReidEmbedder, crop_boxes_host


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
