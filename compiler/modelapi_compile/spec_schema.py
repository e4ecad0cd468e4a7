"""The JSON Schema of the stack spec, generated from the pydantic models in spec.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .spec import ModelStack

SCHEMA_ID = "https://modelapi.dev/schemas/modelstack.v1alpha1.json"
# The name `init` and `import` write the schema under, beside the spec they write, so the
# YAML language server's modeline (`$schema=./<this>`) resolves without a network.
SCHEMA_FILE = "modelstack.v1alpha1.json"
MODELINE = f"# yaml-language-server: $schema=./{SCHEMA_FILE}"


def spec_schema() -> dict[str, Any]:
    schema = ModelStack.model_json_schema(by_alias=True)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID,
            **schema}


def spec_schema_text() -> str:
    return json.dumps(spec_schema(), indent=2, sort_keys=True) + "\n"


def write_schema_beside(spec_file: Path) -> str | None:
    """Write the schema next to `spec_file` for its modeline; returns a note when a file of
    that name that is not this tool's schema is in the way (it is then left alone)."""
    from .output import write_atomic

    target = spec_file.parent / SCHEMA_FILE
    text = spec_schema_text()
    if target.exists():
        try:
            current = json.loads(target.read_text("utf-8"))
        except (OSError, ValueError):
            current = None
        if not isinstance(current, dict) or current.get("$id") != SCHEMA_ID:
            return (f"{target} is not modelapi-compile's schema; left alone, so the spec's "
                    "$schema modeline points at it")
        if target.read_text("utf-8") == text:
            return None
    write_atomic(target, text)
    return None


def _type_text(field_schema: dict[str, Any], definitions: dict[str, Any]) -> str:
    if "$ref" in field_schema:
        return str(field_schema["$ref"]).rsplit("/", 1)[-1]
    if "anyOf" in field_schema:
        return " | ".join(_type_text(s, definitions) for s in field_schema["anyOf"])
    if "enum" in field_schema:
        return " | ".join(str(v) for v in field_schema["enum"])
    if "const" in field_schema:
        return str(field_schema["const"])
    kind = field_schema.get("type", "any")
    if kind == "array":
        return f"list[{_type_text(field_schema.get('items', {}), definitions)}]"
    if kind == "object" and isinstance(field_schema.get("additionalProperties"), dict):
        return f"map[{_type_text(field_schema['additionalProperties'], definitions)}]"
    return str(kind)


def spec_reference_markdown() -> str:
    """The spec reference of the README: one table per model, generated from spec.py."""
    schema = spec_schema()
    definitions = schema.get("$defs", {})
    sections = []
    for name, model in [("ModelStack", schema), *sorted(definitions.items())]:
        if "properties" not in model:
            continue
        rows = ["| field | type | default | description |", "|---|---|---|---|"]
        required = set(model.get("required", []))
        for field, field_schema in model["properties"].items():
            default = ("required" if field in required
                       else json.dumps(field_schema.get("default")) if "default" in
                       field_schema else "")
            text = field_schema.get("description", "").replace("|", "\\|").replace("\n", " ")
            kind = _type_text(field_schema, definitions).replace("|", "\\|")
            rows.append(f"| `{field}` | {kind} | {default.replace('|', chr(92) + '|')} | {text} |")
        doc = (model.get("description") or "").strip().split("\n")[0]
        sections.append(f"#### {name}\n\n{doc}\n\n" + "\n".join(rows) + "\n")
    return "\n".join(sections)
