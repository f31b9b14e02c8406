"""JSON Schema of pipeline files, including the options of every installed plugin (for editor completion)."""

from __future__ import annotations

import copy
from typing import Any

from trtapps.config.schema import PipelineFile
from trtapps.registry import Registries

_SECTION_KIND = {"source": "source", "sources": "source", "app": "app", "postprocess": "postprocessor",
                 "tracker": "tracker", "sinks": "sink", "backend": "backend"}


def _component_schema(kind: str, registries: Registries, defs: dict[str, Any]) -> dict[str, Any]:
    choices = []
    for spec in registries.of(kind):
        schema = spec.options.model_json_schema(ref_template="#/$defs/{model}")
        for name, sub in schema.pop("$defs", {}).items():
            defs.setdefault(name, sub)
        schema = copy.deepcopy(schema)
        schema.setdefault("properties", {})["type"] = {"const": spec.name, "description": spec.summary}
        schema["required"] = sorted(set(schema.get("required", [])) | {"type"})
        schema["title"] = f"{kind} {spec.name} ({spec.plugin})"
        key = f"{kind}_{spec.name}"
        defs[key] = schema
        choices.append({"$ref": f"#/$defs/{key}"})
    if kind == "backend":
        defs["backend_auto"] = {"type": "object", "properties": {"type": {"const": "auto"}}, "required": ["type"]}
        choices.append({"$ref": "#/$defs/backend_auto"})
        names = [*registries.of(kind).names(), "auto"]
        return {"anyOf": [*choices, {"enum": names}]}
    return {"anyOf": choices} if choices else {"type": "object"}


def pipeline_schema(registries: Registries) -> dict[str, Any]:
    """The JSON Schema of a pipeline file with every installed component's options."""
    schema = PipelineFile.model_json_schema()
    defs: dict[str, Any] = {k: v for k, v in schema.pop("$defs", {}).items() if k != "ComponentRef"}
    props = schema["properties"]
    for section, kind in _SECTION_KIND.items():
        component = _component_schema(kind, registries, defs)
        description = props[section].get("description", "")
        if section in ("sources", "postprocess", "sinks"):
            props[section] = {"type": "array", "items": component, "description": description}
        elif section == "tracker" or section == "source":
            props[section] = {"anyOf": [component, {"type": "null"}], "description": description}
        else:
            props[section] = {**component, "description": description}
    schema["$defs"] = defs
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "trtapps pipeline file"
    return schema
