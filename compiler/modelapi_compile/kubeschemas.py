"""Offline JSON-schema validation of Kubernetes objects, kubeconform style.

Schemas are looked up in order: the user's schema locations (kubeconform layout
`{group}/{kind}_{version}.json`), the project's own schemas (GitOps and monitoring kinds),
then the Kubernetes schemas shipped by kubernetes-validate for the requested version.
Each schema is compiled once per catalog and reused for every object of that kind.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
from referencing import Registry, Resource

_GROUP_SHORT = re.compile(r"^([^./]*)(?:\.[^/]*)?/")


@dataclass(frozen=True)
class SchemaProblem:
    path: str  # JSON path inside the object, e.g. spec.template.spec.containers[0].image
    message: str


class SchemaNotFound(Exception):
    pass


@cache
def available_kubernetes_versions() -> tuple[str, ...]:
    root = resources.files("kubernetes_validate").joinpath("kubernetes-json-schema")
    versions = {m.group(1) for entry in root.iterdir()
                if (m := re.match(r"^v(\d+\.\d+)\.\d+-local$", entry.name))}
    return tuple(sorted(versions, key=lambda v: tuple(int(x) for x in v.split("."))))


def _schema_dir_for(version: str, strict: bool) -> Any:
    major_minor = tuple(int(x) for x in version.split(".")[:2])
    candidates = [v for v in available_kubernetes_versions()
                  if tuple(int(x) for x in v.split(".")) <= major_minor]
    if not candidates:
        raise SchemaNotFound(f"no Kubernetes schemas for version {version}; available: "
                             + ", ".join(available_kubernetes_versions()))
    name = f"v{candidates[-1]}.0-local" + ("-strict" if strict else "")
    return resources.files("kubernetes_validate").joinpath("kubernetes-json-schema").joinpath(name)


@cache
def _definitions(version: str, strict: bool) -> Resource[Any]:
    text = _schema_dir_for(version, strict).joinpath("_definitions.json").read_text("utf-8")
    return Resource.from_contents(json.loads(text))


def project_schema_root() -> Path:
    return Path(str(resources.files("modelapi_compile.schemas")))


class SchemaCatalog:
    """Finds and caches one compiled validator per (apiVersion, kind)."""

    def __init__(self, kubernetes_version: str, *, strict: bool = True,
                 locations: tuple[Path, ...] = ()):
        self.kubernetes_version = kubernetes_version
        self.strict = strict
        self.locations = (*locations, project_schema_root())
        self._validators: dict[tuple[str, str], Any] = {}

    def validator(self, api_version: str, kind: str) -> Any:
        key = (api_version, kind)
        if key not in self._validators:
            self._validators[key] = self._compile(api_version, kind)
        return self._validators[key]

    def _compile(self, api_version: str, kind: str) -> Any:
        group, _, version = api_version.rpartition("/")
        for root in self.locations:
            for candidate in (root / group / f"{kind.lower()}_{version}.json",
                              root / "gitops" / group / f"{kind.lower()}_{version}.json",
                              root / "monitoring" / group / f"{kind.lower()}_{version}.json"):
                if group and candidate.is_file():
                    schema = json.loads(candidate.read_text("utf-8"))
                    return jsonschema.Draft7Validator(schema)
        return self._kubernetes_validator(api_version, kind)

    def _kubernetes_validator(self, api_version: str, kind: str) -> Any:
        short = _GROUP_SHORT.sub(r"\1-", api_version)
        directory = _schema_dir_for(self.kubernetes_version, self.strict)
        entry = directory.joinpath(f"{kind.lower()}-{short}.json")
        if not entry.is_file():
            raise SchemaNotFound(f"no schema for {kind} {api_version} in Kubernetes "
                                 f"{self.kubernetes_version}")
        schema = json.loads(entry.read_text("utf-8"))
        definitions = _definitions(self.kubernetes_version, self.strict)
        registry: Registry[Any] = Registry().with_resource("/api/_definitions.json", definitions)
        return jsonschema.Draft202012Validator(schema, registry=registry)

    def check(self, obj: dict[str, Any]) -> list[SchemaProblem]:
        """Problems of one object; SchemaNotFound when no schema knows its kind."""
        validator = self.validator(str(obj.get("apiVersion", "")), str(obj.get("kind", "")))
        return [SchemaProblem(_json_path(error.absolute_path), error.message)
                for error in sorted(validator.iter_errors(obj),
                                             key=lambda e: _json_path(e.absolute_path))]


def _json_path(parts: Any) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text
