"""`explain`: the effective value at a spec path in one environment, and which layer set it.

Three layers, in order: the defaults of the pydantic models (spec/), the spec as written,
the environment's patch. The value comes from the validated model of the environment (so
defaults are filled in); the layer from the merged data and its positions: a path absent
from the merged data was left to the default, and a present one was set by the patch when
its merged position is a position inside `spec.environments[i].patch` of the file (patch.py
carries positions along with the data).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any, Literal

from ..emit import yamlout
from ..problems import Path, Problem, SpecError, did_you_mean, format_path
from ..spec.accelerators import ACCELERATORS, reference_text
from ..spec.loader import Positions, load_file
from ..spec.patch import apply_patch
from ..spec.validate import DEFAULT_ENVIRONMENT, validate_document
from .explain_deployed import deployed_lines, workload_of

Layer = Literal["default", "spec", "environment patch", "environment"]
_SEGMENT = re.compile(r"\.?([^.\[\]]+)|\[([^\]]*)\]")
_TOP_LEVEL = ("apiVersion", "kind", "metadata", "spec")


@dataclass(frozen=True)
class Explanation:
    value: Any
    layer: Layer
    file: str
    line: int  # of the value; for a default, of the nearest enclosing entry in the file
    column: int
    path: str = ""  # the path as resolved, list items by name where they have one
    environment: str = ""
    patched: tuple[str, ...] = ()  # parts of a spec-set map or list the patch changed
    notes: tuple[str, ...] = ()  # more lines about the value (the accelerator table)


@dataclass(frozen=True)
class _Layers:
    """The environment's merged data, its positions and the positions inside its patch."""

    data: Any
    positions: Positions
    patch_positions: frozenset[tuple[int, int]]
    model: Any  # the validated environment, dumped with defaults, camelCase keys


def explain(spec_path: str, environment: str, path: str) -> Explanation:
    document = load_file(spec_path)
    validated = validate_document(document)
    segments = _parse(path, spec_path)
    layers = _layers(document.data, document.positions, validated, environment, segments)
    namespace = _environment_namespace(document.data, document.positions, environment,
                                       segments, spec_path)
    if namespace is not None:
        return namespace
    try:
        concrete, value = _walk_model(layers.model, segments, path, spec_path, layers.positions)
    except SpecError:
        _removed_by_patch(validated, document.positions, segments, path, environment)
        raise
    text = _display(concrete, layers.model)
    explanation = _explain_layer(value, concrete, text, spec_path, environment, layers)
    if concrete[-2:] == ("gpu", "accelerator"):
        explanation = replace(explanation, notes=_accelerator_notes(value, layers.model))
    workload = workload_of(concrete, layers.model)
    if workload is not None and environment in {e.name for e in validated.environments}:
        name, base = workload
        explanation = replace(explanation, notes=(*explanation.notes, *deployed_lines(
            validated, environment, name, base, lambda at: _layer_name(at, layers),
            layers.model)))
    return explanation


def _layer_name(concrete: Path, layers: _Layers) -> str:
    """Who set the spec field at `concrete` in this environment, with where."""
    if not _present(layers.data, concrete):
        return "default"
    line, column = layers.positions.values.get(concrete) or layers.positions.locate(concrete)
    if (line, column) in layers.patch_positions:
        return f"environment patch, line {line}"
    return f"spec, line {line}"


def _accelerator_notes(value: Any, model: Any) -> tuple[str, ...]:
    """The labels the value selects under the environment's convention, and the table."""
    convention = model["spec"]["cluster"]["gpuNodeLabels"]
    labels = ACCELERATORS.get(value, {}).get(convention) if isinstance(value, str) else None
    chosen = (f"node labels (cluster.gpuNodeLabels: {convention}): "
              + ", ".join(f"{k}={v}" for k, v in labels.items()) if labels else
              f"node labels (cluster.gpuNodeLabels: {convention}): gpu.nodeSelector only")
    return (chosen, "accelerators (name: GPU; labels per convention):",
            *reference_text().rstrip("\n").splitlines())


def _explain_layer(value: Any, concrete: Path, text: str, spec_path: str, environment: str,
                   layers: _Layers) -> Explanation:
    """The explanation with the layer that set the value."""
    if not _present(layers.data, concrete):
        line, column = layers.positions.locate(concrete, key=True)
        return Explanation(value, "default", spec_path, line, column, text, environment)
    line, column = layers.positions.values.get(concrete) or layers.positions.locate(concrete)
    # A map or list both layers wrote keeps the spec's position (patch.py), one the patch
    # wrote whole has the patch's: one test covers scalars and containers.
    if (line, column) in layers.patch_positions:
        return Explanation(value, "environment patch", spec_path, line, column, text,
                           environment)
    patched = tuple(_display((*concrete, *part), layers.model)[len(text):].lstrip(".")
                    for part in _patched_parts(concrete, layers))
    return Explanation(value, "spec", spec_path, line, column, text, environment, patched)


def _environment_namespace(data: Any, positions: Positions, environment: str,
                           segments: list[str | int], spec_path: str) -> Explanation | None:
    """`spec.namespace` of an environment that sets environments[].namespace: that one (a
    patch cannot change spec.namespace; the environment's namespace replaces it)."""
    if segments != ["spec", "namespace"]:
        return None
    declared = data["spec"].get("environments") or []
    for index, env in enumerate(declared):
        if isinstance(env, dict) and env.get("name") == environment and env.get("namespace"):
            at: Path = ("spec", "environments", index, "namespace")
            line, column = positions.values.get(at) or positions.locate(at)
            return Explanation(env["namespace"], "environment", spec_path, line, column,
                               "spec.namespace", environment)
    return None


def render_explanation(e: Explanation) -> str:
    where = f"{e.file}:{e.line}:{e.column}"
    if isinstance(e.value, dict | list) and e.value:
        shown = "\n" + "".join("  " + line + "\n" for line in yamlout.dump(e.value).splitlines())
    else:
        shown = " " + (yamlout.dump(e.value).strip() if isinstance(e.value, dict | list)
                       else yamlout.scalar(e.value)) + "\n"
    lines = [f"{e.path} ({e.environment}):{shown}".rstrip("\n")]
    if e.layer == "default":
        lines.append(f"  set by: default (not in the file; it would go under {where})")
    elif e.layer == "environment patch":
        lines.append(f"  set by: environment patch of '{e.environment}' at {where}")
    elif e.layer == "environment":
        lines.append(f"  set by: environments[{e.environment}].namespace at {where} (it "
                     "replaces spec.namespace in that environment)")
    else:
        lines.append(f"  set by: spec at {where}")
        if e.patched:
            lines.append("  changed by the environment patch: " + ", ".join(e.patched))
    lines.extend("  " + note for note in e.notes)
    return "\n".join(lines) + "\n"


def _removed_by_patch(validated: Any, positions: Positions, segments: list[str | int],
                      text: str, environment: str) -> None:
    """A path the spec has but the environment lacks was removed by its patch: say so."""
    try:
        concrete, _ = _walk_model(_dump(validated.stack), segments, text, positions.file,
                                  positions)
    except SpecError:
        return
    line, column = positions.locate(concrete)
    raise SpecError([Problem(positions.file, line, column, text,
                             f"exists in the spec as written, but the patch of environment "
                             f"'{environment}' removes it (null or $patch: delete)",
                             "explain it in another environment, or drop the removal")])


# --- the path --------------------------------------------------------------------------------


def _parse(path: str, file: str) -> list[str | int]:
    """`spec.modelAPIs[vllm-hosted].vllm.gpu.count` -> segments; `[0]` is an index (a
    bracketed name is tried first, so an item named `0` still wins)."""
    segments: list[str | int] = []
    position = 0
    for match in _SEGMENT.finditer(path):
        if match.start() != position or (match.group(0).startswith(".") and not segments):
            break
        key, bracket = match.group(1), match.group(2)
        segments.append(key if key is not None else _bracket(bracket))
        position = match.end()
    if position != len(path) or not segments:
        raise SpecError([Problem(file, 0, 0, path, "not a spec path",
                                 "write it like spec.modelAPIs[vllm-hosted].vllm.gpu.count")])
    if segments[0] not in _TOP_LEVEL:
        segments.insert(0, "spec")  # `agents[planner].replicas` means spec.agents[...]
    return segments


def _bracket(text: str) -> str | int:
    # An index is kept as a string too, so that a name made of digits can still match.
    return int(text) if text.isdigit() else text


# --- the layers ------------------------------------------------------------------------------


def _layers(data: dict[str, Any], positions: Positions, validated: Any, environment: str,
            segments: list[str | int]) -> _Layers:
    names = [env.name for env in validated.environments]
    if environment not in names:
        raise SpecError([Problem(positions.file, 0, 0, "",
                                 f"no environment named '{environment}'",
                                 did_you_mean(environment, names))])
    stack = next(env.stack for env in validated.environments if env.name == environment)
    declared = [e.get("name") for e in data["spec"].get("environments") or []]
    # Environments themselves are not patched: explain them from the spec as written.
    if (environment == DEFAULT_ENVIRONMENT and environment not in declared) or (
            segments[:2] == ["spec", "environments"]):
        return _Layers(data, positions, frozenset(), _dump(validated.stack))
    index = declared.index(environment)
    merged, merged_positions = apply_patch(data, positions, index)
    origin: Path = ("spec", "environments", index, "patch")
    inside = frozenset(
        position for table in (positions.values, positions.keys)
        for key, position in table.items() if key[:len(origin)] == origin and key != origin)
    return _Layers(merged, merged_positions, inside, _dump(stack))


def _dump(stack: Any) -> Any:
    return stack.model_dump(by_alias=True, mode="json")


def _walk_model(model: Any, segments: list[str | int], text: str, file: str,
                positions: Positions) -> tuple[Path, Any]:
    """The concrete path (names resolved to indices) and the effective value."""
    node: Any = model
    concrete: Path = ()
    for segment in segments:
        step = _step(node, segment)
        if step is None:
            raise SpecError([_unknown(node, segment, concrete, text, file, positions, model)])
        concrete = (*concrete, step)
        node = node[step]
    return concrete, node


def _step(node: Any, segment: str | int) -> str | int | None:
    if isinstance(node, dict):
        return str(segment) if str(segment) in node else None
    if isinstance(node, list):
        for i, item in enumerate(node):
            if isinstance(item, dict) and item.get("name") == str(segment):
                return i
        if isinstance(segment, int) and 0 <= segment < len(node):
            return segment
    return None


def _unknown(node: Any, segment: str | int, concrete: Path, text: str, file: str,
             positions: Positions, model: Any) -> Problem:
    line, column = positions.locate(concrete)
    where = _display(concrete, model) or "the document"
    if isinstance(node, dict):
        message, hint = f"unknown field '{segment}' in {where}", did_you_mean(str(segment),
                                                                               list(node))
    elif isinstance(node, list):
        names = [str(i["name"]) for i in node if isinstance(i, dict) and "name" in i]
        message = f"no item named '{segment}' in {where}"
        hint = did_you_mean(str(segment), names) if names else f"{len(node)} items"
    else:
        message = f"{where} is {yamlout.scalar(node)}, so it has no '{segment}'"
        hint = f"set {where} first"
    return Problem(file, line, column, text, message, hint)


def _display(concrete: Path, model: Any) -> str:
    """The path with list items by name where they have one."""
    node = model
    text = ""
    for part in concrete:
        if isinstance(part, int) and isinstance(node, list):
            item = node[part]
            name = item.get("name") if isinstance(item, dict) else None
            text += f"[{name}]" if isinstance(name, str) else f"[{part}]"
        else:
            text = format_path((part,), text)
        node = node[part]
    return text


def _present(data: Any, concrete: Path) -> bool:
    node = data
    for part in concrete:
        in_map = isinstance(node, dict) and isinstance(part, str) and part in node
        in_list = isinstance(node, list) and isinstance(part, int) and part < len(node)
        if not (in_map or in_list):
            return False
        node = node[part]
    return True


def _patched_parts(concrete: Path, layers: _Layers) -> list[Path]:
    """Leaves below `concrete` whose merged position lies inside the patch."""
    parts = []
    for path, position in sorted(layers.positions.values.items(), key=lambda kv: kv[1]):
        below = len(path) > len(concrete) and path[:len(concrete)] == concrete
        if below and position in layers.patch_positions and _is_leaf(layers.data, path):
            parts.append(path[len(concrete):])
    return parts


def _is_leaf(data: Any, path: Path) -> bool:
    node = data
    for part in path:
        node = node[part]
    return not isinstance(node, dict | list)
