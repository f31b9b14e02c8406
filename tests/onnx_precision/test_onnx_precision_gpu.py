"""fp16 and int8 models from ``trtapps.onnx.precision`` on the GPU backends, against the same models on the CPU.

Run on the GPU machine (skipped elsewhere). The models are made here, on that machine, exactly as
``benchmarks/precision_accuracy.py`` makes them (YOLOv8n calibrated on ``faces/images``, RetinaFace on
``coco/images``: never on the evaluation images). Three levels:

* detections on real photos: ``onnxruntime_cuda`` (``gpu``) and ``tensorrt`` (``tensorrt``, strongly typed
  build: the precision comes from the graph) against ``onnxruntime`` on the CPU, same model file;
* COCO / WIDER FACE accuracy on ``onnxruntime_cuda`` against the CPU run of the same model (the numbers of both
  are written to ``$TRTAPPS_BENCH_OUT`` before asserting, for benchmarks/results/accuracy.md).

Tolerances. The CPU and the GPU do not compute these models the same way: ONNX Runtime's CPU provider has few
float16 kernels, so most fp16 nodes run in float32 between inserted casts (float16 weights, float32
arithmetic), while CUDA and TensorRT compute in float16; for int8 the CPU runs integer kernels (QLinearConv)
and CUDA runs DequantizeLinear → float Conv, so a requantized activation can land one step apart. Detections
therefore compare by IoU ≥ 0.9, same class and score within 0.03 (detections within 0.05 of the score threshold
may fall on either side of it), and set-level accuracy within 0.003 (the backend rule of
the accuracy issue is 0.002 for fp32; one more thousandth for the different fp16/int8 arithmetic).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from conftest import shared_path  # tests/conftest.py
from trtapps.onnx.precision import apply_precision
from trtapps.ops.boxes import box_iou
from trtapps.pipeline import Pipeline

OUT = Path(os.environ.get("TRTAPPS_BENCH_OUT") or tempfile.gettempdir())
SET_TOL = 0.003
IMAGES = ("media/bus.jpg", "media/zidane.jpg", "media/street.jpg")
FACE_IMAGES = ("media/group.jpg",)
MODELS = {
    "yolo": ("models/yolov8n_dequant.onnx", "faces/images"),
    "retinaface": ("models/retinaface_mnet025.onnx", "coco/images"),
}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], Path]:
    folder = tmp_path_factory.mktemp("precision_gpu")
    made: dict[tuple[str, str], Path] = {}
    for app, (model, calib) in MODELS.items():
        for precision in ("fp16", "int8"):
            out = folder / f"{app}_{precision}.onnx"
            apply_precision(shared_path(model), out, precision, app={"type": app}, calib=shared_path(calib))
            made[(app, precision)] = out
    return made


def _predict(app: str, model: Path, backend: Any, images: tuple[str, ...], **options: Any) -> list[Any]:
    with Pipeline.from_objects(app={"type": app, "model": str(model), **options}, backend=backend) as pipe:
        return [pipe.predict(shared_path(image)).detections for image in images]


def _assert_same_detections(got: Any, want: Any, label: str, margin: float = 0.05) -> None:
    """Every detection clearly above the threshold on one side (score ≥ the lowest kept + *margin*) has a match on
    the other: IoU ≥ 0.9, same class, score within 0.03. Detections near the threshold may fall on either side."""
    for a, b, direction in ((want, got, "CPU → GPU"), (got, want, "GPU → CPU")):
        if len(a) == 0:
            continue
        floor = float(min(want.scores.min() if len(want) else 1.0, got.scores.min() if len(got) else 1.0))
        clear = a.scores >= floor + margin
        assert len(b) > 0 or not clear.any(), f"{label} {direction}: no detections on the other side"
        if len(b) == 0:
            continue
        iou = box_iou(a.boxes, b.boxes)
        best = iou.argmax(axis=1)
        ok = (iou.max(axis=1) >= 0.9) & (b.class_ids[best] == a.class_ids) & (np.abs(b.scores[best] - a.scores) <= 0.03)
        assert ok[clear].all(), f"{label} {direction}: unmatched {a.boxes[clear & ~ok]} scores {a.scores[clear & ~ok]}"


def _backend_case(
    prepared: dict[tuple[str, str], Path], app: str, precision: str, backend: Any, **options: Any
) -> None:
    model = prepared[(app, precision)]
    images = IMAGES if app == "yolo" else FACE_IMAGES
    cpu = _predict(app, model, "onnxruntime", images, **options)
    gpu = _predict(app, model, backend, images, **options)
    for image, want, got in zip(images, cpu, gpu):
        _assert_same_detections(got, want, f"{app} {precision} {backend} {image}")


@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["fp16", "int8"])
@pytest.mark.parametrize("app", ["yolo", "retinaface"])
def test_onnxruntime_cuda_matches_cpu(prepared: dict[tuple[str, str], Path], app: str, precision: str) -> None:
    _backend_case(prepared, app, precision, "onnxruntime_cuda")


@pytest.mark.tensorrt
@pytest.mark.parametrize("precision", ["fp16", "int8"])
@pytest.mark.parametrize("app", ["yolo", "retinaface"])
def test_tensorrt_strongly_typed_matches_cpu(prepared: dict[tuple[str, str], Path], app: str, precision: str) -> None:
    # an engine needs fixed H/W: RetinaFace (native size by default) runs at a 640x640 canvas on both sides, and
    # the engine's profile is built for that size
    if app == "retinaface":
        backend = {"type": "tensorrt", "input_size": [640, 640]}
        _backend_case(prepared, app, precision, backend, input_size=[640, 640])
    else:
        _backend_case(prepared, app, precision, "tensorrt")


@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["fp16", "int8"])
@pytest.mark.parametrize("app", ["yolo", "retinaface"])
def test_set_accuracy_cuda_matches_cpu(prepared: dict[tuple[str, str], Path], app: str, precision: str) -> None:
    from trtapps.evaluation import evaluate_detection, evaluate_faces

    model = prepared[(app, precision)]
    scores: dict[str, dict[str, float]] = {}
    for backend in ("onnxruntime_cuda", "onnxruntime"):
        if app == "yolo":
            r = evaluate_detection(shared_path("coco"), app=app, model=str(model), backend=backend, precision=precision)
            scores[backend] = {"mAP50-95": r.map50_95, "mAP50": r.map50}
        else:
            f = evaluate_faces(shared_path("faces"), app=app, model=str(model), backend=backend, precision=precision)
            scores[backend] = {k: float(v) for k, v in f.aps.items()}
    gpu, cpu = scores["onnxruntime_cuda"], scores["onnxruntime"]
    document = {
        "app": app,
        "precision": precision,
        "model": model.name,
        **scores,
        "gpu_minus_cpu": {k: round(gpu[k] - cpu[k], 6) for k in gpu},
        "tolerance": SET_TOL,
    }
    (OUT / f"precision_{app}_{precision}_gpu_vs_cpu.json").write_text(json.dumps(document, indent=2) + "\n")
    for key in gpu:
        assert abs(gpu[key] - cpu[key]) <= SET_TOL, f"{key}: GPU {gpu[key]:.4f} vs CPU {cpu[key]:.4f}"
