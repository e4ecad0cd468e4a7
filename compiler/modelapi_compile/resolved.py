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

from .spec import ArgoCD, Flux

K8s = dict[str, Any]
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
    """A PersistentVolumeClaim `<fullname>-cache` owned by the chart."""

    size: str
    storage_class: str | None = None
    access_mode: str = "ReadWriteOnce"


class ConfigFile(Values):
    """A ConfigMap `<fullname>-config` with one file, mounted at `mountPath`."""

    mount_path: str
    file_name: str
    content: str


class NetworkRules(Values):
    ingress: list[K8s] = Field(default_factory=list)
    egress: list[K8s] = Field(default_factory=list)


class Workload(Values):
    """One Deployment with its Service, ServiceAccount and optional satellites."""

    component: Component
    image: str
    replicas: int
    port: int
    strategy: K8s
    command: list[str] = Field(default_factory=list)
    args: list[str] = Field(default_factory=list)
    env: list[K8s] = Field(default_factory=list)
    resources: K8s
    probes: Probes
    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[K8s] = Field(default_factory=list)
    runtime_class_name: str | None = None
    pod_security_context: K8s
    security_context: K8s
    volumes: list[K8s] = Field(default_factory=list)
    volume_mounts: list[K8s] = Field(default_factory=list)
    sidecars: list[K8s] = Field(default_factory=list)
    termination_grace_period_seconds: int = 30
    config: ConfigFile | None = None
    persistence: Persistence | None = None
    metrics_path: str | None = None
    network: NetworkRules = Field(default_factory=NetworkRules)


class Monitoring(Values):
    enabled: bool = False
    interval: str = "30s"
    labels: dict[str, str] = Field(default_factory=dict)


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

    stack: str
    network_policy: bool = True
    monitoring: Monitoring = Field(default_factory=Monitoring)
    external_secrets: ExternalSecrets = Field(default_factory=ExternalSecrets)
    workloads: dict[str, Workload] = Field(default_factory=dict)


class Endpoint(BaseModel):
    """How a client reaches a modelAPI: base URL ending in /v1, and its key if any."""

    model_config = ConfigDict(frozen=True)

    url: str
    api_key_secret: tuple[str, str] | None = None  # (secret name, key)
    workload: str | None = None  # the in-cluster workload serving it; None for external
    port: int | None = None


class ResolvedStack(BaseModel):
    """One environment of the stack, ready for the emitters."""

    model_config = ConfigDict(frozen=True)

    name: str  # the stack name
    environment: str
    namespace: str
    kubernetes_version: str
    values: ChartValues


class GitOpsEnvironment(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    namespace: str
    server: str | None = None
    cluster_name: str | None = None
    kube_config_secret: tuple[str, str] | None = None
    depends_on: tuple[str, ...] = ()
    autoscaled: tuple[str, ...] = ()  # Deployment names whose replicas an autoscaler owns


class GitOpsPlan(BaseModel):
    """What the Argo CD and Flux emitters need: the repo, the layout, the environments."""

    model_config = ConfigDict(frozen=True)

    stack: str
    repo_url: str
    revision: str
    path: str  # build output root inside the repo, no leading "./", "" for the root
    chart_path: str  # <path>/charts/<stack>
    overlays_path: str  # <path>/overlays
    argocd: ArgoCD
    flux: Flux
    environments: tuple[GitOpsEnvironment, ...]
