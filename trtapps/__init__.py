"""trtapps: vision apps (YOLO, RetinaFace, trackers) as declarative pipelines on ONNX Runtime and TensorRT.

The public API for users and plugin authors; everything else is implementation.
"""

from __future__ import annotations

from trtapps.context import RunContext, StashKey
from trtapps.errors import (
    ConfigError,
    InputError,
    ModelError,
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

__all__ = [
    "App",
    "AppOptions",
    "BackendOptions",
    "ComponentSpec",
    "ConfigError",
    "Detections",
    "Frame",
    "FrameFailure",
    "FrameResult",
    "InputError",
    "ModelError",
    "Options",
    "PluginError",
    "Postprocessor",
    "PostprocessorOptions",
    "Residency",
    "RunContext",
    "Runner",
    "Sink",
    "SinkOptions",
    "Source",
    "SourceOptions",
    "StashKey",
    "TensorInfo",
    "Tracker",
    "TrackerOptions",
    "TrtAppsError",
    "UserError",
    "__version__",
    "hookimpl",
]
