"""Bad evaluation sets and unwritable ``--json`` targets: one ``error:`` line naming the file and field, exit 2.

Each set is built in ``tmp_path`` (nothing here writes outside it); the commands are run through ``main`` so
the test sees exactly what the user sees on stderr.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import yaml

from trtapps import paths
from trtapps.cli import main
from trtapps.errors import InputError, OutputError
from trtapps.evaluation import load_detection_set, load_wider_gt
from trtapps.paths import check_output_file


def one_error_line(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run ``trtapps ARGV``; assert it fails with exit 2 and exactly one ``error:`` line; return that line."""
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("error: ")
    return err[0]


def write_yolo_set(root: Path) -> Path:
    """Two images, one with a label file and one without (a background image), and a data.yaml."""
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    for name in ("000000000007", "000000000042"):
        cv2.imwrite(str(root / "images" / f"{name}.jpg"), np.zeros((8, 8, 3), np.uint8))
    (root / "labels" / "000000000042.txt").write_text("1 0.5 0.5 0.25 0.5\n")
    (root / "data.yaml").write_text(yaml.safe_dump({"val": "images", "names": ["cat", "dog"]}))
    return root


# -- 1. a relative --data ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("given", ["set", "set/data.yaml"])
def test_yolo_set_loads_from_a_relative_path(given: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_yolo_set(tmp_path / "set")
    monkeypatch.chdir(tmp_path)
    data = load_detection_set(Path(given))
    assert [(i.key, i.path.name) for i in data.images] == [(7, "000000000007.jpg"), (42, "000000000042.jpg")]
    assert all(i.path.is_file() for i in data.images)
    assert list(data.yolo_labels) == [42]  # the image without a label file is a background image, no error


def test_yolo_path_key_is_relative_to_the_yaml_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_yolo_set(tmp_path / "set" / "sub")
    (tmp_path / "set" / "data.yaml").write_text(yaml.safe_dump({"path": "sub", "val": "images", "names": ["a", "b"]}))
    monkeypatch.chdir(tmp_path)
    assert len(load_detection_set(Path("set/data.yaml")).images) == 2


# -- 2. no labels/ folder ------------------------------------------------------------------------------------------
def test_yolo_set_without_a_labels_folder_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = write_yolo_set(tmp_path / "set")
    (root / "labels" / "000000000042.txt").unlink()
    (root / "labels").rmdir()
    with pytest.raises(InputError, match="labels folder missing") as info:
        load_detection_set(root)
    assert str(info.value).startswith(f"{root / 'labels'}: ")
    line = one_error_line(["eval", "detect", "--app", "yolo", "--model", "m.onnx", "--data", str(root)], capsys)
    assert line.startswith(f"error: {root / 'labels'}: labels folder missing")


# -- 3. data.yaml syntax error -------------------------------------------------------------------------------------
def test_data_yaml_syntax_error_is_one_line_with_line_and_column(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = write_yolo_set(tmp_path / "set")
    (root / "data.yaml").write_text("val: images\nnames: [a, b\n  c: d\n")
    line = one_error_line(["eval", "detect", "--app", "yolo", "--model", "m.onnx", "--data", str(root)], capsys)
    assert line == f"error: {root / 'data.yaml'}:3:4: YAML syntax error: expected ',' or ']', but got ':'"


def test_data_yaml_that_is_not_a_mapping_is_an_error(tmp_path: Path) -> None:
    root = write_yolo_set(tmp_path / "set")
    (root / "data.yaml").write_text("- images\n")
    with pytest.raises(InputError, match=r"data\.yaml: expected a mapping"):
        load_detection_set(root)


# -- 4. malformed COCO annotations ---------------------------------------------------------------------------------
def coco_set(root: Path) -> dict[str, Any]:
    (root / "images").mkdir(parents=True)
    cv2.imwrite(str(root / "images" / "a.jpg"), np.zeros((10, 20, 3), np.uint8))
    return {
        "images": [{"id": 1, "file_name": "a.jpg", "width": 20, "height": 10}],
        "annotations": [
            {"id": 5, "image_id": 1, "category_id": 1, "bbox": [1, 1, 4, 4]},
            {"id": 6, "image_id": 1, "category_id": 2, "bbox": [2, 2, 3, 3], "iscrowd": 0},
        ],
        "categories": [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}],
    }


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("bbox", "x", "annotations[1] (id 6): 'bbox' must be 4 numbers [x, y, w, h], got 'x'"),
        ("bbox", [1, 2, 3], "annotations[1] (id 6): 'bbox' must be 4 numbers [x, y, w, h], got [1, 2, 3]"),
        ("bbox", [1, 2, "a", 4], "annotations[1] (id 6): 'bbox' must be 4 numbers"),
        ("bbox", [1, 2, -3, 4], "annotations[1] (id 6): 'bbox' [1, 2, -3, 4] has a negative width or height"),
        ("image_id", None, "annotations[1] (id 6): missing 'image_id'"),
        ("category_id", None, "annotations[1] (id 6): missing 'category_id'"),
        ("image_id", 99, "annotations[1] (id 6): 'image_id' 99 is not the id of an entry of images"),
        ("category_id", 7, "annotations[1] (id 6): 'category_id' 7 is not the id of an entry of categories"),
        ("area", "big", "annotations[1] (id 6): 'area' must be a number"),
    ],
)
def test_malformed_coco_annotation_names_the_file_annotation_and_field(
    field: str, value: Any, message: str, tmp_path: Path
) -> None:
    gt = coco_set(tmp_path)
    if value is None:
        del gt["annotations"][1][field]
    else:
        gt["annotations"][1][field] = value
    (tmp_path / "instances.json").write_text(json.dumps(gt))
    with pytest.raises(InputError) as info:
        load_detection_set(tmp_path)
    assert str(info.value).startswith(f"{tmp_path / 'instances.json'}: {message}")
    assert "\n" not in str(info.value)


def test_malformed_coco_annotation_without_id_is_named_by_index(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gt = coco_set(tmp_path)
    del gt["annotations"][0]["id"]
    gt["annotations"][0]["bbox"] = "x"
    (tmp_path / "bad.json").write_text(json.dumps(gt))
    args = ["eval", "detect", "--app", "yolo", "--model", "m.onnx", "--data", str(tmp_path)]
    line = one_error_line([*args, "--gt", str(tmp_path / "bad.json")], capsys)
    assert line == f"error: {tmp_path / 'bad.json'}: annotations[0]: 'bbox' must be 4 numbers [x, y, w, h], got 'x'"


def test_malformed_coco_image_entry_is_one_line(tmp_path: Path) -> None:
    gt = coco_set(tmp_path)
    del gt["images"][0]["file_name"]
    (tmp_path / "instances.json").write_text(json.dumps(gt))
    with pytest.raises(InputError, match=r"instances.json: images\[0\]: missing 'file_name'"):
        load_detection_set(tmp_path)


# -- 5. malformed WIDER ground truth -------------------------------------------------------------------------------
def wider_gt(path: Path, **changes: Any) -> Path:
    entry: dict[str, Any] = {
        "width": 20,
        "height": 10,
        "boxes": [[1, 1, 4, 4], [5, 5, 2, 2]],
        "easy": [0],
        "medium": [0],
        "hard": [0, 1],
    }
    entry.update(changes)
    entry = {k: v for k, v in entry.items() if v is not None}
    path.write_text(json.dumps({"images": {"0--Parade/a.jpg": entry}}))
    return path


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"boxes": "x"}, "'boxes' must be a list of [x, y, w, h] (4 numbers each), got 'x'"),
        ({"boxes": [[1, 2, 3]]}, "'boxes' must be a list of [x, y, w, h]"),
        ({"hard": None}, "missing 'hard'; every image needs boxes, easy, medium and hard"),
        ({"boxes": None}, "missing 'boxes'"),
        ({"easy": "0"}, "'easy' must be a list of 0-based face indices (integers), got '0'"),
        ({"hard": [0, 2]}, "'hard' index 2 is out of range: the image has 2 boxes"),
        ({"width": "wide"}, "'width' must be a positive integer, got 'wide'"),
    ],
)
def test_malformed_wider_gt_names_the_file_image_and_field(
    changes: dict[str, Any], message: str, tmp_path: Path
) -> None:
    path = wider_gt(tmp_path / "wider_gt.json", **changes)
    with pytest.raises(InputError) as info:
        load_wider_gt(path)
    assert str(info.value).startswith(f"{path}: images['0--Parade/a.jpg']: {message}")
    assert "\n" not in str(info.value)


def test_wider_gt_errors_reach_the_cli_as_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = wider_gt(tmp_path / "wider_gt.json", boxes="x")
    args = ["eval", "faces", "--app", "retinaface", "--model", "m.onnx", "--data", str(tmp_path)]
    assert "'boxes' must be a list" in one_error_line(args, capsys)
    assert load_wider_gt(wider_gt(path))[0].boxes.shape == (2, 4)  # the well-formed file loads


def test_wider_gt_images_must_be_a_mapping(tmp_path: Path) -> None:
    path = tmp_path / "wider_gt.json"
    path.write_text(json.dumps({"images": [[1, 2, 3, 4]]}))
    with pytest.raises(InputError, match="'images' must map each image name"):
        load_wider_gt(path)


# -- 6. --json targets, checked before the work --------------------------------------------------------------------
def test_check_output_file(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    assert check_output_file(tmp_path / "new" / "deeper" / "out.json", "--json") == tmp_path / "new/deeper/out.json"
    assert check_output_file(tmp_path / "file", "--json") == tmp_path / "file"  # an existing file is replaced
    with pytest.raises(OutputError, match=r"^--json .*: is a folder; give a file path, e.g. --json .*result.json$"):
        check_output_file(tmp_path, "--json")
    for below in ("file/out.json", "file/sub/out.json"):
        with pytest.raises(OutputError, match=f"{tmp_path / 'file'} is a file, not a folder"):
            check_output_file(tmp_path / below, "--json")
    assert not (tmp_path / "new").exists()  # nothing is created


def test_check_output_file_refuses_a_folder_without_write_permission(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    if os.access(locked, os.W_OK):  # root may write anywhere (CI runs as root): the permission check is what counts
        monkeypatch.setattr(paths.os, "access", lambda path, mode: Path(path) != locked)
    try:
        with pytest.raises(OutputError, match=f"no permission to write in {locked}"):
            check_output_file(locked / "sub" / "out.json", "--json")
    finally:
        locked.chmod(0o700)


@pytest.mark.parametrize(
    "argv",
    [
        ["eval", "detect", "--app", "yolo", "--model", "missing.onnx", "--data", "missing-set"],
        ["eval", "faces", "--app", "retinaface", "--model", "missing.onnx", "--data", "missing-set"],
        ["bench", "--model", "missing.onnx", "--video", "missing.mp4"],
        ["mot-eval", "--data", "missing-set", "--results", "."],
    ],
    ids=["eval-detect", "eval-faces", "bench", "mot-eval"],
)
@pytest.mark.parametrize("target", ["folder", "below-a-file"])
def test_json_target_is_checked_before_any_work(
    argv: list[str], target: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # the other inputs are missing: without the up-front check the error would be about them, not --json
    (tmp_path / "file").write_text("x")
    json_path = tmp_path if target == "folder" else tmp_path / "file" / "out.json"
    line = one_error_line([*argv, "--json", str(json_path)], capsys)
    expected = "is a folder; give a file path" if target == "folder" else "is a file, not a folder"
    assert line.startswith(f"error: --json {json_path}: ")
    assert expected in line
