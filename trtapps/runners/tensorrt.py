"""TensorRT backend: ONNX → cached engine → named-tensor execution on CuPy device buffers.

Registered as backend ``tensorrt`` (priority 100, the first choice of ``backend: auto`` where TensorRT and a
GPU are present). The model may be an ONNX file (built into an engine on first use and cached, see
:mod:`trtapps.engine`) or a serialized engine (``.engine``/``.plan``) built elsewhere by the same TensorRT
version for the same GPU; a ``<name>.json`` next to it supplies the ONNX metadata (class names) when present.

Execution (TensorRT 10 and 11): one ``IExecutionContext``; per call ``set_input_shape`` and
``set_tensor_address`` for every input (the caller's CuPy arrays, zero copy) and output, then
``execute_async_v3`` on the caller's stream. :meth:`TensorRTRunner.infer` returns once the work is
**enqueued**: outputs are ready in stream order (work queued afterwards on the same stream sees them; host code
must synchronize the stream, e.g. ``array.get(stream=stream)``).

Output buffers are allocated once for the profile's largest batch. **The arrays returned are views of those
buffers (``[:batch]``) and are overwritten by the next call** (Polygraphy's rule): copy what must outlive it.

CUDA graphs (``cuda_graph: true``, off by default), as TensorRT's documentation describes them: for each input
shape (each batch size) the runner makes an execution context of its own, sets the shape and binds it once to
input buffers it owns (allocated for the profile's largest shapes) and to the output buffers above; the first call
enqueues once (TensorRT settles its shape-dependent state) and then records ``execute_async_v3`` by stream capture
(thread-local mode: other threads are not restricted); later calls copy the caller's inputs into the bound buffers
(nothing to copy when preprocessing wrote into :meth:`TensorRTRunner.input_buffer`) and launch the graph. A graph
per context, because a graph replays the state its context had at capture. Each context holds its own activation
memory (TensorRT's device memory for the profile), so every batch size seen costs that much once. Where capture
fails (a layer or plugin that cannot be captured, the legacy default stream), that shape runs without a graph and
the reason is logged once; ``runner.cuda_graph`` says whether graphs are on.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field

from trtapps.engine.cache import BuildOptions, EngineCache, EngineMetadata
from trtapps.engine.dtypes import numpy_dtype, trt_shape
from trtapps.errors import CudaError, ModelError
from trtapps.gpu.graphs import CUDA_GRAPH_DESCRIPTION
from trtapps.hookspecs import hookimpl
from trtapps.registry import BackendOptions, ComponentSpec, Register
from trtapps.runners.base import TensorInfo
from trtapps.runners.device import DeviceRunner
from trtapps.structures import Array

if TYPE_CHECKING:
    import tensorrt as trt

log = logging.getLogger("trtapps.runners.tensorrt")

ENGINE_SUFFIXES = (".engine", ".plan", ".trt")


class TensorRTOptions(BackendOptions):
    """TensorRT: ONNX models are built into engines once and cached."""

    type: str = "tensorrt"
    max_batch: int | None = Field(
        None, ge=1, le=1024, description="Largest batch of the engine's optimization profile; default: the app's "
        "batch_size, else the model's fixed batch, else 1."
    )
    input_size: tuple[int, int] | None = Field(
        None, description="[height, width] to build models whose input height/width are dynamic."
    )
    workspace_mb: int = Field(4096, ge=16, description="Builder workspace memory limit (MiB).")
    fp16: bool = Field(
        False, description="fp16 kernels for an fp32 ONNX (TensorRT 10 only: its FP16 builder flag). TensorRT 11 "
        "takes precision from the ONNX graph: convert the model to fp16 instead."
    )
    tf32: bool = Field(
        True, description="Allow TF32 math in fp32 layers (TensorRT's own default; faster on Ampere and newer, "
        "~1e-3 relative error); false keeps fp32 results close to the CPU backend."
    )
    optimization_level: int | None = Field(None, ge=0, le=5, description="Builder optimization level (0-5).")
    cache_dir: str | None = Field(None, description="Engine cache folder (default: TRTAPPS_CACHE/engines, "
                                  "else ~/.cache/trtapps/engines).")
    rebuild: bool = Field(False, description="Build the engine even when a cached one exists.")
    timing_cache: bool = Field(True, description="Reuse the builder timing cache kept in the cache folder.")
    cuda_graph: bool = Field(False, description=CUDA_GRAPH_DESCRIPTION)

    def build_options(self, default_batch: int = 1) -> BuildOptions:
        """The :class:`~trtapps.engine.cache.BuildOptions` these options describe."""
        return BuildOptions(
            max_batch=self.max_batch or default_batch,
            input_size=self.input_size,
            workspace_mb=self.workspace_mb,
            fp16=self.fp16,
            tf32=self.tf32,
            optimization_level=self.optimization_level,
        )


def _sidecar_metadata(engine_path: Path) -> EngineMetadata | None:
    sidecar = engine_path.with_suffix(".json")
    if not sidecar.is_file():
        return None
    try:
        return EngineMetadata.from_json(sidecar.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        log.warning("ignoring %s: %s", sidecar, exc)
        return None


@dataclass
class _ShapeGraph:
    """The CUDA graph of one set of input shapes: its own execution context, bound once to the buffers below."""

    context: Any
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    graph: Any = None  # cupy.cuda.Graph, once captured


class TensorRTRunner(DeviceRunner):
    """A TensorRT engine fed and read as CuPy arrays.

    Args:
        model_path: an ONNX file (built and cached) or a serialized engine file.
        device: CUDA device ordinal.
        stream: the CuPy stream :meth:`infer` enqueues on when called without one (the pipeline's); when
            omitted, such calls use CuPy's current stream.
        options: build options for ONNX models (ignored for engine files).
        cache_dir: the engine cache folder (default: ``TRTAPPS_CACHE``/engines, else ``~/.cache/trtapps/engines``).
        rebuild: build even when a cached engine exists.
        timing_cache: reuse the timing cache in the cache folder.
        cuda_graph: one CUDA graph per input shape (see the module docstring).

    Raises:
        BackendUnavailableError: TensorRT or a GPU is missing.
        ModelError: the model cannot be parsed or built, or the engine file cannot be deserialized.
    """

    backend = "tensorrt"

    def __init__(
        self,
        model_path: str | Path,
        *,
        device: int = 0,
        stream: Any = None,
        options: BuildOptions | None = None,
        cache_dir: str | Path | None = None,
        rebuild: bool = False,
        timing_cache: bool = True,
        cuda_graph: bool = False,
    ) -> None:
        self._claim_device(model_path, device, available())
        import cupy
        import tensorrt as trt

        from trtapps.engine.build import load_or_build, make_logger
        from trtapps.gpu.device import gpu_info, select_device

        self._cupy = cupy
        self._context: trt.IExecutionContext | None = None
        self._engine: trt.ICudaEngine | None = None
        self._runtime: trt.Runtime | None = None
        self._buffers: dict[str, Any] = {}
        self._last_stream: Any = None
        self.cuda_graph = bool(cuda_graph)
        self.cuda_graph_problem: str | None = None  # the first reason a capture failed
        self._graphs: dict[tuple[tuple[int, ...], ...], _ShapeGraph] = {}
        self._uncaptured: set[tuple[tuple[int, ...], ...]] = set()  # shapes whose capture failed: run directly
        self._retired: list[Any] = []  # contexts of failed captures, kept until close (work may still be queued)
        self._input_buffers: dict[str, Any] = {}
        self._max_input_shapes: dict[str, tuple[int, ...]] = {}
        self._errors: deque[str] = deque(maxlen=20)
        self._logger = make_logger(self._errors)
        select_device(self.device_id)
        self.stream = stream
        self.options = options or BuildOptions()
        self.cache = EngineCache(cache_dir)
        self.built = False
        self.engine_info: EngineMetadata | None = None
        self._runtime = trt.Runtime(self._logger)

        if self.model_path.suffix.lower() in ENGINE_SUFFIXES:
            if not self.model_path.is_file():
                raise ModelError(f"{self.model_path}: engine file not found")
            plan = self.model_path.read_bytes()
            self.engine_info = _sidecar_metadata(self.model_path)
            self._errors.clear()
            engine = self._runtime.deserialize_cuda_engine(plan)
            if engine is None:
                reported = "; ".join(self._errors) or "no error reported"
                raise ModelError(
                    f"{self.model_path}: TensorRT {trt.__version__} cannot load this engine ({reported}); an engine "
                    "only runs with the TensorRT version and GPU it was built for: build it again from the ONNX"
                )
        else:
            gpu = gpu_info(self.device_id)

            def build(again: bool) -> tuple[bytes, EngineMetadata, bool]:
                return load_or_build(
                    self.model_path, self.options, cache=self.cache, logger=self._logger, errors=self._errors,
                    gpu=gpu, rebuild=again, timing_cache=timing_cache,
                )

            plan, self.engine_info, self.built = build(rebuild)
            self._errors.clear()
            engine = self._runtime.deserialize_cuda_engine(plan)
            if engine is None and not self.built:
                log.warning(
                    "rebuilding the TensorRT engine for %s: the cached engine %s could not be deserialized (%s)",
                    self.model_path.name, self.engine_info.key, "; ".join(self._errors) or "no error reported",
                )
                self.cache.remove(self.engine_info.key)
                plan, self.engine_info, self.built = build(True)
                self._errors.clear()
                engine = self._runtime.deserialize_cuda_engine(plan)
            if engine is None:
                reported = "; ".join(self._errors) or "no error reported"
                raise ModelError(f"{self.model_path}: TensorRT built an engine it cannot deserialize ({reported})")
        self._engine = engine
        self.metadata = dict(self.engine_info.onnx_metadata) if self.engine_info else {}
        context = engine.create_execution_context()
        if context is None:
            raise CudaError(
                f"{self.model_path.name}: TensorRT could not create an execution context "
                f"({'; '.join(self._errors) or 'out of device memory?'})"
            )
        self._context = context
        self._describe_io(engine, context)

    # -- IO ---------------------------------------------------------------------------------------------------
    def _describe_io(self, engine: trt.ICudaEngine, context: trt.IExecutionContext) -> None:
        import tensorrt as trt

        self.inputs, self.outputs = [], []
        self._min_batch, self._max_batch = 1, 1
        max_shapes: dict[str, tuple[int, ...]] = {}
        for index in range(engine.num_io_tensors):
            name = engine.get_tensor_name(index)
            dtype = numpy_dtype(engine.get_tensor_dtype(name), name)
            shape = trt_shape(engine.get_tensor_shape(name))
            if engine.get_tensor_mode(name) != trt.TensorIOMode.INPUT:
                self.outputs.append(TensorInfo(name, tuple(None if d < 0 else d for d in shape), dtype))
                continue
            if any(d < 0 for d in shape):
                lo, _opt, hi = (trt_shape(s) for s in engine.get_tensor_profile_shape(name, 0))
                dims = tuple(None if a != b else a for a, b in zip(lo, hi))
                max_shapes[name] = hi
                if not self.inputs:
                    self._min_batch, self._max_batch = lo[0], hi[0]
            else:
                dims = shape
                max_shapes[name] = shape
                if not self.inputs:
                    self._min_batch = self._max_batch = shape[0] if shape else 1
            self.inputs.append(TensorInfo(name, dims, dtype))
        self._max_input_shapes = dict(max_shapes)
        for name, shape in max_shapes.items():
            if not context.set_input_shape(name, shape):
                raise ModelError(
                    f"{self.model_path.name}: TensorRT refused input {name!r} at its profile maximum {shape}"
                )
        cp = self._cupy
        for info in self.outputs:
            shape = trt_shape(context.get_tensor_shape(info.name))
            if any(d < 0 for d in shape):
                raise ModelError(
                    f"{self.model_path.name}: output {info.name!r} has a data-dependent shape {shape}; trtapps "
                    "runs engines whose output shapes follow from the input shapes"
                )
            with cp.cuda.Device(self.device_id):
                self._buffers[info.name] = cp.empty(shape, dtype=info.dtype)

    @property
    def max_batch(self) -> int | None:
        """The engine's largest batch (its optimization profile's maximum)."""
        return self._max_batch

    # -- inference --------------------------------------------------------------------------------------------
    def _infer(self, feeds: Mapping[str, Array], stream: Any) -> dict[str, Array]:
        if self._context is None:
            raise RuntimeError(f"{self.model_path.name}: runner is closed")
        cp = self._cupy
        if stream is None:
            stream = self.stream if self.stream is not None else cp.cuda.get_current_stream()
        batch = int(next(iter(feeds.values())).shape[0]) if feeds else 1
        if not self._min_batch <= batch <= self._max_batch:
            raise ValueError(
                f"{self.model_path.name}: batch {batch} is outside the engine's range {self._min_batch}.."
                f"{self._max_batch}; build it for a larger batch (backend max_batch)"
            )
        if self.cuda_graph:
            key = tuple(tuple(int(d) for d in feeds[info.name].shape) for info in self.inputs)
            if key not in self._uncaptured:
                if int(stream.ptr) != 0:
                    return self._infer_graph(feeds, key, stream)
                self._graph_failed("the legacy default stream cannot be captured; run on a non-blocking stream")
        return self._infer_direct(feeds, stream)

    def _infer_direct(self, feeds: Mapping[str, Array], stream: Any) -> dict[str, Array]:
        """One enqueue on the main context, the caller's inputs bound as they are."""
        context = self._context
        assert context is not None
        cp = self._cupy
        handle = int(stream.ptr)
        for info in self.inputs:
            array = feeds[info.name]
            self._check_device_input(info, array, cp, "engine")
            if not array.flags.c_contiguous:
                # copied on the inference stream; CuPy's pool hands freed blocks out again only on the stream
                # they were allocated on, so the copy stays valid for the enqueued work after it is released
                with stream:
                    array = cp.ascontiguousarray(array)
            shape = tuple(int(d) for d in array.shape)
            if not context.set_input_shape(info.name, shape):
                raise ValueError(
                    f"{self.model_path.name}: TensorRT refused shape {shape} for input {info.name!r} "
                    f"({info.describe()}, batch {self._min_batch}..{self._max_batch})"
                )
            context.set_tensor_address(info.name, int(array.data.ptr))
        results: dict[str, Array] = {}
        for info in self.outputs:
            shape = trt_shape(context.get_tensor_shape(info.name))
            buffer = self._buffers[info.name]
            view = buffer.reshape(-1)[: math.prod(shape)].reshape(shape)
            context.set_tensor_address(info.name, int(buffer.data.ptr))
            results[info.name] = view
        self._errors.clear()
        if not context.execute_async_v3(handle):
            reported = "; ".join(list(self._errors)[-3:]) or "no error reported"
            raise CudaError(f"{self.model_path.name}: TensorRT execute_async_v3 failed ({reported})")
        self._last_stream = stream
        return results

    def _infer_graph(
        self, feeds: Mapping[str, Array], key: tuple[tuple[int, ...], ...], stream: Any
    ) -> dict[str, Array]:
        """One call through the graph of these input shapes: inputs into its buffers, then capture or launch."""
        from trtapps.gpu.graphs import copy_into
        from trtapps.gpu.stream import wait_for

        cp = self._cupy
        for info in self.inputs:
            self._check_device_input(info, feeds[info.name], cp, "engine")
        entry = self._graphs.get(key)
        if entry is None:
            entry = self._graphs[key] = self._new_graph(key)
        if self._last_stream is not None:
            wait_for(stream, self._last_stream)  # the previous call, on another stream, may still read the inputs
        for info in self.inputs:
            copy_into(entry.inputs[info.name], feeds[info.name], stream)
        if entry.graph is not None:
            entry.graph.launch(stream)
        else:
            # first call: one enqueue settles the context's shape-dependent state (and computes this call's
            # outputs), then the capture records the next enqueue without running it
            self._enqueue(entry.context, stream)
            entry.graph = self._capture(entry.context, stream)
            if entry.graph is None:
                del self._graphs[key]
                self._uncaptured.add(key)
                self._retired.append(entry.context)
        self._last_stream = stream
        return dict(entry.outputs)

    def _new_graph(self, key: tuple[tuple[int, ...], ...]) -> _ShapeGraph:
        """An execution context for input shapes *key*, bound for good to the runner's input and output buffers."""
        engine = self._engine
        assert engine is not None
        context = engine.create_execution_context()
        if context is None:
            raise CudaError(
                f"{self.model_path.name}: TensorRT could not create an execution context for a CUDA graph "
                f"({'; '.join(self._errors) or 'out of device memory?'})"
            )
        inputs: dict[str, Any] = {}
        for info, shape in zip(self.inputs, key):
            if not context.set_input_shape(info.name, shape):
                raise ValueError(
                    f"{self.model_path.name}: TensorRT refused shape {shape} for input {info.name!r} "
                    f"({info.describe()}, batch {self._min_batch}..{self._max_batch})"
                )
            inputs[info.name] = self._input_view(info, shape)
            context.set_tensor_address(info.name, int(inputs[info.name].data.ptr))
        outputs: dict[str, Any] = {}
        for info in self.outputs:
            shape = trt_shape(context.get_tensor_shape(info.name))
            buffer = self._buffers[info.name]
            outputs[info.name] = buffer.reshape(-1)[: math.prod(shape)].reshape(shape)
            context.set_tensor_address(info.name, int(buffer.data.ptr))
        return _ShapeGraph(context, inputs, outputs)

    def _enqueue(self, context: Any, stream: Any) -> None:
        self._errors.clear()
        if not context.execute_async_v3(int(stream.ptr)):
            reported = "; ".join(list(self._errors)[-3:]) or "no error reported"
            raise CudaError(f"{self.model_path.name}: TensorRT execute_async_v3 failed ({reported})")

    def _capture(self, context: Any, stream: Any) -> Any:
        """The graph of one ``execute_async_v3`` of *context* on *stream*, or ``None`` (reason logged once)."""
        import cupy

        from trtapps.gpu.graphs import clear_last_cuda_error

        failure: str | None = None
        graph = None
        self._errors.clear()
        with stream:
            stream.begin_capture(cupy.cuda.runtime.streamCaptureModeThreadLocal)
            try:
                if not context.execute_async_v3(int(stream.ptr)):
                    failure = "execute_async_v3 failed under capture (" + ("; ".join(self._errors) or "no error") + ")"
            except Exception as exc:
                failure = f"{type(exc).__name__}: {exc}"
            finally:
                try:
                    graph = stream.end_capture()
                except Exception as exc:  # cudaErrorStreamCaptureInvalidated and the like
                    failure = failure or f"{type(exc).__name__}: {exc}"
                    graph = None
        if failure is not None or graph is None:
            clear_last_cuda_error()
            self._graph_failed((failure or "no graph was produced").splitlines()[0])
            return None
        return graph

    def _graph_failed(self, reason: str) -> None:
        if self.cuda_graph_problem is None:
            self.cuda_graph_problem = reason
            log.warning("%s: CUDA graph capture is not possible (%s); running without a graph", self.model_path.name,
                        reason)

    # -- buffers ----------------------------------------------------------------------------------------------
    def _input_view(self, info: TensorInfo, shape: tuple[int, ...]) -> Any:
        """A C-contiguous *shape* view of the runner's buffer for input *info* (allocated once, at the profile's
        largest shape, so a view of any shape the profile allows starts at the same address)."""
        buffer = self._input_buffers.get(info.name)
        if buffer is None:
            with self._cupy.cuda.Device(self.device_id):
                buffer = self._input_buffers[info.name] = self._cupy.empty(
                    self._max_input_shapes[info.name], dtype=info.dtype
                )
        return buffer.reshape(-1)[: math.prod(shape)].reshape(shape)

    def input_buffer(self, name: str, batch: int) -> Any:
        """The runner's own device buffer for input *name* at *batch*, a C-contiguous CuPy view.

        Preprocessing that writes its result here and passes this array to :meth:`infer` saves the device copy
        that CUDA graphs otherwise make of each input (without graphs it is bound as is). Write it on the stream
        of the next :meth:`infer` call (or one ordered after the previous call's): the previous call, enqueued
        and not yet finished, may still read it.

        Raises:
            KeyError: no input *name*.
            ValueError: the input has dynamic dimensions other than the batch, or *batch* is outside the
                engine's range.
        """
        info = self.input(name)
        if any(d is None for d in info.shape[1:]):
            raise ValueError(
                f"{self.model_path.name}: input {info.describe()} has dynamic dimensions besides the batch"
            )
        if not self._min_batch <= batch <= self._max_batch:
            raise ValueError(
                f"{self.model_path.name}: batch {batch} is outside the engine's range {self._min_batch}.."
                f"{self._max_batch}"
            )
        return self._input_view(info, (batch, *(int(d) for d in info.shape[1:] if d is not None)))

    @property
    def captured_shapes(self) -> list[tuple[tuple[int, ...], ...]]:
        """The input shapes (one tuple per input) whose CUDA graph is replayed."""
        return sorted(k for k, g in self._graphs.items() if g.graph is not None)

    def close(self) -> None:
        """Wait for queued work, then free the graphs and their contexts, the context, the engine, the runtime and
        the buffers, in that order."""
        if self._runtime is None:
            return
        try:
            if self._last_stream is not None:
                self._last_stream.synchronize()
        finally:
            self._last_stream = None
            for entry in self._graphs.values():
                entry.graph = None
            self._graphs.clear()
            self._retired.clear()
            self._input_buffers.clear()
            self._context = None
            self._engine = None
            self._runtime = None
            self._buffers.clear()


def available() -> str | None:
    """``None`` when TensorRT imports and CuPy sees a GPU; else the reason."""
    try:
        import tensorrt
    except Exception as exc:  # ImportError, or libnvinfer missing behind the bindings
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return (
            f"TensorRT is not installed or cannot be loaded ({type(exc).__name__}: {first}); "
            "pip install tensorrt-cu13 (from NVIDIA's package index)"
        )
    if not hasattr(tensorrt, "Runtime"):
        where = ", ".join(getattr(tensorrt, "__path__", [])) or getattr(tensorrt, "__file__", "?")
        return (
            f"the 'tensorrt' module found ({where}) is not TensorRT's Python bindings (type stubs only?); "
            "pip install tensorrt-cu13 (from NVIDIA's package index)"
        )
    from trtapps.gpu.device import gpu_reason

    return gpu_reason()


def _factory(options: TensorRTOptions, context: Any, model_path: Path) -> TensorRTRunner:
    from trtapps.gpu.stream import pipeline_stream

    return TensorRTRunner(
        model_path,
        device=options.device,
        stream=pipeline_stream(context, options.device),
        options=options.build_options(),
        cache_dir=options.cache_dir,
        rebuild=options.rebuild,
        timing_cache=options.timing_cache,
        cuda_graph=options.cuda_graph,
    )


@hookimpl
def trtapps_register_backends(register: Register) -> None:
    register(
        ComponentSpec(
            name="tensorrt",
            options=TensorRTOptions,
            factory=_factory,
            summary="TensorRT engines built from ONNX and cached; data on the GPU",
            available=available,
            priority=100,
        )
    )


__all__ = ["TensorRTOptions", "TensorRTRunner", "available"]
