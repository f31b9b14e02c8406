"""Fixtures of the example plugin's tests: trtapps' pytest plugin, the shared data, and the end-to-end model.

The YOLOv8 model and the photos come from the trtapps shared data folder: ``TRTAPPS_DATA`` (default: the folder
``shared`` next to the trtapps checkout this sample lives in). Tests that need a missing file are skipped, or
fail when ``CI=true`` so a CI run cannot go green by skipping.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from types import ModuleType

import pytest

pytest_plugins = ["trtapps.testing.plugin"]

SAMPLE = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("TRTAPPS_DATA", SAMPLE / "../../../shared")).resolve()
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def data_file(relative: str) -> Path:
    """A file of the shared data folder; skips the test when it is missing (fails under ``CI=true``)."""
    path = DATA / relative
    if not path.is_file():
        message = f"{path} is missing (set TRTAPPS_DATA to the trtapps shared data folder)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return path


def load_make_e2e_model() -> ModuleType:
    """The sample's ``make_e2e_model.py`` script, imported as a module."""
    spec = importlib.util.spec_from_file_location("make_e2e_model", SAMPLE / "make_e2e_model.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def yolov8_onnx() -> Path:
    """The plain YOLOv8n export (``[batch, 84, 8400]``, no NMS)."""
    return data_file("models/yolov8n_dequant.onnx")


@pytest.fixture(scope="session")
def e2e_model(tmp_path_factory: pytest.TempPathFactory, yolov8_onnx: Path) -> Path:
    """An end-to-end model (``[batch, 300, 6]``) made from YOLOv8n by ``make_e2e_model.py``, in a temp folder."""
    return load_make_e2e_model().make_e2e_model(yolov8_onnx, tmp_path_factory.mktemp("models") / "yolov8n_e2e.onnx")
