"""The per-run context handed to factories and lifecycle hooks."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class StashKey(Generic[T]):
    """A typed key for :attr:`RunContext.stash` (pytest's Stash idea): plugins own their keys."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"StashKey({self.name!r})"


class Stash:
    """Typed per-run storage for plugins, so they never monkey-patch attributes onto shared objects."""

    def __init__(self) -> None:
        self._items: dict[StashKey[Any], Any] = {}

    def __setitem__(self, key: StashKey[T], value: T) -> None:
        self._items[key] = value

    def __getitem__(self, key: StashKey[T]) -> T:
        return self._items[key]

    def get(self, key: StashKey[T], default: T) -> T:
        return self._items.get(key, default)

    def __contains__(self, key: object) -> bool:
        return key in self._items


@dataclass
class RunContext:
    """What every factory and lifecycle hook gets.

    Attributes:
        output_dir: where relative sink paths are resolved.
        config_dir: the folder of the pipeline file (relative model/source paths are resolved there).
        plugins_config: the ``plugins:`` section of the pipeline file, by plugin name.
        device: CUDA device ordinal for GPU backends.
        backend: the resolved backend name, once the runner is built.
        labels: the app's class names, once its model is bound (postprocessors resolve names with them).
        stash: typed storage for plugins.
    """

    output_dir: Path = field(default_factory=lambda: Path("runs/latest"))
    config_dir: Path = field(default_factory=Path.cwd)
    plugins_config: dict[str, dict[str, Any]] = field(default_factory=dict)
    device: int = 0
    backend: str | None = None
    labels: list[str] = field(default_factory=list)  # the app's class names, once its model is bound
    stash: Stash = field(default_factory=Stash)
    logger: logging.Logger = field(default_factory=lambda: logging.getLogger("trtapps"))

    def plugin_config(self, name: str) -> dict[str, Any]:
        """The ``plugins.<name>`` section of the pipeline file (empty when absent)."""
        return dict(self.plugins_config.get(name, {}))

    def resolve_path(self, path: str | Path) -> Path:
        """Resolve a path from the config: ``~`` expanded, relative paths against the config's folder."""
        p = Path(path).expanduser()
        return p if p.is_absolute() else (self.config_dir / p)

    def output_path(self, path: str | Path) -> Path:
        """Resolve a sink path: relative paths go under :attr:`output_dir`."""
        p = Path(path).expanduser()
        return p if p.is_absolute() else (self.output_dir / p)
