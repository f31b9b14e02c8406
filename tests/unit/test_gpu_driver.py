"""trtapps.gpu.driver without a GPU: it imports, finds no driver, and names failures (the calls themselves run in
tests/gpu/test_driver_calls.py)."""

from __future__ import annotations

import ctypes.util

import pytest

from trtapps.errors import CudaError
from trtapps.gpu import driver


def test_without_libcuda_the_module_reports_no_driver() -> None:
    if ctypes.util.find_library("cuda"):
        pytest.skip("this machine has libcuda: the driver calls are tested in tests/gpu")
    assert driver._driver() is None


def test_a_failure_names_the_call_and_the_status(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(driver, "_loaded", [None])
    error = driver._fail("cuStreamWaitEvent", 400)
    assert isinstance(error, CudaError)
    assert str(error) == "cuStreamWaitEvent failed with CUDA error 400"
