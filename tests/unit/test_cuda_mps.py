"""``cuda_mps: start`` (trtapps/gpu/mps.py) against a stand-in ``nvidia-cuda-mps-control`` on PATH.

The stand-in does what the real control program does that trtapps relies on: ``-d`` creates the control socket
``control`` in ``$CUDA_MPS_PIPE_DIRECTORY`` (the real daemon then keeps running), and ``quit`` on stdin removes it.
Every call is recorded. Whether a CUDA process really joins the daemon is a GPU matter (tests/gpu/test_nvdec.py,
benchmarks/device/mps_attach.py).
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import stat
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import trtapps.gpu.mps as mps

FAKE_CONTROL = """#!{python}
import os, subprocess, sys, time
DAEMON = {daemon!r}
pipe = os.environ["CUDA_MPS_PIPE_DIRECTORY"]
mode = os.environ.get("FAKE_MPS_MODE", "ok")
with open(os.environ["FAKE_MPS_RECORD"], "a") as record:
    if sys.argv[1:] == ["-d"]:
        record.write("start " + pipe + " " + os.environ.get("CUDA_MPS_LOG_DIRECTORY", "-") + "\\n")
        if mode == "fail":
            print("An instance of this daemon is already running", file=sys.stderr)
            sys.exit(1)
        if mode == "ok":  # the daemon: listens on the control socket until quit removes it
            control = os.path.join(pipe, "control")
            subprocess.Popen([sys.executable, "-c", DAEMON, control], start_new_session=True,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for _ in range(200):
                if os.path.exists(control):
                    break
                time.sleep(0.01)
    else:
        command = sys.stdin.read().strip()
        record.write(command + " " + pipe + "\\n")
        if command == "quit":
            os.unlink(os.path.join(pipe, "control"))
"""


DAEMON = """
import os, socket, sys
sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)  # not a stream socket: liveness must not assume one
sock.bind(sys.argv[1])
sock.listen(8)
sock.settimeout(0.05)
while os.path.exists(sys.argv[1]):
    try:
        sock.accept()[0].close()
    except OSError:
        pass
"""


def listen(path: Path) -> socket.socket:
    """A socket listening at *path*, as a running daemon's control socket."""
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(path))
    sock.listen(8)
    return sock


class FakeMps:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.record = root / "record.txt"

    def calls(self) -> list[str]:
        return self.record.read_text().splitlines() if self.record.exists() else []


@pytest.fixture
def fake_mps(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeMps]:
    root = Path(tempfile.mkdtemp(prefix="mps"))  # short: a Unix socket path has at most 107 bytes
    bin_dir = root / "bin"
    bin_dir.mkdir()
    control = bin_dir / mps.CONTROL
    control.write_text(FAKE_CONTROL.format(python=sys.executable, daemon=DAEMON))
    control.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setenv("TMPDIR", str(root))
    monkeypatch.setenv("FAKE_MPS_RECORD", str(root / "record.txt"))
    monkeypatch.delenv(mps.PIPE_ENV, raising=False)
    monkeypatch.delenv(mps.LOG_ENV, raising=False)
    monkeypatch.setattr(mps, "PIPE_DEFAULT", str(root / "no-system-daemon"))  # a real /tmp/nvidia-mps stays out
    monkeypatch.setattr(mps, "cuda_initialized", lambda: False)
    monkeypatch.setattr(mps, "START_TIMEOUT", 2.0)
    yield FakeMps(root)
    mps._started.clear()
    while mps._quitting:
        mps._quitting.pop().wait(10)
    shutil.rmtree(root, ignore_errors=True)


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def test_start_runs_a_private_daemon_points_the_process_at_it_and_quits_it_at_exit(
        fake_mps: FakeMps, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    folder = mps.private_folder()
    assert folder == fake_mps.root / f"trtapps-mps-{os.getuid()}"
    pipe = mps.start_for_run()
    assert pipe == str(folder / "pipe" / "control")
    assert os.environ[mps.PIPE_ENV] == str(folder / "pipe")  # read by CUDA here and by the worker processes
    assert os.environ[mps.LOG_ENV] == str(folder / "log")
    assert stat.S_IMODE((folder / "pipe").stat().st_mode) == 0o700
    assert mps.control_pipe() == pipe
    assert fake_mps.calls() == [f"start {folder / 'pipe'} {folder / 'log'}"]
    assert any("started a CUDA MPS daemon" in r.getMessage() for r in caplog.records)
    assert mps.start_for_run() == pipe  # a second pipeline of the process uses the same daemon
    assert len(fake_mps.calls()) == 1
    quitters = mps.stop_started()
    assert len(quitters) == 1
    assert quitters[0].wait(10) == 0
    assert fake_mps.calls()[-1] == f"quit {folder / 'pipe'}"
    assert mps.control_pipe() is None
    assert mps.stop_started() == []  # told once
    assert _warnings(caplog) == []


def test_a_daemon_already_reachable_is_used_as_it_is(fake_mps: FakeMps, monkeypatch: pytest.MonkeyPatch) -> None:
    running = fake_mps.root / "site"
    running.mkdir()
    monkeypatch.setenv(mps.PIPE_ENV, str(running))
    with listen(running / "control"):
        assert mps.start_for_run() == str(running / "control")
    assert os.environ[mps.PIPE_ENV] == str(running)
    assert fake_mps.calls() == []
    assert mps.stop_started() == []  # not ours: never told to quit


def test_a_control_socket_nobody_listens_on_is_a_dead_daemon(fake_mps: FakeMps, monkeypatch: pytest.MonkeyPatch,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    stale = mps.private_folder() / "pipe"
    stale.mkdir(parents=True)
    with listen(stale / "control"):
        monkeypatch.setenv(mps.PIPE_ENV, str(stale))
        assert mps.control_pipe() == str(stale / "control")
    assert (stale / "control").exists()  # the daemon died and left its socket
    assert mps.control_pipe() is None
    monkeypatch.delenv(mps.PIPE_ENV)
    assert mps.start_for_run() == str(stale / "control")  # the dead daemon's socket is cleared, a new one listens
    assert [c.split()[0] for c in fake_mps.calls()] == ["start"]
    for quitter in mps.stop_started():
        quitter.wait(10)


def test_too_late_once_cuda_is_initialised_and_the_run_goes_on_without_mps(
        fake_mps: FakeMps, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(mps, "cuda_initialized", lambda: True)
    assert mps.start_for_run() is None
    (warning,) = _warnings(caplog)
    assert warning.startswith("cuda_mps: start: CUDA is already initialised in this process")
    assert "nvidia-cuda-mps-control -d" in warning
    assert mps.PIPE_ENV not in os.environ
    assert fake_mps.calls() == []


@pytest.mark.parametrize(("mode", "why"), [
    ("missing", "nvidia-cuda-mps-control is not on PATH"),
    ("fail", "exited with 1 (An instance of this daemon is already running)"),
    ("silent", "no control pipe appeared in"),  # the daemon is told to quit all the same
])
def test_a_daemon_that_cannot_start_is_one_warning_and_the_environment_is_left_as_it_was(
        fake_mps: FakeMps, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, mode: str,
        why: str) -> None:
    empty = fake_mps.root / "empty"
    empty.mkdir()
    monkeypatch.setenv(mps.PIPE_ENV, str(empty))  # the user's own setting, with no daemon behind it
    if mode == "missing":
        monkeypatch.setenv("PATH", str(fake_mps.root / "nowhere"))
    else:
        monkeypatch.setenv("FAKE_MPS_MODE", mode)
    monkeypatch.setattr(mps, "START_TIMEOUT", 0.3)
    assert mps.start_for_run() is None
    (warning,) = _warnings(caplog)
    assert warning.startswith("cuda_mps: start: no CUDA MPS daemon for this run: ")
    assert why in warning
    assert os.environ[mps.PIPE_ENV] == str(empty)
    assert mps.LOG_ENV not in os.environ
    assert mps.stop_started() == []
    for quitter in mps._quitting:
        quitter.wait(10)
    commands = [c.split()[0] for c in fake_mps.calls()]
    assert commands == {"missing": [], "fail": ["start"], "silent": ["start", "quit"]}[mode]


def test_a_regular_file_is_no_daemon_and_a_named_pipe_of_an_older_driver_is_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(mps.PIPE_ENV, str(tmp_path))
    assert mps.control_pipe() is None  # no pipe
    (tmp_path / "control").write_text("")  # a regular file is no daemon's pipe
    assert mps.control_pipe() is None
    (tmp_path / "control").unlink()
    os.mkfifo(tmp_path / "control")
    assert mps.control_pipe() == str(tmp_path / "control")


def test_cuda_initialized_answers_without_a_gpu() -> None:
    assert mps.cuda_initialized() in (True, False)  # never raises, whatever this machine has


def test_the_pipeline_file_option_starts_mps_before_the_runner_is_built(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from conftest import shared_path  # tests/conftest.py
    from trtapps.errors import ConfigError
    from trtapps.pipeline import Pipeline

    calls: list[Any] = []
    built = Pipeline._build_runner

    def build_runner(self: Pipeline) -> Any:
        calls.append("runner")
        return built(self)

    monkeypatch.setattr(mps, "start_for_run", lambda log=None: calls.append("mps"))
    monkeypatch.setattr(Pipeline, "_build_runner", build_runner)
    model = shared_path("models/yolox_nano.onnx")
    config = tmp_path / "p.yaml"
    config.write_text(f"app: {{type: yolo, model: {model}}}\nbackend: onnxruntime\ncuda_mps: start\n"
                      "source: {type: images, path: .}\n")
    with Pipeline.from_file(config) as pipe:
        assert pipe.config.cuda_mps == "start"
        assert pipe.config.to_dict()["cuda_mps"] == "start"
    assert calls == ["mps", "runner"]
    calls.clear()
    with Pipeline.from_objects(app={"type": "yolo", "model": str(model)}, backend="onnxruntime"):
        pass
    assert calls == ["runner"]  # off by default
    config.write_text(f"app: {{type: yolo, model: {model}}}\ncuda_mps: on\nsource: {{type: images, path: .}}\n")
    with pytest.raises(ConfigError, match="cuda_mps") as info:
        Pipeline.from_file(config)
    assert ":2" in str(info.value) or "line 2" in str(info.value)
