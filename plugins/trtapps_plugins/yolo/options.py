"""The options of app ``yolo`` (the ``app:`` mapping of a pipeline file)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from trtapps import AppOptions

Variant = Literal["auto", "v5", "v8", "yolox"]

#: the largest stride of the supported heads; input sizes must be multiples of it
STRIDE = 32


class YoloOptions(AppOptions):
    """YOLOv5, YOLOv8/YOLO11 and YOLOX detectors exported to ONNX.

    The NMS IoU threshold defaults to 0.45: Ultralytics' YOLOv5 default, YOLOX's ONNX demo default and the
    threshold the reference detections of the shared models were checked with. Ultralytics' YOLOv8/11
    ``predict`` uses 0.7, which keeps more overlapping boxes; set ``iou_threshold: 0.7`` to match it.
    """

    type: Literal["yolo"] = Field(default="yolo", description="Which registered component to use.")
    variant: Variant = Field(
        default="auto",
        description=(
            "Head layout: v5 ([B, N, 5+C], obj × cls), v8 (also YOLO11; [B, 4+C, N], no objectness), yolox "
            "([B, N, 5+C], raw or decoded boxes), or auto (from the output shape and the model metadata)."
        ),
    )
    conf_threshold: float = Field(
        default=0.25, ge=0.0, le=1.0, description="Keep detections whose score is greater than this."
    )
    iou_threshold: float = Field(
        default=0.45,
        ge=0.0,
        le=1.0,
        description="NMS drops a box whose IoU with a better one is greater than this (Ultralytics v8: 0.7).",
    )
    max_det: int = Field(default=300, ge=1, le=100_000, description="Keep at most this many detections per frame.")
    max_candidates: int = Field(
        default=30_000, ge=1, le=1_000_000, description="Best-scoring candidates entering NMS (Ultralytics' max_nms)."
    )
    agnostic_nms: bool = Field(
        default=False, description="Suppress overlapping boxes across classes, not only within one class."
    )
    multi_label: bool = Field(
        default=False,
        description="Every class above conf_threshold becomes a candidate (evaluation, as Ultralytics val).",
    )
    input_size: tuple[int, int] | None = Field(
        default=None,
        description=(
            "Model input [height, width] (or one number for a square) for models with dynamic height/width; "
            "multiples of 32. Models with a fixed size use that size."
        ),
    )
    names: str | list[str] | None = Field(
        default=None,
        description=(
            "Class names: a file with one name per line (relative to the config file) or a list. "
            "Default: the model's metadata, else the COCO-80 names for 80-class models, else the class ids."
        ),
    )
    clip_boxes: bool = Field(
        default=True,
        description="Clip boxes to the image (the YOLOX evaluation protocol does not clip: false).",
    )
    yolox_legacy: bool = Field(
        default=False,
        description=(
            "YOLOX models trained before YOLOX 0.2.0 (and ByteTrack's): RGB, /255, ImageNet mean/std. "
            "Current YOLOX models take BGR 0-255 without normalisation."
        ),
    )

    @field_validator("input_size", mode="before")
    @classmethod
    def _square(cls, value: object) -> object:
        """A single number means a square input."""
        if isinstance(value, int) and not isinstance(value, bool):
            return (value, value)
        return value

    @field_validator("input_size")
    @classmethod
    def _multiple_of_stride(cls, value: tuple[int, int] | None) -> tuple[int, int] | None:
        if value is not None and any(v < STRIDE or v % STRIDE for v in value):
            raise ValueError(f"must be positive multiples of {STRIDE} (the model stride), got {list(value)}")
        return value

    @field_validator("names")
    @classmethod
    def _names_not_empty(cls, value: str | list[str] | None) -> str | list[str] | None:
        if value is not None and len(value) == 0:
            raise ValueError("must be a names file or a non-empty list of class names")
        return value
