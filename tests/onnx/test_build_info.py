"""``trtapps build`` and ``trtapps info`` on the CPU (ONNX Runtime backend), and the TensorRT branch.

The TensorRT engine build runs only where TensorRT and a GPU are (``@pytest.mark.tensorrt``); here its absence
must give one clear line. ``info`` on an engine is checked with a side file written the way the engine cache
writes it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
from typer.testing import CliRunner

from conftest import shared_path
from trtapps.build import build_model, model_info
from trtapps.cli import build_app
from trtapps.engine.cache import EngineMetadata, TensorMeta
from trtapps.errors import BackendUnavailableError, ConfigError, ModelError

PITFALLS = Path(__file__).resolve().parents[1] / "data" / "onnx_pitfalls"


def _cli(*args: str) -> Any:
    return CliRunner().invoke(build_app(), list(args), catch_exceptions=False)


@pytest.fixture
def media(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRTAPPS_DATA", str(shared_path("media").parent))


def _tensorrt_missing() -> bool:
    from trtapps.runners.tensorrt import available

    return available() is not None


@pytest.mark.usefixtures("media")
def test_build_yolox_fp32_dynamic_batch_with_metadata(tmp_path: Path) -> None:
    out = tmp_path / "yolox_b4.onnx"
    result = _cli("build", str(shared_path("models/yolox_nano.onnx")), "--app", "yolo", "--variant", "yolox",
                  "--max-batch", "4", "-o", str(out), "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["check"]["error"] == 5  # the fixed batch and the three [1, 85, -1] reshapes (+ their output)
    assert doc["fix"]["dynamic_batch"] is True
    assert doc["batch"] == {"min": 1, "max": 4}

    found = model_info(out)
    assert found.kind == "onnx"
    assert found.app == "yolo"
    assert found.variant == "yolox"
    assert found.precision == "fp32"
    assert found.batch["min"] == 1
    assert found.batch["max"] == 4
    assert found.inputs[0]["shape"] == ["batch", 3, 416, 416]
    assert len(found.labels) == 80
    assert found.labels[0] == "person"
    assert found.build["source"] == "yolox_nano.onnx"
    assert found.build["source_sha256"].startswith("e8af0749")
    assert {"onnx", "onnxruntime", "onnxslim"} <= set(found.build["tools"])
    assert found.build["preparation"]["fix"]["proof"]["batches"] == [1, 4]

    # the prepared model runs at batch 4 with the per-image outputs of the original
    x = np.random.default_rng(0).random((4, 3, 416, 416), dtype=np.float32) * 255
    prepared = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(None, {"images": x})[0]
    original = ort.InferenceSession(str(shared_path("models/yolox_nano.onnx")), providers=["CPUExecutionProvider"])
    for i in range(4):
        want = original.run(None, {"images": x[i : i + 1]})[0][0]
        np.testing.assert_allclose(prepared[i], want, rtol=0, atol=1e-4 * max(1.0, float(np.ptp(want))))

    shown = _cli("info", str(out))
    assert shown.exit_code == 0
    assert "batch 1..4" in shown.output
    assert "person" in shown.output
    info_json = json.loads(_cli("info", str(out), "--json").output)
    assert info_json["schema"] == "trtapps.info/1"
    assert info_json["variant"] == "yolox"


@pytest.mark.usefixtures("media")
def test_build_fp16_retinaface_keeps_the_dynamic_size(tmp_path: Path) -> None:
    out = tmp_path / "retina_fp16.onnx"
    result = build_model(shared_path("models/retinaface_mnet025.onnx"), app="retinaface", precision="fp16",
                         max_batch=2, output=out)
    assert result.fix["dynamic_batch"] is True
    found = model_info(out)
    assert found.precision == "fp16"
    assert found.inputs[0]["shape"] == ["batch", 3, "height", "width"]
    assert found.labels == ["face"]
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    outputs = session.run(None, {"input": np.zeros((2, 3, 320, 480), dtype=np.float32)})
    assert all(o.shape[0] == 2 for o in outputs)


def test_info_of_an_ultralytics_export_reads_its_names() -> None:
    found = model_info(shared_path("models/yolov8n_dequant.onnx"))
    assert found.precision == "fp32"
    assert found.app is None
    assert len(found.labels) == 80
    assert found.labels[79] == "toothbrush"
    assert found.batch == {"min": 1, "max": None, "from": "input shape"}
    assert found.metadata["task"] == "detect"


def test_info_of_an_engine_reads_its_side_file(tmp_path: Path) -> None:
    engine = tmp_path / "model.engine"
    engine.write_bytes(b"\0" * 64)
    meta = EngineMetadata(
        key="ab" * 32, model="model.onnx", onnx_sha256="cd" * 32,
        build_options={"max_batch": 8, "input_size": None, "workspace_mb": 4096, "fp16": False, "tf32": False,
                       "optimization_level": None},
        tensorrt_version="10.13.0", gpu_name="NVIDIA H100", compute_capability="9.0", engine_sha256="ef" * 32,
        engine_bytes=64,
        inputs=[TensorMeta("images", [-1, 3, 640, 640], "float16", [[1, 3, 640, 640], [8, 3, 640, 640],
                                                                   [8, 3, 640, 640]])],
        outputs=[TensorMeta("output0", [-1, 84, 8400], "float32")],
        onnx_metadata={"trtapps.app": "yolo", "trtapps.labels": json.dumps(["person", "bicycle"]),
                       "trtapps.precision": "fp16", "trtapps.source": "yolov8n.onnx"},
        precision="graph",
    )
    engine.with_suffix(".json").write_text(meta.to_json(), encoding="utf-8")
    found = model_info(engine)
    assert found.kind == "tensorrt"
    assert found.precision == "fp16"
    assert found.batch["max"] == 8
    assert found.labels == ["person", "bicycle"]
    assert found.inputs[0]["shape"] == ["dynamic", 3, 640, 640]
    assert found.build["tensorrt"] == "10.13.0"
    assert found.build["source"] == "yolov8n.onnx"
    assert found.to_json()["schema"] == "trtapps.info/1"
    engine.with_suffix(".json").unlink()
    with pytest.raises(ModelError, match="no metadata side file"):
        model_info(engine)


def test_build_refuses_an_export_fix_cannot_repair(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="training-mode") as info:
        build_model(PITFALLS / "training_mode_wrong.onnx", app="yolo", max_batch=2, output=tmp_path / "o.onnx")
    assert "\n" not in str(info.value)
    assert not (tmp_path / "o.onnx").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".trtapps-build-")]  # the work folder is gone


def test_build_errors_name_the_users_model_and_option_not_the_working_copy(tmp_path: Path) -> None:
    faces = shared_path("models/retinaface_mnet025.onnx")
    with pytest.raises(ModelError) as wrong_app:
        build_model(faces, app="yolo", output=tmp_path / "o.onnx")
    assert str(wrong_app.value).startswith(f"{faces}: app yolo needs one output")
    with pytest.raises(ConfigError, match=r"^--app: unknown app 'retinafacee'; did you mean 'retinaface'\?"):
        build_model(faces, app="retinafacee", output=tmp_path / "o.onnx")


@pytest.mark.skipif(not _tensorrt_missing(), reason="TensorRT is installed here: the engine test runs instead")
def test_build_tensorrt_without_tensorrt_is_one_clear_line(tmp_path: Path) -> None:
    with pytest.raises(BackendUnavailableError) as info:
        build_model(shared_path("models/yolox_nano.onnx"), app="yolo", backend="tensorrt", output=tmp_path / "x.engine")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("--backend tensorrt: TensorRT is not installed")
    assert "--backend onnxruntime" in message
    assert not list(tmp_path.iterdir())


@pytest.mark.tensorrt
@pytest.mark.usefixtures("media")
def test_build_tensorrt_engine_and_info(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRTAPPS_CACHE", str(tmp_path / "cache"))
    engine = tmp_path / "yolox_fp16_b4.engine"
    result = build_model(shared_path("models/yolox_nano.onnx"), app="yolo", variant="yolox", precision="fp16",
                         max_batch=4, backend="tensorrt", output=engine)
    assert result.engine == engine
    assert engine.is_file()
    assert engine.with_suffix(".json").is_file()
    assert engine.with_suffix(".onnx").is_file()
    found = model_info(engine)
    assert found.kind == "tensorrt"
    assert found.batch["max"] == 4
    assert found.precision == "fp16"
    assert found.app == "yolo"
    assert len(found.labels) == 80
    # the engine runs through the TensorRT runner with the same per-image outputs as ONNX Runtime (fp16 tolerance)
    import cupy

    from trtapps.runners.tensorrt import TensorRTRunner

    runner = TensorRTRunner(engine)
    try:
        x = np.random.default_rng(0).random((4, 3, 416, 416), dtype=np.float32) * 255
        got = runner.infer({"images": cupy.asarray(x)})
        stream = cupy.cuda.get_current_stream()
        value = next(iter(got.values())).get(stream=stream)
        stream.synchronize()
        want = ort.InferenceSession(str(engine.with_suffix(".onnx")),
                                    providers=["CPUExecutionProvider"]).run(None, {"images": x})[0]
        assert value.shape == want.shape
        assert float(np.abs(value - want).max()) <= 0.05 * float(np.ptp(want))
    finally:
        runner.close()
