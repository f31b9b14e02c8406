"""An independent reference pipeline for YOLOv8 and RetinaFace, written from the papers' reference code
descriptions (Ultralytics' LetterBox/scale_boxes/NMS, biubug6's PriorBox/decode/py_cpu_nms) with plain NumPy,
OpenCV and ONNX Runtime. It shares no code with trtapps, so agreement between the two is evidence, not echo.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import onnxruntime as ort


def _session(path: str) -> ort.InferenceSession:
    return ort.InferenceSession(path, providers=["CPUExecutionProvider"])


def _greedy_nms(boxes: np.ndarray, scores: np.ndarray, thr: float, plus_one: bool) -> list[int]:
    e = 1.0 if plus_one else 0.0
    order = list(np.argsort(-scores, kind="stable"))
    keep: list[int] = []
    while order:
        i = order.pop(0)
        keep.append(i)
        survivors = []
        for j in order:
            xx1, yy1 = max(boxes[i, 0], boxes[j, 0]), max(boxes[i, 1], boxes[j, 1])
            xx2, yy2 = min(boxes[i, 2], boxes[j, 2]), min(boxes[i, 3], boxes[j, 3])
            inter = max(0.0, xx2 - xx1 + e) * max(0.0, yy2 - yy1 + e)
            a = (boxes[i, 2] - boxes[i, 0] + e) * (boxes[i, 3] - boxes[i, 1] + e)
            b = (boxes[j, 2] - boxes[j, 0] + e) * (boxes[j, 3] - boxes[j, 1] + e)
            if inter / (a + b - inter) <= thr:
                survivors.append(j)
        order = survivors
    return keep


def yolov8(model: str, image: np.ndarray, conf: float = 0.25, iou: float = 0.45) -> list[dict]:
    """Ultralytics-style predict for a [1, 84, 8400] 640×640 export; boxes in original pixels."""
    h, w = image.shape[:2]
    r = min(640 / h, 640 / w)
    nw, nh = int(round(w * r)), int(round(h * r))
    img = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR) if (nw, nh) != (w, h) else image
    dw, dh = (640 - nw) / 2, (640 - nh) / 2
    top, bottom = int(round(dh - 0.1)), int(round(dh + 0.1))
    left, right = int(round(dw - 0.1)), int(round(dw + 0.1))
    img = cv2.copyMakeBorder(img, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(114, 114, 114))
    x = np.ascontiguousarray(img[:, :, ::-1].transpose(2, 0, 1))[None].astype(np.float32) / 255.0
    sess = _session(model)
    pred = sess.run(None, {sess.get_inputs()[0].name: x})[0][0].T
    cls_scores = pred[:, 4:]
    cls = cls_scores.argmax(1)
    score = cls_scores[np.arange(len(cls)), cls]
    sel = score > conf
    pred, cls, score = pred[sel], cls[sel], score[sel]
    boxes = np.stack([pred[:, 0] - pred[:, 2] / 2, pred[:, 1] - pred[:, 3] / 2,
                      pred[:, 0] + pred[:, 2] / 2, pred[:, 1] + pred[:, 3] / 2], 1).astype(np.float64)
    out = []
    for c in np.unique(cls):
        idx = np.where(cls == c)[0]
        for k in _greedy_nms(boxes[idx], score[idx], iou, plus_one=False):
            out.append(idx[k])
    gain = min(640 / h, 640 / w)
    pad_x, pad_y = round((640 - w * gain) / 2 - 0.1), round((640 - h * gain) / 2 - 0.1)
    result = []
    for i in sorted(out, key=lambda i: -score[i]):
        b = boxes[i].copy()
        b[[0, 2]] = np.clip((b[[0, 2]] - pad_x) / gain, 0, w)
        b[[1, 3]] = np.clip((b[[1, 3]] - pad_y) / gain, 0, h)
        result.append({"box": b.tolist(), "score": float(score[i]), "class_id": int(cls[i])})
    return result


def retinaface(model: str, image: np.ndarray, conf: float = 0.6, nms: float = 0.4) -> list[dict]:
    """biubug6 test protocol at the image's own size; boxes and 5 landmarks in original pixels."""
    h, w = image.shape[:2]
    x = (image.astype(np.float32) - np.array([104, 117, 123], np.float32)).transpose(2, 0, 1)[None]
    sess = _session(model)
    names = [o.name for o in sess.get_outputs()]
    outs = dict(zip(names, sess.run(None, {sess.get_inputs()[0].name: np.ascontiguousarray(x)})))
    loc, scores, landm = outs["loc"][0], outs["conf"][0][:, 1], outs["landmarks"][0]
    priors = []
    for step, sizes in zip((8, 16, 32), ((16, 32), (64, 128), (256, 512))):
        for i in range(math.ceil(h / step)):
            for j in range(math.ceil(w / step)):
                for m in sizes:
                    priors.append(((j + 0.5) * step / w, (i + 0.5) * step / h, m / w, m / h))
    p = np.array(priors)
    centre = p[:, :2] + loc[:, :2] * 0.1 * p[:, 2:]
    size = p[:, 2:] * np.exp(loc[:, 2:] * 0.2)
    boxes = np.concatenate([centre - size / 2, centre + size / 2], 1) * [w, h, w, h]
    lms = np.stack([p[:, :2] + landm[:, 2 * k:2 * k + 2] * 0.1 * p[:, 2:] for k in range(5)], 1) * [w, h]
    sel = np.where(scores > conf)[0]
    order = sel[np.argsort(-scores[sel], kind="stable")][:5000]
    keep = _greedy_nms(boxes[order], scores[order], nms, plus_one=True)[:750]
    return [{"box": boxes[order[k]].tolist(), "score": float(scores[order[k]]), "class_id": 0,
             "landmarks": lms[order[k]].tolist()} for k in keep]
