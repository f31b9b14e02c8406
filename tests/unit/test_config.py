"""Pipeline-file validation: both phases, golden error lines with positions, suggestions and env interpolation."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from trtapps.config.jsonschema import pipeline_schema
from trtapps.config.loader import load_config, load_config_text
from trtapps.errors import ConfigError
from trtapps.plugins import PluginManager


@pytest.fixture(scope="module")
def registries():
    return PluginManager().registries


def problems_of(text: str, registries, **kw) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config_text(textwrap.dedent(text), registries, filename="p.yaml", **kw)
    return info.value.problems


GOOD = """\
name: demo
source: {type: images, path: photos/}
app:
  type: yolo
  model: yolov8n.onnx
  conf_threshold: 0.3
sinks:
  - {type: jsonl, path: out.jsonl}
"""


def test_valid_file_gives_typed_options(registries, tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(GOOD)
    cfg = load_config(path, registries)
    assert cfg.app.type == "yolo"
    assert cfg.app.conf_threshold == pytest.approx(0.3)
    assert type(cfg.app).__name__ == "YoloOptions"
    assert [s.type for s in cfg.sinks] == ["jsonl"]
    assert cfg.backend.type == "auto"
    assert cfg.config_dir == tmp_path
    assert cfg.output_dir().name == "demo"
    assert cfg.to_dict()["app"]["conf_threshold"] == pytest.approx(0.3)  # plain, serializable data


def test_value_out_of_range_points_at_the_value(registries) -> None:
    text = GOOD.replace("conf_threshold: 0.3", "conf_threshold: 1.5")
    assert problems_of(text, registries) == [
        "p.yaml:6:19: app.conf_threshold: input should be less than or equal to 1 (got 1.5)"
    ]


def test_unknown_type_suggests_the_closest_name(registries) -> None:
    text = GOOD.replace("type: yolo", "type: yollo")
    (line,) = problems_of(text, registries)
    assert line.startswith("p.yaml:4:9: app.type: unknown app 'yollo'; did you mean 'yolo'? installed: ")
    assert "retinaface" in line


def test_misspelt_key_points_at_the_key_and_lists_choices(registries) -> None:
    text = GOOD.replace("conf_threshold: 0.3", "conf_treshold: 0.3")
    (line,) = problems_of(text, registries)
    assert line.startswith("p.yaml:6:3: app.conf_treshold: unknown field 'conf_treshold'; did you mean 'conf_threshold'?")


def test_all_problems_are_reported_together(registries) -> None:
    text = GOOD.replace("type: jsonl", "type: jsnol").replace("conf_threshold: 0.3", "conf_threshold: -1")
    lines = problems_of(text, registries)
    assert len(lines) == 2
    assert any(line.startswith("p.yaml:8:12: sinks[0].type: unknown sink 'jsnol'; did you mean 'jsonl'?") for line in lines)


def test_missing_sections_and_unknown_top_level_keys(registries) -> None:
    lines = problems_of("sinks: []\nfoo: 1\n", registries)
    assert "p.yaml:1:1: app: required field is missing" in lines
    assert any(line.startswith("p.yaml:2:1: foo: unknown field 'foo'") for line in lines)


def test_yaml_syntax_error_has_a_position(registries) -> None:
    (line,) = problems_of("app: {type: yolo\nsource: x\n", registries)
    assert line.startswith("p.yaml:2:")
    assert "YAML syntax error" in line


def test_env_interpolation(registries, monkeypatch) -> None:
    monkeypatch.setenv("MODEL_DIR", "/models")
    text = GOOD.replace("model: yolov8n.onnx", "model: ${env:MODEL_DIR}/y.onnx")
    cfg = load_config_text(text, registries)
    assert cfg.app.model == "/models/y.onnx"
    cfg = load_config_text(GOOD.replace("yolov8n.onnx", "${env:NOPE_NOT_SET:-fallback.onnx}"), registries)
    assert cfg.app.model == "fallback.onnx"
    lines = problems_of(GOOD.replace("yolov8n.onnx", "${env:NOPE_NOT_SET}"), registries)
    assert lines == [
        "p.yaml:5:10: app.model: environment variable 'NOPE_NOT_SET' is not set; "
        "export it or write ${env:NOPE_NOT_SET:-default}"
    ]


def test_overrides_replace_sections(registries) -> None:
    cfg = load_config_text(GOOD, registries, overrides={"backend": "onnxruntime", "output": "/tmp/x"})
    assert cfg.backend.type == "onnxruntime"
    assert str(cfg.output_dir()) == "/tmp/x"


def test_a_source_override_replaces_the_files_source_in_either_spelling(registries) -> None:
    new = [{"type": "video", "path": "/v/other.mp4"}]
    assert "source:" in GOOD
    cfg = load_config_text(GOOD, registries, overrides={"sources": new})
    assert [(s.type, s.path) for s in cfg.sources] == [("video", "/v/other.mp4")]
    as_list = GOOD.replace("source:", "sources:\n  -", 1)
    cfg = load_config_text(as_list, registries, overrides={"source": new[0], "sources": None})
    assert [(s.type, s.path) for s in cfg.sources] == [("video", "/v/other.mp4")]
    # None counts as not given: the file's source stays
    cfg = load_config_text(GOOD, registries, overrides={"sources": None, "backend": None})
    assert [s.type for s in cfg.sources] == ["images"]


def test_backend_options_are_validated_by_the_backend(registries) -> None:
    lines = problems_of(GOOD + "backend: {type: onnxruntime, threads: -2}\n", registries)
    assert lines == ["p.yaml:9:39: backend.threads: input should be greater than or equal to 0 (got -2)"]
    (line,) = problems_of(GOOD + "backend: tensorrtt\n", registries)
    assert line.startswith("p.yaml:9:10: backend.type: unknown backend 'tensorrtt'")


def test_unknown_plugin_section(registries) -> None:
    (line,) = problems_of(GOOD + "plugins:\n  yoloo: {a: 1}\n", registries)
    assert line == "p.yaml:10:3: plugins.yoloo: no installed plugin is called 'yoloo'; did you mean 'yolo'?"


def test_missing_file() -> None:
    with pytest.raises(ConfigError, match=r"nope\.yaml: pipeline file not found"):
        load_config("nope.yaml", PluginManager().registries)


def test_shipped_configs_are_valid(registries) -> None:
    configs = sorted((Path(__file__).resolve().parents[2] / "configs").glob("*.yaml"))
    assert configs, "configs/ has no pipeline files"
    for path in configs:
        load_config(path, registries)


def test_json_schema_includes_plugin_options(registries) -> None:
    schema = pipeline_schema(registries)
    yolo = schema["$defs"]["app_yolo"]
    assert "conf_threshold" in yolo["properties"]
    assert yolo["properties"]["type"]["const"] == "yolo"
    assert {"$ref": "#/$defs/app_retinaface"} in schema["properties"]["app"]["anyOf"]
    assert schema["properties"]["sinks"]["type"] == "array"
