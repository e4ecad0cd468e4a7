"""`validate-manifests`: load Kubernetes manifests from files, folders or stdin, and check
each object against its schema, kubeconform style.

loading (files -> documents -> objects, Lists split) -> checking (retired API versions,
schemas) -> results; reporters.py turns results into text, JSON, JUnit or GitHub output.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..resolve.apiversions import retirement
from .kubeschemas import SchemaCatalog, SchemaNotFound, SchemaProblem

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
_DOCUMENT_START = re.compile(r"^---(?:[ \t].*)?$")


@dataclass
class Result:
    file: str
    document: int  # 0-based index of the YAML document in the file
    line: int  # first line of that document
    api_version: str = ""
    kind: str = ""
    name: str = ""
    status: str = "valid"  # valid | invalid | error | skipped
    message: str = ""
    problems: list[SchemaProblem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    obj: Any = field(default=None, repr=False, compare=False)  # dropped once checked

    @property
    def title(self) -> str:
        return f"{self.kind or '?'}/{self.name or '?'}"


@dataclass(frozen=True)
class Options:
    kubernetes_version: str = "1.31.0"
    strict: bool = False
    schema_locations: tuple[Path, ...] = ()
    ignore_missing_schemas: bool = False
    skip_kinds: frozenset[str] = frozenset()


class GoYamlLoader(yaml.CSafeLoader):
    """YAML 1.1 as Go programs read it: a plain `=` or `<<` value is a string."""


class _StrictLoader(GoYamlLoader):
    """GoYamlLoader that refuses duplicate keys (--strict)."""


def _construct_mapping(loader: Any, node: Any, deep: bool = False) -> Any:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


def _as_string(loader: Any, node: Any) -> Any:
    return loader.construct_scalar(node)


for _tag in ("tag:yaml.org,2002:value", "tag:yaml.org,2002:merge"):
    GoYamlLoader.add_constructor(_tag, _as_string)
_StrictLoader.add_constructor("tag:yaml.org,2002:map", _construct_mapping)


KUSTOMIZATION_NAMES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
_RENDER_HELM = ("a Helm chart file, not a manifest: validate what the chart renders "
                "(helm template ... | modelapi-compile validate-manifests -)")
_RENDER_KUSTOMIZE = ("a Kustomize file, not a manifest: validate what it renders "
                     "(kubectl kustomize DIR | modelapi-compile validate-manifests -)")


def discover(paths: list[str]) -> Iterator[tuple[str, str | None, str, str]]:
    """(name, text, "", "") of every manifest file under `paths` (`-` reads stdin);
    (name, None, why, "") for a path that cannot be read; (name, None, "", note) for a file
    of a Helm chart, a Kustomize kustomization or patch, or a build manifest, which are not
    Kubernetes objects as they stand. Hidden folders (.git, .venv) are not searched."""
    for path in paths:
        if path == "-":
            yield "<stdin>", sys.stdin.read(), "", ""
            continue
        target = Path(path)
        if not target.exists():
            yield path, None, "no such file or folder", ""
            continue
        if target.is_dir():
            notes = not_manifests(target)
            files = sorted(p for p in target.rglob("*") if p.suffix in MANIFEST_SUFFIXES
                           and p.is_file() and not _in_hidden_folder(p, target))
        else:
            notes, files = not_manifests(target.parent, only=target), [target]
        for file in files:
            note = notes.get(file.resolve())
            if note:
                yield str(file), None, "", note
                continue
            try:
                yield str(file), file.read_text("utf-8", errors="replace"), "", ""
            except OSError as error:
                yield str(file), None, f"cannot read it: {error.strerror or error}", ""


def _in_hidden_folder(file: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in file.relative_to(root).parts[:-1])


def not_manifests(root: Path, only: Path | None = None) -> dict[Path, str]:
    """Files under `root` that are inputs of Helm or Kustomize (or a build's bookkeeping)
    rather than objects, with what to validate instead."""
    notes: dict[Path, str] = {}
    build_manifest = root / ".modelapi-compile.json"
    if build_manifest.is_file():
        notes[build_manifest.resolve()] = "modelapi-compile's build manifest, not a manifest"
    charts = [only.parent] if only is not None and (only.parent / "Chart.yaml").is_file() else []
    charts += [only.parent.parent] if only is not None and only.parent.name == "templates" \
        and (only.parent.parent / "Chart.yaml").is_file() else []
    if only is None:
        charts = [c.parent for c in root.rglob("Chart.yaml")]
    for chart in charts:
        for file in [chart / "Chart.yaml", *chart.glob("values*.y*ml"),
                     *chart.glob("values.schema.json"), *(chart / "templates").rglob("*")]:
            notes[file.resolve()] = _RENDER_HELM
    candidates = ([only] if only is not None and only.name in KUSTOMIZATION_NAMES else
                  [] if only is not None else
                  [p for p in root.rglob("*") if p.name in KUSTOMIZATION_NAMES])
    for kustomization in candidates:
        notes.update(_kustomize_inputs(kustomization))
    if only is not None and only.parent.name == "patches":
        for name in KUSTOMIZATION_NAMES:  # a patch file given on its own
            notes.update(_kustomize_inputs(only.parent.parent / name))
    return notes


def _kustomize_inputs(kustomization: Path) -> dict[Path, str]:
    """The kustomization and the patch files it names."""
    try:
        data = yaml.safe_load(kustomization.read_text("utf-8"))
    except (OSError, yaml.YAMLError):
        return {}
    api = str(data.get("apiVersion", "kustomize.config.k8s.io")) if isinstance(data, dict) else ""
    if not api.startswith("kustomize.config.k8s.io"):
        return {}  # a Flux Kustomization object that happens to have this name
    notes = {kustomization.resolve(): _RENDER_KUSTOMIZE}
    patches = [*(data.get("patches") or []), *(data.get("patchesJson6902") or []),
               *(data.get("patchesStrategicMerge") or [])]
    for patch in patches:
        path = patch.get("path") if isinstance(patch, dict) else patch
        if isinstance(path, str) and "\n" not in path:
            notes[(kustomization.parent / path).resolve()] = _RENDER_KUSTOMIZE
    return notes


def split_documents(text: str) -> Iterator[tuple[int, str]]:
    """(first line, text) of each YAML document."""
    start, lines = 1, list[str]()
    for number, line in enumerate(text.splitlines(), start=1):
        if _DOCUMENT_START.match(line):
            if lines:
                yield start, "\n".join(lines)
            rest = line[3:]
            start, lines = (number, [rest]) if rest.strip() else (number + 1, [])
        elif line.strip() == "...":
            continue
        else:
            lines.append(line)
    if lines:
        yield start, "\n".join(lines)


def _parse(name: str, text: str, strict: bool) -> Iterator[Result | tuple[int, int, Any]]:
    if name.endswith(".json"):
        try:
            yield 0, 1, json.loads(text, object_pairs_hook=_json_pairs(strict))
        except ValueError as error:
            failed = _named(Result(name, 0, 1), text, json.loads)
            yield _finish(failed, "error", f"invalid JSON: {error}")
        return
    loader = _StrictLoader if strict else GoYamlLoader
    for index, (line, document) in enumerate(split_documents(text)):
        try:
            yield index, line, yaml.load(document, Loader=loader)
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            at = line + (mark.line if mark else 0)
            problem = getattr(error, "problem", None) or str(error)
            failed = _named(Result(name, index, at), document,
                            lambda t: yaml.load(t, Loader=GoYamlLoader))
            yield _finish(failed, "error", f"invalid YAML: {problem}")


def _named(result: Result, text: str, lenient_load: Callable[[str], Any]) -> Result:
    """`result` with the kind and name of a document that only strict loading refuses (a
    duplicate key), as kubeconform names it."""
    try:
        named = _pending(result.file, result.document, result.line, lenient_load(text))
    except (ValueError, yaml.YAMLError):
        return result
    result.api_version, result.kind, result.name = named.api_version, named.kind, named.name
    return result


def _json_pairs(strict: bool) -> Any:
    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key, value in items:
            if strict and key in result:
                raise ValueError(f"duplicate key {key!r}")
            result[key] = value
        return result

    return pairs


def load_resources(name: str, text: str, strict: bool) -> Iterator[Result]:
    """One pending Result (with `.obj`) per object; empty documents are ignored."""
    for parsed in _parse(name, text, strict):
        if isinstance(parsed, Result):
            yield parsed
            continue
        index, line, obj = parsed
        if obj is None:
            continue
        items = obj.get("items") if isinstance(obj, dict) else None
        is_list = isinstance(obj, dict) and str(obj.get("kind", "")).endswith("List")
        for item in (items or []) if is_list and isinstance(items, list) else [obj]:
            yield _pending(name, index, line, item)


def _pending(name: str, index: int, line: int, obj: Any) -> Result:
    result = Result(name, index, line, obj=obj)
    if isinstance(obj, dict):
        metadata = obj.get("metadata")
        result.api_version = str(obj.get("apiVersion") or "")
        result.kind = str(obj.get("kind") or "")
        result.name = str(metadata.get("name") or "") if isinstance(metadata, dict) else ""
    return result


def check_result(result: Result, catalog: SchemaCatalog, options: Options) -> Result:
    obj = result.obj
    if result.status != "valid":
        return result
    if not isinstance(obj, dict):
        return _finish(result, "error", "the document is not a mapping")
    if not result.kind or not result.api_version:
        return _finish(result, "error", "missing kind or apiVersion")
    if result.kind in options.skip_kinds:
        return _finish(result, "skipped", "")
    retired = retirement(result.api_version, result.kind, options.kubernetes_version)
    if retired and retired[0] == "removed":
        # A removed API has no schema in that version: kubeconform's error, or its skip under
        # --ignore-missing-schemas, where the reason stays visible as a warning.
        if options.ignore_missing_schemas:
            result.warnings.append(retired[1])
            return _finish(result, "skipped", retired[1])
        return _finish(result, "error", retired[1])
    if retired:
        result.warnings.append(retired[1])
    try:
        result.problems = catalog.check(obj)
    except SchemaNotFound as error:
        if options.ignore_missing_schemas:
            return _finish(result, "skipped", str(error))
        return _finish(result, "error", str(error))
    if result.problems:
        return _finish(result, "invalid", "; ".join(
            f"{p.path}: {p.message}" if p.path else p.message for p in result.problems))
    return result


def _finish(result: Result, status: str, message: str) -> Result:
    result.status, result.message = status, message
    return result


def validate_manifests(paths: list[str], options: Options) -> list[Result]:
    from .crd_schemas import load_crd_schemas

    catalog = SchemaCatalog(options.kubernetes_version, strict=options.strict,
                            locations=options.schema_locations,
                            crds=load_crd_schemas(options.schema_locations, options.strict))
    results = []
    for name, text, unreadable, note in discover(paths):
        if text is None:
            results.append(Result(name, 0, 0, status="skipped" if note else "error",
                                  message=note or unreadable))
            continue
        for pending in load_resources(name, text, options.strict):
            checked = check_result(pending, catalog, options)
            checked.obj = None
            results.append(checked)
    return results
