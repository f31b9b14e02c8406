"""A pytest plugin for testing trtapps plugins (and trtapps itself).

Enable it in your ``tests/conftest.py``::

    pytest_plugins = ["trtapps.testing.plugin"]

Fixtures:

* ``plugin_manager`` — a fresh :class:`~trtapps.plugins.PluginManager` (core plugins and installed entry points,
  exactly what ``trtapps run`` loads); nothing is shared between tests.
* ``make_pipeline`` — ``make_pipeline(data, plugins=[...], **kw)`` builds a :class:`~trtapps.pipeline.Pipeline`
  from a mapping shaped like a pipeline file, with optional inline plugin objects (see
  :class:`trtapps.testing.InlinePlugin`); sinks write under the test's ``tmp_path`` unless ``output`` is given,
  and every pipeline is closed when the test ends.
* ``synthetic_frames`` — four deterministic BGR frames of mixed sizes (:func:`trtapps.testing.synthetic_frames`).

The report header gains a line with the trtapps version and every installed plugin with its distribution and
version, so a failing run's log says which plugin versions were tested.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from trtapps.plugins import PluginManager
from trtapps.structures import Frame
from trtapps.testing import synthetic_frames as _synthetic_frames


def pytest_report_header(config: pytest.Config) -> list[str]:
    """``trtapps 0.1.0; plugins: yolo (trtapps 0.1.0), …`` and one line per plugin that failed to load."""
    import trtapps

    try:
        manager = PluginManager()
    except Exception as exc:  # a broken plugin must not hide the test session
        return [f"trtapps {trtapps.__version__}; plugins: cannot load ({type(exc).__name__}: {exc})"]
    plugins = [
        f"{info.name} ({info.distribution or info.module} {info.version or '?'})" for info in manager.plugin_infos()
    ]
    lines = [f"trtapps {trtapps.__version__}; plugins: {', '.join(plugins) or 'none'}"]
    lines.extend(f"trtapps plugin failure: {line}" for line in manager.failure_lines())
    return lines


@pytest.fixture
def plugin_manager() -> PluginManager:
    """A fresh plugin manager: the core plugins and every installed ``trtapps`` entry point."""
    return PluginManager()


MakePipeline = Callable[..., Any]


@pytest.fixture
def make_pipeline(tmp_path: Path) -> Iterator[MakePipeline]:
    """Build pipelines from mappings shaped like pipeline files; closed at the end of the test.

    ``make_pipeline(data, plugins=(), **kw)``: *data* as in a YAML pipeline file (``app``, ``source``,
    ``sinks``…); *plugins* are extra plugin objects (e.g. :class:`trtapps.testing.InlinePlugin`) registered on
    this pipeline's own plugin manager; *kw* go to :meth:`Pipeline.from_dict` (``sources=``, ``sinks=``,
    ``runner=``…). ``output`` defaults to ``tmp_path / "out"``.
    """
    from trtapps.pipeline import Pipeline

    made: list[Pipeline] = []

    def make(data: Mapping[str, Any], plugins: Sequence[object] = (), **kw: Any) -> Pipeline:
        data = dict(data)
        data.setdefault("output", str(tmp_path / "out"))
        pipeline = Pipeline.from_dict(data, plugins=plugins, **kw)
        made.append(pipeline)
        return pipeline

    yield make
    for pipeline in made:
        pipeline.close()


@pytest.fixture
def synthetic_frames() -> list[Frame]:
    """Four deterministic BGR frames of mixed sizes (480×640, 375×500, 640×427, 241×319), indices 0-3."""
    return _synthetic_frames()
