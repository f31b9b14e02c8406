"""Spec records plugins register, the options base models, and typed registries.

A plugin hands specs to the ``register`` callable its hook receives; the framework records which plugin
registered what (provenance), refuses duplicate names naming both plugins, and suggests the closest name when
a config asks for one that is not installed.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from trtapps.errors import PluginError

# --------------------------------------------------------------------------------------------------------------
# Options: each component of a pipeline file is one mapping, `type` plus the fields of its options model.
# Plugins extend the base of their kind so shared fields keep one meaning everywhere.
# --------------------------------------------------------------------------------------------------------------


class Options(BaseModel):
    """Base of every component's options: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: str = Field(description="Which registered component to use.")


class AppOptions(Options):
    """Options every app has."""

    model: str = Field(description="ONNX model: a path (relative to the config file) or a model-zoo name.")
    batch_size: int = Field(1, ge=1, le=1024, description="Frames per inference call (capped by the model).")
    classes: list[int | str] | None = Field(
        None, description="Keep only these classes (ids or names); all when omitted."
    )


class SourceOptions(Options):
    """Options every source has."""

    max_frames: int | None = Field(None, ge=1, description="Stop after this many frames.")


class SinkOptions(Options):
    """Options every sink has."""


class TrackerOptions(Options):
    """Options every tracker has."""


class PostprocessorOptions(Options):
    """Options every postprocessor has."""


class BackendOptions(Options):
    """Options every inference backend has."""

    device: int = Field(0, ge=0, description="CUDA device ordinal (GPU backends).")
    cuda_graph: bool = Field(
        False, description="Replay inference as CUDA graphs, one per batch size (GPU backends; see docs)."
    )


Kind = Literal["app", "source", "sink", "tracker", "postprocessor", "backend"]

OPTIONS_BASE: dict[str, type[Options]] = {
    "app": AppOptions,
    "source": SourceOptions,
    "sink": SinkOptions,
    "tracker": TrackerOptions,
    "postprocessor": PostprocessorOptions,
    "backend": BackendOptions,
}

T = TypeVar("T")


@dataclass(frozen=True)
class ComponentSpec(Generic[T]):
    """One registrable component (an app, source, sink, tracker, postprocessor or backend).

    Attributes:
        name: the ``type:`` used in pipeline files (snake_case).
        options: the pydantic model of its options; must subclass the base of its kind
            (``AppOptions``, ``SourceOptions``…).
        factory: ``factory(options, context) -> component``.
        summary: one line shown by ``trtapps plugins``.
        available: for backends, ``available() -> None`` when usable here, else the reason it is not.
        priority: for backends, the order ``backend: auto`` tries them in (higher first).
    """

    name: str
    options: type[Options]
    factory: Callable[..., T]
    summary: str = ""
    available: Callable[[], str | None] | None = None
    priority: int = 0
    plugin: str = field(default="", compare=False)  # filled in by the registrar (provenance)


class Register(Protocol):
    """The callable a registration hook receives."""

    def __call__(self, spec: ComponentSpec[Any], /) -> None: ...


class Registry:
    """All components of one kind, by name, with the plugin that registered each."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._specs: dict[str, ComponentSpec[Any]] = {}

    def add(self, spec: ComponentSpec[Any], plugin: str) -> None:
        if not isinstance(spec, ComponentSpec):
            raise PluginError(
                f"plugin {plugin!r} registered {type(spec).__name__!r} as a {self.kind}; "
                "register a trtapps.ComponentSpec instead"
            )
        base = OPTIONS_BASE[self.kind]
        if not (isinstance(spec.options, type) and issubclass(spec.options, base)):
            raise PluginError(
                f"plugin {plugin!r} registered {self.kind} {spec.name!r} with options "
                f"{getattr(spec.options, '__name__', spec.options)!r}; they must subclass trtapps.{base.__name__}"
            )
        if not spec.name.isidentifier() or spec.name != spec.name.lower():
            raise PluginError(f"plugin {plugin!r} registered {self.kind} name {spec.name!r}; names must be snake_case")
        if spec.name in self._specs:
            other = self._specs[spec.name].plugin
            raise PluginError(
                f"plugin {plugin!r} registered {self.kind} {spec.name!r}, which plugin {other!r} "
                "already registered; block one of them (TRTAPPS_BLOCK_PLUGINS) or rename"
            )
        self._specs[spec.name] = ComponentSpec(
            name=spec.name,
            options=spec.options,
            factory=spec.factory,
            summary=spec.summary,
            available=spec.available,
            priority=spec.priority,
            plugin=plugin,
        )

    def get(self, name: str) -> ComponentSpec[Any]:
        """The spec named *name*; ``KeyError`` with the choices and closest match otherwise."""
        try:
            return self._specs[name]
        except KeyError:
            raise KeyError(self.unknown_message(name)) from None

    def unknown_message(self, name: str) -> str:
        choices = sorted(self._specs)
        close = difflib.get_close_matches(name, choices, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        installed = ", ".join(choices) if choices else "none"
        return f"unknown {self.kind} {name!r}; {hint}installed: {installed}"

    def __contains__(self, name: object) -> bool:
        return name in self._specs

    def __iter__(self) -> Iterator[ComponentSpec[Any]]:
        return iter(sorted(self._specs.values(), key=lambda s: s.name))

    def __len__(self) -> int:
        return len(self._specs)

    def names(self) -> list[str]:
        return sorted(self._specs)


@dataclass
class Registries:
    """The registries of every kind, filled once per plugin manager."""

    app: Registry = field(default_factory=lambda: Registry("app"))
    source: Registry = field(default_factory=lambda: Registry("source"))
    sink: Registry = field(default_factory=lambda: Registry("sink"))
    tracker: Registry = field(default_factory=lambda: Registry("tracker"))
    postprocessor: Registry = field(default_factory=lambda: Registry("postprocessor"))
    backend: Registry = field(default_factory=lambda: Registry("backend"))
    #: names of every loaded plugin (for the ``plugins:`` section of pipeline files)
    plugins: set[str] = field(default_factory=set)

    def of(self, kind: str) -> Registry:
        return getattr(self, kind)

    def kinds(self) -> tuple[str, ...]:
        return ("app", "source", "sink", "tracker", "postprocessor", "backend")
