"""The spec's modelAPIs: the four backend kinds (vLLM, Ollama, LiteLLM, an external
endpoint) with every default, their pinned images, and the rules within one backend."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, model_validator

from .accelerators import canonical
from .fields import (
    Autoscaling,
    Cidr,
    Duration,
    Host,
    Image,
    Model,
    Name,
    NetworkAddress,
    PodOptions,
    Port,
    Quantity,
    Resources,
    SecretRef,
    Url,
)

DEFAULT_OLLAMA_IMAGE = "ollama/ollama:0.12.10"


DEFAULT_VLLM_IMAGE = "vllm/vllm-openai:v0.11.0"


DEFAULT_VLLM_CPU_IMAGE = "public.ecr.aws/q9t5s3a7/vllm-cpu-release-repo:v0.10.2"


DEFAULT_LITELLM_IMAGE = "ghcr.io/berriai/litellm:v1.90.6"


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
