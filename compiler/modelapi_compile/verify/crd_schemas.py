"""JSON schemas from CustomResourceDefinition YAML files, converted on the fly the way
kubeconform's openapi2jsonschema does, so `--schema-location` can point at a folder of CRDs."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

CRD_SUFFIXES = (".yaml", ".yml")


def load_crd_schemas(locations: tuple[Path, ...], strict: bool
                     ) -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> schema for every CRD found in YAML files under `locations`."""
    schemas: dict[tuple[str, str], dict[str, Any]] = {}
    for location in locations:
        if not location.is_dir():
            continue
        for file in sorted(p for p in location.rglob("*") if p.suffix in CRD_SUFFIXES):
            for document in yaml.safe_load_all(file.read_text("utf-8", errors="replace")):
                if isinstance(document, dict) and document.get("kind") == \
                        "CustomResourceDefinition":
                    schemas.update(crd_to_schemas(document, strict))
    return schemas


def crd_to_schemas(crd: dict[str, Any], strict: bool) -> dict[tuple[str, str], dict[str, Any]]:
    spec = crd.get("spec") or {}
    group, kind = spec.get("group", ""), (spec.get("names") or {}).get("kind", "")
    result = {}
    for version in spec.get("versions") or []:
        openapi = ((version.get("schema") or {}).get("openAPIV3Schema"))
        if not isinstance(openapi, dict) or not version.get("served", True):
            continue
        schema = _convert(copy.deepcopy(openapi), strict)
        properties = schema.setdefault("properties", {})
        properties.setdefault("apiVersion", {"type": "string"})
        properties.setdefault("kind", {"type": "string"})
        properties.setdefault("metadata", {"type": "object"})
        result[(f"{group}/{version['name']}", kind)] = schema
    return result


def _convert(node: Any, strict: bool) -> Any:
    """OpenAPI v3 -> JSON Schema: `nullable` becomes a type union; in strict mode objects
    with known properties refuse unknown ones unless the CRD preserves unknown fields."""
    if isinstance(node, list):
        return [_convert(item, strict) for item in node]
    if not isinstance(node, dict):
        return node
    converted = {k: _convert(v, strict) for k, v in node.items()}
    if converted.pop("nullable", False) and isinstance(converted.get("type"), str):
        converted["type"] = [converted["type"], "null"]
    if (strict and "properties" in converted and "additionalProperties" not in converted
            and not converted.get("x-kubernetes-preserve-unknown-fields")):
        converted["additionalProperties"] = False
    return converted
