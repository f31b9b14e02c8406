"""trtapps: vision apps (YOLO, RetinaFace, trackers) as declarative pipelines on ONNX Runtime and TensorRT.

The public API for users and plugin authors; everything else is implementation.
"""

from __future__ import annotations

from trtapps.context import RunContext, StashKey
from trtapps.errors import (
    ConfigError,
    InputError,
    ModelError,
    OutputError,
    PipelineClosedError,
    PluginError,
    TrtAppsError,
    UserError,
)
from trtapps.hookspecs import hookimpl
from trtapps.registry import (
    AppOptions,
    BackendOptions,
    ComponentSpec,
    Options,
    PostprocessorOptions,
    SinkOptions,
    SourceOptions,
    TrackerOptions,
)
from trtapps.runners.base import Runner, TensorInfo
from trtapps.stages import App, FrameFailure, Postprocessor, Residency, Sink, Source, Tracker
from trtapps.structures import Detections, Frame, FrameResult

__version__ = "0.1.0"

# heavier names load on first use, so `import trtapps` (and plugin discovery) stays light
_LAZY = {
    "Pipeline": "trtapps.pipeline",
    "PipelineInfo": "trtapps.pipeline",
    "PipelineConfig": "trtapps.config.schema",
    "RunSummary": "trtapps.metrics",
    "ErrorAction": "trtapps.lifecycle",
    "StageError": "trtapps.errors",
}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'trtapps' has no attribute {name!r}")

__all__ = [
    "App",
    "AppOptions",
    "BackendOptions",
    "ComponentSpec",
    "ConfigError",
    "Detections",
    "ErrorAction",
    "Frame",
    "FrameFailure",
    "FrameResult",
    "InputError",
    "ModelError",
    "Options",
    "OutputError",
    "Pipeline",
    "PipelineClosedError",
    "PipelineConfig",
    "PipelineInfo",
    "PluginError",
    "Postprocessor",
    "PostprocessorOptions",
    "Residency",
    "RunContext",
    "RunSummary",
    "Runner",
    "Sink",
    "SinkOptions",
    "Source",
    "SourceOptions",
    "StageError",
    "StashKey",
    "TensorInfo",
    "Tracker",
    "TrackerOptions",
    "TrtAppsError",
    "UserError",
    "__version__",
    "hookimpl",
]
