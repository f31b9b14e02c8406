"""Graph helpers shared by ``check`` and ``fix``: constants, producers and consumers, and shape inference with
the batch traced as a symbol.

**Batch tracing.** The question both commands ask of every node is "does the batch survive here?". ONNX's own
shape inference answers it when every batch input's first dimension is set to one unique symbol
(:data:`BATCH_SYMBOL`) in a copy of the model whose stale intermediate and output shapes are cleared: a tensor
whose first dimension comes out as that symbol still carries the batch, a node that turns it into a number
(``Reshape`` to ``[1, 85, -1]``, ``Resize`` to fixed ``sizes``) has baked the export batch in. Data propagation
(``data_prop=True``) carries the symbol through ``Shape → Gather → Unsqueeze → Concat`` chains, so a shape that is
computed from the batch at run time is recognised as such. Nothing is folded: the graph is read as given.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from trtapps.errors import ModelError, first_line
from trtapps.paths import unreadable

if TYPE_CHECKING:
    import onnx

log = logging.getLogger("trtapps.onnx")

#: the first dimension of every batch input during batch tracing
BATCH_SYMBOL = "__trtapps_batch__"
#: the symbol ``fix`` gives the batch dimension of inputs and outputs
BATCH_NAME = "batch"

#: a dimension as read from a model: a size, a symbol, or unknown
Dim = int | str | None


def load_model(path: str | Path) -> onnx.ModelProto:
    """Load an ONNX model (with its external data).

    Raises:
        ModelError: missing file or not an ONNX model.
    """
    import onnx

    path = Path(path)
    if why := unreadable(path):
        raise ModelError(f"{path}: model file {why}; check the path")
    try:
        return onnx.load(str(path))
    except Exception as exc:
        raise ModelError(f"{path}: not a readable ONNX model ({first_line(exc)}); export it again") from exc


def tensor_dims(value: onnx.ValueInfoProto) -> list[Dim] | None:
    """The dimensions of a value info, or ``None`` when its rank is unknown (or it is not a tensor)."""
    if not value.type.HasField("tensor_type") or not value.type.tensor_type.HasField("shape"):
        return None
    dims: list[Dim] = []
    for d in value.type.tensor_type.shape.dim:
        if d.HasField("dim_value"):
            dims.append(int(d.dim_value))
        elif d.HasField("dim_param") and d.dim_param:
            dims.append(d.dim_param)
        else:
            dims.append(None)
    return dims


def set_dim(value: onnx.ValueInfoProto, axis: int, dim: Dim) -> None:
    """Set one dimension of a value info's tensor shape (a size, a symbol, or unknown for ``None``)."""
    d = value.type.tensor_type.shape.dim[axis]
    d.Clear()
    if isinstance(dim, int):
        d.dim_value = dim
    elif isinstance(dim, str):
        d.dim_param = dim


def format_dims(dims: Sequence[Dim] | None) -> str:
    """``[batch, 3, 640, 640]``-style text (``?`` for unknown dimensions)."""
    if dims is None:
        return "[?]"
    return "[" + ", ".join("?" if d is None else str(d) for d in dims) + "]"


def elem_type_name(elem_type: int) -> str:
    """``float32``, ``float16``, ``int64``… for an ONNX element type."""
    import onnx

    try:
        return str(np.dtype(onnx.helper.tensor_dtype_to_np_dtype(elem_type)))
    except Exception:
        return onnx.TensorProto.DataType.Name(elem_type).lower()


def default_opset(model: onnx.ModelProto) -> int | None:
    """The model's opset of the default (``ai.onnx``) domain, or ``None`` when it imports none."""
    for op in model.opset_import:
        if op.domain in ("", "ai.onnx"):
            return int(op.version)
    return None


class GraphIndex:
    """Look-ups over one (main) graph: producers, consumers, constants, stable node labels.

    Build it again after changing the graph; it does not follow edits.
    """

    def __init__(self, model: onnx.ModelProto) -> None:
        self.model = model
        self.graph = model.graph
        self.nodes = list(self.graph.node)
        self.producer: dict[str, onnx.NodeProto] = {}
        self.consumers: dict[str, list[onnx.NodeProto]] = {}
        self.position: dict[int, int] = {}
        for index, node in enumerate(self.nodes):
            self.position[id(node)] = index
            for out in node.output:
                if out:
                    self.producer[out] = node
            for name in node.input:
                if name:
                    self.consumers.setdefault(name, []).append(node)
        self.initializers = {init.name: init for init in self.graph.initializer}
        self.graph_inputs = [v for v in self.graph.input if v.name not in self.initializers]
        self.graph_outputs = {v.name for v in self.graph.output}

    def label(self, node: onnx.NodeProto) -> str:
        """The node's name, or ``<op>#<index>`` for unnamed nodes."""
        return node.name or f"{node.op_type}#{self.position.get(id(node), -1)}"

    def constant(self, name: str) -> np.ndarray | None:
        """The value of *name* when it is an initializer or a ``Constant`` output (through ``Identity``)."""
        from onnx import numpy_helper

        seen = 0
        while name and seen < 8:
            if name in self.initializers:
                return numpy_helper.to_array(self.initializers[name])
            node = self.producer.get(name)
            if node is None:
                return None
            if node.op_type == "Identity":
                name, seen = node.input[0], seen + 1
                continue
            if node.op_type != "Constant":
                return None
            for attr in node.attribute:
                if attr.name == "value":
                    return numpy_helper.to_array(attr.t)
                if attr.name == "value_ints":
                    return np.asarray(list(attr.ints), dtype=np.int64)
                if attr.name == "value_int":
                    return np.asarray(attr.i, dtype=np.int64)
                if attr.name == "value_floats":
                    return np.asarray(list(attr.floats), dtype=np.float32)
                if attr.name == "value_float":
                    return np.asarray(attr.f, dtype=np.float32)
            return None
        return None

    def attribute(self, node: onnx.NodeProto, name: str, default: Any = None) -> Any:
        import onnx

        for attr in node.attribute:
            if attr.name == name:
                return onnx.helper.get_attribute_value(attr)
        return default

    def iter_subgraph_nodes(self) -> Iterator[onnx.NodeProto]:
        """Every node of the model, subgraphs (``If``/``Loop``/``Scan`` bodies) included."""
        yield from _walk(self.graph)


def _walk(graph: onnx.GraphProto) -> Iterator[onnx.NodeProto]:
    import onnx

    for node in graph.node:
        yield node
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                yield from _walk(attr.g)
            elif attr.type == onnx.AttributeProto.GRAPHS:
                for g in attr.graphs:
                    yield from _walk(g)


# -- shape inference ---------------------------------------------------------------------------------------------
@dataclass
class Shapes:
    """Tensor name → inferred dimensions (``None`` entries: rank unknown), and what went wrong, if anything."""

    dims: dict[str, list[Dim] | None] = field(default_factory=dict)
    error: str | None = None
    #: nodes that combine batch tensors with tensors of a fixed first dimension (see :func:`trace_batch`)
    conflicts: list[Conflict] = field(default_factory=list)

    def get(self, name: str) -> list[Dim] | None:
        return self.dims.get(name)

    def has_batch(self, name: str, axis: int = 0) -> bool:
        """The tensor's dimension *axis* is the traced batch symbol."""
        dims = self.dims.get(name)
        return dims is not None and len(dims) > axis and dims[axis] == BATCH_SYMBOL


def infer_shapes(model: onnx.ModelProto, *, trace_batch: Iterable[str] = (), symbolic: bool = True) -> Shapes:
    """Infer every tensor's shape on a copy of *model* (which is not modified).

    ONNX Runtime's symbolic shape inference runs first: it builds on ONNX's own inference and adds symbolic
    arithmetic (``Resize`` by scales keeps the batch symbol, a ``Reshape`` that folds the batch into another
    axis comes out as ``2704*batch``) and propagates values through ``Shape``-derived chains. When it fails on
    an exotic graph, :func:`onnx.shape_inference.infer_shapes` with data propagation is used instead.

    Args:
        model: the model.
        trace_batch: graph inputs whose first dimension becomes :data:`BATCH_SYMBOL`. When given, the copy's
            intermediate and output shapes are cleared first so that stale declarations (an output declared
            ``[1, 84, 8400]``) do not mask what the nodes compute.
        symbolic: use ONNX Runtime's symbolic inference first (``False``: ONNX's own only).

    Returns:
        The shapes; ``error`` is set (and ``dims`` holds only inputs and initializers) when both failed.
    """
    traced = set(trace_batch)
    work = copy.deepcopy(model)
    if traced:
        del work.graph.value_info[:]
        for out in work.graph.output:
            if out.type.HasField("tensor_type"):
                out.type.tensor_type.ClearField("shape")
        for value in work.graph.input:
            if value.name in traced and (tensor_dims(value) or []):
                set_dim(value, 0, BATCH_SYMBOL)
    shapes = Shapes()
    for value in work.graph.input:
        shapes.dims[value.name] = tensor_dims(value)
    for init in work.graph.initializer:
        shapes.dims[init.name] = [int(d) for d in init.dims]
    inferred: onnx.ModelProto | None = None
    conflicts: list[str] = []
    errors: list[str] = []
    for infer in (_ort_symbolic, _onnx_data_prop) if symbolic else (_onnx_data_prop,):
        try:
            inferred, conflicts = infer(work)
            break
        except Exception as exc:  # inference bugs on exotic graphs: try the next, else keep the declarations
            errors.append(f"{infer.__name__.strip('_')}: {first_line(exc)}")
    if inferred is None:
        shapes.error = "; ".join(errors)
        log.debug("shape inference failed: %s", shapes.error)
        return shapes
    cache: dict[str, Dim] = {}
    for value in list(inferred.graph.value_info) + list(inferred.graph.output):
        dims = tensor_dims(value)
        if dims is not None and traced:
            dims = [_normalize(d, cache) for d in dims]
        shapes.dims[value.name] = dims
    if traced and conflicts:
        shapes.conflicts = _conflicts(model, shapes, conflicts)
    for node in inferred.graph.node:  # Constant outputs get no value_info in some versions
        if node.op_type == "Constant" and node.output and node.output[0] not in shapes.dims:
            for attr in node.attribute:
                if attr.name == "value":
                    shapes.dims[node.output[0]] = [int(d) for d in attr.t.dims]
    return shapes


#: element-wise ops that broadcast their inputs (a batch against a fixed first dimension other than 1 conflicts)
BROADCAST_OPS = frozenset(
    [
        "Add",
        "Sub",
        "Mul",
        "Div",
        "Pow",
        "Max",
        "Min",
        "Sum",
        "Mean",
        "Where",
        "And",
        "Or",
        "Xor",
        "Equal",
        "Greater",
        "GreaterOrEqual",
        "Less",
        "LessOrEqual",
        "PRelu",
        "Mod",
        "BitShift",
    ]
)


@dataclass
class Conflict:
    """A node that combines a batch tensor with tensors whose first dimension is a fixed number.

    A ``Concat`` along another axis, or an element-wise op broadcasting a first dimension other than 1, fails at
    batch > 1: typically a token or constant that was expanded to ``int(x.size(0))`` at export.
    """

    node: str
    op: str
    batch_input: str
    fixed_inputs: list[str]


def trace_batch(model: onnx.ModelProto, batch_inputs: Sequence[str]) -> Shapes:
    """Shapes with the batch traced as a symbol, robust to nodes that mix the batch with a baked size.

    ONNX Runtime's symbolic inference resolves a conflict such as ``Concat([batch, 16, 16], [1, 1, 16])`` by
    merging the batch symbol with 1 everywhere, which would hide every later finding. Here that one merge is
    refused: the node is recorded as a :class:`Conflict` and the batch stays a symbol for the rest of the graph.
    """
    return infer_shapes(model, trace_batch=batch_inputs)


def _conflicts(model: onnx.ModelProto, shapes: Shapes, nodes: Sequence[str]) -> list[Conflict]:
    """Describe the nodes where the batch met a fixed first dimension (named by :class:`_BatchInference`)."""
    by_name = {n.name: n for n in model.graph.node if n.name}
    conflicts: list[Conflict] = []
    for name in dict.fromkeys(nodes):
        node = by_name.get(name)
        if node is None:
            continue
        dims = [shapes.get(i) if i else None for i in node.input]
        rank = max((len(d) for d in dims if d), default=0)
        lead = [(i, d[0] if d and len(d) == rank else None) for i, d in zip(node.input, dims, strict=True)]
        batch = [i for i, d in lead if d == BATCH_SYMBOL]
        broadcast = node.op_type in BROADCAST_OPS
        fixed = [i for i, d in lead if isinstance(d, int) and not (broadcast and d == 1)]
        if batch and fixed:
            conflicts.append(Conflict(name, node.op_type, batch[0], fixed))
    return conflicts


def _normalize(dim: Dim, cache: dict[str, Dim]) -> Dim:
    """Simplify a dimension expression of the traced batch: ``floor(1.0*batch)`` (a Resize by scale 1 on the
    batch axis) is the batch itself; anything else stays as it is."""
    if not isinstance(dim, str) or dim == BATCH_SYMBOL or BATCH_SYMBOL not in dim:
        return dim
    if dim not in cache:
        cache[dim] = dim
        try:
            import sympy

            batch = sympy.Symbol(BATCH_SYMBOL, integer=True, positive=True)
            expr = sympy.simplify(sympy.nsimplify(sympy.sympify(dim, locals={BATCH_SYMBOL: batch}), rational=True))
            if expr == batch:
                cache[dim] = BATCH_SYMBOL
            elif expr.is_Integer:
                cache[dim] = int(expr)
        except Exception:  # not an expression sympy reads: keep the text
            pass
    return cache[dim]


def _ort_symbolic(model: onnx.ModelProto) -> tuple[onnx.ModelProto, list[str]]:
    # it logs its own progress through the root logger's handlers; keep the CLI quiet
    ort_log = logging.getLogger("onnxruntime.tools.symbolic_shape_infer")
    level = ort_log.level
    ort_log.setLevel(logging.ERROR)
    try:
        if (default_opset(model) or 0) < 7:
            raise RuntimeError("opset < 7")
        inference = _batch_inference_class()(2**31 - 1, True, True, 0)
        inference._preprocess(model)
        complete = False
        while inference.run_:
            complete = inference._infer_impl()
        inference._update_output_from_vi()
        if not complete:
            raise RuntimeError("incomplete symbolic shape inference")
        return inference.out_mp_, list(dict.fromkeys(inference.trtapps_conflicts))
    finally:
        ort_log.setLevel(level)


_BATCH_INFERENCE: Any = None


def _batch_inference_class() -> Any:
    """ONNX Runtime's ``SymbolicShapeInference`` that refuses to merge the traced batch with a number.

    The merge is where a baked size meets the batch (``Concat`` along another axis, a broadcast of a first
    dimension other than 1); the node is remembered in ``trtapps_conflicts`` instead and its output keeps the
    batch, so what follows is traced as if the baked size had been the batch. ONNX Runtime's internals are used
    (``_preprocess``/``_infer_impl``, ``_merge_symbols``, the op dispatcher): if they change, the caller falls
    back to ONNX's own inference.
    """
    global _BATCH_INFERENCE
    if _BATCH_INFERENCE is not None:
        return _BATCH_INFERENCE
    from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference, is_literal

    class BatchInference(SymbolicShapeInference):
        def __init__(self, *args: Any) -> None:
            super().__init__(*args)
            self.trtapps_conflicts: list[str] = []
            self.trtapps_node = ""
            for op, handler in list(self.dispatcher_.items()):
                self.dispatcher_[op] = self._trtapps_wrap(handler)

        def _trtapps_wrap(self, handler: Any) -> Any:
            def run(node: Any) -> Any:
                self.trtapps_node = node.name
                return handler(node)

            return run

        def _merge_symbols(self, dims: Any) -> Any:
            resolved = [self.suggested_merge_.get(d, d) if isinstance(d, str) else d for d in dims]
            if BATCH_SYMBOL in resolved and any(is_literal(d) for d in resolved):
                self.trtapps_conflicts.append(self.trtapps_node)
                return BATCH_SYMBOL  # the batch wins: what follows is traced as batch-sized
            return super()._merge_symbols(dims)

        def _add_suggested_merge(self, symbols: Any, apply: bool = False) -> Any:
            resolved = {self.suggested_merge_.get(s, s) if isinstance(s, str) else s for s in symbols}
            if BATCH_SYMBOL in resolved and any(is_literal(s) for s in resolved):
                self.trtapps_conflicts.append(self.trtapps_node)
                return None
            return super()._add_suggested_merge(symbols, apply)

    _BATCH_INFERENCE = BatchInference
    return BatchInference


def _onnx_data_prop(model: onnx.ModelProto) -> tuple[onnx.ModelProto, list[str]]:
    import onnx

    return onnx.shape_inference.infer_shapes(model, check_type=False, strict_mode=False, data_prop=True), []


def mentions_batch(dim: Dim) -> bool:
    """*dim* is the traced batch or an expression of it (``2704*__trtapps_batch__``)."""
    return isinstance(dim, str) and BATCH_SYMBOL in dim


# -- editing -----------------------------------------------------------------------------------------------------
def unique_name(model: onnx.ModelProto, base: str) -> str:
    """A tensor/node name not used anywhere in *model*'s main graph."""
    taken = {init.name for init in model.graph.initializer}
    taken.update(v.name for v in model.graph.input)
    taken.update(v.name for v in model.graph.output)
    for node in model.graph.node:
        taken.update(node.output)
        taken.update(node.input)
        taken.add(node.name)
    name, n = base, 1
    while name in taken:
        n += 1
        name = f"{base}_{n}"
    return name


def add_initializer(model: onnx.ModelProto, base: str, value: np.ndarray) -> str:
    """Add a constant tensor under a fresh name; returns the name."""
    from onnx import numpy_helper

    name = unique_name(model, base)
    model.graph.initializer.append(numpy_helper.from_array(np.asarray(value), name))
    return name


def remove_dead_nodes(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    """Drop nodes none of whose outputs are used (iterating until none is left) and unused initializers.

    Returns:
        The nodes removed, in graph order.
    """
    graph = model.graph
    removed: list[onnx.NodeProto] = []
    outputs = {v.name for v in graph.output}
    while True:
        used = set(outputs)
        for node in _walk(graph):
            used.update(n for n in node.input if n)
        dead = [n for n in graph.node if not any(o in used for o in n.output if o)]
        if not dead:
            break
        dead_ids = {id(n) for n in dead}
        removed.extend(copy.deepcopy(n) for n in dead)
        kept = [n for n in graph.node if id(n) not in dead_ids]
        del graph.node[:]
        graph.node.extend(kept)
    used = set(outputs)
    for node in _walk(graph):
        used.update(n for n in node.input if n)
    kept_inits = [i for i in graph.initializer if i.name in used]
    if len(kept_inits) != len(graph.initializer):
        gone = {i.name for i in graph.initializer} - {i.name for i in kept_inits}
        del graph.initializer[:]
        graph.initializer.extend(kept_inits)
        # IR < 4 models also list initializers as graph inputs: drop those entries with them
        kept_inputs = [v for v in graph.input if v.name not in gone]
        if len(kept_inputs) != len(graph.input):
            del graph.input[:]
            graph.input.extend(kept_inputs)
    return removed


def sort_nodes(graph: onnx.GraphProto) -> None:
    """Put *graph*'s nodes in topological order, keeping the given order where it already is one.

    ONNX requires the order (``onnx.checker``), and TensorRT's parser reads nodes in file order. Tools append
    the nodes they add (``fix``'s batch-shape nodes, the fp16 converter's input casts) after the nodes that read
    them. A node with subgraphs (``If``/``Loop``/``Scan``) waits for the outer tensors its bodies read, nested
    bodies included. A cycle or an input produced nowhere leaves the rest in its order (the checker says why).
    """
    known = {v.name for v in graph.input} | {i.name for i in graph.initializer} | {""}
    pending = list(graph.node)
    ordered: list[onnx.NodeProto] = []
    while pending:
        rest = []
        for node in pending:
            if all(name in known for name in [*node.input, *_outer_names(node)]):
                ordered.append(node)
                known.update(node.output)
            else:
                rest.append(node)
        if len(rest) == len(pending):
            ordered.extend(rest)
            break
        pending = rest
    copies = [type(n)() for n in ordered]
    for target, node in zip(copies, ordered):
        target.CopyFrom(node)
    del graph.node[:]
    graph.node.extend(copies)


def _outer_names(node: onnx.NodeProto) -> list[str]:
    """Names a node's subgraphs (``If``/``Loop``/``Scan`` bodies, nested ones too) read from enclosing graphs."""
    names: list[str] = []
    for attr in node.attribute:
        for sub in [attr.g] if attr.HasField("g") else list(attr.graphs):
            local = {v.name for v in sub.input} | {i.name for i in sub.initializer}
            for inner in sub.node:
                names.extend(n for n in [*inner.input, *_outer_names(inner)] if n and n not in local)
                local.update(inner.output)
    return names


# -- names -------------------------------------------------------------------------------------------------------
def name_nodes(graph: onnx.GraphProto) -> list[str]:
    """Give every node of *graph* a unique name: unnamed nodes get ``<op>_<index>``, a name used again gets a
    suffix (``_2``, ``_3``…). Block lists and exclusions address nodes by name, and ONNX Runtime refuses a graph
    with two nodes of one name. Returns the names given (in graph order).
    """
    taken = {n.name for n in graph.node if n.name}
    seen: set[str] = set()
    given: list[str] = []
    for index, node in enumerate(graph.node):
        if node.name and node.name not in seen:
            seen.add(node.name)
            continue
        base = node.name or f"{node.op_type}_{index}"
        name, n = base, 1
        while name in taken:
            n += 1
            name = f"{base}_{n}"
        node.name = name
        taken.add(name)
        seen.add(name)
        given.append(name)
    return given


def drop_repeated_nodes(graph: onnx.GraphProto) -> list[str]:
    """Remove the nodes of *graph* that repeat an earlier node (same op, domain, inputs, outputs and attributes,
    the name aside), and ``value_info`` entries that repeat an earlier one's name. Returns the removed nodes'
    names.

    A repeat computes the same value into the same tensor again, so removing it changes nothing, while keeping
    it makes the graph invalid: the tensor has two producers and, usually, two nodes share a name. ONNX Runtime's
    fp16 converter writes such repeats in releases that name an inserted ``Cast`` after the tensor it reads but
    insert one per reader (``<tensor>_cast_to_fp32_node`` for each float32 node reading a float16 tensor).
    """
    seen: set[bytes] = set()
    kept: list[onnx.NodeProto] = []
    removed: list[str] = []
    for node in graph.node:
        key = type(node)()
        key.CopyFrom(node)
        key.name = ""
        signature = key.SerializeToString(deterministic=True)
        if signature in seen:
            removed.append(node.name)
            continue
        seen.add(signature)
        kept.append(node)
    if removed:
        copies = [type(n)() for n in kept]
        for target, node in zip(copies, kept):
            target.CopyFrom(node)
        del graph.node[:]
        graph.node.extend(copies)
    names: set[str] = set()
    infos = []
    for info in graph.value_info:
        if info.name not in names:
            names.add(info.name)
            infos.append(copy.deepcopy(info))
    if len(infos) != len(graph.value_info):
        del graph.value_info[:]
        graph.value_info.extend(infos)
    return removed


def name_problems(graph: onnx.GraphProto) -> list[str]:
    """What makes *graph*'s names invalid, one line each (empty when nothing does): a node name used by more
    than one node (ONNX Runtime refuses the graph; ``onnx.checker`` does not look), and a tensor written by more
    than one node or written by a node although it is a graph input or initializer (single assignment).
    """
    problems: list[str] = []
    node_names: dict[str, int] = {}
    for node in graph.node:
        if node.name:
            node_names[node.name] = node_names.get(node.name, 0) + 1
    problems.extend(f"{count} nodes are named {name!r}" for name, count in node_names.items() if count > 1)
    given = {v.name for v in graph.input} | {i.name for i in graph.initializer}
    writers: dict[str, int] = {}
    for node in graph.node:
        for out in node.output:
            if out:
                writers[out] = writers.get(out, 0) + 1
    for tensor, count in writers.items():
        if count > 1:
            problems.append(f"tensor {tensor!r} is written by {count} nodes")
        elif tensor in given:
            problems.append(f"tensor {tensor!r} is a graph input or initializer and also written by a node")
    return problems


__all__ = [
    "BATCH_NAME",
    "BATCH_SYMBOL",
    "Conflict",
    "Dim",
    "GraphIndex",
    "Shapes",
    "add_initializer",
    "default_opset",
    "drop_repeated_nodes",
    "elem_type_name",
    "format_dims",
    "infer_shapes",
    "load_model",
    "mentions_batch",
    "name_nodes",
    "name_problems",
    "remove_dead_nodes",
    "set_dim",
    "sort_nodes",
    "tensor_dims",
    "trace_batch",
    "unique_name",
]
