"""ONNX Runtime's CPU thread pool: busy-waiting between runs is ONNX Runtime's default, which the CUDA runner turns
off (its threads have next to nothing to do, and spinning ones take cores from decoding and staging).

The session option itself is checked on real CPU sessions; the CUDA runner's use of it in
``tests/gpu/test_runners.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from conftest import shared_path
from trtapps.runners import onnxruntime_cuda
from trtapps.runners.onnxruntime import ALLOW_SPINNING, load_session
from trtapps.runners.onnxruntime_cuda import OnnxRuntimeCudaOptions


def _spinning_entry(session: Any) -> str | None:
    try:
        return str(session.get_session_options().get_session_config_entry(ALLOW_SPINNING))
    except RuntimeError:  # "SessionOptions does not have configuration with key"
        return None


def test_load_session_keeps_onnxruntime_spinning_unless_told() -> None:
    model = shared_path("models/yolox_nano.onnx")
    assert _spinning_entry(load_session(model, ["CPUExecutionProvider"])) in (None, "1")
    quiet = load_session(model, ["CPUExecutionProvider"], threads=2, spinning=False)
    assert _spinning_entry(quiet) == "0"
    assert quiet.get_session_options().intra_op_num_threads == 2


def test_cuda_runner_option_is_off_by_default_and_reaches_the_runner(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import trtapps.gpu.stream

    seen: list[dict[str, Any]] = []
    monkeypatch.setattr(trtapps.gpu.stream, "pipeline_stream", lambda context, device=0: "stream")
    monkeypatch.setattr(onnxruntime_cuda, "OnnxRuntimeCudaRunner", lambda path, **kwargs: seen.append(kwargs))
    assert OnnxRuntimeCudaOptions().cpu_spinning is False
    onnxruntime_cuda._factory(OnnxRuntimeCudaOptions(), None, tmp_path / "m.onnx")
    onnxruntime_cuda._factory(OnnxRuntimeCudaOptions(cpu_spinning=True), None, tmp_path / "m.onnx")
    assert [kwargs["cpu_spinning"] for kwargs in seen] == [False, True]
