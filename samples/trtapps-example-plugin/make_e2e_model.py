"""Turn a YOLOv8/YOLO11 detection export (``[B, 4 + C, N]``, no NMS) into an end-to-end model ``[B, K, 6]``.

The appended head picks, for every anchor, its best class (``ReduceMax``/``ArgMax``), keeps the ``K`` best anchors
(``TopK``), converts their ``cx, cy, w, h`` boxes to ``x1, y1, x2, y2`` and returns rows
``x1, y1, x2, y2, score, class`` in letterboxed input pixels, best first: the output layout of YOLOv10, YOLO26
and Ultralytics ``nms=True`` exports. It runs no NMS, so overlapping duplicates stay; that is enough to exercise
the ``yolo_e2e`` app without downloading a real end-to-end export.

Usage::

    python make_e2e_model.py SRC.onnx [DST.onnx] [--k 300]

``DST`` defaults to ``models/yolov8n_e2e.onnx`` next to this script, where ``configs/example.yaml`` looks.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = Path(__file__).resolve().parent
DEFAULT_OUTPUT = HERE / "models" / "yolov8n_e2e.onnx"


def make_e2e_model(src: str | Path, dst: str | Path, k: int = 300) -> Path:
    """Write the end-to-end version of the YOLOv8-style detection model *src* to *dst*.

    Args:
        src: an ONNX model with one output ``[B, 4 + C, N]`` (boxes ``cx, cy, w, h`` in input pixels, then the
            class scores), as Ultralytics exports YOLOv8/YOLO11 with ``nms=False``.
        dst: where to write the new model (folders are created).
        k: rows per image (fewer when the model has fewer anchors).

    Returns:
        *dst* as a :class:`~pathlib.Path`.

    Raises:
        ValueError: *src* does not have that single ``[B, 4 + C, N]`` output.
    """
    model = onnx.load(str(src))
    graph = model.graph
    if len(graph.output) != 1:
        raise ValueError(f"{src}: expected one output [batch, 4+classes, anchors], found {len(graph.output)}")
    head = graph.output[0]
    dims = head.type.tensor_type.shape.dim
    if len(dims) != 3 or not dims[1].dim_value or dims[1].dim_value < 5:
        raise ValueError(f"{src}: output {head.name!r} is not [batch, 4+classes, anchors]")
    anchors = dims[2].dim_value or None
    k = min(k, anchors) if anchors else k
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    if opset < 13:
        raise ValueError(f"{src}: opset {opset} is too old; export with opset 13 or newer")

    # the new output takes the old output's name ("output0", as Ultralytics names end-to-end outputs too)
    out_name, raw = head.name, "e2e_raw_head"
    for node in graph.node:
        node.output[:] = [raw if name == out_name else name for name in node.output]

    def const(name: str, values: list[int] | list[float], dtype: type = np.int64) -> str:
        graph.initializer.append(numpy_helper.from_array(np.asarray(values, dtype=dtype), name))
        return name

    def node(op: str, inputs: list[str], output: str, **attrs: object) -> str:
        graph.node.append(helper.make_node(op, inputs, [output], name=f"e2e_{output}", **attrs))
        return output

    const("e2e_c0", [0])
    const("e2e_c2", [2])
    const("e2e_c4", [4])
    const("e2e_cmax", [np.iinfo(np.int64).max])
    const("e2e_axis2", [2])
    const("e2e_k", [k])
    const("e2e_half", [0.5], np.float32)
    const("e2e_expand6", [1, 1, 6])

    rows = node("Transpose", [raw], "e2e_rows", perm=[0, 2, 1])  # [B, N, 4 + C]
    xywh = node("Slice", [rows, "e2e_c0", "e2e_c4", "e2e_axis2"], "e2e_xywh")
    classes = node("Slice", [rows, "e2e_c4", "e2e_cmax", "e2e_axis2"], "e2e_classes")
    if opset >= 18:  # ReduceMax takes its axes as an input from opset 18
        score = node("ReduceMax", [classes, "e2e_axis2"], "e2e_score", keepdims=1)
    else:
        score = node("ReduceMax", [classes], "e2e_score", axes=[2], keepdims=1)
    class_id = node("Cast", [node("ArgMax", [classes], "e2e_argmax", axis=2, keepdims=1)], "e2e_class",
                    to=TensorProto.FLOAT)
    xy = node("Slice", [xywh, "e2e_c0", "e2e_c2", "e2e_axis2"], "e2e_xy")
    half_wh = node("Mul", [node("Slice", [xywh, "e2e_c2", "e2e_c4", "e2e_axis2"], "e2e_wh"), "e2e_half"],
                   "e2e_half_wh")
    x1y1 = node("Sub", [xy, half_wh], "e2e_x1y1")
    x2y2 = node("Add", [xy, half_wh], "e2e_x2y2")
    table = node("Concat", [x1y1, x2y2, score, class_id], "e2e_table", axis=2)  # [B, N, 6]
    flat_score = node("Squeeze", [score, "e2e_axis2"], "e2e_flat_score")  # [B, N]
    graph.node.append(helper.make_node("TopK", [flat_score, "e2e_k"], ["e2e_top_scores", "e2e_top_index"],
                                       name="e2e_topk", axis=1, largest=1, sorted=1))
    index = node("Expand", [node("Unsqueeze", ["e2e_top_index", "e2e_axis2"], "e2e_index3"), "e2e_expand6"],
                 "e2e_index6")  # [B, K, 6]
    node("GatherElements", [table, index], out_name, axis=1)

    batch = dims[0].dim_param or (str(dims[0].dim_value) if dims[0].dim_value else "batch")
    del graph.output[:]
    graph.output.append(helper.make_tensor_value_info(out_name, TensorProto.FLOAT, [batch, k, 6]))
    metadata = {p.key: p.value for p in model.metadata_props}
    metadata["end2end"] = "True"
    metadata["max_det"] = str(k)
    metadata["derived"] = (metadata.get("derived", "") + f" End-to-end head appended by make_e2e_model.py "
                           f"(top {k} anchors, no NMS).").strip()
    del model.metadata_props[:]
    for key, value in metadata.items():
        model.metadata_props.append(onnx.StringStringEntryProto(key=key, value=value))
    onnx.checker.check_model(model)
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(dst))
    return dst


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src", type=Path, help="YOLOv8/YOLO11 ONNX export without NMS, e.g. yolov8n.onnx")
    parser.add_argument("dst", type=Path, nargs="?", default=DEFAULT_OUTPUT, help=f"default: {DEFAULT_OUTPUT}")
    parser.add_argument("--k", type=int, default=300, help="rows per image (default 300)")
    args = parser.parse_args(argv)
    path = make_e2e_model(args.src, args.dst, args.k)
    print(f"wrote {path} (output [batch, {args.k}, 6]: x1, y1, x2, y2, score, class)")


if __name__ == "__main__":
    main()
