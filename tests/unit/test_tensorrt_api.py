"""TensorRT backend, engine cache and GPU backend plumbing.

Unmarked tests run on any machine: cache keys, build-option validation, dtype mapping, the metadata JSON round
trip, the cache's hit/miss rules, ONNX inspection, precision and profile decisions, backend availability reasons
and ``backend: auto`` selection order, ``check_cuda`` messages, ONNX Runtime CUDA provider options, and that every
TensorRT name the code uses is in the list ``trtapps/engine/apicheck.py`` verifies against real bindings.

Tests marked ``tensorrt`` build and run a real engine (yolov8n, batch 1..8) and are skipped visibly where
TensorRT or a GPU is missing.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

import onnx
from conftest import REPO, shared_path  # tests/conftest.py
from letterboxed_media import batch_of  # tests/letterboxed_media.py
from onnx import TensorProto, helper
from trtapps.engine import apicheck
from trtapps.engine.build import inspect_onnx, precision_plan, resolve_input_shape
from trtapps.engine.cache import (
    CACHE_FORMAT,
    BuildOptions,
    EngineCache,
    EngineMetadata,
    TensorMeta,
    atomic_write,
    default_cache_dir,
    engine_key,
)
from trtapps.engine.dtypes import TRT_TO_NUMPY, numpy_dtype
from trtapps.errors import BackendUnavailableError, CudaError, ModelError
from trtapps.gpu import check_cuda
from trtapps.registry import ComponentSpec, Registry
from trtapps.runners.base import TensorInfo, select_backend
from trtapps.runners.onnxruntime import OnnxRuntimeOptions
from trtapps.runners.onnxruntime_cuda import OnnxRuntimeCudaOptions, binding_mode, provider_options
from trtapps.runners.tensorrt import TensorRTOptions

MODEL = "models/yolov8n_dequant.onnx"
KEY_ARGS = ("a" * 64, BuildOptions(max_batch=8), "10.13.0.35", "NVIDIA H100 80GB HBM3", "9.0")


# -- cache keys and build options -------------------------------------------------------------------------------------
def test_engine_key_is_stable_and_hex() -> None:
    key = engine_key(*KEY_ARGS)
    assert key == engine_key(*KEY_ARGS)
    assert len(key) == 64
    int(key, 16)


@pytest.mark.parametrize(
    "change",
    [
        {"onnx": "b" * 64},
        {"options": BuildOptions(max_batch=4)},
        {"options": BuildOptions(max_batch=8, workspace_mb=1024)},
        {"options": BuildOptions(max_batch=8, fp16=True)},
        {"options": BuildOptions(max_batch=8, tf32=False)},
        {"options": BuildOptions(max_batch=8, input_size=(640, 640))},
        {"options": BuildOptions(max_batch=8, optimization_level=5)},
        {"version": "11.4.0.106"},
        {"gpu": "NVIDIA H200"},
        {"cc": "8.9"},
    ],
)
def test_engine_key_changes_with_every_input(change: dict[str, Any]) -> None:
    onnx_sha, options, version, gpu, cc = KEY_ARGS
    other = engine_key(
        change.get("onnx", onnx_sha), change.get("options", options), change.get("version", version),
        change.get("gpu", gpu), change.get("cc", cc),
    )
    assert other != engine_key(*KEY_ARGS)


def test_build_options_are_canonical_and_validated() -> None:
    a = BuildOptions(max_batch=2, input_size=(480, 640))
    b = BuildOptions.from_dict(json.loads(json.dumps(a.as_dict())))
    assert a == b
    assert a.as_dict()["input_size"] == [480, 640]
    assert engine_key("x", a, "v", "g", "9.0") == engine_key("x", b, "v", "g", "9.0")
    for bad in ({"max_batch": 0}, {"workspace_mb": 0}, {"input_size": (0, 640)}, {"optimization_level": 6}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            BuildOptions(**bad)


def test_backend_options_models() -> None:
    options = TensorRTOptions(max_batch=8, input_size=(640, 640), fp16=True)
    assert options.build_options() == BuildOptions(max_batch=8, input_size=(640, 640), fp16=True)
    assert TensorRTOptions().build_options(default_batch=4).max_batch == 4
    with pytest.raises(ValueError, match="workspace_mb"):
        TensorRTOptions(workspace_mb=1)
    with pytest.raises(ValueError, match="cudnn_conv_algo_search"):
        OnnxRuntimeCudaOptions(cudnn_conv_algo_search="FAST")
    assert OnnxRuntimeCudaOptions(device=1).device == 1


def test_default_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TRTAPPS_CACHE", str(tmp_path))
    assert default_cache_dir() == tmp_path / "engines"  # models go to TRTAPPS_CACHE/models beside it
    monkeypatch.delenv("TRTAPPS_CACHE")
    assert default_cache_dir() == Path.home() / ".cache" / "trtapps" / "engines"


# -- dtypes -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "dtype"),
    [("FLOAT", np.float32), ("HALF", np.float16), ("INT8", np.int8), ("INT32", np.int32), ("INT64", np.int64),
     ("BOOL", np.bool_), ("UINT8", np.uint8)],
)
def test_trt_dtypes_map_to_numpy(name: str, dtype: Any) -> None:
    member = SimpleNamespace(name=name)  # a tensorrt.DataType member as far as the mapping is concerned
    assert numpy_dtype(member) == np.dtype(dtype)


@pytest.mark.parametrize("name", ["BF16", "FP8", "INT4", "FP4", "E8M0"])
def test_trt_dtypes_without_numpy_equivalent_are_refused(name: str) -> None:
    with pytest.raises(ModelError, match=rf"tensor 'scores' has TensorRT type {name}"):
        numpy_dtype(SimpleNamespace(name=name), "scores")


def test_trt_dtype_by_str_form() -> None:
    assert numpy_dtype("DataType.HALF") == np.float16
    assert set(TRT_TO_NUMPY) == {"FLOAT", "HALF", "INT8", "INT32", "INT64", "BOOL", "UINT8"}


# -- metadata and the cache -----------------------------------------------------------------------------------------
def _meta(key: str = "k" * 64, **overrides: Any) -> EngineMetadata:
    values: dict[str, Any] = {
        "key": key,
        "model": "yolov8n.onnx",
        "onnx_sha256": "a" * 64,
        "build_options": BuildOptions(max_batch=8).as_dict(),
        "tensorrt_version": "10.13.0.35",
        "gpu_name": "NVIDIA H100 80GB HBM3",
        "compute_capability": "9.0",
        "engine_sha256": "",
        "engine_bytes": 0,
        "inputs": [TensorMeta("images", [-1, 3, 640, 640], "FLOAT", [[1, 3, 640, 640], [8, 3, 640, 640],
                                                                         [8, 3, 640, 640]])],
        "outputs": [TensorMeta("output0", [-1, 84, 8400], "FLOAT")],
        "onnx_metadata": {"names": "{0: 'person', 1: 'bicycle'}", "stride": "32"},
        "precision": "graph",
        "build_seconds": 12.5,
    }
    values.update(overrides)
    return EngineMetadata(**values)


def test_metadata_json_round_trip() -> None:
    meta = _meta(engine_sha256="e" * 64, engine_bytes=10, created="2026-01-01T00:00:00Z")
    text = meta.to_json()
    again = EngineMetadata.from_json(text)
    assert again == meta
    assert again.onnx_metadata["names"].startswith("{0: 'person'")
    assert again.inputs[0].profile == [[1, 3, 640, 640], [8, 3, 640, 640], [8, 3, 640, 640]]
    assert json.loads(text)["format"] == CACHE_FORMAT


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not json", "not JSON"),
        ("[]", "not a JSON object"),
        (json.dumps({"key": "k"}), "missing fields"),
        (json.dumps({**json.loads(_meta().to_json()), "engine_bytes": "ten"}), "engine_bytes"),
        (json.dumps({**json.loads(_meta().to_json()), "inputs": [{"nom": "x"}]}), "bad tensor entry"),
    ],
)
def test_metadata_json_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        EngineMetadata.from_json(text)


def _lookup(cache: EngineCache, key: str, **overrides: str) -> tuple[Any, str]:
    expect = {"tensorrt_version": "10.13.0.35", "gpu_name": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0"}
    expect.update(overrides)
    return cache.lookup(key, **expect)


def test_cache_store_and_hit(tmp_path: Path) -> None:
    cache = EngineCache(tmp_path)
    meta = _meta()
    path = cache.store(b"engine-bytes", meta)
    assert path == tmp_path / f"{meta.key}.engine"
    assert (tmp_path / f"{meta.key}.json").is_file()
    assert not list(tmp_path.glob(".*tmp"))  # atomic writes leave no temporary files
    hit, reason = _lookup(cache, meta.key)
    assert hit is not None, reason
    assert hit.engine == b"engine-bytes"
    assert hit.meta.engine_bytes == len(b"engine-bytes")
    assert hit.meta.onnx_metadata == meta.onnx_metadata
    assert hit.meta.created


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"tensorrt_version": "11.4.0.106"}, "built by TensorRT 10.13.0.35, this is 11.4.0.106"),
        ({"gpu_name": "NVIDIA H200"}, "built for NVIDIA H100 80GB HBM3 (sm 9.0), this is NVIDIA H200 (sm 9.0)"),
        ({"compute_capability": "8.9"}, "this is NVIDIA H100 80GB HBM3 (sm 8.9)"),
    ],
)
def test_cache_refuses_engines_for_another_tensorrt_or_gpu(tmp_path: Path, overrides: dict[str, str],
                                                            reason: str) -> None:
    cache = EngineCache(tmp_path)
    meta = _meta()
    cache.store(b"engine", meta)
    hit, why = _lookup(cache, meta.key, **overrides)
    assert hit is None
    assert reason in why


def test_cache_misses(tmp_path: Path) -> None:
    cache = EngineCache(tmp_path)
    assert _lookup(cache, "0" * 64) == (None, "not cached")
    meta = _meta()
    cache.store(b"engine-bytes", meta)
    cache.engine_path(meta.key).write_bytes(b"engine-byte")  # truncated
    hit, why = _lookup(cache, meta.key)
    assert hit is None
    assert "does not match its checksum" in why
    cache.engine_path(meta.key).unlink()
    assert "is missing" in _lookup(cache, meta.key)[1]
    cache.meta_path(meta.key).write_text("{")
    assert "unreadable metadata" in _lookup(cache, meta.key)[1]
    cache.remove(meta.key)
    assert _lookup(cache, meta.key) == (None, "not cached")


def test_cache_finds_stale_entries_of_other_versions(tmp_path: Path) -> None:
    cache = EngineCache(tmp_path)
    old = _meta(key="1" * 64, tensorrt_version="10.13.0.35")
    other_model = _meta(key="2" * 64, onnx_sha256="b" * 64)
    cache.store(b"x", old)
    cache.store(b"y", other_model)
    stale = cache.stale("a" * 64, BuildOptions(max_batch=8), key="3" * 64)
    assert [m.key for m in stale] == [old.key]
    assert cache.stale("a" * 64, BuildOptions(max_batch=4), key="3" * 64) == []


def test_timing_cache_path_names_version_and_gpu(tmp_path: Path) -> None:
    path = EngineCache(tmp_path).timing_cache_path("11.4.0.106", "NVIDIA H100 80GB HBM3", "9.0")
    assert path == tmp_path / "timing" / "11.4.0.106-NVIDIA-H100-80GB-HBM3-sm90.cache"


def test_atomic_write_replaces_whole_files(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "file.bin"
    atomic_write(target, b"first")
    atomic_write(target, b"second")
    assert target.read_bytes() == b"second"
    assert sorted(p.name for p in target.parent.iterdir()) == ["file.bin"]


# -- ONNX inspection, precision, profiles -------------------------------------------------------------------------------
def _tiny_model(elem: int = TensorProto.FLOAT, qdq: bool = False) -> onnx.ModelProto:
    x = helper.make_tensor_value_info("x", elem, ["batch", 4])
    y = helper.make_tensor_value_info("y", elem, ["batch", 4])
    values = np.array([1.0, 2.0, 3.0, 4.0], dtype=np.float16 if elem == TensorProto.FLOAT16 else np.float32)
    w = helper.make_tensor("w", elem, [4], values.tobytes(), raw=True)  # raw data can move to an external file
    nodes = [helper.make_node("Mul", ["x", "w"], ["y"])]
    if qdq:
        nodes = [helper.make_node("Mul", ["x", "w"], ["m"]),
                 helper.make_node("QuantizeLinear", ["m", "s"], ["q"]),
                 helper.make_node("DequantizeLinear", ["q", "s"], ["y"])]
    inits = [w] + ([helper.make_tensor("s", TensorProto.FLOAT, [], [0.1])] if qdq else [])
    graph = helper.make_graph(nodes, "tiny", [x], [y], inits)
    model = helper.make_model(graph)
    helper.set_model_props(model, {"names": "{0: 'thing'}"})
    return model


def test_inspect_onnx_real_model() -> None:
    path = shared_path(MODEL)
    info = inspect_onnx(path, path.read_bytes())
    # the digest of a model without external data is the file's SHA-256 (models/MANIFEST.md lists it)
    assert info.sha256 == "a7647dc06998dda2b5cb1a754193402f67fae3b357b80cd406eceab74cabf3d6"
    assert info.precision == "fp32"
    assert not info.qdq
    assert info.metadata["names"].startswith("{0: 'person'")


def test_inspect_onnx_precision_and_qdq(tmp_path: Path) -> None:
    fp16 = _tiny_model(TensorProto.FLOAT16).SerializeToString()
    assert inspect_onnx(tmp_path / "a.onnx", fp16).precision == "fp16"
    info = inspect_onnx(tmp_path / "b.onnx", _tiny_model(qdq=True).SerializeToString())
    assert info.precision == "fp32"
    assert info.qdq
    assert info.metadata == {"names": "{0: 'thing'}"}
    with pytest.raises(ModelError, match="not an ONNX model"):
        inspect_onnx(tmp_path / "c.onnx", b"\x00garbage")


def test_inspect_onnx_digest_covers_external_data(tmp_path: Path) -> None:
    path = tmp_path / "ext.onnx"
    onnx.save_model(_tiny_model(), path, save_as_external_data=True, all_tensors_to_one_file=True,
                    location="weights.bin", size_threshold=0)
    before = inspect_onnx(path, path.read_bytes()).sha256
    weights = tmp_path / "weights.bin"
    data = bytearray(weights.read_bytes())
    data[0] ^= 0xFF
    weights.write_bytes(bytes(data))
    assert inspect_onnx(path, path.read_bytes()).sha256 != before
    weights.unlink()
    with pytest.raises(ModelError, match=r"external data file 'weights\.bin'"):
        inspect_onnx(path, path.read_bytes())


@pytest.mark.parametrize(
    ("fp16", "graph", "has_flag", "strongly_typed", "flag"),
    [
        (False, "fp32", True, True, False),
        (False, "fp32", False, True, False),
        (True, "fp16", True, True, False),  # already fp16: strong typing keeps it
        (True, "fp32", True, False, True),  # TensorRT 10: weakly typed + FP16 flag
        (True, "fp32", False, True, False),  # TensorRT 11: no flag, graph precision, with a note
    ],
)
def test_precision_plan(fp16: bool, graph: str, has_flag: bool, strongly_typed: bool, flag: bool) -> None:
    plan = precision_plan(fp16, graph, has_flag)
    assert (plan.strongly_typed, plan.fp16_flag) == (strongly_typed, flag)
    if fp16 and graph == "fp32" and not has_flag:
        assert "convert the model to fp16" in plan.note


def test_profile_shapes() -> None:
    options = BuildOptions(max_batch=8)
    assert resolve_input_shape("images", [1, 3, 640, 640], options, "m") is None
    assert resolve_input_shape("images", [-1, 3, 640, 640], options, "m") == (
        [1, 3, 640, 640], [8, 3, 640, 640], [8, 3, 640, 640])
    sized = BuildOptions(max_batch=4, input_size=(480, 640))
    assert resolve_input_shape("input", [-1, 3, -1, -1], sized, "m") == (
        [1, 3, 480, 640], [4, 3, 480, 640], [4, 3, 480, 640])
    with pytest.raises(ModelError, match=r"dynamic height/width .* input_size"):
        resolve_input_shape("input", [-1, 3, -1, -1], options, "retinaface.onnx")
    with pytest.raises(ModelError, match="dynamic dimension 1"):
        resolve_input_shape("tokens", [-1, -1], options, "m")


# -- availability and backend selection ---------------------------------------------------------------------------------
def test_tensorrt_unavailable_reason(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from trtapps.runners import tensorrt as trt_backend

    monkeypatch.setitem(sys.modules, "tensorrt", None)  # import tensorrt now raises ImportError
    reason = trt_backend.available()
    assert reason is not None
    assert reason.startswith("TensorRT is not installed or cannot be loaded (")
    assert "pip install tensorrt-cu13" in reason
    with pytest.raises(BackendUnavailableError, match="backend 'tensorrt' cannot run here: TensorRT is not"):
        trt_backend.TensorRTRunner("model.onnx")
    # a bare "tensorrt" folder (what tensorrt-stubs installs) imports as an empty namespace package
    (tmp_path / "tensorrt").mkdir()
    (tmp_path / "tensorrt" / "__init__.pyi").write_text("")
    monkeypatch.delitem(sys.modules, "tensorrt")
    monkeypatch.syspath_prepend(str(tmp_path))
    reason = trt_backend.available()
    assert reason is not None
    assert "not TensorRT's Python bindings" in reason


def test_onnxruntime_cuda_unavailable_reason_on_a_cpu_build(monkeypatch: pytest.MonkeyPatch) -> None:
    import onnxruntime

    from trtapps.runners import onnxruntime_cuda

    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: ["CPUExecutionProvider"])
    reason = onnxruntime_cuda.available()
    assert reason is not None
    assert "no CUDAExecutionProvider" in reason
    assert "onnxruntime-gpu" in reason
    with pytest.raises(BackendUnavailableError, match="backend 'onnxruntime_cuda' cannot run here"):
        onnxruntime_cuda.OnnxRuntimeCudaRunner("model.onnx")


def _registry(tensorrt: str | None, ort_cuda: str | None) -> Registry:
    registry = Registry("backend")
    registry.add(ComponentSpec("onnxruntime", OnnxRuntimeOptions, lambda *a: None, available=lambda: None,
                               priority=0), "core")
    registry.add(ComponentSpec("onnxruntime_cuda", OnnxRuntimeCudaOptions, lambda *a: None,
                               available=lambda: ort_cuda, priority=50), "core")
    registry.add(ComponentSpec("tensorrt", TensorRTOptions, lambda *a: None, available=lambda: tensorrt,
                               priority=100), "core")
    return registry


@pytest.mark.parametrize(
    ("tensorrt", "ort_cuda", "chosen"),
    [
        (None, None, "tensorrt"),
        ("no TensorRT", None, "onnxruntime_cuda"),
        ("no TensorRT", "no GPU", "onnxruntime"),
        (None, "no GPU", "tensorrt"),
    ],
)
def test_auto_picks_the_highest_priority_available_backend(
    monkeypatch: pytest.MonkeyPatch, tensorrt: str | None, ort_cuda: str | None, chosen: str
) -> None:
    monkeypatch.delenv("TRTAPPS_BACKEND", raising=False)
    assert select_backend("auto", _registry(tensorrt, ort_cuda)).name == chosen


def test_registered_backends_through_the_plugin_manager(monkeypatch: pytest.MonkeyPatch) -> None:
    from trtapps import plugins
    from trtapps.runners import onnxruntime_cuda
    from trtapps.runners import tensorrt as trt_backend

    monkeypatch.delenv("TRTAPPS_BACKEND", raising=False)
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    extra = [m for m in (onnxruntime_cuda, trt_backend) if m.__name__ not in plugins.CORE_PLUGINS]
    manager = plugins.PluginManager(plugins=extra, entry_points=False)
    registry = manager.registries.backend
    assert {"onnxruntime", "onnxruntime_cuda", "tensorrt"} <= set(registry.names())
    priorities = {s.name: s.priority for s in registry}
    assert priorities["tensorrt"] > priorities["onnxruntime_cuda"] > priorities["onnxruntime"]
    if onnxruntime_cuda.available() is not None:  # this machine: no TensorRT, no usable CUDA provider
        assert select_backend("auto", registry).name == "onnxruntime"
    with pytest.raises(BackendUnavailableError, match="backend 'tensorrt' cannot run here: TensorRT is not"):
        select_backend("tensorrt", registry)


# -- GPU foundations that are checkable without a GPU -------------------------------------------------------------------
def test_check_cuda_unwraps_success_values() -> None:
    ok = SimpleNamespace(name="cudaSuccess", value=0)
    assert check_cuda("cudaFreeHost", (ok,)) is None
    assert check_cuda("cudaHostAlloc", (ok, 1234)) == 1234
    assert check_cuda("cudaMemGetInfo", (ok, 1, 2)) == (1, 2)


def test_check_cuda_names_the_call_and_the_error() -> None:
    error = SimpleNamespace(name="cudaErrorMemoryAllocation", value=2)
    with pytest.raises(CudaError, match=r"^cudaHostAlloc failed: cudaErrorMemoryAllocation$"):
        check_cuda("cudaHostAlloc", (error, None))


def test_check_cuda_with_cuda_python_error_codes() -> None:
    cudart = pytest.importorskip("cuda.bindings.runtime")
    # a real cuda-python result tuple; the description comes from cudaGetErrorString
    error = cudart.cudaError_t.cudaErrorMemoryAllocation
    with pytest.raises(CudaError, match=r"^cudaHostAlloc failed: cudaErrorMemoryAllocation \(out of memory\)$"):
        check_cuda("cudaHostAlloc", (error, None))


def test_gpu_and_backend_modules_import_without_cupy_cuda_python_or_tensorrt() -> None:
    code = (
        "import sys\n"
        "import trtapps, trtapps.gpu, trtapps.engine, trtapps.runners.onnxruntime_cuda, trtapps.runners.tensorrt\n"
        "from trtapps.plugins import PluginManager\n"
        "PluginManager(plugins=[trtapps.runners.onnxruntime_cuda, trtapps.runners.tensorrt], entry_points=False)\n"
        "loaded = [m for m in ('cupy', 'cuda.bindings', 'tensorrt') if m in sys.modules]\n"
        "print(','.join(loaded) or 'none')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, "TRTAPPS_DISABLE_PLUGIN_AUTOLOAD": "1"}, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "none"


def test_binding_modes() -> None:
    f32 = np.dtype(np.float32)
    assert binding_mode(TensorInfo("o", (None, 84, 8400), f32), "batch", "batch") == "batch"
    assert binding_mode(TensorInfo("o", (1, 3549, 85), f32), 1, 1) == "fixed"
    # anchors that follow a dynamic input height/width: left to ONNX Runtime, wrapped without a copy
    assert binding_mode(TensorInfo("o", (None, None, 4), f32), "batch", "batch") == "ort"
    # a dynamic first dimension that is not the inputs' batch (a number of detections)
    assert binding_mode(TensorInfo("o", (None, 6), f32), "num_dets", "batch") == "ort"
    assert binding_mode(TensorInfo("o", (None, 6), f32), None, None) == "ort"


def test_provider_options_are_the_strings_onnxruntime_parses() -> None:
    assert provider_options(1, 140737488355328, cudnn_conv_algo_search="HEURISTIC", gpu_mem_limit=2 << 30) == {
        "device_id": "1",
        "cudnn_conv_algo_search": "HEURISTIC",
        "arena_extend_strategy": "kNextPowerOfTwo",
        "do_copy_in_default_stream": "1",
        "use_tf32": "1",
        "gpu_mem_limit": str(2 << 30),
        "user_compute_stream": "140737488355328",
    }
    assert "user_compute_stream" not in provider_options(0, None)
    assert provider_options(0, None, tf32=False)["use_tf32"] == "0"


# -- the TensorRT names the code uses are the ones apicheck verifies ------------------------------------------------------
#: variables (or self attributes) in the TensorRT modules → the TensorRT class they hold
_VARIABLE_CLASSES = {
    "_runtime": "Runtime",
    "engine": "ICudaEngine",
    "context": "IExecutionContext",
    "builder": "Builder",
    "config": "IBuilderConfig",
    "network": "INetworkDefinition",
    "parser": "OnnxParser",
    "profile": "IOptimizationProfile",
    "error": "ParserError",
    "tensor": "ITensor",
    "t": "ITensor",
}


def _used_tensorrt_names() -> set[tuple[str, str]]:
    used: set[tuple[str, str]] = set()
    for relative in ("trtapps/runners/tensorrt.py", "trtapps/engine/build.py"):
        tree = ast.parse((REPO / relative).read_text())
        for node in ast.walk(tree):
            if not isinstance(node, ast.Attribute) or node.attr.startswith("__"):
                continue
            value = node.value
            if isinstance(value, ast.Name) and value.id == "trt":
                used.add(("trt", node.attr))
            elif isinstance(value, ast.Attribute) and isinstance(value.value, ast.Name) and value.value.id == "trt":
                used.add((value.attr, node.attr))  # trt.Class.MEMBER
            elif isinstance(value, ast.Name) and value.id in _VARIABLE_CLASSES:
                used.add((_VARIABLE_CLASSES[value.id], node.attr))
            elif isinstance(value, ast.Attribute) and value.attr in _VARIABLE_CLASSES and value.attr.startswith("_"):
                used.add((_VARIABLE_CLASSES[value.attr], node.attr))
            elif (isinstance(value, ast.Call) and isinstance(value.func, ast.Attribute)
                  and value.func.attr == "get_timing_cache"):
                used.add(("ITimingCache", node.attr))
    return used


def test_every_tensorrt_name_used_is_in_the_checked_lists() -> None:
    declared: dict[str, set[str]] = {}
    for api in (apicheck.RUNTIME_API, apicheck.BUILDER_API, apicheck.OPTIONAL_API):
        for cls, members in api.items():
            declared.setdefault(cls, set()).update(members)
    used = _used_tensorrt_names()
    assert ("IExecutionContext", "execute_async_v3") in used  # the walker sees the code
    assert ("IBuilderConfig", "set_memory_pool_limit") in used
    undeclared = sorted(
        f"{cls}.{member}" for cls, member in used
        if not (cls == "trt" and (member in declared or member in apicheck.MODULE_NAMES))
        and not (cls != "trt" and member in declared.get(cls, set()))
    )
    assert not undeclared, f"add these to trtapps/engine/apicheck.py and check them: {undeclared}"


def test_apicheck_against_a_fake_module() -> None:
    fake = SimpleNamespace(Runtime=SimpleNamespace(deserialize_cuda_engine=1), DataType=SimpleNamespace(FLOAT=0))
    found, missing = apicheck.check_module(fake, {"Runtime": ("deserialize_cuda_engine",),
                                                  "DataType": ("FLOAT", "HALF"), "ICudaEngine": ()})
    assert found == 4  # two classes and two members
    assert missing == ["DataType.HALF", "ICudaEngine"]
    found, missing, weak = apicheck.check_strings({"set_input_shape", "xexecute_async_v3", "see :func:`parse`"},
                                                  {"IExecutionContext": ("set_input_shape", "execute_async_v3"),
                                                   "OnnxParser": ("parse",)})
    assert missing == ["IExecutionContext", "OnnxParser"]
    assert weak == ["IExecutionContext.execute_async_v3", "OnnxParser.parse"]


# -- real TensorRT (skipped where it is missing) -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def cpu_outputs() -> np.ndarray:
    from trtapps.runners.onnxruntime import OnnxRuntimeRunner

    with OnnxRuntimeRunner(shared_path(MODEL)) as runner:
        return np.asarray(runner.infer({"images": batch_of(8)})["output0"])


@pytest.fixture(scope="module")
def engine_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("engines")


def _close(got: np.ndarray, want: np.ndarray) -> None:
    """TensorRT fp32 (TF32 off) against ONNX Runtime CPU: scores within 1e-2, boxes (pixels) 1e-2 + 1e-4 rel."""
    box_err = float(np.abs(got[:, :4] - want[:, :4]).max())
    score_err = float(np.abs(got[:, 4:] - want[:, 4:]).max())
    print(f"max |Δ| boxes {box_err:.2e} px, scores {score_err:.2e}")
    np.testing.assert_allclose(got[:, 4:], want[:, 4:], atol=1e-2, rtol=0)
    np.testing.assert_allclose(got[:, :4], want[:, :4], atol=1e-2, rtol=1e-4)


@pytest.mark.tensorrt
def test_tensorrt_builds_runs_and_matches_cpu(engine_dir: Path, cpu_outputs: np.ndarray) -> None:
    import cupy as cp

    from trtapps.gpu.stream import new_stream
    from trtapps.runners.tensorrt import TensorRTRunner

    x = batch_of(8)
    stream = new_stream()
    with TensorRTRunner(shared_path(MODEL), options=BuildOptions(max_batch=8), cache_dir=engine_dir) as runner:
        assert runner.built
        assert runner.max_batch == 8
        assert runner.inputs[0] == TensorInfo("images", (None, 3, 640, 640), np.dtype(np.float32))
        assert runner.outputs[0].shape == (None, 84, 8400)
        assert runner.metadata["names"].startswith("{0: 'person'")
        for n in (1, 8, 3):
            with stream:
                feed = cp.asarray(x[:n])
            out = runner.infer({"images": feed}, stream)["output0"]
            assert out.shape == (n, 84, 8400)
            _close(out.get(stream=stream), cpu_outputs[:n])
        with pytest.raises(ValueError, match=r"outside the engine's range 1\.\.8"):
            runner.infer({"images": cp.zeros((9, 3, 640, 640), cp.float32)}, stream)
    meta = json.loads(next(engine_dir.glob("*.json")).read_text())
    assert meta["onnx_metadata"]["names"].startswith("{0: 'person'")
    assert meta["inputs"][0]["profile"] == [[1, 3, 640, 640], [8, 3, 640, 640], [8, 3, 640, 640]]
    assert list((engine_dir / "timing").glob("*.cache"))


@pytest.mark.tensorrt
def test_tensorrt_cache_hit_on_second_build(engine_dir: Path, cpu_outputs: np.ndarray) -> None:
    import cupy as cp

    from trtapps.runners.tensorrt import TensorRTRunner

    options = BuildOptions(max_batch=8)
    with TensorRTRunner(shared_path(MODEL), options=options, cache_dir=engine_dir) as first:
        key = first.engine_info.key if first.engine_info else ""
    with TensorRTRunner(shared_path(MODEL), options=options, cache_dir=engine_dir) as second:
        assert not second.built
        assert second.engine_info is not None
        assert second.engine_info.key == key
        out = second.infer({"images": cp.asarray(batch_of(2))})["output0"]  # on CuPy's current stream
        _close(out.get(), cpu_outputs[:2])


@pytest.mark.tensorrt
def test_tensorrt_cache_invalidated_when_options_change(engine_dir: Path) -> None:
    from trtapps.runners.tensorrt import TensorRTRunner

    with TensorRTRunner(shared_path(MODEL), options=BuildOptions(max_batch=8), cache_dir=engine_dir) as base:
        assert base.engine_info is not None
        key = base.engine_info.key
    with TensorRTRunner(shared_path(MODEL), options=BuildOptions(max_batch=4), cache_dir=engine_dir) as other:
        assert other.built
        assert other.engine_info is not None
        assert other.engine_info.key != key
        assert other.max_batch == 4


@pytest.mark.tensorrt
def test_tensorrt_rebuilds_a_cached_engine_it_cannot_load(engine_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A cache entry whose checksum matches but which TensorRT cannot deserialize is rebuilt, with a reason."""
    from trtapps.engine.cache import sha256_bytes
    from trtapps.runners.tensorrt import TensorRTRunner

    options = BuildOptions(max_batch=2)
    with TensorRTRunner(shared_path(MODEL), options=options, cache_dir=engine_dir) as runner:
        assert runner.engine_info is not None
        key = runner.engine_info.key
    cache = EngineCache(engine_dir)
    garbage = b"not an engine" * 100
    cache.engine_path(key).write_bytes(garbage)
    meta = EngineMetadata.from_json(cache.meta_path(key).read_text())
    meta.engine_sha256, meta.engine_bytes = sha256_bytes(garbage), len(garbage)
    cache.meta_path(key).write_text(meta.to_json())
    with caplog.at_level("WARNING", logger="trtapps"), TensorRTRunner(
        shared_path(MODEL), options=options, cache_dir=engine_dir
    ) as rebuilt:
        assert rebuilt.built
    assert "could not be deserialized" in caplog.text
    assert cache.engine_path(key).read_bytes() != garbage


@pytest.mark.tensorrt
def test_tensorrt_runs_a_serialized_engine_file(engine_dir: Path, tmp_path: Path, cpu_outputs: np.ndarray) -> None:
    import cupy as cp

    from trtapps.runners.tensorrt import TensorRTRunner

    with TensorRTRunner(shared_path(MODEL), options=BuildOptions(max_batch=8), cache_dir=engine_dir) as runner:
        assert runner.engine_info is not None
        key = runner.engine_info.key
    cache = EngineCache(engine_dir)
    (tmp_path / "yolov8n.engine").write_bytes(cache.engine_path(key).read_bytes())
    (tmp_path / "yolov8n.json").write_text(cache.meta_path(key).read_text())
    with TensorRTRunner(tmp_path / "yolov8n.engine") as loaded:
        assert loaded.metadata["names"].startswith("{0: 'person'")
        out = loaded.infer({"images": cp.asarray(batch_of(1))})["output0"]
        _close(out.get(), cpu_outputs[:1])


@pytest.mark.parametrize(
    ("model", "search"),
    [("yolov8n_dequant", "EXHAUSTIVE"), ("osnet_x0_25_msmt17", "EXHAUSTIVE"), ("retinaface_mnet025", "HEURISTIC")],
)
def test_conv_search_auto_avoids_a_search_per_image_size(model: str, search: str) -> None:
    """RetinaFace runs each image at its own size: an exhaustive cuDNN search per new shape made the GPU
    evaluation 16x slower than the CPU one; batch-only dynamic models keep the exhaustive search."""
    from trtapps.runners.onnxruntime_cuda import conv_algo_search

    path = shared_path(f"models/{model}.onnx")
    assert conv_algo_search(path, "auto") == search
    assert conv_algo_search(path, "DEFAULT") == "DEFAULT"
    assert OnnxRuntimeCudaOptions().cudnn_conv_algo_search == "auto"
