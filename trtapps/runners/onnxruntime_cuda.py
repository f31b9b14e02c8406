"""ONNX Runtime on the GPU (CUDA execution provider), with inputs and outputs in CuPy device memory.

Registered as backend ``onnxruntime_cuda`` (priority 50: above ``onnxruntime`` on the CPU, below ``tensorrt``).

Data path (no host round trip, no copy of inputs or fixed-shape outputs):

* inputs are CuPy arrays bound by device pointer (``IOBinding.bind_input(..., buffer_ptr=arr.data.ptr)``);
* outputs whose only dynamic dimension is the batch are bound to CuPy buffers allocated once for the largest
  batch seen (``max_batch`` at start; reallocated when a larger batch arrives) and returned as views
  ``buffer[:batch]``: **they are overwritten by the next call** (Polygraphy's rule: copy what you keep);
* outputs with other dynamic dimensions are left to ONNX Runtime to allocate on the GPU
  (``bind_output(name, "cuda")``) and wrapped as CuPy arrays without copying; each such array keeps its
  ``OrtValue`` alive, so those outputs stay valid after the next call;
* the session runs on the pipeline's CuPy stream (provider option ``user_compute_stream``), so preprocessing
  kernels, inference and decode queue on one stream in order, with no synchronization between them. ONNX
  Runtime blocks the calling thread at the end of each run until the stream has finished its work (its
  default ``OnRunEnd`` synchronization), so outputs are complete when :meth:`infer` returns.

``infer(feeds, stream)`` treats *stream* (default: CuPy's current stream) as the stream the inputs were produced
on and the outputs are consumed on. When it is not the session's stream, the two are ordered with events in both
directions (no host sync). With ``user_stream: false`` ONNX Runtime uses its own stream and the runner
synchronizes the caller's stream before each run instead.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from trtapps.errors import BackendUnavailableError
from trtapps.hookspecs import hookimpl
from trtapps.registry import BackendOptions, ComponentSpec, Register
from trtapps.runners.base import TensorInfo
from trtapps.runners.device import DeviceRunner
from trtapps.runners.onnxruntime import describe_session, load_session
from trtapps.structures import Array

logger = logging.getLogger("trtapps.runners.onnxruntime_cuda")

PROVIDER = "CUDAExecutionProvider"


class OnnxRuntimeCudaOptions(BackendOptions):
    """ONNX Runtime with the CUDA execution provider, data on the GPU."""

    type: str = "onnxruntime_cuda"
    max_batch: int | None = Field(
        None, ge=1, description="Batch the output buffers are sized for at start (grown when a larger one "
        "arrives); default: the app's batch_size, else the model's fixed batch, else 1."
    )
    cudnn_conv_algo_search: Literal["EXHAUSTIVE", "HEURISTIC", "DEFAULT"] = Field(
        "EXHAUSTIVE", description="cuDNN convolution algorithm search (EXHAUSTIVE: fastest kernels, slower "
        "first run for each new input shape)."
    )
    arena_extend_strategy: Literal["kNextPowerOfTwo", "kSameAsRequested"] = Field(
        "kNextPowerOfTwo", description="How ONNX Runtime's GPU memory arena grows."
    )
    gpu_mem_limit: int | None = Field(
        None, ge=1, description="Upper bound of ONNX Runtime's GPU arena in bytes (default: no limit)."
    )
    tf32: bool = Field(
        False, description="Allow TF32 math in fp32 convolutions/matmuls (faster on Ampere+, ~1e-3 relative "
        "error); off keeps results within fp32 rounding of the CPU backend."
    )
    user_stream: bool = Field(
        True, description="Run on the pipeline's CUDA stream (user_compute_stream); false: ONNX Runtime's own "
        "stream, with a stream synchronization before each run."
    )
    do_copy_in_default_stream: bool = Field(
        True, description="ONNX Runtime's copies on the compute stream (true, safe) or on separate streams."
    )
    threads: int = Field(0, ge=0, description="Intra-op CPU threads for nodes left on the CPU (0: default).")


def provider_options(
    device: int,
    stream_ptr: int | None,
    *,
    cudnn_conv_algo_search: str = "EXHAUSTIVE",
    arena_extend_strategy: str = "kNextPowerOfTwo",
    gpu_mem_limit: int | None = None,
    tf32: bool = False,
    do_copy_in_default_stream: bool = True,
) -> dict[str, str]:
    """The CUDA execution provider's options, as the strings ONNX Runtime parses.

    Only option names ONNX Runtime's CUDA provider knows are produced (it rejects unknown keys); booleans
    are ``"0"``/``"1"``; the stream is the decimal value of the ``cudaStream_t`` pointer, which also sets
    ``has_user_compute_stream``.
    """
    options = {
        "device_id": str(int(device)),
        "cudnn_conv_algo_search": cudnn_conv_algo_search,
        "arena_extend_strategy": arena_extend_strategy,
        "do_copy_in_default_stream": "1" if do_copy_in_default_stream else "0",
        "use_tf32": "1" if tf32 else "0",
    }
    if gpu_mem_limit is not None:
        options["gpu_mem_limit"] = str(int(gpu_mem_limit))
    if stream_ptr is not None:
        options["user_compute_stream"] = str(int(stream_ptr))
    return options


def binding_mode(info: TensorInfo, raw_dim0: Any, batch_symbol: Any) -> str:
    """How an output is bound.

    * ``"fixed"``: every dimension is static → one buffer allocated once;
    * ``"batch"``: only the first dimension is dynamic and it is the inputs' batch dimension (the same
      symbolic name, e.g. ``batch``) → one buffer sized for the largest batch, returned as ``[:batch]``;
    * ``"ort"``: anything else (dynamic spatial or data-dependent dimensions) → ONNX Runtime allocates it on
      the GPU for each run and it is wrapped as a CuPy array without copying.

    Args:
        info: the output.
        raw_dim0: the output's first dimension as ONNX Runtime reports it (an int, a symbol or ``None``).
        batch_symbol: the first input's first dimension as ONNX Runtime reports it.
    """
    dims = info.shape
    if all(d is not None for d in dims):
        return "fixed"
    same_symbol = isinstance(raw_dim0, str) and raw_dim0 != "" and raw_dim0 == batch_symbol
    if dims and dims[0] is None and same_symbol and all(d is not None for d in dims[1:]):
        return "batch"
    return "ort"


class OnnxRuntimeCudaRunner(DeviceRunner):
    """A model on ONNX Runtime's CUDA execution provider, fed and read as CuPy arrays.

    Args:
        model_path: the ONNX file.
        device: CUDA device ordinal.
        stream: the CuPy stream to run on (the pipeline's); a new non-blocking stream when omitted.
        max_batch: the batch output buffers are first sized for (grown on demand).
        cudnn_conv_algo_search, arena_extend_strategy, gpu_mem_limit, tf32, do_copy_in_default_stream:
            CUDA provider options (see :class:`OnnxRuntimeCudaOptions`).
        user_stream: run on *stream* (``user_compute_stream``) rather than ONNX Runtime's own stream.
        threads: intra-op CPU threads.

    Raises:
        BackendUnavailableError: no CUDA provider, no GPU, or the provider could not be loaded.
        ModelError: the model file cannot be loaded.
    """

    backend = "onnxruntime_cuda"

    def __init__(
        self,
        model_path: str | Path,
        *,
        device: int = 0,
        stream: Any = None,
        max_batch: int | None = None,
        cudnn_conv_algo_search: str = "EXHAUSTIVE",
        arena_extend_strategy: str = "kNextPowerOfTwo",
        gpu_mem_limit: int | None = None,
        tf32: bool = False,
        do_copy_in_default_stream: bool = True,
        user_stream: bool = True,
        threads: int = 0,
    ) -> None:
        self._claim_device(model_path, device, available())
        import cupy

        from trtapps.gpu.device import select_device
        from trtapps.gpu.stream import new_stream

        self._cupy = cupy
        self.session: Any = None
        self._binding: Any = None
        self._buffers: dict[str, Any] = {}
        select_device(self.device_id)
        self.stream = stream if stream is not None else new_stream(self.device_id)
        self.user_stream = user_stream
        options = provider_options(
            self.device_id,
            int(self.stream.ptr) if user_stream else None,
            cudnn_conv_algo_search=cudnn_conv_algo_search,
            arena_extend_strategy=arena_extend_strategy,
            gpu_mem_limit=gpu_mem_limit,
            tf32=tf32,
            do_copy_in_default_stream=do_copy_in_default_stream,
        )
        self.provider_options = options
        self.session = load_session(self.model_path, [(PROVIDER, options), "CPUExecutionProvider"], threads)
        if PROVIDER not in self.session.get_providers():
            # ONNX Runtime falls back to the CPU when the CUDA provider's libraries (CUDA, cuDNN) fail to load
            self.session = None
            raise BackendUnavailableError(
                "backend 'onnxruntime_cuda' cannot run here: ONNX Runtime could not load its CUDA execution "
                "provider (check that the CUDA and cuDNN libraries matching onnxruntime-gpu are installed; "
                "ONNX Runtime logs the missing library)"
            )
        self.inputs, self.outputs, self.metadata = describe_session(self.session)
        self._binding = self.session.io_binding()
        raw_inputs, raw_outputs = self.session.get_inputs(), self.session.get_outputs()
        batch_symbol = raw_inputs[0].shape[0] if raw_inputs and raw_inputs[0].shape else None
        self._modes = {
            info.name: binding_mode(info, raw.shape[0] if raw.shape else None, batch_symbol)
            for info, raw in zip(self.outputs, raw_outputs)
        }
        first = self.inputs[0].shape[0] if self.inputs and self.inputs[0].shape else None
        self._capacity = max(1, int(max_batch or first or 1))
        for info in self.outputs:
            if self._modes[info.name] != "ort":
                self._buffers[info.name] = self._allocate(info, self._capacity)

    # -- buffers ---------------------------------------------------------------------------------------------
    def _allocate(self, info: TensorInfo, batch: int) -> Any:
        shape = tuple(batch if d is None else int(d) for d in info.shape)
        with self._cupy.cuda.Device(self.device_id):
            return self._cupy.empty(shape, dtype=info.dtype)

    def _grow(self, batch: int) -> None:
        logger.debug("%s: output buffers grown from batch %d to %d", self.model_path.name, self._capacity, batch)
        self._capacity = batch
        for info in self.outputs:
            if self._modes[info.name] == "batch":
                self._buffers[info.name] = self._allocate(info, batch)

    # -- inference -------------------------------------------------------------------------------------------
    def _infer(self, feeds: Mapping[str, Array], stream: Any) -> dict[str, Array]:
        if self.session is None:
            raise RuntimeError(f"{self.model_path.name}: runner is closed")
        cp = self._cupy
        batch = int(next(iter(feeds.values())).shape[0]) if feeds else 1
        if batch > self._capacity:
            self._grow(batch)
        caller = stream if stream is not None else cp.cuda.get_current_stream()
        from trtapps.gpu.stream import wait_for

        if self.user_stream:
            wait_for(self.stream, caller)  # the session's stream waits for the caller's work (no host sync)
        else:
            caller.synchronize()  # ONNX Runtime runs on its own stream: inputs must be complete first
        binding = self._binding
        binding.clear_binding_inputs()
        binding.clear_binding_outputs()
        keep: list[Any] = []  # inputs made contiguous must live until the run has finished
        for info in self.inputs:
            array = feeds[info.name]
            self._check_device_input(info, array, cp, "model")
            if not array.flags.c_contiguous:
                with self.stream if self.user_stream else caller:
                    array = cp.ascontiguousarray(array)
                if not self.user_stream:
                    caller.synchronize()
                keep.append(array)
            binding.bind_input(
                info.name, "cuda", self.device_id, info.dtype.type, tuple(array.shape), int(array.data.ptr)
            )
        for info in self.outputs:
            mode = self._modes[info.name]
            if mode == "ort":
                binding.bind_output(info.name, "cuda", self.device_id)
                continue
            buffer = self._buffers[info.name]
            shape = (batch, *buffer.shape[1:]) if mode == "batch" else tuple(buffer.shape)
            binding.bind_output(info.name, "cuda", self.device_id, info.dtype.type, shape, int(buffer.data.ptr))
        self.session.run_with_iobinding(binding)
        if self.user_stream:
            # ONNX Runtime synchronizes its stream at the end of a run by default; ordering the caller's stream
            # after the session's as well keeps outputs safe for the caller even where that default is off
            wait_for(caller, self.stream)
        results: dict[str, Array] = {}
        values = binding.get_outputs() if "ort" in self._modes.values() else None
        for index, info in enumerate(self.outputs):
            mode = self._modes[info.name]
            if mode == "batch":
                results[info.name] = self._buffers[info.name][:batch]
            elif mode == "fixed":
                results[info.name] = self._buffers[info.name]
            else:
                assert values is not None
                results[info.name] = self._wrap(values[index], info)
        del keep
        return results

    def _wrap(self, value: Any, info: TensorInfo) -> Any:
        """A CuPy view of an ONNX Runtime-allocated device output; the array keeps *value* alive."""
        cp = self._cupy
        shape = tuple(int(d) for d in value.shape())
        nbytes = math.prod(shape) * info.dtype.itemsize
        if nbytes == 0:
            return cp.empty(shape, dtype=info.dtype)
        memory = cp.cuda.UnownedMemory(int(value.data_ptr()), nbytes, value, self.device_id)
        return cp.ndarray(shape, dtype=info.dtype, memptr=cp.cuda.MemoryPointer(memory, 0))

    def close(self) -> None:
        """Wait for queued work, then drop the binding, the session and the output buffers."""
        if self.session is None:
            return
        try:
            self.stream.synchronize()
        finally:
            self._binding = None
            self.session = None
            self._buffers.clear()

    @property
    def capacity(self) -> int:
        """The batch the preallocated output buffers currently hold."""
        return self._capacity


def available() -> str | None:
    """``None`` when ONNX Runtime has the CUDA provider and CuPy sees a GPU; else the reason."""
    try:
        import onnxruntime as ort
    except ImportError:
        return "the onnxruntime package is not installed (pip install onnxruntime-gpu)"
    providers = ort.get_available_providers()
    if PROVIDER not in providers:
        return (
            f"this onnxruntime build has no {PROVIDER} (providers: {', '.join(providers)}); "
            "install onnxruntime-gpu instead of onnxruntime"
        )
    from trtapps.gpu.device import gpu_reason

    return gpu_reason()


def _factory(options: OnnxRuntimeCudaOptions, context: Any, model_path: Path) -> OnnxRuntimeCudaRunner:
    from trtapps.gpu.stream import pipeline_stream

    stream = pipeline_stream(context, options.device) if options.user_stream else None
    return OnnxRuntimeCudaRunner(
        model_path,
        device=options.device,
        stream=stream,
        max_batch=options.max_batch,
        cudnn_conv_algo_search=options.cudnn_conv_algo_search,
        arena_extend_strategy=options.arena_extend_strategy,
        gpu_mem_limit=options.gpu_mem_limit,
        tf32=options.tf32,
        do_copy_in_default_stream=options.do_copy_in_default_stream,
        user_stream=options.user_stream,
        threads=options.threads,
    )


@hookimpl
def trtapps_register_backends(register: Register) -> None:
    register(
        ComponentSpec(
            name="onnxruntime_cuda",
            options=OnnxRuntimeCudaOptions,
            factory=_factory,
            summary="ONNX Runtime, CUDA execution provider, data on the GPU (CuPy, IOBinding, pipeline stream)",
            available=available,
            priority=50,
        )
    )


__all__ = ["OnnxRuntimeCudaOptions", "OnnxRuntimeCudaRunner", "available", "binding_mode", "provider_options"]
