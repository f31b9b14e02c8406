"""``trtapps build``: check → fix → precision → a deployable model, and ``trtapps info`` to read one back.

One pipeline for every backend:

1. **check** the export (:func:`trtapps.onnx.check.check_model`) for the batch range asked for;
2. **fix** it (:func:`trtapps.onnx.fix.fix_model`): the batch becomes dynamic when ``max_batch > 1``, baked shape
   constants are rewritten, the graph is simplified, and ONNX Runtime proves the result equivalent; an export it
   cannot repair stops the build with the reason;
3. **precision** (:func:`trtapps.onnx.precision.apply_precision`): fp32 as is, fp16 casts, or int8 Q/DQ nodes
   calibrated on images run through the app's own preprocessing; the ``trtapps.*`` metadata (app, variant,
   labels, precision, batch range, source sha256, tool versions) is written into the model;
4. the product: for ONNX Runtime the prepared ONNX; for TensorRT an engine built through the engine cache of
   :mod:`trtapps.engine` (strongly typed, so the ONNX precision is what the engine runs) written next to it with
   its metadata side file (``<name>.json``), which :class:`~trtapps.runners.tensorrt.TensorRTRunner` and
   ``trtapps info`` read.
"""

from __future__ import annotations

import ast
import json
import logging
import tempfile
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trtapps.errors import BackendUnavailableError, ConfigError, ModelError

log = logging.getLogger("trtapps.build")

BACKENDS = ("onnxruntime", "tensorrt")
ENGINE_SUFFIXES = (".engine", ".plan", ".trt")
#: the most images the fix's equivalence proof runs at once (the engine's max batch can be larger)
PROOF_BATCH_MAX = 8
#: metadata key of the check/fix summary (alongside the precision step's ``trtapps.*`` keys)
PREPARATION_KEY = "trtapps.preparation"
#: trtapps metadata keys that ``trtapps info`` shows on its summary lines (ModelInfo's own fields), not as build fields
SUMMARY_KEYS = ("app", "variant", "labels", "precision", "batch")


@dataclass
class BuildResult:
    """What :func:`build_model` produced."""

    source: Path
    onnx: Path
    engine: Path | None
    backend: str
    precision: str
    max_batch: int
    check: dict[str, int]
    fix: dict[str, Any]
    precision_lines: list[str] = field(default_factory=list)
    engine_note: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": "trtapps.build/1",
            "source": str(self.source),
            "onnx": str(self.onnx),
            "engine": str(self.engine) if self.engine else None,
            "backend": self.backend,
            "precision": self.precision,
            "batch": {"min": 1, "max": self.max_batch},
            "check": self.check,
            "fix": self.fix,
            "precision_report": self.precision_lines,
            "engine_note": self.engine_note,
        }


def default_output(source: Path, precision: str, max_batch: int, backend: str) -> Path:
    """``<stem>_<precision>_b<max>.onnx`` (or ``.engine``) in the current folder."""
    suffix = ".engine" if backend == "tensorrt" else ".onnx"
    return Path.cwd() / f"{source.stem}_{precision}_b{max_batch}{suffix}"


def build_model(
    model: str | Path,
    *,
    app: str,
    variant: str | None = None,
    precision: str = "fp32",
    max_batch: int = 1,
    calib: str | Path | None = None,
    backend: str = "onnxruntime",
    output: str | Path | None = None,
    input_size: tuple[int, int] | None = None,
    app_options: dict[str, Any] | None = None,
    images: list[Path] | None = None,
) -> BuildResult:
    """Prepare *model* for *app* at *precision* and batch 1..*max_batch* (see the module docstring).

    Args:
        model: an ONNX file or a model-zoo name.
        app: the app that will run it (``yolo``, ``retinaface``, ``scrfd`` or a plugin's); its preprocessing
            calibrates int8 and its class names go into the metadata.
        variant: the app's head variant (``v8``, ``yolox``…) where the app has one.
        precision: ``fp32``, ``fp16`` or ``int8``.
        max_batch: the largest batch; above 1 the batch is made dynamic.
        calib: the calibration image folder (int8; for fp16 its first images compare the outputs with fp32).
        backend: ``onnxruntime`` (the prepared ONNX) or ``tensorrt`` (an engine, through the engine cache).
        output: where the product goes (default :func:`default_output`).
        input_size: ``(height, width)`` for TensorRT engines of models with a dynamic height/width.
        app_options: more app options (e.g. ``{"input_size": [640, 640]}``).
        images: photos for the fix's equivalence proof (default: the shared media when present).

    Raises:
        ConfigError: bad option values.
        ModelError: the model is missing, not ONNX, or has an error the fix cannot repair.
        BackendUnavailableError: ``--backend tensorrt`` where TensorRT or a GPU is missing.
    """
    from trtapps.onnx.check import check_model
    from trtapps.onnx.fix import FixError, fix_model
    from trtapps.zoo import resolve_model

    if backend not in BACKENDS:
        raise ConfigError(f"--backend {backend}: use one of {', '.join(BACKENDS)}")
    if precision not in ("fp32", "fp16", "int8"):
        raise ConfigError(f"--precision {precision}: use fp32, fp16 or int8")
    if max_batch < 1:
        raise ConfigError(f"--max-batch {max_batch}: must be at least 1")
    if backend == "tensorrt":
        _require_tensorrt()
    source = resolve_model(str(model))
    out = Path(output) if output is not None else default_output(source, precision, max_batch, backend)
    engine_path = out if backend == "tensorrt" else None
    onnx_out = out.with_suffix(".onnx") if backend == "tensorrt" else out
    if onnx_out.suffix != ".onnx":
        raise ConfigError(f"-o {out}: the ONNX Runtime backend writes an .onnx file; name the output *.onnx")
    if onnx_out.resolve() == source.resolve():
        raise ConfigError(f"-o {out}: the output would overwrite the source model; choose another path")

    dynamic = max_batch > 1
    report = check_model(source, dynamic_batch=dynamic)
    options: dict[str, Any] = {"type": app, **(app_options or {})}
    if variant is not None:
        options["variant"] = variant
    with tempfile.TemporaryDirectory(prefix=".trtapps-build-", dir=_workdir(onnx_out)) as tmp:
        fixed = Path(tmp) / f"{source.stem}.fixed.onnx"
        try:
            fix = fix_model(
                source, fixed, batch=min(max_batch, PROOF_BATCH_MAX),
                keep_static=not dynamic and not report.dynamic_batch, images=images,
            )
        except FixError as exc:
            raise ModelError(f"build {source.name}: {exc}") from None
        fix_summary = {
            "dynamic_batch": fix.dynamic,
            "changes": len(fix.changes),
            "nodes": [fix.nodes_before, fix.nodes_after],
            "proof": {"batches": fix.verification.batches,
                      "max_abs_diff": {o.name: o.max_abs_diff for o in fix.verification.outputs}},
        }
        if not fix.dynamic and max_batch > 1:
            raise ModelError(f"build {source.name}: the model has no batch input to make dynamic; use --max-batch 1")
        try:
            precision_lines = _apply_precision(
                fixed, onnx_out, precision, options=options, calib=calib, max_batch=max_batch, source=source,
                check={s: report.count(s) for s in ("error", "warning", "info")}, fix=fix_summary,
            )
        except (ConfigError, ModelError) as exc:  # say it of the user's model and options, not the working copy
            text = str(exc).replace(str(fixed), str(source)).replace("<config>: app.type", "--app")
            raise type(exc)(text.replace("<config>: app.", "app option ")) from None
    result = BuildResult(
        source=source, onnx=onnx_out, engine=engine_path, backend=backend, precision=precision,
        max_batch=max_batch, check={s: report.count(s) for s in ("error", "warning", "info")}, fix=fix_summary,
        precision_lines=precision_lines,
    )
    if engine_path is not None:
        result.engine_note = _build_engine(onnx_out, engine_path, max_batch=max_batch, input_size=input_size)
    return result


def _workdir(out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    return out.parent


def _apply_precision(
    fixed: Path, out: Path, precision: str, *, options: dict[str, Any], calib: str | Path | None, max_batch: int,
    source: Path, check: dict[str, int], fix: dict[str, Any],
) -> list[str]:
    """The precision step, then the original source and the check/fix summary written into the metadata."""
    import onnx
    from trtapps.onnx.metadata import PREFIX, decode_metadata, file_sha256, tool_versions, write_metadata
    from trtapps.onnx.precision import apply_precision

    meta: dict[str, Any] = {"app": options["type"]}
    if "variant" in options:
        meta["variant"] = options["variant"]
    # the app is bound to the model (ONNX Runtime, CPU): its labels and resolved variant go into the metadata,
    # its preprocessing makes the int8 calibration inputs and the fp16 check inputs
    try:
        report = apply_precision(fixed, out, precision, app=options, calib=calib, metadata=meta,
                                 batch=(1, max_batch))
    except BaseException:
        out.unlink(missing_ok=True)  # never leave a half-made model under the name the user asked for
        raise
    model = onnx.load(str(out))
    tools = decode_metadata({p.key: p.value for p in model.metadata_props}).get(PREFIX + "tools")
    tools = {**(tools if isinstance(tools, dict) else {}), **tool_versions(("onnxslim",))}
    write_metadata(model, {
        PREFIX + "tools": tools,
        PREFIX + "source": source.name,
        PREFIX + "source_sha256": file_sha256(source),
        PREPARATION_KEY: {"check": check, "fix": fix},
    })
    onnx.save(model, str(out))
    return report.lines()


# -- TensorRT --------------------------------------------------------------------------------------------------
def _require_tensorrt() -> None:
    from trtapps.runners.tensorrt import available

    reason = available()
    if reason is not None:
        raise BackendUnavailableError(f"--backend tensorrt: {reason}; or build for --backend onnxruntime")


def _build_engine(onnx_path: Path, engine_path: Path, *, max_batch: int, input_size: tuple[int, int] | None) -> str:
    """Build (or take from the cache) the engine of *onnx_path* and write it to *engine_path* with its side file."""
    from trtapps.engine.build import load_or_build, make_logger
    from trtapps.engine.cache import BuildOptions, EngineCache, atomic_write
    from trtapps.gpu.device import gpu_info, select_device

    select_device(0)
    errors: deque[str] = deque(maxlen=20)
    logger = make_logger(errors)
    options = BuildOptions(max_batch=max_batch, input_size=input_size)
    plan, meta, built = load_or_build(onnx_path, options, cache=EngineCache(), logger=logger, errors=errors,
                                      gpu=gpu_info(0))
    atomic_write(engine_path, plan)
    atomic_write(engine_path.with_suffix(".json"), meta.to_json().encode())
    return (f"{'built' if built else 'from the engine cache'}: TensorRT {meta.tensorrt_version} on {meta.gpu_name} "
            f"(sm {meta.compute_capability}), precision {meta.precision}, key {meta.key[:12]}")


# -- info ------------------------------------------------------------------------------------------------------
@dataclass
class ModelInfo:
    """What ``trtapps info`` shows about an ONNX model or a TensorRT engine."""

    path: str
    kind: str
    inputs: list[dict[str, Any]]
    outputs: list[dict[str, Any]]
    precision: str
    batch: dict[str, Any]
    app: str | None
    variant: str | None
    labels: list[str]
    build: dict[str, Any]
    metadata: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"schema": "trtapps.info/1", **self.__dict__}


def model_info(path: str | Path) -> ModelInfo:
    """Describe an ONNX model (its ``metadata_props``) or a TensorRT engine (its metadata side file).

    Raises:
        ModelError: missing file, not ONNX, or an engine without a readable side file.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: file not found; check the path")
    engine = path.suffix.lower() in ENGINE_SUFFIXES
    if path.stat().st_size == 0:  # protobuf reads 0 bytes as a valid, empty model
        fix = "build the engine again" if engine else "export the model again"
        raise ModelError(f"{path}: the file is empty; {fix}")
    if engine or (path.suffix == ".json" and _is_engine_meta(path)):
        return _engine_info(path)
    return _onnx_info(path)


def _is_engine_meta(path: Path) -> bool:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and "engine_sha256" in data


def _onnx_info(path: Path) -> ModelInfo:
    import onnx
    from trtapps.onnx.graph import elem_type_name, tensor_dims
    from trtapps.onnx.metadata import decode_metadata

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        raise ModelError(f"{path}: not a readable ONNX model ({exc}); export it again") from exc
    metadata = decode_metadata({p.key: p.value for p in model.metadata_props})
    inits = {i.name for i in model.graph.initializer}

    def tensors(values: Any) -> list[dict[str, Any]]:
        return [{"name": v.name, "dtype": elem_type_name(v.type.tensor_type.elem_type), "shape": tensor_dims(v)}
                for v in values if v.name not in inits]

    inputs, outputs = tensors(model.graph.input), tensors(model.graph.output)
    precision = metadata.get("trtapps.precision") or _graph_precision(model)
    batch = metadata.get("trtapps.batch")
    if not isinstance(batch, dict):
        first = inputs[0]["shape"][0] if inputs and inputs[0]["shape"] else None
        batch = {"min": 1, "max": None} if isinstance(first, str) or first is None else {"min": first, "max": first}
        batch["from"] = "input shape"
    else:
        batch = {**batch, "from": "trtapps.batch"}
    return ModelInfo(
        path=str(path), kind="onnx", inputs=inputs, outputs=outputs, precision=str(precision), batch=batch,
        app=_opt_str(metadata.get("trtapps.app")), variant=_opt_str(metadata.get("trtapps.variant")),
        labels=_labels(metadata), build=_build_fields(metadata), metadata=metadata,
    )


def _engine_info(path: Path) -> ModelInfo:
    from trtapps.engine.cache import EngineMetadata
    from trtapps.onnx.metadata import decode_metadata

    side = path if path.suffix == ".json" else path.with_suffix(".json")
    if not side.is_file():
        raise ModelError(
            f"{path}: no metadata side file {side.name}; engines built by trtapps have one (trtapps build "
            "--backend tensorrt, or the engine cache's <key>.json)"
        )
    try:
        meta = EngineMetadata.from_json(side.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ModelError(f"{side}: unreadable engine metadata ({exc})") from exc
    metadata = decode_metadata(meta.onnx_metadata)

    def tensors(values: Any) -> list[dict[str, Any]]:
        return [{"name": t.name, "dtype": t.dtype, "shape": [d if d >= 0 else "dynamic" for d in t.shape],
                 **({"profile": t.profile} if t.profile else {})} for t in values]

    batch = {"min": 1, "max": meta.build_options.get("max_batch"), "from": "engine profile"}
    build = _build_fields(metadata)
    build.update({
        "tensorrt": meta.tensorrt_version, "gpu": meta.gpu_name, "compute_capability": meta.compute_capability,
        "build_options": meta.build_options, "engine_sha256": meta.engine_sha256, "engine_bytes": meta.engine_bytes,
        "onnx_sha256": meta.onnx_sha256, "built": meta.created, "build_seconds": meta.build_seconds,
        "cache_key": meta.key, "engine_precision": meta.precision,
    })
    return ModelInfo(
        path=str(path), kind="tensorrt", inputs=tensors(meta.inputs), outputs=tensors(meta.outputs),
        precision=str(metadata.get("trtapps.precision") or meta.precision), batch=batch,
        app=_opt_str(metadata.get("trtapps.app")), variant=_opt_str(metadata.get("trtapps.variant")),
        labels=_labels(metadata), build=build, metadata=metadata,
    )


def _graph_precision(model: Any) -> str:
    import onnx

    if any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in model.graph.node):
        return "int8 (Q/DQ)"
    types = {i.data_type for i in model.graph.initializer}
    if onnx.TensorProto.FLOAT16 in types:
        return "fp16"
    if onnx.TensorProto.FLOAT in types:
        return "fp32"
    return "unknown"


def _labels(metadata: dict[str, Any]) -> list[str]:
    labels = metadata.get("trtapps.labels")
    if isinstance(labels, list):
        return [str(x) for x in labels]
    names = metadata.get("names")  # Ultralytics: a Python dict literal {0: 'person', …}
    if isinstance(names, str):
        try:
            parsed = ast.literal_eval(names)
        except (ValueError, SyntaxError):
            return []
        if isinstance(parsed, dict):
            return [str(parsed[k]) for k in sorted(parsed)]
        if isinstance(parsed, list):
            return [str(x) for x in parsed]
    return []


def _build_fields(metadata: dict[str, Any]) -> dict[str, Any]:
    """The trtapps keys ``trtapps info`` lists one per line: all but those of its summary line."""
    from trtapps.onnx.metadata import PREFIX, TRTAPPS_KEYS

    return {k: metadata[PREFIX + k] for k in TRTAPPS_KEYS if k not in SUMMARY_KEYS and PREFIX + k in metadata}


def _opt_str(value: Any) -> str | None:
    return str(value) if value is not None else None


__all__ = ["BACKENDS", "BuildResult", "ModelInfo", "build_model", "default_output", "model_info"]
