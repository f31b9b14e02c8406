"""Plugin discovery, loading, validation and listing, and the typed facade over the hooks.

One :class:`PluginManager` per pipeline (and per CLI invocation): no module globals. Load order:

1. the core's own plugin modules (:data:`CORE_PLUGINS`: built-in sources, sinks, postprocessors, backends);
2. distributions exposing the ``trtapps`` entry-point group (the built-in apps in ``plugins/`` arrive this way,
   exactly as third-party packages do);
3. plugin objects passed in by the caller (``Pipeline(..., plugins=[obj])``).

Environment controls:

* ``TRTAPPS_DISABLE_PLUGIN_AUTOLOAD=1``: skip entry points;
* ``TRTAPPS_PLUGINS=a,b``: load only these entry points (empty value: none);
* ``TRTAPPS_BLOCK_PLUGINS=x,y``: never load these (entry points or core modules);
* ``TRTAPPS_TRACE_HOOKS=1``: print every hook call with its arguments and results.

A plugin that fails to import, raises while registering, or registers a name already taken is recorded in
:attr:`PluginManager.failures` (and reported by name with the reason); the other plugins are unaffected.
A plugin that implements a hook that does not exist (a misspelt hook) is refused at start with
:class:`~trtapps.errors.PluginError`.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata as md
import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import pluggy

from trtapps import hookspecs
from trtapps.errors import PluginError
from trtapps.registry import ComponentSpec, Registries

ENTRY_POINT_GROUP = "trtapps"

#: the core's own plugin modules, loaded first; each can be blocked like any plugin
CORE_PLUGINS: tuple[str, ...] = (
    "trtapps.sources",
    "trtapps.sinks",
    "trtapps.postprocess",
    "trtapps.runners.onnxruntime",
    "trtapps.runners.onnxruntime_cuda",
    "trtapps.runners.tensorrt",
    "trtapps.lifecycle",
)

_REGISTRATION_HOOKS = {
    "trtapps_register_apps": "app",
    "trtapps_register_sources": "source",
    "trtapps_register_sinks": "sink",
    "trtapps_register_trackers": "tracker",
    "trtapps_register_postprocessors": "postprocessor",
    "trtapps_register_backends": "backend",
}


@dataclass
class PluginInfo:
    """What ``trtapps plugins`` shows for one plugin."""

    name: str
    module: str
    distribution: str | None = None
    version: str | None = None
    core: bool = False
    hooks: list[str] = field(default_factory=list)
    components: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class PluginFailure:
    """A plugin that could not be loaded or registered something invalid."""

    name: str
    reason: str
    distribution: str | None = None

    def __str__(self) -> str:
        dist = f" (from {self.distribution})" if self.distribution else ""
        return f"plugin {self.name!r}{dist}: {self.reason}"


def _env_list(name: str) -> list[str] | None:
    value = os.environ.get(name)
    if value is None:
        return None
    return [v.strip() for v in value.split(",") if v.strip()]


class PluginManager:
    """Loads plugins, fills the component registries, and calls the lifecycle hooks.

    Args:
        plugins: extra plugin objects (modules or instances with ``@hookimpl`` methods) to register last.
        entry_points: load the ``trtapps`` entry-point group (default: unless
            ``TRTAPPS_DISABLE_PLUGIN_AUTOLOAD`` is set).
        block: plugin names never to load (added to ``TRTAPPS_BLOCK_PLUGINS``).
    """

    def __init__(
        self,
        plugins: Sequence[object] = (),
        *,
        entry_points: bool | None = None,
        block: Iterable[str] = (),
    ) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.registries = Registries()
        self.failures: list[PluginFailure] = []
        self.infos: dict[str, PluginInfo] = {}
        self._blocked = set(block) | set(_env_list("TRTAPPS_BLOCK_PLUGINS") or [])
        if os.environ.get("TRTAPPS_TRACE_HOOKS"):
            self.pm.trace.root.setwriter(lambda msg: print(msg, end="", file=sys.stderr))
            self.pm.enable_tracing()

        for module_name in CORE_PLUGINS:
            if module_name in self._blocked:
                continue
            self._load_module(module_name, module_name, core=True)
        if entry_points is None:
            entry_points = not os.environ.get("TRTAPPS_DISABLE_PLUGIN_AUTOLOAD")
        if entry_points:
            self._load_entry_points()
        for index, obj in enumerate(plugins):
            name = getattr(obj, "__name__", None) or f"{type(obj).__name__}-{index}"
            self._register(obj, name, PluginInfo(name=name, module=_module_of(obj)))
        self._fill_registries()

    # -- loading ------------------------------------------------------------------------------------------------
    def _load_module(self, name: str, module_name: str, core: bool = False, **info: Any) -> None:
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:  # a broken plugin must not take the others down
            self.failures.append(
                PluginFailure(name, f"import of {module_name!r} failed: {type(exc).__name__}: {exc}",
                              info.get("distribution"))
            )
            return
        self._register(module, name, PluginInfo(name=name, module=module_name, core=core, **info))

    def _load_entry_points(self) -> None:
        allow = _env_list("TRTAPPS_PLUGINS")
        seen: set[str] = set()
        for ep in sorted(md.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            if ep.name in seen:  # the same distribution visible twice on sys.path
                continue
            seen.add(ep.name)
            if ep.name in self._blocked or (allow is not None and ep.name not in allow):
                continue
            dist = ep.dist
            dist_name = dist.metadata["Name"] if dist is not None else None
            version = dist.version if dist is not None else None
            try:
                obj = ep.load()
            except Exception as exc:
                self.failures.append(
                    PluginFailure(ep.name, f"import of {ep.value!r} failed: {type(exc).__name__}: {exc}", dist_name)
                )
                continue
            self._register(
                obj, ep.name,
                PluginInfo(name=ep.name, module=ep.value, distribution=dist_name, version=version),
            )

    def _register(self, obj: object, name: str, info: PluginInfo) -> None:
        if name in self._blocked:
            return
        if self.pm.has_plugin(name) or name in self.infos:
            self.failures.append(PluginFailure(name, "a plugin of this name is already registered", info.distribution))
            return
        self._check_hook_names(obj, name)
        try:
            self.pm.register(obj, name=name)
        except pluggy.PluginValidationError as exc:
            raise PluginError(f"plugin {name!r} has an invalid hook implementation: {exc}") from exc
        info.hooks = sorted(impl for impl in dir(obj) if impl.startswith("trtapps_") and callable(getattr(obj, impl)))
        self.infos[name] = info
        self.registries.plugins.add(name)

    def _check_hook_names(self, obj: object, name: str) -> None:
        """Refuse ``trtapps_*`` functions that match no hook spec: a misspelt hook would never be called."""
        known = [n for n in dir(hookspecs) if n.startswith("trtapps_")]
        for attr in dir(obj):
            if attr.startswith("trtapps_") and callable(getattr(obj, attr, None)) and attr not in known:
                close = difflib.get_close_matches(attr, known, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise PluginError(f"plugin {name!r} implements unknown hook {attr!r}{hint}")

    def _fill_registries(self) -> None:
        """Call each registration hook one plugin at a time, so every spec carries its plugin's name."""
        for hook_name, kind in _REGISTRATION_HOOKS.items():
            registry = self.registries.of(kind)
            for impl in getattr(self.pm.hook, hook_name).get_hookimpls():  # registration order: first wins
                plugin = impl.plugin_name
                collected: list[ComponentSpec[Any]] = []
                try:
                    impl.function(**{arg: collected.append for arg in impl.argnames})
                except Exception as exc:
                    self.failures.append(
                        PluginFailure(plugin, f"{hook_name} raised {type(exc).__name__}: {exc}",
                                      self.infos.get(plugin, PluginInfo(plugin, "")).distribution)
                    )
                    continue
                for spec in collected:
                    try:
                        registry.add(spec, plugin)
                    except PluginError as exc:
                        self.failures.append(PluginFailure(plugin, str(exc), self.infos[plugin].distribution))
                        continue
                    self.infos[plugin].components.setdefault(kind, []).append(spec.name)

    # -- typed facade over the lifecycle hooks -------------------------------------------------------------------
    def register_commands(self, cli: Any) -> None:
        """Let every plugin add CLI commands; one that raises is recorded and skipped, like a failed import."""
        for impl in self.pm.hook.trtapps_register_commands.get_hookimpls():
            try:
                impl.function(**{arg: cli for arg in impl.argnames})
            except Exception as exc:
                self.failures.append(
                    PluginFailure(impl.plugin_name, f"trtapps_register_commands raised {type(exc).__name__}: {exc}",
                                  self.infos.get(impl.plugin_name, PluginInfo(impl.plugin_name, "")).distribution)
                )

    def configure(self, config: Any, context: Any) -> None:
        self.pm.hook.trtapps_configure(config=config, context=context)

    def pipeline_started(self, info: Any, context: Any) -> None:
        self.pm.hook.trtapps_pipeline_started(info=info, context=context)

    def pipeline_finished(self, info: Any, summary: Any, context: Any) -> None:
        self.pm.hook.trtapps_pipeline_finished(info=info, summary=summary, context=context)

    def handle_stage_error(self, error: Any, context: Any) -> Any:
        return self.pm.hook.trtapps_handle_stage_error(error=error, context=context)

    # -- listing --------------------------------------------------------------------------------------------------
    def plugin_infos(self, include_core: bool = False) -> list[PluginInfo]:
        return [i for i in self.infos.values() if include_core or not i.core]

    def failure_lines(self) -> list[str]:
        return [str(f) for f in self.failures]


def _module_of(obj: object) -> str:
    if isinstance(obj, ModuleType):
        return obj.__name__
    return type(obj).__module__
