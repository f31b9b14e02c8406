"""Ctrl-C on the command line (trtapps.cli.interrupts): the first press stops, the second is reported and
ignored while the outputs close, the third quits; a press swallowed on its way is raised before the run."""

from __future__ import annotations

import signal

import pytest

from trtapps.cli import interrupts


def test_first_press_stops_second_waits_third_quits(monkeypatch: pytest.MonkeyPatch,
                                                    capfd: pytest.CaptureFixture[str]) -> None:
    quit_with: list[int] = []
    monkeypatch.setattr(interrupts.os, "_exit", quit_with.append)
    handler = interrupts.Interrupts()
    with pytest.raises(KeyboardInterrupt):
        handler(signal.SIGINT, None)
    handler(signal.SIGINT, None)  # during the cleanup: not another KeyboardInterrupt
    assert "finishing the outputs" in capfd.readouterr().err
    assert quit_with == []
    handler(signal.SIGINT, None)
    assert quit_with == [130]


def test_a_swallowed_press_is_raised_before_the_run_and_none_after_the_end() -> None:
    handler = interrupts.Interrupts()
    handler.check()  # nothing pressed
    with pytest.raises(KeyboardInterrupt):
        handler(signal.SIGINT, None)
    with pytest.raises(KeyboardInterrupt):
        handler.check()  # e.g. ONNX Runtime's import turned it into an ImportError
    handler.finish()
    handler(signal.SIGINT, None)  # the command is over: ignored


def test_the_handler_is_installed_for_the_command_and_restored_after() -> None:
    before = signal.getsignal(signal.SIGINT)
    with interrupts.handling_interrupts() as handler:
        assert signal.getsignal(signal.SIGINT) is handler
        assert interrupts.current is handler
    assert signal.getsignal(signal.SIGINT) is before


def test_a_process_started_with_sigint_ignored_keeps_ignoring_it() -> None:
    before = signal.signal(signal.SIGINT, signal.SIG_IGN)  # nohup, or a background job of a script
    try:
        with interrupts.handling_interrupts():
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, before)
