"""The stack spec, v1alpha1, as pydantic models: the stack, its agents, environments,
GitOps, monitoring, cluster conventions and Secrets; its modelAPIs are in backends.py and the
value types in fields.py.

These three modules are the one place defaults live; `modelapi-compile schema` and the spec
reference (docs/reference.md) are generated from them. Field names are camelCase in YAML (the
public contract in SPEC.md) and snake_case in Python.
"""

from __future__ import annotations

import ipaddress
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, model_validator

from .backends import ModelAPI
from .fields import (
    Autoscaling,
    Duration,
    Fraction,
    Image,
    Model,
    Name,
    PodOptions,
    Port,
    Resources,
    SecretRef,
    StackName,
    TargetNamespace,
    Url,
    _kubernetes_version,
)

API_VERSION = "modelapi.dev/v1alpha1"
KIND = "ModelStack"

DEFAULT_KUBERNETES_VERSION = "1.31.0"


class Agent(PodOptions):
    name: Name
    image: Image
    model_api: Name = Field(alias="modelAPI", description="which modelAPI it calls")
    model: Annotated[str, Field(min_length=1)] = Field(description="a model that modelAPI serves")
    port: Port = 8000
    replicas: Annotated[int, Field(ge=0)] = 1
    resources: Resources = Field(default_factory=Resources)
    autoscaling: Autoscaling | None = Field(None, description="HPA on CPU")
    health_path: str | None = Field(
        None, description="HTTP path for probes; null: a TCP check on the port"
    )
    api_key_secret: SecretRef | None = Field(
        None, description="the agent's own key for its modelAPI (MODEL_API_KEY), e.g. a "
        "LiteLLM virtual key")
    use_master_key: bool = Field(
        False, description="hand the LiteLLM proxy's master key (its admin credential) to "
        "this agent; needed when the proxy has one and apiKeySecret is unset")


class Destination(Model):
    """Where an environment is deployed when GitOps drives a fleet."""

    server: Url | None = Field(None, description="Argo CD destination.server (API URL)")
    name: str | None = Field(None, description="Argo CD destination.name (registered cluster)")
    kube_config_secret: SecretRef | None = Field(
        None, description="Flux kubeConfig.secretRef of the target cluster"
    )

    @model_validator(mode="after")
    def _server_or_name(self) -> Destination:
        if self.server and self.name:
            raise ValueError("set destination.server or destination.name, not both")
        return self


class Environment(Model):
    name: Name
    namespace: TargetNamespace | None = Field(None, description="default: spec.namespace")
    destination: Destination = Field(default_factory=Destination)
    depends_on: list[Name] = Field(
        default_factory=list, description="environments that must be ready first (Flux)"
    )
    patch: dict[str, Any] = Field(
        default_factory=dict, description="deep merge onto spec; list items matched by name"
    )


class SyncPolicy(Model):
    automated: bool = True
    prune: bool = True
    self_heal: bool = True
    create_namespace: bool = True
    server_side_apply: bool = True


class ArgoCD(Model):
    enabled: bool = False
    namespace: Name = "argocd"
    project: Name = "default"
    source: Literal["helm", "kustomize"] = "helm"
    application_set: bool = Field(False, description="one ApplicationSet instead of "
                                  "an Application per environment")
    create_project: bool = Field(False, description="write an AppProject named `project` "
                                 "restricted to repoURL and the stack's namespaces")
    sync_policy: SyncPolicy = Field(default_factory=SyncPolicy)


class Flux(Model):
    enabled: bool = False
    namespace: Name = "flux-system"
    interval: Duration = "5m"
    timeout: Duration | None = Field(
        None, description="null: derived from the slowest rollout it waits for; a shorter "
        "value is rejected")
    source: Literal["helm", "kustomize"] = "kustomize"
    secret_ref: Name | None = Field(None, description="Secret with Git credentials")
    prune: bool = Field(True, description="Kustomizations delete what leaves the overlay; set "
                        "false while objects move between them (a new gitops.overlayParts)")


# More parts than this would not render faster: the shared folder and startup dominate.
MAX_OVERLAY_PARTS = 64


class GitOps(Model):
    repo_url: Annotated[str, Field(min_length=1)] = Field(alias="repoURL")
    revision: str = "main"
    path: str = Field(".", description="where the build output lives inside the repo")
    argocd: ArgoCD = Field(default_factory=ArgoCD)
    flux: Flux = Field(default_factory=Flux)
    overlay_parts: int = Field(
        1, ge=1, le=MAX_OVERLAY_PARTS,
        description="split every overlay into a folder of shared objects and this many parts "
        "(each workload's objects in one part, by a hash of its name), each rendered and synced "
        "on its own: Kustomize's cost grows with the square of the objects it renders")


class LabelSelector(Model):
    """A Kubernetes label selector (matchLabels and matchExpressions)."""

    match_labels: dict[str, str] = Field(default_factory=dict)
    match_expressions: list[dict[str, Any]] = Field(default_factory=list)


MONITORING_NAMESPACE = "monitoring"


class ScrapeFrom(Model):
    """Who may scrape /metrics: a NetworkPolicy peer of namespace and pod selectors."""

    namespace_selector: LabelSelector = Field(
        default_factory=lambda: LabelSelector(
            match_labels={"kubernetes.io/metadata.name": MONITORING_NAMESPACE}),
        description="namespaces of the scrapers; default: the namespace named monitoring")
    pod_selector: LabelSelector | None = Field(
        None, description="the scraper pods in those namespaces; null: any pod there")


class AlertThresholds(Model):
    """Where the PrometheusRules fire; the startup budget of each model is its own."""

    error_rate: Fraction = Field(0.05, description="LiteLLM failed / all requests, 5m rate")
    fallback_rate: Fraction = Field(0.1, description="LiteLLM fallbacks / requests, 5m rate")
    p99_latency_seconds: float = Field(
        60.0, gt=0, description="LiteLLM request P99 latency over 5m, in seconds")
    kv_cache_usage: Fraction = Field(0.95, description="vLLM KV-cache usage of a replica")
    cache_claim_usage: Fraction = Field(
        0.9, description="used / capacity of a model cache claim (kubelet volume stats)")


class Monitoring(Model):
    enabled: bool = Field(False, description="ServiceMonitors for vLLM and LiteLLM")
    interval: Duration = "30s"
    labels: dict[str, str] = Field(
        default_factory=dict, description="labels on ServiceMonitors and the PrometheusRule")
    scrape_from: ScrapeFrom = Field(
        default_factory=ScrapeFrom,
        description="the only peers admitted to the metrics ports (NetworkPolicy ingress)")
    prometheus_url: Url | None = Field(
        None, alias="prometheusURL",
        description="Prometheus that KEDA queries for vLLM autoscaling")
    dashboards: bool = Field(True, description="Grafana dashboards as ConfigMaps")
    dashboard_labels: dict[str, str] = Field(
        default_factory=lambda: {"grafana_dashboard": "1"},
        description="labels of the dashboard ConfigMaps, which Grafana's sidecar selects; "
        "default: grafana_dashboard: \"1\" (kube-prometheus-stack)")
    alerts: bool = Field(True, description="PrometheusRules for every model and gateway")
    thresholds: AlertThresholds = Field(default_factory=AlertThresholds,
                                        description="where the alerts fire")


KUBE_DNS = "kube-dns"
# NodeLocal DNSCache's link-local address, and the GKE metadata server that answers DNS on
# GKE nodes (Dataplane V2 / metadata-server DNS).
DEFAULT_DNS_SERVERS = (KUBE_DNS, "169.254.20.10", "169.254.169.254")


def _dns_server(value: str) -> str:
    if value == KUBE_DNS:
        return value
    try:
        ipaddress.IPv4Network(value, strict=True)
    except ValueError:
        raise ValueError(f"'{value}' is neither kube-dns nor an IPv4 address or CIDR such as "
                         "169.254.20.10 or 10.0.0.10/32") from None
    return value


DnsServer = Annotated[str, AfterValidator(_dns_server)]


class Cluster(Model):
    """Conventions of the target cluster; patch them per environment."""

    gpu_node_labels: Literal["nvidia-gfd", "gke", "karpenter", "explicit"] = Field(
        "nvidia-gfd",
        description="how gpu.accelerator maps to node labels: NVIDIA GPU feature discovery "
        "(nvidia.com/gpu.product), GKE (cloud.google.com/gke-accelerator), Karpenter "
        "(karpenter.k8s.aws/instance-gpu-name and instance-gpu-memory), or explicit "
        "(gpu.nodeSelector only)",
    )
    image_registry: str | None = Field(
        None, description="registry mirror host that replaces every image's registry"
    )
    storage_class: str | None = Field(None, description="default storage class for caches")
    network_policies: bool = Field(True, description="deny by default, allow declared edges")
    dns_servers: list[DnsServer] = Field(
        default_factory=lambda: list(DEFAULT_DNS_SERVERS), min_length=1,
        description="what pods may query on port 53 (UDP and TCP) under the network "
        "policies: kube-dns (the kube-system pods labelled k8s-app=kube-dns) and IPv4 "
        "addresses or CIDRs; the default adds NodeLocal DNSCache (169.254.20.10) and the "
        "GKE metadata server (169.254.169.254); list fewer to narrow it")
    image_pull_secrets: list[Name] = Field(
        default_factory=list, description="names of docker-registry Secrets for every pod")


class SecretStore(Model):
    name: Annotated[str, Field(min_length=1, max_length=253,
                               pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")]
    kind: Literal["SecretStore", "ClusterSecretStore"] = "ClusterSecretStore"


class Secrets(Model):
    """Where the Secrets the spec references come from."""

    store: SecretStore | None = Field(
        None, description="an External Secrets Operator store: one ExternalSecret "
        "(external-secrets.io/v1) per referenced Secret; none: the Secrets must exist")
    refresh_interval: Duration = "1h"
    remote_key_prefix: str = Field(
        "", description="remote key = prefix + Secret name; each Secret key is a property")


class StackSpec(Model):
    namespace: TargetNamespace
    shared_namespace: bool | None = Field(
        None, description="the namespace is not the stack's own (other workloads live "
        "there): no Namespace object, no Pod Security labels, no namespace-wide "
        "NetworkPolicy; every policy selects the stack's pods only. Null: true for the "
        "namespace `default`, false for any other. Per environment through its patch")
    kubernetes_version: Annotated[str, AfterValidator(_kubernetes_version)] = (
        DEFAULT_KUBERNETES_VERSION
    )
    model_apis: list[ModelAPI] = Field(default_factory=list, alias="modelAPIs")
    agents: list[Agent] = Field(default_factory=list)
    environments: list[Environment] = Field(default_factory=list)
    gitops: GitOps | None = None
    monitoring: Monitoring = Field(default_factory=Monitoring)
    cluster: Cluster = Field(default_factory=Cluster)
    secrets: Secrets = Field(default_factory=Secrets)
    not_secrets: list[str] = Field(
        default_factory=list, description="values the secret check refuses that are not "
        "secrets (false positives), each written exactly as in the spec")


class Metadata(Model):
    name: StackName


class ModelStack(Model):
    api_version: Literal["modelapi.dev/v1alpha1"] = Field(alias="apiVersion")
    kind: Literal["ModelStack"]
    metadata: Metadata
    spec: StackSpec
