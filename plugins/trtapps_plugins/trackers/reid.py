"""Person re-identification embeddings for DeepSORT: crop each box, run a ReID model, L2-normalise.

The embedder is split in two so the device path can be added without touching the trackers:

* a **cropper** turns ``(image, boxes)`` into the model's input batch ``(N, 3, H, W)`` float32. The host
  cropper here clips each box to the image, cuts it out and resizes it with ``cv2.resize`` (bilinear, plain
  resize — no letterbox, as boxmot/torchreid), converts BGR → RGB, scales to [0, 1] and normalises with the
  ImageNet mean/std. A device cropper (one affine warp per box on CuPy, writing straight into the runner's
  input buffer) implements the same call and is picked when the runner's residency is the device;
* :class:`ReidEmbedder` batches the crops through any :class:`trtapps.runners.base.Runner` and normalises the
  output rows to unit length.

Default conventions are OSNet's (``osnet_x0_25_msmt17.onnx``: input ``images`` ``[B, 3, 256, 128]``, output 512-d):
the input size comes from the model, the normalisation from :class:`CropSpec`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from trtapps.runners.base import Runner
from trtapps.stages import Residency

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class CropSpec:
    """How crops become model input.

    Attributes:
        height: model input height (OSNet: 256).
        width: model input width (OSNet: 128).
        rgb: feed RGB (torchreid/boxmot models) rather than BGR.
        mean: per-channel mean subtracted after scaling to [0, 1], in the model's channel order.
        std: per-channel std divided by.
    """

    height: int = 256
    width: int = 128
    rgb: bool = True
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD


Cropper = Callable[[Any, Any, CropSpec], Any]


def crop_boxes_host(image: np.ndarray, boxes: np.ndarray, spec: CropSpec) -> np.ndarray:
    """Host cropper: ``(H, W, 3)`` uint8 BGR image and ``(N, 4)`` xyxy boxes → ``(N, 3, h, w)`` float32.

    Boxes are rounded outwards to whole pixels and clipped to the image; a box that ends up empty (outside
    the image or degenerate) becomes the 1-pixel crop nearest to it.
    """
    import cv2

    n = int(boxes.shape[0])
    out = np.empty((n, spec.height, spec.width, 3), dtype=np.float32)
    if n == 0:
        return out.transpose(0, 3, 1, 2)
    ih, iw = image.shape[:2]
    b = np.asarray(boxes, dtype=np.float64)
    x1 = np.clip(np.floor(b[:, 0]), 0, iw - 1).astype(np.int64)
    y1 = np.clip(np.floor(b[:, 1]), 0, ih - 1).astype(np.int64)
    x2 = np.clip(np.ceil(b[:, 2]), x1 + 1, iw).astype(np.int64)
    y2 = np.clip(np.ceil(b[:, 3]), y1 + 1, ih).astype(np.int64)
    for i in range(n):
        crop = image[y1[i] : y2[i], x1[i] : x2[i]]
        out[i] = cv2.resize(crop, (spec.width, spec.height), interpolation=cv2.INTER_LINEAR)
    if spec.rgb:
        out = out[..., ::-1]
    mean = np.asarray(spec.mean, dtype=np.float32) * 255.0
    inv_std = 1.0 / (np.asarray(spec.std, dtype=np.float32) * 255.0)
    out = (out - mean) * inv_std
    return np.ascontiguousarray(out.transpose(0, 3, 1, 2))


class ReidEmbedder:
    """Appearance features of boxes in a frame, through a ReID model on any runner.

    Args:
        runner: the loaded model; its first input is ``[B, 3, H, W]``, its first output ``[B, D]``.
        spec: crop size and normalisation; ``height``/``width`` are taken from the model when it fixes them.
        batch_size: crops per inference call (capped by a fixed model batch).
        cropper: overrides the cropper chosen from the runner's residency.

    Call it as ``embedder(image, boxes_xyxy) -> (N, D)`` float32 unit vectors.
    """

    def __init__(
        self,
        runner: Runner,
        spec: CropSpec | None = None,
        *,
        batch_size: int = 32,
        cropper: Cropper | None = None,
    ) -> None:
        self.runner = runner
        info = runner.input()
        self.input_name = info.name
        if len(info.shape) != 4 or info.shape[1] not in (3, None):
            raise ValueError(f"{runner.model_path.name}: ReID input must be [B, 3, H, W], got {info.describe()}")
        spec = spec or CropSpec()
        h = info.shape[2] or spec.height
        w = info.shape[3] or spec.width
        self.spec = CropSpec(h, w, spec.rgb, spec.mean, spec.std)
        fixed = info.shape[0]
        self.batch_size = min(batch_size, fixed) if fixed else batch_size
        self.fixed_batch = fixed
        self.output_name = runner.outputs[0].name
        if cropper is None:
            if runner.residency is Residency.DEVICE:
                raise NotImplementedError("a device-resident ReID runner needs a device cropper (not there yet)")
            cropper = crop_boxes_host
        self.cropper = cropper
        self.dim: int | None = runner.outputs[0].shape[-1] if runner.outputs[0].shape else None

    @classmethod
    def from_path(cls, path: str | Path, *, batch_size: int = 32, threads: int = 0) -> ReidEmbedder:
        """An embedder on ONNX Runtime (CPU) for the model at ``path``."""
        from trtapps.runners.onnxruntime import OnnxRuntimeRunner

        return cls(OnnxRuntimeRunner(path, threads=threads), batch_size=batch_size)

    def __call__(self, image: Any, boxes: Any) -> np.ndarray:
        boxes = np.asarray(boxes)
        n = int(boxes.shape[0])
        if n == 0:
            return np.zeros((0, self.dim or 0), dtype=np.float32)
        batch = self.cropper(image, boxes, self.spec)
        dtype = self.runner.input(self.input_name).dtype
        outputs = []
        for start in range(0, n, self.batch_size):
            chunk = batch[start : start + self.batch_size].astype(dtype, copy=False)
            k = chunk.shape[0]
            if self.fixed_batch and k < self.fixed_batch:  # pad a fixed-batch model's last call
                pad = np.zeros((self.fixed_batch - k, *chunk.shape[1:]), dtype=chunk.dtype)
                chunk = np.concatenate([chunk, pad])
            out = self.runner.infer({self.input_name: chunk})[self.output_name]
            outputs.append(np.asarray(out, dtype=np.float32).reshape(chunk.shape[0], -1)[:k])
        feats = np.concatenate(outputs)
        norms = np.linalg.norm(feats, axis=1, keepdims=True)
        return feats / np.maximum(norms, 1e-12)

    def close(self) -> None:
        self.runner.close()
