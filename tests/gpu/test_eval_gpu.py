"""``trtapps eval`` on ONNX Runtime CUDA: the reference accuracy of the shared sets, and the CPU's numbers within
0.002 (the backend rule of the accuracy-parity issue).

Each case runs the command twice on the GPU machine, ``--backend onnxruntime_cuda`` and ``--backend onnxruntime``
(recomputed there rather than read from benchmarks/results/accuracy.md, so both come from one machine and one
ONNX Runtime), and writes the two ``--json`` documents and a comparison ``eval_<model>_gpu_vs_cpu.json`` under
``$TRTAPPS_BENCH_OUT`` (default: the system temp folder) **before** asserting, so the numbers of a failing run
are kept for benchmarks/results/accuracy.md.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pytest

from eval_reference import BACKEND_TOL, REFERENCE, eval_json, tolerance

pytestmark = pytest.mark.gpu

OUT = Path(os.environ.get("TRTAPPS_BENCH_OUT") or tempfile.gettempdir())

CASES = [
    ("detect", "yolo", "yolov8n_dequant.onnx", "coco"),
    ("detect", "yolo", "yolox_nano.onnx", "coco"),
    ("faces", "retinaface", "retinaface_mnet025.onnx", "faces"),
]


def markdown_row(model_name: str, data: str, doc: dict, reference: dict[str, float], cpu: dict) -> str:
    """A row of benchmarks/results/accuracy.md: model, set, backend, precision, ours, reference, diff, − CPU."""
    keys = list(reference)

    def join(values: list[float], fmt: str) -> str:
        return " / ".join(format(v, fmt) for v in values)

    device = "gpu" if doc["backend"] != "onnxruntime" else "cpu"
    return (
        f"| {model_name} | {data} | {doc['backend']} ({device}) | {doc['precision']} | "
        f"**{join([doc[k] for k in keys], '.4f')}** ({join([doc[k] for k in keys], '.6f')}) | "
        f"{join([reference[k] for k in keys], '.4f')} | {join([doc[k] - reference[k] for k in keys], '+.4f')} | "
        f"{join([doc[k] - cpu[k] for k in keys], '+.6f')} |"
    )


@pytest.mark.parametrize(("task", "app", "model_name", "data"), CASES, ids=[c[2].removesuffix(".onnx") for c in CASES])
def test_gpu_eval_matches_reference_and_cpu(task: str, app: str, model_name: str, data: str) -> None:
    stem = model_name.removesuffix(".onnx")
    docs = {
        backend: eval_json(task, app, model_name, data, backend, OUT / f"eval_{stem}_{backend}.json")
        for backend in ("onnxruntime_cuda", "onnxruntime")
    }
    gpu, cpu = docs["onnxruntime_cuda"], docs["onnxruntime"]
    reference = REFERENCE[model_name]
    comparison = {
        "model": model_name,
        "task": task,
        "data": data,
        "images": gpu["images"],
        "precision": gpu["precision"],
        "reference": reference,
        "onnxruntime_cuda": {k: gpu[k] for k in reference},
        "onnxruntime": {k: cpu[k] for k in reference},
        "gpu_minus_cpu": {k: round(gpu[k] - cpu[k], 6) for k in reference},
        "gpu_minus_reference": {k: round(gpu[k] - v, 6) for k, v in reference.items()},
        "tolerances": {"reference": {k: tolerance(k) for k in reference}, "gpu_vs_cpu": BACKEND_TOL},
        "markdown": [markdown_row(model_name, data, doc, reference, cpu) for doc in (gpu, cpu)],
    }
    (OUT / f"eval_{stem}_gpu_vs_cpu.json").write_text(json.dumps(comparison, indent=2) + "\n", encoding="utf-8")

    assert (gpu["backend"], cpu["backend"]) == ("onnxruntime_cuda", "onnxruntime")
    assert gpu["images"] == cpu["images"]
    for key, value in reference.items():
        assert gpu[key] == pytest.approx(value, abs=tolerance(key)), f"{key}: GPU {gpu[key]} vs reference {value}"
        assert abs(gpu[key] - cpu[key]) <= BACKEND_TOL, f"{key}: GPU {gpu[key]} vs CPU {cpu[key]}"
