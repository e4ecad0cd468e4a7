"""The JSON Schema of the stack spec, generated from the pydantic models of spec/."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .accelerators import reference_markdown
from .model import ModelStack

SCHEMA_ID = "https://modelapi.dev/schemas/modelstack.v1alpha1.json"
# The name `init` and `import` write the schema under, beside the spec they write, so the
# YAML language server's modeline (`$schema=./<this>`) resolves without a network.
SCHEMA_FILE = "modelstack.v1alpha1.json"
MODELINE = f"# yaml-language-server: $schema=./{SCHEMA_FILE}"


K8S_PREFIX = "io.k8s."


def spec_schema() -> dict[str, Any]:
    schema = ModelStack.model_json_schema(by_alias=True)
    _kubernetes_shapes(schema)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID,
            **schema}


def _kubernetes_shapes(schema: dict[str, Any]) -> None:
    """Pod pass-through fields typed by the Kubernetes definitions of the default
    kubernetesVersion, so editors flag what `validate` flags (which checks the spec's own
    version)."""
    from ..resolve.pod_options import SHAPES
    from ..verify.kubeschemas import _definitions, self_contained
    from .model import DEFAULT_KUBERNETES_VERSION

    wanted = {"anyOf": [{"$ref": f"#/$defs/{d}"} for d, _ in SHAPES.values()]}
    found = self_contained(wanted, _definitions(DEFAULT_KUBERNETES_VERSION, True))
    text = json.dumps(found.get("definitions", {})).replace('"#/definitions/', '"#/$defs/')
    definitions = schema.setdefault("$defs", {})
    definitions.update(json.loads(text))
    for model in list(definitions.values()):
        properties = model.get("properties", {})
        for field, (definition, is_list) in SHAPES.items():
            if field not in properties:
                continue
            ref = {"$ref": f"#/$defs/{definition}"}
            kept = {k: v for k, v in properties[field].items()
                    if k in ("default", "description", "title")}
            shape = {"type": "array", "items": ref} if is_list else ref
            if field == "topologySpreadConstraints" or not is_list:  # these may be null
                kept["anyOf"] = [shape, {"type": "null"}]
            else:
                kept.update(shape)
            properties[field] = kept


def spec_schema_text() -> str:
    return json.dumps(spec_schema(), indent=2, sort_keys=True) + "\n"


def write_schema_beside(spec_file: Path) -> str | None:
    """Write the schema next to `spec_file` for its modeline; returns a note when a file of
    that name that is not this tool's schema is in the way (it is then left alone)."""
    from ..output.writer import write_atomic

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
    """The spec reference (docs/reference.md): one table per model, generated from spec/."""
    schema = spec_schema()
    definitions = schema.get("$defs", {})
    sections = []
    for name, model in [("ModelStack", schema), *sorted(definitions.items())]:
        if "properties" not in model or name.startswith(K8S_PREFIX):
            continue  # Kubernetes' own types are documented by Kubernetes
        rows = ["| field | type | default | description |", "|---|---|---|---|"]
        required = set(model.get("required", []))
        for field, field_schema in model["properties"].items():
            default = ("required" if field in required
                       else json.dumps(field_schema.get("default")) if "default" in
                       field_schema else "")
            text = field_schema.get("description", "").replace("|", "\\|").replace("\n", " ")
            kind = _type_text(field_schema, definitions).replace("|", "\\|")
            rows.append(f"| `{field}` | {kind} | {default.replace('|', chr(92) + '|')} | {text} |")
        # the model's first paragraph, whole: a docstring wraps mid-sentence
        doc = " ".join((model.get("description") or "").strip().split("\n\n")[0].split())
        sections.append(f"#### {name}\n\n{doc}\n\n" + "\n".join(rows) + "\n")
    sections.append("#### Accelerators\n\n`gpu.accelerator` names and the node labels each "
                    "`cluster.gpuNodeLabels` convention selects (— : not offered there; "
                    "`explicit` uses `gpu.nodeSelector` alone). AKS and EKS managed node "
                    "groups label GPUs through NVIDIA GPU feature discovery (`nvidia-gfd`); "
                    "AMD GPUs carry the AMD node labeller's label under that convention.\n\n"
                    + reference_markdown())
    return "\n".join(sections)
