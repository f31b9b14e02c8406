"""Shared test fixtures: where the real models and media are, and GPU/TensorRT detection.

Real data comes from ``TRTAPPS_DATA`` (``.ci/run`` sets it to ``../shared``). With ``CI=true`` a missing file
fails the test instead of skipping it, so CI can never go green by skipping the end-to-end runs.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("TRTAPPS_DATA", REPO.parent / "shared")).resolve()
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
# configs say ${env:TRTAPPS_DATA} and resolve relative paths against their own folder: make it absolute
os.environ["TRTAPPS_DATA"] = str(DATA)


def benchmark_script(name: str) -> Any:
    """``benchmarks/<name>.py`` loaded as a module (benchmarks/ is not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"bench_{name}", REPO / "benchmarks" / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def shared_path(relative: str) -> Path:
    """The path of a file under ``TRTAPPS_DATA``; skips the test when absent (fails under ``CI=true``)."""
    path = DATA / relative
    if not path.exists():
        message = f"{path} is missing (set TRTAPPS_DATA to the shared data folder)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return path


def require_module(name: str, reason: str = "") -> Any:
    """``import name``; skips the test when it is not installed (fails under ``CI=true``, which installs ``.[test]``
    and the example plugin: a missing module there is a broken install, not a reason to skip)."""
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError as exc:
        message = f"{name} is not installed ({reason or type(exc).__name__}: {exc})"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA


def _gpu_reason() -> str | None:
    try:
        import cupy

        if cupy.cuda.runtime.getDeviceCount() < 1:
            return "no CUDA device"
    except Exception as exc:  # ImportError, CUDA driver missing, ...
        return f"no usable CuPy/CUDA ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
    return None


def _tensorrt_reason() -> str | None:
    try:
        import tensorrt
    except Exception as exc:
        return f"TensorRT is not installed ({type(exc).__name__})"
    if not hasattr(tensorrt, "Runtime"):  # e.g. only tensorrt-stubs installed: an empty namespace package
        return "TensorRT is not installed (the tensorrt module has no Runtime)"
    return _gpu_reason()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    gpu_reason = tensorrt_reason = None
    checked = False
    for item in items:
        # markers, not keywords: a test in the folder tests/gpu has the keyword "gpu" without being marked
        gpu, trt = item.get_closest_marker("gpu") is not None, item.get_closest_marker("tensorrt") is not None
        if gpu or trt:
            if not checked:
                gpu_reason, tensorrt_reason, checked = _gpu_reason(), _tensorrt_reason(), True
            if trt and tensorrt_reason:
                item.add_marker(pytest.mark.skip(reason=f"tensorrt: {tensorrt_reason}"))
            elif gpu and gpu_reason:
                item.add_marker(pytest.mark.skip(reason=f"gpu: {gpu_reason}"))


def pytest_report_header(config: pytest.Config) -> list[str]:
    lines = [f"trtapps data: {DATA} ({'present' if DATA.exists() else 'MISSING'}), CI={IN_CI}"]
    reason = _gpu_reason()
    if reason is None:
        import cupy

        props = cupy.cuda.runtime.getDeviceProperties(0)
        lines.append(f"gpu: {props['name'].decode()} (CuPy {cupy.__version__})")
    else:
        lines.append(f"gpu: none — {reason}")
    return lines
