"""Plugin discovery, isolation of broken plugins, duplicates, blocking, misspelt hooks and provenance."""

from __future__ import annotations

import inspect
import sys
import textwrap
from pathlib import Path

import pytest

from trtapps import AppOptions, ComponentSpec, SinkOptions, hookimpl, hookspecs
from trtapps.errors import PluginError
from trtapps.plugins import PluginManager

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def fake_distribution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Make an installed distribution with entry points in group ``trtapps`` (a real dist-info on sys.path)."""

    def make(name: str, entry_points: dict[str, str], modules: dict[str, str]) -> None:
        for module, source in modules.items():
            (tmp_path / f"{module}.py").write_text(textwrap.dedent(source))
        info = tmp_path / f"{name.replace('-', '_')}-1.2.3.dist-info"  # dist-info names use underscores
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.2.3\n")
        lines = "\n".join(f"{k} = {v}" for k, v in entry_points.items())
        (info / "entry_points.txt").write_text(f"[trtapps]\n{lines}\n")

    monkeypatch.syspath_prepend(str(tmp_path))
    yield make
    for module in list(sys.modules):
        if module.startswith("tp_"):
            del sys.modules[module]


SINK_PLUGIN = """
from trtapps import ComponentSpec, SinkOptions, hookimpl

class NullOptions(SinkOptions):
    type: str = "null_{n}"

@hookimpl
def trtapps_register_sinks(register):
    register(ComponentSpec("null_{n}", NullOptions, lambda o, c: None, "discards results"))
"""


def test_builtin_apps_arrive_through_entry_points() -> None:
    pm = PluginManager()
    infos = {i.name: i for i in pm.plugin_infos()}
    assert infos["yolo"].distribution == "trtapps"
    assert infos["yolo"].components == {"app": ["yolo"]}
    assert "retinaface" in infos["retinaface"].components["app"]
    assert pm.registries.app.get("yolo").plugin == "yolo"  # provenance
    assert not pm.failures, pm.failure_lines()


def test_third_party_plugin_is_discovered_with_its_version(fake_distribution) -> None:
    fake_distribution("trtapps-null", {"nullsink": "tp_null"}, {"tp_null": SINK_PLUGIN.format(n=1)})
    pm = PluginManager()
    info = next(i for i in pm.plugin_infos() if i.name == "nullsink")
    assert (info.distribution, info.version) == ("trtapps-null", "1.2.3")
    assert pm.registries.sink.get("null_1").plugin == "nullsink"


def test_broken_plugin_is_reported_by_name_and_others_still_load(fake_distribution) -> None:
    fake_distribution(
        "trtapps-broken", {"broken": "tp_broken", "fine": "tp_fine"},
        {"tp_broken": "import not_a_real_module_xyz\n", "tp_fine": SINK_PLUGIN.format(n=2)},
    )
    pm = PluginManager()
    (failure,) = [f for f in pm.failures if f.name == "broken"]
    assert failure.distribution == "trtapps-broken"
    assert "not_a_real_module_xyz" in failure.reason
    assert "null_2" in pm.registries.sink
    assert "yolo" in pm.registries.app


def test_plugin_raising_in_register_is_isolated(fake_distribution) -> None:
    fake_distribution("trtapps-raise", {"raiser": "tp_raise"}, {"tp_raise": """
        from trtapps import hookimpl
        @hookimpl
        def trtapps_register_sinks(register):
            raise RuntimeError("boom")
    """})
    pm = PluginManager()
    assert any(f.name == "raiser" and "RuntimeError: boom" in f.reason for f in pm.failures)
    assert "yolo" in pm.registries.app


def test_duplicate_name_names_both_plugins() -> None:
    class Mine:
        @hookimpl
        def trtapps_register_apps(self, register):
            register(ComponentSpec("yolo", AppOptions, lambda o, c: None))

    pm = PluginManager([Mine()])
    (failure,) = [f for f in pm.failures if "yolo" in f.reason]
    assert failure.name.startswith("Mine")
    assert "registered app 'yolo', which plugin 'yolo' already registered" in failure.reason
    assert pm.registries.app.get("yolo").plugin == "yolo"


def test_misspelt_hook_fails_loudly_at_start() -> None:
    class Typo:
        @hookimpl
        def trtapps_register_sink(self, register):  # missing the final "s"
            pass

    with pytest.raises(PluginError, match="unknown hook 'trtapps_register_sink'; did you mean 'trtapps_register_sinks'"):
        PluginManager([Typo()])


def test_invalid_spec_is_refused_with_a_sentence() -> None:
    from pydantic import BaseModel

    class NotOptions(BaseModel):
        type: str = "x"

    class Bad:
        @hookimpl
        def trtapps_register_sinks(self, register):
            register(ComponentSpec("bad_sink", NotOptions, lambda o, c: None))  # type: ignore[arg-type]
            register(ComponentSpec("Bad-Name", SinkOptions, lambda o, c: None))

    pm = PluginManager([Bad()])
    reasons = [f.reason for f in pm.failures]
    assert any("must subclass trtapps.SinkOptions" in r for r in reasons)
    assert any("names must be snake_case" in r for r in reasons)


def test_block_and_allow_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRTAPPS_BLOCK_PLUGINS", "retinaface")
    pm = PluginManager()
    assert "retinaface" not in pm.registries.app
    assert "yolo" in pm.registries.app
    monkeypatch.delenv("TRTAPPS_BLOCK_PLUGINS")
    monkeypatch.setenv("TRTAPPS_PLUGINS", "yolo")
    pm = PluginManager()
    assert pm.registries.app.names() == ["yolo"]
    monkeypatch.setenv("TRTAPPS_DISABLE_PLUGIN_AUTOLOAD", "1")
    assert len(PluginManager().registries.app) == 0


def test_one_manager_per_pipeline_no_shared_state() -> None:
    class Extra:
        @hookimpl
        def trtapps_register_sinks(self, register):
            register(ComponentSpec("extra_sink", SinkOptions, lambda o, c: None))

    assert "extra_sink" in PluginManager([Extra()]).registries.sink
    assert "extra_sink" not in PluginManager().registries.sink


def test_every_hook_is_documented_with_its_signature() -> None:
    """Each hookspec has a section in docs/plugins.md whose heading is its exact signature (datasette's rule)."""
    docs = (REPO / "docs" / "plugins.md").read_text()
    for name, spec in inspect.getmembers(hookspecs, inspect.isfunction):
        if not name.startswith("trtapps_"):
            continue
        signature = f"{name}({', '.join(inspect.signature(spec).parameters)})"
        assert f"### `{signature}`" in docs, f"docs/plugins.md lacks a section for {signature}"


def test_every_hook_is_exercised_by_a_test() -> None:
    """Each hookspec name appears in some test (the built-ins exercise registration hooks through plugins)."""
    tests_text = "\n".join(p.read_text() for p in (REPO / "tests").rglob("test_*.py"))
    missing = [name for name, _ in inspect.getmembers(hookspecs, inspect.isfunction)
               if name.startswith("trtapps_") and name not in tests_text.replace("def test_every_hook", "")]
    assert not missing, f"hooks without a test: {missing}"
