"""``trtapps onnx check``: the export pitfalls that break a dynamic-batch TensorRT build, found in the graph.

The rules are those of the export guide this project follows, plus what else is known to break TensorRT's
ONNX parser:

* never feed ``tensor.size()``/``shape`` results into computations directly (convert with ``int()``), or
  ``Shape → Gather → Unsqueeze → Concat`` chains end up computing shapes at run time (``shape-chain``);
* upsample with ``scale_factor``, not ``size`` (``resize-sizes``);
* in ``reshape``/``view`` put -1 on the batch axis and compute the others, so that no shape constant holds the
  export batch (``reshape-batch``, and ``batch-baked`` for every other way of freezing it);
* ``dynamic_axes`` on the batch dimension only (``batch-fixed``, ``symbolic-dims``);
* operators TensorRT does not import or runs specially (``unsupported-op``, ``op-restriction``,
  ``data-dependent``, ``control-flow``, ``domain``), the opset (``opset``), types (``double``,
  ``int64-range``), and a model exported in training mode (``training-mode``).

The graph is checked **as given**: nothing is folded or simplified first (``trtapps onnx fix`` does that), so a
chain that a simplifier would hide is still reported. Shapes come from :func:`trtapps.onnx.graph.infer_shapes`
with the batch traced as a symbol, which is how a ``Reshape`` that freezes the batch is told apart from one that
keeps it.

Severities: ``error`` breaks a dynamic-batch TensorRT build or gives wrong results at batch > 1 (the command
exits non-zero); ``warning`` works but goes against the guide or is slow/fragile; ``info`` is worth knowing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from trtapps.errors import ModelError
from trtapps.onnx.graph import (
    BATCH_SYMBOL,
    Dim,
    GraphIndex,
    Shapes,
    default_opset,
    elem_type_name,
    format_dims,
    infer_shapes,
    load_model,
    mentions_batch,
    tensor_dims,
    trace_batch,
)

if TYPE_CHECKING:
    import onnx

#: the version of the ``--json`` layout; bumped when a field changes meaning or disappears
SCHEMA = "trtapps.onnx.check/1"
SEVERITIES = ("error", "warning", "info")

def _ops(names: str) -> frozenset[str]:
    """A set of operator names written as one whitespace-separated string (the tables below)."""
    return frozenset(names.split())


# -- TensorRT's ONNX operator table --------------------------------------------------------------------------------
#: Where the operator tables below come from. TensorRT's ONNX parser is onnx-tensorrt; its operator matrix lists
#: each operator as supported (Y) or not (N) with restrictions.
OPERATOR_SOURCES = {
    "onnx-tensorrt": "https://github.com/onnx/onnx-tensorrt/blob/main/docs/operators.md (TensorRT 10.15: opset 9-24)",
    "opset-guide": "https://docs.nvidia.com/deeplearning/tensorrt/latest/reference/onnx-opset-guide.html "
    "(TensorRT 11.x: opset 9-25)",
    "glossary": "https://docs.nvidia.com/deeplearning/tensorrt/latest/reference/glossary.html "
    "(data-dependent shapes: NonZero, NonMaxSuppression)",
    "loops": "TensorRT developer guide, 'Working with Loops' and 'Working with Conditionals'",
}
#: operators marked N (not imported) in onnx-tensorrt's matrix for TensorRT 10.15
TRT_UNSUPPORTED = _ops(
    """AffineGrid Bernoulli BitShift BitwiseAnd BitwiseNot BitwiseOr BitwiseXor Col2Im CenterCropPad Compress
    ConcatFromSequence ConvInteger DFT Det DynamicQuantizeLinear ImageDecoder MatMulInteger MaxRoiPool MaxUnpool
    MelWeightMatrix Multinomial NegativeLogLikelihoodLoss Optional OptionalGetElement OptionalHasElement QLinearConv
    QLinearMatMul RegexFullMatch SequenceAt SequenceConstruct SequenceEmpty SequenceErase SequenceInsert
    SequenceLength SequenceMap SoftmaxCrossEntropyLoss SplitToSequence StringConcat StringNormalizer StringSplit
    TfIdfVectorizer Unique"""
)
#: operators marked Y in the same matrix (restrictions checked separately where they bite vision models)
TRT_SUPPORTED = _ops(
    """Abs Acos Acosh Add And ArgMax ArgMin Asin Asinh Atan Atanh Attention AveragePool BatchNormalization
    BlackmanWindow Cast CastLike Ceil Celu Clip Concat Constant ConstantOfShape Conv ConvTranspose Cos Cosh CumSum
    DeformConv DepthToSpace DequantizeLinear Div Dropout Einsum Elu Equal Erf Exp Expand EyeLike Flatten Floor
    Gather GatherElements GatherND Gelu Gemm GlobalAveragePool GlobalLpPool GlobalMaxPool Greater GreaterOrEqual
    GridSample GroupNormalization GRU HammingWindow HannWindow HardSigmoid HardSwish Hardmax Identity If
    ImageScaler InstanceNormalization IsInf IsNaN LayerNormalization LeakyRelu Less LessOrEqual Log LogSoftmax Loop
    LRN LSTM LpNormalization LpPool MatMul Max MaxPool Mean MeanVarianceNormalization Min Mish Mod Mul Neg
    NonMaxSuppression NonZero Not OneHot Or Pad ParametricSoftplus Pow PRelu QuantizeLinear RandomNormal
    RandomNormalLike RandomUniform RandomUniformLike Range Reciprocal ReduceL1 ReduceL2 ReduceLogSum ReduceLogSumExp
    ReduceMax ReduceMean ReduceMin ReduceProd ReduceSum ReduceSumSquare Relu Reshape Resize ReverseSequence
    RMSNormalization RNN RoiAlign RotaryEmbedding Round STFT ScaledTanh Scan Scatter ScatterElements ScatterND Selu
    Shape Shrink Sigmoid Sign Sin Sinh Size Slice Softmax Softplus Softsign SpaceToDepth Split Sqrt Squeeze Sub Sum
    Tan Tanh TensorScatter ThresholdedRelu Tile TopK Transpose Trilu Unsqueeze Upsample Where Xor"""
)
#: supported, but with a cost worth a warning: op → (why, where it is documented)
TRT_SPECIAL = {
    "NonZero": ("its output shape depends on the data (TensorRT needs an output allocator; no CUDA graphs)",
                "glossary"),
    "NonMaxSuppression": ("its output shape depends on the data (TensorRT needs an output allocator); trtapps runs "
                          "NMS itself after the model", "glossary"),
    "Loop": ("runs iteration by iteration; unroll fixed-count loops at export", "loops"),
    "Scan": ("runs iteration by iteration; unroll fixed-count loops at export", "loops"),
    "If": ("both branches are built and fusion stops at the condition; resolve the condition at export", "loops"),
}
#: opset range of TensorRT's ONNX parser: TensorRT 10 reads 9-24 (10.15), TensorRT 11 reads 9-25
OPSET_MIN, OPSET_MAX_TRT10, OPSET_MAX_TRT11 = 9, 24, 25
#: Resize attribute values TensorRT imports (onnx-tensorrt matrix)
RESIZE_MODES = {"nearest", "linear"}
RESIZE_COORDINATES = {"half_pixel", "pytorch_half_pixel", "tf_half_pixel_for_nn", "asymmetric", "align_corners"}
RESIZE_NEAREST = {"floor", "ceil", "round_prefer_floor", "round_prefer_ceil"}
TOPK_MAX_K = 3840

#: ops that compute on shape values (what sits between ``Shape`` and the node that uses the shape)
SHAPE_OPS = _ops(
    "Gather Slice Unsqueeze Squeeze Concat Cast Add Sub Mul Div Floor Ceil Identity Reshape Max Min Expand "
    "ConstantOfShape Range ReduceProd Neg Abs Equal Where Mod Clip Round"
)
#: input positions that are shapes (or sizes, indices of shapes) per consumer op
SHAPE_INPUTS: dict[str, tuple[int, ...]] = {
    "Reshape": (1,),
    "Expand": (1,),
    "Tile": (1,),
    "Resize": (2, 3),
    "Upsample": (1,),
    "ConstantOfShape": (0,),
    "Slice": (1, 2, 3, 4),
    "Range": (0, 1, 2),
    "Pad": (1,),
    "TopK": (1,),
    "OneHot": (1,),
    "Split": (1,),
}

#: the fix for each rule, in the words of the export guide
FIXES = {
    "shape-chain": "convert sizes with int() in the model code (x.view(-1, int(c * h * w)), not x.view(x.size(0), "
    "-1)) or run `trtapps onnx fix`, which folds the chain",
    "resize-sizes": "upsample with nn.Upsample(scale_factor=2) / F.interpolate(x, scale_factor=2), not size=; "
    "`trtapps onnx fix` rewrites fixed sizes into scales",
    "reshape-batch": "put -1 on the batch axis and compute the others: x.view(-1, 85, int(h * w)); "
    "`trtapps onnx fix` rewrites the constant",
    "reshape-minus-one": "optional: x.view(-1, C, int(h * w)) is the guide's form (0 copies the batch and works)",
    "batch-baked": "keep the batch symbolic: use -1/x.shape[0] for the batch and int() only for the other sizes; "
    "`trtapps onnx fix` rewrites Reshape/Expand/Tile/Resize constants, other ops need a re-export",
    "batch-fixed": "export with dynamic_axes={'<input>': {0: 'batch'}, '<output>': {0: 'batch'}} (or "
    "dynamic=True), or run `trtapps onnx fix` to make the batch dynamic",
    "symbolic-dims": "export with dynamic_axes on the batch dimension only; fixed sizes let TensorRT specialise "
    "kernels",
    "opset": f"export with an opset TensorRT reads ({OPSET_MIN}-{OPSET_MAX_TRT10} for TensorRT 10, up to "
    f"{OPSET_MAX_TRT11} for TensorRT 11), e.g. opset_version=17",
    "domain": "export with standard ONNX operators only (no ONNX Runtime contrib ops or custom domains), or "
    "provide a TensorRT plugin for the op",
    "unsupported-op": "replace the operation in the model code or provide a TensorRT plugin",
    "unknown-op": "check the operator against onnx-tensorrt's operators.md for your TensorRT version",
    "op-restriction": "change the operation's attributes to ones TensorRT imports (see the message)",
    "data-dependent": "keep data-dependent steps (NMS, nonzero filtering) out of the model; trtapps does them after "
    "inference",
    "control-flow": "export without data-dependent Python control flow (unrolled loops, fixed branches)",
    "training-mode": "call model.eval() before exporting (BatchNorm then uses its running statistics)",
    "double": "keep float64 out of the model (use float32 constants and .float())",
    "int64-range": "keep integer constants within int32 (TensorRT clamps INT64 values outside it)",
    "upsample-op": "export with opset >= 11 (Resize instead of the deprecated Upsample)",
    "shape-inference": "run onnx.checker / onnxslim on the model; the findings above may be incomplete",
    "output-batch": "export with dynamic_axes on the output's batch dimension too",
    "invalid-model": "export again (or fix the node named in the message): ONNX Runtime and TensorRT reject it too",
    "quantization": "quantize symmetrically to int8 (zero point 0), e.g. `trtapps build --precision int8`",
}


@dataclass
class Finding:
    """One problem found in a model.

    Attributes:
        rule: the rule's id (stable; see :data:`FIXES`).
        severity: ``error``, ``warning`` or ``info``.
        message: what is wrong, naming the nodes/tensors.
        fix: what to do about it, in the export guide's words.
        nodes: names of the nodes involved (``<op>#<index>`` for unnamed ones).
        tensors: names of the graph inputs/outputs involved.
        fixable: ``trtapps onnx fix`` repairs it.
        batch_only: it only matters for batch > 1 (``build --max-batch 1`` ignores it).
    """

    rule: str
    severity: str
    message: str
    fix: str = ""
    nodes: list[str] = field(default_factory=list)
    tensors: list[str] = field(default_factory=list)
    fixable: bool = False
    batch_only: bool = False

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"severity must be one of {SEVERITIES}, got {self.severity!r}")
        if not self.fix:
            self.fix = FIXES.get(self.rule, "")


@dataclass
class TensorSummary:
    name: str
    dtype: str
    shape: list[Dim] | None


@dataclass
class CheckReport:
    """The result of :func:`check_model`."""

    model: str
    opset: int | None
    ir_version: int
    producer: str
    inputs: list[TensorSummary]
    outputs: list[TensorSummary]
    batch_inputs: list[str]
    dynamic_batch: bool
    export_batch: int
    findings: list[Finding]
    shape_inference: str = "ok"

    def count(self, severity: str) -> int:
        return sum(1 for f in self.findings if f.severity == severity)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def ok(self) -> bool:
        """No error-severity finding."""
        return not self.errors

    def to_json(self) -> dict[str, Any]:
        """The ``--json`` document (layout :data:`SCHEMA`)."""
        return {
            "schema": SCHEMA,
            "model": self.model,
            "opset": self.opset,
            "ir_version": self.ir_version,
            "producer": self.producer,
            "inputs": [asdict(t) for t in self.inputs],
            "outputs": [asdict(t) for t in self.outputs],
            "batch": {"inputs": self.batch_inputs, "dynamic": self.dynamic_batch, "export_batch": self.export_batch},
            "shape_inference": self.shape_inference,
            "counts": {s: self.count(s) for s in SEVERITIES},
            "ok": self.ok,
            "findings": [asdict(f) for f in self.findings],
        }


# -- the check -----------------------------------------------------------------------------------------------------
def check_model(
    model_or_path: onnx.ModelProto | str | Path,
    *,
    batch_dim: str | None = None,
    dynamic_batch: bool = True,
    name: str | None = None,
) -> CheckReport:
    """Check an ONNX model against the export rules.

    Args:
        model_or_path: the model or its file.
        batch_dim: the name of the batch dimension; default: the first dimension of every input of rank >= 2
            (and of any input whose first dimension is symbolic).
        dynamic_batch: a dynamic batch is wanted. When ``False`` (an engine for batch 1 only) the batch rules
            report at ``info`` severity.
        name: the model's name in the report (default: the path).

    Raises:
        ModelError: the file is missing or not ONNX.
    """
    if isinstance(model_or_path, (str, Path)):
        if Path(model_or_path).is_file() and Path(model_or_path).stat().st_size == 0:
            # protobuf reads 0 bytes as a valid, empty model: the findings would blame its contents
            raise ModelError(f"{model_or_path}: the file is empty; export the model again")
        model = load_model(model_or_path)
        label = name or str(model_or_path)
    else:
        model = model_or_path
        label = name or (model.graph.name or "<model>")
    checker = _Checker(model, batch_dim=batch_dim, dynamic_batch=dynamic_batch)
    findings = checker.run()
    order = {s: i for i, s in enumerate(SEVERITIES)}
    findings.sort(key=lambda f: order[f.severity])  # stable: rule order inside a severity
    return CheckReport(
        model=label,
        opset=default_opset(model),
        ir_version=int(model.ir_version),
        producer=f"{model.producer_name} {model.producer_version}".strip(),
        inputs=[_summary(v) for v in checker.index.graph_inputs],
        outputs=[_summary(v) for v in model.graph.output],
        batch_inputs=checker.batch_inputs,
        dynamic_batch=checker.is_dynamic,
        export_batch=checker.export_batch,
        findings=findings,
        shape_inference="ok" if checker.shapes.error is None else f"failed: {checker.shapes.error}",
    )


def _summary(value: onnx.ValueInfoProto) -> TensorSummary:
    elem = value.type.tensor_type.elem_type if value.type.HasField("tensor_type") else 0
    return TensorSummary(value.name, elem_type_name(elem) if elem else "?", tensor_dims(value))


def pretty_dims(dims: Sequence[Dim] | None) -> str:
    """:func:`~trtapps.onnx.graph.format_dims`, with the traced batch symbol shown as ``batch``."""
    if dims is None:
        return format_dims(None)
    return format_dims([None if d is None else str(d).replace(BATCH_SYMBOL, "batch") for d in dims])


class _Checker:
    def __init__(self, model: onnx.ModelProto, *, batch_dim: str | None, dynamic_batch: bool) -> None:
        self.model = model
        self.index = GraphIndex(model)
        self.batch_dim = batch_dim
        self.want_dynamic = dynamic_batch
        self.findings: list[Finding] = []
        self.batch_inputs, self.is_dynamic, self.export_batch = self._batch_inputs()
        self.shapes: Shapes = trace_batch(model, self.batch_inputs) if self.batch_inputs else infer_shapes(model)

    # severity of a finding that only matters for a dynamic batch
    def _batch_severity(self, severity: str = "error") -> str:
        return severity if self.want_dynamic else "info"

    def add(self, rule: str, severity: str, message: str, **kwargs: Any) -> None:
        self.findings.append(Finding(rule, severity, message, **kwargs))

    def run(self) -> list[Finding]:
        self.check_valid()
        self.check_opset()
        self.check_batch_inputs()
        self.check_symbolic_dims()
        self.check_operators()
        self.check_types()
        self.check_batch_tracing()
        self.check_shape_chains()
        if self.shapes.error is not None:
            self.add(
                "shape-inference", "warning",
                f"shape inference failed ({self.shapes.error}): batch tracing could not run",
            )
        return self.findings

    def check_valid(self) -> None:
        """ONNX's own checker: a graph it rejects (an attribute its opset does not have, a dangling input) fails
        in TensorRT's parser and in ONNX Runtime alike."""
        import onnx

        if self.model.ByteSize() > 1 << 30:  # the in-memory checker refuses protobufs near 2 GB: skip it
            return
        try:
            onnx.checker.check_model(self.model)
        except onnx.checker.ValidationError as exc:
            text = str(exc).strip()
            first = next((line for line in text.splitlines() if line.strip()), type(exc).__name__)
            self.add("invalid-model", "error", f"ONNX's checker rejects the model: {first.strip()[:300]}")

    # -- the batch -------------------------------------------------------------------------------------------
    def _batch_inputs(self) -> tuple[list[str], bool, int]:
        batch_inputs: list[str] = []
        dynamic = True
        export_batch: int | None = None
        for value in self.index.graph_inputs:
            dims = tensor_dims(value) or []
            if not dims:
                continue
            first = dims[0]
            if self.batch_dim is not None:
                if first == self.batch_dim:
                    batch_inputs.append(value.name)
                continue
            if isinstance(first, str) or first is None or len(dims) >= 2:
                batch_inputs.append(value.name)
                if isinstance(first, int):
                    dynamic = False
                    export_batch = export_batch or first
        if not batch_inputs:
            dynamic = False
        if export_batch is None:
            export_batch = _metadata_batch(self.model)
        return batch_inputs, dynamic and bool(batch_inputs), export_batch

    def check_batch_inputs(self) -> None:
        if self.batch_dim is not None and not self.batch_inputs:
            where = ", ".join(f"{v.name} {pretty_dims(tensor_dims(v))}" for v in self.index.graph_inputs)
            self.add(
                "batch-fixed", self._batch_severity(),
                f"no input has the batch dimension {self.batch_dim!r} first (inputs: {where})",
                tensors=[v.name for v in self.index.graph_inputs], fixable=True, batch_only=True,
            )
            return
        for value in self.index.graph_inputs:
            if value.name not in self.batch_inputs:
                continue
            dims = tensor_dims(value) or []
            if isinstance(dims[0], int):
                self.add(
                    "batch-fixed", self._batch_severity(),
                    f"input {value.name!r} has a fixed batch of {dims[0]} {pretty_dims(dims)}: a dynamic-batch "
                    "engine cannot be built from it",
                    tensors=[value.name], fixable=True, batch_only=True,
                )
        if not self.is_dynamic:
            return
        for out in self.model.graph.output:
            declared = tensor_dims(out)
            if declared and isinstance(declared[0], int):
                self.add(
                    "output-batch", "info",
                    f"output {out.name!r} is declared with a fixed first dimension {pretty_dims(declared)} although "
                    "the inputs' batch is dynamic (TensorRT ignores the declaration; ONNX Runtime warns)",
                    tensors=[out.name], fixable=True,
                )

    def check_symbolic_dims(self) -> None:
        inputs_dynamic_rest = False
        for value in self.index.graph_inputs:
            dims = tensor_dims(value) or []
            start = 1 if value.name in self.batch_inputs else 0
            extra = [f"{d if d is not None else '?'} (axis {i})" for i, d in enumerate(dims) if i >= start
                     and not isinstance(d, int)]
            if extra:
                inputs_dynamic_rest = True
                self.add(
                    "symbolic-dims", "warning",
                    f"input {value.name!r} {pretty_dims(dims)} has dynamic dimensions other than the batch: "
                    f"{', '.join(extra)}; a TensorRT engine needs them fixed (backend input_size) and builds "
                    "kernels for one size",
                    tensors=[value.name],
                )
        if inputs_dynamic_rest:
            return  # the outputs' symbolic sizes follow from the inputs'
        for out in self.model.graph.output:
            out_dims = tensor_dims(out)
            if out_dims is None:
                continue
            extra = [f"{d if d is not None else '?'} (axis {i})" for i, d in enumerate(out_dims) if i >= 1
                     and not isinstance(d, int)]
            if not extra:
                continue
            computed = self.shapes.get(out.name)
            resolved = computed is not None and len(computed) == len(out_dims) and all(
                isinstance(d, int) for d in computed[1:])
            if resolved:
                self.add(
                    "symbolic-dims", "info",
                    f"output {out.name!r} is declared {pretty_dims(out_dims)} but computes {pretty_dims(computed)} "
                    "(the exporter did not infer it; `trtapps onnx fix` writes the sizes)",
                    tensors=[out.name], fixable=True,
                )
            else:
                self.add(
                    "symbolic-dims", "warning",
                    f"output {out.name!r} {pretty_dims(out_dims)} has dynamic dimensions other than the batch "
                    f"({', '.join(extra)}) although the inputs have fixed sizes",
                    tensors=[out.name], fixable=True,
                )

    # -- opset, operators, types -------------------------------------------------------------------------------
    def check_opset(self) -> None:
        opset = default_opset(self.model)
        if opset is None:
            self.add("opset", "error", "the model imports no ai.onnx opset")
            return
        if opset < OPSET_MIN:
            self.add("opset", "error", f"opset {opset} is older than TensorRT's ONNX parser reads ({OPSET_MIN}+)")
        elif opset > OPSET_MAX_TRT11:
            self.add("opset", "error", f"opset {opset} is newer than TensorRT 11 reads (up to {OPSET_MAX_TRT11})")
        elif opset > OPSET_MAX_TRT10:
            self.add(
                "opset", "warning",
                f"opset {opset} is newer than TensorRT 10 reads (up to {OPSET_MAX_TRT10}; TensorRT 11 reads "
                f"{OPSET_MAX_TRT11})",
            )
        elif opset < 11:
            self.add(
                "opset", "warning",
                f"opset {opset}: Resize/Upsample semantics before opset 11 differ from PyTorch's; export with "
                "opset 13 or newer",
            )

    def check_operators(self) -> None:
        unsupported: dict[str, list[str]] = {}
        unknown: dict[str, list[str]] = {}
        domains: dict[str, list[str]] = {}
        special: dict[str, list[str]] = {}
        for node in self.index.iter_subgraph_nodes():
            label = self.index.label(node)
            if node.domain not in ("", "ai.onnx"):
                domains.setdefault(f"{node.domain}::{node.op_type}", []).append(label)
                continue
            op = node.op_type
            if op in TRT_UNSUPPORTED:
                unsupported.setdefault(op, []).append(label)
            elif op not in TRT_SUPPORTED:
                unknown.setdefault(op, []).append(label)
            elif op in TRT_SPECIAL:
                special.setdefault(op, []).append(label)
            self._restrictions(node, label)
        for key, labels in domains.items():
            self.add(
                "domain", "error",
                f"{len(labels)} node(s) of {key} (domain other than ai.onnx): TensorRT's parser has no importer "
                "for them",
                nodes=labels,
            )
        for op, labels in unsupported.items():
            hint = " (quantize with Q/DQ nodes instead)" if op in (
                "ConvInteger", "MatMulInteger", "DynamicQuantizeLinear", "QLinearConv", "QLinearMatMul") else ""
            self.add(
                "unsupported-op", "error",
                f"{len(labels)} {op} node(s): not supported by TensorRT's ONNX parser{hint}",
                nodes=labels,
            )
        for op, labels in unknown.items():
            self.add(
                "unknown-op", "warning",
                f"{len(labels)} {op} node(s): not in onnx-tensorrt's operator table (newer than TensorRT 10.15?)",
                nodes=labels,
            )
        for op, labels in special.items():
            why, _source = TRT_SPECIAL[op]
            rule = "control-flow" if op in ("Loop", "Scan", "If") else "data-dependent"
            self.add(rule, "warning", f"{len(labels)} {op} node(s): {why}", nodes=labels)
        if any(n.op_type == "Upsample" for n in self.index.nodes):
            self.add(
                "upsample-op", "warning", "deprecated Upsample operator (opset < 10 export)",
                nodes=[self.index.label(n) for n in self.index.nodes if n.op_type == "Upsample"],
            )

    def _restrictions(self, node: onnx.NodeProto, label: str) -> None:
        op, attr = node.op_type, self.index.attribute
        if op == "Resize":
            mode = _text(attr(node, "mode", b"nearest"))
            coords = _text(attr(node, "coordinate_transformation_mode", b"half_pixel"))
            nearest = _text(attr(node, "nearest_mode", b"round_prefer_floor"))
            problems = []
            if mode not in RESIZE_MODES:
                problems.append(f"mode {mode!r} (TensorRT: nearest, linear)")
            if coords not in RESIZE_COORDINATES:
                problems.append(f"coordinate_transformation_mode {coords!r}")
            if mode == "nearest" and nearest not in RESIZE_NEAREST:
                problems.append(f"nearest_mode {nearest!r}")
            if attr(node, "antialias", 0):
                problems.append("antialias=1")
            if _text(attr(node, "keep_aspect_ratio_policy", b"stretch")) != "stretch":
                problems.append("keep_aspect_ratio_policy other than stretch")
            if problems:
                self.add("op-restriction", "error", f"Resize {label!r}: TensorRT does not import "
                         f"{'; '.join(problems)}", nodes=[label])
        elif op == "TopK":
            k = self.index.constant(node.input[1]) if len(node.input) > 1 else None
            if k is not None and k.size == 1 and int(k.reshape(-1)[0]) >= TOPK_MAX_K:
                self.add("op-restriction", "error", f"TopK {label!r}: K = {int(k.reshape(-1)[0])}, TensorRT "
                         f"needs K < {TOPK_MAX_K}", nodes=[label])
            if attr(node, "sorted", 1) != 1:
                self.add("op-restriction", "error", f"TopK {label!r}: sorted=0 is not imported", nodes=[label])
        elif op in ("MaxPool", "AveragePool", "LpPool"):
            if op == "MaxPool" and len(node.output) > 1 and node.output[1] and self.index.consumers.get(node.output[1]):
                self.add("op-restriction", "error", f"MaxPool {label!r}: the Indices output is not supported",
                         nodes=[label])
            if any(d != 1 for d in attr(node, "dilations", []) or []):
                self.add("op-restriction", "error", f"{op} {label!r}: dilations other than 1", nodes=[label])
        elif op == "ScatterND" and _text(attr(node, "reduction", b"none")) != "none":
            self.add("op-restriction", "error", f"ScatterND {label!r}: reduction is not supported", nodes=[label])
        elif op in ("QuantizeLinear", "DequantizeLinear"):
            zp = self.index.constant(node.input[2]) if len(node.input) > 2 and node.input[2] else None
            if zp is not None and (zp.dtype == np.uint8 or np.any(zp != 0)):
                what = "uint8 (TensorRT quantizes to signed int8)" if zp.dtype == np.uint8 else "non-zero"
                self.add("quantization", "error", f"{op} {label!r}: zero point is {what}; TensorRT needs "
                         "symmetric int8 quantization with zero point 0", nodes=[label])
        elif op == "BatchNormalization":
            if attr(node, "training_mode", 0) or sum(1 for o in node.output if o) > 1:
                self.add("training-mode", "error", f"BatchNormalization {label!r} was exported in training mode: "
                         "it normalises with the statistics of the batch, so results change with the batch",
                         nodes=[label])
        elif op == "Dropout":
            ratio_training = node.input[2] if len(node.input) > 2 else ""
            training = self.index.constant(ratio_training) if ratio_training else None
            if ratio_training and (training is None or bool(np.any(training))):
                self.add("training-mode", "error", f"Dropout {label!r} is in training mode", nodes=[label])

    def check_types(self) -> None:
        import onnx

        double = onnx.TensorProto.DOUBLE
        io_double = [v.name for v in list(self.index.graph_inputs) + list(self.model.graph.output)
                     if v.type.HasField("tensor_type") and v.type.tensor_type.elem_type == double]
        if io_double:
            self.add("double", "error", f"float64 inputs/outputs {io_double}: TensorRT has no float64 I/O",
                     tensors=io_double)
        inner = [i.name for i in self.model.graph.initializer if i.data_type == double]
        inner += [self.index.label(n) for n in self.index.nodes
                  if n.op_type == "Cast" and self.index.attribute(n, "to") == double]
        if inner:
            self.add("double", "warning", f"{len(inner)} float64 constant(s)/cast(s): TensorRT casts float64 down "
                     "to float32 (clamping to the float32 range)", nodes=inner[:20])
        sentinels = {np.iinfo(np.int64).max, np.iinfo(np.int64).min, np.iinfo(np.int32).max, np.iinfo(np.int32).min}
        wide = []
        for init in self.model.graph.initializer:
            if init.data_type != onnx.TensorProto.INT64:
                continue
            value = self.index.constant(init.name)
            if value is None or value.size == 0 or value.size > 1 << 16:
                continue
            outside = value[(value > np.iinfo(np.int32).max) | (value < np.iinfo(np.int32).min)]
            if any(int(v) not in sentinels for v in outside.reshape(-1)):
                wide.append(init.name)
        if wide:
            self.add("int64-range", "warning", f"INT64 constants with values outside int32: {wide[:10]}",
                     nodes=wide[:20])

    # -- batch tracing -------------------------------------------------------------------------------------------
    def check_batch_tracing(self) -> None:
        """Find the nodes where the traced batch stops being the first dimension and becomes a number."""
        if not self.batch_inputs or self.shapes.error is not None:
            if self.batch_inputs:
                self._reshape_fallback()
            return
        baked_outputs: set[str] = set()
        conflict_nodes = {c.node for c in self.shapes.conflicts}
        for node in self.index.nodes:
            if node.op_type in ("Shape", "Size", "NonZero") or not node.output:
                continue  # their outputs hold shapes/indices, not samples
            data_inputs = [i for i in _data_inputs(node) if i]
            if not any(self.shapes.has_batch(i) for i in data_inputs):
                continue
            out = node.output[0]
            out_dims = self.shapes.get(out)
            if not out_dims or not isinstance(out_dims[0], int):
                self._reshape_minus_one(node)
                continue
            if self.index.label(node) in conflict_nodes:
                continue  # reported with both sides by _concat_mixing
            baked_outputs.add(out)
            self._baked(node, out_dims)
        self._concat_mixing()
        # the outputs: the batch must end up first
        merged = []
        for out in self.model.graph.output:
            dims = self.shapes.get(out.name)
            if dims and dims[0] != BATCH_SYMBOL and any(mentions_batch(d) for d in dims):
                merged.append((out.name, dims))
        if merged:
            shown = ", ".join(f"{name} {pretty_dims(dims)}" for name, dims in merged[:4])
            more = f" and {len(merged) - 4} more" if len(merged) > 4 else ""
            self.add(
                "batch-baked", self._batch_severity(),
                f"{len(merged)} output(s) come out with the batch merged into another axis: {shown}{more}; batch > 1 "
                "gives wrong results",
                tensors=[name for name, _ in merged], fixable=True, batch_only=True,
            )

    def _baked(self, node: onnx.NodeProto, out_dims: list[Dim]) -> None:
        label, op = self.index.label(node), node.op_type
        in_dims = self.shapes.get(node.input[0])
        severity = self._batch_severity()
        if op == "Reshape":
            target = self.index.constant(node.input[1])
            shown = target.tolist() if target is not None else "a computed shape"
            values = target.tolist() if target is not None and target.ndim == 1 else []
            where = "its -1 is not on the batch axis" if -1 in values[1:] else "the batch axis is not -1"
            self.add(
                "reshape-batch", severity,
                f"Reshape {label!r} reshapes {pretty_dims(in_dims)} to {shown} → {pretty_dims(out_dims)}: the "
                f"shape bakes the export batch ({out_dims[0]}) and {where}",
                nodes=[label], fixable=True, batch_only=True,
            )
        elif op == "Resize":
            sizes = self.index.constant(node.input[3]) if len(node.input) > 3 and node.input[3] else None
            shown = sizes.tolist() if sizes is not None else "computed sizes"
            self.add(
                "resize-sizes", severity,
                f"Resize {label!r} resizes to fixed sizes {shown}, which hold the export batch ({out_dims[0]})",
                nodes=[label], fixable=True, batch_only=True,
            )
        elif op in ("Expand", "Tile"):
            what = "shape" if op == "Expand" else "repeats"
            value = self.index.constant(node.input[1])
            shown = value.tolist() if value is not None else "a computed value"
            self.add(
                "batch-baked", severity,
                f"{op} {label!r}: its {what} {shown} turns {pretty_dims(in_dims)} into {pretty_dims(out_dims)}, "
                "baking the export batch",
                nodes=[label], fixable=True, batch_only=True,
            )
        else:
            self.add(
                "batch-baked", severity,
                f"{op} {label!r} turns {pretty_dims(in_dims)} into {pretty_dims(out_dims)}: it works across "
                "the batch axis or bakes the export batch, so batch > 1 fails or mixes samples",
                nodes=[label], batch_only=True,
                fix="keep operations off the batch axis (axis 0) and the batch symbolic; re-export the model",
            )

    def _reshape_minus_one(self, node: onnx.NodeProto) -> None:
        if node.op_type != "Reshape":
            return
        target = self.index.constant(node.input[1])
        if target is None or target.ndim != 1 or target.size < 2:
            return
        allowzero = self.index.attribute(node, "allowzero", 0)
        values = [int(v) for v in target]
        if values[0] == 0 and not allowzero and -1 in values[1:]:
            label = self.index.label(node)
            self.add(
                "reshape-minus-one", "info",
                f"Reshape {label!r} to {values}: the batch is copied with 0 and -1 sits on axis "
                f"{values.index(-1)}; it works, the guide's form is -1 on the batch axis",
                nodes=[label],
            )

    def _reshape_fallback(self) -> None:
        """Without shape inference: flag Reshape constants whose first entry is the export batch."""
        for node in self.index.nodes:
            if node.op_type != "Reshape":
                continue
            target = self.index.constant(node.input[1])
            if target is not None and target.ndim == 1 and target.size >= 2 and int(target[0]) == self.export_batch:
                label = self.index.label(node)
                self.add(
                    "reshape-batch", "warning",
                    f"Reshape {label!r} to {target.tolist()}: its first entry equals the export batch "
                    f"({self.export_batch}); without shape inference it cannot be told whether that is the batch",
                    nodes=[label], fixable=True, batch_only=True,
                )

    def _concat_mixing(self) -> None:
        """Batch tensors combined with tensors whose first dimension is a fixed number (a baked Expand/Tile)."""
        nodes = {self.index.label(n): n for n in self.index.nodes}
        for conflict in self.shapes.conflicts:
            fixed = conflict.fixed_inputs
            producers = [self.index.label(self.index.producer[i]) for i in fixed if i in self.index.producer]
            shown = ", ".join(f"{i} {pretty_dims(self.shapes.get(i))}" for i in fixed)
            how = "joins" if conflict.op == "Concat" else "broadcasts"
            node = nodes.get(conflict.node)
            label = self.index.label(node) if node is not None else conflict.node
            self.add(
                "batch-baked", self._batch_severity(),
                f"{conflict.op} {label!r} {how} the batch tensor {conflict.batch_input!r} "
                f"{pretty_dims(self.shapes.get(conflict.batch_input))} with {shown}, whose first dimension is fixed: "
                "a batch-sized tensor (e.g. a token expanded with int(x.size(0))) was baked at export",
                nodes=[label, *producers], fixable=True, batch_only=True,
                fix="expand with x.shape[0] (or -1 on the expanded axis: cls.expand(x.shape[0], -1, -1)); "
                "`trtapps onnx fix` rewrites a baked Expand/Tile",
            )

    # -- shape chains --------------------------------------------------------------------------------------------
    def check_shape_chains(self) -> None:
        for node in self.index.nodes:
            positions = SHAPE_INPUTS.get(node.op_type)
            if not positions:
                continue
            for pos in positions:
                if pos >= len(node.input) or not node.input[pos]:
                    continue
                chain, sources = self._chain(node.input[pos])
                if not sources:
                    continue
                self._report_chain(node, pos, chain, sources)

    def _chain(self, name: str) -> tuple[list[onnx.NodeProto], list[onnx.NodeProto]]:
        """The shape-arithmetic nodes computing *name*, and the ``Shape``/``Size`` nodes they start from."""
        chain: list[onnx.NodeProto] = []
        sources: list[onnx.NodeProto] = []
        seen: set[int] = set()
        stack = [name]
        while stack:
            tensor = stack.pop()
            node = self.index.producer.get(tensor)
            if node is None or id(node) in seen:
                continue
            seen.add(id(node))
            if node.op_type in ("Shape", "Size"):
                sources.append(node)
                chain.append(node)
            elif node.op_type in SHAPE_OPS and node.op_type != "Constant":
                if self.index.constant(tensor) is not None:
                    continue
                chain.append(node)
                stack.extend(i for i in node.input if i)
        chain.sort(key=lambda n: self.index.position.get(id(n), 0))
        return chain, sources

    def _report_chain(
        self, node: onnx.NodeProto, pos: int, chain: list[onnx.NodeProto], sources: list[onnx.NodeProto]
    ) -> None:
        label = self.index.label(node)
        read = self._dims_read(sources)
        kinds = []
        if any(d == BATCH_SYMBOL for d in read):
            kinds.append("the batch")
        static = sorted({d for d in read if isinstance(d, int)})
        if static:
            kinds.append(f"fixed size(s) {static}")
        other = [str(d) for d in read if isinstance(d, str) and d != BATCH_SYMBOL] + [
            "?" for d in read if d is None]
        if other:
            symbols = sorted({s for s in self._input_symbols() if any(s in o for o in other)})
            kinds.append(f"dynamic sizes (from {', '.join(symbols)})" if symbols else "dynamic sizes")
        reads = f" (reads {', '.join(kinds)})" if kinds else ""
        ops = " → ".join(dict.fromkeys(n.op_type for n in chain))
        names = [self.index.label(n) for n in chain]
        if node.op_type == "Resize" and pos == 3:
            self.add(
                "resize-sizes", "warning",
                f"Resize {label!r} takes output sizes computed at run time from {ops}{reads}: size= was used "
                "instead of scale_factor",
                nodes=[label, *names], fixable=bool(static) and not other,
            )
            return
        what = {"Reshape": "target shape", "Expand": "shape", "Tile": "repeats", "Slice": "bounds",
                "Resize": "scales"}.get(node.op_type, f"input {pos}")
        self.add(
            "shape-chain", "warning",
            f"{node.op_type} {label!r} takes its {what} from {ops}{reads}: tensor.size()/shape used without int()",
            nodes=[label, *names], fixable=not other,
        )

    def _input_symbols(self) -> set[str]:
        """The symbolic dimension names of the graph inputs, the batch excluded."""
        names: set[str] = set()
        for value in self.index.graph_inputs:
            for axis, d in enumerate(tensor_dims(value) or []):
                if isinstance(d, str) and not (axis == 0 and value.name in self.batch_inputs):
                    names.add(d)
        return names

    def _dims_read(self, sources: list[onnx.NodeProto]) -> list[Dim]:
        """The dimensions of the ``Shape`` inputs the chain reads (through ``Gather``/``Slice`` of the shape)."""
        read: list[Dim] = []
        for shape_node in sources:
            dims = self.shapes.get(shape_node.input[0]) if shape_node.input else None
            if dims is None:
                continue
            if shape_node.op_type == "Size":
                read.extend(dims)
                continue
            start = self.index.attribute(shape_node, "start", 0)
            end = self.index.attribute(shape_node, "end", None)
            dims = dims[start:end]
            users = self.index.consumers.get(shape_node.output[0], [])
            picked = False
            for user in users:
                if user.op_type == "Gather" and len(user.input) > 1:
                    idx = self.index.constant(user.input[1])
                    if idx is not None:
                        read.extend(dims[int(i)] for i in idx.reshape(-1) if -len(dims) <= int(i) < len(dims))
                        picked = True
                        continue
                if user.op_type == "Slice" and len(user.input) > 2:
                    lo, hi = self.index.constant(user.input[1]), self.index.constant(user.input[2])
                    if lo is not None and hi is not None:
                        read.extend(dims[int(lo.reshape(-1)[0]):int(min(hi.reshape(-1)[0], len(dims)))])
                        picked = True
                        continue
                read.extend(dims)
                picked = True
            if not picked:
                read.extend(dims)
        return read


def _data_inputs(node: onnx.NodeProto) -> Iterable[str]:
    """The inputs of *node* that carry data (not shapes, scales or indices)."""
    if node.op_type in SHAPE_INPUTS and node.op_type not in ("ConstantOfShape", "Range"):
        return node.input[:1]
    return node.input


def _metadata_batch(model: onnx.ModelProto) -> int:
    """The export batch an Ultralytics model records in its metadata (``batch``), else 1."""
    for prop in model.metadata_props:
        if prop.key == "batch":
            try:
                return max(1, int(prop.value))
            except ValueError:
                break
    return 1


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


__all__ = [
    "FIXES",
    "OPERATOR_SOURCES",
    "SCHEMA",
    "TRT_SPECIAL",
    "TRT_SUPPORTED",
    "TRT_UNSUPPORTED",
    "CheckReport",
    "Finding",
    "check_model",
    "pretty_dims",
]
