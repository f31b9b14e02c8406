"""Helpers shared by the face apps: their common options and state, top-left resize into a fixed canvas,
model-input checks, face selection.

Kept inside this plugin on purpose (plugins never import each other, and the core letterbox is not a
dependency): face detectors place the resized image at the **top-left** of the canvas (insightface SCRFD,
and RetinaFace when a fixed-size engine forces a resize), so the inverse is a plain per-axis division.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any

import cv2
import numpy as np
from pydantic import Field

from trtapps.errors import ModelError
from trtapps.ops.nms import nms
from trtapps.runners.base import Runner, TensorInfo
from trtapps.stages import App
from trtapps.structures import Detections

#: ``[height, width]`` of a model input, as written in pipeline files
InputSize = tuple[Annotated[int, Field(ge=16, le=16384)], Annotated[int, Field(ge=16, le=16384)]]
#: the face apps' ``iou_threshold`` option (their NMS uses ``+1`` pixel areas, as both references do)
FaceIouThreshold = Annotated[
    float,
    Field(ge=0.0, le=1.0, description="NMS: drop a face whose IoU (+1 pixel areas) with a better one exceeds this."),
]
#: the face apps' ``max_det`` option
FaceMaxDet = Annotated[int, Field(ge=1, le=100_000, description="Most faces kept per image after NMS.")]


class FaceApp(App):
    """What every face app is: one class ``"face"`` with 5 landmarks per detection, and the model input it binds
    to (name unknown and dtype float32 until :meth:`_bind_input`).

    Args:
        options: the validated app options.
    """

    def __init__(self, options: Any) -> None:
        self.options = options
        self.labels = ["face"]
        self.keypoints = 5
        self._input_name: str | None = None
        self._input_dtype: np.dtype[Any] = np.dtype(np.float32)

    def _bind_input(self, info: TensorInfo) -> None:
        """Remember the model's image input (what :meth:`preprocess` feeds, in its dtype)."""
        self._input_name = info.name
        self._input_dtype = np.dtype(info.dtype)

    def _in_input_dtype(self, blob: np.ndarray) -> np.ndarray:
        """The float32 *blob* in the model input's dtype (*blob* itself when that is float32)."""
        return blob if blob.dtype == self._input_dtype else blob.astype(self._input_dtype)


@dataclass(frozen=True)
class CanvasTransform:
    """How one image was resized (aspect ratio kept) and placed at the top-left of a model input.

    Attributes:
        src_size: ``(height, width)`` of the original image.
        dst_size: ``(height, width)`` of the model input (the canvas).
        resized_size: ``(height, width)`` of the resized image inside the canvas (``<= dst_size``).
    """

    src_size: tuple[int, int]
    dst_size: tuple[int, int]
    resized_size: tuple[int, int]

    @classmethod
    def identity(cls, height: int, width: int) -> CanvasTransform:
        """The transform of an image fed at its own size (no resize, no padding)."""
        return cls((height, width), (height, width), (height, width))

    @classmethod
    def fit(cls, src_size: tuple[int, int], dst_size: tuple[int, int]) -> CanvasTransform:
        """Plan the largest aspect-preserving resize of *src_size* that fits *dst_size*.

        The binding axis gets exactly the canvas size; the other one is truncated to an integer
        (insightface's ``int(new_height / im_ratio)``, computed here in exact integer arithmetic). Images
        smaller than the canvas are scaled up, as insightface does.
        """
        src_h, src_w = int(src_size[0]), int(src_size[1])
        dst_h, dst_w = int(dst_size[0]), int(dst_size[1])
        if src_h < 1 or src_w < 1 or dst_h < 1 or dst_w < 1:
            raise ValueError(f"sizes must be positive, got source {src_size} and canvas {dst_size}")
        if src_h * dst_w >= src_w * dst_h:  # relatively taller (or equal): the height binds
            new_h, new_w = dst_h, max(1, min(dst_w, src_w * dst_h // src_h))
        else:
            new_h, new_w = max(1, min(dst_h, src_h * dst_w // src_w)), dst_w
        return cls((src_h, src_w), (dst_h, dst_w), (new_h, new_w))

    @property
    def scale_x(self) -> float:
        """Canvas pixels per source pixel along x (resized width / source width)."""
        return self.resized_size[1] / self.src_size[1]

    @property
    def scale_y(self) -> float:
        """Canvas pixels per source pixel along y (resized height / source height)."""
        return self.resized_size[0] / self.src_size[0]

    @property
    def is_identity(self) -> bool:
        return self.src_size == self.resized_size

    def resize(self, image: np.ndarray) -> np.ndarray:
        """The ``(h', w', C)`` resized image (``cv2.INTER_LINEAR``); *image* itself when unchanged."""
        if tuple(image.shape[:2]) != self.src_size:
            raise ValueError(
                f"image has size {tuple(image.shape[:2])}, but this transform is for {self.src_size}"
            )
        if self.is_identity:
            return image
        new_h, new_w = self.resized_size
        return cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)

    def points_to_source(self, points: np.ndarray) -> np.ndarray:
        """Map canvas coordinates back to source pixels.

        Args:
            points: ``(..., 2k)`` float array of interleaved ``x, y`` (xyxy boxes: k = 2; flat
                landmarks: k = 5) or ``(..., 2)`` points.

        Returns:
            A new float32 array of the same shape.
        """
        out = np.array(points, dtype=np.float32, copy=True)
        out[..., 0::2] /= np.float32(self.scale_x)
        out[..., 1::2] /= np.float32(self.scale_y)
        return out

    def points_to_canvas(self, points: np.ndarray) -> np.ndarray:
        """The forward mapping of :meth:`points_to_source` (source pixels → canvas), same layout."""
        out = np.array(points, dtype=np.float32, copy=True)
        out[..., 0::2] *= np.float32(self.scale_x)
        out[..., 1::2] *= np.float32(self.scale_y)
        return out


def resize_into_canvas(
    image: np.ndarray, dst_size: tuple[int, int], fill: float | Sequence[float] = 0
) -> tuple[np.ndarray, CanvasTransform]:
    """Resize *image* keeping its aspect ratio and paste it at the top-left of a canvas filled with *fill*.

    Args:
        image: ``(H, W, C)`` array (uint8 BGR for frames).
        dst_size: ``(height, width)`` of the canvas.
        fill: the padding value, a scalar or one value per channel.

    Returns:
        ``(canvas, transform)``: the ``(height, width, C)`` canvas with *image*'s dtype, and the transform
        whose :meth:`CanvasTransform.points_to_source` maps canvas coordinates back.
    """
    transform = CanvasTransform.fit((image.shape[0], image.shape[1]), dst_size)
    canvas = np.empty((dst_size[0], dst_size[1], image.shape[2]), dtype=image.dtype)
    canvas[...] = np.asarray(fill, dtype=image.dtype)
    new_h, new_w = transform.resized_size
    canvas[:new_h, :new_w] = transform.resize(image)
    return canvas, transform


# --------------------------------------------------------------------------------------------------------
# Model checks
# --------------------------------------------------------------------------------------------------------


def describe_outputs(runner: Runner) -> str:
    return ", ".join(t.describe() for t in runner.outputs) or "none"


def image_input(runner: Runner, app: str) -> tuple[TensorInfo, tuple[int | None, int | None]]:
    """The model's image input (NCHW, 3 channels, floating point) and its ``(H, W)`` (``None``: dynamic).

    Raises:
        ModelError: one line naming the model file and what is expected.
    """
    if len(runner.inputs) != 1:
        raise ModelError(
            f"{runner.model_path}: app {app!r} needs a model with one image input, but it has "
            f"{len(runner.inputs)} ({', '.join(t.describe() for t in runner.inputs)}); use a {app} export"
        )
    info = runner.inputs[0]
    if len(info.shape) != 4 or info.shape[1] not in (3, None):
        raise ModelError(
            f"{runner.model_path}: app {app!r} needs an NCHW input with 3 channels, but the input is "
            f"{info.describe()}; use a {app} export or another app type"
        )
    if not np.issubdtype(info.dtype, np.floating):
        raise ModelError(
            f"{runner.model_path}: app {app!r} needs a floating-point input, but the input is "
            f"{info.describe()}; "
            "export the model with a float32 (or float16) input"
        )
    return info, (info.shape[2], info.shape[3])


def resolve_input_size(
    runner: Runner,
    app: str,
    model_hw: tuple[int | None, int | None],
    requested: tuple[int, int] | None,
    default: tuple[int, int] | None,
) -> tuple[int, int] | None:
    """The fixed ``(H, W)`` frames are resized to, or ``None`` to feed each frame at its own size.

    Args:
        model_hw: the model's input height and width (``None`` where dynamic).
        requested: the ``input_size`` option.
        default: the size used for a dynamic model without ``input_size`` (``None``: native size).

    Raises:
        ModelError: ``input_size`` contradicts a fixed model size, or a partly fixed model lacks it.
    """
    fixed = [d for d in model_hw if d is not None]
    if requested is not None:
        for axis, (want, got) in enumerate(zip(model_hw, requested, strict=True)):
            if want is not None and want != got:
                raise ModelError(
                    f"{runner.model_path}: app.input_size is [{requested[0]}, {requested[1]}], but the "
                    f"model's input {'height' if axis == 0 else 'width'} is fixed at {want} "
                    f"({runner.inputs[0].describe()}); remove app.input_size or set it to the model's size"
                )
        return (int(requested[0]), int(requested[1]))
    if len(fixed) == 2:
        return (int(model_hw[0]), int(model_hw[1]))  # type: ignore[arg-type]
    if fixed:
        raise ModelError(
            f"{runner.model_path}: the model's input is {runner.inputs[0].describe()} (only one of height "
            f"and width is fixed); set app.input_size to [height, width] for app {app!r}"
        )
    return default


# --------------------------------------------------------------------------------------------------------
# Selection
# --------------------------------------------------------------------------------------------------------


def select_faces(
    scores: np.ndarray,
    boxes: np.ndarray,
    landmarks: np.ndarray,
    *,
    iou_threshold: float,
    max_det: int,
) -> Detections:
    """Greedy NMS with legacy ``+1`` pixel areas (py_cpu_nms, insightface) → face :class:`Detections`.

    Args:
        scores: ``(N,)`` float32 candidate scores (already thresholded).
        boxes: ``(N, 4)`` float32 xyxy in original image pixels.
        landmarks: ``(N, 5, 2)`` float32 in original image pixels.
        iou_threshold: a box is dropped when its IoU with a kept box is greater than this.
        max_det: keep at most this many faces, best first.
    """
    keep = nms(boxes, scores, iou_threshold, plus_one=True, max_det=max_det)
    return Detections(
        boxes=boxes[keep],
        scores=scores[keep],
        class_ids=np.zeros(keep.shape[0], dtype=np.int32),
        landmarks=landmarks[keep].reshape(-1, landmarks.shape[1], 2),
    )
