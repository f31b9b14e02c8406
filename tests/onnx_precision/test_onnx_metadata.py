"""``trtapps.onnx.metadata``: metadata_props round trip, Ultralytics keys kept, trtapps keys JSON-decoded."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import onnx
from onnx import TensorProto, helper
from trtapps.errors import ModelError
from trtapps.onnx.metadata import (
    PREFIX,
    decode_metadata,
    file_sha256,
    read_metadata,
    trtapps_metadata,
    write_metadata,
)


def _tiny_model() -> onnx.ModelProto:
    """x → Relu → y, with two Ultralytics-style keys already set."""
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"], name="relu")],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    helper.set_model_props(model, {"names": "{0: 'person', 1: 'bicycle'}", "imgsz": "[640, 640]"})
    return model


def test_round_trip_keeps_existing_keys_in_place_and_decodes_trtapps_keys(tmp_path: Path) -> None:
    model = _tiny_model()
    write_metadata(
        model,
        {
            "imgsz": "[320, 320]",  # replaced in place
            PREFIX + "labels": ["person", "bicycle"],
            PREFIX + "batch": {"min": 1, "max": 8},
            PREFIX + "precision": "fp16",
        },
    )
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    raw = read_metadata(path)
    assert list(raw) == ["names", "imgsz", "trtapps.labels", "trtapps.batch", "trtapps.precision"]
    assert raw["names"] == "{0: 'person', 1: 'bicycle'}"  # an Ultralytics value stays exactly as written
    assert raw["imgsz"] == "[320, 320]"
    assert raw["trtapps.precision"] == "fp16"  # strings are stored as they are, not JSON-quoted
    decoded = decode_metadata(raw)
    assert decoded["trtapps.labels"] == ["person", "bicycle"]
    assert decoded["trtapps.batch"] == {"min": 1, "max": 8}
    assert decoded["names"] == "{0: 'person', 1: 'bicycle'}"


def test_none_removes_a_key() -> None:
    model = _tiny_model()
    write_metadata(model, {"names": None, "other": 3})
    assert {p.key: p.value for p in model.metadata_props} == {"imgsz": "[640, 640]", "other": "3"}


def test_trtapps_metadata_records_source_hash_and_tools(tmp_path: Path) -> None:
    source = tmp_path / "src.onnx"
    onnx.save(_tiny_model(), source)
    meta = trtapps_metadata(
        app="yolo",
        variant="v8",
        labels=("a", "b"),
        precision="int8",
        batch=(1, 4),
        source=source,
        calibration={"images": 3},
        tools={"onnx": "1"},
    )
    assert meta == {
        "trtapps.app": "yolo",
        "trtapps.variant": "v8",
        "trtapps.labels": ["a", "b"],
        "trtapps.precision": "int8",
        "trtapps.batch": {"min": 1, "max": 4},
        "trtapps.source": "src.onnx",
        "trtapps.source_sha256": file_sha256(source),
        "trtapps.tools": {"onnx": "1"},
        "trtapps.calibration": {"images": 3},
    }
    import hashlib

    assert meta["trtapps.source_sha256"] == hashlib.sha256(source.read_bytes()).hexdigest()
    # default tools: the installed versions of at least onnx and onnxruntime
    tools = trtapps_metadata()[PREFIX + "tools"]
    assert {"onnx", "onnxruntime"} <= set(tools)
    assert json.loads(json.dumps(tools)) == tools


def test_read_metadata_errors_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="model file not found"):
        read_metadata(tmp_path / "missing.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(np.arange(64, dtype=np.uint8).tobytes())
    with pytest.raises(ModelError, match="not a readable ONNX model") as info:
        read_metadata(junk)
    assert "\n" not in str(info.value)
