"""Read a pipeline file: YAML → ``${env:…}`` interpolation → two-phase validation → :class:`PipelineConfig`.

Every problem becomes one line ``file:line:col: dotted.path: message`` (with the allowed choices and the
closest match for unknown names), collected into one :class:`~trtapps.errors.ConfigError`.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from trtapps.config.positions import YamlDocument
from trtapps.config.schema import ComponentRef, PipelineConfig, PipelineFile
from trtapps.errors import ConfigError
from trtapps.paths import unreadable
from trtapps.registry import AppOptions, BackendOptions, Options, Registries

_ENV = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)(?::-(.*?))?\}")

#: pipeline-file section → registry kind, for phase 2
_SECTIONS = {
    "source": "source",
    "sources": "source",
    "app": "app",
    "postprocess": "postprocessor",
    "tracker": "tracker",
    "sinks": "sink",
    "backend": "backend",
}

Loc = tuple[str | int, ...]


class _Problems:
    def __init__(self, doc: YamlDocument | None, filename: str) -> None:
        self.doc = doc
        self.filename = filename
        self.lines: list[str] = []

    def add(self, loc: Loc, message: str, *, key: bool = False) -> None:
        where = self.filename
        if self.doc is not None:
            pos = self.doc.position(loc, key=key)
            where = f"{self.filename}:{pos.line}:{pos.column}"
        dotted = _dotted(loc) or "<file>"
        self.lines.append(f"{where}: {dotted}: {message}")

    def raise_if_any(self) -> None:
        if self.lines:
            raise ConfigError(self.lines)


def _dotted(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _interpolate(value: Any, loc: Loc, problems: _Problems) -> Any:
    if isinstance(value, str):
        def sub(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in os.environ:
                return os.environ[name]
            if default is not None:
                return default
            problems.add(loc, f"environment variable {name!r} is not set; export it or write ${{env:{name}:-default}}")
            return match.group(0)

        return _ENV.sub(sub, value)
    if isinstance(value, dict):
        return {k: _interpolate(v, (*loc, k), problems) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, (*loc, i), problems) for i, v in enumerate(value)]
    return value


def _format_pydantic(err: Mapping[str, Any], model: type[BaseModel] | None) -> tuple[str, bool]:
    """A short message for one pydantic error, and whether it points at a key (unknown field)."""
    kind = err.get("type", "")
    loc = err.get("loc", ())
    if kind == "extra_forbidden":
        name = str(loc[-1]) if loc else "?"
        allowed = sorted(model.model_fields) if model is not None else []
        close = difflib.get_close_matches(name, allowed, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        return f"unknown field {name!r}; {hint}allowed: {', '.join(allowed)}", True
    if kind == "missing":
        return "required field is missing", False
    msg = str(err.get("msg", "invalid value"))
    msg = msg[0].lower() + msg[1:] if msg else msg
    if "input" in err and kind not in ("model_type", "dict_type", "list_type"):
        shown = repr(err["input"])
        if len(shown) > 60:
            shown = shown[:57] + "..."
        msg += f" (got {shown})"
    return msg, False


def _add_validation_errors(
    problems: _Problems, exc: ValidationError, prefix: Loc, model: type[BaseModel] | None
) -> None:
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p in ("function-after", "function-before")))
        message, key = _format_pydantic(err, model)
        problems.add((*prefix, *loc), message, key=key)


def validate_component(
    kind: str, mapping: Mapping[str, Any], registries: Registries, loc: Loc, problems: _Problems
) -> Options | None:
    """Phase 2 for one component: find its registered spec and validate the mapping with its options model."""
    type_name = str(mapping.get("type", ""))
    registry = registries.of(kind)
    if kind == "backend" and type_name == "auto":
        model: type[Options] = BackendOptions
    elif type_name.replace("-", "_") in registry:
        model = registry.get(type_name.replace("-", "_")).options
        mapping = {**mapping, "type": type_name.replace("-", "_")}
    else:
        problems.add((*loc, "type"), registry.unknown_message(type_name))
        return None
    try:
        return model.model_validate(dict(mapping))
    except ValidationError as exc:
        _add_validation_errors(problems, exc, loc, model)
        return None


def load_config(
    path: str | Path,
    registries: Registries,
    overrides: Mapping[str, Any] | None = None,
) -> PipelineConfig:
    """Read and validate a pipeline file.

    Args:
        path: the YAML file.
        registries: the component registries of a plugin manager (phase 2 needs them).
        overrides: top-level sections replacing the file's (``source``, ``backend``, ``output``…),
            e.g. from command-line options (see :func:`apply_overrides`).

    Raises:
        ConfigError: with one ``file:line:col: path: message`` line per problem.
    """
    path = Path(path)
    filename = str(path)
    if why := unreadable(path):
        raise ConfigError(f"{filename}: pipeline file {why}; check the path")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{filename}: cannot read the pipeline file ({exc})") from None
    return load_config_text(text, registries, filename=filename, overrides=overrides, path=path)


def load_config_text(
    text: str,
    registries: Registries,
    *,
    filename: str = "<string>",
    overrides: Mapping[str, Any] | None = None,
    path: Path | None = None,
) -> PipelineConfig:
    """Like :func:`load_config`, from a YAML string."""
    try:
        doc = YamlDocument(text, filename)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{filename}:{mark.line + 1}:{mark.column + 1}" if mark else filename
        raise ConfigError(f"{where}: YAML syntax error: {exc.problem or exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{filename}: YAML error: {exc}") from None
    problems = _Problems(doc, filename)
    data = doc.data
    if data is None:
        data = {}
    if not isinstance(data, dict):
        problems.add((), "a pipeline file must be a mapping of sections (source, app, sinks…)")
        problems.raise_if_any()
    data = _interpolate(data, (), problems)
    if overrides:
        apply_overrides(data, overrides)
    return validate_data(data, registries, problems, path=path)


#: the two spellings of a pipeline's source section: an override of either replaces whichever the file used
SOURCE_KEYS = ("source", "sources")


def apply_overrides(data: dict[str, Any], overrides: Mapping[str, Any]) -> None:
    """Replace top-level sections of *data* by *overrides* (``None`` values count as not given).

    ``source`` and ``sources`` are one section: overriding either removes both from the file's data, so
    ``--source`` replaces a file's ``sources:`` list and a ``sources`` override replaces its ``source:``.
    """
    given = {k: v for k, v in overrides.items() if v is not None}
    if any(k in given for k in SOURCE_KEYS):
        for key in SOURCE_KEYS:
            data.pop(key, None)
    data.update(given)


def validate_data(
    data: dict[str, Any],
    registries: Registries,
    problems: _Problems | None = None,
    *,
    path: Path | None = None,
    require_source: bool = True,
) -> PipelineConfig:
    """Both validation phases over plain data (a parsed file, or a dict built in Python)."""
    problems = problems or _Problems(None, "<config>")
    if "source" in data and "sources" in data and data["source"] is not None and data["sources"] is not None:
        problems.add(("sources",), "give either 'source' or 'sources', not both")
    try:
        skeleton = PipelineFile.model_validate(data)
    except ValidationError as exc:
        _add_validation_errors(problems, exc, (), PipelineFile)
        problems.raise_if_any()
        raise  # unreachable: a ValidationError always has errors
    if require_source and skeleton.source is None and not skeleton.sources:
        problems.add(("source",), "no source given; add 'source: {type: images, path: …}' or pass --source")

    def one(section: str, ref: ComponentRef, loc: Loc) -> Options | None:
        return validate_component(_SECTIONS[section], ref.options_mapping(), registries, loc, problems)

    sources_refs: Sequence[tuple[Loc, ComponentRef]] = (
        [(("source",), skeleton.source)] if skeleton.source is not None
        else [(("sources", i), r) for i, r in enumerate(skeleton.sources or [])]
    )
    sources = [one("source", r, loc) for loc, r in sources_refs]
    app = one("app", skeleton.app, ("app",))
    backend = one("backend", skeleton.backend, ("backend",))
    post = [one("postprocess", r, ("postprocess", i)) for i, r in enumerate(skeleton.postprocess)]
    tracker = one("tracker", skeleton.tracker, ("tracker",)) if skeleton.tracker is not None else None
    sinks = [one("sinks", r, ("sinks", i)) for i, r in enumerate(skeleton.sinks)]
    for name in skeleton.plugins:
        if name not in _plugin_names(registries):
            close = difflib.get_close_matches(name, sorted(_plugin_names(registries)), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            problems.add(("plugins", name), f"no installed plugin is called {name!r}{hint}", key=True)
    problems.raise_if_any()
    assert isinstance(app, AppOptions)
    assert isinstance(backend, BackendOptions)
    return PipelineConfig(
        app=app,
        sources=[s for s in sources if s is not None],
        backend=backend,
        postprocess=[p for p in post if p is not None],
        tracker=tracker,
        sinks=[s for s in sinks if s is not None],
        name=skeleton.name,
        output=skeleton.output,
        on_error=skeleton.on_error,
        queue_size=skeleton.queue_size,
        max_wait_ms=skeleton.max_wait_ms,
        cuda_mps=skeleton.cuda_mps,
        plugins=skeleton.plugins,
        path=path,
    )


def _plugin_names(registries: Registries) -> set[str]:
    return set(registries.plugins)
