"""Offline JSON-schema validation of Kubernetes objects, kubeconform style.

Schemas are looked up in order: the user's schema locations (kubeconform layout
`{group}/{kind}_{version}.json`, or folders of CRD YAML converted on the fly), the project's
own schemas (GitOps and monitoring kinds), then the Kubernetes schemas shipped by
kubernetes-validate for the requested version.

Each schema is made self-contained (references into kubernetes-validate's shared
definitions file become local `definitions`), compiled once to Python code by fastjsonschema
and reused for every object of its kind. The generated code is cached on disk, keyed by the
schema's hash and the Python version, because generating it costs far more than using it.
Only an object that fails the fast check is validated again by jsonschema, to list every
problem with its path.
"""

from __future__ import annotations

import hashlib
import json
import marshal
import os
import re
import sys
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cache, partial
from importlib import resources
from pathlib import Path
from typing import Any

from ..spec.formats import FORMAT_CHECKS, asserts_formats

_GROUP_SHORT = re.compile(r"^([^./]*)(?:\.[^/]*)?/")
_DEFINITION_REF = "#/$defs/"
_SKIPPED_KEYS = ("description",)


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
    return tuple(sorted(versions, key=_version_tuple))


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(x) for x in version.lstrip("v").split(".")[:2])


def _schema_dir_for(version: str, strict: bool) -> Any:
    candidates = [v for v in available_kubernetes_versions()
                  if _version_tuple(v) <= _version_tuple(version)]
    if not candidates:
        raise SchemaNotFound(f"no Kubernetes schemas for version {version}; available: "
                             + ", ".join(available_kubernetes_versions()))
    name = f"v{candidates[-1]}.0-local" + ("-strict" if strict else "")
    return resources.files("kubernetes_validate").joinpath("kubernetes-json-schema").joinpath(
        name)


@cache
def _definitions(version: str, strict: bool) -> dict[str, Any]:
    text = _schema_dir_for(version, strict).joinpath("_definitions.json").read_text("utf-8")
    definitions: dict[str, Any] = json.loads(text)["$defs"]
    return definitions


def self_contained(schema: dict[str, Any], definitions: dict[str, Any]) -> dict[str, Any]:
    """`schema` with every `…#/$defs/X` reference pointing at a local `definitions` copy."""
    used: dict[str, Any] = {}

    def rewrite(node: Any) -> Any:
        if isinstance(node, dict):
            out: dict[str, Any] = {}
            for key, value in node.items():
                if key == "$ref" and isinstance(value, str) and _DEFINITION_REF in value:
                    name = value.rsplit("/", 1)[-1]
                    out[key] = f"#/definitions/{name}"
                    if name not in used:
                        used[name] = {}
                        used[name] = rewrite(definitions[name])
                elif key in _SKIPPED_KEYS or key.startswith("x-kubernetes") or key == "$schema":
                    continue
                else:
                    out[key] = rewrite(value)
            return out
        if isinstance(node, list):
            return [rewrite(item) for item in node]
        return node

    result: dict[str, Any] = rewrite(schema)
    if used:
        result["definitions"] = dict(sorted(used.items()))
    return result


def _formats(schema: Any, found: set[str] | None = None) -> set[str]:
    found = set() if found is None else found
    if isinstance(schema, dict):
        if isinstance(schema.get("format"), str):
            found.add(schema["format"])
        for value in schema.values():
            _formats(value, found)
    elif isinstance(schema, list):
        for value in schema:
            _formats(value, found)
    return found


def _escape_class_dollars(pattern: str) -> str:
    """`pattern` with each unescaped `$` inside a character class escaped: the same regex.
    fastjsonschema rewrites every unescaped `$` to `\\Z` (end of string), also inside a class
    (`[#$%]`, as in the Gateway API's header names), where Python's re refuses it."""
    out, in_class, escaped, first = [], False, False, 0  # first: where a class's items start
    for at, char in enumerate(pattern):
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif not in_class and char == "[":
            in_class = True
            first = at + 2 if pattern[at + 1:at + 2] == "^" else at + 1
        elif in_class and char == "]" and at > first:  # a `]` first in a class is literal
            in_class = False
        elif in_class and char == "$":
            char = "\\$"
        out.append(char)
    return "".join(out)


def _with_safe_patterns(node: Any) -> Any:
    if isinstance(node, dict):
        return {key: _escape_class_dollars(value) if key == "pattern" and isinstance(value, str)
                else _with_safe_patterns(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_with_safe_patterns(item) for item in node]
    return node


def _cache_dir() -> Path | None:
    from ..output.memo import cache_root

    try:
        path = cache_root() / "schemas"
        path.mkdir(parents=True, exist_ok=True)
        return path
    except OSError:
        return None


def _compiled_code(schema: dict[str, Any], checked: frozenset[str]) -> Any:
    """A code object validating `schema` (the formats in `checked` asserted through the
    `custom_formats` argument, the others not), from the disk cache when possible."""
    import fastjsonschema

    schema = _with_safe_patterns(schema)
    text = json.dumps(schema, sort_keys=True)
    key = hashlib.sha256(f"{sys.version}|{fastjsonschema.VERSION}|{sorted(checked)}|{text}"
                         .encode()).hexdigest()
    cache_dir = _cache_dir()
    cached = cache_dir / f"{key}.marshal" if cache_dir else None
    if cached and cached.is_file():
        try:
            return marshal.loads(cached.read_bytes())
        except (EOFError, ValueError, TypeError):
            pass
    formats: dict[str, Any] = {f: FORMAT_CHECKS[f] if f in checked else ".*"
                               for f in _formats(schema)}
    source = fastjsonschema.compile_to_code(schema, formats=formats)
    code = compile(source, f"<schema {key[:12]}>", "exec")
    if cached:
        _write_quietly(cached, marshal.dumps(code))
    return code


def _write_quietly(path: Path, data: bytes) -> None:
    try:
        fd, temporary = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(temporary, path)
    except OSError:
        pass  # a cache that cannot be written only costs time


@dataclass
class CompiledSchema:
    schema: dict[str, Any]
    origin: str  # where the schema came from, for messages
    asserts_formats: bool = False  # as kubeconform does for this schema's draft
    _fast: Callable[[Any], Any] | None = field(default=None, repr=False)
    _detailed: Any = field(default=None, repr=False)

    def fast(self) -> Callable[[Any], Any]:
        if self._fast is None:
            namespace: dict[str, Any] = {}
            exec(_compiled_code(self.schema, self._checked_formats()),  # our schema's code
                 namespace)
            entry = next(v for k, v in namespace.items()
                         if k.startswith("validate") and callable(v))
            self._fast = partial(entry, custom_formats=FORMAT_CHECKS)
        return self._fast

    def _checked_formats(self) -> frozenset[str]:
        return frozenset(FORMAT_CHECKS).intersection(_formats(self.schema)) \
            if self.asserts_formats else frozenset()

    def problems(self, obj: Any) -> list[SchemaProblem]:
        import fastjsonschema

        try:
            self.fast()(obj)
            return []
        except fastjsonschema.JsonSchemaValueException as error:
            first = SchemaProblem(_fast_path(error.path), error.message)
        except RecursionError:
            first = SchemaProblem("", "the object is nested too deeply")
        return self._all_problems(obj) or [first]

    def _all_problems(self, obj: Any) -> list[SchemaProblem]:
        import jsonschema

        if self._detailed is None:
            checker = jsonschema.FormatChecker(formats=())
            for name in self._checked_formats():
                checker.checks(name)(FORMAT_CHECKS[name])
            self._detailed = jsonschema.Draft7Validator(self.schema, format_checker=checker)
        errors = sorted(self._detailed.iter_errors(obj), key=lambda e: _json_path(e.absolute_path))
        return [SchemaProblem(_json_path(e.absolute_path), e.message) for e in errors]


def _fast_path(parts: Iterable[Any]) -> str:
    return _json_path(list(parts)[1:])  # fastjsonschema's path starts with "data"


def _json_path(parts: Iterable[Any]) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def project_schema_root() -> Path:
    return Path(str(resources.files("modelapi_compile.schemas")))


class SchemaCatalog:
    """Finds and caches one compiled schema per (apiVersion, kind)."""

    def __init__(self, kubernetes_version: str, *, strict: bool = True,
                 locations: tuple[Path, ...] = (), crds: dict[tuple[str, str], Any] | None = None):
        self.kubernetes_version = kubernetes_version
        self.strict = strict
        root = project_schema_root()
        self.locations = (*locations, root / "gitops", root / "monitoring", root / "secrets",
                          root / "autoscaling", root / "networking", root / "workloads")
        self.crds = crds or {}
        self._compiled: dict[tuple[str, str], CompiledSchema] = {}

    def schema_for(self, api_version: str, kind: str) -> CompiledSchema:
        key = (api_version, kind)
        if key not in self._compiled:
            self._compiled[key] = self._find(api_version, kind)
        return self._compiled[key]

    def _find(self, api_version: str, kind: str) -> CompiledSchema:
        group, _, version = api_version.rpartition("/")
        if (api_version, kind) in self.crds:
            schema = self.crds[(api_version, kind)]
            return CompiledSchema(schema, "CRD", asserts_formats(schema))
        for root in self.locations:
            candidate = root / group / f"{kind.lower()}_{version}.json"
            if candidate.is_file():
                schema = json.loads(candidate.read_text("utf-8"))
                return CompiledSchema(schema, str(candidate), asserts_formats(schema))
        return self._kubernetes_schema(api_version, kind)

    def _kubernetes_schema(self, api_version: str, kind: str) -> CompiledSchema:
        short = _GROUP_SHORT.sub(r"\1-", api_version)
        directory = _schema_dir_for(self.kubernetes_version, self.strict)
        entry = directory.joinpath(f"{kind.lower()}-{short}.json")
        if not entry.is_file():
            raise SchemaNotFound(f"no schema for {kind} {api_version} in Kubernetes "
                                 f"{self.kubernetes_version} or the schema locations")
        schema = json.loads(entry.read_text("utf-8"))
        definitions = _definitions(self.kubernetes_version, self.strict)
        return CompiledSchema(self_contained(schema, definitions), f"kubernetes {entry.name}",
                              asserts_formats(schema))

    def check(self, obj: dict[str, Any]) -> list[SchemaProblem]:
        """Problems of one object; SchemaNotFound when no schema knows its kind."""
        compiled = self.schema_for(str(obj.get("apiVersion", "")), str(obj.get("kind", "")))
        return compiled.problems(obj)
