"""The rules that span fields, after each model checked its own: references between
agents, modelAPIs and routes, unique and reserved names, name lengths against what the
emitters add, LiteLLM routes and settings, scaling, and Secret references."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ..emit.argocd import IN_CLUSTER, IN_CLUSTER_NAME
from ..problems import Path, Problem, did_you_mean
from ..resolve.limits import environment_name_problems
from ..resolve.model_sources import source_problems
from ..resolve.pod_options import (
    autoscaling_problems,
    pod_option_problems,
    resource_problems,
)
from .accelerators import accelerator_problems
from .backends import Litellm, ModelAPI
from .fields import NetworkAddress
from .litellm_keys import unknown_key_problems
from .loader import Positions
from .model import ModelStack
from .secret_values import (
    NOT_A_SECRET,
    secret_paths,
)

# Routing strategies that count requests, usage or latency in the router's memory: with
# more than one proxy replica each one counts alone unless they share Redis.
_OBJECT_SUFFIX = "-config"  # the longest suffix the emitters add to `<stack>-<name>`


def _at(data: Any, path: Path) -> Any:
    for part in path:
        data = data[part]
    return data


STATEFUL_STRATEGIES = ("least-busy", "usage-based-routing", "usage-based-routing-v2",
                       "latency-based-routing")


# litellm_params the compiler computes from backend/url/apiKeySecret.
COMPUTED_PARAMS = ("model", "api_base", "api_key")


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
