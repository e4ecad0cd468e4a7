"""What the dashboards and alerts watch: the metric names the pinned releases export, and
the monitored workloads of one environment, read from its resolved workloads.

Metric facts, checked in the releases' own source:
- vLLM v0.11.0 (vllm/v1/metrics/loggers.py): labels `model_name` and `engine`; counters get
  prometheus_client's `_total` suffix. `vllm:gpu_cache_usage_perc` and
  `vllm:gpu_prefix_cache_*` are hidden in 0.11 and `vllm:time_per_output_token_seconds` is
  deprecated there, so their successors are used.
- LiteLLM 1.80.11 (litellm/integrations/prometheus.py, types/integrations/prometheus.py):
  the route is the `requested_model` label; spend is labelled by `model`.
- kube-state-metrics (replicas, HPA, GPU requests with the resource name's `.` and `/` turned
  into `_`) and the kubelet's volume stats; neither is ours to pin, both are long-standing.
Prometheus adds `namespace` and `service` to every series it scrapes through a
ServiceMonitor; the queries select a workload by its Service.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from .model import Workload

VLLM_RUNNING = "vllm:num_requests_running"
VLLM_WAITING = "vllm:num_requests_waiting"
VLLM_KV_CACHE = "vllm:kv_cache_usage_perc"
VLLM_PREFIX_HITS = "vllm:prefix_cache_hits_total"
VLLM_PREFIX_QUERIES = "vllm:prefix_cache_queries_total"
VLLM_TTFT = "vllm:time_to_first_token_seconds"
VLLM_ITL = "vllm:inter_token_latency_seconds"
VLLM_E2E = "vllm:e2e_request_latency_seconds"
VLLM_PROMPT_TOKENS = "vllm:prompt_tokens_total"
VLLM_GENERATION_TOKENS = "vllm:generation_tokens_total"

LITELLM_REQUESTS = "litellm_proxy_total_requests_metric_total"
LITELLM_FAILED = "litellm_proxy_failed_requests_metric_total"
LITELLM_LATENCY = "litellm_request_total_latency_metric"
LITELLM_FALLBACKS_OK = "litellm_deployment_successful_fallbacks_total"
LITELLM_FALLBACKS_FAILED = "litellm_deployment_failed_fallbacks_total"
LITELLM_SPEND = "litellm_spend_metric_total"
LITELLM_DEPLOYMENT_REQUESTS = "litellm_deployment_total_requests_total"

KSM_REQUESTS = "kube_pod_container_resource_requests"
KSM_HPA_DESIRED = "kube_horizontalpodautoscaler_status_desired_replicas"
KUBELET_USED = "kubelet_volume_stats_used_bytes"
KUBELET_CAPACITY = "kubelet_volume_stats_capacity_bytes"

# KEDA names the HPA it makes for a ScaledObject keda-hpa-<ScaledObject name>.
KEDA_HPA_PREFIX = "keda-hpa-"


@dataclass(frozen=True)
class Replicas:
    """kube-state-metrics' series of one controller kind: desired and ready replicas."""

    label: str  # the label naming the object
    desired: str
    ready: str


REPLICAS = {
    "Deployment": Replicas("deployment", "kube_deployment_spec_replicas",
                           "kube_deployment_status_replicas_available"),
    "StatefulSet": Replicas("statefulset", "kube_statefulset_replicas",
                            "kube_statefulset_status_replicas_ready"),
}


@dataclass(frozen=True)
class ServedModel:
    """One vLLM modelAPI as the dashboards and alerts see it."""

    name: str  # the spec's name
    fullname: str  # its Service, Deployment or StatefulSet
    replicas: Replicas
    pod_pattern: str  # RE2 matching exactly its pods' names
    api_base: str  # RE2 matching the api_base LiteLLM calls it at
    gpus: int  # per replica
    gpu_resource: str  # as kube-state-metrics labels it, e.g. nvidia_com_gpu
    startup_seconds: int  # one pod's budget from image pull to ready
    queue_target: int | None  # KEDA: waiting requests per replica; None: fixed replicas
    min_replicas: int
    max_replicas: int
    claim_pattern: str | None  # RE2 matching its cache claims, None without one


@dataclass(frozen=True)
class Gateway:
    """One LiteLLM modelAPI; its routes are the `requested_model` label's values."""

    name: str
    fullname: str


@dataclass(frozen=True)
class CacheClaim:
    """A model cache claim the compiler owns (vLLM or Ollama)."""

    name: str
    pattern: str


# Names are DNS labels ([a-z0-9-]), so they stand for themselves in a regular expression
# and need no escaping inside a PromQL string.
def _claim_pattern(fullname: str, workload: Workload) -> str | None:
    if workload.persistence is None:
        return None
    if workload.persistence.per_replica:
        return f"model-cache-{fullname}-[0-9]+"
    return f"{fullname}-cache"


def _gpus(workload: Workload) -> tuple[int, str]:
    """GPUs per replica and the resource's kube-state-metrics label value."""
    limits = workload.resources.get("limits", {})
    for resource, count in sorted(limits.items()):
        if "gpu" in resource:
            return int(count), re.sub(r"[^a-zA-Z0-9_]", "_", resource)
    return 0, "nvidia_com_gpu"


def served_model(stack: str, name: str, workload: Workload, port: int) -> ServedModel:
    fullname = f"{stack}-{name}"
    # A LeaderWorkerSet runs its leaders as a StatefulSet of its own name (one pod a group),
    # and each group's workers as a StatefulSet <name>-<group>.
    kind = "StatefulSet" if (workload.persistence and workload.persistence.per_replica) \
        or workload.group else "Deployment"
    # Deployment pods: <name>-<template hash>-<5 chars>; StatefulSet pods: <name>-<ordinal>;
    # LeaderWorkerSet pods: <name>-<group> (leaders), <name>-<group>-<index> (workers).
    suffix = "[a-z0-9]+-[a-z0-9]{5}"
    if kind == "StatefulSet":
        suffix = "[0-9]+(-[0-9]+)?" if workload.group else "[0-9]+"
    gpus, resource = _gpus(workload)
    scaling = workload.autoscaling
    keda = scaling is not None and scaling.kind == "keda"
    return ServedModel(
        name=name, fullname=fullname, replicas=REPLICAS[kind],
        pod_pattern=f"{fullname}-{suffix}",
        # behind a Gateway: its path for this model, which no other model shares
        api_base=(f".*{urlsplit(workload.served_at).path}/.*" if workload.served_at
                  else f"http://{fullname}:{port}/.*"),
        gpus=gpus, gpu_resource=resource,
        startup_seconds=workload.progress_deadline_seconds,
        queue_target=scaling.threshold if keda and scaling else None,
        min_replicas=scaling.min_replicas if scaling else workload.replicas,
        max_replicas=scaling.max_replicas if scaling else workload.replicas,
        claim_pattern=_claim_pattern(fullname, workload))


def cache_claims(stack: str, workloads: dict[str, Workload]) -> list[CacheClaim]:
    claims = []
    for name, workload in workloads.items():
        pattern = _claim_pattern(f"{stack}-{name}", workload)
        if pattern is not None:
            claims.append(CacheClaim(name, pattern))
    return claims
