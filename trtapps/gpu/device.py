"""CUDA devices: how many there are, why none can be used, selecting one, and describing it.

:func:`gpu_info` is the one description of a GPU used everywhere a GPU must be named: the run banner, benchmark
JSON, and the TensorRT engine cache key (an engine is valid for one GPU model, compute capability and TensorRT
version). CuPy is imported inside the functions, so this module imports on any machine.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from trtapps.errors import BackendUnavailableError, ConfigError, error_line

logger = logging.getLogger("trtapps.gpu.device")

#: environment variable choosing how host threads wait for the GPU (see :func:`configure_host_wait`)
HOST_WAIT_ENV = "TRTAPPS_CUDA_WAIT"
#: its values → the primary context's scheduling flag (``CU_CTX_SCHED_*``)
HOST_WAITS = {"block": 0x04, "yield": 0x02, "spin": 0x01, "auto": 0x00}
_waits_set: dict[int, str] = {}
_waits_lock = threading.Lock()


def gpu_reason() -> str | None:
    """``None`` when CuPy sees at least one CUDA device, else why not (one line, for ``available()`` hooks)."""
    try:
        import cupy
    except ImportError:
        return "CuPy is not installed (pip install cupy-cuda13x, or cupy-cuda12x for CUDA 12)"
    except Exception as exc:  # a broken install raises more than ImportError
        return f"CuPy cannot be imported ({error_line(exc)})"
    try:
        count = int(cupy.cuda.runtime.getDeviceCount())
    except Exception as exc:  # no driver, driver too old, no device
        return f"CuPy sees no usable CUDA device ({error_line(exc)})"
    if count < 1:
        return "CuPy sees no CUDA device"
    return None


def device_count() -> int:
    """Number of CUDA devices CuPy can use (0 without CuPy, driver or GPU)."""
    if gpu_reason() is not None:
        return 0
    import cupy

    return int(cupy.cuda.runtime.getDeviceCount())


def select_device(ordinal: int = 0) -> Any:
    """Make device *ordinal* current for this thread and return it as a ``cupy.cuda.Device``.

    Raises:
        BackendUnavailableError: no GPU can be used here, or *ordinal* is not one of the devices.
    """
    reason = gpu_reason()
    if reason is not None:
        raise BackendUnavailableError(f"cannot use CUDA device {ordinal}: {reason}")
    import cupy

    count = int(cupy.cuda.runtime.getDeviceCount())
    if not 0 <= ordinal < count:
        have = "device 0" if count == 1 else f"devices 0..{count - 1}"
        raise BackendUnavailableError(f"CUDA device {ordinal} does not exist (this machine has {have}); set device:")
    configure_host_wait(ordinal)
    device = cupy.cuda.Device(ordinal)
    device.use()
    return device


def host_wait_mode() -> str:
    """The ``TRTAPPS_CUDA_WAIT`` mode (default ``block``).

    Raises:
        ConfigError: an unknown value.
    """
    mode = os.environ.get(HOST_WAIT_ENV, "block").strip().lower() or "block"
    if mode not in HOST_WAITS:
        raise ConfigError(f"{HOST_WAIT_ENV}={mode!r} is not one of {', '.join(HOST_WAITS)}; unset it or pick one")
    return mode


def configure_host_wait(ordinal: int) -> str:
    """Set how threads wait for device *ordinal* (once per process and device); returns the mode in effect.

    CUDA's default lets a thread that synchronizes (a stream, an event, a copy to pageable memory) spin on a CPU
    core for as long as the GPU works, so a pipeline waiting for each batch burns a core per waiting thread: the
    host CPU time per frame then measures GPU time, not work. ``block`` (the default) makes such threads sleep
    on an OS primitive until the GPU is done (a few microseconds more latency per wait); ``spin`` restores the
    lowest-latency busy wait, ``yield`` spins with yields, ``auto`` is CUDA's heuristic. The flag belongs to the
    device's primary context, shared with ONNX Runtime, TensorRT, CuPy and the video decoder of the process.
    Where the driver refuses (an old driver, a context created elsewhere with other flags) the reason is logged
    and CUDA's behaviour stays.
    """
    mode = host_wait_mode()
    with _waits_lock:
        if ordinal in _waits_set:
            return _waits_set[ordinal]
        try:
            from cuda.bindings import driver

            (err,) = driver.cuInit(0)
            _check_driver(driver, err, "cuInit")
            err, dev = driver.cuDeviceGet(ordinal)
            _check_driver(driver, err, "cuDeviceGet")
            (err,) = driver.cuDevicePrimaryCtxSetFlags(dev, HOST_WAITS[mode])
            _check_driver(driver, err, "cuDevicePrimaryCtxSetFlags")
        except Exception as exc:  # keep CUDA's default: slower on the host, never wrong
            logger.warning("CUDA device %d: host waits stay CUDA's default (%s)", ordinal, error_line(exc))
            mode = "default"
        _waits_set[ordinal] = mode
        return mode


def host_wait_flags(ordinal: int) -> int:
    """The scheduling flags of device *ordinal*'s primary context (``CU_CTX_SCHED_*`` bits)."""
    from cuda.bindings import driver

    (err,) = driver.cuInit(0)
    _check_driver(driver, err, "cuInit")
    err, dev = driver.cuDeviceGet(ordinal)
    _check_driver(driver, err, "cuDeviceGet")
    err, flags, _active = driver.cuDevicePrimaryCtxGetState(dev)
    _check_driver(driver, err, "cuDevicePrimaryCtxGetState")
    return int(flags) & 0x07


def _check_driver(driver: Any, err: Any, call: str) -> None:
    if err != driver.CUresult.CUDA_SUCCESS:
        name = getattr(err, "name", str(err))
        raise RuntimeError(f"{call} failed: {name}")


def _version(encoded: int) -> str:
    """CUDA's ``1000 * major + 10 * minor`` encoding as ``"major.minor"``."""
    return f"{encoded // 1000}.{(encoded % 1000) // 10}"


def gpu_info(ordinal: int = 0) -> dict[str, Any]:
    """A JSON-ready description of CUDA device *ordinal*.

    Keys: ``index``, ``name``, ``compute_capability`` (``"9.0"``), ``sm`` (``90``), ``total_memory_bytes``,
    ``free_memory_bytes``, ``multiprocessors``, ``pci_bus_id``, ``driver_version`` (the CUDA version the
    driver supports, ``"13.0"``), ``runtime_version`` (the CUDA runtime CuPy uses), ``cupy_version``.

    Raises:
        BackendUnavailableError: no GPU can be used here, or *ordinal* is not one of the devices.
    """
    reason = gpu_reason()
    if reason is not None:
        raise BackendUnavailableError(f"no GPU information: {reason}")
    import cupy

    count = int(cupy.cuda.runtime.getDeviceCount())
    if not 0 <= ordinal < count:
        raise BackendUnavailableError(f"CUDA device {ordinal} does not exist (this machine has {count})")
    runtime = cupy.cuda.runtime
    props = runtime.getDeviceProperties(ordinal)
    name = props["name"]
    name = name.decode() if isinstance(name, bytes) else str(name)
    major, minor = int(props["major"]), int(props["minor"])
    with cupy.cuda.Device(ordinal):
        free, total = runtime.memGetInfo()
    domain, bus, slot = (int(props.get(k, 0)) for k in ("pciDomainID", "pciBusID", "pciDeviceID"))
    return {
        "index": ordinal,
        "name": name,
        "compute_capability": f"{major}.{minor}",
        "sm": 10 * major + minor,
        "total_memory_bytes": int(total),
        "free_memory_bytes": int(free),
        "multiprocessors": int(props.get("multiProcessorCount", 0)),
        "pci_bus_id": f"{domain:04x}:{bus:02x}:{slot:02x}",
        "driver_version": _version(int(runtime.driverGetVersion())),
        "runtime_version": _version(int(runtime.runtimeGetVersion())),
        "cupy_version": cupy.__version__,
    }


def describe(info: dict[str, Any]) -> str:
    """One line for a banner: ``NVIDIA H100 80GB HBM3 (sm 9.0, 79.1 GiB, driver CUDA 13.0, CuPy 14.2.0)``."""
    gib = info["total_memory_bytes"] / 2**30
    return (
        f"{info['name']} (sm {info['compute_capability']}, {gib:.1f} GiB, driver CUDA {info['driver_version']}, "
        f"CuPy {info['cupy_version']})"
    )
