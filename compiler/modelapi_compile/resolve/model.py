"""The resolved model: one per environment, every reference bound, every default applied.

It is also the Helm chart's values: `values.yaml` is the resolved model of the spec as
written, `values-<env>.yaml` what an environment changes, and `values.schema.json` is
generated from these classes. Emitters read only this model, never the raw spec.
Kubernetes-shaped pieces (probes, env, volumes, rules) are kept as plain dicts so that the
chart can pass them through `toYaml` unchanged.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from ..spec.model import ArgoCD, Flux

K8s = dict[str, Any]
# Selectors use labels no controller rewrites: Argo CD before 3.0 tracks (and overwrites)
# app.kubernetes.io/instance, so it appears in no selector and no generated label.
STACK_LABEL = "modelapi.dev/stack"
NAME_LABEL = "app.kubernetes.io/name"
PART_OF_LABEL = "app.kubernetes.io/part-of"


COMPONENT_LABEL = "app.kubernetes.io/component"
CALLS_LABEL_PREFIX = "calls.modelapi.dev/"


def selector_labels(stack: str, name: str) -> dict[str, str]:
    """The labels that select one workload's pods (Service, PDB, NetworkPolicy peers)."""
    return {NAME_LABEL: name, STACK_LABEL: stack}


# The folder of a split overlay that holds what the whole stack shares.
SHARED_FOLDER = "shared"


def overlay_folders(parts: int) -> tuple[str, ...]:
    """The folders an overlay is split into (gitops.overlayParts): the shared objects first,
    then the parts; () when the overlay is one folder."""
    if parts <= 1:
        return ()
    return (SHARED_FOLDER, *(f"part-{index}" for index in range(1, parts + 1)))


def calls_label(target: str) -> str:
    """The pod label that admits a client to the network edge towards modelAPI `target`."""
    return f"{CALLS_LABEL_PREFIX}{target}"


def role_service_account(stack: str, component: str) -> str:
    """The ServiceAccount shared by every workload of a component (its role)."""
    return f"{stack}-{component}-sa"


Component = Literal["agent", "vllm", "litellm", "ollama"]


class Values(BaseModel):
    model_config = ConfigDict(
        extra="forbid", alias_generator=to_camel, populate_by_name=True, frozen=True
    )


class Probes(Values):
    startup: K8s | None = None
    readiness: K8s
    liveness: K8s


class Persistence(Values):
    """A PersistentVolumeClaim `<fullname>-cache` owned by the chart, or with `perReplica`
    the StatefulSet's claim template `model-cache` (claims `model-cache-<fullname>-<n>`)."""

    size: str
    storage_class: str | None = None
    access_mode: str = "ReadWriteOnce"
    per_replica: bool = Field(
        False, description="one claim per replica: a StatefulSet with volumeClaimTemplates")


class ConfigFile(Values):
    """A ConfigMap `<fullname>-config` with one file, mounted at `mountPath`."""

    mount_path: str
    file_name: str
    content: str


class NetworkRules(Values):
    ingress: list[K8s] = Field(default_factory=list)
    egress: list[K8s] = Field(default_factory=list)


class Autoscaler(Values):
    """Who owns the replica count: an HPA on CPU, or KEDA on vLLM's queue in Prometheus."""

    kind: Literal["hpa", "keda"] = Field(description="hpa (autoscaling/v2) or keda")
    min_replicas: int = Field(description="lower bound; 0 (KEDA only) scales to zero")
    max_replicas: int = Field(description="upper bound")
    cpu_utilization: int | None = Field(None, description="HPA: target CPU percent")
    server_address: str | None = Field(None, description="KEDA: Prometheus URL")
    metric: str | None = Field(None, description="KEDA: the per-replica queue metric")
    threshold: int | None = Field(None, description="KEDA: target value per replica")
    activation_threshold: int | None = Field(None, description="KEDA: wake-up value")
    polling_interval: int | None = Field(None, description="KEDA: seconds between queries")
    cooldown_period: int | None = Field(None, description="KEDA: seconds before zero")
    initial_cooldown_period: int | None = Field(
        None, description="KEDA at zero replicas: seconds after the ScaledObject's creation "
        "before it may first scale to zero")
    wake_api_base: str | None = Field(
        None, description="KEDA at zero replicas: LiteLLM's calls to this api_base wake it")
    scale_down_stabilization_seconds: int | None = Field(
        None, description="KEDA: seconds the queue stays low before a replica goes "
        "(advanced.horizontalPodAutoscalerConfig.behavior.scaleDown)")


class SecretKey(Values):
    name: str
    key: str


class Exposure(Values):
    """How the workload is reached from outside: an Ingress, or an HTTPRoute on a Gateway."""

    host: str = Field(description="public host name")
    kind: Literal["Ingress", "HTTPRoute"] = Field(description="object that exposes it")
    ingress_class_name: str | None = Field(None, description="Ingress class")
    tls_secret: str | None = Field(None, description="TLS Secret of the Ingress")
    gateway_name: str | None = Field(None, description="Gateway of the HTTPRoute")
    gateway_namespace: str | None = Field(None, description="namespace of that Gateway")
    section_name: str | None = Field(None, description="listener of that Gateway")
    request_timeout: str | None = Field(
        None, description="HTTPRoute request timeout: the router's timeout, not the gateway's "
        "default (15 s in Envoy)")
    annotations: dict[str, str] = Field(default_factory=dict, description="annotations")


class Group(Values):
    """A replica that spans several nodes: a LeaderWorkerSet whose groups are a leader (the
    workload's own container, probes and Service) and `size - 1` workers."""

    size: int = Field(description="pods per group, one per node (leaderWorkerTemplate.size)")
    worker_command: list[str] = Field(description="command of the workers' container")
    worker_args: list[str] = Field(default_factory=list,
                                   description="arguments of the workers' container")
    rollout_strategy: K8s = Field(description="the LeaderWorkerSet's rolloutStrategy")


class Workload(Values):
    """One Deployment with its Service, ServiceAccount and optional satellites."""

    component: Component = Field(description="agent, vllm, litellm or ollama")
    image: str = Field(description="container image, pinned")
    replicas: int = Field(description="Deployment replicas; a PodDisruptionBudget above 1")
    port: int = Field(description="container and Service port (named http)")
    strategy: K8s = Field(
        description="Deployment strategy; Recreate for GPUs and single-writer caches"
    )
    command: list[str] = Field(default_factory=list, description="container command")
    args: list[str] = Field(default_factory=list, description="container arguments")
    env: list[K8s] = Field(
        default_factory=list, description="environment (secrets by secretKeyRef)"
    )
    resources: K8s = Field(description="requests and limits")
    probes: Probes = Field(description="startup, readiness and liveness probes")
    node_selector: dict[str, str] = Field(
        default_factory=dict, description="node labels (GPU conventions applied)"
    )
    tolerations: list[K8s] = Field(default_factory=list, description="pod tolerations")
    runtime_class_name: str | None = Field(None, description="RuntimeClass, e.g. nvidia")
    pod_security_context: K8s = Field(description="pod securityContext")
    security_context: K8s = Field(description="container securityContext")
    volumes: list[K8s] = Field(default_factory=list, description="pod volumes")
    volume_mounts: list[K8s] = Field(
        default_factory=list, description="mounts of the main container"
    )
    sidecars: list[K8s] = Field(
        default_factory=list, description="extra containers (Ollama's model puller)"
    )
    termination_grace_period_seconds: int = Field(30, description="seconds to drain")
    lifecycle: K8s | None = Field(
        None, description="lifecycle of the main container: the preStop hook that drains it")
    progress_deadline_seconds: int = Field(
        600, description="one pod's budget from image pull to ready (Deployment "
        "progressDeadlineSeconds)")
    config: ConfigFile | None = Field(None, description="one config file in a ConfigMap (LiteLLM)")
    persistence: Persistence | None = Field(None, description="PVC <stack>-<name>-cache")
    metrics_path: str | None = Field(None, description="ServiceMonitor path when monitoring is on")
    metrics_secret: SecretKey | None = Field(
        None, description="bearer token Prometheus sends to metricsPath")
    expose: Exposure | None = Field(None, description="Ingress or HTTPRoute")
    network: NetworkRules = Field(
        default_factory=NetworkRules,
        description="rules of its own NetworkPolicy, beyond the stack's edge policies")
    edge_labels: dict[str, str] = Field(
        default_factory=dict,
        description="pod labels admitting it to the network edges it uses (calls.modelapi.dev)")
    autoscaling: Autoscaler | None = Field(
        None, description="HPA or KEDA; the Deployment then has no replicas of its own")
    affinity: K8s | None = Field(None, description="pod affinity")
    topology_spread_constraints: list[K8s] = Field(
        default_factory=list, description="pod topology spread (default: across nodes)")
    priority_class_name: str | None = Field(None, description="PriorityClass of the pods")
    image_pull_secrets: list[str] = Field(
        default_factory=list, description="names of docker-registry Secrets")
    pod_annotations: dict[str, str] = Field(default_factory=dict, description="pod annotations")
    pod_labels: dict[str, str] = Field(default_factory=dict, description="extra pod labels")
    service_account_annotations: dict[str, str] = Field(
        default_factory=dict, description="annotations of the ServiceAccount (workload identity)")
    served_at: str | None = Field(
        None, description="the base URL its callers use when it is not its Service's: "
        "the Gateway path of its InferencePool")
    group: Group | None = Field(
        None, description="a LeaderWorkerSet instead of a Deployment: each replica a group "
        "of pods on several nodes")


class Monitoring(Values):
    enabled: bool = False
    interval: str = "30s"
    labels: dict[str, str] = Field(default_factory=dict)
    dashboard_labels: dict[str, str] = Field(
        default_factory=dict, description="labels of the dashboard ConfigMaps")
    dashboards: dict[str, str] = Field(
        default_factory=dict,
        description="Grafana dashboard JSON by ConfigMap name suffix (<stack>-<suffix>)")
    alerts: dict[str, list[K8s]] = Field(
        default_factory=dict,
        description="alerting rules by modelAPI name: PrometheusRule <stack>-<name>-alerts")


class ExternalSecrets(Values):
    """ExternalSecrets for every Secret the workloads reference (name -> keys)."""

    enabled: bool = False
    store_name: str = ""
    store_kind: str = "ClusterSecretStore"
    refresh_interval: str = "1h"
    remote_key_prefix: str = ""
    secrets: dict[str, list[str]] = Field(default_factory=dict)


class ChartValues(Values):
    """Everything the chart renders; keys of `workloads` are the spec's names."""

    stack: str = Field(description="name prefix of every object")
    network_policy: bool = Field(True, description="default deny plus the declared edges")
    shared_namespace: bool = Field(
        False, description="other workloads live in the namespace: the default deny selects "
        "the stack's pods only")
    dns_peers: list[K8s] = Field(
        default_factory=list, description="NetworkPolicy peers every pod may query on port 53")
    network_policies: dict[str, K8s] = Field(
        default_factory=dict,
        description="the stack's network edges: one NetworkPolicy spec each, by name suffix")
    monitoring: Monitoring = Field(default_factory=Monitoring, description="ServiceMonitors")
    external_secrets: ExternalSecrets = Field(
        default_factory=ExternalSecrets, description="ExternalSecrets for referenced Secrets"
    )
    workloads: dict[str, Workload] = Field(
        default_factory=dict, description="one Deployment each, keyed by spec name"
    )
    objects: list[K8s] = Field(
        default_factory=list,
        description="objects the compiler builds whole (an InferencePool, its endpoint picker "
        "and HTTPRoute); the chart only sets their namespace")


class Endpoint(BaseModel):
    """How a client reaches a modelAPI: base URL ending in /v1, and its key if any."""

    model_config = ConfigDict(frozen=True)

    url: str
    api_key_secret: tuple[str, str] | None = None  # (secret name, key)
    workload: str | None = None  # the in-cluster workload serving it; None for external
    port: int | None = None
    # Through a Gateway (an InferencePool): the namespace of its proxy pods, which the
    # callers reach instead of the workload's pods.
    gateway_namespace: str | None = None


class BackingService(BaseModel):
    """A server the stack uses and does not run: a LiteLLM proxy's PostgreSQL or Redis.
    The cluster has its own; `compose` runs one locally when `host` is a Service name."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["postgres", "redis"]
    client: str  # the workload (LiteLLM proxy) that connects to it
    host: str | None  # as the client connects to it; None when only a CIDR is known
    port: int
    in_cluster: bool  # `host` names an in-cluster Service (not an IP or outside DNS name)
    password_secret: tuple[str, str] | None = None  # (Secret, key) the client sends (Redis)


class ResolvedStack(BaseModel):
    """One environment of the stack, ready for the emitters."""

    model_config = ConfigDict(frozen=True)

    name: str  # the stack name
    environment: str
    namespace: str
    kubernetes_version: str
    pod_security_level: str = "restricted"  # the Pod Security level every workload meets
    shared_namespace: bool = False  # not the stack's own: no Namespace object, no labels
    values: ChartValues
    backing_services: tuple[BackingService, ...] = ()  # not in the chart: for `compose`


class RolloutCheck(BaseModel):
    """A workload whose rollout Flux health-checks: the object, and how long it may take."""

    model_config = ConfigDict(frozen=True)

    kind: str  # Deployment or StatefulSet
    name: str  # the object's name
    workload: str  # its name in the spec (which overlay part holds it)
    seconds: int  # the longest a complete rollout takes within its budgets
    # A model server (weights download and load, often hours): health-checked by a
    # Kustomization of its own, so it never holds up what the others apply.
    model: bool = False


class GitOpsEnvironment(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    namespace: str
    server: str | None = None
    cluster_name: str | None = None
    kube_config_secret: tuple[str, str] | None = None
    depends_on: tuple[str, ...] = ()
    autoscaled: tuple[str, ...] = ()  # Deployment names whose replicas an autoscaler owns
    namespace_labels: dict[str, str] = {}  # Pod Security labels for a namespace Argo CD creates
    shared_namespace: bool = False  # the namespace exists and is not the stack's: never created
    flux_timeout: str = "10m"  # how long Flux waits for the environment's rollouts
    rollouts: tuple[RolloutCheck, ...] = ()  # the workloads Flux health-checks


class GitOpsPlan(BaseModel):
    """What the Argo CD and Flux emitters need: the repo, the layout, the environments."""

    model_config = ConfigDict(frozen=True)

    stack: str
    repo_url: str
    revision: str
    path: str  # build output root inside the repo, no leading "./", "" for the root
    chart_path: str  # <path>/charts/<stack>
    overlays_path: str  # <path>/overlays

    @property
    def gitops_path(self) -> str:
        """The build root inside the repo as a prefix: "" or "<path>/"."""
        return f"{self.path}/" if self.path else ""
    argocd: ArgoCD
    flux: Flux
    environments: tuple[GitOpsEnvironment, ...]
    # Each environment's overlay folders when overlays are split, () when not; a controller
    # renders and syncs each folder on its own.
    overlay_folders: tuple[str, ...] = ()
