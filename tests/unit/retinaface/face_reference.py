"""Independent references for the face-app tests, written the way the original projects write them.

Plain Python loops and explicit per-column formulas (biubug6 ``PriorBox`` / ``decode`` / ``py_cpu_nms``,
insightface ``SCRFD.forward`` / ``SCRFD.nms``), deliberately *not* sharing code or structure with the plugin.
Also a minimal fake :class:`trtapps.Runner` so ``bind`` can be tested without a model file, and the check of
the one-line error ``bind`` gives for it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from itertools import product
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from trtapps.errors import ModelError
from trtapps.runners.base import Runner, TensorInfo

F32 = np.dtype(np.float32)


def ref_priors(height: int, width: int) -> np.ndarray:
    """biubug6 ``PriorBox.forward``: nested loops over levels, rows, columns, min sizes → ``(N, 4)`` float32."""
    anchors: list[float] = []
    for step, min_sizes in ((8, [16, 32]), (16, [64, 128]), (32, [256, 512])):
        rows, cols = math.ceil(height / step), math.ceil(width / step)
        for i, j in product(range(rows), range(cols)):
            for min_size in min_sizes:
                anchors += [
                    (j + 0.5) * step / width,
                    (i + 0.5) * step / height,
                    min_size / width,
                    min_size / height,
                ]
    return np.array(anchors, dtype=np.float32).reshape(-1, 4)


def ref_decode(
    loc: np.ndarray, priors: np.ndarray, variances: tuple[float, float] = (0.1, 0.2)
) -> np.ndarray:
    """biubug6 ``box_utils.decode``: centre/size, then the in-place corner conversion → ``(N, 4)``."""
    boxes = np.concatenate(
        (
            priors[:, :2] + loc[:, :2] * variances[0] * priors[:, 2:],
            priors[:, 2:] * np.exp(loc[:, 2:] * variances[1]),
        ),
        axis=1,
    )
    boxes[:, :2] -= boxes[:, 2:] / 2
    boxes[:, 2:] += boxes[:, :2]
    return boxes


def ref_decode_landm(
    pre: np.ndarray, priors: np.ndarray, variances: tuple[float, float] = (0.1, 0.2)
) -> np.ndarray:
    """biubug6 ``box_utils.decode_landm`` → ``(N, 10)`` interleaved x, y."""
    return np.concatenate(
        [priors[:, :2] + pre[:, 2 * k : 2 * k + 2] * variances[0] * priors[:, 2:] for k in range(5)], axis=1
    )


def py_cpu_nms(dets: np.ndarray, thresh: float) -> list[int]:
    """biubug6 / Fast R-CNN ``py_cpu_nms`` (``+1`` pixel areas); *dets* rows are ``x1, y1, x2, y2, score``."""
    x1, y1, x2, y2, scores = dets[:, 0], dets[:, 1], dets[:, 2], dets[:, 3], dets[:, 4]
    areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = scores.argsort()[::-1]
    keep = []
    while order.size > 0:
        i = order[0]
        keep.append(int(i))
        xx1 = np.maximum(x1[i], x1[order[1:]])
        yy1 = np.maximum(y1[i], y1[order[1:]])
        xx2 = np.minimum(x2[i], x2[order[1:]])
        yy2 = np.minimum(y2[i], y2[order[1:]])
        w = np.maximum(0.0, xx2 - xx1 + 1)
        h = np.maximum(0.0, yy2 - yy1 + 1)
        inter = w * h
        ovr = inter / (areas[i] + areas[order[1:]] - inter)
        inds = np.where(ovr <= thresh)[0]
        order = order[inds + 1]
    return keep


def ref_retinaface_detect(
    loc: np.ndarray,
    conf: np.ndarray,
    landms: np.ndarray,
    height: int,
    width: int,
    *,
    resize: float = 1.0,
    confidence_threshold: float = 0.02,
    top_k: int = 5000,
    nms_threshold: float = 0.4,
    keep_top_k: int = 750,
) -> tuple[np.ndarray, np.ndarray]:
    """biubug6 ``detect.py`` for one image: ``(dets (K, 5) [x1, y1, x2, y2, score], landmarks (K, 10))``."""
    priors = ref_priors(height, width)
    boxes = ref_decode(loc, priors) * np.array([width, height, width, height]) / resize
    scores = conf[:, 1]
    landmarks = ref_decode_landm(landms, priors) * np.array([width, height] * 5) / resize
    inds = np.where(scores > confidence_threshold)[0]
    boxes, landmarks, scores = boxes[inds], landmarks[inds], scores[inds]
    order = scores.argsort()[::-1][:top_k]
    boxes, landmarks, scores = boxes[order], landmarks[order], scores[order]
    dets = np.hstack((boxes, scores[:, np.newaxis])).astype(np.float32, copy=False)
    keep = py_cpu_nms(dets, nms_threshold)
    return dets[keep][:keep_top_k], landmarks[keep][:keep_top_k]


def ref_scrfd_centres(height: int, width: int, stride: int, num_anchors: int) -> np.ndarray:
    """insightface's commented "solution-1, c style" anchor centres, repeated per anchor → ``(N, 2)``."""
    rows, cols = height // stride, width // stride
    centres = []
    for y in range(rows):
        for x in range(cols):
            centres.extend([[x * stride, y * stride]] * num_anchors)
    return np.array(centres, dtype=np.float32).reshape(-1, 2)


def ref_scrfd_detect(
    net_outs: list[np.ndarray],
    det_scale: float,
    *,
    threshold: float = 0.5,
    nms_thresh: float = 0.4,
    size: tuple[int, int] = (640, 640),
) -> tuple[np.ndarray, np.ndarray]:
    """insightface ``SCRFD.forward`` + ``detect`` (fmc = 3, 2 anchors) on unbatched ``[N, k]`` outputs.

    Returns:
        ``(det (K, 5), kpss (K, 5, 2))`` in original pixels (both axes divided by *det_scale*).
    """
    scores_list, bboxes_list, kpss_list = [], [], []
    for idx, stride in enumerate((8, 16, 32)):
        scores = net_outs[idx]
        bbox_preds = net_outs[idx + 3] * stride
        kps_preds = net_outs[idx + 6] * stride
        centres = ref_scrfd_centres(size[0], size[1], stride, 2)
        pos_inds = np.where(scores >= threshold)[0]
        x1 = centres[:, 0] - bbox_preds[:, 0]
        y1 = centres[:, 1] - bbox_preds[:, 1]
        x2 = centres[:, 0] + bbox_preds[:, 2]
        y2 = centres[:, 1] + bbox_preds[:, 3]
        bboxes = np.stack([x1, y1, x2, y2], axis=-1)
        preds = []
        for i in range(0, kps_preds.shape[1], 2):
            preds.append(centres[:, i % 2] + kps_preds[:, i])
            preds.append(centres[:, i % 2 + 1] + kps_preds[:, i + 1])
        kpss = np.stack(preds, axis=-1).reshape(-1, 5, 2)
        scores_list.append(scores[pos_inds])
        bboxes_list.append(bboxes[pos_inds])
        kpss_list.append(kpss[pos_inds])
    scores = np.vstack(scores_list)
    order = scores.ravel().argsort()[::-1]
    bboxes = np.vstack(bboxes_list) / det_scale
    kpss = np.vstack(kpss_list) / det_scale
    pre_det = np.hstack((bboxes, scores)).astype(np.float32, copy=False)[order, :]
    keep = py_cpu_nms(pre_det, nms_thresh)
    return pre_det[keep, :], kpss[order][keep]


class FakeRunner(Runner):
    """A runner that only describes a model (for ``bind`` tests); it cannot infer."""

    backend = "fake"

    def __init__(
        self,
        inputs: list[tuple[str, tuple[int | None, ...]]],
        outputs: list[tuple[str, tuple[int | None, ...]]],
        name: str = "fake_model.onnx",
        dtype: Any = np.float32,
    ) -> None:
        self.model_path = Path("/models") / name
        self.metadata = {}
        self.inputs = [TensorInfo(n, s, np.dtype(dtype)) for n, s in inputs]
        self.outputs = [TensorInfo(n, s, F32) for n, s in outputs]

    def _infer(self, feeds: Mapping[str, Any], stream: Any) -> dict[str, Any]:
        raise AssertionError("FakeRunner cannot run a model")


def assert_one_line_model_error(exc: pytest.ExceptionInfo[ModelError], fragment: str) -> None:
    """The bind error is one line, names :class:`FakeRunner`'s model file and contains *fragment*."""
    message = str(exc.value)
    assert "\n" not in message
    assert "/models/fake_model.onnx" in message
    assert fragment in message
