"""The evaluation metrics on hand-made cases with known answers.

COCO mAP through pycocotools on tiny sets (perfect → 1.0, a false positive ranked first, a missed box, a
localisation that only passes the low IoU thresholds, two classes averaged). The WIDER FACE functions against
values worked out by hand below, and against a line-by-line transcription of the official
``widerface_evaluate/evaluation.py`` loops on random cases. Also the presets, the class matching, the YOLO
set conversion, the loader resize and the precision check.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import cv2
import numpy as np
import pytest
import typer
import yaml
from typer.testing import CliRunner

import onnx
from onnx import TensorProto, helper
from trtapps.errors import ConfigError, InputError
from trtapps.evaluation import (
    COCO80,
    COCO80_TO_COCO91,
    EvalPreset,
    FaceImage,
    bbox_overlaps,
    category_map,
    check_precision,
    coco_score,
    dataset_pr_info,
    find_preset,
    image_eval,
    img_pr_info,
    load_detection_set,
    norm_score,
    resolve_preset,
    to_coco_results,
    voc_ap,
    wider_ap,
    wider_predictions,
)
from trtapps.evaluation.inference import _unresize, long_side_resize, model_precision
from trtapps.structures import Detections

# ---------------------------------------------------------------------------------------------------------------------
# COCO mAP
# ---------------------------------------------------------------------------------------------------------------------
CATEGORIES = [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}]


def gt_set(boxes: list[tuple[int, int, list[float]]], images: int = 1) -> dict[str, Any]:
    """COCO ground truth: ``boxes`` = ``[(image_id, category_id, [x, y, w, h])]``."""
    return {
        "images": [{"id": i, "file_name": f"{i}.jpg", "width": 640, "height": 480} for i in range(1, images + 1)],
        "annotations": [
            {"id": n + 1, "image_id": img, "category_id": cat, "bbox": box, "area": box[2] * box[3], "iscrowd": 0}
            for n, (img, cat, box) in enumerate(boxes)
        ],
        "categories": CATEGORIES,
    }


def det(image_id: int, category_id: int, box: list[float], score: float) -> dict[str, Any]:
    return {"image_id": image_id, "category_id": category_id, "bbox": box, "score": score}


def test_perfect_detections_score_one(capsys: pytest.CaptureFixture[str]) -> None:
    boxes = [(1, 1, [10, 10, 100, 80]), (1, 2, [200, 50, 60, 120]), (2, 1, [300, 300, 50, 50])]
    result = coco_score(gt_set(boxes, images=2), [det(i, c, b, 0.9) for i, c, b in boxes])
    assert result.map50_95 == pytest.approx(1.0)
    assert result.map50 == pytest.approx(1.0)
    assert [(c.name, c.instances) for c in result.per_class] == [("cat", 2), ("dog", 1)]
    assert [c.ap for c in result.per_class] == pytest.approx([1.0, 1.0])
    assert capsys.readouterr().out == ""  # pycocotools' printing is swallowed by the library


def test_false_positive_ranked_above_the_true_one_halves_ap() -> None:
    # ranks: FP (P 0, R 0), TP (P 1/2, R 1): the interpolated precision is 1/2 at every recall
    gt = gt_set([(1, 1, [10, 10, 100, 100])])
    result = coco_score(gt, [det(1, 1, [400, 300, 50, 50], 0.9), det(1, 1, [10, 10, 100, 100], 0.8)])
    assert result.map50 == pytest.approx(0.5)
    assert result.map50_95 == pytest.approx(0.5)


def test_missed_box_caps_recall_at_half() -> None:
    # recall reaches 0.5 with precision 1: 51 of COCO's 101 recall points (0.00 … 0.50) have precision 1
    gt = gt_set([(1, 1, [10, 10, 100, 100]), (1, 1, [300, 200, 80, 80])])
    result = coco_score(gt, [det(1, 1, [10, 10, 100, 100], 0.9)])
    assert result.map50 == pytest.approx(51 / 101)
    assert result.map50_95 == pytest.approx(51 / 101)


def test_loose_box_passes_only_the_low_iou_thresholds() -> None:
    # IoU 0.72 (7200 / 10000): a match at 0.50, 0.55, 0.60, 0.65, 0.70; a miss at 0.75 … 0.95
    gt = gt_set([(1, 1, [0, 0, 100, 100])])
    result = coco_score(gt, [det(1, 1, [0, 0, 100, 72], 0.9)])
    assert result.map50 == pytest.approx(1.0)
    assert result.map50_95 == pytest.approx(0.5)


def test_classes_are_averaged_and_no_detections_score_zero() -> None:
    gt = gt_set([(1, 1, [10, 10, 100, 100]), (1, 2, [300, 200, 80, 80])])
    dets = [det(1, 1, [10, 10, 100, 100], 0.9), det(1, 2, [0, 0, 30, 30], 0.95), det(1, 2, [300, 200, 80, 80], 0.5)]
    result = coco_score(gt, dets)
    assert result.map50_95 == pytest.approx(0.75)
    assert {c.name: c.ap for c in result.per_class} == pytest.approx({"cat": 1.0, "dog": 0.5})
    assert coco_score(gt, []).map50_95 == 0.0


def test_coco_results_round_like_ultralytics_and_drop_unmatched_classes() -> None:
    dets = Detections(
        boxes=np.array([[10.12345, 20.5, 110.0, 70.25], [0, 0, 5, 5]], np.float32),
        scores=np.array([0.123456789, 0.5], np.float32),
        class_ids=np.array([1, 2], np.int32),
    )
    results = to_coco_results({7: dets}, np.array([5, 9, -1]))
    assert results == [{"image_id": 7, "category_id": 9, "bbox": [10.123, 20.5, 99.877, 49.75], "score": 0.12346}]


# ---------------------------------------------------------------------------------------------------------------------
# Class matching and sets
# ---------------------------------------------------------------------------------------------------------------------
def test_category_map_rules() -> None:
    coco_categories = [{"id": cid, "name": name} for name, cid in zip(COCO80, COCO80_TO_COCO91)]
    ids, how = category_map(list(COCO80), coco_categories)
    assert how == "by name"
    assert ids.tolist() == list(COCO80_TO_COCO91)
    ids, how = category_map([str(i) for i in range(80)], coco_categories)  # unnamed 80-class model
    assert (ids.tolist(), how) == (list(COCO80_TO_COCO91), "COCO-80 → COCO-91 ids")
    assert category_map(["a", "b"], [{"id": 0, "name": "x"}, {"id": 1, "name": "y"}])[1] == "by index"
    assert category_map(["a", "b"], [{"id": 1, "name": "x"}, {"id": 2, "name": "y"}])[0].tolist() == [1, 2]
    ids, _ = category_map(["Dog", "cat", "bird"], CATEGORIES)  # names, any case; bird is not in the set
    assert ids.tolist() == [2, 1, -1]
    with pytest.raises(ConfigError, match="cannot be matched"):
        category_map(["a"], [{"id": 5, "name": "x"}])


def write_yolo_set(root: Path, names: list[str] | dict[int, str]) -> None:
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    cv2.imwrite(str(root / "images" / "000000000042.jpg"), np.zeros((200, 400, 3), np.uint8))
    cv2.imwrite(str(root / "images" / "000000000007.jpg"), np.zeros((100, 100, 3), np.uint8))  # background
    (root / "labels" / "000000000042.txt").write_text("1 0.5 0.5 0.25 0.5\n0 0.1 0.1 0.1 0.1 0.2 0.2 0.1 0.2\n")
    (root / "data.yaml").write_text(yaml.safe_dump({"val": "images", "names": names}))


def test_yolo_set_converts_to_coco(tmp_path: Path) -> None:
    write_yolo_set(tmp_path, {0: "cat", 1: "dog"})
    data = load_detection_set(tmp_path)
    assert data.format == "yolo"
    assert [(i.key, i.path.name) for i in data.images] == [(7, "000000000007.jpg"), (42, "000000000042.jpg")]
    gt = data.ground_truth({7: (100, 100), 42: (200, 400)})
    assert gt["categories"] == [{"id": 0, "name": "cat"}, {"id": 1, "name": "dog"}]
    assert [(a["image_id"], a["category_id"], a["bbox"], a["area"]) for a in gt["annotations"]] == [
        (42, 1, [150.0, 50.0, 100.0, 100.0], 10000.0),
        (42, 0, [40.0, 20.0, 40.0, 20.0], 800.0),  # a polygon becomes its bounding box
    ]
    assert {i["id"]: (i["width"], i["height"]) for i in gt["images"]} == {7: (100, 100), 42: (400, 200)}
    with pytest.raises(InputError, match="size unknown"):
        data.ground_truth({42: (200, 400)})


def test_yolo_set_with_coco_names_gets_coco_ids(tmp_path: Path) -> None:
    write_yolo_set(tmp_path, list(COCO80))
    categories = load_detection_set(tmp_path / "data.yaml").categories
    assert [c["id"] for c in categories] == list(COCO80_TO_COCO91)


def test_coco_set_and_layout_errors(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    cv2.imwrite(str(tmp_path / "images" / "a.jpg"), np.zeros((10, 20, 3), np.uint8))
    gt = gt_set([(1, 1, [1, 1, 5, 5])])
    gt["images"][0]["file_name"] = "a.jpg"
    del gt["annotations"][0]["area"]
    (tmp_path / "instances.json").write_text(json.dumps(gt))
    data = load_detection_set(tmp_path)
    assert (data.format, data.images[0].path, data.images[0].size) == (
        "coco",
        tmp_path / "images" / "a.jpg",
        (480, 640),
    )
    assert data.ground_truth()["annotations"][0]["area"] == 25
    gt["images"][0]["file_name"] = "missing.jpg"
    (tmp_path / "other.json").write_text(json.dumps(gt))
    with pytest.raises(InputError, match="not found"):
        load_detection_set(tmp_path, tmp_path / "other.json")
    with pytest.raises(InputError, match="neither a COCO set"):
        load_detection_set(tmp_path / "images")


# ---------------------------------------------------------------------------------------------------------------------
# Presets
# ---------------------------------------------------------------------------------------------------------------------
def test_preset_from_the_bound_apps_variant() -> None:
    yolo = SimpleNamespace(head=SimpleNamespace(variant="v8"))
    assert find_preset("detect", "yolo", yolo).name == "yolov8"
    assert find_preset("detect", "yolo", SimpleNamespace(head=SimpleNamespace(variant="yolox"))).name == "yolox"
    assert find_preset("detect", "yolo", SimpleNamespace(variant="v5")).name == "yolov5"
    assert find_preset("faces", "retinaface", object()).name == "retinaface-widerface"
    generic = find_preset("detect", "mydet", object())
    assert (generic.name, dict(generic.options)) == ("generic", {"conf_threshold": 0.001})
    with pytest.raises(ValueError, match="unknown evaluation task"):
        find_preset("segment", "yolo")


def test_plugin_app_supplies_its_own_preset() -> None:
    class MyApp:
        def eval_preset(self, task: str) -> Any:
            return {"conf_threshold": 0.005} if task == "detect" else None

    own = find_preset("detect", "mydet", MyApp())
    assert (own.name, dict(own.options)) == ("mydet", {"conf_threshold": 0.005})
    assert find_preset("faces", "mydet", MyApp()).name == "generic"


def test_resolve_preset_drops_missing_options_and_applies_overrides() -> None:
    preset = EvalPreset("p", {"conf_threshold": 0.001, "iou_threshold": 0.7, "clip_boxes": False})
    fitted = resolve_preset(preset, ["conf_threshold", "iou_threshold"], {"iou_threshold": 0.5, "conf_threshold": None})
    assert dict(fitted.options) == {"conf_threshold": 0.001, "iou_threshold": 0.5}
    assert (fitted.ignored, dict(fitted.overrides)) == (("clip_boxes",), {"iou_threshold": 0.5})
    assert "overridden: iou_threshold 0.5" in fitted.describe()
    assert "not supported by the app: clip_boxes" in fitted.describe()
    with pytest.raises(KeyError):
        resolve_preset(preset, ["conf_threshold"], {"iou_threshold": 0.5})


# ---------------------------------------------------------------------------------------------------------------------
# Loader resize (Ultralytics / YOLOv5 val) and precision
# ---------------------------------------------------------------------------------------------------------------------
def test_long_side_resize_matches_the_val_loader() -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (375, 500, 3), dtype=np.uint8)
    out = long_side_resize(image, 640, "linear")  # r = 1.28: 500 → 640, 375 → ceil(480.0) = 480
    assert out.shape == (480, 640, 3)
    np.testing.assert_array_equal(out, cv2.resize(image, (640, 480), interpolation=cv2.INTER_LINEAR))
    big = rng.integers(0, 255, (700, 1001, 3), dtype=np.uint8)  # r < 1: YOLOv5 shrinks with INTER_AREA
    shrunk = long_side_resize(big, 640, "area_down")
    assert shrunk.shape == (448, 640, 3)  # ceil(700 · 640/1001) = ceil(447.55)
    np.testing.assert_array_equal(shrunk, cv2.resize(big, (640, 448), interpolation=cv2.INTER_AREA))
    same = rng.integers(0, 255, (640, 320, 3), dtype=np.uint8)
    assert long_side_resize(same, 640, "linear") is same


def test_boxes_map_back_with_the_height_gain() -> None:
    dets = Detections(np.array([[64, 48, 640, 480]], np.float32), np.array([0.9]), np.array([0]))
    back = _unresize(dets, (480, 640), (375, 500))  # gain 480/375 = 1.28
    np.testing.assert_allclose(back.boxes, [[50, 37.5, 500, 375]], rtol=1e-6)


def tiny_model(path: Path, dtype: int = TensorProto.FLOAT, qdq: bool = False) -> Path:
    """A one-node ONNX graph (Add with a constant) in the given precision, optionally with Q/DQ nodes."""
    inp = helper.make_tensor_value_info("x", dtype, [1, 3])
    outp = helper.make_tensor_value_info("y", dtype, [1, 3])
    weight = helper.make_tensor("w", dtype, [3], [1.0, 2.0, 3.0])
    nodes = [helper.make_node("Add", ["x", "w"], ["y"])]
    inits = [weight]
    if qdq:
        inits += [
            helper.make_tensor("s", TensorProto.FLOAT, [], [0.1]),
            helper.make_tensor("z", TensorProto.INT8, [], [0]),
        ]
        nodes = [
            helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"]),
            helper.make_node("DequantizeLinear", ["q", "s", "z"], ["d"]),
            helper.make_node("Add", ["d", "w"], ["y"]),
        ]
    graph = helper.make_graph(nodes, "g", [inp], [outp], inits)
    onnx.save(helper.make_model(graph), str(path))
    return path


def test_precision_is_checked_against_the_graph(tmp_path: Path) -> None:
    fp32 = tiny_model(tmp_path / "fp32.onnx")
    fp16 = tiny_model(tmp_path / "fp16.onnx", TensorProto.FLOAT16)
    int8 = tiny_model(tmp_path / "int8.onnx", qdq=True)
    assert [model_precision(p) for p in (fp32, fp16, int8)] == ["fp32", "fp16", "int8"]
    assert model_precision(tmp_path / "model.engine") is None
    assert check_precision("fp32", fp32) == "fp32"
    assert check_precision("fp16", fp16) == "fp16"  # an already converted model is fine
    with pytest.raises(ConfigError) as info:
        check_precision("fp16", fp32, "yolo")
    message = str(info.value)
    assert "fp32.onnx is an fp32 model, and eval runs the model as given (it does not convert it)" in message
    assert f"`trtapps build {fp32} --app yolo --precision fp16` and pass it with --model" in message
    assert message.endswith("or use --precision fp32")
    assert "calib" not in message
    assert "\n" not in message
    with pytest.raises(ConfigError, match=r"--precision int8 --calib IMAGES` \(calibration images outside"):
        check_precision("int8", fp16)
    with pytest.raises(ConfigError, match="is an int8 model; pass --precision int8"):
        check_precision("fp32", int8)
    with pytest.raises(ConfigError, match="unknown precision"):
        check_precision("bf16", fp32)


def test_cli_refuses_a_precision_the_model_does_not_have(tmp_path: Path) -> None:
    from trtapps.cli import eval as eval_cli

    write_yolo_set(tmp_path / "set", ["cat", "dog"])
    model = tiny_model(tmp_path / "m.onnx")
    root = typer.Typer()
    eval_cli.register(root)
    root.command("noop")(lambda: None)  # a second command, so "eval" stays a sub-command
    args = ["eval", "detect", "--app", "yolo", "--model", str(model), "--data", str(tmp_path / "set")]
    result = CliRunner().invoke(root, [*args, "--precision", "int8", "-q"])
    assert isinstance(result.exception, ConfigError)
    assert "eval runs the model as given" in str(result.exception)
    assert "--app yolo --precision int8 --calib IMAGES`" in str(result.exception)
    help_text = CliRunner().invoke(root, ["eval", "detect", "--help"], env={"COLUMNS": "200"}).output
    help_text = " ".join(help_text.replace("│", " ").split())
    assert "eval runs the model as given and converts nothing" in help_text
    assert "trtapps build MODEL --app APP --precision fp16|int8" in help_text


# ---------------------------------------------------------------------------------------------------------------------
# WIDER FACE: hand-computed values
# ---------------------------------------------------------------------------------------------------------------------
def test_bbox_overlaps_use_plus_one_areas() -> None:
    # 10×10 boxes (0…9) overlapping in a 5×5 corner: 25 / (100 + 100 − 25)
    ov = bbox_overlaps(np.array([[0, 0, 9, 9], [20, 20, 29, 29]]), np.array([[5, 5, 14, 14]]))
    np.testing.assert_allclose(ov, [[25 / 175], [0.0]])


def hand_case() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Three faces, the middle one ignored; five detections, best first.

    p0 → face 0 (recall 1), p1 → the ignored face (not a proposal), p2 → face 0 again (a proposal, recall
    unchanged), p3 → nothing (a false positive), p4 → face 2 (recall 2).
    """
    gt = np.array([[0, 0, 20, 20], [100, 0, 20, 20], [200, 0, 20, 20]], float)
    pred = np.array(
        [
            [0, 0, 20, 20, 0.95],
            [100, 0, 20, 20, 0.85],
            [1, 1, 20, 20, 0.55],
            [500, 500, 10, 10, 0.35],
            [200, 0, 19, 19, 0.05],
        ]
    )
    ignore = np.array([1, 0, 1])  # the official naming: 1 = counted, 0 = ignored
    return pred, gt, ignore


def test_image_eval_by_hand() -> None:
    pred, gt, ignore = hand_case()
    pred_recall, proposals = image_eval(pred, gt, ignore, 0.5)
    assert pred_recall.tolist() == [1, 1, 1, 1, 2]
    assert proposals.tolist() == [1, -1, 1, 1, 1]


def test_img_pr_info_and_dataset_pr_info_by_hand() -> None:
    pred, gt, ignore = hand_case()
    pred_recall, proposals = image_eval(pred, gt, ignore, 0.5)
    # thresholds 0.9, 0.8, …, 0.0 → last detection scoring ≥ each: 0, 1, 1, 1, 2, 2, 3, 3, 3, 4
    info = img_pr_info(10, pred, proposals, pred_recall)
    expected = [[1, 1], [1, 1], [1, 1], [1, 1], [2, 1], [2, 1], [3, 1], [3, 1], [3, 1], [4, 2]]
    assert info.tolist() == expected
    curve = dataset_pr_info(10, info, count_face=2)
    np.testing.assert_allclose(curve[:, 0], [1, 1, 1, 1, 1 / 2, 1 / 2, 1 / 3, 1 / 3, 1 / 3, 1 / 2])
    np.testing.assert_allclose(curve[:, 1], [0.5] * 9 + [1.0])
    # envelope: precision 1 up to recall 0.5, then 0.5 up to recall 1 → 0.5·1 + 0.5·0.5
    assert voc_ap(curve[:, 1], curve[:, 0]) == pytest.approx(0.75)


def test_no_proposal_gives_nan_precision_without_warnings() -> None:
    curve = dataset_pr_info(3, np.zeros((3, 2)), count_face=4)
    assert np.isnan(curve[:, 0]).all()
    assert curve[:, 1].tolist() == [0, 0, 0]


def test_norm_score_over_the_whole_set() -> None:
    preds = {
        "a": np.array([[0, 0, 1, 1, 0.5], [0, 0, 1, 1, 0.3]]),
        "b": np.array([[0, 0, 1, 1, 0.9]]),
        "c": np.zeros((0, 5)),
    }
    normed = norm_score(preds)
    np.testing.assert_allclose(normed["a"][:, 4], [1 / 3, 0.0])
    np.testing.assert_allclose(normed["b"][:, 4], [1.0])
    assert normed["c"].shape == (0, 5)
    assert preds["a"][0, 4] == 0.5  # the input is not changed


def test_wider_predictions_truncate_like_test_widerface() -> None:
    dets = Detections(np.array([[10.7, 20.2, 30.9, 40.99], [-3.7, -0.5, 5.2, 6.9]]), np.array([0.9, 0.1]), np.zeros(2))
    np.testing.assert_allclose(wider_predictions(dets), [[10, 20, 20, 20, 0.9], [-3, 0, 8, 6, 0.1]], rtol=1e-6)


def test_wider_ap_by_hand() -> None:
    # easy counts face 0 only, medium faces 0 and 2, hard all three (face 1 is found by p1)
    pred, gt, _ = hand_case()
    image = FaceImage("e/x.jpg", gt, {"easy": np.array([0]), "medium": np.array([0, 2]), "hard": np.array([0, 1, 2])})
    other = FaceImage(
        "e/y.jpg",
        np.array([[0, 0, 10, 10]], float),
        {"easy": np.array([], int), "medium": np.array([], int), "hard": np.array([0])},
    )
    aps = wider_ap({"e/x.jpg": pred}, [image, other], thresh_num=10)
    # scores normalise to (s − 0.05) / 0.9: 1, 0.889, 0.556, 0.333, 0 — the same cut points as above
    # medium: the hand case (0.75) but face 1 ignored; hard: p1 recalls face 1, and 4 faces count
    assert aps["medium"] == pytest.approx(0.75)
    # easy: p0 recalls the only face; p2 is a proposal, p1 and p4 hit ignored faces: precision 1 then ≤ 1 → 1
    assert aps["easy"] == pytest.approx(1.0)
    # hard: recalled after p0, p1, p4 = 1, 2, 3 of 4 faces; proposals 1, 2, 3, 4, 5:
    # recall 0.25 (P 1), 0.5 (P 1), 0.75 (P 3/5) → 0.25 + 0.25 + 0.25·0.6
    assert aps["hard"] == pytest.approx(0.25 + 0.25 + 0.25 * 0.6)


# ---------------------------------------------------------------------------------------------------------------------
# WIDER FACE: the vectorised functions equal the official loops
# ---------------------------------------------------------------------------------------------------------------------
def official_bbox_overlaps(boxes: np.ndarray, query_boxes: np.ndarray) -> np.ndarray:
    n, k = boxes.shape[0], query_boxes.shape[0]
    overlaps = np.zeros((n, k), dtype=float)
    for kk in range(k):
        box_area = (query_boxes[kk, 2] - query_boxes[kk, 0] + 1) * (query_boxes[kk, 3] - query_boxes[kk, 1] + 1)
        for nn in range(n):
            iw = min(boxes[nn, 2], query_boxes[kk, 2]) - max(boxes[nn, 0], query_boxes[kk, 0]) + 1
            if iw > 0:
                ih = min(boxes[nn, 3], query_boxes[kk, 3]) - max(boxes[nn, 1], query_boxes[kk, 1]) + 1
                if ih > 0:
                    ua = float(
                        (boxes[nn, 2] - boxes[nn, 0] + 1) * (boxes[nn, 3] - boxes[nn, 1] + 1) + box_area - iw * ih
                    )
                    overlaps[nn, kk] = iw * ih / ua
    return overlaps


def official_image_eval(pred: np.ndarray, gt: np.ndarray, ignore: np.ndarray, iou_thresh: float) -> tuple:
    _pred = pred.copy()
    _gt = gt.copy()
    pred_recall = np.zeros(_pred.shape[0])
    recall_list = np.zeros(_gt.shape[0])
    proposal_list = np.ones(_pred.shape[0])
    _pred[:, 2] = _pred[:, 2] + _pred[:, 0]
    _pred[:, 3] = _pred[:, 3] + _pred[:, 1]
    _gt[:, 2] = _gt[:, 2] + _gt[:, 0]
    _gt[:, 3] = _gt[:, 3] + _gt[:, 1]
    overlaps = official_bbox_overlaps(_pred[:, :4], _gt)
    for h in range(_pred.shape[0]):
        gt_overlap = overlaps[h]
        max_overlap, max_idx = gt_overlap.max(), gt_overlap.argmax()
        if max_overlap >= iou_thresh:
            if ignore[max_idx] == 0:
                recall_list[max_idx] = -1
                proposal_list[h] = -1
            elif recall_list[max_idx] == 0:
                recall_list[max_idx] = 1
        r_keep_index = np.where(recall_list == 1)[0]
        pred_recall[h] = len(r_keep_index)
    return pred_recall, proposal_list


def official_img_pr_info(
    thresh_num: int, pred_info: np.ndarray, proposal_list: np.ndarray, pred_recall: np.ndarray
) -> np.ndarray:
    pr_info = np.zeros((thresh_num, 2)).astype("float")
    for t in range(thresh_num):
        thresh = 1 - (t + 1) / thresh_num
        r_index = np.where(pred_info[:, 4] >= thresh)[0]
        if len(r_index) == 0:
            pr_info[t, 0] = 0
            pr_info[t, 1] = 0
        else:
            r_index = r_index[-1]
            p_index = np.where(proposal_list[: r_index + 1] == 1)[0]
            pr_info[t, 0] = len(p_index)
            pr_info[t, 1] = pred_recall[r_index]
    return pr_info


def official_voc_ap(rec: np.ndarray, prec: np.ndarray) -> float:
    mrec = np.concatenate(([0.0], rec, [1.0]))
    mpre = np.concatenate(([0.0], prec, [0.0]))
    for i in range(mpre.size - 1, 0, -1):
        mpre[i - 1] = np.maximum(mpre[i - 1], mpre[i])
    i = np.where(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1]))


def random_image(rng: np.random.Generator, n_gt: int, n_pred: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    gt = np.column_stack([rng.integers(0, 200, (n_gt, 2)), rng.integers(0, 40, (n_gt, 2))]).astype(float)
    # detections near faces (some duplicates), plus clutter; integer boxes like the written files
    near = gt[rng.integers(0, n_gt, n_pred)] + rng.integers(-4, 5, (n_pred, 4))
    clutter = rng.random(n_pred) < 0.3
    near[clutter] = np.column_stack(
        [rng.integers(0, 240, (int(clutter.sum()), 2)), rng.integers(1, 40, (int(clutter.sum()), 2))]
    )
    near[:, 2:] = np.maximum(near[:, 2:], 0)  # widths ≥ 0: every +1 area is positive
    scores = np.sort(rng.random(n_pred))[::-1]
    scores[rng.random(n_pred) < 0.2] = scores[0]  # ties and some out-of-order scores
    ignore = (rng.random(n_gt) < 0.6).astype(float)
    return np.column_stack([near, scores]), gt, ignore


@pytest.mark.parametrize("seed", range(8))
def test_vectorised_functions_equal_the_official_loops(seed: int) -> None:
    rng = np.random.default_rng(seed)
    pred, gt, ignore = random_image(rng, n_gt=int(rng.integers(1, 12)), n_pred=int(rng.integers(1, 30)))
    np.testing.assert_allclose(bbox_overlaps(pred[:, :4], gt), official_bbox_overlaps(pred[:, :4], gt), rtol=1e-12)
    recall, proposals = image_eval(pred, gt, ignore, 0.5)
    ref_recall, ref_proposals = official_image_eval(pred, gt, ignore, 0.5)
    np.testing.assert_array_equal(recall, ref_recall)
    np.testing.assert_array_equal(proposals, ref_proposals)
    info = img_pr_info(1000, pred, proposals, recall)
    np.testing.assert_array_equal(info, official_img_pr_info(1000, pred, ref_proposals, ref_recall))
    rec = np.sort(rng.random(50))
    prec = rng.random(50)
    assert voc_ap(rec, prec) == pytest.approx(official_voc_ap(rec, prec), rel=1e-12)


def cell(items: list[Any]) -> np.ndarray:
    """A MATLAB cell column, as the official .mat files store their lists."""
    out = np.empty((len(items), 1), dtype=object)
    for i, item in enumerate(items):
        out[i, 0] = item
    return out


def test_official_ground_truth_folder_is_read(tmp_path: Path) -> None:
    from scipy.io import savemat

    from trtapps.evaluation import load_wider_gt

    boxes = [np.array([[1, 2, 3, 4], [5, 6, 7, 8]], float), np.array([[9, 9, 9, 9]], float)]
    savemat(
        tmp_path / "wider_face_val.mat",
        {
            "event_list": cell([np.array(["0--Parade"])]),
            "file_list": cell([cell([np.array(["0_Parade_a"]), np.array(["0_Parade_b"])])]),
            "face_bbx_list": cell([cell(boxes)]),
        },
    )
    selections = {"easy": [[1], []], "medium": [[1], [1]], "hard": [[2, 1], [1]]}  # 1-based, as in the toolkit
    for setting, per_image in selections.items():
        lists = [np.array(v, dtype=np.float64).reshape(-1, 1) for v in per_image]
        savemat(tmp_path / f"wider_{setting}_val.mat", {"gt_list": cell([cell(lists)])})
    images = load_wider_gt(tmp_path)
    assert [i.name for i in images] == ["0--Parade/0_Parade_a.jpg", "0--Parade/0_Parade_b.jpg"]
    np.testing.assert_array_equal(images[0].boxes, boxes[0])
    assert {s: v.tolist() for s, v in images[0].selections.items()} == {"easy": [0], "medium": [0], "hard": [1, 0]}
    assert images[1].selections["easy"].tolist() == []
