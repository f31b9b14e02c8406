"""Evaluation presets: the app options (and loader steps) of each model family's reference evaluation protocol.

A published accuracy number is only reproducible with the thresholds it was measured with, which are not the
thresholds one deploys with (Ultralytics validates at ``conf 0.001``, predicts at ``0.25``). A preset is
chosen for the **bound** app, because the family is often known only after the model was read (``variant:
auto``):

1. the app's own :meth:`eval_preset` method, when it has one and returns something (how a plugin app
   supplies its protocol, see below);
2. :data:`PRESETS`, keyed by ``(task, app type, variant)``; the variant is read from the bound app's
   ``variant`` attribute, else from ``app.head.variant`` (the ``yolo`` app's head description);
3. ``(task, app type, None)``: a preset for every variant of an app type;
4. the generic fallback of the task (:data:`GENERIC`): ``conf_threshold 0.001`` for detection and ``0.02``
   for faces, and the app's own NMS settings.

Preset options the app's options model does not have are left out and reported (``ignored``), so a preset
can name an option a newer app version adds without breaking older ones. ``--conf``/``--iou`` given by the
user replace the preset's thresholds and are shown as overrides.

**Supplying a preset from a plugin app.** Give the app class a method::

    def eval_preset(self, task: str) -> EvalPreset | Mapping[str, Any] | None:
        if task == "detect":
            return EvalPreset("mydet", {"conf_threshold": 0.001, "iou_threshold": 0.6}, note="MyDet val")
        return None

It is called on the bound app (after ``bind``), so it can depend on what the model turned out to be; a plain
mapping is taken as the options of a preset named after the app type.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

#: the evaluation tasks: COCO-style box detection, WIDER FACE-style face detection
Task = Literal["detect", "faces"]

#: how the evaluation loader resizes an image before the app sees it (``None``: not at all)
LongSideResize = Literal["linear", "area_down"]


@dataclass(frozen=True)
class EvalPreset:
    """The settings of one reference evaluation protocol.

    Attributes:
        name: a short name printed with the result (``yolov8``, ``yolox``, ``retinaface-widerface``, …).
        options: app options to set (``conf_threshold``, ``iou_threshold``, ``multi_label``, ``max_det``…).
        long_side_resize: the Ultralytics/YOLOv5 val dataloader step: resize the image so its long side is the
            model input size (``ceil`` of the other side) before the app's own letterbox, then map the boxes
            back with the height gain. ``"linear"``: ``cv2.INTER_LINEAR`` (Ultralytics ≥ 8.1);
            ``"area_down"``: ``INTER_AREA`` when shrinking (YOLOv5). ``None``: the app's preprocessing alone.
        note: the protocol in words (where the numbers come from).
        ignored: preset options the app does not have (filled by :func:`resolve_preset`).
        overrides: options the user replaced (``--conf``/``--iou``), filled by :func:`resolve_preset`.
    """

    name: str
    options: Mapping[str, Any] = field(default_factory=dict)
    long_side_resize: LongSideResize | None = None
    note: str = ""
    ignored: tuple[str, ...] = ()
    overrides: Mapping[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        """One line: name, options, loader step, overrides and ignored options."""
        opts = ", ".join(f"{k} {_fmt(v)}" for k, v in self.options.items())
        parts = [f"{self.name}: {opts or 'app defaults'}"]
        if self.long_side_resize:
            parts.append(f"loader resize long side ({self.long_side_resize})")
        if self.overrides:
            parts.append("overridden: " + ", ".join(f"{k} {_fmt(v)}" for k, v in self.overrides.items()))
        if self.ignored:
            parts.append("not supported by the app: " + ", ".join(self.ignored))
        return "; ".join(parts)

    def to_json(self) -> dict[str, Any]:
        """Plain data for ``--json``."""
        return {
            "name": self.name,
            "options": dict(self.options),
            "long_side_resize": self.long_side_resize,
            "overrides": dict(self.overrides),
            "ignored": list(self.ignored),
            "note": self.note,
        }


_ULTRALYTICS = "Ultralytics val: letterbox centred after the val loader's long-side resize, pycocotools bbox"

#: ``(task, app type, variant)`` → preset; ``variant=None`` matches every variant of that app type
PRESETS: dict[tuple[str, str, str | None], EvalPreset] = {
    ("detect", "yolo", "v8"): EvalPreset(
        "yolov8",
        {"conf_threshold": 0.001, "iou_threshold": 0.7, "multi_label": True, "agnostic_nms": False, "max_det": 300},
        long_side_resize="linear",
        note=f"YOLOv8/YOLO11 {_ULTRALYTICS}; conf 0.001, class-aware NMS 0.7, multi-label, max 300",
    ),
    ("detect", "yolo", "v5"): EvalPreset(
        "yolov5",
        {"conf_threshold": 0.001, "iou_threshold": 0.6, "multi_label": True, "agnostic_nms": False, "max_det": 300},
        long_side_resize="area_down",
        note="YOLOv5 val.py: letterbox centred after the loader's long-side resize; conf 0.001, NMS 0.6, "
        "multi-label, max 300",
    ),
    ("detect", "yolo", "yolox"): EvalPreset(
        "yolox",
        {
            "conf_threshold": 0.001,
            "iou_threshold": 0.65,
            "multi_label": False,
            "agnostic_nms": False,
            "max_det": 300,
            "clip_boxes": False,
        },
        note="YOLOX eval: top-left resize, score obj·cls of the best class, conf 0.001, class-aware NMS 0.65, "
        "boxes not clipped to the image, max 300",
    ),
    ("faces", "retinaface", None): EvalPreset(
        "retinaface-widerface",
        {"conf_threshold": 0.02, "iou_threshold": 0.4, "top_k": 1_000_000, "max_det": 100_000, "input_size": None},
        note="biubug6 test_widerface.py: origin size, conf > 0.02, NMS 0.4 (+1 areas), no top-k, every detection kept",
    ),
}

#: the fallback of each task: a low threshold so the PR curve is complete, the app's own NMS
GENERIC: dict[str, EvalPreset] = {
    "detect": EvalPreset("generic", {"conf_threshold": 0.001}, note="conf 0.001, the app's own NMS settings"),
    "faces": EvalPreset("generic", {"conf_threshold": 0.02}, note="conf 0.02, the app's own NMS settings"),
}


def app_variant(app: Any) -> str | None:
    """The variant of a bound app: ``app.variant``, else ``app.head.variant`` (the yolo app), else ``None``."""
    for owner in (app, getattr(app, "head", None)):
        try:
            value = getattr(owner, "variant", None)
        except RuntimeError:  # a head property that needs bind()
            value = None
        if isinstance(value, str):
            return value
    return None


def find_preset(task: str, app_type: str, app: Any = None) -> EvalPreset:
    """The preset for a bound app: the app's own, else the table's, else the task's generic one.

    Args:
        task: ``"detect"`` or ``"faces"``.
        app_type: the registered app name (``yolo``, ``retinaface``, …).
        app: the bound app instance (``None``: by type only).

    Raises:
        ValueError: an unknown task.
    """
    if task not in GENERIC:
        raise ValueError(f"unknown evaluation task {task!r}; use one of {sorted(GENERIC)}")
    supplier = getattr(app, "eval_preset", None)
    if callable(supplier):
        own = supplier(task)
        if isinstance(own, EvalPreset):
            return own
        if isinstance(own, Mapping):
            return EvalPreset(app_type, dict(own), note=f"supplied by app {app_type!r}")
    variant = app_variant(app) if app is not None else None
    for key in ((task, app_type, variant), (task, app_type, None)):
        if key in PRESETS:
            return PRESETS[key]
    return GENERIC[task]


def resolve_preset(
    preset: EvalPreset, option_fields: Sequence[str], overrides: Mapping[str, Any] | None = None
) -> EvalPreset:
    """Fit a preset to an app: drop options the app lacks (listed in ``ignored``), apply user overrides.

    Args:
        preset: from :func:`find_preset`.
        option_fields: the names of the app's option fields (``OptionsModel.model_fields``).
        overrides: option values the user gave explicitly (``None`` values are skipped).

    Raises:
        KeyError: an override names an option the app does not have (the message names it).
    """
    fields = set(option_fields)
    kept = {k: v for k, v in preset.options.items() if k in fields}
    ignored = tuple(k for k in preset.options if k not in fields)
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    for key in given:
        if key not in fields:
            raise KeyError(key)
    return replace(preset, options={**kept, **given}, ignored=ignored, overrides=given)


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value is None:
        return "native"
    return f"{value:g}" if isinstance(value, float) else str(value)
