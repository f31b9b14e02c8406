"""``check`` and ``fix`` on the shared real models (what docs/model-preparation.md reports).

* yolov8n_dequant: dynamic batch, no error; with its batch re-baked to 1 (input dim 1, the four head Reshape
  constants' leading 0 → 1, as the export had it before the shared copy was made dynamic) it is flagged, and
  ``fix`` makes it dynamic with outputs identical to the shared model at batch 1 and 8;
* yolox_nano: fixed batch 1 with ``[1, 85, -1]`` head reshapes: flagged, and ``fix`` makes it dynamic;
* retinaface_mnet025: dynamic batch/height/width, shape chains and Resize by sizes: warnings, no error;
* scrfd_500m_bnkps: fixed batch, Resize to fixed sizes, ``[1, -1, k]`` reshapes: flagged and fixed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

import onnx
from conftest import shared_path
from letterboxed_media import batch_of
from onnx import numpy_helper
from trtapps.onnx.check import check_model
from trtapps.onnx.fix import fix_model


def _rules(report: object) -> dict[str, int]:
    counts: dict[str, int] = {}
    for f in report.findings:  # type: ignore[attr-defined]
        if f.severity == "error":
            counts[f.rule] = counts.get(f.rule, 0) + 1
    return counts


def _media(monkeypatch: pytest.MonkeyPatch) -> None:
    """The proof's photos come from the shared media folder."""
    monkeypatch.setenv("TRTAPPS_DATA", str(shared_path("media").parent))


def test_check_shared_models() -> None:
    yolov8 = check_model(shared_path("models/yolov8n_dequant.onnx"))
    assert yolov8.ok
    assert yolov8.dynamic_batch
    assert {f.rule for f in yolov8.findings} == {"reshape-minus-one"}  # [0, 64, -1]: works, info only

    yolox = check_model(shared_path("models/yolox_nano.onnx"))
    assert not yolox.dynamic_batch
    assert _rules(yolox) == {"batch-fixed": 1, "reshape-batch": 3, "batch-baked": 1}

    retina = check_model(shared_path("models/retinaface_mnet025.onnx"))
    assert retina.ok
    warnings = {f.rule for f in retina.findings if f.severity == "warning"}
    assert warnings == {"symbolic-dims", "resize-sizes", "shape-chain"}
    assert sum(f.rule == "shape-chain" for f in retina.findings) == 9  # the 9 head reshapes view(x.size(0), -1, k)

    scrfd = check_model(shared_path("models/scrfd_500m_bnkps.onnx"))
    assert _rules(scrfd) == {"batch-fixed": 1, "resize-sizes": 2, "reshape-batch": 9, "batch-baked": 1}


def _rebake_yolov8(path: Path) -> Path:
    """yolov8n_dequant with the batch baked to 1, as a fixed-batch Ultralytics export has it."""
    model = onnx.load(str(shared_path("models/yolov8n_dequant.onnx")))
    model.graph.input[0].type.tensor_type.shape.dim[0].Clear()
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 1
    model.graph.output[0].type.tensor_type.shape.dim[0].Clear()
    model.graph.output[0].type.tensor_type.shape.dim[0].dim_value = 1
    targets = {n.input[1] for n in model.graph.node if n.op_type == "Reshape"}
    rebaked = 0
    for init in model.graph.initializer:
        if init.name in targets:
            value = numpy_helper.to_array(init).copy()
            assert value[0] == 0
            value[0] = 1
            init.CopyFrom(numpy_helper.from_array(value, init.name))
            rebaked += 1
    assert rebaked == 4
    onnx.save(model, str(path))
    return path


def test_yolov8_with_a_baked_batch_is_flagged_and_fixed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _media(monkeypatch)
    baked = _rebake_yolov8(tmp_path / "yolov8n_b1.onnx")
    report = check_model(baked)
    assert not report.ok
    errors = _rules(report)
    assert errors["batch-fixed"] == 1
    assert errors["reshape-batch"] == 6  # the six head reshapes lose the batch; the DFL ones come after

    fixed_path = tmp_path / "yolov8n_fixed.onnx"
    result = fix_model(baked, fixed_path, batch=8)
    assert result.dynamic
    assert result.verification.batches == [1, 8]
    assert result.after.ok
    fixed = onnx.load(str(fixed_path))
    assert fixed.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    assert fixed.graph.output[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    # identical to the shared dynamic model at batch 1 and 8, on the real images
    x = batch_of(8)
    shared = ort.InferenceSession(str(shared_path("models/yolov8n_dequant.onnx")), providers=["CPUExecutionProvider"])
    session = ort.InferenceSession(str(fixed_path), providers=["CPUExecutionProvider"])
    want = shared.run(None, {"images": x})[0]
    got8 = session.run(None, {"images": x})[0]
    got1 = session.run(None, {"images": x[:1]})[0]
    tolerance = 1e-4 * float(want.max() - want.min())
    assert float(np.abs(got8 - want).max()) <= tolerance
    assert float(np.abs(got1[0] - want[0]).max()) <= tolerance
    assert dict(result.verification.outputs[0].__dict__)["max_abs_diff"] <= tolerance


def test_yolox_nano_fixed_batch_becomes_dynamic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _media(monkeypatch)
    out = tmp_path / "yolox_nano_dynamic.onnx"
    result = fix_model(shared_path("models/yolox_nano.onnx"), out, batch=4)
    assert result.after.ok
    reshapes = [c.change for c in result.changes if c.op == "Reshape"]
    assert reshapes == ["target [1, 85, -1] → [-1, 85, 2704]", "target [1, 85, -1] → [-1, 85, 676]",
                        "target [1, 85, -1] → [-1, 85, 169]"]
    assert all(o.ok for o in result.verification.outputs)
    assert any(i.startswith("bus.jpg") for i in result.verification.images)
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert session.get_outputs()[0].shape == ["batch", 3549, 85]


def test_scrfd_fixed_batch_becomes_dynamic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _media(monkeypatch)
    result = fix_model(shared_path("models/scrfd_500m_bnkps.onnx"), tmp_path / "scrfd.onnx", batch=2)
    assert result.after.ok
    ops = [c.op for c in result.changes]
    assert ops.count("Resize") == 2
    assert ops.count("Reshape") == 9
    assert all(o.ok for o in result.verification.outputs)
