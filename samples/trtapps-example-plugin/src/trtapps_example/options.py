"""The options of the ``yolo_e2e`` app and the ``csv`` sink: what their mappings in a pipeline file accept.

Each model extends the trtapps base of its kind, so shared fields (``model``, ``batch_size``, ``classes`` for
apps) keep one meaning everywhere, and unknown keys are errors that point at the pipeline file's line.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator
from trtapps import AppOptions, SinkOptions


class YoloE2EOptions(AppOptions):
    """End-to-end YOLO exports whose head already ran NMS: one output ``[batch, K, 6]``.

    Rows are ``x1, y1, x2, y2, score, class`` in letterboxed input pixels (YOLOv10, YOLO26, Ultralytics
    ``nms=True`` exports). The app letterboxes, thresholds and maps boxes back; it runs no NMS of its own.
    """

    type: Literal["yolo_e2e"] = Field("yolo_e2e", description="Which registered component to use.")
    conf_threshold: float = Field(0.25, ge=0.0, le=1.0, description="Keep rows whose score is greater than this.")
    input_size: tuple[int, int] | None = Field(
        None,
        description="Model input [height, width] for models with a dynamic size (default: the model's fixed "
        "size, else its imgsz metadata).",
    )
    names: list[str] | None = Field(
        None, description="Class names, index = class id (default: the model's `names` metadata)."
    )

    @field_validator("input_size", mode="before")
    @classmethod
    def _square(cls, value: object) -> object:
        """One number means a square input."""
        if isinstance(value, int) and not isinstance(value, bool):
            return (value, value)
        return value

    @field_validator("names")
    @classmethod
    def _not_empty(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and not value:
            raise ValueError("give at least one class name, or leave names out to use the model's metadata")
        return value


class CsvSinkOptions(SinkOptions):
    """Detections as CSV: one row per detection, flushed after every frame."""

    type: Literal["csv"] = Field("csv", description="Which registered component to use.")
    path: str = Field("detections.csv", description="Output file, relative to the run's output folder.")
    decimals: int = Field(2, ge=0, le=6, description="Decimals of the box coordinates.")
