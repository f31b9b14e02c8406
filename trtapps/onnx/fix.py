"""``trtapps onnx fix``: a dynamic-batch model that is proven to compute what the original computes.

Steps, each recorded as a node-level change:

1. **Dynamic batch, and only the batch**: the first dimension of every batch input becomes the symbol ``batch``
   (``--keep-static`` skips this); other dimensions are left as they are.
2. **Constants that bake the export batch** are rewritten, found by tracing the batch through the graph
   (:func:`trtapps.onnx.graph.infer_shapes`): a ``Reshape`` target ``[1, 85, -1]`` becomes ``[-1, 85, 2704]``
   (-1 on the batch axis, the other sizes computed: the guide's form) or ``[0, 85, -1]`` when the others are not
   known; an ``Expand`` shape ``[1, …]`` on a batch tensor becomes ``[1, …]`` with the broadcast kept; fixed
   ``Resize`` sizes become ``scales``; a token expanded to the export batch before a ``Concat`` with batch tensors
   takes its batch from that tensor's shape.
3. **Simplify** with onnxslim (constant folding, shape-chain folding, Conv+BN fusion), on the batch-dynamic graph
   so nothing folds the batch back in.
4. **Fold the remaining shape chains** whose results are known except for the batch: a ``Reshape`` fed by
   ``Shape → Gather → Unsqueeze → Concat`` gets the constant ``[-1, C, N]``; ``Resize`` sizes computed from shapes
   become scales. The dead chains are removed.
5. **Prove it** with ONNX Runtime on the CPU: per-image outputs of the fixed model at batch 1 and at batch N must
   equal those of the original model run image by image, within ``rel_tol × max(range of the output, 1)``
   (default ``1e-4``). The inputs are random with a fixed seed plus, for image inputs, real photos letterboxed
   (one fed at 0–1, one at 0–255, since apps differ). Then ``trtapps onnx check`` must find no error.

Anything that cannot be proven is refused with a one-line reason and nothing is written (the output is written
to a temporary file in the target folder and renamed only once everything passed).
"""

from __future__ import annotations

import copy
import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from trtapps.errors import ModelError, first_line
from trtapps.onnx.check import CheckReport, check_model, pretty_dims
from trtapps.onnx.graph import (
    BATCH_NAME,
    BATCH_SYMBOL,
    Dim,
    GraphIndex,
    Shapes,
    add_initializer,
    default_opset,
    infer_shapes,
    load_model,
    mentions_batch,
    remove_dead_nodes,
    set_dim,
    sort_nodes,
    tensor_dims,
    trace_batch,
    unique_name,
)

if TYPE_CHECKING:
    import onnx

log = logging.getLogger("trtapps.onnx")

#: relative tolerance of the equivalence proof: max |fixed − original| ≤ REL_TOL × max(range(original), 1)
REL_TOL = 1e-4
#: the photos tried for image inputs, under ``$TRTAPPS_DATA/media``
DEFAULT_IMAGES = ("bus.jpg", "zidane.jpg", "street.jpg", "group.jpg")
SEED = 0


class FixError(ModelError):
    """``trtapps onnx fix`` could not produce a model it can prove equivalent; nothing was written."""


@dataclass
class Change:
    """One edit of the graph: the node (or tensor) and what happened to it."""

    node: str
    op: str
    change: str


@dataclass
class OutputCheck:
    """The equivalence of one output: worst absolute difference over all images and batch sizes."""

    name: str
    max_abs_diff: float
    tolerance: float
    value_range: float

    @property
    def ok(self) -> bool:
        return self.max_abs_diff <= self.tolerance


@dataclass
class Verification:
    """How the fixed model was proven equivalent to the original."""

    batches: list[int]
    images: list[str]
    random_samples: int
    rel_tol: float
    outputs: list[OutputCheck]
    seconds: float

    @property
    def ok(self) -> bool:
        return all(o.ok for o in self.outputs)


@dataclass
class FixResult:
    """What :func:`fix_model` did."""

    source: str
    output: str
    dynamic: bool
    changes: list[Change]
    removed_nodes: dict[str, int]
    added_nodes: dict[str, int]
    nodes_before: int
    nodes_after: int
    verification: Verification
    before: CheckReport
    after: CheckReport
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        from dataclasses import asdict

        return {
            "schema": "trtapps.onnx.fix/1",
            "source": self.source,
            "output": self.output,
            "dynamic_batch": self.dynamic,
            "nodes": {"before": self.nodes_before, "after": self.nodes_after},
            "changes": [asdict(c) for c in self.changes],
            "removed_by_op": self.removed_nodes,
            "added_by_op": self.added_nodes,
            "verification": {
                "batches": self.verification.batches,
                "images": self.verification.images,
                "random_samples": self.verification.random_samples,
                "rel_tol": self.verification.rel_tol,
                "seconds": round(self.verification.seconds, 3),
                "outputs": [{**asdict(o), "ok": o.ok} for o in self.verification.outputs],
            },
            "before": self.before.to_json()["counts"],
            "after": self.after.to_json(),
            "notes": self.notes,
        }


# -- the fix -------------------------------------------------------------------------------------------------------
def fix_model(
    source: str | Path,
    output: str | Path,
    *,
    batch: int = 4,
    keep_static: bool = False,
    batch_dim: str | None = None,
    images: Sequence[str | Path] | None = None,
    dims: Mapping[str, int] | None = None,
    rel_tol: float = REL_TOL,
    simplify: bool = True,
) -> FixResult:
    """Fix *source* into *output* (see the module docstring) and prove the result equivalent.

    Args:
        source: the ONNX model.
        output: where the fixed model goes (its folder is created).
        batch: the batch N of the proof (besides batch 1).
        keep_static: keep a fixed batch fixed (only simplify and verify).
        batch_dim: the name of the batch dimension (see :func:`trtapps.onnx.check.check_model`).
        images: photos for image inputs (default: :data:`DEFAULT_IMAGES` under ``$TRTAPPS_DATA/media`` when
            present); random inputs are used for the other batch slots.
        dims: values for dynamic dimensions other than the batch during the proof (``{"height": 640}``);
            image height/width default to 640.
        rel_tol: the proof's relative tolerance.
        simplify: run onnxslim.

    Raises:
        FixError: the result could not be proven equivalent, or an error the fix cannot repair remains; the
            message is one line and nothing is written.
        ModelError: the source is missing or not ONNX.
    """
    source, output = Path(source), Path(output)
    if batch < 1:
        raise FixError(f"--batch must be at least 1, got {batch}")
    if output.resolve() == source.resolve():
        raise FixError(f"{output}: the output would overwrite the source model; choose another -o path")
    original = load_model(source)
    before = check_model(original, batch_dim=batch_dim, dynamic_batch=not keep_static, name=str(source))
    fixer = _Fixer(original, before, keep_static=keep_static, source=source)
    model = fixer.run(simplify=simplify)
    after = check_model(
        model,
        batch_dim=BATCH_NAME if fixer.dynamic and batch_dim else batch_dim,
        dynamic_batch=fixer.dynamic,
        name=str(output),
    )
    if after.errors:
        first = after.errors[0]
        more = f" (and {len(after.errors) - 1} more)" if len(after.errors) > 1 else ""
        raise FixError(f"cannot fix {source}: {first.rule}: {first.message}{more}")
    try:
        import onnx

        onnx.checker.check_model(model)
    except Exception as exc:
        raise FixError(f"cannot fix {source}: the rewritten graph is not valid ONNX ({first_line(exc)})") from exc
    verification = verify_equivalent(
        original,
        model,
        batch=batch if fixer.dynamic else before.export_batch,
        batch_inputs=before.batch_inputs,
        export_batch=before.export_batch,
        dynamic=fixer.dynamic,
        original_dynamic=before.dynamic_batch,
        images=images,
        dims=dims,
        rel_tol=rel_tol,
        source=source,
    )
    bad = [o for o in verification.outputs if not o.ok]
    if bad:
        o = bad[0]
        raise FixError(
            f"cannot fix {source}: output {o.name!r} differs from the original by {o.max_abs_diff:.3g} "
            f"(tolerance {o.tolerance:.3g}) at batch {verification.batches}; the rewrite is not equivalent"
        )
    _write(model, output)
    before_ops = _op_counts(original)
    after_ops = _op_counts(model)
    removed = {op: n - after_ops.get(op, 0) for op, n in before_ops.items() if n > after_ops.get(op, 0)}
    added = {op: n - before_ops.get(op, 0) for op, n in after_ops.items() if n > before_ops.get(op, 0)}
    return FixResult(
        source=str(source),
        output=str(output),
        dynamic=fixer.dynamic,
        changes=fixer.changes,
        removed_nodes=removed,
        added_nodes=added,
        nodes_before=len(original.graph.node),
        nodes_after=len(model.graph.node),
        verification=verification,
        before=before,
        after=after,
        notes=fixer.notes,
    )


def _write(model: onnx.ModelProto, output: Path) -> None:
    from trtapps.engine.cache import atomic_write

    try:
        data = model.SerializeToString()
    except ValueError as exc:  # > 2 GB protobuf limit
        raise FixError(f"{output}: the fixed model cannot be serialized ({exc})") from exc
    try:
        atomic_write(output, data)
    except OSError as exc:
        raise FixError(f"{output}: cannot write the fixed model ({exc.strerror or exc}); check the folder") from exc


def _op_counts(model: onnx.ModelProto) -> dict[str, int]:
    counts: dict[str, int] = {}
    for node in model.graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return counts


class _Fixer:
    def __init__(self, original: onnx.ModelProto, report: CheckReport, *, keep_static: bool, source: Path) -> None:
        self.original = original
        self.report = report
        self.source = source
        self.batch_inputs = list(report.batch_inputs)
        self.export_batch = report.export_batch
        self.dynamic = bool(self.batch_inputs) and not (keep_static and not report.dynamic_batch)
        self.keep_static = keep_static
        self.changes: list[Change] = []
        self.notes: list[str] = []

    def change(self, node: str, op: str, text: str) -> None:
        self.changes.append(Change(node, op, text))

    def run(self, *, simplify: bool) -> onnx.ModelProto:
        model = copy.deepcopy(self.original)
        if self.dynamic:
            self._dynamic_inputs(model)
            del model.graph.value_info[:]
            for _ in range(4):  # each rewrite can expose the next one downstream
                if not self._rewrite_baked(model):
                    break
        if simplify:
            model = self._slim(model)
        if self.dynamic:
            for _ in range(4):
                if not self._fold_chains(model):
                    break
            for node in remove_dead_nodes(model):
                if node.op_type not in ("Constant",):
                    self.change(
                        node.name or node.op_type, node.op_type, "removed (computed a shape that is now a constant)"
                    )
        self._output_shapes(model)
        return model

    # -- 1. the batch ---------------------------------------------------------------------------------------------
    def _dynamic_inputs(self, model: onnx.ModelProto) -> None:
        for value in model.graph.input:
            if value.name not in self.batch_inputs:
                continue
            dims = tensor_dims(value) or []
            if dims and dims[0] != BATCH_NAME:
                set_dim(value, 0, BATCH_NAME)
                self.change(
                    value.name,
                    "input",
                    f"dimension 0: {dims[0]} → {BATCH_NAME} "
                    f"({pretty_dims(dims)} → {pretty_dims([BATCH_NAME, *dims[1:]])})",
                )

    def _traced(self, model: onnx.ModelProto) -> Shapes:
        shapes = trace_batch(model, self.batch_inputs)
        if shapes.error is not None:
            raise FixError(f"cannot fix {self.source}: shape inference failed ({shapes.error})")
        return shapes

    # -- 2. constants that bake the batch -------------------------------------------------------------------------
    def _rewrite_baked(self, model: onnx.ModelProto) -> bool:
        shapes = self._traced(model)
        index = GraphIndex(model)
        changed = self._fix_concat_mixing(model, index, shapes)
        if changed:
            return True
        for node in index.nodes:
            if node.op_type not in ("Reshape", "Expand", "Resize") or not node.output:
                continue
            if not shapes.has_batch(node.input[0]):
                continue
            out = shapes.get(node.output[0])
            if not out or not isinstance(out[0], int):
                continue
            label = index.label(node)
            if node.op_type == "Reshape":
                changed |= self._reshape(model, index, shapes, node, label, computed_ok=False)
            elif node.op_type == "Expand":
                changed |= self._expand_batch_input(model, index, shapes, node, label)
            else:
                changed |= self._resize(model, index, shapes, node, label)
        return changed

    def _at_export_batch(self, dims: Sequence[Dim]) -> list[int] | None:
        """*dims* with the traced batch set to the export batch; ``None`` when a dimension stays unknown."""
        values: list[int] = []
        for d in dims:
            if isinstance(d, int):
                values.append(d)
            elif mentions_batch(d):
                value = _evaluate(str(d), self.export_batch)
                if value is None:
                    return None
                values.append(value)
            else:
                return None
        return values

    def _reshape(
        self,
        model: onnx.ModelProto,
        index: GraphIndex,
        shapes: Shapes,
        node: onnx.NodeProto,
        label: str,
        *,
        computed_ok: bool,
    ) -> bool:
        target = index.constant(node.input[1])
        if target is None and not computed_ok:
            return False
        out = shapes.get(node.output[0]) or []
        in_dims = shapes.get(node.input[0]) or []
        new: list[int] | None = None
        if out and out[0] == BATCH_SYMBOL and all(isinstance(d, int) for d in out[1:]):
            new = [-1, *[int(d) for d in out[1:]]]  # type: ignore[arg-type]
        elif out:
            at_export = self._at_export_batch(out)
            per_sample = self._at_export_batch(in_dims[1:]) if in_dims else None
            if at_export is not None and at_export[0] == self.export_batch and per_sample is not None:
                rest = at_export[1:]
                if int(np.prod(rest)) == int(np.prod(per_sample)):
                    new = [-1, *rest]
            if new is None and target is not None and target.ndim == 1 and -1 in target[1:].tolist():
                values = [int(v) for v in target]
                allowzero = index.attribute(node, "allowzero", 0)
                if not (allowzero and 0 in values[1:]):
                    new = [0, *values[1:]]
                    if allowzero:
                        _set_int_attribute(node, "allowzero", 0)
        if new is None:
            self.notes.append(f"Reshape {label!r}: the batch is baked in but the other sizes are unknown")
            return False
        old = target.tolist() if target is not None else "a computed shape"
        node.input[1] = add_initializer(model, f"{node.name or 'reshape'}_shape", np.asarray(new, dtype=np.int64))
        self.change(label, "Reshape", f"target {old} → {new}")
        return True

    def _expand_batch_input(
        self, model: onnx.ModelProto, index: GraphIndex, shapes: Shapes, node: onnx.NodeProto, label: str
    ) -> bool:
        target = index.constant(node.input[1])
        in_dims = shapes.get(node.input[0]) or []
        if target is None or target.ndim != 1 or len(target) != len(in_dims):
            return False
        new = [1, *[int(v) for v in target[1:]]]
        node.input[1] = add_initializer(model, f"{node.name or 'expand'}_shape", np.asarray(new, dtype=np.int64))
        self.change(label, "Expand", f"shape {target.tolist()} → {new} (keeps the input's batch)")
        return True

    def _resize(
        self, model: onnx.ModelProto, index: GraphIndex, shapes: Shapes, node: onnx.NodeProto, label: str
    ) -> bool:
        if len(node.input) < 4 or not node.input[3] or (default_opset(model) or 0) < 11:
            return False
        in_dims = shapes.get(node.input[0]) or []
        out = shapes.get(node.output[0]) or []
        sizes = index.constant(node.input[3])
        if sizes is not None:
            wanted = [int(v) for v in sizes]
        elif out and out[0] == BATCH_SYMBOL and all(isinstance(d, int) for d in out[1:]):
            wanted = [0, *[d for d in out[1:] if isinstance(d, int)]]
        else:
            return False
        if len(in_dims) != len(wanted) or not all(isinstance(d, int) for d in in_dims[1:]):
            self.notes.append(f"Resize {label!r}: input sizes unknown, sizes cannot become scales")
            return False
        scales = [1.0] + [wanted[i] / int(in_dims[i]) for i in range(1, len(wanted))]  # type: ignore[arg-type]
        as_f32 = np.asarray(scales, dtype=np.float32)
        if any(
            int(np.floor(float(np.float32(int(in_dims[i])) * as_f32[i]))) != wanted[i]  # type: ignore[arg-type]
            for i in range(1, len(wanted))
        ):
            self.notes.append(f"Resize {label!r}: sizes {wanted[1:]} are not an exact scale of the input")
            return False
        scales_name = add_initializer(model, f"{node.name or 'resize'}_scales", as_f32)
        old = sizes.tolist() if sizes is not None else "computed sizes"
        if not node.input[1]:
            node.input[1] = ""
        node.input[2] = scales_name
        del node.input[3]
        self.change(label, "Resize", f"sizes {old} → scales {[round(float(s), 6) for s in as_f32]}")
        return True

    def _fix_concat_mixing(self, model: onnx.ModelProto, index: GraphIndex, shapes: Shapes) -> bool:
        """A token expanded/tiled to the export batch and concatenated with batch tensors: take the batch from
        a batch tensor's shape instead."""
        changed = False
        for conflict in shapes.conflicts:
            batch_tensor = conflict.batch_input
            for name in conflict.fixed_inputs:
                d = shapes.get(name)
                if not d or not isinstance(d[0], int) or d[0] != self.export_batch:
                    continue
                producer = index.producer.get(name)
                if producer is None or producer.op_type not in ("Expand", "Tile"):
                    continue
                value = index.constant(producer.input[1])
                src = shapes.get(producer.input[0]) or []
                if value is None or value.ndim != 1 or not len(value) or int(value[0]) != self.export_batch:
                    continue
                if not src or src[0] != 1:
                    continue
                label = index.label(producer)
                batch_1d = self._batch_of(model, batch_tensor)
                rest = add_initializer(
                    model, f"{producer.name or 'expand'}_rest", np.asarray([int(v) for v in value[1:]], dtype=np.int64)
                )
                concat_out = unique_name(model, f"{producer.name or 'expand'}_batch_shape")
                model.graph.node.append(
                    _node(
                        "Concat",
                        [batch_1d, rest],
                        [concat_out],
                        axis=0,
                        name=unique_name(model, f"{producer.name or 'expand'}_batch_concat"),
                    )
                )
                producer.input[1] = concat_out
                what = "shape" if producer.op_type == "Expand" else "repeats"
                self.change(
                    label,
                    producer.op_type,
                    f"{what} {value.tolist()} → [batch of {batch_tensor!r}, "
                    f"{', '.join(str(int(v)) for v in value[1:])}] (the export batch was baked in)",
                )
                changed = True
        if changed:
            sort_nodes(model.graph)
        return changed

    def _batch_of(self, model: onnx.ModelProto, tensor: str) -> str:
        """A 1-D tensor holding the first dimension of *tensor* (Shape, start=0, end=1 / Shape → Slice)."""
        opset = default_opset(model) or 13
        out = unique_name(model, f"{tensor}_batch")
        if opset >= 15:
            model.graph.node.append(
                _node("Shape", [tensor], [out], start=0, end=1, name=unique_name(model, f"{tensor}_batch_shape"))
            )
            return out
        shape = unique_name(model, f"{tensor}_shape")
        model.graph.node.append(_node("Shape", [tensor], [shape], name=unique_name(model, f"{tensor}_shape_node")))
        starts = add_initializer(model, "batch_slice_starts", np.asarray([0], dtype=np.int64))
        ends = add_initializer(model, "batch_slice_ends", np.asarray([1], dtype=np.int64))
        model.graph.node.append(
            _node("Slice", [shape, starts, ends], [out], name=unique_name(model, f"{tensor}_batch_slice"))
        )
        return out

    # -- 3. simplify ------------------------------------------------------------------------------------------------
    def _slim(self, model: onnx.ModelProto) -> onnx.ModelProto:
        import onnxslim

        metadata = [(p.key, p.value) for p in model.metadata_props]
        before = len(model.graph.node)
        before_nodes = {n.name: n.op_type for n in model.graph.node if n.name}
        try:
            slimmed = onnxslim.slim(copy.deepcopy(model))
        except Exception as exc:  # a simplifier bug must not stop the fix: the graph is still correct
            self.notes.append(f"onnxslim failed ({first_line(exc)}); continuing without simplification")
            return model
        if slimmed is None:
            self.notes.append("onnxslim returned nothing; continuing without simplification")
            return model
        if [(p.key, p.value) for p in slimmed.metadata_props] != metadata:
            del slimmed.metadata_props[:]
            for key, value in metadata:
                entry = slimmed.metadata_props.add()
                entry.key, entry.value = key, value
        self.change(
            "<graph>",
            "onnxslim",
            f"simplified: {before} → {len(slimmed.graph.node)} nodes (constant folding, shape-chain folding, fusions)",
        )
        after_names = {n.name for n in slimmed.graph.node}
        for name, op in before_nodes.items():
            if name not in after_names:
                self.change(name, op, "removed by onnxslim (folded or fused)")
        for node in slimmed.graph.node:
            if node.name and node.name not in before_nodes:
                self.change(node.name, node.op_type, "added by onnxslim")
        return slimmed

    # -- 4. shape chains --------------------------------------------------------------------------------------------
    def _fold_chains(self, model: onnx.ModelProto) -> bool:
        shapes = self._traced(model)
        index = GraphIndex(model)
        changed = False
        for node in index.nodes:
            if node.op_type == "Reshape":
                changed |= self._fold_reshape(model, index, shapes, node)
            elif (
                node.op_type == "Resize"
                and len(node.input) > 3
                and node.input[3]
                and index.constant(node.input[3]) is None
                and shapes.has_batch(node.input[0])
            ):
                changed |= self._resize(model, index, shapes, node, index.label(node))
            elif node.op_type == "Expand" and index.constant(node.input[1]) is None and shapes.has_batch(node.input[0]):
                out = shapes.get(node.output[0]) or []
                in_dims = shapes.get(node.input[0]) or []
                if (
                    len(out) == len(in_dims)
                    and out
                    and out[0] == BATCH_SYMBOL
                    and all(isinstance(d, int) for d in out[1:])
                ):
                    new = [1, *[int(d) for d in out[1:]]]  # type: ignore[arg-type]
                    node.input[1] = add_initializer(
                        model, f"{node.name or 'expand'}_shape", np.asarray(new, dtype=np.int64)
                    )
                    self.change(index.label(node), "Expand", f"computed shape → {new}")
                    changed = True
        return changed

    def _fold_reshape(self, model: onnx.ModelProto, index: GraphIndex, shapes: Shapes, node: onnx.NodeProto) -> bool:
        """A Reshape whose output is ``[batch, sizes…]``: a constant target with -1 on the batch axis when the
        sizes are known (the guide's form), else ``[0, …, -1, …]`` for a computed target with one unknown size."""
        out = shapes.get(node.output[0]) or []
        if not out or out[0] != BATCH_SYMBOL:
            return False
        target = index.constant(node.input[1])
        rest = out[1:]
        unknown = [i for i, d in enumerate(rest) if not isinstance(d, int)]
        if not unknown:
            new = [-1, *[int(d) for d in rest]]  # type: ignore[arg-type]
            if target is not None and target.tolist() == new:
                return False
            if target is not None and target.ndim == 1 and target.size and int(target[0]) == -1:
                return False  # already -1 on the batch axis
        elif len(unknown) == 1 and target is None and shapes.has_batch(node.input[0]) and not any(d == 0 for d in rest):
            new = [0, *[int(d) if isinstance(d, int) else -1 for d in rest]]
            _set_int_attribute(node, "allowzero", 0)
        else:
            return False
        label = index.label(node)
        old = target.tolist() if target is not None else "a computed shape"
        node.input[1] = add_initializer(model, f"{node.name or 'reshape'}_shape", np.asarray(new, dtype=np.int64))
        self.change(label, "Reshape", f"target {old} → {new}")
        return True

    # -- outputs ----------------------------------------------------------------------------------------------------
    def _output_shapes(self, model: onnx.ModelProto) -> None:
        shapes = infer_shapes(model, trace_batch=self.batch_inputs if self.dynamic else ())
        declared = {o.name: tensor_dims(o) for o in self.original.graph.output}
        for out in model.graph.output:
            dims = shapes.get(out.name)
            if dims is None:
                continue
            old = declared.get(out.name)
            if self.dynamic and (not dims or dims[0] != BATCH_SYMBOL):
                raise FixError(
                    f"cannot fix {self.source}: output {out.name!r} comes out as {pretty_dims(dims)}, the batch "
                    "could not be made its first dimension"
                )
            new: list[Dim] = []
            for axis, d in enumerate(dims):
                if d == BATCH_SYMBOL:
                    new.append(BATCH_NAME)
                elif isinstance(d, int):
                    new.append(d)
                elif old and axis < len(old) and isinstance(old[axis], str):
                    new.append(old[axis])
                else:
                    new.append(f"{out.name}_dim{axis}")
            if out.type.tensor_type.HasField("shape"):
                out.type.tensor_type.ClearField("shape")
            shape = out.type.tensor_type.shape
            for _ in new:
                shape.dim.add()
            for axis, d in enumerate(new):
                set_dim(out, axis, d)
            if old != new:
                self.change(out.name, "output", f"shape {pretty_dims(old)} → {pretty_dims(new)}")
        del model.graph.value_info[:]


def _evaluate(expression: str, batch: int) -> int | None:
    """An integer dimension expression of the traced batch at *batch* (``2704*__trtapps_batch__`` at 1 → 2704)."""
    try:
        import sympy

        value = sympy.sympify(expression, locals={BATCH_SYMBOL: sympy.Symbol(BATCH_SYMBOL)}).subs(
            sympy.Symbol(BATCH_SYMBOL), batch
        )
        return int(value) if value.is_number and value == int(value) else None
    except Exception:
        return None


def _node(op: str, inputs: list[str], outputs: list[str], *, name: str, **attrs: Any) -> onnx.NodeProto:
    import onnx

    return onnx.helper.make_node(op, inputs, outputs, name=name, **attrs)


def _set_int_attribute(node: onnx.NodeProto, name: str, value: int) -> None:
    for attr in node.attribute:
        if attr.name == name:
            attr.i = value
            return


# -- the proof -----------------------------------------------------------------------------------------------------
def verify_equivalent(
    original: onnx.ModelProto,
    fixed: onnx.ModelProto,
    *,
    batch: int,
    batch_inputs: Sequence[str],
    export_batch: int,
    dynamic: bool,
    original_dynamic: bool,
    images: Sequence[str | Path] | None = None,
    dims: Mapping[str, int] | None = None,
    rel_tol: float = REL_TOL,
    source: Path | None = None,
) -> Verification:
    """Run both models with ONNX Runtime (CPU) and compare per-image outputs (see the module docstring).

    The original runs at its export batch (image by image when its batch is dynamic); the fixed model runs at
    batch 1 and at *batch* when *dynamic*, else at the export batch.

    Raises:
        FixError: a model does not run, shapes differ, or an input dimension has no value.
    """
    start = time.perf_counter()
    where = source or "the model"
    fixed_batches = sorted({1, batch}) if dynamic else [export_batch]
    samples = max(fixed_batches)
    group = 1 if original_dynamic else export_batch
    samples = max(samples, group)
    samples = -(-samples // group) * group  # whole groups for a static original
    photos = _photos(images)
    feeds, batched, used = _make_samples(fixed, batch_inputs, samples, photos, dims or {}, where)
    try:
        orig_session = _session(original)
        fixed_session = _session(fixed)
    except Exception as exc:
        raise FixError(f"cannot fix {where}: ONNX Runtime cannot load the model ({first_line(exc)})") from exc
    outputs = [o.name for o in original.graph.output]
    fixed_outputs = {o.name for o in fixed.graph.output}
    missing = [o for o in outputs if o not in fixed_outputs]
    if missing:
        raise FixError(f"cannot fix {where}: outputs {missing} disappeared from the fixed model")

    # the original, image by image (or export-batch group by group when its batch is fixed)
    reference: dict[str, list[np.ndarray]] = {o: [] for o in outputs}
    for lo in range(0, samples, group):
        result = _run(orig_session, feeds, batched, lo, lo + group, outputs, where, "the original model")
        for name, value in zip(outputs, result, strict=True):
            reference[name].extend(_split(value, group, name, where) if dynamic else [value])

    diffs: dict[str, float] = {o: 0.0 for o in outputs}
    for n in fixed_batches:
        result = _run(fixed_session, feeds, batched, 0, n, outputs, where, f"the fixed model at batch {n}")
        for name, value in zip(outputs, result, strict=True):
            per_image = _split(value, n, name, where) if dynamic else [value]
            for i, got in enumerate(per_image):
                want = reference[name][i]
                if got.shape != want.shape:
                    raise FixError(
                        f"cannot fix {where}: output {name!r} of image {i} has shape {list(got.shape)} at batch "
                        f"{n}, the original gives {list(want.shape)}"
                    )
                diffs[name] = max(diffs[name], _max_abs_diff(got, want))
    checks = []
    for name in outputs:
        ref = np.concatenate([np.asarray(r, dtype=np.float64).reshape(-1) for r in reference[name]])
        finite = ref[np.isfinite(ref)]
        value_range = float(finite.max() - finite.min()) if finite.size else 0.0
        exact = not np.issubdtype(reference[name][0].dtype, np.floating)
        tolerance = 0.0 if exact else rel_tol * max(value_range, 1.0)
        checks.append(OutputCheck(name, diffs[name], tolerance, value_range))
    return Verification(fixed_batches, used, samples, rel_tol, checks, time.perf_counter() - start)


def _session(model: onnx.ModelProto) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = min(4, os.cpu_count() or 1)
    options.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def _run(
    session: Any,
    feeds: dict[str, np.ndarray],
    batched: set[str],
    lo: int,
    hi: int,
    outputs: list[str],
    where: Any,
    what: str,
) -> list[np.ndarray]:
    batch_feeds = {}
    for inp in session.get_inputs():
        value = feeds[inp.name]
        batch_feeds[inp.name] = value[lo:hi] if inp.name in batched else value
    try:
        return [np.asarray(v) for v in session.run(outputs, batch_feeds)]
    except Exception as exc:
        raise FixError(f"cannot fix {where}: {what} fails at batch {hi - lo} ({first_line(exc)})") from exc


def _split(value: np.ndarray, n: int, name: str, where: Any) -> list[np.ndarray]:
    if value.ndim == 0 or value.shape[0] != n:
        raise FixError(
            f"cannot fix {where}: output {name!r} has shape {list(value.shape)}, its first dimension is "
            f"not the batch ({n})"
        )
    return [value[i] for i in range(n)]


def _max_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    if a.size == 0:
        return 0.0
    x, y = a.astype(np.float64), b.astype(np.float64)
    nan_x, nan_y = np.isnan(x), np.isnan(y)
    if np.any(nan_x != nan_y):
        return float("inf")
    mask = ~nan_x
    if not mask.any():
        return 0.0
    same_inf = np.isinf(x) & (x == y)
    d = np.abs(np.where(same_inf, 0.0, x - y))[mask]
    return float(d.max()) if d.size else 0.0


def _photos(images: Sequence[str | Path] | None) -> list[Path]:
    if images is not None:
        found = [Path(p) for p in images]
        missing = [str(p) for p in found if not p.is_file()]
        if missing:
            raise FixError(f"--image {missing[0]}: file not found")
        return found
    data = os.environ.get("TRTAPPS_DATA")
    if not data:
        return []
    return [p for p in (Path(data) / "media" / name for name in DEFAULT_IMAGES) if p.is_file()]


def _make_samples(
    model: onnx.ModelProto,
    batch_inputs: Sequence[str],
    samples: int,
    photos: list[Path],
    dims: Mapping[str, int],
    where: Any,
) -> tuple[dict[str, np.ndarray], set[str], list[str]]:
    """One array per graph input: batch inputs with *samples* rows (photos first), others a single value.

    Returns:
        ``(feeds, names of the batched inputs, descriptions of the photos used)``.
    """
    import onnx

    rng = np.random.default_rng(SEED)
    init_names = {i.name for i in model.graph.initializer}
    feeds: dict[str, np.ndarray] = {}
    used: list[str] = []
    batched_names: set[str] = set()
    for value in model.graph.input:
        if value.name in init_names:
            continue
        shape = tensor_dims(value) or []
        dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(value.type.tensor_type.elem_type))
        batched = value.name in batch_inputs
        image_like = len(shape) == 4 and shape[1] in (1, 3) and np.issubdtype(dtype, np.floating)
        concrete: list[int] = []
        for axis, d in enumerate(shape):
            if batched and axis == 0:
                concrete.append(samples)
            elif isinstance(d, int):
                concrete.append(d)
            elif isinstance(d, str) and d in dims:
                concrete.append(int(dims[d]))
            elif image_like and axis in (2, 3):
                concrete.append(640)
            else:
                raise FixError(
                    f"cannot fix {where}: input {value.name!r} has the dynamic dimension {d or '?'} (axis {axis}); "
                    f"give it a value for the proof with --dim {d or 'NAME'}=VALUE"
                )
        if np.issubdtype(dtype, np.floating):
            array = rng.random(concrete, dtype=np.float32).astype(dtype)
        elif dtype == np.bool_:
            array = rng.random(concrete) < 0.5
        else:
            array = rng.integers(0, 8, concrete).astype(dtype)
        if batched:
            batched_names.add(value.name)
            if image_like:
                for slot, photo in enumerate(photos[: max(0, samples - 1)]):
                    array[slot] = _letterboxed(
                        photo, concrete[1], concrete[2], concrete[3], raw=slot % 2 == 1, dtype=dtype
                    )
                    used.append(f"{photo.name} ({'0-255' if slot % 2 else '0-1'})")
        feeds[value.name] = array
    return feeds, batched_names, used


def _letterboxed(path: Path, channels: int, height: int, width: int, *, raw: bool, dtype: np.dtype) -> np.ndarray:
    import cv2

    from trtapps.ops.letterbox import letterbox

    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE if channels == 1 else cv2.IMREAD_COLOR)
    if image is None:
        raise FixError(f"--image {path}: not a readable image")
    if image.ndim == 2:
        image = image[..., None]
    canvas, _ = letterbox(image, (height, width))
    chw = canvas.transpose(2, 0, 1).astype(np.float32)
    return (chw if raw else chw / 255.0).astype(dtype)


__all__ = [
    "REL_TOL",
    "Change",
    "FixError",
    "FixResult",
    "OutputCheck",
    "Verification",
    "fix_model",
    "verify_equivalent",
]
