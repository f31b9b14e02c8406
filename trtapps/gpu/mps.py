"""CUDA MPS (Multi-Process Service): finding a running control daemon, and starting one for a run.

Without MPS the GPU time-slices the CUDA contexts of different processes; with it, the processes' kernels share the
GPU through one server. That matters for ``source.decode_worker: process``: on the H100, 8 and 16 NVDEC streams
decoded by worker processes ran the YOLO pipeline at 0.96 of the engine's rate under MPS and at 0.65 without it
(benchmarks/results/gpu.md, session 9).

* :func:`control_pipe`: the control daemon a CUDA context created now would join (``decode_worker: auto`` asks).
* :func:`start_for_run` (``cuda_mps: start`` in a pipeline file): starts a user-level control daemon with private
  folders, unless one is reachable already, and points this process and its children at it. CUDA decides at its
  first call in a process whether it joins MPS (measured: a process that had called ``cudaGetDeviceCount`` before
  did not join), so this must run before anything initialises CUDA; when it is too late the reason is logged and
  the run goes on without MPS. The daemon is told to quit when this process exits; it stops once its last
  client is gone, and a later run reuses one that is still there.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import logging
import os
import shutil
import socket
import stat
import subprocess
import threading
import time
from pathlib import Path

logger = logging.getLogger("trtapps.gpu.mps")

#: where CUDA clients look for the control daemon's pipes (NVIDIA's default when the variable is unset)
PIPE_ENV = "CUDA_MPS_PIPE_DIRECTORY"
LOG_ENV = "CUDA_MPS_LOG_DIRECTORY"
PIPE_DEFAULT = "/tmp/nvidia-mps"
#: the control program that comes with the NVIDIA driver
CONTROL = "nvidia-cuda-mps-control"
#: seconds to wait for a started daemon's control pipe
START_TIMEOUT = 10.0

_lock = threading.Lock()
_started: list[Path] = []  # pipe folders of the daemons this process started (told to quit at exit)
_quitting: list[subprocess.Popen[bytes]] = []  # their quit commands, which may outlive this process


def control_pipe() -> str | None:
    """The control daemon's pipe that a CUDA context created now would connect to, or ``None``.

    CUDA connects a process to MPS at its first CUDA call when the control daemon's pipe ``control`` exists in
    ``$CUDA_MPS_PIPE_DIRECTORY`` (default ``/tmp/nvidia-mps``). On current drivers it is a Unix socket, and one
    left behind by a daemon that died is told apart by connecting to it (refused: nobody listens); a named pipe
    (older drivers) is taken at its word.
    """
    folder = os.environ.get(PIPE_ENV, "").strip() or PIPE_DEFAULT
    pipe = os.path.join(folder, "control")
    try:
        mode = os.stat(pipe).st_mode
    except OSError:
        return None
    if stat.S_ISFIFO(mode):
        return pipe
    return pipe if stat.S_ISSOCK(mode) and _listening(pipe) else None


def _listening(path: str) -> bool:
    """Whether a process is bound to the Unix socket *path*: connecting to one nobody holds is refused, while a
    live socket of another type (the daemon's may not be a stream socket) answers with a protocol error."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(path)
    except (ConnectionRefusedError, FileNotFoundError):
        return False
    except OSError as exc:
        return exc.errno == errno.EPROTOTYPE
    finally:
        probe.close()
    return True


def cuda_initialized() -> bool:
    """Whether CUDA's driver API has been initialised in this process (then it is too late to join MPS).

    Asked without initialising it: before ``cuInit`` every driver call fails with ``CUDA_ERROR_NOT_INITIALIZED``.
    Without cuda-python, any loaded ``libcuda`` counts as initialised (the safe answer).
    """
    try:
        from cuda.bindings import driver
    except ImportError:
        try:
            return "libcuda.so" in Path("/proc/self/maps").read_text()
        except OSError:  # not Linux: assume the worst
            return True
    try:
        err, _count = driver.cuDeviceGetCount()
    except Exception:  # no driver library here: nothing can have initialised it
        return False
    return bool(err != driver.CUresult.CUDA_ERROR_NOT_INITIALIZED)


def private_folder() -> Path:
    """This user's folder for the daemons trtapps starts (``pipe/`` and ``log/`` inside)."""
    return Path(os.environ.get("TMPDIR", "/tmp")) / f"trtapps-mps-{os.getuid()}"


def start_for_run(log: logging.Logger | None = None) -> str | None:
    """Make this process (and the processes it starts) CUDA MPS clients; returns the control pipe, or ``None``.

    Uses a daemon that is already reachable (``$CUDA_MPS_PIPE_DIRECTORY`` or NVIDIA's default folder, or the one
    trtapps started in :func:`private_folder` earlier); otherwise starts ``nvidia-cuda-mps-control -d`` with
    private pipe and log folders. Logs one warning and returns ``None`` when it cannot: CUDA already initialised in
    this process, the control program missing, or the daemon not coming up.
    """
    log = log or logger
    with _lock:
        pipe = control_pipe()
        if pipe is not None:
            log.info("cuda_mps: start: using the CUDA MPS daemon at %s", pipe)
            return pipe
        if cuda_initialized():
            log.warning("cuda_mps: start: CUDA is already initialised in this process, which can no longer join a "
                        "CUDA MPS daemon; run without it (start the pipeline before other CUDA work, or start "
                        "the daemon beforehand: %s -d)", CONTROL)
            return None
        folder = private_folder()
        pipes, logs = folder / "pipe", folder / "log"
        previous = {name: os.environ.get(name) for name in (PIPE_ENV, LOG_ENV)}
        os.environ[PIPE_ENV], os.environ[LOG_ENV] = str(pipes), str(logs)  # CUDA and the worker processes read these
        pipe = control_pipe()
        if pipe is not None:  # a daemon trtapps started in an earlier run is still there
            log.info("cuda_mps: start: using the CUDA MPS daemon at %s", pipe)
            return pipe
        program = shutil.which(CONTROL)
        if program is None:
            _give_up(log, previous, f"{CONTROL} is not on PATH (it comes with the NVIDIA driver's utilities)")
            return None
        for path in (pipes, logs):
            path.mkdir(parents=True, exist_ok=True)
            path.chmod(0o700)
        with contextlib.suppress(FileNotFoundError):  # left by a daemon of ours that died: nobody listens on it
            (pipes / "control").unlink()
        try:
            done = subprocess.run([program, "-d"], capture_output=True, text=True, timeout=START_TIMEOUT,
                                  check=False)
        except (OSError, subprocess.SubprocessError) as exc:
            _give_up(log, previous, f"{CONTROL} -d failed ({type(exc).__name__}: {exc})")
            return None
        if done.returncode != 0:
            why = (done.stderr or done.stdout).strip().splitlines()
            detail = f" ({why[-1]})" if why else ""
            _give_up(log, previous, f"{CONTROL} -d exited with {done.returncode}{detail}")
            return None
        deadline = time.monotonic() + START_TIMEOUT
        while (pipe := control_pipe()) is None and time.monotonic() < deadline:
            time.sleep(0.02)
        if not _started:
            atexit.register(stop_started)
        _started.append(pipes)  # ours to stop, whether or not it came up
        if pipe is None:
            stop_started()
            _give_up(log, previous, f"no control pipe appeared in {pipes} within {START_TIMEOUT:g} s")
            return None
        log.info("cuda_mps: start: started a CUDA MPS daemon (pipe %s, log %s); it quits when this process exits",
                 pipes, logs)
        return pipe


def _give_up(log: logging.Logger, previous: dict[str, str | None], why: str) -> None:
    for name, value in previous.items():  # the environment as it was
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    log.warning("cuda_mps: start: no CUDA MPS daemon for this run: %s; decoding processes and the pipeline will be "
                "time-sliced on the GPU", why)
    return None


def stop_started() -> list[subprocess.Popen[bytes]]:
    """Tell the daemons this process started to quit (at exit); returns the ``quit`` commands, still running.

    Returns at once: a daemon waits for its clients, this process among them, to end before it stops, and its
    ``quit`` command waits with it (in a session of its own, so it outlives this process).
    """
    program = shutil.which(CONTROL)
    quitters = []
    while _started:
        pipes = _started.pop()
        if program is None:
            continue
        env = dict(os.environ, **{PIPE_ENV: str(pipes), LOG_ENV: str(pipes.parent / "log")})
        try:
            quitter = subprocess.Popen([program], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL, env=env, start_new_session=True)
            assert quitter.stdin is not None
            quitter.stdin.write(b"quit\n")
            quitter.stdin.close()
            quitters.append(quitter)
            _quitting.append(quitter)
        except OSError as exc:
            logger.warning("cannot stop the CUDA MPS daemon at %s (%s); stop it with: echo quit | "
                           "CUDA_MPS_PIPE_DIRECTORY=%s %s", pipes, exc, pipes, CONTROL)
    return quitters
