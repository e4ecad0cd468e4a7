"""lifecycle."""

from __future__ import annotations

import math

from ..spec.backends import Ollama, Vllm, VllmAutoscaling
from ..spec.fields import Autoscaling, PodOptions
from .apiversions import minor_version
from .model import (
    Autoscaler,
    K8s,
    Probes,
    Workload,
)
from .pod_contract import (
    ENDPOINT_SECONDS,
    SHUTDOWN_SECONDS,
    SPREAD_KEY,
    VLLM_PORT,
    VLLM_QUEUE_METRIC,
    Cluster,
)

# Pulling a multi-GB model-server image onto a fresh (autoscaled) GPU node, before any probe.
IMAGE_PULL_SECONDS = 600


MIN_PROGRESS_DEADLINE = 600  # Kubernetes' default


def probe_seconds(probe: K8s | None) -> int:
    """The longest a probe lets a container take: delay plus period times failures."""
    if not probe:
        return 0
    return int(probe.get("initialDelaySeconds", 0)
               + probe["periodSeconds"] * probe["failureThreshold"])


def progress_deadline(probes: Probes, strategy: K8s, grace: int,
                      startup_budget: int | None = None) -> int:
    """How long one new pod may take to become ready, as the kubelet allows it: image pull,
    the startup probe's budget (or a longer `startup_budget`, e.g. Ollama's model pulls, which
    a sidecar's readiness waits for), then one readiness period; a Recreate rollout first
    waits for the old pod's termination grace period."""
    startup = max(probe_seconds(probes.startup), startup_budget or 0)
    budget = IMAGE_PULL_SECONDS + startup + int(probes.readiness["periodSeconds"])
    if strategy.get("type") == "Recreate":
        budget += grace
    return max(MIN_PROGRESS_DEADLINE, budget)


def with_deadline(workload: Workload, startup_budget: int | None = None) -> Workload:
    return workload.model_copy(update={"progress_deadline_seconds": progress_deadline(
        workload.probes, workload.strategy, workload.termination_grace_period_seconds,
        startup_budget)})


def rollout_seconds(workload: Workload) -> int:
    """The longest a complete rollout of `workload` takes within its budgets: what a tool
    that waits for it (Flux, `helm --wait`) must allow."""
    per_pod = workload.progress_deadline_seconds
    most = max(1, most_replicas(workload))
    if workload.persistence and workload.persistence.per_replica:
        # pods are replaced one at a time, each after the old one terminated
        return most * (per_pod + workload.termination_grace_period_seconds)
    if workload.strategy.get("type") == "Recreate":
        return per_pod
    surge = int(workload.strategy.get("rollingUpdate", {}).get("maxSurge", 1)) or 1
    return math.ceil(most / surge) * per_pod


def hpa(scaling: Autoscaling) -> Autoscaler:
    return Autoscaler(kind="hpa", min_replicas=scaling.min_replicas,
                      max_replicas=scaling.max_replicas,
                      cpu_utilization=scaling.cpu_utilization)


# The HPA's largest stabilization window (autoscaling/v2 validation).
MAX_STABILIZATION_SECONDS = 3600


def keda(scaling: VllmAutoscaling, prometheus_url: str, api_base: str | None, *,
         startup_budget: int, startup_seconds: int = 0) -> Autoscaler:
    """KEDA on vLLM's queue. At zero replicas vLLM exports nothing, so a model that may
    sleep is also woken by the calls a LiteLLM proxy of the stack makes to `api_base`.
    A model that may sleep is never sent to zero before its first start could finish
    (`startup_budget`, the pod's progress deadline): KEDA scales a target that was never
    active to zero once initialCooldownPeriod (default 0) has passed since the
    ScaledObject's creation. A replica is removed only after the queue stayed low as long
    as one takes to start (`startup_seconds`, by default), so that a burst does not cost
    another load of the model."""
    sleeps = scaling.min_replicas == 0
    window = scaling.scale_down_stabilization_seconds
    if window is None:
        window = min(MAX_STABILIZATION_SECONDS, startup_seconds)
    return Autoscaler(scale_down_stabilization_seconds=window,
                      kind="keda", min_replicas=scaling.min_replicas,
                      max_replicas=scaling.max_replicas, server_address=prometheus_url,
                      metric=VLLM_QUEUE_METRIC, threshold=scaling.waiting_requests,
                      activation_threshold=scaling.activation_waiting_requests,
                      polling_interval=scaling.polling_interval,
                      cooldown_period=scaling.cooldown_period,
                      initial_cooldown_period=startup_budget if sleeps else None,
                      wake_api_base=api_base if sleeps else None)


def most_replicas(workload: Workload) -> int:
    """The largest replica count the workload can reach."""
    return workload.autoscaling.max_replicas if workload.autoscaling else workload.replicas


ZONE_KEY = "topology.kubernetes.io/zone"


def default_spread(selector: dict[str, str]) -> list[K8s]:
    """Replicas in different zones and on different nodes when the scheduler can (a zone's
    outage leaves the others serving), never blocking when it cannot."""
    return [{"labelSelector": {"matchLabels": dict(selector)}, "maxSkew": 1,
             "topologyKey": key, "whenUnsatisfiable": "ScheduleAnyway"}
            for key in (ZONE_KEY, SPREAD_KEY)]


def with_pod_options(workload: Workload, options: PodOptions, selector: dict[str, str],
                     cluster: Cluster, autoscaling: Autoscaler | None = None) -> Workload:
    """`workload` with the spec's pod pass-through fields and autoscaler applied."""
    workload = workload.model_copy(update={"autoscaling": autoscaling})
    spread = options.topology_spread_constraints
    if spread is None:
        spread = default_spread(selector) if most_replicas(workload) > 1 else []
    pull = list(dict.fromkeys([*cluster.image_pull_secrets, *options.image_pull_secrets]))
    selector_labels = {**workload.node_selector, **options.node_selector}
    return workload.model_copy(update={
        "env": [*workload.env, *(e.model_dump(by_alias=True, exclude_none=True)
                                 for e in options.env)],
        "volumes": [*workload.volumes, *options.extra_volumes],
        "volume_mounts": [*workload.volume_mounts, *options.extra_volume_mounts],
        "affinity": options.affinity,
        "topology_spread_constraints": list(spread),
        "priority_class_name": options.priority_class_name,
        "image_pull_secrets": pull,
        "pod_annotations": dict(sorted(options.pod_annotations.items())),
        "pod_labels": dict(sorted(options.pod_labels.items())),
        "node_selector": dict(sorted(selector_labels.items())),
    })


DEFAULT_GRACE = 30  # Kubernetes' default, for workloads that hold no long requests


# vLLM's launcher cancels the HTTP server task on SIGTERM (vllm/entrypoints/launcher.py):
# requests still running are cut. So its preStop waits, beyond the endpoint delay, until its
# own gauges show no request running or waiting, or until the drain budget is spent.
VLLM_DRAIN_SCRIPT = """\
import sys
import time
import urllib.request as request
budget, wait, url = sys.argv[1:4]
end = time.monotonic() + float(budget)
time.sleep(float(wait))
names = ("vllm:num_requests_running",
         "vllm:num_requests_waiting")
while time.monotonic() < end:
    try:
        page = request.urlopen(url, timeout=5).read()
    except Exception:
        break
    busy = sum(float(row.rsplit(" ", 1)[1])
               for row in page.decode().splitlines()
               if row.startswith(names))
    if not busy:
        break
    time.sleep(2)
"""  # short lines: the YAML it is written into stays within 80 columns


def drain_grace(options: PodOptions, longest_request: int | None) -> int:
    """The pod's termination grace period: the spec's, or the endpoint delay plus the longest
    request its callers allow plus the shutdown (30 s when it holds no long requests)."""
    if options.termination_grace_period_seconds is not None:
        return options.termination_grace_period_seconds
    if longest_request is None:
        return DEFAULT_GRACE
    return ENDPOINT_SECONDS + longest_request + SHUTDOWN_SECONDS


def pre_stop(component: str, grace: int, kubernetes_version: str) -> K8s | None:
    """The main container's preStop hook: vLLM drains itself (see VLLM_DRAIN_SCRIPT); LiteLLM
    (uvicorn, which finishes running requests after SIGTERM) only waits for the endpoints."""
    budget = grace - SHUTDOWN_SECONDS
    if budget <= 0:  # no time to drain (and a 0 s sleep action is refused before 1.32)
        return None
    if component == "vllm":
        wait = min(ENDPOINT_SECONDS, budget)
        return {"exec": {"command": ["python3", "-c", VLLM_DRAIN_SCRIPT, str(budget), str(wait),
                                     f"http://127.0.0.1:{VLLM_PORT}/metrics"]}}
    if component == "litellm":
        seconds = min(ENDPOINT_SECONDS, budget)
        if minor_version(kubernetes_version) >= (1, 30):  # the sleep action, beta and on since 1.30
            return {"sleep": {"seconds": seconds}}
        return {"exec": {"command": ["sleep", str(seconds)]}}
    return None


def with_drain(workload: Workload, options: PodOptions, longest_request: int | None,
               kubernetes_version: str) -> Workload:
    """`workload` with its grace period and preStop hook. A Recreate rollout waits for the
    old pod's grace period, so its progress deadline moves with it."""
    grace = drain_grace(options, longest_request)
    hook = pre_stop(workload.component, grace, kubernetes_version)
    deadline = workload.progress_deadline_seconds
    if workload.strategy.get("type") == "Recreate":
        deadline += grace - workload.termination_grace_period_seconds
    return workload.model_copy(update={
        "termination_grace_period_seconds": grace,
        "lifecycle": {"preStop": hook} if hook else None,
        "progress_deadline_seconds": deadline})


DO_NOT_DISRUPT = "karpenter.sh/do-not-disrupt"


def with_disruption(workload: Workload, options: Vllm | Ollama, gpus: int,
                    karpenter: bool) -> Workload:
    """A single GPU replica under Karpenter is kept off consolidation and expiry: moving it
    means reloading the model while nothing serves (its PodDisruptionBudget exists only
    with more replicas). `doNotDisrupt` decides, when set."""
    wanted = options.do_not_disrupt
    if wanted is None:
        wanted = karpenter and gpus > 0 and most_replicas(workload) <= 1
    if not wanted:
        return workload
    return workload.model_copy(update={"pod_annotations": dict(sorted(
        {DO_NOT_DISRUPT: "true", **workload.pod_annotations}.items()))})
