"""Resolve a validated spec into one `ResolvedStack` per environment: defaults applied,
references bound to in-cluster endpoints, cluster conventions applied, network edges and
the LiteLLM configuration computed.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator
from typing import Literal

from ..emit import yamlout
from ..emit.monitoring import monitoring_values
from ..problems import Problem, SpecError
from ..spec.accelerators import ACCELERATORS
from ..spec.backends import Litellm, ModelAPI
from ..spec.fields import NetworkAddress, PodOptions, duration_seconds
from ..spec.model import ModelStack
from ..spec.validate import EnvironmentSpec, ValidatedSpec
from . import lifecycle, pod_contract, pod_security, vllm
from . import workloads as w
from .inference_pool import PICKER_IMAGE, pool_objects, pool_policies, pool_url, proxy_namespace
from .model import (
    BackingService,
    ChartValues,
    Endpoint,
    ExternalSecrets,
    GitOpsEnvironment,
    GitOpsPlan,
    K8s,
    ResolvedStack,
    RolloutCheck,
    SecretKey,
    Workload,
    calls_label,
    overlay_folders,
    selector_labels,
)
from .network import _graph, _network_rules, _scraper_peer, dns_peers, edge_policies
from .pod_options import longest_request


def resolve(validated: ValidatedSpec) -> dict[str, ResolvedStack]:
    """The base (spec as written, key "") and every environment, by environment name."""
    return {r.environment: r for r in resolve_environments(validated)}


def resolve_environments(validated: ValidatedSpec) -> Iterator[ResolvedStack]:
    """The base (environment "") first, then each environment, one at a time."""
    yield _resolve_environment(EnvironmentSpec("", validated.stack.spec.namespace,
                                               validated.stack))
    for env in validated.environments:
        yield _resolve_environment(env)


def _resolve_environment(env: EnvironmentSpec) -> ResolvedStack:
    stack = env.stack
    spec = stack.spec
    prefix = stack.metadata.name
    endpoints = {api.name: _endpoint(prefix, api, env.namespace) for api in spec.model_apis}
    graph = _graph(stack)
    workloads = {}
    for api in spec.model_apis:
        if api.external:
            continue
        cluster = _cluster(stack, api)
        network = _network_rules(api.name, stack, graph, endpoints)
        fullname = f"{prefix}-{api.name}"
        selector = selector_labels(prefix, api.name)
        karpenter = spec.cluster.gpu_node_labels == "karpenter"
        if api.vllm:
            workload = _drained(vllm.vllm_workload(fullname, api.vllm, cluster, network,
                                                spec.monitoring.enabled), api.vllm, stack, api)
            scaling = api.vllm.autoscaling
            # validate.py has checked that KEDA has a Prometheus to ask.
            autoscaler = (lifecycle.keda(scaling, spec.monitoring.prometheus_url or "",
                                 endpoints[api.name].url.removesuffix("/v1"),
                                 startup_budget=workload.progress_deadline_seconds,
                                 startup_seconds=duration_seconds(api.vllm.startup_timeout))
                          if scaling else None)
            if api.vllm.inference_pool is not None:
                workload = workload.model_copy(update={
                    "served_at": endpoints[api.name].url.removesuffix("/v1")})
            workloads[api.name] = lifecycle.with_disruption(
                lifecycle.with_pod_options(workload, api.vllm, selector, cluster, autoscaler),
                api.vllm, api.vllm.gpu.count, karpenter)
        elif api.ollama:
            workload = _drained(w.ollama_workload(fullname, api.ollama, cluster, network),
                                api.ollama, stack, api)
            workloads[api.name] = lifecycle.with_disruption(
                lifecycle.with_pod_options(workload, api.ollama, selector, cluster),
                api.ollama, api.ollama.gpu.count, karpenter)
        elif api.litellm:
            config = litellm_config(api, graph.apis, endpoints, spec.monitoring.enabled)
            workload = _drained(w.litellm_workload(fullname, api.litellm, config, cluster,
                                                   network, spec.monitoring.enabled),
                                api.litellm, stack, api)
            autoscaler = lifecycle.hpa(api.litellm.autoscaling) if api.litellm.autoscaling else None
            workloads[api.name] = lifecycle.with_pod_options(
                workload, api.litellm, selector, cluster, autoscaler)
    for agent in spec.agents:
        endpoint = endpoints[agent.model_api]
        env_vars: list[K8s] = [{"name": "MODEL_API_URL", "value": endpoint.url},
                               {"name": "MODEL_NAME", "value": agent.model}]
        key = ((agent.api_key_secret.name, agent.api_key_secret.key) if agent.api_key_secret
               else endpoint.api_key_secret)  # validate.py demands the opt-in for a master key
        if key:
            env_vars.append(w.secret_env("MODEL_API_KEY", key))
        cluster = _cluster(stack, None)
        workload = _drained(w.agent_workload(agent, env_vars, cluster,
                                             _network_rules(agent.name, stack, graph,
                                                            endpoints)), agent, stack, None)
        workloads[agent.name] = lifecycle.with_pod_options(
            workload, agent, selector_labels(prefix, agent.name), cluster,
            lifecycle.hpa(agent.autoscaling) if agent.autoscaling else None)
    for client, targets in graph.targets.items():
        workloads[client] = workloads[client].model_copy(
            update={"edge_labels": {calls_label(t): "true" for t in targets}})
    objects: list[K8s] = []
    policies = edge_policies(stack, graph, endpoints, workloads)
    for api in spec.model_apis:
        pool = api.vllm.inference_pool if api.vllm else None
        if pool is None:
            continue
        objects += pool_objects(prefix, api.name, pool, env.namespace,
                                _cluster(stack, None).image(PICKER_IMAGE),
                                longest_request(spec, api))
        policies |= pool_policies(prefix, api.name, pool, _scraper_peer(stack)
                                  if spec.monitoring.enabled else None)
    values = ChartValues(
        stack=prefix,
        network_policy=spec.cluster.network_policies,
        shared_namespace=env.shared_namespace,
        dns_peers=dns_peers(spec.cluster.dns_servers),
        network_policies=dict(sorted(policies.items())),
        monitoring=monitoring_values(prefix, env.namespace, spec.monitoring, workloads,
                                     pod_contract.VLLM_PORT),
        external_secrets=_external_secrets(stack, workloads),
        workloads=dict(sorted(workloads.items())),
        objects=objects,
    )
    return ResolvedStack(name=prefix, environment=env.name, namespace=env.namespace,
                         kubernetes_version=spec.kubernetes_version,
                         pod_security_level=pod_security.namespace_level(
                             pod_security.runs_as_root(workload.pod_security_context)
                             for workload in workloads.values()),
                         shared_namespace=env.shared_namespace, values=values,
                         backing_services=_backing_services(spec.model_apis))


def _backing_services(apis: list[ModelAPI]) -> tuple[BackingService, ...]:
    """The PostgreSQL and Redis each LiteLLM proxy connects to (the cluster provides them)."""
    found: list[BackingService] = []
    for api in apis:
        litellm = api.litellm
        if litellm is None:
            continue
        if litellm.database is not None and litellm.database_url_secret is not None:
            found.append(_backing("postgres", api.name, litellm.database, None))
        redis = litellm.router.redis
        if redis is not None:
            password = ((redis.password_secret.name, redis.password_secret.key)
                        if redis.password_secret else None)
            found.append(_backing("redis", api.name, redis, password))
    return tuple(found)


def _backing(kind: Literal["postgres", "redis"], client: str, address: NetworkAddress,
             password: tuple[str, str] | None) -> BackingService:
    return BackingService(kind=kind, client=client, host=address.host, port=address.port,
                          in_cluster=address.service_namespace() is not None,
                          password_secret=password)


def _drained(workload: Workload, options: PodOptions, stack: ModelStack,
             api: ModelAPI | None) -> Workload:
    """`workload` with the grace period and preStop hook that let it finish its requests."""
    longest = longest_request(stack.spec, api) if api else None
    return lifecycle.with_drain(workload, options, longest, stack.spec.kubernetes_version)


def _external_secrets(stack: ModelStack, workloads: dict[str, Workload]) -> ExternalSecrets:
    """One ExternalSecret per Secret the workloads read, when the spec names a store."""
    secrets = stack.spec.secrets
    if secrets.store is None:
        return ExternalSecrets()
    keys: dict[str, set[str]] = {}
    for workload in workloads.values():
        for container_env in [workload.env, *(s.get("env", []) for s in workload.sidecars)]:
            for var in container_env:
                ref = (var.get("valueFrom") or {}).get("secretKeyRef")
                if ref:
                    keys.setdefault(ref["name"], set()).add(ref["key"])
        if workload.metrics_secret:  # read by the ServiceMonitor, not by a pod
            keys.setdefault(workload.metrics_secret.name, set()).add(workload.metrics_secret.key)
        for volume in workload.volumes:  # Secret files with named keys (credentials files)
            secret = volume.get("secret") or {}
            if secret.get("secretName") and secret.get("items"):
                keys.setdefault(secret["secretName"], set()).update(
                    item["key"] for item in secret["items"])
    return ExternalSecrets(
        enabled=True, store_name=secrets.store.name, store_kind=secrets.store.kind,
        refresh_interval=secrets.refresh_interval, remote_key_prefix=secrets.remote_key_prefix,
        secrets={name: sorted(found) for name, found in sorted(keys.items())})


def _endpoint(prefix: str, api: ModelAPI, namespace: str) -> Endpoint:
    fullname = f"{prefix}-{api.name}"
    if api.external:
        secret = api.external.api_key_secret
        return Endpoint(url=api.external.url,
                        api_key_secret=(secret.name, secret.key) if secret else None)
    if api.vllm:
        secret = api.vllm.api_key_secret
        key = (secret.name, secret.key) if secret else None
        pool = api.vllm.inference_pool
        if pool is not None:
            return Endpoint(url=pool_url(pool, namespace, fullname), workload=api.name,
                            port=pod_contract.VLLM_PORT, api_key_secret=key,
                            gateway_namespace=proxy_namespace(pool))
        return Endpoint(url=f"http://{fullname}:{pod_contract.VLLM_PORT}/v1", workload=api.name,
                        port=pod_contract.VLLM_PORT, api_key_secret=key)
    if api.ollama:
        return Endpoint(url=f"http://{fullname}:{pod_contract.OLLAMA_PORT}/v1", workload=api.name,
                        port=pod_contract.OLLAMA_PORT)
    assert api.litellm
    secret = api.litellm.master_key_secret
    return Endpoint(url=f"http://{fullname}:{pod_contract.LITELLM_PORT}/v1", workload=api.name,
                    port=pod_contract.LITELLM_PORT,
                    api_key_secret=(secret.name, secret.key) if secret else None)


def _image_mirror(registry: str | None) -> Callable[[str], str]:
    if not registry:
        return lambda image: image

    def mirror(image: str) -> str:
        first, _, rest = image.partition("/")
        has_registry = rest and ("." in first or ":" in first or first == "localhost")
        path = rest if has_registry else (image if "/" in image else f"library/{image}")
        return f"{registry.rstrip('/')}/{path}"

    return mirror


def _cluster(stack: ModelStack, api: ModelAPI | None) -> pod_contract.Cluster:
    conventions = stack.spec.cluster
    labels: dict[str, str] = {}
    gpu = api.vllm.gpu if api and api.vllm else api.ollama.gpu if api and api.ollama else None
    convention = conventions.gpu_node_labels
    if gpu and gpu.count > 0 and gpu.accelerator and convention != "explicit":
        # validate.py has checked that the accelerator is in the table.
        labels.update(ACCELERATORS[gpu.accelerator][convention])
    return pod_contract.Cluster(gpu_node_labels=labels, storage_class=conventions.storage_class,
                     image=_image_mirror(conventions.image_registry),
                     image_pull_secrets=tuple(conventions.image_pull_secrets))


# --- LiteLLM config --------------------------------------------------------------------------


def _env_name(text: str) -> str:
    return re.sub(r"[^A-Z0-9]+", "_", text.upper()).strip("_")


# litellm_settings the proxy gets unless the spec's `settings` say otherwise:
# drop_params: OpenAI parameters a provider does not take (presence_penalty, logit_bias to
#   ollama_chat) are dropped instead of failing with 400 UnsupportedParamsError;
# disable_hf_tokenizer_download: no Hugging Face tokenizer download for llama-3-like model ids
#   (tens of seconds per request without internet, long enough to fail liveness probes).
LITELLM_SETTINGS_DEFAULTS: K8s = {"drop_params": True, "disable_hf_tokenizer_download": True}


def litellm_config(api: ModelAPI, apis: dict[str, ModelAPI], endpoints: dict[str, Endpoint],
                   metrics: bool) -> w.LitellmConfig:
    """The proxy's config.yaml text, the env vars that feed its `os.environ/` keys and the
    key Prometheus must send to /metrics (None when /metrics is open)."""
    assert api.litellm
    litellm = api.litellm
    key_env: dict[str, tuple[str, str]] = {}
    model_list = []
    for index, entry in enumerate(litellm.models):
        params: K8s = {}
        if entry.backend:
            backend = apis[entry.backend]
            endpoint = endpoints[entry.backend]
            model_id = entry.model or entry.name
            if backend.vllm:
                params = {"model": f"hosted_vllm/{model_id}", "api_base": endpoint.url}
            elif backend.ollama:
                params = {"model": f"ollama_chat/{model_id}",
                          "api_base": endpoint.url.removesuffix("/v1")}
            else:
                params = {"model": f"openai/{model_id}", "api_base": endpoint.url}
            if endpoint.api_key_secret:
                var = f"{_env_name(entry.backend)}_API_KEY"
                key_env[var] = endpoint.api_key_secret
                params["api_key"] = f"os.environ/{var}"
        else:
            assert entry.url and entry.provider
            params = {"model": f"{entry.provider}/{entry.model or entry.name}",
                      "api_base": entry.url}
            if entry.api_key_secret:
                var = f"MODEL_{index}_API_KEY"
                key_env[var] = (entry.api_key_secret.name, entry.api_key_secret.key)
                params["api_key"] = f"os.environ/{var}"
        params.update(sorted(entry.params.items()))  # validate.py keeps the computed keys out
        model_list.append({"model_name": entry.name, "litellm_params": params})
    router = litellm.router
    router_settings: K8s = {"routing_strategy": router.strategy,
                            "num_retries": router.num_retries, "timeout": router.timeout}
    if router.fallbacks:
        router_settings["fallbacks"] = [{k: list(v)} for k, v in router.fallbacks.items()]
    if router.redis:
        router_settings["redis_host"] = router.redis.host
        router_settings["redis_port"] = router.redis.port
        if router.redis.password_secret:
            router_settings["redis_password"] = "os.environ/ROUTER_REDIS_PASSWORD"
            key_env["ROUTER_REDIS_PASSWORD"] = (router.redis.password_secret.name,
                                         router.redis.password_secret.key)
    metrics_key = _metrics_key(litellm)
    settings = {**LITELLM_SETTINGS_DEFAULTS, **_metrics_settings(metrics, metrics_key),
                **litellm.settings}
    if metrics:
        given = settings.get("callbacks") or []
        callbacks = list(given) if isinstance(given, list) else [given]
        settings["callbacks"] = callbacks + [c for c in ["prometheus"] if c not in callbacks]
    config: K8s = {"model_list": model_list, "router_settings": router_settings,
                   "litellm_settings": settings}
    general: K8s = {}
    env: list[K8s] = []
    if litellm.master_key_secret:
        general["master_key"] = "os.environ/LITELLM_MASTER_KEY"
        env.append(w.secret_env("LITELLM_MASTER_KEY", (litellm.master_key_secret.name,
                                                       litellm.master_key_secret.key)))
    if litellm.database_url_secret:
        general["database_url"] = "os.environ/DATABASE_URL"
        env.append(w.secret_env("DATABASE_URL", (litellm.database_url_secret.name,
                                                 litellm.database_url_secret.key)))
    if general:
        config["general_settings"] = general
    env += [w.secret_env(name, secret) for name, secret in sorted(key_env.items())]
    authenticated = metrics and metrics_key is not None and bool(
        settings.get("require_auth_for_metrics_endpoint"))
    return w.LitellmConfig(yamlout.dump(config), env,
                           metrics_key if authenticated else None)


def _metrics_key(litellm: Litellm) -> SecretKey | None:
    """The key Prometheus sends, so that the proxy checks keys on /metrics: the spec's
    metricsKeySecret only. Never the master key (the proxy's admin credential): without a
    metrics key /metrics stays open, and only the scrapers' NetworkPolicy reaches it besides
    the proxy's callers (validate.py warns when it is exposed)."""
    secret = litellm.metrics_key_secret
    return SecretKey(name=secret.name, key=secret.key) if secret else None


def _metrics_settings(metrics: bool, key: SecretKey | None) -> K8s:
    """/metrics lists models, keys' aliases, teams and spend: with a key to check, only
    callers that hold one may read it; without one it is open to the monitoring namespace
    alone (NetworkPolicy). Said either way: the pinned LiteLLM asks for a key by default."""
    if metrics:
        return {"require_auth_for_metrics_endpoint": key is not None}
    return {}


def _root_opt_outs(stack: ModelStack) -> list[bool]:
    """For each vLLM of an environment, whether it opted into running as root."""
    return [api.vllm.run_as_root for api in stack.spec.model_apis if api.vllm]


def slowest_rollout(resolved: ResolvedStack) -> tuple[int, str]:
    """Seconds the environment's slowest complete rollout may take, and whose it is."""
    return max(((lifecycle.rollout_seconds(workload), name)
                for name, workload in resolved.values.workloads.items()), default=(0, ""))


def flux_timeout(seconds: int) -> str:
    """A Flux duration covering `seconds`, in whole minutes, at least Flux's default 5m."""
    return f"{max(5, math.ceil(seconds / 60))}m"


def _flux_timeout_problems(validated: ValidatedSpec,
                           rollouts: dict[str, tuple[int, str]]) -> Iterator[Problem]:
    """A user-set Flux timeout shorter than a rollout it waits for fails a normal deploy."""
    gitops = validated.stack.spec.gitops
    if gitops is None or not gitops.flux.enabled or gitops.flux.timeout is None:
        return
    allowed = duration_seconds(gitops.flux.timeout)
    for env, (seconds, name) in sorted(rollouts.items()):
        if seconds > allowed:
            yield validated.positions.problem(
                ("spec", "gitops", "flux", "timeout"),
                f"Flux waits {gitops.flux.timeout} for environment {env}, but a rollout of "
                f"'{name}' may take {flux_timeout(seconds)} (image pull, startup budget, "
                "replicas replaced in turn)",
                f"remove timeout to derive it, or set at least {flux_timeout(seconds)}")


def gitops_plan(validated: ValidatedSpec,
                rollouts: dict[str, tuple[int, str]] | None = None,
                checks: dict[str, tuple[RolloutCheck, ...]] | None = None) -> GitOpsPlan | None:
    """The GitOps side of the spec, or None when it has no `gitops` section. `rollouts`
    (per environment, from `slowest_rollout`) sets or checks how long Flux waits; `checks`
    (per environment) are the workloads Flux health-checks."""
    stack = validated.stack
    gitops = stack.spec.gitops
    if gitops is None:
        return None
    rollouts = rollouts or {}
    checks = checks or {}
    problems = list(_flux_timeout_problems(validated, rollouts))
    if problems:
        raise SpecError(problems)
    root = gitops.path.strip().strip("/").removeprefix("./")
    root = "" if root == "." else root
    prefix = f"{root}/" if root else ""
    envs = {e.name: e for e in stack.spec.environments}
    environments = []
    for env in validated.environments:
        declared = envs.get(env.name)
        destination = declared.destination if declared else None
        secret = destination.kube_config_secret if destination else None
        environments.append(GitOpsEnvironment(
            name=env.name, namespace=env.namespace,
            server=destination.server if destination else None,
            cluster_name=destination.name if destination else None,
            kube_config_secret=(secret.name, secret.key) if secret else None,
            depends_on=tuple(declared.depends_on) if declared else (),
            autoscaled=autoscaled_deployments(env.stack),
            flux_timeout=gitops.flux.timeout or flux_timeout(rollouts.get(env.name, (0, ""))[0]),
            rollouts=checks.get(env.name, ()),
            # A shared namespace is someone else's: its labels are theirs to set.
            namespace_labels={} if env.shared_namespace else pod_security.namespace_labels(
                pod_security.namespace_level(_root_opt_outs(env.stack)),
                env.stack.spec.kubernetes_version),
            shared_namespace=env.shared_namespace,
        ))
    return GitOpsPlan(stack=stack.metadata.name, repo_url=gitops.repo_url,
                      revision=gitops.revision, path=root,
                      chart_path=f"{prefix}charts/{stack.metadata.name}",
                      overlays_path=f"{prefix}overlays", argocd=gitops.argocd, flux=gitops.flux,
                      environments=tuple(environments),
                      overlay_folders=overlay_folders(gitops.overlay_parts))


def autoscaled_deployments(stack: ModelStack) -> tuple[str, ...]:
    """Names of the workloads (Deployments, or StatefulSets with a claim per replica) whose
    replica count an HPA or KEDA owns."""
    prefix = stack.metadata.name
    names = [api.name for api in stack.spec.model_apis
             if (api.vllm and api.vllm.autoscaling) or (api.litellm and api.litellm.autoscaling)]
    names += [agent.name for agent in stack.spec.agents if agent.autoscaling]
    return tuple(sorted(f"{prefix}-{name}" for name in names))
