"""Building TensorRT engines from ONNX, with the engine cache in front.

One build, for TensorRT 10 and 11 alike:

* the network is **strongly typed**: precision comes from the ONNX graph (an fp16 graph gives fp16 kernels,
  Q/DQ nodes give INT8). TensorRT 10 opts in with ``NetworkDefinitionCreationFlag.STRONGLY_TYPED``; TensorRT 11
  is always strongly typed (the flag is deprecated there and ignored, so it is not passed) and has no
  ``BuilderFlag.FP16``/``INT8``. Which one is running is told by ``hasattr(trt.BuilderFlag, "FP16")``.
  Explicit batch is the only mode in both (the deprecated ``EXPLICIT_BATCH`` flag is not used).
* only when ``fp16`` is requested for an fp32 graph **and** this TensorRT still has ``BuilderFlag.FP16``
  (TensorRT 10, found with ``hasattr``) is the network created weakly typed with the FP16 flag set, letting
  TensorRT pick fp16 kernels itself. On TensorRT 11 that request is logged and the graph's own precision is
  built: convert the ONNX to fp16 instead (the same fp16 ONNX then also serves ONNX Runtime).
* TF32 is cleared unless asked for, so fp32 engines stay close to the CPU results.
* one optimization profile for the dynamic batch: min 1, opt = max = ``max_batch``; other dynamic dimensions
  come from ``input_size`` (height, width) or fail with a message saying so.
* workspace limit with ``set_memory_pool_limit(WORKSPACE, …)``; the timing cache is loaded from and saved to
  the cache folder so rebuilds (other batch sizes, other models) reuse measured tactics.

TensorRT is imported inside the functions; the module imports anywhere.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trtapps.engine.cache import (
    BuildOptions,
    EngineCache,
    EngineMetadata,
    TensorMeta,
    atomic_write,
    engine_key,
)
from trtapps.engine.dtypes import dtype_name, trt_shape
from trtapps.errors import ModelError
from trtapps.paths import unreadable

if TYPE_CHECKING:
    import tensorrt as trt

log = logging.getLogger("trtapps.engine")

# ONNX TensorProto element types (onnx.TensorProto.FLOAT / FLOAT16), kept here to avoid importing onnx for them
_ONNX_FLOAT, _ONNX_FLOAT16 = 1, 10


# -- the ONNX side: digest, metadata, precision (no TensorRT needed) ---------------------------------------------
@dataclass
class OnnxInfo:
    """What the build needs to know about an ONNX file.

    Attributes:
        sha256: digest of the file and of any external-data files it references.
        metadata: the model's ``metadata_props`` (class names, stride… survive into the engine metadata).
        precision: ``"fp16"`` when the graph holds float16 tensors, ``"fp32"`` when it holds float32 and no
            float16, else ``"other"``.
        qdq: the graph has QuantizeLinear/DequantizeLinear nodes (explicit quantization).
    """

    sha256: str
    metadata: dict[str, str] = field(default_factory=dict)
    precision: str = "fp32"
    qdq: bool = False


def inspect_onnx(path: Path, data: bytes) -> OnnxInfo:
    """Digest, metadata and precision of the ONNX model in *data* (read from *path*).

    Raises:
        ModelError: *data* is not an ONNX model.
    """
    import onnx

    try:
        model = onnx.load_model_from_string(data)
    except Exception as exc:
        raise ModelError(f"{path}: not an ONNX model ({type(exc).__name__}: {exc})") from exc
    digest = hashlib.sha256(data)
    external: set[str] = set()
    types: set[int] = set()
    graph = model.graph
    for init in graph.initializer:
        types.add(init.data_type)
        if init.data_location == onnx.TensorProto.EXTERNAL:
            external.update(e.value for e in init.external_data if e.key == "location")
    for value in list(graph.input) + list(graph.output) + list(graph.value_info):
        if value.type.HasField("tensor_type"):
            types.add(value.type.tensor_type.elem_type)
    for location in sorted(external):
        ext = path.parent / location
        digest.update(b"\0" + location.encode() + b"\0")
        try:
            digest.update(ext.read_bytes())
        except OSError as exc:
            raise ModelError(f"{path}: external data file {location!r} cannot be read ({exc})") from exc
    if _ONNX_FLOAT16 in types:
        precision = "fp16"
    elif _ONNX_FLOAT in types:
        precision = "fp32"
    else:
        precision = "other"
    qdq = any(node.op_type in ("QuantizeLinear", "DequantizeLinear") for node in graph.node)
    metadata = {p.key: p.value for p in model.metadata_props}
    return OnnxInfo(sha256=digest.hexdigest(), metadata=metadata, precision=precision, qdq=qdq)


@dataclass(frozen=True)
class PrecisionPlan:
    """How the network is created: strongly typed or weakly typed with the FP16 builder flag."""

    strongly_typed: bool
    fp16_flag: bool
    note: str


def precision_plan(fp16: bool, graph_precision: str, has_fp16_flag: bool) -> PrecisionPlan:
    """Decide strong typing and the FP16 flag (see the module docstring).

    Args:
        fp16: fp16 was requested.
        graph_precision: :attr:`OnnxInfo.precision`.
        has_fp16_flag: this TensorRT has ``BuilderFlag.FP16`` (TensorRT 10; removed in 11).
    """
    if not fp16 or graph_precision != "fp32":
        return PrecisionPlan(True, False, "graph")
    if has_fp16_flag:
        return PrecisionPlan(False, True, "fp16-flag")
    return PrecisionPlan(
        True,
        False,
        "graph (fp16 requested, but this TensorRT has no FP16 builder flag: it builds the ONNX graph's own "
        "precision; convert the model to fp16 for fp16 kernels)",
    )


def resolve_input_shape(
    name: str, shape: list[int], options: BuildOptions, model: str
) -> tuple[list[int], list[int], list[int]] | None:
    """The ``(min, opt, max)`` profile shapes of one network input, or ``None`` when it is fully static.

    The batch (first) dimension goes 1 → ``max_batch`` with the optimum at ``max_batch``; dynamic height and
    width of a rank-4 (NCHW) input come from ``input_size``.

    Raises:
        ModelError: a dynamic dimension has no value to take (``input_size`` missing, or not NCHW).
    """
    if all(d >= 0 for d in shape):
        return None
    lo, hi = list(shape), list(shape)
    for axis, dim in enumerate(shape):
        if dim >= 0:
            continue
        if axis == 0:
            lo[0], hi[0] = 1, options.max_batch
        elif len(shape) == 4 and axis in (2, 3) and options.input_size is not None:
            lo[axis] = hi[axis] = options.input_size[axis - 2]
        else:
            what = "height/width" if len(shape) == 4 and axis in (2, 3) else f"dimension {axis}"
            raise ModelError(
                f"{model}: input {name!r} has a dynamic {what} (shape {shape}); set the backend's "
                "input_size: [height, width] to build a TensorRT engine for it"
            )
    return lo, list(hi), hi


# -- TensorRT logging --------------------------------------------------------------------------------------------
def make_logger(errors: deque[str] | None = None) -> trt.ILogger:
    """A ``tensorrt.ILogger`` that forwards to the ``trtapps.tensorrt`` Python logger.

    TensorRT INFO and VERBOSE go to DEBUG. ERROR and INTERNAL_ERROR messages are also appended to *errors* so
    a failed build or run can say what TensorRT reported. Keep the logger alive as long as anything created
    with it (TensorRT's rule).
    """
    import tensorrt as trt

    target = logging.getLogger("trtapps.tensorrt")
    levels = {
        "INTERNAL_ERROR": logging.ERROR,
        "ERROR": logging.ERROR,
        "WARNING": logging.WARNING,
        "INFO": logging.DEBUG,
        "VERBOSE": logging.DEBUG,
    }

    class _Logger(trt.ILogger):
        def __init__(self) -> None:
            trt.ILogger.__init__(self)

        def log(self, severity: trt.ILogger.Severity, msg: str) -> None:
            name = dtype_name(severity)
            level = levels.get(name, logging.INFO)
            if level >= logging.ERROR and errors is not None:
                errors.append(msg)
            if target.isEnabledFor(level):
                target.log(level, "TensorRT %s: %s", name.lower(), msg)

    return _Logger()


def _parser_errors(parser: trt.OnnxParser) -> list[str]:
    lines = []
    for index in range(parser.num_errors):
        error = parser.get_error(index)
        node = f"node {error.node()}"
        try:
            name, op = error.node_name(), error.node_operator()
            if name or op:
                node += f" {name!r} ({op})"
        except AttributeError:  # older parsers lack node_name/node_operator
            pass
        lines.append(f"  {node}: {error.desc()} [{dtype_name(error.code())}]")
    return lines


# -- building ----------------------------------------------------------------------------------------------------
@dataclass
class BuildResult:
    """A serialized engine and what was learnt while building it."""

    plan: bytes
    inputs: list[TensorMeta]
    outputs: list[TensorMeta]
    precision: str
    seconds: float


def build_engine(
    onnx_path: Path,
    data: bytes,
    options: BuildOptions,
    info: OnnxInfo,
    *,
    logger: trt.ILogger,
    errors: deque[str],
    timing_cache: Path | None = None,
) -> BuildResult:
    """Build a serialized engine from ONNX bytes on the current CUDA device.

    Raises:
        ModelError: the ONNX parser rejected the model (its errors are listed), a dynamic dimension has no
            value, or TensorRT could not build an engine (its last errors are quoted).
    """
    import tensorrt as trt

    # TensorRT 10 has weak typing (and its FP16 flag); TensorRT 11 removed both and is always strongly typed
    weak_typing = hasattr(trt.BuilderFlag, "FP16")
    plan_info = precision_plan(options.fp16, info.precision, weak_typing)
    if options.fp16 and not plan_info.fp16_flag and info.precision == "fp32":
        log.warning("%s: %s", onnx_path.name, plan_info.note)
    errors.clear()
    builder = trt.Builder(logger)
    flags = 0
    if plan_info.strongly_typed and weak_typing:
        # opt in on TensorRT 10; on 11 the flag is deprecated and ignored, so it is not passed there
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(data, str(onnx_path)):
        detail = "\n".join(_parser_errors(parser)) or "  (no parser error recorded)"
        raise ModelError(f"{onnx_path}: TensorRT's ONNX parser rejected the model:\n{detail}")

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, options.workspace_mb << 20)
    if plan_info.fp16_flag:
        config.set_flag(trt.BuilderFlag.FP16)
    if not options.tf32 and hasattr(trt.BuilderFlag, "TF32"):
        config.clear_flag(trt.BuilderFlag.TF32)
    if options.optimization_level is not None:
        config.builder_optimization_level = options.optimization_level

    inputs: list[TensorMeta] = []
    profile = None
    for index in range(network.num_inputs):
        tensor = network.get_input(index)
        shape = list(trt_shape(tensor.shape))
        shapes = resolve_input_shape(tensor.name, shape, options, onnx_path.name)
        meta = TensorMeta(tensor.name, shape, dtype_name(tensor.dtype))
        if shapes is not None:
            if profile is None:
                profile = builder.create_optimization_profile()
            lo, opt, hi = shapes
            profile.set_shape(tensor.name, trt.Dims(lo), trt.Dims(opt), trt.Dims(hi))
            meta.profile = [lo, opt, hi]
        inputs.append(meta)
    if profile is not None:
        config.add_optimization_profile(profile)
    outputs = [
        TensorMeta(t.name, list(trt_shape(t.shape)), dtype_name(t.dtype))
        for t in (network.get_output(i) for i in range(network.num_outputs))
    ]

    if timing_cache is not None:
        _load_timing_cache(config, timing_cache)
    start = time.perf_counter()
    serialized = builder.build_serialized_network(network, config)
    seconds = time.perf_counter() - start
    if serialized is None:
        reported = "; ".join(list(errors)[-3:]) or "no error reported"
        raise ModelError(f"{onnx_path}: TensorRT could not build an engine ({reported})")
    plan = bytes(memoryview(serialized))
    if timing_cache is not None:
        _save_timing_cache(config, timing_cache)
    log.info("built TensorRT engine for %s in %.1f s (%s)", onnx_path.name, seconds, plan_info.note)
    return BuildResult(plan, inputs, outputs, plan_info.note, seconds)


def _load_timing_cache(config: trt.IBuilderConfig, path: Path) -> None:
    data = b""
    if path.is_file():
        try:
            data = path.read_bytes()
        except OSError as exc:
            log.warning("timing cache %s unreadable (%s); starting a new one", path, exc)
    cache = None
    try:
        cache = config.create_timing_cache(data)
    except Exception as exc:  # a corrupt file: TensorRT raises
        log.warning("timing cache %s rejected (%s); starting a new one", path, exc)
    if cache is None or not config.set_timing_cache(cache, False):
        if data:
            log.warning("timing cache %s does not fit this TensorRT/GPU; starting a new one", path)
        config.set_timing_cache(config.create_timing_cache(b""), False)


def _save_timing_cache(config: trt.IBuilderConfig, path: Path) -> None:
    try:
        atomic_write(path, bytes(memoryview(config.get_timing_cache().serialize())))
    except OSError as exc:
        log.warning("could not save the timing cache to %s (%s)", path, exc)


def load_or_build(
    onnx_path: Path,
    options: BuildOptions,
    *,
    cache: EngineCache,
    logger: trt.ILogger,
    errors: deque[str],
    gpu: dict[str, Any],
    rebuild: bool = False,
    timing_cache: bool = True,
) -> tuple[bytes, EngineMetadata, bool]:
    """The engine for *onnx_path* and *options* on this GPU: from the cache, else built and cached.

    Args:
        onnx_path: the ONNX model.
        options: build options (part of the cache key).
        cache: where engines are kept.
        logger, errors: from :func:`make_logger`.
        gpu: :func:`trtapps.gpu.device.gpu_info` of the device the engine is for (current device).
        rebuild: ignore a cached engine.
        timing_cache: use the timing cache in the cache folder.

    Returns:
        ``(plan, metadata, built)``; ``built`` is ``False`` on a cache hit.
    """
    import tensorrt as trt

    if why := unreadable(onnx_path):
        raise ModelError(f"{onnx_path}: model file {why}; check the path (app.model)")
    data = onnx_path.read_bytes()
    info = inspect_onnx(onnx_path, data)
    version = str(trt.__version__)
    gpu_name, cc = str(gpu["name"]), str(gpu["compute_capability"])
    key = engine_key(info.sha256, options, version, gpu_name, cc)
    if not rebuild:
        hit, reason = cache.lookup(key, tensorrt_version=version, gpu_name=gpu_name, compute_capability=cc)
        if hit is not None:
            log.info("TensorRT engine for %s from the cache (%s)", onnx_path.name, cache.engine_path(key))
            return hit.engine, hit.meta, False
        if reason != "not cached":
            log.warning("rebuilding the TensorRT engine for %s: cached engine %s", onnx_path.name, reason)
        else:
            for old in cache.stale(info.sha256, options, key):
                log.warning(
                    "rebuilding the TensorRT engine for %s: the cached one was built by TensorRT %s for %s "
                    "(sm %s); this is TensorRT %s on %s (sm %s)",
                    onnx_path.name, old.tensorrt_version, old.gpu_name, old.compute_capability,
                    version, gpu_name, cc,
                )
    timing_path = cache.timing_cache_path(version, gpu_name, cc) if timing_cache else None
    result = build_engine(
        onnx_path, data, options, info, logger=logger, errors=errors, timing_cache=timing_path
    )
    meta = EngineMetadata(
        key=key,
        model=onnx_path.name,
        onnx_sha256=info.sha256,
        build_options=options.as_dict(),
        tensorrt_version=version,
        gpu_name=gpu_name,
        compute_capability=cc,
        engine_sha256="",
        engine_bytes=0,
        inputs=result.inputs,
        outputs=result.outputs,
        onnx_metadata=info.metadata,
        precision=result.precision,
        build_seconds=round(result.seconds, 3),
    )
    try:
        path = cache.store(result.plan, meta)
        log.info("cached the TensorRT engine at %s", path)
    except OSError as exc:
        log.warning("could not write the engine cache in %s (%s); the engine will be rebuilt next time",
                    cache.root, exc)
    return result.plan, meta, True
