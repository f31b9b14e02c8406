"""The command line's log lines: warnings by default, info with -v or TRTAPPS_LOG=info, one-line level errors."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

import pytest

from trtapps.cli import configure_logging, main


@pytest.fixture(autouse=True)
def _restore_trtapps_logger() -> Iterator[None]:
    logger = logging.getLogger("trtapps")
    handlers, level = list(logger.handlers), logger.level
    yield
    logger.handlers[:] = handlers
    logger.setLevel(level)


def _emit(capsys: pytest.CaptureFixture[str]) -> list[str]:
    log = logging.getLogger("trtapps.sources")
    log.debug("a debug line")
    log.info("nvdec: decoding in a worker process")
    log.warning("a fallback reason")
    return capsys.readouterr().err.splitlines()


def test_warnings_by_default_info_with_v_debug_with_vv(capsys: pytest.CaptureFixture[str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRTAPPS_LOG", raising=False)
    assert configure_logging(0) == logging.WARNING
    assert _emit(capsys) == ["warning: a fallback reason"]
    assert configure_logging(1) == logging.INFO  # replaces the handler: no line twice
    assert _emit(capsys) == ["info: nvdec: decoding in a worker process", "warning: a fallback reason"]
    assert configure_logging(2) == logging.DEBUG
    assert _emit(capsys)[0] == "debug: a debug line"
    monkeypatch.setenv("TRTAPPS_LOG", "info")
    assert configure_logging(0) == logging.INFO


def test_the_command_line_takes_v_before_the_command_and_refuses_an_unknown_level(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRTAPPS_LOG", raising=False)
    main(["-v", "models", "list"])  # returns: exit status 0
    assert logging.getLogger("trtapps").getEffectiveLevel() == logging.INFO
    capsys.readouterr()
    monkeypatch.setenv("TRTAPPS_LOG", "loud")
    with pytest.raises(SystemExit) as done:
        main(["models", "list"])
    assert done.value.code == 2
    err = capsys.readouterr().err
    assert err == "error: TRTAPPS_LOG='loud' is not one of debug, info, warning, error; unset it or pick one\n"


def test_ffmpeg_and_opencv_stay_quiet_below_debug_and_a_users_setting_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    import cv2

    opencv_level = cv2.utils.logging.getLogLevel()
    monkeypatch.setenv("OPENCV_FFMPEG_LOGLEVEL", "placeholder")  # so that teardown restores the variable's absence
    try:
        for verbose, ffmpeg, opencv in ((0, "-8", cv2.utils.logging.LOG_LEVEL_ERROR),
                                        (2, "24", cv2.utils.logging.LOG_LEVEL_INFO)):
            monkeypatch.delenv("OPENCV_FFMPEG_LOGLEVEL")
            configure_logging(verbose)
            assert os.environ["OPENCV_FFMPEG_LOGLEVEL"] == ffmpeg
            assert cv2.utils.logging.getLogLevel() == opencv
        monkeypatch.setenv("OPENCV_FFMPEG_LOGLEVEL", "32")
        configure_logging(0)
        assert os.environ["OPENCV_FFMPEG_LOGLEVEL"] == "32"
    finally:
        cv2.utils.logging.setLogLevel(opencv_level)
