"""The stack spec, v1alpha1, as pydantic models: field names, types and every default.

This module is the one place defaults live; `modelapi-compile schema` and the spec reference
(docs/reference.md) are generated from it. Field names are camelCase in YAML (the public
contract in SPEC.md) and snake_case in Python.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from .accelerators import canonical

API_VERSION = "modelapi.dev/v1alpha1"
KIND = "ModelStack"

DEFAULT_OLLAMA_IMAGE = "ollama/ollama:0.12.10"
DEFAULT_VLLM_IMAGE = "vllm/vllm-openai:v0.11.0"
DEFAULT_VLLM_CPU_IMAGE = "public.ecr.aws/q9t5s3a7/vllm-cpu-release-repo:v0.10.2"
DEFAULT_LITELLM_IMAGE = "ghcr.io/berriai/litellm:v1.90.6"
DEFAULT_KUBERNETES_VERSION = "1.31.0"

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
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


K8sObject = dict[str, Any]  # checked against the Kubernetes schema of kubernetesVersion


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


class VllmAutoscaling(Model):
    """A KEDA ScaledObject: replicas follow vLLM's queue, `vllm:num_requests_waiting`
    per replica, read from monitoring.prometheusURL."""

    min_replicas: Annotated[int, Field(ge=0)] = Field(
        1, description="0: scale to zero when idle (KEDA activation)")
    max_replicas: Annotated[int, Field(ge=1)] = Field(description="upper bound of replicas")
    waiting_requests: Annotated[int, Field(ge=1)] = Field(
        5, description="target waiting requests per replica (KEDA threshold)")
    activation_waiting_requests: Annotated[int, Field(ge=0)] = Field(
        0, description="waiting requests above which KEDA wakes the model from zero "
        "(activationThreshold)")
    polling_interval: Annotated[int, Field(ge=1)] = Field(
        30, description="seconds between KEDA's queries")
    cooldown_period: Annotated[int, Field(ge=0)] = Field(
        300, description="seconds idle before scaling to zero (minReplicas 0 only: KEDA "
        "ignores it otherwise)")
    scale_down_stabilization_seconds: Annotated[int, Field(ge=0, le=3600)] | None = Field(
        None, description="seconds the queue must stay low before a replica is removed "
        "(HPA behavior.scaleDown, one replica at a time); null: the startup budget, at most "
        "3600 (the HPA's limit)")


class Cache(Model):
    """Persistent model cache: a new PVC, or an existing claim."""

    size: Quantity = "50Gi"
    storage_class: str | None = Field(None, description="null: the cluster default class")
    access_mode: Literal["ReadWriteOnce", "ReadWriteMany", "ReadWriteOncePod"] = "ReadWriteOnce"
    existing_claim: Name | None = Field(None, description="mount this PVC instead of creating one")


class Gpu(Model):
    count: Annotated[int, Field(ge=0, le=64)] = Field(
        1, description="GPUs per replica; 0 = CPU mode; also the tensor parallel size"
    )
    resource: str = Field("nvidia.com/gpu", description="extended resource name")
    accelerator: Annotated[str, AfterValidator(canonical)] | None = Field(
        None, description="vendor-neutral accelerator name (nvidia-l4, nvidia-h100-80gb, "
        "amd-mi300x, ...; see the accelerator table); common spellings such as nvidia-h100 "
        "are read as the table's name")
    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[dict[str, Any]] = Field(
        default_factory=list, description="added to the toleration of GPU nodes' taint "
        "('<resource>' Exists NoSchedule), e.g. a spot or dedicated-pool taint"
    )
    runtime_class_name: str | None = None


# vLLM's LoRAConfig.max_lora_rank (vllm/config/lora.py, MaxLoRARanks): any other value
# fails the engine's config check at start, so the pod crash-loops.
LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)


def _lora_rank(value: int) -> int:
    if value not in LORA_RANKS:
        above = [rank for rank in LORA_RANKS if rank >= value]
        hint = f"; use {above[0]}, the next rank vLLM accepts" if above else ""
        raise ValueError(f"vLLM accepts a max LoRA rank of {', '.join(map(str, LORA_RANKS))}, "
                         f"not {value}{hint}")
    return value


class Engine(Model):
    max_model_len: Annotated[int, Field(ge=1)] | None = None
    dtype: Literal["auto", "half", "float16", "bfloat16", "float", "float32"] = "auto"
    gpu_memory_utilization: Annotated[float, Field(gt=0, le=1)] = 0.9
    quantization: str | None = None
    max_loras: Annotated[int, Field(ge=1)] | None = Field(
        None, description="--max-loras: adapters in one batch (vLLM default 1)")
    max_lora_rank: Annotated[int, AfterValidator(_lora_rank)] | None = Field(
        None, description="--max-lora-rank: the largest adapter rank, one of "
        + ", ".join(map(str, LORA_RANKS)) + " (vLLM default 16)")
    extra_args: list[str] = Field(default_factory=list)


MODEL_SCHEMES = ("pvc", "s3", "gs")


class PoolGateway(Model):
    """The Gateway (Gateway API Inference Extension) in front of an InferencePool."""

    name: Name = Field(description="the Gateway the HTTPRoute attaches to")
    namespace: Name = Field(description="the Gateway's namespace")
    url: Url = Field(description="what LiteLLM calls: the Gateway's in-cluster address, "
                     "e.g. http://inference-gw.gateway-system.svc.cluster.local")
    section_name: Name | None = Field(None, description="listener of the Gateway")


class InferencePool(Model):
    """Replicas behind the Gateway API Inference Extension (pool, picker, HTTPRoute).

    An InferencePool over the model's pods, its endpoint picker (which chooses a replica by
    queue depth and KV-cache use) and an HTTPRoute from the Gateway to the pool."""

    gateway: PoolGateway
    from_namespace: Name | None = Field(
        None, description="namespace of the Gateway's proxy pods, which the NetworkPolicies "
        "admit to the model and its picker; null: the Gateway's namespace (Envoy Gateway "
        "runs them in envoy-gateway-system by default)")


class LoraAdapter(Model):
    """A LoRA adapter vLLM serves next to its base model, under its own model name."""

    name: Annotated[str, Field(min_length=1, max_length=128,
                               pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$")] = Field(
        description="the model name clients (LiteLLM routes, agents) send")
    source: Annotated[str, Field(min_length=1)] = Field(
        description="Hugging Face repo id, pvc://<claim>/<path>, or an absolute path")


class ObjectStorage(Model):
    """Credentials and endpoint for a model streamed from s3:// or gs://: Secret
    references or workload identity, never values."""

    endpoint: Url | None = Field(
        None, description="S3-compatible endpoint (MinIO, Ceph...): AWS_ENDPOINT_URL, "
        "path-style addressing")
    region: Annotated[str, Field(pattern=r"^[a-z0-9-]+$")] | None = Field(
        None, description="AWS_DEFAULT_REGION")
    access_key_secret: SecretRef | None = Field(None, description="s3: AWS_ACCESS_KEY_ID")
    secret_key_secret: SecretRef | None = Field(None, description="s3: AWS_SECRET_ACCESS_KEY")
    credentials_file_secret: SecretRef | None = Field(
        None, description="gs: a service account key file, mounted read-only and named by "
        "GOOGLE_APPLICATION_CREDENTIALS")
    service_account_annotations: dict[str, str] = Field(
        default_factory=dict, description="workload identity on the pod's ServiceAccount, "
        "e.g. eks.amazonaws.com/role-arn or iam.gke.io/gcp-service-account")


class Vllm(PodOptions):
    model: Annotated[str, Field(min_length=1)] = Field(
        description="Hugging Face model id, pvc://<claim>/<path> (an existing claim, mounted "
        "read-only), s3://bucket/path or gs://bucket/path (streamed by vLLM's Run:ai loader)")
    served_model_name: str | None = Field(None, description="name clients send; default: model")
    image: Image = DEFAULT_VLLM_IMAGE
    cpu_image: Image = Field(DEFAULT_VLLM_CPU_IMAGE, description="image used when gpu.count is 0")
    replicas: Annotated[int, Field(ge=0)] = 1
    gpu: Gpu = Field(default_factory=Gpu)
    cache: Cache = Field(default_factory=Cache)
    engine: Engine = Field(default_factory=Engine)
    hf_token_secret: SecretRef | None = None
    api_key_secret: SecretRef | None = None
    resources: Resources = Field(default_factory=Resources)
    startup_timeout: Duration = Field("30m", description="budget for model download and load")
    shm_size: Quantity | None = Field(
        None, description="size limit of the /dev/shm memory volume; null: 2Gi, or 4Gi per "
        "GPU with tensor parallelism (gpu.count > 1); it counts against the memory limit")
    max_surge: Annotated[int, Field(ge=0)] = Field(
        1, description="extra replicas (GPUs) a rolling update may start before stopping old "
        "ones (maxUnavailable 0); 0: no spare GPUs, replace one replica at a time")
    autoscaling: VllmAutoscaling | None = Field(
        None, description="KEDA on vLLM's queue; needs monitoring.prometheusURL")
    object_storage: ObjectStorage | None = Field(
        None, description="credentials and endpoint for an s3:// or gs:// model")
    hf_hub_offline: bool = Field(
        False, description="HF_HUB_OFFLINE=1: never call the Hugging Face Hub (air-gapped; "
        "models from pvc://, object storage or a pre-filled cache)")
    lora_adapters: list[LoraAdapter] = Field(
        default_factory=list, description="LoRA adapters served as models of their own "
        "(--enable-lora --lora-modules)")
    run_as_root: bool = Field(
        False, description="run as the image's user (root) with a writable root filesystem, "
        "for an image that truly needs it; the namespace then enforces Pod Security baseline "
        "instead of restricted. Default: the shared non-root UID, caches on writable volumes")
    do_not_disrupt: bool | None = Field(
        None, description="karpenter.sh/do-not-disrupt on the pods: Karpenter never "
        "consolidates or expires their node while they run; null: on for a single replica "
        "with GPUs under cluster.gpuNodeLabels: karpenter; false to let Karpenter move it")
    nodes: Annotated[int, Field(ge=1, le=32)] = Field(
        1, description="nodes one replica spans: above 1, a LeaderWorkerSet group of a leader "
        "and nodes-1 workers, gpu.count GPUs each; tensor parallel = gpu.count, pipeline "
        "parallel = nodes")
    inference_pool: InferencePool | None = Field(
        None, description="serve the replicas through the Gateway API Inference Extension: "
        "InferencePool, endpoint picker and HTTPRoute; LiteLLM then calls gateway.url")

    @property
    def served_name(self) -> str:
        return self.served_model_name or self.model

    @property
    def model_scheme(self) -> str | None:
        """pvc, s3 or gs for a model outside the Hugging Face Hub, else None."""
        scheme, sep, _ = self.model.partition("://")
        return scheme if sep else None


class OllamaCache(Cache):
    size: Quantity = "20Gi"


class OllamaGpu(Gpu):
    """Ollama's GPUs: none unless asked (Ollama runs on CPU), so the schema, the reference
    and `explain` show the default that applies."""

    count: Annotated[int, Field(ge=0, le=64)] = Field(
        0, description="GPUs per replica; 0 = CPU mode (Ollama's default)"
    )


class Ollama(PodOptions):
    image: Image = DEFAULT_OLLAMA_IMAGE
    models: list[Annotated[str, Field(min_length=1)]] = Field(
        default_factory=list, description="pulled before the server reports ready"
    )
    cache: OllamaCache = Field(default_factory=OllamaCache)
    keep_alive: str = Field("24h", description="OLLAMA_KEEP_ALIVE: how long models stay loaded")
    startup_timeout: Duration = Field(
        "30m", description="budget for starting and pulling the models (rollout deadlines)")
    gpu: OllamaGpu = Field(default_factory=OllamaGpu)
    resources: Resources = Field(default_factory=Resources)
    do_not_disrupt: bool | None = Field(
        None, description="karpenter.sh/do-not-disrupt on the pods: Karpenter never "
        "consolidates or expires their node while they run; null: on for a single replica "
        "with GPUs under cluster.gpuNodeLabels: karpenter; false to let Karpenter move it")


class LitellmModel(Model):
    """One LiteLLM model_list entry."""

    name: Annotated[str, Field(min_length=1)] = Field(description="alias clients send")
    backend: Name | None = Field(None, description="another modelAPI of this spec")
    model: str | None = Field(None, description="the backend's model id; default: name")
    url: Url | None = Field(None, description="a raw endpoint outside the spec")
    provider: str | None = Field(None, description="LiteLLM provider prefix for url")
    api_key_secret: SecretRef | None = Field(None, description="key for url")
    params: dict[str, Any] = Field(
        default_factory=dict, description="more litellm_params (timeout, stream_timeout, rpm, "
        "tpm, max_retries, order, weight, ...); not model, api_base or api_key")

    @model_validator(mode="after")
    def _backend_or_url(self) -> LitellmModel:
        if (self.backend is None) == (self.url is None):
            raise ValueError("set exactly one of backend (a modelAPI) or url (a raw endpoint)")
        if self.url is not None and not self.provider:
            raise ValueError("a url needs a provider (LiteLLM prefix such as openai, "
                             "ollama_chat, hosted_vllm)")
        if self.backend is not None and (self.provider or self.api_key_secret):
            raise ValueError("provider and apiKeySecret go with url, not backend")
        return self


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


class Database(NetworkAddress):
    """LiteLLM's Postgres; the URL itself stays in `databaseUrlSecret`."""

    port: Port = Field(5432, description="port the database listens on")


class Redis(NetworkAddress):
    """Shared state of LiteLLM replicas: router_settings redis_host/redis_port/redis_password."""

    host: Host = Field(description="Redis host as LiteLLM connects to it")
    port: Port = Field(6379, description="Redis port")
    password_secret: SecretRef | None = Field(None, description="Secret with the password")


class Router(Model):
    strategy: Literal[
        "simple-shuffle", "least-busy", "usage-based-routing", "usage-based-routing-v2",
        "latency-based-routing", "cost-based-routing",
    ] = "simple-shuffle"
    num_retries: Annotated[int, Field(ge=0)] = 2
    timeout: Annotated[float, Field(gt=0)] = 600
    fallbacks: dict[str, list[str]] = Field(default_factory=dict)
    redis: Redis | None = Field(
        None, description="shared routing state; required by least-busy, usage-based and "
        "latency-based routing with more than one replica")


class Gateway(Model):
    """A Gateway API Gateway the HTTPRoute attaches to."""

    name: Name
    namespace: Name
    section_name: Name | None = Field(None, description="listener of the Gateway")


class Expose(Model):
    """The proxy outside the cluster: an Ingress, or an HTTPRoute with `gateway`."""

    host: Host = Field(description="public host name")
    ingress_class_name: str | None = Field(None, description="Ingress class (Ingress only)")
    tls_secret: Name | None = Field(None, description="TLS Secret of the host (Ingress only)")
    from_namespace: Name | None = Field(
        None, description="namespace of the ingress controller or gateway proxy pods the "
        "NetworkPolicy admits (Envoy Gateway: its controller's namespace, "
        "envoy-gateway-system by default, not the Gateway's)")
    from_cidrs: list[Cidr] = Field(
        default_factory=list, alias="fromCIDRs",
        description="address ranges the NetworkPolicy admits: load balancers with no "
        "in-cluster proxy pods (ALB IP targets, GKE's managed gateways)")
    gateway: Gateway | None = Field(None, description="attach an HTTPRoute to this Gateway")
    annotations: dict[str, str] = Field(default_factory=dict,
                                        description="annotations of the Ingress or HTTPRoute")

    @model_validator(mode="after")
    def _one_kind(self) -> Expose:
        if self.gateway is not None and (self.ingress_class_name or self.tls_secret):
            raise ValueError("ingressClassName and tlsSecret belong to an Ingress; with "
                             "gateway, TLS is set on the Gateway's listener")
        if self.from_namespace is None and not self.from_cidrs:
            raise ValueError(self._missing_source())
        return self

    @property
    def sources(self) -> list[str]:
        """What the NetworkPolicy admits the exposed traffic from: a namespace, then CIDRs."""
        return [*([self.from_namespace] if self.from_namespace else []), *self.from_cidrs]

    def _missing_source(self) -> str:
        """What to set when nothing says where the traffic comes from: a Gateway's proxies
        do not always run in the Gateway's namespace, so the compiler does not guess."""
        if self.gateway is None:
            return ("set fromNamespace: the namespace of the ingress controller pods, which "
                    "the NetworkPolicy admits (or fromCIDRs for a load balancer with no "
                    "in-cluster proxy pods)")
        return ("set fromNamespace to the namespace where the proxy pods of Gateway "
                f"{self.gateway.namespace}/{self.gateway.name} run: envoy-gateway-system "
                "for Envoy Gateway (its default controller-namespace mode), "
                f"{self.gateway.namespace} for Istio or Envoy Gateway's Gateway Namespace "
                "Mode; or fromCIDRs for a load balancer with no in-cluster proxy pods "
                "(ALB IP targets, GKE's managed gateways)")


class Litellm(PodOptions):
    image: Image = DEFAULT_LITELLM_IMAGE
    replicas: Annotated[int, Field(ge=0)] = 1
    master_key_secret: SecretRef | None = None
    database_url_secret: SecretRef | None = Field(
        None, description="DATABASE_URL for LiteLLM's own database; none unless set"
    )
    database: Database | None = Field(
        None, description="where the database listens, for the egress rule")
    metrics_key_secret: SecretRef | None = Field(
        None, description="key the ServiceMonitor sends to /metrics (a virtual key); none: "
        "/metrics is open, never checked with the master key")
    models: list[LitellmModel] = Field(default_factory=list)
    router: Router = Field(default_factory=Router)
    settings: dict[str, Any] = Field(
        default_factory=dict, description="litellm_settings over the defaults (drop_params "
        "and disable_hf_tokenizer_download true); no secret values, os.environ/ references "
        "allowed")
    allow_unknown_keys: list[Annotated[str, Field(min_length=1)]] = Field(
        default_factory=list, description="keys of `settings` and of the models' `params` "
        "to pass on although the pinned LiteLLM release does not know them (a newer image's "
        "keys); any other unknown key is refused as a likely typo")
    expose: Expose | None = None
    resources: Resources = Field(default_factory=Resources)
    autoscaling: Autoscaling | None = Field(None, description="HPA on CPU")


class External(Model):
    url: Url
    models: list[Annotated[str, Field(min_length=1)]] = Field(min_length=1)
    api_key_secret: SecretRef | None = None


BACKEND_KINDS = ("litellm", "vllm", "ollama", "external")


class ModelAPI(Model):
    name: Name
    litellm: Litellm | None = None
    vllm: Vllm | None = None
    ollama: Ollama | None = None
    external: External | None = None

    @model_validator(mode="after")
    def _exactly_one_kind(self) -> ModelAPI:
        kinds = [k for k in BACKEND_KINDS if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError("set exactly one of " + " | ".join(BACKEND_KINDS)
                             + (f" (found {', '.join(kinds)})" if kinds else ""))
        return self

    @property
    def kind(self) -> str:
        return next(k for k in BACKEND_KINDS if getattr(self, k) is not None)


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
