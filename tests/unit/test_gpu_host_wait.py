"""``TRTAPPS_CUDA_WAIT``: how host threads wait for the GPU (the GPU test checks the flag on a real device)."""

from __future__ import annotations

import logging

import pytest

from trtapps.errors import ConfigError
from trtapps.gpu import device


def test_default_is_block_and_values_are_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(device.HOST_WAIT_ENV, raising=False)
    assert device.host_wait_mode() == "block"
    monkeypatch.setenv(device.HOST_WAIT_ENV, " Spin ")
    assert device.host_wait_mode() == "spin"
    monkeypatch.setenv(device.HOST_WAIT_ENV, "sleep")
    with pytest.raises(ConfigError, match=r"^TRTAPPS_CUDA_WAIT='sleep' is not one of block, yield, spin, auto"):
        device.host_wait_mode()


def test_a_driver_that_refuses_leaves_cuda_default_and_says_why(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """No driver here (CPU machine): cuInit fails, the reason is logged once, nothing raises."""
    pytest.importorskip("cuda.bindings")
    monkeypatch.delenv(device.HOST_WAIT_ENV, raising=False)
    monkeypatch.setattr(device, "_waits_set", {})
    from cuda.bindings import driver

    try:
        (err,) = driver.cuInit(0)
    except Exception:  # cuda-python cannot even load the driver library
        err = None
    if err == driver.CUresult.CUDA_SUCCESS:
        pytest.skip("a CUDA driver is present: tests/gpu/test_runners.py checks the flag on the device")
    with caplog.at_level(logging.WARNING, logger="trtapps.gpu.device"):
        assert device.configure_host_wait(0) == "default"
        assert device.configure_host_wait(0) == "default"
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1
    assert warnings[0].startswith("CUDA device 0: host waits stay CUDA's default (")
    assert "\n" not in warnings[0]


def test_frame_staging_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    from trtapps.gpu.frames import STAGE_MODE_ENV, stage_mode

    monkeypatch.delenv(STAGE_MODE_ENV, raising=False)
    assert stage_mode() == "direct"
    assert stage_mode("pageable") == "pageable"
    monkeypatch.setenv(STAGE_MODE_ENV, "PAGEABLE")
    assert stage_mode() == "pageable"
    assert stage_mode("pinned") == "pinned"  # an explicit mode wins over the environment
    with pytest.raises(ValueError, match=r"TRTAPPS_STAGE='mapped': the frame staging mode is one of direct, pinned"):
        stage_mode("mapped")
