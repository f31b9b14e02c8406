"""Precision decided in the ONNX graph: fp16 (float16 weights and compute) and int8 (explicit Q/DQ quantization).

TensorRT 10 deprecated and TensorRT 11 removed the FP16/INT8 builder flags: a strongly typed network takes
its precision from the ONNX graph. Preparing the graph once therefore serves every backend: ONNX Runtime (CPU
and CUDA) runs the same fp16/int8 file that TensorRT builds.

**fp16** uses ONNX Runtime's bundled converter (``onnxruntime.transformers.float16``, a maintained descendant of
onnxconverter-common's, with no extra dependency). Graph inputs and outputs stay float32 unless asked
(``keep_io_types=False``), so apps feed the same tensors. Nodes stay float32 where half precision is known to
hurt (see :func:`fp16_block_list`):

* the *post-processing tail*: every node after the last weighted layer (Conv/Gemm/MatMul) on the way to the
  outputs. In detection heads that is box decoding in input pixels (anchor + distance × stride up to 640, where
  float16 has a step of 0.5 px) and the final score activations; it is a handful of cheap element-wise ops;
* ops whose float16 result overflows or loses too much: ``Exp``, ``Log``, ``Pow``, ``Sqrt``, ``Reciprocal``,
  ``Softmax`` (YOLOv8's DFL, RetinaFace's class scores), the ``Reduce*`` family;
* nodes reading constants beyond float16's range (|x| > 65504), which the converter would clamp.

**int8** is explicit quantization in QDQ format (QuantizeLinear/DequantizeLinear pairs) made by ONNX Runtime's
static quantization, placed the way TensorRT wants it: int8 activations and weights, symmetric (zero point 0),
per-channel weights, biases left in float (TensorRT has no int32 bias Q/DQ), and Q/DQ on the *inputs* of
weighted layers only (:data:`INT8_OPS`; TensorRT fuses the activation and the next layer's quantization into
the layer). ONNX Runtime's default also quantizes each layer's output, which rounds the pre-activation a second
time; on YOLOv8n that alone cost 0.01 mAP. The activation ranges come from real images fed through the app's
own ``preprocess`` (:mod:`trtapps.onnx.calibration`), collected one batch at a time (histograms merge, so memory
stays flat for any set size and native-size apps calibrate on images of different sizes) with entropy
(default), percentile or min-max calibration. Two groups of layers stay float by default, each chosen by
measurement (``benchmarks/results/accuracy.md``): the head's last layers (:func:`head_layers`: the convs making
box distances, class logits and landmarks, and YOLOv8's DFL) and the narrow first layers (:func:`stem_layers`).

NVIDIA ModelOpt (``modelopt.onnx.quantization``) was tried first. It runs on the CPU, but its ``[onnx]`` extra
replaces ``onnxruntime`` with ``onnxruntime-gpu``, downgrades ``onnx`` and pulls CUDA PyTorch and a CuPy for
another CUDA major, so it is not a dependency; ``benchmarks/precision_accuracy.py --modelopt`` compares it when
it is importable.

Example::

    from trtapps.onnx.precision import apply_precision

    report = apply_precision("yolov8n.onnx", "yolov8n_fp16.onnx", "fp16")
    report = apply_precision(
        "yolov8n.onnx", "yolov8n_int8.onnx", "int8", app={"type": "yolo"}, calib="calib_images/"
    )
    print("\\n".join(report.lines()))
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from trtapps.errors import ConfigError, ModelError
from trtapps.onnx.calibration import (
    DEFAULT_CALIB_SIZE,
    CalibrationSet,
    app_attribute,
    bind_app,
    calibration_images,
    describe_app,
    preprocessed_batches,
)
from trtapps.onnx.graph import drop_repeated_nodes, name_nodes, name_problems, sort_nodes
from trtapps.onnx.metadata import tool_versions, trtapps_metadata, write_metadata
from trtapps.paths import unreadable

log = logging.getLogger("trtapps.onnx.precision")

#: the precisions :func:`apply_precision` makes
PRECISIONS = ("fp32", "fp16", "int8")
#: calibration methods for int8 (ONNX Runtime's names, lower case)
CALIB_METHODS = ("entropy", "percentile", "minmax")
#: layers with weights: the boundary of the post-processing tail, and what int8 quantizes
WEIGHTED_OPS = frozenset({"Conv", "ConvTranspose", "Gemm", "MatMul"})
#: op types kept float32 in fp16 models (on top of ONNX Runtime's own block list)
FP16_FRAGILE_OPS = (
    "Exp",
    "Log",
    "Pow",
    "Sqrt",
    "Reciprocal",
    "Softmax",
    "LogSoftmax",
    "ReduceMean",
    "ReduceSum",
    "ReduceSumSquare",
    "ReduceL1",
    "ReduceL2",
    "ReduceLogSum",
    "ReduceLogSumExp",
    "ReduceProd",
)
#: op types whose inputs int8 quantizes: TensorRT's rule (quantize the inputs of weighted layers, it fuses the
#: activation and the next Q into the layer); Q/DQ around element-wise ops only adds rounding
INT8_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")
#: int8: the oldest opset with per-channel DequantizeLinear; older graphs are converted first
INT8_MIN_OPSET = 13
#: int8: the leading weighted layers reading at most this many channels stay float (:func:`stem_layers`)
STEM_CHANNELS = 16
#: largest finite float16
FP16_MAX = 65504.0


@dataclass
class OutputCheck:
    """How far one output of the converted model is from the fp32 model's, on the same inputs.

    Attributes:
        name: the output.
        max_abs: largest absolute difference.
        mean_abs: mean absolute difference.
        ref_absmax: largest absolute value of the fp32 output (the scale the differences compare to).
    """

    name: str
    max_abs: float
    mean_abs: float
    ref_absmax: float


@dataclass
class PrecisionReport:
    """What :func:`apply_precision` did.

    Attributes:
        precision: ``fp32``, ``fp16`` or ``int8``.
        source, output: the fp32 model read and the model written.
        tool: the converter used.
        nodes: node count of the source graph.
        kept_fp32: node name → why it stays float32 (fp16: the block list; int8: nodes left unquantized on
            purpose).
        quantized: names of the nodes whose inputs got Q/DQ (int8).
        qdq_pairs: QuantizeLinear → DequantizeLinear pairs in the output (int8).
        calibration: how the int8 ranges were calibrated (images, method, the app that preprocessed them).
        check: output differences against the fp32 model on sample inputs (empty when no input was available).
        check_inputs: what the check ran on.
        keep_io_types: graph inputs/outputs left float32.
        tools: versions of the tools involved.
        notes: other changes made to the graph (e.g. an opset upgrade).
        seconds: wall time.
    """

    precision: str
    source: Path
    output: Path
    tool: str
    nodes: int
    kept_fp32: dict[str, str] = field(default_factory=dict)
    quantized: list[str] = field(default_factory=list)
    qdq_pairs: int = 0
    calibration: dict[str, Any] | None = None
    check: list[OutputCheck] = field(default_factory=list)
    check_inputs: str = ""
    keep_io_types: bool = True
    tools: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> dict[str, Any]:
        """The short form stored in the model metadata (``trtapps.precision_report``)."""
        reasons: dict[str, int] = {}
        for why in self.kept_fp32.values():
            reasons[why] = reasons.get(why, 0) + 1
        out: dict[str, Any] = {"tool": self.tool, "nodes": self.nodes, "kept_fp32": reasons}
        if self.precision == "int8":
            out["quantized_nodes"] = len(self.quantized)
            out["qdq_pairs"] = self.qdq_pairs
        out["keep_io_types"] = self.keep_io_types
        if self.notes:
            out["notes"] = list(self.notes)
        return out

    def to_json(self) -> dict[str, Any]:
        """Everything, JSON-able."""
        data = asdict(self)
        data["source"] = str(self.source)
        data["output"] = str(self.output)
        return data

    def lines(self) -> list[str]:
        """Human-readable lines for the CLI."""
        lines = [f"{self.precision}: {self.source.name} → {self.output} ({self.tool}, {self.seconds:.1f} s)"]
        lines.extend(f"  {note}" for note in self.notes)
        if self.precision == "int8":
            lines.append(f"  Q/DQ in front of {len(self.quantized)} layers ({self.qdq_pairs} Q/DQ pairs)")
        if self.kept_fp32:
            reasons: dict[str, list[str]] = {}
            for name, why in self.kept_fp32.items():
                reasons.setdefault(why, []).append(name)
            for why, names in reasons.items():
                shown = ", ".join(names[:4]) + (f", … ({len(names)} nodes)" if len(names) > 4 else "")
                lines.append(f"  kept float32 ({why}): {shown}")
        if self.calibration:
            c = self.calibration
            lines.append(
                f"  calibrated on {c.get('images')} images of {c.get('folder')} ({c.get('method')}), "
                f"preprocessed by {c.get('preprocess', {}).get('app', '?')}"
            )
        lines.extend(
            f"  vs fp32 on {self.check_inputs}: {chk.name} max |Δ| {chk.max_abs:.4g}, mean |Δ| "
            f"{chk.mean_abs:.4g} (fp32 max |x| {chk.ref_absmax:.4g})"
            for chk in self.check
        )
        if not self.check:
            lines.append("  outputs not compared with fp32 (no sample input: give the app and calibration images)")
        return lines


# -- the entry point -----------------------------------------------------------------------------------------------
def apply_precision(
    model_path: str | Path,
    out_path: str | Path,
    precision: str,
    *,
    app: Any = None,
    calib: str | Path | CalibrationSet | None = None,
    calib_size: int = DEFAULT_CALIB_SIZE,
    calib_exclude: Iterable[str | Path] = (),
    calib_method: str = "entropy",
    percentile: float = 99.999,
    calib_batch: int = 1,
    calib_cache: str | Path | None = None,
    keep_io_types: bool = True,
    fp32_nodes: Sequence[str] = (),
    fp32_ops: Sequence[str] | None = None,
    tail_fp32: bool = True,
    int8_ops: Sequence[str] = INT8_OPS,
    head_fp32: bool = True,
    stem_fp32: bool = True,
    quantize_outputs: bool = False,
    check_images: int = 2,
    metadata: Mapping[str, Any] | None = None,
    batch: tuple[int, int] | None = None,
) -> PrecisionReport:
    """Write *model_path* (an fp32 ONNX model) at *precision* to *out_path*, with trtapps metadata.

    Args:
        model_path: the fp32 model.
        out_path: where the converted model goes (its folder is created).
        precision: ``fp32`` (a copy with metadata), ``fp16`` or ``int8``.
        app: the app whose ``preprocess`` makes calibration and check inputs: a bound :class:`~trtapps.stages.App`
            or app options (``{"type": "yolo", …}``). Required for int8.
        calib: the calibration image folder (or a ready :class:`CalibrationSet`). Required for int8; for fp16 its
            first *check_images* images compare the outputs with fp32.
        calib_size: most calibration images (an evenly spaced selection above it).
        calib_exclude: image names never used for calibration (keep it disjoint from an evaluation set).
        calib_method: ``entropy``, ``percentile`` or ``minmax``.
        percentile: the percentile of ``percentile`` calibration.
        calib_batch: frames per calibration run (frames of different ``batch_key`` never share one).
        calib_cache: a JSON file of calibrated ranges: reused when it exists and matches the method, written
            otherwise (lets several int8 variants share one calibration).
        keep_io_types: keep graph inputs/outputs float32 (fp16).
        fp32_nodes: more node names to keep float32 (fp16) or unquantized (int8).
        fp32_ops: op types kept float32 in fp16 (default :data:`FP16_FRAGILE_OPS`).
        tail_fp32: fp16 only: keep the post-processing tail after the last weighted layer float32.
        int8_ops: op types whose inputs get Q/DQ (default :data:`INT8_OPS`).
        head_fp32: int8 only: leave the last weighted layers before the outputs unquantized (:func:`head_layers`).
        stem_fp32: int8 only: leave the narrow first layers unquantized (:func:`stem_layers`).
        quantize_outputs: int8 only: also put Q/DQ on the outputs of the weighted layers (ONNX Runtime's default;
            off because it rounds the pre-activation and blocks TensorRT's activation fusion; kept for
            measurements).
        check_images: calibration images used to compare the outputs with the fp32 model (0: no check).
        metadata: extra ``trtapps.*`` fields for :func:`~trtapps.onnx.metadata.trtapps_metadata` (``app``,
            ``variant``, ``labels``); the app's own are filled in when an app is given.
        batch: the ``(min, max)`` batch the model is prepared for, stored in the metadata.

    Raises:
        ConfigError: unknown precision or calibration method, int8 without app or images.
        ModelError: the source is not an fp32 ONNX model, or the converted model does not load.
        InputError: the calibration folder is missing or empty.
    """
    import onnx

    start = time.perf_counter()
    if precision not in PRECISIONS:
        raise ConfigError(f"--precision {precision}: unknown precision; use one of {', '.join(PRECISIONS)}")
    if calib_method not in CALIB_METHODS:
        raise ConfigError(f"calibration method {calib_method!r}: use one of {', '.join(CALIB_METHODS)}")
    source = Path(model_path)
    out = Path(out_path)
    if out.resolve() == source.resolve():
        raise ConfigError(f"{out}: the output would overwrite the source model; choose another output path")
    _check_fp32_source(source)
    if precision == "int8" and (app is None or calib is None):
        missing = " and ".join(x for x, v in (("--app", app), ("--calib DIR", calib)) if v is None)
        raise ConfigError(
            f"--precision int8: needs {missing}: calibration runs real images through the app's preprocessing"
        )
    images: CalibrationSet | None
    if calib is None or isinstance(calib, CalibrationSet):
        images = calib
    else:
        images = calibration_images(calib, limit=calib_size, exclude=calib_exclude)

    bound, close = bind_app(app, source) if app is not None else (None, lambda: None)
    try:
        model = onnx.load(str(source))
        report = PrecisionReport(
            precision=precision,
            source=source,
            output=out,
            tool="copy",
            nodes=len(model.graph.node),
            keep_io_types=keep_io_types,
            tools=tool_versions(),
        )
        out.parent.mkdir(parents=True, exist_ok=True)
        if precision == "fp16":
            converted = to_fp16(
                model, keep_io_types=keep_io_types, fp32_nodes=fp32_nodes, fp32_ops=fp32_ops, tail_fp32=tail_fp32
            )
            report.kept_fp32 = converted.kept_fp32
            report.tool = "onnxruntime.transformers.float16"
            model = converted.model
        elif precision == "int8":
            if bound is None or images is None:  # checked above; narrows the types
                raise ConfigError("--precision int8: needs --app and --calib DIR")
            model = _to_int8(
                source,
                report,
                bound,
                images,
                method=calib_method,
                percentile=percentile,
                calib_batch=calib_batch,
                calib_cache=Path(calib_cache) if calib_cache is not None else None,
                fp32_nodes=fp32_nodes,
                int8_ops=int8_ops,
                head_fp32=head_fp32,
                stem_fp32=stem_fp32,
                quantize_outputs=quantize_outputs,
            )
        pinned = pin_output_dims(source, model)
        if pinned:
            report.notes.append(f"output dims kept from the fp32 model: {', '.join(pinned)}")
        fields = dict(metadata or {})
        if bound is not None:
            fields.setdefault("labels", list(bound.labels))
            variant = app_attribute(bound, "variant")
            if isinstance(variant, str):
                fields.setdefault("variant", variant)
        write_metadata(
            model,
            trtapps_metadata(
                precision=precision,
                source=source,
                batch=batch,
                calibration=report.calibration,
                report=report.summary() if precision != "fp32" else None,
                tools=report.tools,
                **fields,
            ),
        )
        _check_names(model, out)
        onnx.save(model, str(out))
        if check_images and images is not None and bound is not None and precision != "fp32":
            feeds = list(preprocessed_batches(bound, images.images[:check_images], batch=1))
            report.check = compare_outputs(source, out, feeds)
            report.check_inputs = f"{len(feeds)} calibration image(s)"
    finally:
        close()
    _load_check(out)
    report.seconds = time.perf_counter() - start
    return report


def pin_output_dims(source: Path, model: Any) -> list[str]:
    """Give *model*'s graph outputs the fixed sizes ONNX Runtime resolves for the fp32 *source*'s outputs.

    Apps read output widths from the runner (e.g. RetinaFace's ``conf`` is ``[B, N, 2]``). ONNX Runtime finds
    them for the fp32 graph, but after the Q/DQ or cast rewrite its shape inference can lose one that came
    through a ``Shape → Gather → Concat → Reshape`` chain. The computation is the same, so the sizes are copied
    back. Returns the outputs changed, as ``name[axis]=size``.
    """
    from trtapps.runners.onnxruntime import load_session

    resolved = {o.name: o.shape for o in load_session(source, ["CPUExecutionProvider"]).get_outputs()}
    changed: list[str] = []
    for output in model.graph.output:
        want = resolved.get(output.name)
        dims = output.type.tensor_type.shape.dim
        if want is None or len(want) != len(dims):
            continue
        for axis, (dim, size) in enumerate(zip(dims, want)):
            if isinstance(size, int) and size > 0 and not dim.HasField("dim_value"):
                dim.dim_value = size
                changed.append(f"{output.name}[{axis}]={size}")
    return changed


def _check_fp32_source(source: Path) -> None:
    """Refuse a source that is not an fp32 ONNX graph (converting twice compounds the rounding)."""
    from trtapps.evaluation.inference import model_precision

    if why := unreadable(source):
        raise ModelError(f"{source}: model file {why}; check the path")
    actual = model_precision(source)
    if actual is None:
        raise ModelError(f"{source}: not an ONNX file; precision is applied to the ONNX model before engine builds")
    if actual != "fp32":
        raise ModelError(f"{source}: already an {actual} model; give the fp32 model to convert")


def _check_names(model: Any, out: Path) -> None:
    """Every node gets a unique name, and no tensor is written twice, or the model is not written.

    ONNX Runtime refuses a graph with two nodes of one name, and ``onnx.checker`` does not look; the fp16
    converter of some ONNX Runtime releases wrote such graphs (:func:`~trtapps.onnx.graph.drop_repeated_nodes`).
    """
    name_nodes(model.graph)
    problems = name_problems(model.graph)
    if problems:
        shown = "; ".join(problems[:3]) + (f"; … ({len(problems)} problems)" if len(problems) > 3 else "")
        raise ModelError(f"{out}: the converted graph is invalid ({shown}); not written")


def _load_check(path: Path) -> None:
    """The converted model must load in ONNX Runtime (CPU), or it is not written."""
    from trtapps.runners.onnxruntime import load_session

    try:
        load_session(path, ["CPUExecutionProvider"])
    except ModelError as exc:
        path.unlink(missing_ok=True)
        raise ModelError(f"{path}: the converted model does not load in ONNX Runtime ({exc}); not written") from None


# -- graph helpers -------------------------------------------------------------------------------------------------
def _consumers(graph: Any) -> dict[str, list[Any]]:
    users: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            if name:
                users.setdefault(name, []).append(node)
    return users


def tail_nodes(graph: Any) -> list[str]:
    """Nodes after the last weighted layer: no Conv/Gemm/MatMul is reachable from them, and one is upstream.

    In a detector that is the decode of the head (reshapes, box arithmetic, score activations, concats); nodes
    that only compute shapes or constants (nothing weighted upstream) are not counted.
    """
    users = _consumers(graph)
    reaches_weighted: dict[str, bool] = {}
    order = list(graph.node)
    for node in reversed(order):  # ONNX node lists are topologically sorted
        downstream = [u for out in node.output for u in users.get(out, [])]
        reaches_weighted[node.name] = any(u.op_type in WEIGHTED_OPS or reaches_weighted.get(u.name) for u in downstream)
    after_weighted: set[str] = set()
    producer = {out: node for node in order for out in node.output}
    for node in order:
        ups = [producer[i] for i in node.input if i in producer]
        if any(u.op_type in WEIGHTED_OPS or u.name in after_weighted for u in ups):
            after_weighted.add(node.name)
    return [
        n.name
        for n in order
        if n.name in after_weighted and not reaches_weighted[n.name] and n.op_type not in WEIGHTED_OPS
    ]


def head_layers(graph: Any) -> list[str]:
    """The detection head's last weighted layers, the ones int8 leaves in float by default.

    These are the Conv/Gemm/MatMul nodes from which no other weighted layer is reachable, plus, when such a
    layer is a *decode* layer, the weighted layers feeding it. A decode layer reads a ``Softmax`` through
    shape-only ops with no weighted layer between: YOLOv8/11's DFL conv, whose fixed weights 0…15 turn the
    softmax over 16 distance bins into its expectation. The box-distance conv before it is then the real
    last layer of the box branch.
    """
    nodes = list(graph.node)
    users = _consumers(graph)
    producer = {out: node for node in nodes for out in node.output}
    reaches: dict[str, bool] = {}
    for node in reversed(nodes):
        downstream = [u for out in node.output for u in users.get(out, [])]
        reaches[node.name] = any(u.op_type in WEIGHTED_OPS or reaches.get(u.name) for u in downstream)
    last = [n for n in nodes if n.op_type in WEIGHTED_OPS and not reaches[n.name]]
    head = [n.name for n in last]
    for node in last:
        found_softmax, feeding = _upstream_weighted(node, producer)
        if found_softmax:
            head.extend(name for name in feeding if name not in head)
    order = {n.name: i for i, n in enumerate(nodes)}
    return sorted(head, key=order.__getitem__)


def stem_layers(graph: Any, max_channels: int = STEM_CHANNELS) -> list[str]:
    """The narrow first layers: the leading run of weighted layers (in graph order) whose input has at most
    *max_channels* channels, the image-input conv included.

    These are where int8 costs most in small detectors: an output of a layer this narrow sums few products
    (a depthwise 3×3 over 8 channels sums 9), so rounding noise does not average out, and it is then carried
    through the whole network. On RetinaFace mobilenet0.25 (5 such layers) quantizing them costs about one more
    WIDER AP point (``benchmarks/results/accuracy.md``). They hold few weights; at full resolution their share of
    the compute is larger, the price paid for accuracy.
    """
    weights = {init.name: init for init in graph.initializer}
    stem: list[str] = []
    for node in graph.node:
        if node.op_type not in WEIGHTED_OPS:
            continue
        channels = _input_channels(node, weights)
        if channels is None or channels > max_channels:
            break
        stem.append(node.name)
    return stem


def _input_channels(node: Any, weights: dict[str, Any]) -> int | None:
    """Input channels of a Conv (``weight.shape[1] × group``) or the K of a Gemm/MatMul with a constant weight."""
    if len(node.input) < 2 or node.input[1] not in weights:
        return None
    dims = list(weights[node.input[1]].dims)
    if node.op_type in ("Conv", "ConvTranspose") and len(dims) >= 2:
        group = next((a.i for a in node.attribute if a.name == "group"), 1)
        return int(dims[0 if node.op_type == "ConvTranspose" else 1] * group)
    if node.op_type == "Gemm":
        trans_b = next((a.i for a in node.attribute if a.name == "transB"), 0)
        return int(dims[1] if trans_b else dims[0])
    return int(dims[0]) if dims else None


def _upstream_weighted(node: Any, producer: dict[str, Any]) -> tuple[bool, list[str]]:
    """Walk up from *node*'s data input to the nearest weighted layers: ``(passed a Softmax, their names)``."""
    softmax = False
    found: list[str] = []
    stack = [node.input[0]] if node.input else []
    seen: set[str] = set()
    while stack:
        tensor = stack.pop()
        up = producer.get(tensor)
        if up is None or up.name in seen:
            continue
        seen.add(up.name)
        if up.op_type in WEIGHTED_OPS:
            found.append(up.name)
            continue
        if up.op_type == "Shape":  # shape arithmetic: not where the data comes from
            continue
        softmax = softmax or up.op_type == "Softmax"
        stack.extend(i for i in up.input if i)
    return softmax, found


def _float_constants(graph: Any) -> dict[str, np.ndarray]:
    """Float constants by tensor name: initializers and ``Constant`` node values."""
    from onnx import TensorProto, numpy_helper

    values: dict[str, np.ndarray] = {}
    for init in graph.initializer:
        if init.data_type in (TensorProto.FLOAT, TensorProto.DOUBLE):
            values[init.name] = numpy_helper.to_array(init)
    for node in graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value" and attr.t.data_type in (TensorProto.FLOAT, TensorProto.DOUBLE):
                    values[node.output[0]] = numpy_helper.to_array(attr.t)
    return values


def fp16_block_list(graph: Any, fp32_ops: Sequence[str] | None = None, tail: bool = True) -> dict[str, str]:
    """Node name → reason, for the nodes an fp16 conversion keeps in float32 (see the module docstring).

    Args:
        graph: the fp32 graph (nodes named, see :func:`name_nodes`).
        fp32_ops: op types kept float32 (default :data:`FP16_FRAGILE_OPS`).
        tail: keep the post-processing tail float32.
    """
    ops = set(FP16_FRAGILE_OPS if fp32_ops is None else fp32_ops)
    blocked: dict[str, str] = {}
    for name in tail_nodes(graph) if tail else []:
        blocked[name] = "post-processing tail after the last weighted layer"
    for node in graph.node:
        if node.op_type in ops and node.name not in blocked:
            blocked[node.name] = f"{node.op_type}: fragile in float16"
    constants = _float_constants(graph)
    users = _consumers(graph)
    for tensor, value in constants.items():
        finite = value[np.isfinite(value)]
        if finite.size and float(np.abs(finite).max()) > FP16_MAX:
            for node in users.get(tensor, []):
                blocked.setdefault(node.name, "reads a constant beyond the float16 range")
    # Constant nodes feeding only float32 nodes stay float32 too (no float16 round trip of e.g. anchor grids)
    for node in graph.node:
        if node.op_type == "Constant" and node.name not in blocked:
            readers = [u for out in node.output for u in users.get(out, [])]
            if readers and all(u.name in blocked for u in readers):
                blocked[node.name] = "constant read only by float32 nodes"
    return blocked


@dataclass
class Fp16Model:
    """An fp16-converted model and the nodes kept in float32 (name → reason)."""

    model: Any
    kept_fp32: dict[str, str]


def to_fp16(
    model: Any,
    *,
    keep_io_types: bool = True,
    fp32_nodes: Sequence[str] = (),
    fp32_ops: Sequence[str] | None = None,
    tail_fp32: bool = True,
) -> Fp16Model:
    """Convert an fp32 ``onnx.ModelProto`` to fp16 with ONNX Runtime's converter and trtapps' block list.

    Raises:
        ModelError: the converter failed (the message names the model's first problem).
    """
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16

    name_nodes(model.graph)
    blocked = fp16_block_list(model.graph, fp32_ops, tail=tail_fp32)
    known = {n.name for n in model.graph.node}
    for name in fp32_nodes:
        if name not in known:
            raise ConfigError(f"fp32 node {name!r}: no node of that name in the model")
        blocked.setdefault(name, "asked")
    for node in model.graph.node:
        if node.op_type in DEFAULT_OP_BLOCK_LIST:
            blocked.setdefault(node.name, f"{node.op_type}: no float16 kernel (ONNX Runtime's block list)")
    try:
        converted = convert_float_to_float16(
            model,
            keep_io_types=keep_io_types,
            node_block_list=list(blocked),
            op_block_list=list(DEFAULT_OP_BLOCK_LIST),
        )
    except Exception as exc:
        raise ModelError(f"fp16 conversion failed: {type(exc).__name__}: {exc}") from exc
    # the converter of ONNX Runtime 1.30 and 1.31 inserts one Cast per float32 reader of a float16 tensor, each
    # named after the tensor (1.32 shares one): identical nodes of one name writing one tensor, which ONNX Runtime
    # refuses to load ("two nodes with same node name")
    repeated = drop_repeated_nodes(converted.graph)
    if repeated:
        log.debug("fp16: removed %d repeated nodes written by the converter: %s", len(repeated), repeated)
    sort_nodes(converted.graph)
    return Fp16Model(converted, blocked)


# -- int8 ----------------------------------------------------------------------------------------------------------
class _FeedReader:
    """An ONNX Runtime ``CalibrationDataReader`` over a list of feeds."""

    def __init__(self, feeds: Sequence[Mapping[str, np.ndarray]]) -> None:
        self._feeds = iter(feeds)

    def get_next(self) -> Mapping[str, np.ndarray] | None:
        return next(self._feeds, None)

    def __iter__(self) -> _FeedReader:
        return self

    def __next__(self) -> Mapping[str, np.ndarray]:
        item = self.get_next()
        if item is None:
            raise StopIteration
        return item


def _ort_method(method: str) -> Any:
    from onnxruntime.quantization import CalibrationMethod

    return {
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
        "minmax": CalibrationMethod.MinMax,
    }[method]


def calibrate(
    model_path: Path,
    app: Any,
    images: CalibrationSet,
    *,
    method: str = "entropy",
    percentile: float = 99.999,
    batch: int = 1,
    ops: Sequence[str] = INT8_OPS,
    cache: Path | None = None,
) -> tuple[Path, dict[str, Any]]:
    """Activation ranges of *model_path* on *images* (through ``app.preprocess``), saved as an ORT range file.

    The calibrator sees one batch at a time and merges its histograms (or min/max) across batches, so memory
    does not grow with the set and native-size apps can calibrate on images of different sizes.

    Returns:
        ``(range_file, description)``: the JSON ranges (*cache* when given) and the calibration's description.
    """
    from onnxruntime.quantization import create_calibrator, load_tensors_data, save_tensors_data

    description: dict[str, Any] = {
        **images.describe(),
        "method": method,
        **({"percentile": percentile} if method == "percentile" else {}),
        "symmetric": True,
        "preprocess": describe_app(app),
        "ops": list(ops),
    }
    if cache is not None and cache.is_file():
        sidecar = cache.with_suffix(cache.suffix + ".json")
        previous = json.loads(sidecar.read_text()) if sidecar.is_file() else {}
        skipped_before = previous.pop("skipped", [])
        if previous == description and load_tensors_data(cache).calibration_method == _ort_method(method):
            description["skipped"] = skipped_before
            log.info("calibration: reusing %s", cache)
            return cache, description
    skipped: list[tuple[Path, str]] = []
    with tempfile.TemporaryDirectory(prefix="trtapps-calib-") as tmp:
        options: dict[str, Any] = {"symmetric": True}
        if method == "percentile":
            options["percentile"] = percentile
        calibrator = create_calibrator(
            model_path,
            list(ops),
            augmented_model_path=str(Path(tmp) / "augmented.onnx"),
            calibrate_method=_ort_method(method),
            providers=["CPUExecutionProvider"],
            extra_options=options,
        )
        runs = 0
        with contextlib.redirect_stdout(io.StringIO()):  # ONNX Runtime prints a line per collect_data call
            for feed in preprocessed_batches(app, images.images, batch=batch, skipped=skipped):
                calibrator.collect_data(_FeedReader([feed]))
                runs += 1
            if runs == 0:
                raise ConfigError(f"{images.folder}: none of the calibration images could be read")
            ranges = calibrator.compute_data()
        del calibrator
    description["skipped"] = [str(p) for p, _ in skipped]
    target = cache if cache is not None else Path(tempfile.mkstemp(prefix="trtapps-ranges-", suffix=".json")[1])
    save_tensors_data(ranges, target)
    if cache is not None:
        cache.with_suffix(cache.suffix + ".json").write_text(json.dumps(description, indent=1))
    return target, description


class _DropOrtAdvice(logging.Filter):
    """Drops ONNX Runtime's root-logger advice to run its own pre-processing: trtapps quantizes the graph as
    prepared (``onnx fix``), without ORT-specific graph rewrites that TensorRT would then see."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-processing" not in record.getMessage()


def _to_int8(
    source: Path,
    report: PrecisionReport,
    app: Any,
    images: CalibrationSet,
    *,
    method: str,
    percentile: float,
    calib_batch: int,
    calib_cache: Path | None,
    fp32_nodes: Sequence[str],
    int8_ops: Sequence[str],
    head_fp32: bool,
    stem_fp32: bool,
    quantize_outputs: bool,
) -> Any:
    """Calibrate and quantize *source*; fills *report* and returns the quantized ``onnx.ModelProto``."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    import onnx

    original = onnx.load(str(source))
    opset = next((o.version for o in original.opset_import if o.domain in ("", "ai.onnx")), None)
    if opset is not None and opset < INT8_MIN_OPSET:
        # per-channel DequantizeLinear (the axis attribute) exists from opset 13; ONNX Runtime's quantizer would
        # write it into an older graph, which then does not load
        from onnx import version_converter

        try:
            original = version_converter.convert_version(original, INT8_MIN_OPSET)
        except Exception as exc:
            raise ModelError(
                f"{source}: opset {opset} is too old for per-channel int8 and converting it to opset "
                f"{INT8_MIN_OPSET} failed ({type(exc).__name__}: {exc}); export the model with opset >= 13"
            ) from exc
        report.notes.append(f"opset {opset} → {INT8_MIN_OPSET} (per-channel Q/DQ needs opset 13)")
    name_nodes(original.graph)
    known = {n.name for n in original.graph.node}
    excluded: dict[str, str] = {}
    if stem_fp32:
        for name in stem_layers(original.graph):
            excluded[name] = f"narrow first layer (stem, at most {STEM_CHANNELS} input channels)"
    if head_fp32:
        for name in head_layers(original.graph):
            excluded[name] = "last weighted layer before the outputs (detection head)"
    for name in fp32_nodes:
        if name not in known:
            raise ConfigError(f"fp32 node {name!r}: no node of that name in the model")
        excluded.setdefault(name, "asked")
    with tempfile.TemporaryDirectory(prefix="trtapps-int8-") as tmp:
        named = Path(tmp) / "named.onnx"
        onnx.save(original, str(named))
        ranges, description = calibrate(
            named,
            app,
            images,
            method=method,
            percentile=percentile,
            batch=calib_batch,
            ops=int8_ops,
            cache=calib_cache,
        )
        quantized_path = Path(tmp) / "int8.onnx"
        quiet = _DropOrtAdvice()
        logging.getLogger().addFilter(quiet)
        try:
            quantize_static(
                str(named),
                str(quantized_path),
                calibration_data_reader=None,
                quant_format=QuantFormat.QDQ,
                op_types_to_quantize=list(int8_ops),
                per_channel=True,
                activation_type=QuantType.QInt8,
                weight_type=QuantType.QInt8,
                nodes_to_exclude=list(excluded),
                calibrate_method=_ort_method(method),
                calibration_cache_path=str(ranges),
                extra_options={
                    "ActivationSymmetric": True,  # TensorRT: int8 with zero point 0
                    "WeightSymmetric": True,
                    "QuantizeBias": False,  # TensorRT has no int32 bias Q/DQ; the bias stays float
                    # inputs only: a Q/DQ on a layer's output rounds the pre-activation a second time and stops
                    # TensorRT from fusing the activation (SiLU, ReLU) into the layer
                    "OpTypesToExcludeOutputQuantization": [] if quantize_outputs else list(int8_ops),
                },
            )
        finally:
            logging.getLogger().removeFilter(quiet)
            if calib_cache is None:
                ranges.unlink(missing_ok=True)
        model = onnx.load(str(quantized_path))
    report.tool = "onnxruntime.quantization.quantize_static (QDQ)"
    report.kept_fp32 = excluded
    report.calibration = description
    report.quantized = quantized_layers(model.graph)
    report.qdq_pairs = qdq_pairs(model.graph)
    return model


def quantized_layers(graph: Any) -> list[str]:
    """Names of the weighted layers (Conv/Gemm/MatMul) that read a DequantizeLinear output."""
    dq_outputs = {n.output[0] for n in graph.node if n.op_type == "DequantizeLinear"}
    return [n.name for n in graph.node if n.op_type in WEIGHTED_OPS and any(i in dq_outputs for i in n.input)]


def qdq_pairs(graph: Any) -> int:
    """QuantizeLinear nodes whose output feeds a DequantizeLinear (the activation Q/DQ pairs)."""
    q_outputs = {n.output[0] for n in graph.node if n.op_type == "QuantizeLinear"}
    return sum(1 for n in graph.node if n.op_type == "DequantizeLinear" and n.input[0] in q_outputs)


# -- checking --------------------------------------------------------------------------------------------------
def compare_outputs(reference: Path, candidate: Path, feeds: Sequence[Mapping[str, np.ndarray]]) -> list[OutputCheck]:
    """Run both models on ONNX Runtime CPU with *feeds* and measure each output's difference."""
    from trtapps.runners.onnxruntime import load_session

    ref = load_session(reference, ["CPUExecutionProvider"])
    cand = load_session(candidate, ["CPUExecutionProvider"])
    cand_inputs = {i.name: i.type for i in cand.get_inputs()}
    names = [o.name for o in ref.get_outputs()]
    stats: dict[str, list[float]] = {n: [0.0, 0.0, 0.0, 0.0] for n in names}
    for feed in feeds:
        want = ref.run(names, dict(feed))
        cast = {k: (v.astype(np.float16) if cand_inputs.get(k) == "tensor(float16)" else v) for k, v in feed.items()}
        got = cand.run(names, cast)
        for name, a, b in zip(names, want, got):
            diff = np.abs(a.astype(np.float32) - b.astype(np.float32))
            s = stats[name]
            s[0] = max(s[0], float(diff.max()) if diff.size else 0.0)
            s[1] += float(diff.sum())
            s[2] += diff.size
            s[3] = max(s[3], float(np.abs(a).max()) if a.size else 0.0)
    return [OutputCheck(n, s[0], s[1] / max(s[2], 1), s[3]) for n, s in stats.items()]


__all__ = [
    "CALIB_METHODS",
    "FP16_FRAGILE_OPS",
    "INT8_MIN_OPSET",
    "INT8_OPS",
    "PRECISIONS",
    "STEM_CHANNELS",
    "WEIGHTED_OPS",
    "Fp16Model",
    "OutputCheck",
    "PrecisionReport",
    "apply_precision",
    "calibrate",
    "compare_outputs",
    "fp16_block_list",
    "head_layers",
    "name_nodes",
    "pin_output_dims",
    "qdq_pairs",
    "quantized_layers",
    "sort_nodes",
    "stem_layers",
    "tail_nodes",
    "to_fp16",
]
