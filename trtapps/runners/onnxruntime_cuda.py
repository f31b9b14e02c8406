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
  Runtime's end-of-run synchronization (``OnRunEnd``) is switched off on that stream (run option
  ``disable_synchronize_execution_providers``): :meth:`infer` returns once the run is enqueued, outputs are
  complete for work queued after it on the same stream, and the host waits only where it reads results (the
  decode's one small download). The thread is then free to prepare the next batch instead of spinning.

``infer(feeds, stream)`` treats *stream* (default: CuPy's current stream) as the stream the inputs were produced
on and the outputs are consumed on. When it is not the session's stream, the two are ordered with events in both
directions (no host sync). With ``user_stream: false`` ONNX Runtime uses its own stream and the runner
synchronizes the caller's stream before each run instead.

Batch padding (``pad_batch: true``, the default): a batch smaller than the largest batch run so far runs padded to
that size, the inputs copied into the first rows of the runner's own buffers and the outputs cut back. ONNX
Runtime's CUDA provider prepares again (cuDNN algorithm search, memory planning) whenever the input shape differs
from the previous run's, even for a size it has seen, measured on the H100 at 0.8-1.2 s per change with EXHAUSTIVE
and 0.13-0.22 s with HEURISTIC; every partial batch (the end of a file, live streams' partial batches) paid it,
which held one-stream pipelines to a few hundred frames per second. Models whose inputs vary in more than the
batch, or whose outputs ONNX Runtime allocates, run unpadded.

CUDA graphs (``cuda_graph: true``, off by default): ONNX Runtime's CUDA provider records a run as a CUDA graph and
replays it with one launch (``enable_cuda_graph``). A replay ignores the binding and reuses the addresses and
shapes of its capture, so the runner keeps one graph per batch size (run option ``gpu_graph_id`` = the batch
size, onnxruntime >= 1.18) and binds it, once, to buffers of its own: the caller's inputs are copied into them
(one device-to-device copy, none when preprocessing wrote into :meth:`OnnxRuntimeCudaRunner.input_buffer`), and
outputs are views of the same per-batch output buffers as without graphs. The first call at a batch size runs
the model a few times (two uncaptured runs with ``gpu_graph_id = -1`` so that cuDNN's algorithm search and the
memory arena see the shape outside a capture, then ONNX Runtime's own warm-up, capture and replay); later calls
replay. ONNX Runtime keeps graphs per calling thread. Where the model cannot be captured (nodes left on the CPU
with copies, control flow, outputs with data-dependent shapes, inputs with dynamic dimensions other than the
batch, an ONNX Runtime that is too old, a failed capture) the runner logs the reason once and runs without
graphs; ``runner.cuda_graph`` says which. ONNX Runtime captures in global mode: see :mod:`trtapps.gpu.graphs`
for the other threads of the process.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from trtapps.errors import BackendUnavailableError, ModelError
from trtapps.gpu.graphs import CUDA_GRAPH_DESCRIPTION
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
    cudnn_conv_algo_search: Literal["auto", "EXHAUSTIVE", "HEURISTIC", "DEFAULT"] = Field(
        "auto", description="cuDNN convolution algorithm search. EXHAUSTIVE: fastest kernels, after a timed search "
        "whenever the input shape differs from the previous run's (0.8-1.2 s each on an H100, even for a shape seen "
        "before; pad_batch keeps the batch fixed); HEURISTIC: cuDNN's pick, no search (0.13-0.22 s per change). "
        "auto: EXHAUSTIVE when only the batch dimension of the inputs varies, HEURISTIC when their spatial size "
        "varies too (RetinaFace at each image's own size would search for every image)."
    )
    arena_extend_strategy: Literal["kNextPowerOfTwo", "kSameAsRequested"] = Field(
        "kNextPowerOfTwo", description="How ONNX Runtime's GPU memory arena grows."
    )
    gpu_mem_limit: int | None = Field(
        None, ge=1, description="Upper bound of ONNX Runtime's GPU arena in bytes (default: no limit)."
    )
    tf32: bool = Field(
        True, description="Allow TF32 math in fp32 convolutions/matmuls (ONNX Runtime's own default; faster on "
        "Ampere and newer, ~1e-3 relative error, within the evaluation parity bounds); false keeps results "
        "within fp32 rounding of the CPU backend."
    )
    user_stream: bool = Field(
        True, description="Run on the pipeline's CUDA stream (user_compute_stream); false: ONNX Runtime's own "
        "stream, with a stream synchronization before each run."
    )
    do_copy_in_default_stream: bool = Field(
        True, description="ONNX Runtime's copies on the compute stream (true, safe) or on separate streams."
    )
    threads: int = Field(0, ge=0, description="Intra-op CPU threads for nodes left on the CPU (0: default).")
    cpu_spinning: bool = Field(
        False, description="Let ONNX Runtime's idle CPU threads busy-wait between runs (its default on the CPU). "
        "Off here: on the GPU path almost nothing runs on them, and spinning threads take cores from decoding, "
        "staging and the Python threads of the pipeline."
    )
    cuda_graph: bool = Field(False, description=CUDA_GRAPH_DESCRIPTION)
    pad_batch: bool = Field(
        True, description="Run a batch smaller than the largest one so far padded to that size. ONNX Runtime's "
        "CUDA provider prepares again whenever the input shape differs from the previous run's, even for a size "
        "it has seen: 0.8-1.2 s with EXHAUSTIVE, 0.13-0.22 s with HEURISTIC (H100), at every partial batch (the "
        "end of a file, live streams). Padded rows cost compute only; false runs each batch at its own size."
    )


#: uncaptured runs at a new batch size before its capture (cuDNN algorithm search, arena growth, memory pattern)
GRAPH_WARMUP_RUNS = 2
#: run option (onnxruntime >= 1.16) that skips the host synchronization at the end of a run
NO_RUN_END_SYNC = "disable_synchronize_execution_providers"
#: the ``gpu_graph_id`` run option that makes a run neither capture nor replay
UNCAPTURED_GRAPH_ID = "-1"


def _paddable(inputs: Sequence[TensorInfo], modes: Mapping[str, str]) -> bool:
    """Whether runs of this model can be padded to a fixed batch: every input has a dynamic batch dimension and
    fixed others, and every output is written into a buffer of ours (``batch`` or ``fixed`` binding mode)."""
    if not inputs or any(mode not in ("batch", "fixed") for mode in modes.values()):
        return False
    return all(info.shape and info.shape[0] is None and all(d is not None for d in info.shape[1:]) for info in inputs)


def conv_algo_search(model_path: Path, requested: str) -> str:
    """The cuDNN search for *model_path*: *requested*, or for ``auto`` EXHAUSTIVE unless an input has a dynamic
    dimension besides the first (the batch), then HEURISTIC (a search per new shape would dominate)."""
    if requested != "auto":
        return requested
    try:
        import onnx

        model = onnx.load(str(model_path), load_external_data=False)
    except Exception:  # ONNX Runtime reports an unloadable model when the session opens
        return "EXHAUSTIVE"
    initializers = {init.name for init in model.graph.initializer}
    for value in model.graph.input:
        if value.name in initializers or not value.type.HasField("tensor_type"):
            continue
        dims = value.type.tensor_type.shape.dim
        if any(not d.HasField("dim_value") or d.dim_value <= 0 for d in dims[1:]):
            return "HEURISTIC"
    return "EXHAUSTIVE"


def provider_options(
    device: int,
    stream_ptr: int | None,
    *,
    cudnn_conv_algo_search: str = "EXHAUSTIVE",
    arena_extend_strategy: str = "kNextPowerOfTwo",
    gpu_mem_limit: int | None = None,
    tf32: bool = True,
    do_copy_in_default_stream: bool = True,
    cuda_graph: bool = False,
) -> dict[str, str]:
    """The CUDA execution provider's options, as the strings ONNX Runtime parses.

    Only option names ONNX Runtime's CUDA provider knows are produced (it rejects unknown keys); booleans
    are ``"0"``/``"1"``; the stream is the decimal value of the ``cudaStream_t`` pointer, which also sets
    ``has_user_compute_stream``; ``cuda_graph`` adds ``enable_cuda_graph``.
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
    if cuda_graph:
        options["enable_cuda_graph"] = "1"
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


@dataclass
class _BatchGraph:
    """The CUDA graph of one batch size: its binding (bound once), run options and the buffers it reads/writes."""

    batch: int
    binding: Any
    run_options: Any
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    runs: int = 0


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
        cpu_spinning: let idle intra-op threads busy-wait between runs (ONNX Runtime's default; off here).
        cuda_graph: one CUDA graph per batch size (see the module docstring); ``runner.cuda_graph`` says whether
            they are on, ``runner.cuda_graph_problem`` why not.

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
        cudnn_conv_algo_search: str = "auto",
        arena_extend_strategy: str = "kNextPowerOfTwo",
        gpu_mem_limit: int | None = None,
        tf32: bool = True,
        do_copy_in_default_stream: bool = True,
        user_stream: bool = True,
        threads: int = 0,
        cpu_spinning: bool = False,
        cuda_graph: bool = False,
        pad_batch: bool = True,
    ) -> None:
        self._claim_device(model_path, device, available())
        import cupy

        from trtapps.gpu.device import select_device
        from trtapps.gpu.stream import new_stream

        self._cupy = cupy
        self.session: Any = None
        self._binding: Any = None
        self._buffers: dict[str, Any] = {}
        self._input_buffers: dict[str, Any] = {}  # inputs copied here for graphs, or written by preprocessing
        self._graphs: dict[int, _BatchGraph] = {}
        self.cuda_graph = False
        self.cuda_graph_problem: str | None = None
        select_device(self.device_id)
        self.stream = stream if stream is not None else new_stream(self.device_id)
        self.user_stream = user_stream
        self._threads = threads
        self._cpu_spinning = cpu_spinning
        self._provider_kwargs: dict[str, Any] = {
            "cudnn_conv_algo_search": conv_algo_search(self.model_path, cudnn_conv_algo_search),
            "arena_extend_strategy": arena_extend_strategy,
            "gpu_mem_limit": gpu_mem_limit,
            "tf32": tf32,
            "do_copy_in_default_stream": do_copy_in_default_stream,
        }
        session = None
        if cuda_graph:
            import onnxruntime as ort

            from trtapps.gpu.graphs import onnxruntime_graph_problem

            problem = onnxruntime_graph_problem(ort.__version__)
            if problem is None:
                session = self._open_graph_session()
            else:
                self._graphs_off(problem)
        self.session = session if session is not None else self._open_session(graphs=False)
        if PROVIDER not in self.session.get_providers():
            # ONNX Runtime falls back to the CPU when the CUDA provider's libraries (CUDA, cuDNN) fail to load
            self.session = None
            raise BackendUnavailableError(
                "backend 'onnxruntime_cuda' cannot run here: ONNX Runtime could not load its CUDA execution "
                "provider (check that the CUDA and cuDNN libraries matching onnxruntime-gpu are installed; "
                "ONNX Runtime logs the missing library)"
            )
        self._run_options = self._new_run_options()
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
        #: a batch smaller than the largest run so far runs padded to it (:attr:`OnnxRuntimeCudaOptions.pad_batch`):
        #: only for models whose inputs vary in the batch dimension alone and whose outputs all have our buffers
        self.pad_batch = bool(pad_batch) and _paddable(self.inputs, self._modes)
        self._run_batch = 0  # the batch runs are padded to: the largest so far
        for info in self.outputs:
            if self._modes[info.name] != "ort":
                self._buffers[info.name] = self._allocate(info, self._capacity)
        if self.cuda_graph:
            problem = self._graph_io_problem()
            if problem is not None:
                self._graphs_off(problem)
                self.session = self._open_session(graphs=False)  # a graph session would capture and replay anyway
                self._binding = self.session.io_binding()
            else:
                logger.info("%s: CUDA graphs on (one per batch size, captured on first use)", self.model_path.name)

    # -- sessions --------------------------------------------------------------------------------------------
    def _open_session(self, graphs: bool) -> Any:
        """A new session with this runner's provider options (plus ``enable_cuda_graph`` with *graphs*)."""
        stream_ptr = int(self.stream.ptr) if self.user_stream else None
        options = provider_options(self.device_id, stream_ptr, **self._provider_kwargs, cuda_graph=graphs)
        self.provider_options = options
        return load_session(
            self.model_path, [(PROVIDER, options), "CPUExecutionProvider"], self._threads, self._cpu_spinning
        )

    def _open_graph_session(self) -> Any:
        """A session with ``enable_cuda_graph``; where ONNX Runtime refuses one (it checks at creation that every
        compute node runs on the GPU without copies and that there is no control flow), one without."""
        try:
            session = self._open_session(graphs=True)
        except ModelError as exc:
            refusal = str(exc.__cause__ or exc).strip().splitlines()
            session = self._open_session(graphs=False)  # raises the model's own error when it does not load at all
            self._graphs_off(f"ONNX Runtime cannot capture this model ({refusal[0] if refusal else 'no reason'})")
            return session
        self.cuda_graph = True
        return session

    def _new_run_options(self) -> Any:
        """Run options of every run: on the caller's stream, no end-of-run host synchronization (see the module
        docstring); on ONNX Runtime's own stream its default synchronization stays (outputs are read after it)."""
        import onnxruntime as ort

        options = ort.RunOptions()
        if self.user_stream:
            options.add_run_config_entry(NO_RUN_END_SYNC, "1")
        return options

    def _graphs_off(self, problem: str) -> None:
        self.cuda_graph = False
        self.cuda_graph_problem = problem
        self._graphs.clear()
        logger.warning("%s: CUDA graphs off: %s; running without them", self.model_path.name, problem)

    def _graph_io_problem(self) -> str | None:
        """Why the model's inputs and outputs cannot be bound once per batch size, or ``None``."""
        for info in self.inputs:
            if any(d is None for d in info.shape[1:]):
                return f"input {info.describe()} has dynamic dimensions other than the batch"
        for info in self.outputs:
            if self._modes[info.name] == "ort":
                return f"output {info.describe()} has dynamic dimensions other than the batch"
        return None

    # -- buffers ---------------------------------------------------------------------------------------------
    def _allocate(self, info: TensorInfo, batch: int) -> Any:
        shape = tuple(batch if d is None else int(d) for d in info.shape)
        with self._cupy.cuda.Device(self.device_id):
            return self._cupy.empty(shape, dtype=info.dtype)

    def _grow(self, batch: int) -> None:
        """Reallocate the batch-sized buffers for *batch*. Graphs captured before keep the buffers they are
        bound to (their views hold them), so they stay valid."""
        logger.debug("%s: buffers grown from batch %d to %d", self.model_path.name, self._capacity, batch)
        self._capacity = batch
        for info in self.outputs:
            if self._modes[info.name] == "batch":
                self._buffers[info.name] = self._allocate(info, batch)
        for info in self.inputs:
            if info.name in self._input_buffers and info.shape and info.shape[0] is None:
                self._input_buffers[info.name] = self._allocate(info, batch)

    def _input_view(self, info: TensorInfo, batch: int) -> Any:
        buffer = self._input_buffers.get(info.name)
        if buffer is None:
            buffer = self._input_buffers[info.name] = self._allocate(info, self._capacity)
            # rows a padded run does not fill are computed too: keep them finite. The zeros are written on the
            # session's stream and waited for here (once per buffer): written on the thread's current stream (the
            # legacy default stream, which the non-blocking streams of the runner and the caller do not wait for)
            # they could land after the caller's first input, and did on the H100 while another process used the
            # GPU: the first call at a new batch size then ran on a partly zeroed input (session 13,
            # benchmarks/device/graph_race.py)
            with self._cupy.cuda.Device(self.device_id), self.stream:
                buffer.fill(0)
            self.stream.synchronize()
        return buffer[:batch] if info.shape and info.shape[0] is None else buffer

    def input_buffer(self, name: str, batch: int) -> Any:
        """The runner's own device buffer for input *name* at *batch*, a C-contiguous CuPy view.

        Preprocessing that writes its result here and passes this array to :meth:`infer` saves the device copy
        that CUDA graphs otherwise make of each input (without graphs it is bound as is, like any array). The
        view stays the same array for a batch size while graphs are on. Write it on the stream of the next
        :meth:`infer` call (or one ordered after the previous call's): the previous call may still read it.

        Raises:
            KeyError: no input *name*.
            ValueError: the input has dynamic dimensions other than the batch, or a fixed batch other than *batch*.
        """
        info = self.input(name)
        if any(d is None for d in info.shape[1:]):
            raise ValueError(
                f"{self.model_path.name}: input {info.describe()} has dynamic dimensions besides the batch"
            )
        if info.shape and info.shape[0] is not None and info.shape[0] != batch:
            raise ValueError(f"{self.model_path.name}: input {info.describe()} has a fixed batch, not {batch}")
        graph = self._graphs.get(batch)
        if graph is not None:
            return graph.inputs[name]
        if batch > self._capacity:
            self._grow(batch)
        return self._input_view(info, batch)

    @property
    def captured_batches(self) -> list[int]:
        """Batch sizes whose CUDA graph has been captured (and is replayed)."""
        return sorted(b for b, g in self._graphs.items() if g.runs > 0)

    # -- inference -------------------------------------------------------------------------------------------
    def _infer(self, feeds: Mapping[str, Array], stream: Any) -> dict[str, Array]:
        if self.session is None:
            raise RuntimeError(f"{self.model_path.name}: runner is closed")
        batch = int(next(iter(feeds.values())).shape[0]) if feeds else 1
        caller = stream if stream is not None else self._cupy.cuda.get_current_stream()
        if self.pad_batch and batch > 0:
            # the run's batch only grows: a smaller batch runs padded to the largest so far (one shape change per
            # new largest batch, none afterwards; single images on their own stay batch 1)
            target = self._run_batch = max(self._run_batch, batch)
            if batch < target:
                return self._infer_padded(feeds, batch, target, caller)
        if self.cuda_graph:
            return self._infer_graph(feeds, batch, caller)
        return self._infer_direct(feeds, batch, caller)

    def _infer_padded(self, feeds: Mapping[str, Array], batch: int, target: int, caller: Any) -> dict[str, Array]:
        """A run at batch *target* with *batch* real rows: each input copied into the first rows of the runner's
        own buffer (the rows after it hold earlier frames or zeros; their results are never read), outputs cut
        back to *batch* rows."""
        from trtapps.gpu.graphs import copy_into

        cp = self._cupy
        if target > self._capacity:
            self._grow(target)
        padded = {}
        with caller:
            for info in self.inputs:
                array = feeds[info.name]
                self._check_device_input(info, array, cp, "model")
                full = self._input_view(info, target)
                copy_into(full[:batch], array, caller)
                padded[info.name] = full
        run = self._infer_graph if self.cuda_graph else self._infer_direct
        outputs = run(padded, target, caller)
        return {name: value[:batch] if self._modes[name] == "batch" else value for name, value in outputs.items()}

    def _infer_direct(self, feeds: Mapping[str, Array], batch: int, caller: Any) -> dict[str, Array]:
        """One run without graphs: the caller's arrays bound as they are."""
        cp = self._cupy
        if batch > self._capacity:
            self._grow(batch)
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
        self.session.run_with_iobinding(binding, self._run_options)
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

    def _infer_graph(self, feeds: Mapping[str, Array], batch: int, caller: Any) -> dict[str, Array]:
        """One run through the batch size's CUDA graph: inputs into the graph's buffers, capture or replay."""
        from trtapps.gpu.graphs import copy_into
        from trtapps.gpu.stream import wait_for

        cp = self._cupy
        graph = self._graphs.get(batch)
        if graph is None:
            graph = self._graphs[batch] = self._new_graph(batch)
        run_stream = self.stream if self.user_stream else caller
        if self.user_stream:
            wait_for(self.stream, caller)  # the copies below read what the caller's stream produced
        for info in self.inputs:
            array = feeds[info.name]
            self._check_device_input(info, array, cp, "model")
            copy_into(graph.inputs[info.name], array, run_stream)
        if not self.user_stream:
            caller.synchronize()  # ONNX Runtime runs on its own stream: the copies must be complete first
        if graph.runs == 0:
            try:
                self._capture(graph)
            except Exception as exc:  # ONNX Runtime's capture failed: its graph state is unusable from now on
                self._abandon_graphs(batch, exc)
                return self._infer_direct(feeds, batch, caller)
        else:
            self.session.run_with_iobinding(graph.binding, graph.run_options)
        graph.runs += 1
        if self.user_stream:
            wait_for(caller, self.stream)
        return dict(graph.outputs)

    def _new_graph(self, batch: int) -> _BatchGraph:
        """The buffers, binding (bound once, for good) and run options of batch size *batch*'s graph."""

        if batch > self._capacity:
            self._grow(batch)
        inputs = {info.name: self._input_view(info, batch) for info in self.inputs}
        outputs = {}
        for info in self.outputs:
            buffer = self._buffers[info.name]
            outputs[info.name] = buffer[:batch] if self._modes[info.name] == "batch" else buffer
        binding = self.session.io_binding()
        for info in self.inputs:
            array = inputs[info.name]
            binding.bind_input(
                info.name, "cuda", self.device_id, info.dtype.type, tuple(array.shape), int(array.data.ptr)
            )
        for info in self.outputs:
            array = outputs[info.name]
            binding.bind_output(
                info.name, "cuda", self.device_id, info.dtype.type, tuple(array.shape), int(array.data.ptr)
            )
        run_options = self._new_run_options()
        run_options.add_run_config_entry("gpu_graph_id", str(batch))  # 0 is ONNX Runtime's; batch sizes start at 1
        return _BatchGraph(batch, binding, run_options, inputs, outputs)

    def _capture(self, graph: _BatchGraph) -> None:
        """The first run at a batch size: uncaptured warm-up runs, then the run ONNX Runtime captures (it adds
        its own warm-up runs where it counts them per graph, captures, and replays once, all in that call)."""

        uncaptured = self._new_run_options()
        uncaptured.add_run_config_entry("gpu_graph_id", UNCAPTURED_GRAPH_ID)
        for _ in range(GRAPH_WARMUP_RUNS):
            self.session.run_with_iobinding(graph.binding, uncaptured)
        self.session.run_with_iobinding(graph.binding, graph.run_options)
        logger.debug("%s: CUDA graph captured for batch %d", self.model_path.name, graph.batch)

    def _abandon_graphs(self, batch: int, exc: BaseException) -> None:
        """Turn graphs off after a failed capture: end a capture ONNX Runtime left open on the stream, clear the
        error, and open a new session without graphs (ONNX Runtime's graph state lives in the session)."""
        from trtapps.gpu.graphs import clear_last_cuda_error

        try:
            if self.user_stream and self.stream.is_capturing():
                self.stream.end_capture()
        except Exception:  # an invalidated capture raises here; ending it is all that matters
            pass
        clear_last_cuda_error()
        first = str(exc).strip().splitlines()
        self._graphs_off(f"capturing batch {batch} failed ({type(exc).__name__}: {first[0] if first else ''})")
        self.session = self._open_session(graphs=False)
        self._binding = self.session.io_binding()

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
            self._graphs.clear()
            self._binding = None
            self.session = None
            self._buffers.clear()
            self._input_buffers.clear()

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
        cpu_spinning=options.cpu_spinning,
        cuda_graph=options.cuda_graph,
        pad_batch=options.pad_batch,
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
