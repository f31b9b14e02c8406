"""CUDA kernels shipped as ``.cu`` sources, compiled once per device with CuPy's NVRTC backend.

The sources live in ``trtapps/ops/cuda/kernels/`` (package data, read with :mod:`importlib.resources`). A
module is built from one or more of them (``common.cuh`` first, then the kernels), with ``#define`` lines for
compile-time variants (input/output dtypes), compiled with ``-std=c++17 --fmad=false`` and memoised per
``(device, sources, defines, options)``: the first call on a device compiles (CuPy also keeps its on-disk
kernel cache), later calls are a dictionary look-up.

``--fmad=false`` is deliberate: it stops NVRTC from contracting ``a * b + c`` into one fused multiply-add, so
every float32/float64 expression rounds exactly like the same expression in NumPy. The kernels' NumPy twins
(:mod:`trtapps.ops.preprocess`, :mod:`trtapps.ops.decode`) rely on that to match bit for bit (only ``expf``
differs by an ulp or two from NumPy's ``exp``).

CuPy is imported lazily: importing this module works on a machine without CuPy or a GPU; the first compile
raises :class:`~trtapps.errors.BackendUnavailableError` there.

Launches go through :meth:`Kernel.__call__`, which turns a launch failure into a
:class:`~trtapps.errors.CudaError` naming the kernel, its grid and block. Kernel faults are asynchronous
(reported by a later CUDA call); set ``TRTAPPS_CUDA_SYNC=1`` to synchronise after every launch, so that a fault
is reported by the kernel that caused it.
"""

from __future__ import annotations

import importlib.resources
import os
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from trtapps.errors import BackendUnavailableError, CudaError

#: package holding the ``kernels/`` folder of ``.cu`` sources
KERNEL_PACKAGE = "trtapps.ops.cuda"
#: options every module is compiled with (see the module docstring for ``--fmad=false``)
BASE_OPTIONS: tuple[str, ...] = ("-std=c++17", "--fmad=false")

_lock = threading.Lock()
_modules: dict[tuple[Any, ...], Any] = {}
_functions: dict[tuple[Any, ...], Kernel] = {}
_sources: dict[str, str] = {}


def cupy_module() -> Any:
    """Import and return :mod:`cupy`.

    Raises:
        BackendUnavailableError: CuPy is not installed (install ``trtapps[cu13]`` or ``trtapps[cu12]``).
    """
    try:
        import cupy
    except ImportError as exc:
        raise BackendUnavailableError(
            "the GPU kernels need CuPy, which is not installed: pip install 'trtapps[cu13]' (CUDA 13) or "
            f"'trtapps[cu12]' (CUDA 12) ({exc})"
        ) from exc
    return cupy


def load_source(name: str) -> str:
    """The text of ``trtapps/ops/cuda/kernels/<name>`` (cached).

    Raises:
        FileNotFoundError: no such kernel source is shipped.
    """
    with _lock:
        text = _sources.get(name)
    if text is None:
        path = importlib.resources.files(KERNEL_PACKAGE).joinpath("kernels", name)
        if not path.is_file():
            raise FileNotFoundError(f"kernel source {name!r} is not in {KERNEL_PACKAGE}/kernels")
        text = path.read_text(encoding="utf-8")
        with _lock:
            _sources[name] = text
    return text


def build_source(sources: Sequence[str], defines: Mapping[str, int | float | str] | None = None) -> str:
    """The full text compiled for *sources*: one ``#define`` per entry of *defines*, then the files in order."""
    lines = [f"#define {key} {value}" for key, value in sorted((defines or {}).items())]
    parts = ["\n".join(lines)] if lines else []
    parts.extend(f"// ---- {name}\n{load_source(name)}" for name in sources)
    return "\n".join(parts) + "\n"


class Kernel:
    """A compiled ``extern "C"`` kernel; calling it launches it and reports failures by name.

    Args:
        raw: the :class:`cupy.RawKernel`.
        name: the kernel's name, for error messages.
    """

    def __init__(self, raw: Any, name: str) -> None:
        self.raw = raw
        self.name = name

    def __repr__(self) -> str:
        return f"Kernel({self.name!r})"

    def set_max_dynamic_shared_memory(self, nbytes: int) -> None:
        """Allow launches with up to *nbytes* of dynamic shared memory (above the default 48 KiB)."""
        self.raw.max_dynamic_shared_size_bytes = int(nbytes)

    def __call__(
        self,
        grid: tuple[int, ...],
        block: tuple[int, ...],
        args: tuple[Any, ...],
        *,
        shared_mem: int = 0,
        stream: Any = None,
    ) -> None:
        """Launch on *stream* (CuPy's current stream when ``None``).

        Args:
            grid: blocks per grid dimension (1 to 3 values).
            block: threads per block dimension (1 to 3 values).
            args: kernel arguments: CuPy arrays (passed as pointers) and NumPy scalars of the exact C type
                (``np.int32`` for ``int``, ``np.float32`` for ``float``, ``np.float64`` for ``double``,
                ``np.uint64(0)`` for a null pointer). A Python ``int`` or ``float`` would be passed as a
                64-bit value, which is wrong for ``int``/``float`` parameters.
            shared_mem: dynamic shared memory per block, in bytes.
            stream: a :class:`cupy.cuda.Stream`, or ``None``.

        Raises:
            CudaError: the launch failed (invalid configuration, too many resources, a sticky error of an
                earlier kernel), or, with ``TRTAPPS_CUDA_SYNC=1``, the kernel faulted.
        """
        cupy = cupy_module()
        if any(int(g) < 1 for g in grid):
            raise CudaError(f"{self._where(grid, block, shared_mem)}: every grid dimension must be at least 1")
        errors = (cupy.cuda.driver.CUDADriverError, cupy.cuda.runtime.CUDARuntimeError)
        try:
            if stream is None:
                self.raw(tuple(grid), tuple(block), args, shared_mem=shared_mem)
            else:
                with stream:
                    self.raw(tuple(grid), tuple(block), args, shared_mem=shared_mem)
        except errors as exc:
            raise CudaError(f"{self._where(grid, block, shared_mem)} failed to launch: {exc}") from exc
        if os.environ.get("TRTAPPS_CUDA_SYNC", "") not in ("", "0"):
            try:
                (stream or cupy.cuda.get_current_stream()).synchronize()
            except errors as exc:
                raise CudaError(f"{self._where(grid, block, shared_mem)} failed while running: {exc}") from exc

    def _where(self, grid: tuple[int, ...], block: tuple[int, ...], shared_mem: int) -> str:
        """The launch, named in an error (built only when one is raised: launches happen per batch)."""
        return f"kernel {self.name} (grid {tuple(grid)}, block {tuple(block)}, shared {shared_mem} B)"


def get_module(
    sources: Sequence[str],
    defines: Mapping[str, int | float | str] | None = None,
    options: Sequence[str] = (),
    name_expressions: Sequence[str] = (),
) -> Any:
    """The :class:`cupy.RawModule` for *sources* on the current device, built once (memoised).

    Args:
        sources: kernel source files in ``trtapps/ops/cuda/kernels``, concatenated in this order.
        defines: compile-time constants, emitted as ``#define KEY VALUE`` before the sources.
        options: NVRTC options added to :data:`BASE_OPTIONS`.
        name_expressions: template instantiations to make available (``"f<float>"``), if any.

    Raises:
        BackendUnavailableError: CuPy is not installed.
        CudaError: compilation failed (the message holds NVRTC's log).
    """
    cupy = cupy_module()
    device = cupy.cuda.Device().id
    key = (
        device,
        tuple(sources),
        tuple(sorted((defines or {}).items())),
        tuple(options),
        tuple(name_expressions),
    )
    with _lock:
        module = _modules.get(key)
    if module is not None:
        return module
    code = build_source(sources, defines)
    try:
        module = cupy.RawModule(
            code=code,
            options=(*BASE_OPTIONS, *options),
            name_expressions=list(name_expressions) or None,
        )
        module.compile()  # compile now, so a syntax error is reported here and not at the first launch
    except cupy.cuda.compiler.CompileException as exc:
        raise CudaError(f"compiling {', '.join(sources)} with {dict(defines or {})} failed:\n{exc}") from exc
    with _lock:
        module = _modules.setdefault(key, module)
    return module


def get_function(
    sources: Sequence[str],
    name: str,
    defines: Mapping[str, int | float | str] | None = None,
    options: Sequence[str] = (),
) -> Kernel:
    """The kernel *name* of the module built from *sources* and *defines* on the current device (memoised).

    Raises:
        BackendUnavailableError: CuPy is not installed.
        CudaError: compilation failed, or the module has no kernel *name*.
    """
    cupy = cupy_module()
    key = (cupy.cuda.Device().id, tuple(sources), tuple(sorted((defines or {}).items())), tuple(options), name)
    with _lock:
        kernel = _functions.get(key)
    if kernel is not None:
        return kernel
    module = get_module(sources, defines, options)
    try:
        raw = module.get_function(name)
    except (cupy.cuda.driver.CUDADriverError, cupy.cuda.runtime.CUDARuntimeError) as exc:
        raise CudaError(f"kernel {name} is not in {', '.join(sources)}: {exc}") from exc
    kernel = Kernel(raw, name)
    with _lock:
        kernel = _functions.setdefault(key, kernel)
    return kernel


def clear_cache() -> None:
    """Forget every compiled module and kernel (tests; a later call compiles again)."""
    with _lock:
        _modules.clear()
        _functions.clear()
        _sources.clear()
