"""Real YOLOv8 inputs for the runner tests: the shared media images, letterboxed the Ultralytics way."""

from __future__ import annotations

import cv2
import numpy as np

from conftest import shared_path

#: the media images a batch cycles through
IMAGES = ("bus.jpg", "zidane.jpg", "street.jpg", "group.jpg")


def letterbox(image: np.ndarray, size: int = 640) -> np.ndarray:
    """Centred letterbox to ``size``×``size`` (grey 114), BGR→RGB, /255, CHW float32."""
    h, w = image.shape[:2]
    r = min(size / h, size / w)
    nh, nw = round(h * r), round(w * r)
    canvas = np.full((size, size, 3), 114, np.uint8)
    top, left = (size - nh) // 2, (size - nw) // 2
    canvas[top:top + nh, left:left + nw] = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
    return np.ascontiguousarray(canvas[..., ::-1].transpose(2, 0, 1), dtype=np.float32) / np.float32(255.0)


def batch_of(n: int) -> np.ndarray:
    """*n* distinct letterboxed inputs ``(n, 3, 640, 640)``: the four media images, then their mirror images."""
    frames = []
    for i in range(n):
        image = cv2.imread(str(shared_path(f"media/{IMAGES[i % len(IMAGES)]}")))
        assert image is not None
        if (i // len(IMAGES)) % 2:
            image = np.ascontiguousarray(image[:, ::-1])
        frames.append(letterbox(image))
    return np.stack(frames)
