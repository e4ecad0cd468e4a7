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

from .accelerators import accelerator_problems
from .emit.argocd import IN_CLUSTER, IN_CLUSTER_NAME
from .limits import environment_name_problems, map_limit_problems
from .litellm_keys import unknown_key_problems
from .loader import Document, Positions
from .model_sources import shared_source_warnings, source_problems
from .patch import apply_patch
from .pod_options import (
    autoscaling_problems,
    grace_warnings,
    pod_option_problems,
    resource_problems,
    scaling_warnings,
)
from .problems import Path, Problem, SpecError, did_you_mean
from .secret_values import (
    NOT_A_SECRET,
    SECRETISH,
    secret_paths,
    spec_secret_findings,
    unused_allowances,
)
from .spec import (
    API_VERSION,
    DEFAULT_NAMESPACE,
    KIND,
    Litellm,
    ModelAPI,
    ModelStack,
    NetworkAddress,
)

DEFAULT_ENVIRONMENT = "default"
_SECRETISH = SECRETISH
_OBJECT_SUFFIX = "-config"  # the longest suffix the emitters add to `<stack>-<name>`
# Routing strategies that count requests, usage or latency in the router's memory: with
# more than one proxy replica each one counts alone unless they share Redis.
STATEFUL_STRATEGIES = ("least-busy", "usage-based-routing", "usage-based-routing-v2",
                       "latency-based-routing")
# litellm_params the compiler computes from backend/url/apiKeySecret.
COMPUTED_PARAMS = ("model", "api_base", "api_key")


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


def _at(data: Any, path: Path) -> Any:
    for part in path:
        data = data[part]
    return data


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


def served_models(api: ModelAPI) -> list[str]:
    """The model names clients can send to this modelAPI."""
    if api.vllm:
        return list(dict.fromkeys([api.vllm.served_name,
                                   *(a.name for a in api.vllm.lora_adapters)]))
    if api.ollama:
        return list(api.ollama.models)
    if api.external:
        return list(api.external.models)
    assert api.litellm
    return list(dict.fromkeys(m.name for m in api.litellm.models))


def _flux_destination_problems(stack: ModelStack, positions: Positions) -> Iterator[Problem]:
    """An environment that Argo CD sends to another cluster must go there under Flux too:
    without a kubeconfig, Flux would apply it into its own cluster."""
    gitops = stack.spec.gitops
    if gitops is None or not gitops.flux.enabled:
        return
    for i, environment in enumerate(stack.spec.environments):
        destination = environment.destination
        cluster = destination.server or destination.name
        if cluster in (IN_CLUSTER, IN_CLUSTER_NAME):
            continue  # Argo CD's own cluster, named explicitly
        if cluster and destination.kube_config_secret is None:
            yield positions.problem(
                ("spec", "environments", i, "destination"),
                f"environment '{environment.name}' goes to cluster {cluster} under Argo CD, "
                "but Flux has no kubeconfig for it and would apply it into its own cluster",
                "add destination.kubeConfigSecret: {name, key} of a Secret in the Flux "
                "namespace holding that cluster's kubeconfig, or disable gitops.flux")


def _cross_reference_problems(stack: ModelStack, positions: Positions,
                              unknown: frozenset[str] = frozenset()) -> Iterator[Problem]:
    """Rules across fields. `unknown`: names of items set aside for field errors; a
    reference to one is not reported again."""
    spec = stack.spec
    yield from _unique_names("modelAPIs", [a.name for a in spec.model_apis], positions)
    yield from _unique_names("agents", [a.name for a in spec.agents], positions)
    yield from _unique_names("environments", [e.name for e in spec.environments], positions)
    yield from environment_name_problems(stack, positions)
    for field, names in (("modelAPIs", [a.name for a in spec.model_apis]),
                         ("agents", [a.name for a in spec.agents])):
        yield from _reserved_names(field, names, positions)
    apis = {a.name: a for a in spec.model_apis}
    env_names = [e.name for e in spec.environments]
    for i, environment in enumerate(spec.environments):
        others = [n for n in env_names if n != environment.name]
        for j, other in enumerate(environment.depends_on):
            if other not in others and other not in unknown:
                yield positions.problem(("spec", "environments", i, "dependsOn", j),
                                        f"no other environment named '{other}'",
                                        did_you_mean(other, others))
    yield from _flux_destination_problems(stack, positions)
    argocd = spec.gitops.argocd if spec.gitops else None
    if argocd and argocd.create_project and argocd.project == "default":
        yield positions.problem(("spec", "gitops", "argocd", "project"),
                                "createProject would overwrite Argo CD's shared 'default' "
                                "project", "name a project of the stack's own")
    for i, api in enumerate(spec.model_apis):
        yield from _name_length(stack.metadata.name, api.name, ("spec", "modelAPIs", i, "name"),
                                positions)
        gpu = api.vllm.gpu if api.vllm else api.ollama.gpu if api.ollama else None
        if gpu and gpu.count and gpu.accelerator:
            yield from accelerator_problems(gpu.accelerator, gpu.resource,
                                             spec.cluster.gpu_node_labels,
                                             ("spec", "modelAPIs", i, api.kind, "gpu"), positions)
        if api.vllm:
            yield from _shared_claim_problems(api, ("spec", "modelAPIs", i, "vllm"), positions)
            yield from _group_problems(api, ("spec", "modelAPIs", i, "vllm"), positions)
        if api.litellm:
            yield from _litellm_problems(api, ("spec", "modelAPIs", i, "litellm"), apis,
                                         positions, spec.cluster.network_policies, unknown,
                                         frozenset(spec.not_secrets))
        if api.vllm:
            yield from source_problems(api.vllm, ("spec", "modelAPIs", i, "vllm"), positions)
        workload = api.vllm or api.litellm or api.ollama
        if workload is not None:
            at_kind: Path = ("spec", "modelAPIs", i, api.kind)
            yield from pod_option_problems(workload, api.kind, at_kind, spec, positions)
            yield from resource_problems(workload.resources, at_kind, positions)
            yield from autoscaling_problems(api, at_kind, spec, positions)
    for i, agent in enumerate(spec.agents):
        at: Path = ("spec", "agents", i)
        yield from _name_length(stack.metadata.name, agent.name, (*at, "name"), positions)
        if agent.name in apis:
            yield positions.problem((*at, "name"), f"'{agent.name}' is also a modelAPI name",
                                    "agents and modelAPIs share object names; rename one")
        target = apis.get(agent.model_api)
        if agent.model_api in unknown:
            pass
        elif target is None:
            yield positions.problem((*at, "modelAPI"), f"no modelAPI named '{agent.model_api}'",
                                    did_you_mean(agent.model_api, list(apis)))
        elif agent.model not in served_models(target) and agent.model not in unknown:
            yield positions.problem(
                (*at, "model"), f"modelAPI '{target.name}' does not serve '{agent.model}'",
                did_you_mean(agent.model, served_models(target)))
        yield from pod_option_problems(agent, "agent", at, spec, positions)
        yield from resource_problems(agent.resources, at, positions)
        yield from autoscaling_problems(agent, at, spec, positions)
        yield from _agent_key_problems(agent, target, at, positions)


def _agent_key_problems(agent: Any, target: ModelAPI | None, at: Path, positions: Positions
                        ) -> Iterator[Problem]:
    """An agent on a LiteLLM proxy with a master key needs its own key, or an opt-in."""
    proxy = target.litellm if target else None
    if agent.use_master_key and not (proxy and proxy.master_key_secret):
        yield positions.problem((*at, "useMasterKey"),
                                "useMasterKey applies only to an agent on a LiteLLM proxy "
                                "with masterKeySecret", "remove it")
    elif (proxy and proxy.master_key_secret and agent.api_key_secret is None
          and not agent.use_master_key):
        assert target is not None
        yield positions.problem(
            (*at, "modelAPI"),
            f"LiteLLM proxy '{target.name}' needs a key, and its master key is its admin "
            "credential",
            "set apiKeySecret: {name: <secret>, key: <key>} to the agent's own (virtual) key, "
            "or useMasterKey: true to hand it the master key")


def _shared_claim_problems(api: ModelAPI, at: Path, positions: Positions
                           ) -> Iterator[Problem]:
    """Replicas on one existing single-writer claim: those scheduled on another node hang in
    ContainerCreating (Multi-Attach error). A claim of our own becomes one per replica."""
    assert api.vllm
    cache = api.vllm.cache
    scaling = api.vllm.autoscaling
    most = max(api.vllm.replicas, scaling.max_replicas if scaling else 0)
    if cache.existing_claim is None or cache.access_mode == "ReadWriteMany" or most <= 1:
        return
    where: Path = (*at, "autoscaling", "maxReplicas") if scaling and (
        scaling.max_replicas >= api.vllm.replicas) else (*at, "replicas")
    yield positions.problem(
        where, f"{most} replicas would share the existing claim '{cache.existing_claim}', "
        f"which is {cache.access_mode}: replicas on other nodes never start (Multi-Attach)",
        "use a ReadWriteMany claim (and cache.accessMode: ReadWriteMany), or drop "
        "cache.existingClaim for a claim per replica, or run 1 replica")


def _group_problems(api: ModelAPI, at: Path, positions: Positions) -> Iterator[Problem]:
    """A replica on several nodes (a LeaderWorkerSet group) splits the model over GPUs, and
    its pods sit on different nodes: they cannot share a claim only one node mounts."""
    assert api.vllm
    vllm = api.vllm
    if vllm.nodes <= 1:
        return
    if vllm.gpu.count == 0:
        yield positions.problem((*at, "nodes"),
                                f"nodes: {vllm.nodes} splits the model over the GPUs of "
                                "several nodes, but gpu.count is 0",
                                "set gpu.count to the GPUs of one node (8 on an 8-GPU node), "
                                "or nodes: 1 for CPU mode")
    if vllm.inference_pool is not None:
        yield positions.problem((*at, "inferencePool"),
                                "an InferencePool of multi-node groups is not supported: its "
                                "endpoint picker would pick worker pods that serve nothing",
                                "remove inferencePool, or serve the model on one node "
                                "(nodes: 1)")
    cache = vllm.cache
    if cache.existing_claim is not None and cache.access_mode != "ReadWriteMany":
        yield positions.problem(
            (*at, "cache", "existingClaim"),
            f"the {vllm.nodes} pods of a group run on {vllm.nodes} nodes and cannot share "
            f"the {cache.access_mode} claim '{cache.existing_claim}' (Multi-Attach)",
            "use a ReadWriteMany claim (and cache.accessMode: ReadWriteMany), or drop "
            "cache.existingClaim: each pod of the group then caches the model on its own node")


def _unique_names(field: str, names: list[str], positions: Positions) -> Iterator[Problem]:
    seen: dict[str, int] = {}
    for i, name in enumerate(names):
        if name in seen:
            yield positions.problem(("spec", field, i, "name"), f"duplicate name '{name}'",
                                    f"{field}[{seen[name]}] already uses it; names are unique")
        seen.setdefault(name, i)


# Names of the stack's own objects (`<stack>-<suffix>`): NetworkPolicies keyed by edge and
# ServiceAccounts per role, which a workload's own objects (`<stack>-<name>`) must not take.
RESERVED_NAMES = frozenset({"agents", "metrics", "default-deny", "allow-dns", "agent-sa",
                            "vllm-sa", "litellm-sa", "ollama-sa"})
RESERVED_PREFIXES = ("to-", "calls-")


def _reserved_names(field: str, names: list[str], positions: Positions) -> Iterator[Problem]:
    for i, name in enumerate(names):
        if name in RESERVED_NAMES or name.startswith(RESERVED_PREFIXES):
            yield positions.problem(
                ("spec", field, i, "name"),
                f"'{name}' is reserved for the stack's own objects (NetworkPolicies keyed by "
                "edge, ServiceAccounts per role)",
                f"rename it; reserved: {', '.join(sorted(RESERVED_NAMES))} and names starting "
                f"with {' or '.join(RESERVED_PREFIXES)}")


def _name_length(stack: str, name: str, at: Path, positions: Positions) -> Iterator[Problem]:
    longest = f"{stack}-{name}{_OBJECT_SUFFIX}"
    if len(longest) > 63:
        yield positions.problem(at, f"object names such as '{longest}' exceed 63 characters",
                                "shorten this name or metadata.name")


def _litellm_problems(api: ModelAPI, at: Path, apis: dict[str, ModelAPI],
                      positions: Positions, network_policies: bool,
                      unknown: frozenset[str] = frozenset(),
                      allowed: frozenset[str] = frozenset()) -> Iterator[Problem]:
    assert api.litellm
    aliases = served_models(api)
    for i, entry in enumerate(api.litellm.models):
        if entry.backend is None or entry.backend in unknown:
            continue
        where: Path = (*at, "models", i)
        backend = apis.get(entry.backend)
        if backend is None:
            yield positions.problem((*where, "backend"), f"no modelAPI named '{entry.backend}'",
                                    did_you_mean(entry.backend, [n for n in apis if n != api.name]))
        elif backend.litellm:
            yield positions.problem((*where, "backend"),
                                    f"'{entry.backend}' is a LiteLLM proxy itself",
                                    "route to vllm, ollama or external modelAPIs")
        else:
            wanted = entry.model or entry.name
            if wanted not in served_models(backend):
                field = "model" if entry.model else "name"
                yield positions.problem(
                    (*where, field), f"modelAPI '{backend.name}' does not serve '{wanted}'",
                    did_you_mean(wanted, served_models(backend)) or "set model: to its id")
    litellm = api.litellm
    for i, entry in enumerate(litellm.models):
        for key in entry.params:
            if key in COMPUTED_PARAMS:
                yield positions.problem(
                    (*at, "models", i, "params", key),
                    f"litellm_params.{key} is computed from backend, url and apiKeySecret",
                    "remove it here; set backend/url, model or apiKeySecret", key=True)
        yield from _secret_problems(entry.params, (*at, "models", i, "params"), positions,
                                    allowed)
    escape, allowed_keys = (*at, "allowUnknownKeys"), frozenset(litellm.allow_unknown_keys)
    for i, entry in enumerate(litellm.models):
        yield from unknown_key_problems(
            {k: v for k, v in entry.params.items() if k not in COMPUTED_PARAMS},
            "litellm_params", (*at, "models", i, "params"), positions, allowed_keys, escape)
    yield from unknown_key_problems(litellm.settings, "litellm_settings", (*at, "settings"),
                                    positions, allowed_keys, escape)
    yield from _secret_problems(litellm.settings, (*at, "settings"), positions, allowed)
    yield from _scaling_problems(litellm, at, positions)
    if litellm.database is not None:
        yield from _address_problems(litellm.database, (*at, "database"), positions)
        if litellm.database_url_secret is None:
            yield positions.problem((*at, "database"), "database without databaseUrlSecret",
                                    "add databaseUrlSecret: the Secret holding DATABASE_URL")
    elif litellm.database_url_secret is not None and network_policies:
        yield positions.problem(
            (*at, "databaseUrlSecret"),
            "the NetworkPolicy needs the database's address to let the proxy reach it",
            "add database: {host: <IP or Service>, port: 5432} or {cidr: <range>, port: 5432}")
    if litellm.router.redis is not None:
        yield from _address_problems(litellm.router.redis, (*at, "router", "redis"), positions)
    for alias, targets in api.litellm.router.fallbacks.items():
        where = (*at, "router", "fallbacks", alias)
        if alias not in aliases and alias not in unknown:
            yield positions.problem(where, f"fallback for unknown model '{alias}'",
                                    did_you_mean(alias, aliases), key=True)
        for j, target in enumerate(targets):
            if target in unknown:
                continue
            if target not in aliases:
                yield positions.problem((*where, j), f"fallback to unknown model '{target}'",
                                        did_you_mean(target, aliases))
            elif target == alias:
                yield positions.problem((*where, j), f"'{alias}' falls back to itself",
                                        "name another model")


def _secret_problems(value: dict[str, Any], at: Path, positions: Positions,
                     allowed: frozenset[str]) -> Iterator[Problem]:
    for path, key in secret_paths(value):
        if _at(value, path) in allowed:
            continue
        yield positions.problem(
            (*at, *path), f"'{key}' holds what looks like a secret value",
            "secret values never go in the spec: write os.environ/<VARIABLE> and set the "
            "variable from a Secret" + NOT_A_SECRET)


def scaled_out(litellm: Litellm) -> bool:
    """More than one proxy replica may run at once (fixed replicas or an autoscaler)."""
    autoscaling = litellm.autoscaling  # the HPA's bounds, when declared
    return litellm.replicas > 1 or bool(autoscaling and autoscaling.max_replicas > 1)


def _scaling_problems(litellm: Litellm, at: Path, positions: Positions) -> Iterator[Problem]:
    router = litellm.router
    if router.strategy in STATEFUL_STRATEGIES and router.redis is None and scaled_out(litellm):
        yield positions.problem(
            (*at, "router", "strategy"),
            f"{router.strategy} routing keeps its counts in each replica's memory, and this "
            "proxy runs more than one replica",
            "add router.redis: {host, port, passwordSecret} so replicas share them, or use "
            "simple-shuffle")


def _address_problems(address: NetworkAddress, at: Path, positions: Positions
                      ) -> Iterator[Problem]:
    if address.cidr is None and address.ip_network() is None \
            and address.service_namespace() is None:
        yield positions.problem(
            (*at, "host"),
            f"'{address.host}' is a DNS name outside the cluster, which a NetworkPolicy "
            "cannot match",
            "add cidr: the address range it resolves to (e.g. the managed service's subnet)")


def load_spec(path: str, source: bytes | None = None) -> ValidatedSpec:
    """Load and validate the spec at `path`; `source`, when given, is its bytes as already
    read (so that what is compiled is exactly what the caller hashed)."""
    from .loader import load_bytes, load_file
    from .problems import display_name

    return validate_document(load_file(path) if source is None
                             else load_bytes(source, display_name(path)))
