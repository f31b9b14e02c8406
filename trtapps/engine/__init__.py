"""TensorRT engines: building from ONNX (:mod:`trtapps.engine.build`), the on-disk engine cache
(:mod:`trtapps.engine.cache`) and TensorRT↔NumPy types (:mod:`trtapps.engine.dtypes`).

Nothing here imports TensorRT at import time; the build functions import it when called. The runner that
executes engines is :mod:`trtapps.runners.tensorrt`.
"""

from __future__ import annotations

from trtapps.engine.build import OnnxInfo, build_engine, inspect_onnx, load_or_build, make_logger, precision_plan
from trtapps.engine.cache import (
    BuildOptions,
    EngineCache,
    EngineMetadata,
    TensorMeta,
    default_cache_dir,
    engine_key,
)
from trtapps.engine.dtypes import numpy_dtype

__all__ = [
    "BuildOptions",
    "EngineCache",
    "EngineMetadata",
    "OnnxInfo",
    "TensorMeta",
    "build_engine",
    "default_cache_dir",
    "engine_key",
    "inspect_onnx",
    "load_or_build",
    "make_logger",
    "numpy_dtype",
    "precision_plan",
]
