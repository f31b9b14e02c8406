"""What a run costs besides time: host CPU time per frame, resident memory, and GPU memory.

* :class:`CpuClock`: the process's CPU time (every thread: the pipeline's reader and worker, ONNX Runtime's
  pool, the caller) over a run, divided by the frames. A GPU pipeline should spend little of it per frame;
  on the CPU backend it is mostly inference.
* :class:`GpuMemoryMonitor`: device memory in use (``cudaMemGetInfo``: everything on the device, ONNX Runtime's
  and TensorRT's own allocations included) and CuPy's memory pool (what the GPU data path allocates), before
  and after a run and at their peak, sampled by a background thread.
* :func:`rss_mib`: the resident set size from ``/proc/self/status`` (the soak run's leak detector).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

MIB = 1024 * 1024


def _rusage() -> tuple[float, float] | None:
    """``(user, system)`` CPU seconds of this process, or ``None`` where ``resource`` does not exist."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime, usage.ru_stime


class CpuClock:
    """``with CpuClock() as clock: ...`` then ``clock.per_frame(frames)``."""

    def __enter__(self) -> CpuClock:
        self._usage0 = _rusage()
        self._cpu0 = time.process_time()
        self._wall0 = time.perf_counter()
        self.cpu_s = self.user_s = self.sys_s = self.wall_s = 0.0
        return self

    def __exit__(self, *exc: object) -> None:
        self.cpu_s = time.process_time() - self._cpu0
        self.wall_s = time.perf_counter() - self._wall0
        usage = _rusage()
        if usage is not None and self._usage0 is not None:
            self.user_s = usage[0] - self._usage0[0]
            self.sys_s = usage[1] - self._usage0[1]

    def per_frame(self, frames: int) -> dict[str, Any]:
        """CPU milliseconds per frame (total, user, system) and the average number of busy cores."""
        n = max(frames, 1)
        return {
            "ms_per_frame": round(1000.0 * self.cpu_s / n, 4),
            "user_ms_per_frame": round(1000.0 * self.user_s / n, 4),
            "system_ms_per_frame": round(1000.0 * self.sys_s / n, 4),
            "cores_busy": round(self.cpu_s / self.wall_s, 2) if self.wall_s > 0 else None,
        }


def rss_mib(status: Path = Path("/proc/self/status")) -> float:
    """This process's resident set size in MiB (``VmRSS``).

    Raises:
        OSError: no ``/proc`` (not Linux) or no ``VmRSS`` line in it.
    """
    with status.open(encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0  # the value is in kB
    raise OSError(f"{status} has no VmRSS line")


def gpu_snapshot(device: int = 0) -> dict[str, float]:
    """Device memory in use (all of it, per ``cudaMemGetInfo``) and CuPy's pool, in MiB."""
    import cupy

    with cupy.cuda.Device(device):
        free, total = cupy.cuda.runtime.memGetInfo()
        pool = cupy.get_default_memory_pool()
        return {
            "device_used_mib": (total - free) / MIB,
            "device_total_mib": total / MIB,
            "cupy_pool_used_mib": pool.used_bytes() / MIB,
            "cupy_pool_held_mib": pool.total_bytes() / MIB,
        }


def process_gpu_mib(pid: int | None = None) -> float | None:
    """GPU memory held by one process (default: this one) per ``nvidia-smi``, in MiB; ``None`` when unknown.

    Unlike ``cudaMemGetInfo`` it ignores other processes on the same GPU, so a soak can share the machine.
    """
    pid = os.getpid() if pid is None else pid
    return processes_gpu_mib([pid]).get(pid)


def processes_gpu_mib(pids: Sequence[int]) -> dict[int, float]:
    """GPU memory in MiB per process of *pids* that ``nvidia-smi`` lists (one query for all; empty when it
    cannot tell)."""
    import subprocess

    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    wanted = {str(pid): pid for pid in pids}
    found: dict[int, float] = {}
    for line in out.splitlines():
        fields = [f.strip() for f in line.split(",")]
        if len(fields) == 2 and fields[0] in wanted and fields[1].isdigit():
            found[wanted[fields[0]]] = float(fields[1])
    return found


class GpuMemoryMonitor:
    """Samples GPU memory every *interval* seconds on a thread of its own while a block runs.

    ``with GpuMemoryMonitor(0) as mon: ...`` then ``mon.report()``: ``before``, ``after`` and ``peak`` of the
    device memory in use and of CuPy's pool. The peak is a sampled maximum: an allocation living shorter than
    the interval can be missed, which is fine for buffers a pipeline keeps for the whole run.
    """

    def __init__(self, device: int = 0, interval: float = 0.02) -> None:
        self.device = device
        self.interval = interval
        self.before: dict[str, float] = {}
        self.after: dict[str, float] = {}
        self.peak: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        snap = gpu_snapshot(self.device)
        for key in ("device_used_mib", "cupy_pool_used_mib", "cupy_pool_held_mib"):
            self.peak[key] = max(self.peak.get(key, 0.0), snap[key])

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self) -> GpuMemoryMonitor:
        self.before = gpu_snapshot(self.device)
        self.peak = {}
        self._sample()
        self._thread = threading.Thread(target=self._loop, name="trtapps-bench-gpumem", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._sample()
        self.after = gpu_snapshot(self.device)

    def report(self) -> dict[str, Any]:
        """``{"device_total_mib", "before", "after", "peak"}``, each moment with the device's and the pool's MiB."""
        keys = ("device_used_mib", "cupy_pool_used_mib", "cupy_pool_held_mib")
        out: dict[str, Any] = {"device_total_mib": round(self.before.get("device_total_mib", 0.0), 1)}
        for when, snap in (("before", self.before), ("after", self.after), ("peak", self.peak)):
            out[when] = {k: round(snap.get(k, 0.0), 1) for k in keys}
        return out


def cpu_description() -> str:
    """The CPU model name (``/proc/cpuinfo``), or the platform's processor string."""
    import platform

    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_count() -> int:
    """CPUs this process may run on (the affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1
