"""The shape of a pipeline file (phase 1 of validation) and the validated result.

Phase 1 (:class:`PipelineFile`) checks the skeleton: known sections, each component a mapping with a ``type``.
Phase 2 (``trtapps.config.loader``) validates each component's remaining keys with the options model its
plugin registered. Both phases forbid unknown keys.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from trtapps.registry import AppOptions, BackendOptions, Options


class ComponentRef(BaseModel):
    """A component mapping before phase 2: ``type`` plus whatever its options model accepts."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(description="The registered name of the component.")

    def options_mapping(self) -> dict[str, Any]:
        return self.model_dump()


class PipelineFile(BaseModel):
    """A pipeline file, phase 1."""

    model_config = ConfigDict(extra="forbid")

    version: Literal[1] = Field(1, description="Pipeline file format version.")
    name: str | None = Field(None, description="A name for the run (used in the default output folder).")
    source: ComponentRef | None = Field(None, description="Where frames come from.")
    sources: list[ComponentRef] | None = Field(
        None, description="Several sources, read at once and batched together (each keeps its frame order)."
    )
    app: ComponentRef = Field(description="The model app: yolo, retinaface, or a plugin's.")
    backend: ComponentRef = Field(
        default_factory=lambda: ComponentRef(type="auto"),
        description="Inference backend: auto, onnxruntime, onnxruntime_cuda, tensorrt (a name or a mapping).",
    )
    postprocess: list[ComponentRef] = Field(default_factory=list, description="Detection filters, in order.")
    tracker: ComponentRef | None = Field(None, description="A tracker giving detections track ids.")
    sinks: list[ComponentRef] = Field(
        default_factory=lambda: [ComponentRef(type="jsonl")], description="Where results go."
    )
    output: str | None = Field(None, description="Output folder for relative sink paths (default runs/<name>).")
    on_error: Literal["skip", "abort"] = Field(
        "skip", description="After a frame fails in a stage: record it and go on (skip), or stop (abort)."
    )
    queue_size: int = Field(4, ge=1, le=1024, description="Batches buffered between stages (back-pressure).")
    max_wait_ms: float | None = Field(
        None, ge=0, le=10_000, description="How long a partly filled batch waits for more frames (latency bound). "
        "Default: 10 ms when a live source (camera, stream) is present, else batches wait until full."
    )
    cuda_mps: Literal["off", "start"] = Field(
        "off", description="start: before CUDA starts in this process, start a CUDA MPS daemon for the run (or use "
        "the one running), so the pipeline and its decoding processes share the GPU instead of being time-sliced; "
        "source.decode_worker auto then decodes in worker processes. off: leave MPS to the machine."
    )
    plugins: dict[str, dict[str, Any]] = Field(default_factory=dict, description="Per-plugin settings.")

    @field_validator("backend", mode="before")
    @classmethod
    def _backend_shorthand(cls, value: Any) -> Any:
        return {"type": value} if isinstance(value, str) else value


@dataclass
class PipelineConfig:
    """A validated pipeline: plain, serializable data (every component as its options model).

    Attributes:
        sources: one options object per source (``source:`` gives one).
        app: the app's options.
        backend: the backend's options (``type`` may be ``auto``).
        postprocess, tracker, sinks: options of those components.
        path: the file it came from (``None`` when built in Python).
    """

    app: AppOptions
    sources: list[Options] = field(default_factory=list)
    backend: BackendOptions = field(default_factory=lambda: BackendOptions(type="auto"))
    postprocess: list[Options] = field(default_factory=list)
    tracker: Options | None = None
    sinks: list[Options] = field(default_factory=list)
    name: str | None = None
    output: str | None = None
    on_error: str = "skip"
    queue_size: int = 4
    max_wait_ms: float | None = None
    cuda_mps: str = "off"
    plugins: dict[str, dict[str, Any]] = field(default_factory=dict)
    path: Path | None = None

    @property
    def config_dir(self) -> Path:
        return self.path.parent if self.path is not None else Path.cwd()

    def output_dir(self) -> Path:
        if self.output:
            out = Path(self.output).expanduser()
            return out if out.is_absolute() else Path.cwd() / out
        name = self.name or (self.path.stem if self.path is not None else "latest")
        return Path.cwd() / "runs" / name

    def to_dict(self) -> dict[str, Any]:
        """Plain data (JSON/YAML-serializable), e.g. to ship the pipeline to another worker."""

        def dump(o: Options) -> dict[str, Any]:
            return o.model_dump(mode="json")

        return {
            "version": 1,
            "name": self.name,
            "sources": [dump(s) for s in self.sources],
            "app": dump(self.app),
            "backend": dump(self.backend),
            "postprocess": [dump(p) for p in self.postprocess],
            "tracker": dump(self.tracker) if self.tracker is not None else None,
            "sinks": [dump(s) for s in self.sinks],
            "output": self.output,
            "on_error": self.on_error,
            "queue_size": self.queue_size,
            "max_wait_ms": self.max_wait_ms,
            "cuda_mps": self.cuda_mps,
            "plugins": self.plugins,
        }
