"""Hook specifications: the whole contract between trtapps and its plugins, built-in or third-party.

Conventions (pytest's and llm's):

* every hook name starts with ``trtapps_``; the manager rejects implementations of hooks that do not exist,
  so a misspelt hook fails at start instead of being silently ignored;
* hooks are called with keyword arguments and an implementation may accept any subset of them, so arguments
  can be added later without breaking plugins;
* registration hooks receive a ``register`` callable and return nothing; the framework records which plugin
  registered each component;
* no hook is called per frame: per-frame work happens in the stage objects the hooks registered.

Phases: registration (once per plugin manager) → run lifecycle (once per pipeline run).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from trtapps.context import RunContext
    from trtapps.registry import Register

PROJECT = "trtapps"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

# --------------------------------------------------------------------------------------------------------------
# Registration: called once per plugin manager, at start.
# --------------------------------------------------------------------------------------------------------------


@hookspec
def trtapps_register_apps(register: Register) -> None:
    """Register model apps (``app: {type: …}``): ``register(ComponentSpec(name, options, factory))``.

    ``options`` subclasses :class:`trtapps.AppOptions`; ``factory(options, context)`` returns a
    :class:`trtapps.App`.
    """


@hookspec
def trtapps_register_sources(register: Register) -> None:
    """Register frame sources (``source: {type: …}``); options subclass :class:`trtapps.SourceOptions`."""


@hookspec
def trtapps_register_sinks(register: Register) -> None:
    """Register result sinks (``sinks: [{type: …}]``); options subclass :class:`trtapps.SinkOptions`."""


@hookspec
def trtapps_register_trackers(register: Register) -> None:
    """Register trackers (``tracker: {type: …}``); options subclass :class:`trtapps.TrackerOptions`.

    The factory is called once per source, so each source gets its own tracker state.
    """


@hookspec
def trtapps_register_postprocessors(register: Register) -> None:
    """Register postprocessors (``postprocess: [{type: …}]``); options subclass ``PostprocessorOptions``."""


@hookspec
def trtapps_register_backends(register: Register) -> None:
    """Register inference backends (``backend: …``); options subclass :class:`trtapps.BackendOptions`.

    ``factory(options, context, model_path)`` returns a :class:`trtapps.runners.Runner`; ``available()``
    returns ``None`` when the backend can run here, else the reason; ``priority`` orders ``backend: auto``.
    """


@hookspec
def trtapps_register_commands(cli: Any) -> None:
    """Add subcommands to the ``trtapps`` command line (``cli`` is the root :class:`typer.Typer`)."""


# --------------------------------------------------------------------------------------------------------------
# Run lifecycle: called once per pipeline run.
# --------------------------------------------------------------------------------------------------------------


@hookspec
def trtapps_configure(config: Any, context: RunContext) -> None:
    """After the pipeline file is validated, before stages are built.

    Read your ``plugins.<name>`` section with ``context.plugin_config(name)``; keep state in ``context.stash``.
    """


@hookspec
def trtapps_pipeline_started(info: Any, context: RunContext) -> None:
    """After every stage is built, before the first frame (``info``: a read-only :class:`PipelineInfo`)."""


@hookspec
def trtapps_pipeline_finished(info: Any, summary: Any, context: RunContext) -> None:
    """After the last frame, also after a failure or Ctrl-C (``summary.error`` says which)."""


@hookspec(firstresult=True)
def trtapps_handle_stage_error(error: Any, context: RunContext) -> Any:
    """Decide what happens after a stage failed on one frame: return an :class:`ErrorAction` or ``None``.

    First result wins; the built-in implementation (``trylast``) applies the config's ``on_error`` policy.
    """
