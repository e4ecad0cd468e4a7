"""The building blocks of the spec's models: the base model (unknown fields are errors,
camelCase in YAML), the value types with their checks (names, quantities, durations, images,
URLs, hosts, CIDRs), Secret references, env vars, resources and the pod pass-through."""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


_DNS_1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


K8sObject = dict[str, Any]  # checked against the Kubernetes schema of kubernetesVersion


_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")


_DURATION = re.compile(r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$")  # what Flux's CRDs accept


_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)")


_DURATION_SECONDS = {"ms": 1e-3, "s": 1, "m": 60, "h": 3600}


_IMAGE = re.compile(r"^[a-z0-9]+([._/:-][a-zA-Z0-9_.-]+)*(@sha256:[a-f0-9]{64})?$")


_URL = re.compile(r"^https?://[^\s/$.?#][^\s]*$")


_VERSION = re.compile(r"^v?1\.[0-9]{2}(\.[0-9]+)?$")


_HOST = re.compile(r"^[a-zA-Z0-9]([-a-zA-Z0-9.:]*[a-zA-Z0-9])?$")


_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")


def _dns_label(value: str) -> str:
    if len(value) > 63 or not _DNS_LABEL.match(value):
        raise ValueError(
            f"'{value}' is not a DNS-1123 label: lower-case letters, digits and '-', "
            "starting and ending with a letter or digit, at most 63 characters"
        )
    return value


def _stack_name(value: str) -> str:
    if len(value) > 40 or not _DNS_1035_LABEL.match(value):
        raise ValueError(
            f"'{value}' must be a DNS-1035 label of at most 40 characters (lower-case letters, "
            "digits and '-', starting with a letter): it prefixes every object name"
        )
    return value


def _quantity(value: str | int) -> str | int:
    if isinstance(value, bool) or not _QUANTITY.match(str(value)):
        raise ValueError(f"'{value}' is not a Kubernetes quantity such as 500m, 2, 16Gi")
    return value


def _duration(value: str) -> str:
    if not _DURATION.match(value):
        raise ValueError(f"'{value}' is not a duration such as 90s, 30m or 1h30m")
    return value


def duration_seconds(value: str) -> int:
    """`1h30m` -> 5400 (rounded up to whole seconds)."""
    total = sum(float(n) * _DURATION_SECONDS[u] for n, u in _DURATION_PART.findall(value))
    return max(1, int(-(-total // 1)))


def _image(value: str) -> str:
    if not _IMAGE.match(value):
        raise ValueError(f"'{value}' is not an image reference such as registry/name:tag")
    if "@sha256:" not in value:
        tail = value.rsplit("/", 1)[-1]
        if ":" not in tail:
            raise ValueError(f"image '{value}' has no tag; pin a version tag or a digest")
        if tail.endswith(":latest"):
            raise ValueError(f"image '{value}' uses 'latest'; pin a version tag or a digest")
    return value


def _url(value: str) -> str:
    if not _URL.match(value):
        raise ValueError(f"'{value}' is not an http(s) URL")
    return value


def _kubernetes_version(value: str) -> str:
    if not _VERSION.match(value):
        raise ValueError(f"'{value}' is not a Kubernetes version such as 1.31.0")
    return value.lstrip("v")


def _env_name(value: str) -> str:
    if not _ENV_NAME.match(value):
        raise ValueError(f"'{value}' is not a valid environment variable name")
    return value


Name = Annotated[str, AfterValidator(_dns_label)]


StackName = Annotated[str, AfterValidator(_stack_name)]


# Namespaces of the cluster's own components: a stack there would share them with CoreDNS,
# kube-proxy and the node leases, which no NetworkPolicy or Pod Security label may touch.
SYSTEM_NAMESPACES = ("kube-system", "kube-public", "kube-node-lease")


# The namespace every cluster has and other workloads already use: shared unless the spec
# says otherwise (sharedNamespace: false).
DEFAULT_NAMESPACE = "default"


def _target_namespace(value: str) -> str:
    if value in SYSTEM_NAMESPACES:
        raise ValueError(f"'{value}' belongs to the cluster's own components; deploy the "
                         "stack into a namespace of its own, such as its name, or one your "
                         "team owns")
    return value


TargetNamespace = Annotated[Name, AfterValidator(_target_namespace)]


Quantity = Annotated[str | int, AfterValidator(_quantity)]


Duration = Annotated[str, AfterValidator(_duration)]


Image = Annotated[str, AfterValidator(_image)]


Url = Annotated[str, AfterValidator(_url)]


Port = Annotated[int, Field(ge=1, le=65535)]


Fraction = Annotated[float, Field(gt=0, le=1)]


class Model(BaseModel):
    """Base of every spec model: unknown fields are errors, camelCase in YAML."""

    model_config = ConfigDict(
        extra="forbid", strict=True, alias_generator=to_camel, populate_by_name=True, frozen=True
    )


class SecretRef(Model):
    """A key of a Kubernetes Secret that already exists (or an ExternalSecret makes)."""

    name: Name = Field(description="Secret name")
    key: Annotated[str, Field(min_length=1, max_length=253, pattern=r"^[-._a-zA-Z0-9]+$")] = Field(
        description="key inside the Secret"
    )


class Resources(Model):
    """Container resources, Kubernetes shape; unset means the per-kind default."""

    requests: dict[str, Quantity] = Field(default_factory=dict)
    limits: dict[str, Quantity] = Field(default_factory=dict)


class SecretKeySelector(Model):
    name: Name
    key: Annotated[str, Field(min_length=1)]
    optional: bool | None = None


class ConfigMapKeySelector(Model):
    name: Name
    key: Annotated[str, Field(min_length=1)]
    optional: bool | None = None


class FieldSelector(Model):
    field_path: str
    api_version: str | None = None


class EnvVarSource(Model):
    secret_key_ref: SecretKeySelector | None = None
    config_map_key_ref: ConfigMapKeySelector | None = None
    field_ref: FieldSelector | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> EnvVarSource:
        if sum(x is not None for x in (self.secret_key_ref, self.config_map_key_ref,
                                        self.field_ref)) != 1:
            raise ValueError("set exactly one of secretKeyRef, configMapKeyRef, fieldRef")
        return self


class EnvVar(Model):
    """An extra environment variable, Kubernetes EnvVar shape."""

    name: Annotated[str, AfterValidator(_env_name)]
    value: str | None = None
    value_from: EnvVarSource | None = None

    @model_validator(mode="after")
    def _one_source(self) -> EnvVar:
        if self.value is not None and self.value_from is not None:
            raise ValueError("set value or valueFrom, not both")
        if self.value is None and self.value_from is None:
            raise ValueError("set value or valueFrom")
        return self


class PodOptions(Model):
    """Pod pass-through, in Kubernetes' own shapes (validate.py checks each against the
    schema of `kubernetesVersion` and reports problems at their line in the spec)."""

    env: list[EnvVar] = Field(default_factory=list, description="extra environment, "
                              "Kubernetes EnvVar shape; secrets only by valueFrom")
    extra_volumes: list[K8sObject] = Field(
        default_factory=list, description="extra pod volumes, Kubernetes Volume shape")
    extra_volume_mounts: list[K8sObject] = Field(
        default_factory=list, description="extra mounts of the main container, VolumeMount shape")
    affinity: K8sObject | None = Field(None, description="pod affinity, Affinity shape")
    topology_spread_constraints: list[K8sObject] | None = Field(
        None, description="null: replicated workloads spread across nodes (ScheduleAnyway); "
        "[] for none")
    priority_class_name: Name | None = Field(None, description="PriorityClass of the pods")
    image_pull_secrets: list[Name] = Field(
        default_factory=list, description="names of docker-registry Secrets, added to "
        "cluster.imagePullSecrets")
    pod_annotations: dict[str, str] = Field(default_factory=dict,
                                            description="annotations of the pods")
    pod_labels: dict[str, str] = Field(default_factory=dict, description="extra pod labels "
                                       "(never under app.kubernetes.io/ or modelapi.dev/)")
    node_selector: dict[str, str] = Field(
        default_factory=dict, description="node labels, merged over the GPU labels")
    termination_grace_period_seconds: Annotated[int, Field(ge=0)] | None = Field(
        None, description="seconds a stopping pod may take; null: derived from the longest "
        "request its clients allow (vLLM, LiteLLM) or 30; a shorter value cuts longer "
        "requests")


class Autoscaling(Model):
    """A HorizontalPodAutoscaler (autoscaling/v2) on CPU; it owns the replica count."""

    min_replicas: Annotated[int, Field(ge=1)] = 1
    max_replicas: Annotated[int, Field(ge=1)] = Field(description="upper bound of replicas")
    cpu_utilization: Annotated[int, Field(ge=1, le=1000)] = Field(
        80, description="target average CPU, percent of the CPU request")


def _host(value: str) -> str:
    if not _HOST.match(value) or len(value) > 253:
        raise ValueError(f"'{value}' is not a host name or IP address")
    return value


def _cidr(value: str) -> str:
    try:
        ipaddress.ip_network(value, strict=True)
    except ValueError:
        raise ValueError(f"'{value}' is not a CIDR such as 10.20.0.0/16 (host bits unset)"
                         ) from None
    return value


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


Host = Annotated[str, AfterValidator(_host)]


Cidr = Annotated[str, AfterValidator(_cidr)]


class NetworkAddress(Model):
    """Where a service outside the stack listens, for an exact NetworkPolicy egress rule:
    an IP, an in-cluster Service (`name`, `name.namespace`, `name.namespace.svc...`) or, for
    a DNS name outside the cluster, the address range in `cidr`."""

    host: Host | None = Field(None, description="IP address or in-cluster Service name")
    port: Port = Field(description="port the server listens on (the pod's port)")
    cidr: Cidr | None = Field(None, description="address range to allow instead of `host` "
                              "(required for a DNS name outside the cluster)")

    @model_validator(mode="after")
    def _host_or_cidr(self) -> NetworkAddress:
        if self.host is None and self.cidr is None:
            raise ValueError("set host (an IP or in-cluster Service) or cidr")
        return self

    def service_namespace(self) -> str | None:
        """The namespace of the in-cluster Service `host` names ("" for the stack's own:
        a short name), or None for an IP address or a DNS name outside the cluster."""
        host = self.host or ""
        if not host or _is_ip(host):
            return None
        parts = host.lower().split(".")
        if len(parts) == 1:
            return ""
        if len(parts) >= 3 and parts[2] == "svc":
            return parts[1]
        return None

    def ip_network(self) -> str | None:
        """The CIDR an egress rule allows: `cidr`, or `host` as a single address."""
        if self.cidr:
            return self.cidr
        if self.host and _is_ip(self.host):
            address = ipaddress.ip_address(self.host)
            return f"{address}/{address.max_prefixlen}"
        return None
