"""Accuracy evaluation of an app's own pipeline: COCO mAP (``detect``) and WIDER FACE AP (``faces``).

The images run through the same pipeline code as ``trtapps run`` (preprocessing, runner, decode, NMS), with
the thresholds of the model family's reference protocol (:mod:`trtapps.evaluation.presets`). The package is
app-agnostic: it knows apps only by their type name, their options model and, optionally, a ``variant``
attribute or an ``eval_preset(task)`` method.

Example::

    from trtapps.evaluation import evaluate_detection, evaluate_faces

    result = evaluate_detection("coco128/", app="yolo", model="yolov8n.onnx")
    print(result.map50_95, result.map50, result.run.preset.describe())

    faces = evaluate_faces("wider_val/", app="retinaface", model="retinaface_mnet025.onnx")
    print(faces.aps)  # {"easy": …, "medium": …, "hard": …}
"""

from __future__ import annotations

from trtapps.evaluation.detection import (
    COCO80,
    COCO80_TO_COCO91,
    ClassAP,
    CocoScore,
    DetectionResult,
    DetectionSet,
    category_map,
    coco_score,
    evaluate_detection,
    load_detection_set,
    to_coco_results,
)
from trtapps.evaluation.faces import (
    FaceImage,
    FaceResult,
    bbox_overlaps,
    dataset_pr_info,
    evaluate_faces,
    image_eval,
    img_pr_info,
    load_wider_gt,
    norm_score,
    voc_ap,
    wider_ap,
    wider_predictions,
)
from trtapps.evaluation.inference import PRECISIONS, EvalRun, ImageItem, build_pipeline, check_precision
from trtapps.evaluation.presets import GENERIC, PRESETS, EvalPreset, app_variant, find_preset, resolve_preset

__all__ = [
    "COCO80",
    "COCO80_TO_COCO91",
    "GENERIC",
    "PRECISIONS",
    "PRESETS",
    "ClassAP",
    "CocoScore",
    "DetectionResult",
    "DetectionSet",
    "EvalPreset",
    "EvalRun",
    "FaceImage",
    "FaceResult",
    "ImageItem",
    "app_variant",
    "bbox_overlaps",
    "build_pipeline",
    "category_map",
    "check_precision",
    "coco_score",
    "dataset_pr_info",
    "evaluate_detection",
    "evaluate_faces",
    "find_preset",
    "image_eval",
    "img_pr_info",
    "load_detection_set",
    "load_wider_gt",
    "norm_score",
    "resolve_preset",
    "to_coco_results",
    "voc_ap",
    "wider_ap",
    "wider_predictions",
]
