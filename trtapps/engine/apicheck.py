"""Check that every TensorRT name trtapps calls exists in a given TensorRT, without a GPU.

The lists below are every TensorRT class, method, attribute and enum member that
:mod:`trtapps.runners.tensorrt` and :mod:`trtapps.engine.build` use (``tests/unit/test_tensorrt_api.py`` keeps
them complete by reading those modules). Three ways to check them, by what the machine has::

    # the TensorRT 11 lean runtime bindings import without a GPU: introspect the runtime classes
    python trtapps/engine/apicheck.py lean
    # the full bindings cannot import without libnvinfer: look for the names compiled into tensorrt.so
    python trtapps/engine/apicheck.py strings path/to/tensorrt_bindings/tensorrt.so
    # where TensorRT is installed (the GPU machine): introspect everything
    python trtapps/engine/apicheck.py module

It is a standalone script (standard library only) so it runs under any Python that has the bindings. Exit
status 0 when every required name is present; names that trtapps only uses after a ``hasattr`` check are
reported but never fail the check.
"""

from __future__ import annotations

import importlib
import re
import sys
from pathlib import Path

#: runtime classes and the members the runner uses (present in the lean runtime bindings too)
RUNTIME_API: dict[str, tuple[str, ...]] = {
    "Runtime": ("deserialize_cuda_engine",),
    "ICudaEngine": (
        "num_io_tensors", "get_tensor_name", "get_tensor_mode", "get_tensor_shape", "get_tensor_dtype",
        "get_tensor_profile_shape", "create_execution_context",
    ),
    "IExecutionContext": ("set_input_shape", "get_tensor_shape", "set_tensor_address", "execute_async_v3"),
    "ILogger": ("log", "Severity"),
    "TensorIOMode": ("INPUT", "OUTPUT"),
    "DataType": ("FLOAT", "HALF", "INT8", "INT32", "INT64", "BOOL", "UINT8"),
    "Dims": (),
}

#: builder-side classes and members (only in the full bindings)
BUILDER_API: dict[str, tuple[str, ...]] = {
    "Builder": (
        "create_network", "create_builder_config", "create_optimization_profile", "build_serialized_network",
    ),
    "NetworkDefinitionCreationFlag": ("STRONGLY_TYPED",),
    "INetworkDefinition": ("num_inputs", "get_input", "num_outputs", "get_output"),
    "ITensor": ("name", "shape", "dtype"),
    "OnnxParser": ("parse", "num_errors", "get_error"),
    "ParserError": ("desc", "code", "node", "node_name", "node_operator"),
    "IBuilderConfig": (
        "set_memory_pool_limit", "set_flag", "clear_flag", "builder_optimization_level",
        "add_optimization_profile", "create_timing_cache", "set_timing_cache", "get_timing_cache",
    ),
    "IOptimizationProfile": ("set_shape",),
    "ITimingCache": ("serialize",),
    "MemoryPoolType": ("WORKSPACE",),
    "BuilderFlag": ("TF32",),
    "IHostMemory": ("nbytes",),
}

#: names used only behind ``hasattr`` (TensorRT 10 has them, 11 removed them): reported, never required
OPTIONAL_API: dict[str, tuple[str, ...]] = {
    "BuilderFlag": ("FP16",),
}

#: removed in TensorRT 11 and deliberately not used by trtapps (reported for information)
NOT_USED: dict[str, tuple[str, ...]] = {
    "NetworkDefinitionCreationFlag": ("EXPLICIT_BATCH",),
    "IBuilderConfig": ("int8_calibrator",),
    "Builder": ("platform_has_fast_fp16",),
}

MODULE_NAMES = ("__version__", "nptype")


def _report(title: str, missing: list[str], found: int) -> None:
    print(f"{title}: {found} present, {len(missing)} missing")
    for name in missing:
        print(f"  MISSING {name}")


def check_module(trt: object, api: dict[str, tuple[str, ...]]) -> tuple[int, list[str]]:
    """Introspect *trt*: every class in *api* and each of its members."""
    found, missing = 0, []
    for cls_name, members in api.items():
        cls = getattr(trt, cls_name, None)
        if cls is None:
            missing.append(cls_name)
            continue
        found += 1
        for member in members:
            if hasattr(cls, member):
                found += 1
            else:
                missing.append(f"{cls_name}.{member}")
    return found, missing


def so_strings(path: Path, minimum: int = 2) -> set[str]:
    """Printable ASCII runs in a binary, like ``strings``."""
    data = path.read_bytes()
    return {m.decode() for m in re.findall(rb"[\x20-\x7e]{%d,}" % minimum, data)}


def check_strings(strings: set[str], api: dict[str, tuple[str, ...]]) -> tuple[int, list[str], list[str]]:
    """Look for each name as a whole string in *strings*.

    A name found only at the end of a longer string (linkers merge string tails) or only inside pybind11
    docstrings is counted as present but listed as weak evidence.

    Returns:
        ``(found, missing, weak)``.
    """
    found, missing, weak = 0, [], []
    pattern_cache: dict[str, re.Pattern[str]] = {}
    for cls_name, members in api.items():
        for name in (cls_name, *members):
            label = name if name == cls_name else f"{cls_name}.{name}"
            if name in strings:
                found += 1
                continue
            pattern = pattern_cache.setdefault(
                name, re.compile(rf"(^|[^A-Za-z0-9_]){re.escape(name)}([^A-Za-z0-9_]|$)")
            )
            if any(s.endswith(name) for s in strings) or any(pattern.search(s) for s in strings):
                found += 1
                weak.append(label)
            else:
                missing.append(label)
    return found, missing, weak


def main(argv: list[str]) -> int:
    mode = argv[1] if len(argv) > 1 else "lean"
    failed = False
    if mode == "lean":
        importlib.import_module("tensorrt_lean_libs")
        trt = importlib.import_module("tensorrt_lean_bindings")
        print(f"tensorrt_lean_bindings {getattr(trt, '__version__', '?')} (runtime classes only)")
        found, missing = check_module(trt, RUNTIME_API)
        _report("runtime API", missing, found)
        failed = bool(missing)
    elif mode == "module":
        trt = importlib.import_module("tensorrt")
        print(f"tensorrt {getattr(trt, '__version__', '?')}")
        for title, api in (("runtime API", RUNTIME_API), ("builder API", BUILDER_API)):
            found, missing = check_module(trt, api)
            _report(title, missing, found)
            failed = failed or bool(missing)
        for title, api in (("optional (hasattr)", OPTIONAL_API), ("removed in 11, unused", NOT_USED)):
            found, missing = check_module(trt, api)
            print(f"{title}: {found} present, absent: {', '.join(missing) or 'none'}")
    elif mode == "strings":
        if len(argv) < 3:
            print("usage: apicheck.py strings PATH/tensorrt.so", file=sys.stderr)
            return 2
        strings = so_strings(Path(argv[2]))
        print(f"{argv[2]}: {len(strings)} strings")
        for title, api in (("runtime API", RUNTIME_API), ("builder API", BUILDER_API)):
            found, missing, weak = check_strings(strings, api)
            _report(title, missing, found)
            if weak:
                print(f"  weak evidence (tail of a longer string or docstring only): {', '.join(weak)}")
            failed = failed or bool(missing)
        for title, api in (("optional (hasattr)", OPTIONAL_API), ("removed in 11, unused", NOT_USED)):
            exact = [f"{c}.{m}" for c, ms in api.items() for m in ms if m in strings]
            print(f"{title}: present as exact strings: {', '.join(exact) or 'none'}")
    else:
        print(f"unknown mode {mode!r}: lean | module | strings PATH", file=sys.stderr)
        return 2
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
