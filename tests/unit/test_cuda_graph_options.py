"""The ``cuda_graph`` option without a GPU: validation, plumbing into the runners, the CPU backend's refusal, the
ONNX Runtime version gate, and :class:`trtapps.gpu.graphs.GraphCache`'s bookkeeping (with a stand-in stream).

What needs a GPU (captures, replays, bitwise-equal outputs) is in ``tests/gpu/test_cuda_graphs.py``.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import sys
import types
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar, cast

import numpy as np
import pytest
from pydantic import ValidationError

from trtapps.errors import ConfigError, CudaError, ModelError
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
        "backend 'onnxruntime' cannot replay CUDA graphs (only onnxruntime_cuda and tensorrt can)"
    )


def test_an_explicit_cpu_backend_with_cuda_graph_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as info:
        resolve_cuda_graph("onnxruntime", True, explicit=True)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("backend.cuda_graph: backend 'onnxruntime' cannot replay CUDA graphs")
    assert message.endswith("remove cuda_graph or choose one of those")


def test_auto_falling_back_to_the_cpu_turns_graphs_off_with_one_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(graphs, "_told", set())
    with caplog.at_level(logging.WARNING, logger="trtapps.gpu.graphs"):
        assert resolve_cuda_graph("onnxruntime", True, explicit=False) is False
        assert resolve_cuda_graph("onnxruntime", True, explicit=False) is False
    warnings = [r.getMessage() for r in caplog.records]
    assert warnings == [
        "backend.cuda_graph is ignored: backend 'onnxruntime' cannot replay CUDA graphs (only onnxruntime_cuda and "
        "tensorrt can) (chosen by backend auto)"
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
            app={"type": "yolo", "model": str(model)}, backend=cast(Any, {"type": "onnxruntime", "cuda_graph": True})
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


@pytest.fixture
def graph_cupy(monkeypatch: pytest.MonkeyPatch) -> None:
    """The two CuPy names GraphCache's capture uses (a private memory pool made current), so these tests run
    the same where CuPy is not installed (CI) as where it is."""
    module = types.ModuleType("cupy")
    module.cuda = SimpleNamespace(  # type: ignore[attr-defined]
        MemoryPool=lambda: SimpleNamespace(malloc=lambda size: None),
        using_allocator=lambda allocator: contextlib.nullcontext(),
    )
    monkeypatch.setitem(sys.modules, "cupy", module)


@pytest.mark.usefixtures("graph_cupy")
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


@pytest.mark.usefixtures("graph_cupy")
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


@pytest.mark.usefixtures("graph_cupy")
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


@pytest.mark.usefixtures("graph_cupy")
def test_graph_cache_refuses_the_legacy_default_stream() -> None:
    stream = _Stream(ptr=0)
    cache = GraphCache("legacy")
    assert cache.run("k", lambda: 5, stream) == 5
    assert stream.captures == 0
    assert not cache.captured("k")
    assert cache.problem is not None
    assert "legacy default stream" in cache.problem


@pytest.mark.usefixtures("graph_cupy")
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


# -- the ONNX Runtime runner's graph bookkeeping against a simulated ONNX Runtime -----------------------------------
# The simulation replays like ONNX Runtime's CUDA provider does: a graph id is captured after two regular runs (all
# in one call), and a replay ignores the binding it is given: it reads the input and writes the output at the
# addresses bound when that id was captured. Device memory is host memory here (NumPy arrays with a ``data.ptr``),
# so a runner that let an address move, forgot to copy an input in, or returned the wrong buffer gives wrong values.
class _Memory:
    copies = 0

    def __init__(self, array: np.ndarray) -> None:
        self.ptr = int(array.ctypes.data)

    def copy_from_device_async(self, src: _Memory, nbytes: int, stream: Any = None) -> None:
        _Memory.copies += 1
        ctypes.memmove(self.ptr, src.ptr, nbytes)


class _DeviceArray(np.ndarray):
    @property
    def data(self) -> Any:
        return _Memory(self)

    @property
    def device(self) -> Any:
        return SimpleNamespace(id=0)

    def get(self, stream: Any = None) -> np.ndarray:
        return np.array(self)


def _device(array: np.ndarray) -> _DeviceArray:
    return np.ascontiguousarray(array, dtype=np.float32).view(_DeviceArray)


class _FakeStream:
    def __init__(self) -> None:
        self.ptr = 0x5000 + id(self) % 4096

    def __enter__(self) -> _FakeStream:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def synchronize(self) -> None:
        pass

    def wait_event(self, event: Any) -> None:
        pass

    def is_capturing(self) -> bool:
        return False


class _FakeDevice:
    def __init__(self, device: int = 0) -> None:
        self.id = device

    def __enter__(self) -> _FakeDevice:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def _fake_cupy() -> Any:
    module = types.ModuleType("cupy")
    module.ndarray = _DeviceArray  # type: ignore[attr-defined]
    module.empty = lambda shape, dtype=np.float32: np.full(shape, np.nan, dtype).view(_DeviceArray)  # type: ignore
    module.copyto = np.copyto  # type: ignore[attr-defined]
    module.ascontiguousarray = lambda a: _device(a)  # type: ignore[attr-defined]
    module.cuda = SimpleNamespace(  # type: ignore[attr-defined]
        Device=_FakeDevice,
        get_current_stream=lambda: _FakeStream(),
        Event=lambda **kw: SimpleNamespace(record=lambda stream: None),
    )
    return module


def _at(ptr: int, shape: tuple[int, ...]) -> np.ndarray:
    count = int(np.prod(shape))
    return np.ctypeslib.as_array((ctypes.c_float * count).from_address(ptr)).reshape(shape)


class _Binding:
    def __init__(self) -> None:
        self.inputs: dict[str, tuple[tuple[int, ...], int]] = {}
        self.outputs: dict[str, tuple[tuple[int, ...], int]] = {}

    def bind_input(self, name: str, device: str, device_id: int, dtype: Any, shape: Any, ptr: int) -> None:
        self.inputs[name] = (tuple(shape), int(ptr))

    def bind_output(self, name: str, device: str, device_id: int, dtype: Any = None, shape: Any = (), ptr: int = 0
                    ) -> None:
        self.outputs[name] = (tuple(shape), int(ptr))

    def clear_binding_inputs(self) -> None:
        self.inputs.clear()

    def clear_binding_outputs(self) -> None:
        self.outputs.clear()


class _Session:
    """``out = 2 * images + 1`` with ONNX Runtime's graph semantics (see the comment above)."""

    opened: ClassVar[list[dict[str, str]]] = []

    def __init__(self, options: dict[str, str], shape: list[Any], fail_capture: bool = False) -> None:
        _Session.opened.append(options)
        self.graphs = options.get("enable_cuda_graph") == "1"
        self.shape = shape
        self.fail_capture = fail_capture
        self.regular: dict[int, int] = {}
        self.captured: dict[int, _Binding] = {}
        self.events: list[tuple[str, int]] = []
        self.run_options: list[Any] = []

    def get_providers(self) -> list[str]:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]

    def get_inputs(self) -> list[Any]:
        return [SimpleNamespace(name="images", type="tensor(float)", shape=self.shape)]

    def get_outputs(self) -> list[Any]:
        return [SimpleNamespace(name="out", type="tensor(float)", shape=self.shape)]

    def get_modelmeta(self) -> Any:
        return SimpleNamespace(custom_metadata_map={})

    def io_binding(self) -> _Binding:
        return _Binding()

    @staticmethod
    def _compute(binding: _Binding) -> None:
        shape, src = binding.inputs["images"]
        out_shape, dst = binding.outputs["out"]
        assert out_shape == shape
        _at(dst, shape)[...] = _at(src, shape) * np.float32(2) + np.float32(1)

    def run_with_iobinding(self, binding: _Binding, run_options: Any = None) -> None:
        self.run_options.append(run_options)
        gid = _graph_id(run_options)
        if not self.graphs or gid == -1:
            self.events.append(("run", gid))
            self._compute(binding)
            return
        if gid in self.captured:
            self.events.append(("replay", gid))
            self._compute(self.captured[gid])  # the binding given now is ignored
            return
        while self.regular.get(gid, 0) < 2:
            self.regular[gid] = self.regular.get(gid, 0) + 1
            self.events.append(("run", gid))
            self._compute(binding)
        if self.fail_capture:
            raise RuntimeError("CUDA failure 900: operation not permitted when stream is capturing")
        snapshot = _Binding()
        snapshot.inputs, snapshot.outputs = dict(binding.inputs), dict(binding.outputs)
        self.captured[gid] = snapshot
        self.events.append(("capture", gid))
        self._compute(snapshot)


def _graph_id(run_options: Any) -> int:
    """The run's ``gpu_graph_id`` (0 when unset, as in ONNX Runtime), from real ``RunOptions``."""
    if run_options is None:
        return 0
    try:
        return int(run_options.get_run_config_entry("gpu_graph_id"))
    except RuntimeError:  # "RunOptions does not have configuration with key"
        return 0


@pytest.fixture
def simulated(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Build ``OnnxRuntimeCudaRunner`` objects over the simulation: ``simulated(shape=..., fail_capture=...)``."""
    import trtapps.gpu.device
    import trtapps.gpu.stream

    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy())
    monkeypatch.setattr(trtapps.gpu.device, "select_device", lambda device: None)
    monkeypatch.setattr(trtapps.gpu.stream, "new_stream", lambda device=None, non_blocking=True: _FakeStream())
    monkeypatch.setattr(onnxruntime_cuda, "available", lambda: None)
    monkeypatch.setattr(_Session, "opened", [])
    monkeypatch.setattr(_Memory, "copies", 0)

    def build(shape: list[Any] | None = None, fail_capture: bool = False, refuse_graphs: bool = False,
              **kwargs: Any) -> Any:
        def load(path: Path, providers: list[Any], threads: int = 0, spinning: bool = True) -> _Session:
            options = providers[0][1]
            if refuse_graphs and options.get("enable_cuda_graph") == "1":
                cause = RuntimeError("This session cannot use the graph capture feature as requested by the user")
                raise ModelError(f"{path}: not a loadable ONNX model") from cause
            return _Session(options, shape or ["batch", 2, 3], fail_capture)

        monkeypatch.setattr(onnxruntime_cuda, "load_session", load)
        return onnxruntime_cuda.OnnxRuntimeCudaRunner("simulated.onnx", **kwargs)

    return build


def test_graph_runner_keeps_each_batch_size_at_its_captured_addresses(simulated: Any) -> None:
    runner = simulated(max_batch=2, cuda_graph=True, pad_batch=False)  # a graph per batch size
    assert runner.cuda_graph
    assert runner.provider_options["enable_cuda_graph"] == "1"
    rng = np.random.default_rng(0)
    returned: list[Any] = []
    for batch in (1, 2, 2, 1, 4, 1, 4, 2, 1):  # batch 4 grows the buffers after 1 and 2 were captured
        x = _device(rng.standard_normal((batch, 2, 3)))  # a new array, at a new address, every call
        for array in returned:
            array.fill(np.nan)
        out = runner.infer({"images": x})["out"]
        returned.append(out)
        np.testing.assert_array_equal(np.array(out), np.array(x) * np.float32(2) + np.float32(1))
    assert runner.captured_batches == [1, 2, 4]
    events = runner.session.events
    assert [e for e in events if e[0] == "capture"] == [("capture", 1), ("capture", 2), ("capture", 4)]
    assert events.count(("run", -1)) == 3 * 2  # the runner's uncaptured warm-up runs, two per batch size
    assert [e for e in events if e[0] == "replay"] == [("replay", b) for b in (2, 1, 1, 4, 2, 1)]
    assert _Memory.copies == 9  # every call copied its input into the graph's buffer


@pytest.mark.parametrize("graphs", [False, True])
def test_runs_on_the_pipeline_stream_skip_the_end_of_run_sync(simulated: Any, graphs: bool) -> None:
    """On the caller's stream every run (direct, warm-up, capture, replay) is enqueued without ONNX Runtime's
    end-of-run host synchronization; on ONNX Runtime's own stream its synchronization stays."""
    from trtapps.runners.onnxruntime_cuda import NO_RUN_END_SYNC

    x = _device(np.ones((2, 2, 3), np.float32))
    runner = simulated(max_batch=2, cuda_graph=graphs)
    runner.infer({"images": x})
    runner.infer({"images": x})
    assert len(runner.session.run_options) >= 2
    assert all(o.get_run_config_entry(NO_RUN_END_SYNC) == "1" for o in runner.session.run_options)
    own = simulated(max_batch=2, cuda_graph=graphs, user_stream=False)
    own.infer({"images": x})
    for options in own.session.run_options:
        with pytest.raises(RuntimeError):
            options.get_run_config_entry(NO_RUN_END_SYNC)


@pytest.mark.parametrize("graphs", [False, True])
def test_partial_batches_run_padded_to_the_capacity(simulated: Any, graphs: bool) -> None:
    """A batch below the largest so far runs padded to it (ONNX Runtime re-plans whenever the input shape
    changes): the run's batch only grows, results are cut back to the batch and equal unpadded ones."""
    runner = simulated(max_batch=4, cuda_graph=graphs)
    assert runner.pad_batch
    rng = np.random.default_rng(1)
    run_shapes = []
    for batch in (1, 1, 3, 1, 4, 2, 1, 4):
        x = _device(rng.standard_normal((batch, 2, 3)).astype(np.float32))
        out = runner.infer({"images": x})["out"]
        assert out.shape == (batch, 2, 3)
        np.testing.assert_array_equal(np.array(out), np.array(x) * np.float32(2) + np.float32(1))
        run_shapes.append(runner._run_batch)
    assert run_shapes == [1, 1, 3, 3, 4, 4, 4, 4]  # single images stay batch 1 until a larger batch comes
    if graphs:
        assert runner.captured_batches == [1, 3, 4]
    else:
        assert {shape for shape, _ in runner._binding.inputs.values()} == {(4, 2, 3)}
    assert runner.capacity == 4
    larger = _device(np.ones((6, 2, 3), np.float32))  # above the capacity: the buffers grow, no padding
    assert runner.infer({"images": larger})["out"].shape == (6, 2, 3)
    assert runner.capacity == 6


def test_padding_is_off_where_the_shape_forbids_it(simulated: Any) -> None:
    assert not simulated(shape=["batch", 2, "w"], max_batch=4).pad_batch  # spatial size varies too
    assert not simulated(shape=[1, 2, 3], max_batch=1).pad_batch  # a fixed batch
    assert not simulated(max_batch=4, pad_batch=False).pad_batch


def test_graph_runner_zero_copy_input_buffer(simulated: Any) -> None:
    runner = simulated(max_batch=4, cuda_graph=True)
    for step in range(3):
        buffer = runner.input_buffer("images", 3)
        buffer[...] = np.float32(step)
        out = runner.infer({"images": buffer})["out"]
        assert runner.input_buffer("images", 3).data.ptr == buffer.data.ptr
        np.testing.assert_array_equal(np.array(out), np.full((3, 2, 3), 2 * step + 1, np.float32))
    assert _Memory.copies == 0  # preprocessing wrote where the graph reads: nothing copied
    with pytest.raises(ValueError, match=r"dynamic dimensions besides the batch"):
        simulated(shape=["batch", 2, "w"], max_batch=2).input_buffer("images", 1)


def test_graph_runner_falls_back_after_a_failed_capture(simulated: Any, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="trtapps.runners.onnxruntime_cuda"):
        runner = simulated(max_batch=2, cuda_graph=True, fail_capture=True)
        x = _device(np.arange(12, dtype=np.float32).reshape(2, 2, 3))
        out = runner.infer({"images": x})["out"]
        np.testing.assert_array_equal(np.array(out), np.array(x) * 2 + 1)
        again = runner.infer({"images": x[:1]})["out"]
        np.testing.assert_array_equal(np.array(again), np.array(x[:1]) * 2 + 1)
    assert not runner.cuda_graph
    assert runner.cuda_graph_problem == (
        "capturing batch 2 failed (RuntimeError: CUDA failure 900: operation not permitted when stream is capturing)"
    )
    assert "enable_cuda_graph" not in runner.provider_options
    assert [o.get("enable_cuda_graph") for o in _Session.opened] == ["1", None]  # a new session, without graphs
    assert caplog.text.count("CUDA graphs off") == 1


def test_graph_runner_without_graphs_where_onnxruntime_refuses_or_shapes_forbid(simulated: Any) -> None:
    refused = simulated(max_batch=2, cuda_graph=True, refuse_graphs=True)
    assert not refused.cuda_graph
    assert refused.cuda_graph_problem == (
        "ONNX Runtime cannot capture this model (This session cannot use the graph capture feature as requested "
        "by the user)"
    )
    spatial = simulated(shape=["batch", 2, "w"], max_batch=2, cuda_graph=True)
    assert not spatial.cuda_graph
    assert spatial.cuda_graph_problem == "input images float32 [?, 2, ?] has dynamic dimensions other than the batch"
    assert spatial.session.graphs is False  # reopened without enable_cuda_graph
    assert [o.get("enable_cuda_graph") for o in _Session.opened[-2:]] == ["1", None]


def test_a_pipeline_refuses_graphs_on_a_named_cpu_backend_and_ignores_them_under_auto(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from conftest import shared_path
    from trtapps.errors import ConfigError
    from trtapps.pipeline import Pipeline

    monkeypatch.delenv("TRTAPPS_BACKEND", raising=False)
    app = {"type": "yolo", "model": str(shared_path("models/yolox_nano.onnx"))}
    with pytest.raises(ConfigError, match=r"backend\.cuda_graph: backend 'onnxruntime' cannot replay CUDA graphs"):
        Pipeline.from_objects(app=app, backend={"type": "onnxruntime", "cuda_graph": True})
    with caplog.at_level("WARNING"):
        pipe = Pipeline.from_objects(app=app, backend={"type": "auto", "cuda_graph": True})
    with pipe:
        if pipe.runner.backend == "onnxruntime":  # no GPU: auto chose the CPU and said graphs are off
            assert "backend.cuda_graph is ignored" in caplog.text
        else:  # a GPU machine: auto chose a GPU backend, which got the option
            assert pipe.runner.cuda_graph is True


# -- relax_capture_mode ------------------------------------------------------------------------------------------------
def test_relax_capture_mode_calls_the_driver_once_per_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    """The mode is each thread's own driver state: the first call in a thread sets it, later calls in that thread
    return at once (a pipeline calls it per frame and per batch), another thread sets its own; a refusal is
    raised and not remembered."""
    import enum
    import threading

    class CUresult(enum.IntEnum):  # cuda-python's enum, as far as this test needs it
        CUDA_SUCCESS = 0
        CUDA_ERROR_NOT_INITIALIZED = 3

    calls: list[str] = []
    status = [CUresult.CUDA_SUCCESS]

    def exchange(mode: Any) -> tuple[Any, Any]:
        calls.append(threading.current_thread().name)
        return status[0], mode

    # a stand-in driver module: CI installs no cuda-python, and the calls must be counted anyway
    driver = SimpleNamespace(
        CUresult=CUresult,
        CUstreamCaptureMode=SimpleNamespace(CU_STREAM_CAPTURE_MODE_THREAD_LOCAL=2),
        cuThreadExchangeStreamCaptureMode=exchange,
    )
    bindings = types.ModuleType("cuda.bindings")
    bindings.driver = driver  # type: ignore[attr-defined]
    package = types.ModuleType("cuda")
    package.bindings = bindings  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "cuda", package)
    monkeypatch.setitem(sys.modules, "cuda.bindings", bindings)
    monkeypatch.setattr(graphs, "_relaxed", threading.local())

    status[0] = CUresult.CUDA_ERROR_NOT_INITIALIZED
    with pytest.raises(CudaError, match="cuThreadExchangeStreamCaptureMode"):
        graphs.relax_capture_mode()
    status[0] = CUresult.CUDA_SUCCESS
    graphs.relax_capture_mode()
    graphs.relax_capture_mode()
    worker = threading.Thread(target=lambda: [graphs.relax_capture_mode() for _ in range(3)], name="reader")
    worker.start()
    worker.join()
    main = threading.current_thread().name
    assert calls == [main, main, "reader"]
