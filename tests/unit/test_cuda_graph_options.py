"""The ``cuda_graph`` option without a GPU: validation, plumbing into the runners, the CPU backend's refusal, the
ONNX Runtime version gate, and :class:`trtapps.gpu.graphs.GraphCache`'s bookkeeping (with a stand-in stream).

What needs a GPU (captures, replays, bitwise-equal outputs) is in ``tests/gpu/test_cuda_graphs.py``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from trtapps.errors import ConfigError
from trtapps.gpu import graphs
from trtapps.gpu.graphs import (
    CUDA_GRAPH_DESCRIPTION,
    GraphCache,
    cuda_graph_problem,
    onnxruntime_graph_problem,
    resolve_cuda_graph,
)
from trtapps.runners import onnxruntime_cuda, tensorrt
from trtapps.runners.onnxruntime_cuda import OnnxRuntimeCudaOptions, provider_options
from trtapps.runners.tensorrt import TensorRTOptions


# -- options -----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("options", [OnnxRuntimeCudaOptions, TensorRTOptions])
def test_cuda_graph_is_off_by_default_and_validated(options: Any) -> None:
    assert options(type=options.model_fields["type"].default).cuda_graph is False
    assert options(type=options.model_fields["type"].default, cuda_graph=True).cuda_graph is True
    with pytest.raises(ValidationError, match="cuda_graph"):
        options(type=options.model_fields["type"].default, cuda_graph="sometimes")
    schema = options.model_json_schema()["properties"]["cuda_graph"]
    assert schema["default"] is False
    assert schema["description"] == CUDA_GRAPH_DESCRIPTION


def test_provider_options_enable_cuda_graph_only_when_asked() -> None:
    plain = provider_options(0, 1234)
    assert "enable_cuda_graph" not in plain
    graph = provider_options(0, 1234, cuda_graph=True)
    assert graph["enable_cuda_graph"] == "1"
    assert {k: v for k, v in graph.items() if k != "enable_cuda_graph"} == plain  # nothing else changes
    assert graph["user_compute_stream"] == "1234"  # graphs are captured and replayed on the pipeline's stream


class _Recorder:
    """Stands in for a runner class: records the keyword arguments the factory passes."""

    def __init__(self, model_path: Path, **kwargs: Any) -> None:
        self.model_path = model_path
        self.kwargs = kwargs


def test_factories_pass_cuda_graph_to_the_runners(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import trtapps.gpu.stream

    monkeypatch.setattr(trtapps.gpu.stream, "pipeline_stream", lambda context, device=0: f"stream{device}")
    monkeypatch.setattr(onnxruntime_cuda, "OnnxRuntimeCudaRunner", _Recorder)
    monkeypatch.setattr(tensorrt, "TensorRTRunner", _Recorder)
    model = tmp_path / "m.onnx"
    for cuda_graph in (False, True):
        ort_runner: Any = onnxruntime_cuda._factory(OnnxRuntimeCudaOptions(cuda_graph=cuda_graph), None, model)
        assert ort_runner.kwargs["cuda_graph"] is cuda_graph
        assert ort_runner.kwargs["stream"] == "stream0"
        trt_runner: Any = tensorrt._factory(TensorRTOptions(cuda_graph=cuda_graph), None, model)
        assert trt_runner.kwargs["cuda_graph"] is cuda_graph


# -- which backends, which ONNX Runtime -----------------------------------------------------------------------------
def test_only_the_gpu_backends_take_cuda_graphs() -> None:
    assert cuda_graph_problem("onnxruntime_cuda") is None
    assert cuda_graph_problem("tensorrt") is None
    assert cuda_graph_problem("onnxruntime") == (
        "backend 'onnxruntime' runs on the CPU; CUDA graphs need onnxruntime_cuda or tensorrt"
    )


def test_an_explicit_cpu_backend_with_cuda_graph_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as info:
        resolve_cuda_graph("onnxruntime", True, explicit=True)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("backend.cuda_graph: backend 'onnxruntime' runs on the CPU")
    assert message.endswith("remove cuda_graph or choose a GPU backend")


def test_auto_falling_back_to_the_cpu_turns_graphs_off_with_one_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(graphs, "_told", set())
    with caplog.at_level(logging.WARNING, logger="trtapps.gpu.graphs"):
        assert resolve_cuda_graph("onnxruntime", True, explicit=False) is False
        assert resolve_cuda_graph("onnxruntime", True, explicit=False) is False
    warnings = [r.getMessage() for r in caplog.records]
    assert warnings == [
        "backend.cuda_graph is ignored: backend auto chose backend 'onnxruntime' runs on the CPU; CUDA graphs need "
        "onnxruntime_cuda or tensorrt"
    ]


@pytest.mark.parametrize("backend", ["onnxruntime_cuda", "tensorrt"])
@pytest.mark.parametrize("explicit", [True, False])
def test_gpu_backends_get_what_was_asked(backend: str, explicit: bool) -> None:
    assert resolve_cuda_graph(backend, True, explicit=explicit) is True
    assert resolve_cuda_graph(backend, False, explicit=explicit) is False
    assert resolve_cuda_graph("onnxruntime", False, explicit=explicit) is False  # nothing asked, nothing refused


@pytest.mark.parametrize(
    ("version", "ok"),
    [("1.18.0", True), ("1.31.1", True), ("1.32.0", True), ("2.0.0", True), ("1.20.0.dev20240101", True),
     ("1.17.3", False), ("1.9.0", False), ("nightly", False)],
)
def test_onnxruntime_version_gate_for_per_batch_graphs(version: str, ok: bool) -> None:
    problem = onnxruntime_graph_problem(version)
    if ok:
        assert problem is None
    else:
        assert problem == (
            f"onnxruntime {version} has no per-batch-size CUDA graphs (gpu_graph_id, onnxruntime >= 1.18)"
        )


def test_a_cpu_pipeline_asked_for_cuda_graphs_fails_on_the_option() -> None:
    """An explicit CPU backend cannot take ``cuda_graph``: the error names the option (never a traceback)."""
    from conftest import shared_path  # tests/conftest.py
    from trtapps.pipeline import Pipeline

    model = shared_path("models/yolov8n_dequant.onnx")
    with pytest.raises(ConfigError, match=r"backend\.cuda_graph"):
        Pipeline.from_objects(
            app={"type": "yolo", "model": str(model)}, backend={"type": "onnxruntime", "cuda_graph": True}
        )


# -- GraphCache bookkeeping with a stand-in stream ----------------------------------------------------------------
class _Graph:
    def __init__(self, stream: _Stream) -> None:
        self.stream = stream
        self.launched = 0

    def launch(self, stream: Any = None) -> None:
        assert stream is self.stream
        self.launched += 1


class _Stream:
    """Enough of ``cupy.cuda.Stream`` for GraphCache: a pointer, a context, begin/end capture."""

    def __init__(self, ptr: int = 0xABC, fail_end: bool = False) -> None:
        self.ptr = ptr
        self.fail_end = fail_end
        self.capturing = False
        self.captures = 0
        self.graphs: list[_Graph] = []

    def __enter__(self) -> _Stream:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def begin_capture(self, mode: Any = None) -> None:
        assert not self.capturing
        self.capturing = True

    def end_capture(self) -> _Graph:
        assert self.capturing
        self.capturing = False
        self.captures += 1
        if self.fail_end:
            raise RuntimeError("cudaErrorStreamCaptureInvalidated: operation failed due to a previous error")
        graph = _Graph(self)
        self.graphs.append(graph)
        return graph


def test_graph_cache_warms_up_captures_once_then_replays() -> None:
    stream = _Stream()
    cache = GraphCache("test work")
    calls: list[bool] = []

    def work() -> list[int]:
        calls.append(stream.capturing)
        return [len(calls)]

    first = cache.run(("b", 1), work, stream)
    assert first == [1]  # the direct warm-up call's own result
    assert calls == [False, True]  # warm-up outside the capture, then the captured call
    assert cache.captured(("b", 1))
    assert len(cache) == 1
    replays = [cache.run(("b", 1), work, stream) for _ in range(3)]
    assert calls == [False, True]  # replays never call the function
    assert all(r == [2] for r in replays)  # what the function returned while being captured
    assert stream.graphs[0].launched == 3
    assert (cache.launches, cache.direct_calls) == (3, 1)
    cache.run(("b", 2), work, stream)  # another key: its own warm-up and capture
    assert calls == [False, True, False, True]
    assert stream.captures == 2


def test_graph_cache_falls_back_with_one_logged_reason(caplog: pytest.LogCaptureFixture) -> None:
    stream = _Stream(fail_end=True)
    cache = GraphCache("decode")
    calls = []

    def work() -> str:
        calls.append(stream.capturing)
        return "direct" if not stream.capturing else "captured"

    with caplog.at_level(logging.WARNING, logger="trtapps.gpu.graphs"):
        assert cache.run(1, work, stream) == "direct"
        assert cache.run(1, work, stream) == "direct"  # the key runs directly from now on, without new captures
        assert cache.run(2, work, stream) == "direct"  # another key tries again: fails again, logged at debug
    assert not cache.captured(1)
    assert 1 in cache
    assert stream.captures == 2
    assert calls == [False, True, False, False, True]
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings == [
        "decode: CUDA graph capture is not possible (RuntimeError: cudaErrorStreamCaptureInvalidated: operation "
        "failed due to a previous error); launching directly"
    ]
    assert cache.problem is not None
    assert cache.problem.startswith("RuntimeError: cudaErrorStreamCaptureInvalidated")


def test_graph_cache_ends_the_capture_when_the_function_raises() -> None:
    stream = _Stream()
    cache = GraphCache("sync inside")

    def work() -> int:
        if stream.capturing:
            raise RuntimeError("cudaErrorStreamCaptureUnsupported: operation not permitted when stream is capturing")
        return 7

    assert cache.run("k", work, stream) == 7
    assert not stream.capturing  # the capture was ended although the function raised inside it
    assert not cache.captured("k")
    assert cache.problem == "RuntimeError: cudaErrorStreamCaptureUnsupported: operation not permitted when stream is " \
        "capturing"


def test_graph_cache_refuses_the_legacy_default_stream() -> None:
    stream = _Stream(ptr=0)
    cache = GraphCache("legacy")
    assert cache.run("k", lambda: 5, stream) == 5
    assert stream.captures == 0
    assert not cache.captured("k")
    assert cache.problem is not None
    assert "legacy default stream" in cache.problem


def test_graph_cache_disabled_and_bounded() -> None:
    stream = _Stream()
    off = GraphCache("off", enabled=False)
    assert [off.run("k", lambda: 1, stream) for _ in range(3)] == [1, 1, 1]
    assert stream.captures == 0
    assert off.direct_calls == 3
    assert len(off) == 0
    bounded = GraphCache("bounded", max_entries=2)
    for key in ("a", "b", "a", "c"):  # "a" used again before "c" arrives: "b" is the least recently used
        bounded.run(key, lambda: 0, stream)
    assert "a" in bounded
    assert "c" in bounded
    assert "b" not in bounded
    with pytest.raises(ValueError, match="max_entries"):
        GraphCache("bad", max_entries=0)
