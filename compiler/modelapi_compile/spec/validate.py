"""Validate loaded data into spec models: field errors from pydantic, then the rules that span
fields (references, uniqueness, secrets), all reported at once with positions.
"""

from __future__ import annotations

import copy
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from pydantic import BaseModel, ValidationError

from ..problems import Path, Problem, SpecError, did_you_mean
from ..resolve.limits import map_limit_problems
from ..resolve.model_sources import shared_source_warnings
from ..resolve.pod_options import (
    grace_warnings,
    scaling_warnings,
)
from .fields import DEFAULT_NAMESPACE
from .loader import Document, Positions
from .model import API_VERSION, KIND, ModelStack
from .patch import apply_patch
from .rules import _at, _cross_reference_problems
from .secret_values import (
    SECRETISH,
    spec_secret_findings,
    unused_allowances,
)

DEFAULT_ENVIRONMENT = "default"
_SECRETISH = SECRETISH


@dataclass(frozen=True)
class EnvironmentSpec:
    """One environment: its name, namespace and the spec with its patch applied."""

    name: str
    namespace: str
    stack: ModelStack

    @property
    def shared_namespace(self) -> bool:
        """Whether other workloads live in the namespace: as the (patched) spec says, else
        only for `default`."""
        declared = self.stack.spec.shared_namespace
        return self.namespace == DEFAULT_NAMESPACE if declared is None else declared


@dataclass(frozen=True)
class ValidatedSpec:
    file: str
    stack: ModelStack  # the spec as written, no patch applied
    environments: tuple[EnvironmentSpec, ...]
    positions: Positions
    warnings: tuple[Problem, ...] = ()  # valid but risky choices the user opted into

    def origin(self, name: str) -> tuple[Path, tuple[int, int]] | None:
        """Where the modelAPI or agent called `name` is declared in the spec."""
        path = self._declaration_paths.get(name)
        return (path, self.positions.locate(path)) if path else None

    @cached_property
    def _declaration_paths(self) -> dict[str, Path]:
        spec = self.stack.spec
        paths: dict[str, Path] = {}
        for field, names in (("agents", [a.name for a in spec.agents]),
                             ("modelAPIs", [a.name for a in spec.model_apis])):
            paths.update({name: ("spec", field, index) for index, name in enumerate(names)})
        return paths


def validate_document(document: Document) -> ValidatedSpec:
    """Every problem whose location can be known, in one round: field errors; reference
    errors among the fields that did parse (items that failed are set aside, and references
    to them are not reported twice); each environment's patch errors and the field and
    reference errors of its merged spec."""
    data, positions = document.data, document.positions
    if not isinstance(data, dict):
        raise SpecError([positions.problem((), "the document must be a mapping",
                                           f"start with 'apiVersion: {API_VERSION}'")])
    _check_header(data, positions)
    stack, problems = _validate_leniently(data, positions)
    secrets = list(_spec_secret_problems(data, positions))
    problems.extend(map_limit_problems(data, positions))
    environments = []
    warnings = set(_warnings(stack, positions)) if stack is not None else set()
    if stack is not None and not stack.spec.environments:
        environments.append(EnvironmentSpec(DEFAULT_ENVIRONMENT, stack.spec.namespace, stack))
    raw = data.get("spec", {}).get("environments") if isinstance(data.get("spec"), dict) else None
    for index, env in enumerate(raw if isinstance(raw, list) else []):
        if not isinstance(env, dict) or not isinstance(env.get("name"), str):
            continue  # a field error already says what is wrong with it
        try:
            merged, merged_positions = apply_patch(data, positions, index)
        except SpecError as error:
            problems.extend(error.problems)
            continue
        except (KeyError, TypeError, AttributeError):
            continue  # a spec too broken to merge onto: its field errors say why
        env_stack, env_problems = _validate_leniently(merged, merged_positions)
        problems.extend(env_problems)
        problems.extend(map_limit_problems(merged, merged_positions))
        if env_stack is not None and stack is not None:
            warnings.update(_warnings(env_stack, merged_positions))
            namespace = env.get("namespace") if isinstance(env.get("namespace"), str) else None
            environments.append(EnvironmentSpec(env["name"], namespace or stack.spec.namespace,
                                                env_stack))
    # Once per place: a value a field's own rule refused is not reported again as a shape.
    taken = {(p.line, p.column) for p in problems}
    problems.extend(p for p in secrets if (p.line, p.column) not in taken)
    if problems or stack is None:
        raise SpecError(problems)
    return ValidatedSpec(positions.file, stack, tuple(environments), positions,
                         tuple(sorted(warnings)))


def _spec_secret_problems(data: dict[str, Any], positions: Positions) -> Iterator[Problem]:
    """Every string of the document (environment patches included) that looks like a secret
    value, and every notSecrets entry that accepts nothing."""
    for path, message, hint in spec_secret_findings(data):
        yield positions.problem(path, message, hint)
    for path, value in unused_allowances(data):
        yield positions.problem(path, f"'{value}' is not a value the secret check refuses",
                                "remove it from notSecrets")


def _warnings(stack: ModelStack, positions: Positions) -> Iterator[Problem]:
    apis = {a.name: a for a in stack.spec.model_apis}
    yield from _lifecycle_warnings(stack, positions)
    for i, agent in enumerate(stack.spec.agents):
        target = apis.get(agent.model_api)
        proxy = target.litellm if target else None
        if (agent.api_key_secret and proxy and proxy.master_key_secret
                and not proxy.database_url_secret):
            yield positions.problem(
                ("spec", "agents", i, "apiKeySecret"),
                f"LiteLLM proxy '{agent.model_api}' has no database, and LiteLLM looks up "
                "every key but its master key there: this key is refused",
                "give the proxy databaseUrlSecret and database, and mint the agent a virtual "
                "key")
        if (agent.use_master_key and agent.api_key_secret is None and target
                and target.litellm and target.litellm.master_key_secret):
            yield positions.problem(
                ("spec", "agents", i, "useMasterKey"),
                f"agent '{agent.name}' gets the master key of LiteLLM proxy '{target.name}', "
                "its admin credential",
                "mint a virtual key for the agent and set apiKeySecret instead")


def _lifecycle_warnings(stack: ModelStack, positions: Positions) -> Iterator[Problem]:
    """Settings that have no effect, requests a grace period cuts, shared claims, and a
    /metrics left open to the public."""
    spec = stack.spec
    for i, api in enumerate(spec.model_apis):
        at: Path = ("spec", "modelAPIs", i, api.kind)
        yield from scaling_warnings(api, at, positions)
        yield from grace_warnings(api, at, spec, positions)
        if api.vllm:
            yield from shared_source_warnings(api.vllm, at, positions)
        proxy = api.litellm
        if (proxy and spec.monitoring.enabled and proxy.expose and proxy.master_key_secret
                and proxy.metrics_key_secret is None):
            yield positions.problem(
                (*at, "expose"),
                "/metrics (model names, key aliases, teams, spend) is open on the exposed "
                "host: without metricsKeySecret the proxy checks no key there, since "
                "Prometheus is never handed the master key",
                "set metricsKeySecret to a virtual key of the proxy's database for Prometheus")


def _validate_leniently(data: dict[str, Any], positions: Positions
                        ) -> tuple[ModelStack | None, list[Problem]]:
    """The stack and its problems. On field errors, the failing fields (or, when they are
    required, their list items) are set aside and the rest validated again, so reference
    errors among what did parse are found too; None when nothing usable is left."""
    try:
        stack = ModelStack.model_validate(data)
    except ValidationError as error:
        problems = _problems_from_pydantic(error, data, positions)
    else:
        return stack, list(_cross_reference_problems(stack, positions))
    pruned, pruned_positions = copy.deepcopy(data), _copy_positions(positions)
    unknown: set[str] = set()
    for _ in range(_MAX_PRUNING_ROUNDS):
        try:
            stack = ModelStack.model_validate(pruned)
        except ValidationError as error:
            if not _prune(pruned, pruned_positions, error, unknown):
                return None, problems
            continue
        problems += _cross_reference_problems(stack, pruned_positions, frozenset(unknown))
        return stack, problems
    return None, problems


_MAX_PRUNING_ROUNDS = 25


def _copy_positions(positions: Positions) -> Positions:
    return Positions(positions.file, dict(positions.values), dict(positions.keys),
                     dict(positions.origins))


def _prune(data: dict[str, Any], positions: Positions, error: ValidationError,
           unknown: set[str]) -> bool:
    """Set aside what each error is about; False when an error is outside any list item
    and not optional (nothing left to validate)."""
    items: set[Path] = set()
    fields: set[Path] = set()
    for item in error.errors(include_url=False):
        path, _ = _data_path(data, item["loc"])
        in_item = [i for i, part in enumerate(path) if isinstance(part, int)]
        if item["type"] == "missing" or not path or path[-1] == "name":
            if not in_item:
                if len(path) <= 2:  # spec itself, or a required top-level field
                    return False
                fields.add(path)  # an optional section such as spec.gitops: drop it
                continue
            items.add(path[:in_item[-1] + 1])
        else:
            fields.add(path)
    for path in sorted(fields, reverse=True):
        parent = _at(data, path[:-1])
        if isinstance(parent, dict):
            parent.pop(path[-1], None)
        elif isinstance(parent, list) and path not in items:
            items.add(path)
    for path in sorted(items, reverse=True):  # later indices first: earlier ones stay put
        parent = _at(data, path[:-1])
        if isinstance(parent, list) and isinstance(path[-1], int) and path[-1] < len(parent):
            removed = parent.pop(path[-1])
            if isinstance(removed, dict) and isinstance(removed.get("name"), str):
                unknown.add(removed["name"])
            _shift_positions(positions, path)
    return bool(items or fields)


def _shift_positions(positions: Positions, removed: Path) -> None:
    """Re-key the positions after list item `removed` left its list."""
    depth = len(removed) - 1
    tables: tuple[dict[Path, Any], ...] = (positions.values, positions.keys, positions.origins)
    for table in tables:
        moved = {}
        for path in list(table):
            if len(path) > depth and path[:depth] == removed[:depth]:
                index, gone = path[depth], removed[depth]
                if isinstance(index, int) and isinstance(gone, int) and index >= gone:
                    position = table.pop(path)
                    if index > gone:
                        key = (*path[:depth], index - 1, *path[depth + 1:])
                        moved[key] = position
        table.update(moved)


def _check_header(data: dict[str, Any], positions: Positions) -> None:
    problems = []
    if data.get("apiVersion") != API_VERSION:
        problems.append(positions.problem(
            ("apiVersion",), f"apiVersion must be {API_VERSION} (found {data.get('apiVersion')!r})",
            f"write 'apiVersion: {API_VERSION}'"))
    if data.get("kind") != KIND:
        problems.append(positions.problem(
            ("kind",), f"kind must be {KIND} (found {data.get('kind')!r})",
            f"write 'kind: {KIND}'"))
    if problems:
        raise SpecError(problems)


# --- pydantic errors -> problems -------------------------------------------------------------


def _problems_from_pydantic(error: ValidationError, data: Any, positions: Positions
                            ) -> list[Problem]:
    messages: dict[tuple[Path, bool], list[str]] = {}
    hints: dict[tuple[Path, bool], str] = {}
    for item in error.errors(include_url=False):
        path, leftover = _data_path(data, item["loc"])
        kind = item["type"]
        if kind == "missing" and leftover:
            path, is_key = (*path, leftover[-1]), False
            message, hint = f"required field '{leftover[-1]}' is missing", "add it"
        elif kind == "extra_forbidden":
            message, is_key = f"unknown field '{path[-1]}'", True
            hint = _unknown_field_hint(path)
        else:
            message, is_key = _clean_message(item["msg"], item.get("ctx")), False
            hint = ""
        slot = (path, is_key)
        messages.setdefault(slot, [])
        if message not in messages[slot]:
            messages[slot].append(message)
        hints.setdefault(slot, hint)
    return [positions.problem(path, " or ".join(msgs), hints[(path, is_key)], key=is_key)
            for (path, is_key), msgs in messages.items()]


def _data_path(data: Any, loc: tuple[int | str, ...]) -> tuple[Path, tuple[int | str, ...]]:
    """Split pydantic's `loc` into the part that exists in the data and the rest; union
    member tags (`str`, `function-after[...]`) that pydantic inserts are dropped."""
    path: list[int | str] = []
    node = data
    for i, part in enumerate(loc):
        in_map = isinstance(node, dict) and isinstance(part, str) and part in node
        in_list = isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        if in_map or in_list:
            node = node[part]
            path.append(part)
        elif isinstance(node, dict) and isinstance(part, str) and not _is_union_tag(part):
            return tuple(path), tuple(loc[i:])
    return tuple(path), ()


def _is_union_tag(part: str) -> bool:
    return "[" in part or part in {"str", "int", "float", "bool", "list", "dict", "none"}


def _clean_message(message: str, ctx: dict[str, Any] | None) -> str:
    for prefix in ("Value error, ", "Assertion failed, "):
        if message.startswith(prefix):
            return message[len(prefix):]
    if message.startswith("Input should be") and ctx and "expected" in ctx:
        return f"must be {ctx['expected']}"
    return message.replace("Input should be", "must be")


def _unknown_field_hint(path: Path) -> str:
    name = str(path[-1])
    known = _known_fields(path[:-1])
    if _SECRETISH.search(name) and not name.endswith("Secret"):
        refs = [k for k in known if k.endswith("Secret")]
        target = refs[0] if refs else "a *Secret field"
        return (f"secret values never go in the spec; reference a Kubernetes Secret with "
                f"{target}: {{name: <secret>, key: <key>}}")
    return did_you_mean(name, known)


def _known_fields(path: Path) -> list[str]:
    """The camelCase field names of the model that sits at `path` of a ModelStack."""
    model: type[BaseModel] | None = ModelStack
    for part in path:
        if model is None:
            return []
        if isinstance(part, int):
            continue
        field = next((f for n, f in model.model_fields.items() if (f.alias or n) == part), None)
        model = _model_in(field.annotation) if field else None
    if model is None:
        return []
    return [f.alias or n for n, f in model.model_fields.items()]


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin is dict:
        return None
    if origin in (list, typing.Union, types.UnionType, typing.Annotated) or origin is not None:
        for arg in typing.get_args(annotation):
            found = _model_in(arg)
            if found:
                return found
    return None


# --- rules that span fields ------------------------------------------------------------------


def load_spec(path: str, source: bytes | None = None) -> ValidatedSpec:
    """Load and validate the spec at `path`; `source`, when given, is its bytes as already
    read (so that what is compiled is exactly what the caller hashed)."""
    from ..problems import display_name
    from .loader import load_bytes, load_file

    return validate_document(load_file(path) if source is None
                             else load_bytes(source, display_name(path)))
