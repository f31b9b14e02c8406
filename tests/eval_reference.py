"""The reference accuracy of the shared labelled sets and the tolerances of the accuracy-parity issue, with the
one way the tests run ``trtapps eval``: shared by the CPU parity tests and the GPU evaluation runs.

References: ``shared/coco/MANIFEST.md`` and ``shared/faces/MANIFEST.md`` (an independent reference
implementation on ONNX Runtime CPU).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from conftest import shared_path

#: mAP50-95 / mAP50 tolerance against the reference (rounding alone moves mAP by up to 0.002)
MAP_TOL = 0.003
#: WIDER FACE AP tolerance against the reference
AP_TOL = 0.005
#: ONNX Runtime CPU and ONNX Runtime CUDA must agree within this (every metric)
BACKEND_TOL = 0.002

#: ``--json`` keys and reference values per (model, set), ``instances.json`` / origin-size protocol
REFERENCE: dict[str, dict[str, float]] = {
    "yolov8n_dequant.onnx": {"mAP50-95": 0.4481, "mAP50": 0.6145},
    "yolox_nano.onnx": {"mAP50-95": 0.3366, "mAP50": 0.5152},
    "retinaface_mnet025.onnx": {"easy": 0.8986, "medium": 0.8690, "hard": 0.7397},
}


def model(name: str) -> str:
    """The shared model file *name* as a path string (skips the test when the shared data is missing)."""
    return str(shared_path(f"models/{name}"))


def tolerance(key: str) -> float:
    """The reference tolerance of one ``--json`` key."""
    return MAP_TOL if key.startswith("mAP") else AP_TOL


def run_eval_cli(args: list[str]) -> None:
    """``trtapps <args>`` in this process, exceptions propagating (no ``SystemExit``)."""
    from trtapps.cli import build_app

    build_app()(args=args, prog_name="trtapps", standalone_mode=False)


def eval_json(task: str, app: str, model_name: str, data: str, backend: str, out: Path, *extra: str) -> dict[str, Any]:
    """``trtapps eval <task> … --json out`` on a shared set; returns the JSON document it wrote."""
    out.parent.mkdir(parents=True, exist_ok=True)
    run_eval_cli(
        [
            "eval", task, "--app", app, "--model", model(model_name), "--data", str(shared_path(data)),
            "--backend", backend, "--json", str(out), "--quiet", *extra,
        ]
    )  # fmt: skip
    doc: dict[str, Any] = json.loads(out.read_text())
    return doc
