"""fp16 and int8 (explicit Q/DQ) models made by ``trtapps.onnx.precision`` on the shared YOLOv8n and RetinaFace.

The models are made once per module: fp16 needs no data; int8 is calibrated on 8 shared COCO images fed through
the app's own preprocessing (never on the image the detections are checked on). The accuracy cost on whole
sets is measured by ``benchmarks/precision_accuracy.py``; here the checks are structural (float32 I/O, float32
block list, Q/DQ pairs with zero point 0, per-channel weights, the head left float) plus detections on real
photos.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import onnx
from conftest import shared_path  # tests/conftest.py
from onnx import TensorProto, numpy_helper
from trtapps.errors import ConfigError, InputError, ModelError
from trtapps.onnx.calibration import calibration_images
from trtapps.onnx.graph import drop_repeated_nodes, name_nodes, name_problems, sort_nodes
from trtapps.onnx.metadata import decode_metadata, file_sha256, read_metadata
from trtapps.onnx.precision import (
    apply_precision,
    compare_outputs,
    head_layers,
    stem_layers,
    tail_nodes,
)
from trtapps.ops.boxes import box_iou
from trtapps.pipeline import Pipeline

YOLO = "models/yolov8n_dequant.onnx"
RETINAFACE = "models/retinaface_mnet025.onnx"
CALIB_COUNT = 8


@pytest.fixture(scope="module")
def coco_images() -> Path:
    return shared_path("coco/images")


@pytest.fixture(scope="module")
def yolo_fp16(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    out = tmp_path_factory.mktemp("fp16") / "yolov8n_fp16.onnx"
    report = apply_precision(shared_path(YOLO), out, "fp16", batch=(1, 8))
    return out, report


@pytest.fixture(scope="module")
def yolo_int8(tmp_path_factory: pytest.TempPathFactory, coco_images: Path) -> tuple[Path, Any]:
    out = tmp_path_factory.mktemp("int8") / "yolov8n_int8.onnx"
    report = apply_precision(
        shared_path(YOLO), out, "int8", app={"type": "yolo"}, calib=coco_images, calib_size=CALIB_COUNT
    )
    return out, report


def _detect(model: Path, image: Path, **options: Any) -> Any:
    with Pipeline.from_objects(app={"type": "yolo", "model": str(model), **options}, backend="onnxruntime") as pipe:
        return pipe.predict(image).detections


def _match(got: Any, want: Any) -> np.ndarray:
    """For each wanted detection, the IoU of the best same-class detection in *got*."""
    iou = box_iou(want.boxes, got.boxes)
    same = want.class_ids[:, None] == got.class_ids[None, :]
    return np.where(same, iou, 0.0).max(axis=1) if len(got) else np.zeros(len(want))


# -- fp16 ----------------------------------------------------------------------------------------------------------
def test_fp16_keeps_float32_io_and_the_block_list(yolo_fp16: tuple[Path, Any]) -> None:
    path, report = yolo_fp16
    model = onnx.load(path)
    assert [i.type.tensor_type.elem_type for i in model.graph.input] == [TensorProto.FLOAT]
    assert [o.type.tensor_type.elem_type for o in model.graph.output] == [TensorProto.FLOAT]
    conv_weights = [
        init for init in model.graph.initializer if init.name.endswith(".weight") or "Conv" in init.name
    ] or list(model.graph.initializer)
    assert any(init.data_type == TensorProto.FLOAT16 for init in conv_weights)
    # the decode tail and the DFL softmax stay float32: every float input they read is float32
    source = onnx.load(shared_path(YOLO))
    tail = set(tail_nodes(source.graph))
    assert "/model.22/Concat_3" in tail  # the output concat of boxes and scores
    assert report.kept_fp32["/model.22/dfl/Softmax"].startswith("Softmax")
    inferred = onnx.shape_inference.infer_shapes(model)
    types = {v.name: v.type.tensor_type.elem_type for v in [*inferred.graph.value_info, *inferred.graph.input]}
    for node in model.graph.node:
        if node.name in tail or node.name == "/model.22/dfl/Softmax":
            assert all(types.get(i) != TensorProto.FLOAT16 for i in node.input if i), node.name
    assert report.tool == "onnxruntime.transformers.float16"


def assert_valid_model(path: Path) -> None:
    """ONNX's full check and strict type inference pass, nodes are in topological order (TensorRT's parser reads
    them in file order; the fp16 converter appends the input casts at the end), node names are unique and every
    tensor has one producer (ONNX Runtime refuses repeated node names; onnx.checker does not look), and ONNX
    Runtime loads the model."""
    import onnxruntime as ort

    model = onnx.load(path)
    onnx.checker.check_model(model, full_check=True)
    onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    seen = {i.name for i in model.graph.input} | {i.name for i in model.graph.initializer} | {""}
    for node in model.graph.node:
        assert all(name in seen for name in node.input), node.name
        seen.update(node.output)
    names = Counter(node.name for node in model.graph.node)
    assert "" not in names
    assert [name for name, count in names.items() if count > 1] == []
    outputs = Counter(out for node in model.graph.node for out in node.output if out)
    assert [name for name, count in outputs.items() if count > 1] == []
    ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("which", ["fp16", "int8"])
def test_models_are_valid_onnx_in_node_order(which: str, request: pytest.FixtureRequest) -> None:
    path, _ = request.getfixturevalue(f"yolo_{which}")
    assert_valid_model(path)


def _two_readers_model() -> Any:
    """Conv → t, then two post-processing nodes (kept float32) reading t: fp16 makes t float16 and needs one
    float16 → float32 Cast of t for both."""
    from onnx import helper

    weight = numpy_helper.from_array(np.ones((4, 3, 1, 1), np.float32), "w")
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["t"], name="conv"),
        helper.make_node("Mul", ["t", "k"], ["scaled"], name="mul"),
        helper.make_node("Add", ["t", "k"], ["shifted"], name="add"),
    ]
    graph = helper.make_graph(
        nodes,
        "two_readers",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [
            helper.make_tensor_value_info("scaled", TensorProto.FLOAT, [1, 4, 8, 8]),
            helper.make_tensor_value_info("shifted", TensorProto.FLOAT, [1, 4, 8, 8]),
        ],
        [weight, numpy_helper.from_array(np.full((1,), 2.0, np.float32), "k")],
    )
    # IR 8 (opset 17's): the newest onnx writes an IR version older ONNX Runtime releases refuse
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def test_fp16_removes_the_repeated_casts_of_older_converters(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The fp16 converter of ONNX Runtime 1.30 and 1.31 inserts one Cast per float32 reader of a float16 tensor,
    each named ``<tensor>_cast_to_fp32_node`` and writing ``<tensor>_cast_to_fp32`` (1.32 shares one): two nodes
    of one name, and ONNX Runtime refuses the model ("two nodes with same node name"; seen with onnxruntime-gpu
    1.31.1 on YOLOv8n's DFL and RetinaFace's heads). The conversion has to write a valid model whatever release
    is installed; this imitates the older converter on top of the installed one."""
    import onnxruntime.transformers.float16 as float16

    real = float16.convert_float_to_float16

    def pre_1_32(model: Any, **kwargs: Any) -> Any:
        """The installed converter, then its Casts repeated once per reader as ONNX Runtime 1.31 writes them."""
        converted = real(model, **kwargs)
        graph = converted.graph
        readers = Counter(name for node in graph.node for name in node.input)
        for node in list(graph.node):
            if node.op_type == "Cast" and node.name.endswith("_cast_to_fp32_node"):
                copies = readers[node.output[0]] - sum(n.name == node.name for n in graph.node)
                info = next(v for v in graph.value_info if v.name == node.output[0])
                for _ in range(copies):
                    graph.node.append(node)
                    graph.value_info.append(info)
        return converted

    source = tmp_path / "two_readers.onnx"
    onnx.save(_two_readers_model(), source)
    monkeypatch.setattr(float16, "convert_float_to_float16", pre_1_32)
    imitated = pre_1_32(onnx.load(source), keep_io_types=True, node_block_list=["mul", "add"])
    assert Counter(n.name for n in imitated.graph.node)["t_cast_to_fp32_node"] == 2  # the imitation is faithful

    out = tmp_path / "two_readers_fp16.onnx"
    report = apply_precision(source, out, "fp16")
    assert {"mul", "add"} <= set(report.kept_fp32)
    assert_valid_model(out)
    model = onnx.load(out)
    casts = [n for n in model.graph.node if n.op_type == "Cast" and n.input[0] == "t"]
    assert len(casts) == 1
    assert {n.name: list(n.input) for n in model.graph.node if n.name in ("mul", "add")} == {
        "mul": [casts[0].output[0], "k"],
        "add": [casts[0].output[0], "k"],
    }
    feed = {"x": np.random.default_rng(0).standard_normal((1, 3, 8, 8)).astype(np.float32)}
    for check in compare_outputs(source, out, [feed]):
        assert check.max_abs <= 1e-2 * max(check.ref_absmax, 1.0), check


def test_name_nodes_and_name_problems() -> None:
    """Node names made unique (unnamed and repeated ones), and what onnx.checker lets through is reported."""
    from onnx import helper

    nodes = [
        helper.make_node("Relu", ["x"], ["a"], name="n"),
        helper.make_node("Relu", ["a"], ["b"], name="n"),
        helper.make_node("Relu", ["b"], ["c"]),
        helper.make_node("Relu", ["c"], ["b"], name="Relu_2"),
    ]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", 1, [1])], [helper.make_tensor_value_info("b", 1, [1])]
    )
    assert name_problems(graph) == ["2 nodes are named 'n'", "tensor 'b' is written by 2 nodes"]
    assert name_nodes(graph) == ["n_2", "Relu_2_2"]
    assert [n.name for n in graph.node] == ["n", "n_2", "Relu_2_2", "Relu_2"]
    assert name_problems(graph) == ["tensor 'b' is written by 2 nodes"]


def test_drop_repeated_nodes_keeps_distinct_ones() -> None:
    from onnx import helper

    cast = helper.make_node("Cast", ["x"], ["y"], name="c", to=TensorProto.FLOAT16)
    graph = helper.make_graph(
        [
            cast,
            helper.make_node("Cast", ["x"], ["y"], name="c", to=TensorProto.FLOAT16),  # a repeat
            helper.make_node("Cast", ["x"], ["y2"], name="c", to=TensorProto.FLOAT16),  # another output
            helper.make_node("Cast", ["x"], ["y3"], name="d", to=TensorProto.FLOAT),  # another type
        ],
        "g",
        [helper.make_tensor_value_info("x", 1, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT16, [1])],
        value_info=[helper.make_tensor_value_info("y", TensorProto.FLOAT16, [1])] * 2,
    )
    assert drop_repeated_nodes(graph) == ["c"]
    assert [(n.name, n.output[0]) for n in graph.node] == [("c", "y"), ("c", "y2"), ("d", "y3")]
    assert [v.name for v in graph.value_info] == ["y"]


def test_sort_nodes_orders_producers_first_and_respects_subgraph_reads() -> None:
    from onnx import helper

    then = helper.make_graph(
        [helper.make_node("Identity", ["b"], ["t"])], "then", [], [helper.make_tensor_value_info("t", 1, [1])]
    )
    graph = helper.make_graph(
        [
            helper.make_node("If", ["c"], ["y"], name="if", then_branch=then, else_branch=then),  # reads b inside
            helper.make_node("Relu", ["a"], ["b"], name="relu"),
            helper.make_node("Cast", ["x"], ["a"], name="cast", to=1),
        ],
        "g",
        [helper.make_tensor_value_info("x", 1, [1]), helper.make_tensor_value_info("c", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info("y", 1, [1])],
    )
    sort_nodes(graph)
    assert [n.name for n in graph.node] == ["cast", "relu", "if"]
    # a read from inside a nested body counts too (``onnx fix`` sorts with the same function)
    outer = helper.make_graph(
        [helper.make_node("If", ["c"], ["t"], then_branch=then, else_branch=then)],
        "outer",
        [],
        [helper.make_tensor_value_info("t", 1, [1])],
    )
    graph = helper.make_graph(
        [
            helper.make_node("If", ["c"], ["y"], name="if", then_branch=outer, else_branch=outer),
            helper.make_node("Relu", ["x"], ["b"], name="relu"),
        ],
        "g",
        [helper.make_tensor_value_info("x", 1, [1]), helper.make_tensor_value_info("c", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info("y", 1, [1])],
    )
    sort_nodes(graph)
    assert [n.name for n in graph.node] == ["relu", "if"]


def test_fp16_detections_match_fp32_on_bus(yolo_fp16: tuple[Path, Any]) -> None:
    bus = shared_path("media/bus.jpg")
    want = _detect(shared_path(YOLO), bus)
    got = _detect(yolo_fp16[0], bus)
    assert len(got) == len(want) >= 5
    assert _match(got, want).min() >= 0.95
    np.testing.assert_allclose(np.sort(got.scores), np.sort(want.scores), atol=0.01)


def test_fp16_io_types_can_be_float16_and_the_app_feeds_them(tmp_path: Path) -> None:
    out = tmp_path / "io16.onnx"
    apply_precision(shared_path(YOLO), out, "fp16", keep_io_types=False)
    model = onnx.load(out)
    assert model.graph.input[0].type.tensor_type.elem_type == TensorProto.FLOAT16
    dets = _detect(out, shared_path("media/bus.jpg"))
    assert {0, 5} <= set(dets.class_ids.tolist())  # person, bus


# -- int8 ----------------------------------------------------------------------------------------------------------
def test_int8_has_symmetric_qdq_per_channel_weights_and_a_float_head_and_stem(yolo_int8: tuple[Path, Any]) -> None:
    path, report = yolo_int8
    model = onnx.load(path)
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    quant = [n for n in model.graph.node if n.op_type == "QuantizeLinear"]
    dequant = [n for n in model.graph.node if n.op_type == "DequantizeLinear"]
    assert report.qdq_pairs >= 40
    assert len(quant) == report.qdq_pairs
    for node in [*quant, *dequant]:
        zero_point = inits[node.input[2]]
        assert zero_point.dtype == np.int8, node.name
        assert not zero_point.any(), node.name  # TensorRT: symmetric, zero point 0
    producer = {o: n for n in model.graph.node for o in n.output}
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    quantized = [c for c in convs if c.input[1] in producer and producer[c.input[1]].op_type == "DequantizeLinear"]
    source = onnx.load(shared_path(YOLO)).graph
    head, stem = set(head_layers(source)), set(stem_layers(source))
    assert len(head) == 7  # 3 box-distance convs, 3 class convs, the DFL conv
    assert stem == {"/model.0/conv/Conv", "/model.1/conv/Conv"}  # 3 → 16 and 16 → 32 channels
    assert {c.name for c in convs} - {c.name for c in quantized} == head | stem
    assert set(report.kept_fp32) == head | stem
    for conv in quantized:
        weight_dq = producer[conv.input[1]]
        scale = inits[weight_dq.input[1]]
        assert scale.ndim == 1, conv.name  # per output channel
        assert len(conv.input) < 3 or conv.input[2] in inits  # bias stays float (no int32 bias Q/DQ)
        assert inits[weight_dq.input[0]].dtype == np.int8
        assert producer[conv.input[0]].op_type == "DequantizeLinear"  # the activation input is quantized
    # one Q/DQ pair per quantized activation tensor (layers reading the same tensor share it)
    assert report.qdq_pairs == len({producer[c.input[0]].name for c in quantized})
    # inputs only: no Q/DQ on a layer's output (TensorRT fuses the activation into the layer)
    conv_outputs = {c.output[0] for c in convs}
    assert not [q.name for q in quant if q.input[0] in conv_outputs]
    assert report.calibration["images"] == CALIB_COUNT
    assert report.calibration["method"] == "entropy"
    assert report.calibration["preprocess"]["app"] == "YoloApp"


def test_int8_still_finds_the_persons_and_the_bus(yolo_int8: tuple[Path, Any]) -> None:
    bus = shared_path("media/bus.jpg")
    want = _detect(shared_path(YOLO), bus)
    got = _detect(yolo_int8[0], bus)
    assert (want.class_ids == 0).sum() == 4
    assert (want.class_ids == 5).sum() == 1
    matched = _match(got, want)
    assert (matched >= 0.8).all(), matched  # every fp32 person and the bus, same class, same place
    assert (got.class_ids == 5).sum() == 1


def test_int8_metadata_describes_the_model(yolo_int8: tuple[Path, Any], coco_images: Path) -> None:
    path, report = yolo_int8
    raw = read_metadata(path)
    source_meta = read_metadata(shared_path(YOLO))
    for key, value in source_meta.items():  # every Ultralytics key kept as it was
        assert raw[key] == value
    meta = decode_metadata(raw)
    assert meta["trtapps.precision"] == "int8"
    assert meta["trtapps.variant"] == "v8"
    assert len(meta["trtapps.labels"]) == 80
    assert meta["trtapps.labels"][5] == "bus"
    assert meta["trtapps.source"] == "yolov8n_dequant.onnx"
    assert meta["trtapps.source_sha256"] == file_sha256(shared_path(YOLO))
    calibration = meta["trtapps.calibration"]
    assert calibration["folder"] == str(coco_images)
    assert calibration["images"] == CALIB_COUNT
    assert meta["trtapps.precision_report"]["qdq_pairs"] == report.qdq_pairs >= 40
    assert "onnxruntime" in meta["trtapps.tools"]


def test_retinaface_native_size_fp16_and_int8(tmp_path: Path, coco_images: Path) -> None:
    """Native-size input: calibration images of different sizes run one at a time; faces still found."""
    model = shared_path(RETINAFACE)
    image = shared_path("media/group.jpg")
    outputs = {}
    for precision in ("fp16", "int8"):
        out = tmp_path / f"retinaface_{precision}.onnx"
        apply_precision(model, out, precision, app={"type": "retinaface"}, calib=coco_images, calib_size=6)
        assert_valid_model(out)
        outputs[precision] = out
    faces = {}
    for name, path in [("fp32", model), *outputs.items()]:
        with Pipeline.from_objects(app={"type": "retinaface", "model": str(path)}, backend="onnxruntime") as pipe:
            faces[name] = pipe.predict(image).detections
    want = faces["fp32"]
    assert len(want) >= 5
    for name in ("fp16", "int8"):
        got = faces[name]
        iou = box_iou(want.boxes, got.boxes).max(axis=1)
        assert (iou >= 0.7).mean() >= 0.9, (name, iou)
        assert got.landmarks is not None


def test_int8_of_an_opset_11_export_with_computed_reshapes(tmp_path: Path, coco_images: Path) -> None:
    """The PyPI RetinaFace (opset 11, output widths computed by Shape → Gather → Concat → Reshape): the graph is
    converted to opset 13 for per-channel Q/DQ, and the output widths the app needs survive the rewrite."""
    model = shared_path("models/retinaface_mnet025_yakhyo.onnx")
    out = tmp_path / "yakhyo_int8.onnx"
    report = apply_precision(model, out, "int8", app={"type": "retinaface"}, calib=coco_images, calib_size=4)
    assert "opset 11 → 13 (per-channel Q/DQ needs opset 13)" in report.notes
    converted = onnx.load(out)
    assert next(o.version for o in converted.opset_import if o.domain in ("", "ai.onnx")) == 13
    widths = {o.name: o.type.tensor_type.shape.dim[2].dim_value for o in converted.graph.output}
    assert widths == {"loc": 4, "conf": 2, "landmarks": 10}
    image = shared_path("media/group.jpg")
    faces = []
    for path in (model, out):
        with Pipeline.from_objects(app={"type": "retinaface", "model": str(path)}, backend="onnxruntime") as pipe:
            faces.append(pipe.predict(image).detections)
    assert len(faces[0]) >= 5
    assert (box_iou(faces[0].boxes, faces[1].boxes).max(axis=1) >= 0.7).mean() >= 0.9


def test_int8_reuses_a_calibration_cache(tmp_path: Path, coco_images: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A ranges file written by one int8 run serves the next run with the same images and method (no second
    calibration), which lets several int8 variants share one calibration."""
    cache = tmp_path / "ranges.json"
    model = shared_path(RETINAFACE)
    first = apply_precision(
        model,
        tmp_path / "a.onnx",
        "int8",
        app={"type": "retinaface"},
        calib=coco_images,
        calib_size=2,
        calib_cache=cache,
        check_images=0,
    )
    assert cache.is_file()

    def no_calibration(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("calibrated again instead of reusing the cache")

    monkeypatch.setattr("onnxruntime.quantization.create_calibrator", no_calibration)
    second = apply_precision(
        model,
        tmp_path / "b.onnx",
        "int8",
        app={"type": "retinaface"},
        calib=coco_images,
        calib_size=2,
        calib_cache=cache,
        check_images=0,
        head_fp32=False,
    )
    assert second.calibration == first.calibration
    assert len(second.quantized) > len(first.quantized)  # the head layers are quantized this time


def test_fp32_is_the_same_graph_with_trtapps_metadata(tmp_path: Path) -> None:
    out = tmp_path / "fp32.onnx"
    report = apply_precision(shared_path(YOLO), out, "fp32", metadata={"app": "yolo"}, batch=(1, 4))
    source, copy = onnx.load(shared_path(YOLO)), onnx.load(out)
    assert copy.graph == source.graph
    meta = decode_metadata(read_metadata(out))
    assert (meta["trtapps.precision"], meta["trtapps.app"], meta["trtapps.batch"]) == (
        "fp32",
        "yolo",
        {"min": 1, "max": 4},
    )
    assert report.tool == "copy"


# -- errors --------------------------------------------------------------------------------------------------------
def test_refusals_are_one_line(tmp_path: Path, yolo_fp16: tuple[Path, Any], coco_images: Path) -> None:
    with pytest.raises(ConfigError, match="needs --app and --calib DIR"):
        apply_precision(shared_path(YOLO), tmp_path / "x.onnx", "int8")
    with pytest.raises(ConfigError, match="unknown precision"):
        apply_precision(shared_path(YOLO), tmp_path / "x.onnx", "int4")
    with pytest.raises(ModelError, match="already an fp16 model") as info:
        apply_precision(yolo_fp16[0], tmp_path / "x.onnx", "int8", app={"type": "yolo"}, calib=coco_images)
    assert "\n" not in str(info.value)
    with pytest.raises(ConfigError, match="fp32 node 'nope': no node of that name"):
        apply_precision(shared_path(YOLO), tmp_path / "x.onnx", "fp16", fp32_nodes=["nope"])
    with pytest.raises(ConfigError, match="overwrite the source"):
        apply_precision(yolo_fp16[0], yolo_fp16[0], "fp16")
    with pytest.raises(InputError, match="calibration folder not found"):
        apply_precision(shared_path(YOLO), tmp_path / "x.onnx", "int8", app={"type": "yolo"}, calib=tmp_path / "no")
    assert not (tmp_path / "x.onnx").exists()


def test_calibration_images_selection(tmp_path: Path) -> None:
    import cv2

    for i in range(10):
        cv2.imwrite(str(tmp_path / f"{i:02d}.jpg"), np.full((8, 8, 3), i, np.uint8))
    (tmp_path / "notes.txt").write_text("not an image")
    chosen = calibration_images(tmp_path, limit=4, exclude=["09.jpg"])
    assert [p.name for p in chosen.images] == ["00.jpg", "03.jpg", "05.jpg", "08.jpg"]  # evenly spaced over 9
    assert (chosen.available, chosen.excluded) == (9, 1)
    described = chosen.describe()
    assert described["selection"] == "evenly spaced over the sorted names"
    assert (described["first"], described["last"]) == ("00.jpg", "08.jpg")
    with pytest.raises(InputError, match=r"no calibration images \(10 excluded\)"):
        calibration_images(tmp_path, exclude=[f"{i:02d}.jpg" for i in range(10)])
