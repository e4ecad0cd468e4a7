"""How each kind of model API and agent runs: one builder per kind, each returning a
`Workload` (container, probes, volumes, security) from its spec and the bound references.

Facts encoded here (ports, flags, health paths, image users) and where they come from are
listed in docs/internals.md, "Backend facts and pinned images".
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from .apiversions import minor_version
from .model_sources import MOUNT_ROOT, claims, local_source
from .resolved import (
    Autoscaler,
    ConfigFile,
    Exposure,
    Group,
    K8s,
    NetworkRules,
    Persistence,
    Probes,
    SecretKey,
    Workload,
)
from .spec import (
    Agent,
    Autoscaling,
    Cache,
    Expose,
    Gpu,
    Litellm,
    Ollama,
    PodOptions,
    Resources,
    Vllm,
    VllmAutoscaling,
    duration_seconds,
)

VLLM_PORT = 8000
LITELLM_PORT = 4000
OLLAMA_PORT = 11434
NON_ROOT_UID = 65532
SECCOMP = {"type": "RuntimeDefault"}
# vLLM's gauge of requests queued for a slot, per server (KEDA divides by replicas).
VLLM_QUEUE_METRIC = "vllm:num_requests_waiting"
SPREAD_KEY = "kubernetes.io/hostname"
RUNAI_STREAMER = "runai_streamer"  # vLLM's --load-format for s3:// and gs:// models
CREDENTIALS_DIR = "/var/run/secrets/model-storage"

# What the builders below set themselves: the spec's env and extraVolumes may not reuse these
# names (a duplicate env name makes server-side apply fail; a duplicate volume, the pod).
COMPILER_ENV: dict[str, frozenset[str]] = {
    "agent": frozenset({"MODEL_API_URL", "MODEL_NAME", "MODEL_API_KEY"}),
    "vllm": frozenset({"HF_HOME", "HF_TOKEN", "VLLM_API_KEY", "HF_HUB_OFFLINE",
                       "HOME", "XDG_CACHE_HOME", "XDG_CONFIG_HOME", "VLLM_CACHE_ROOT",
                       "VLLM_CONFIG_ROOT", "TRITON_CACHE_DIR", "TORCHINDUCTOR_CACHE_DIR",
                       "NUMBA_CACHE_DIR",
                       "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL",
                       "AWS_DEFAULT_REGION", "AWS_EC2_METADATA_DISABLED",
                       "RUNAI_STREAMER_S3_USE_VIRTUAL_ADDRESSING",
                       "GOOGLE_APPLICATION_CREDENTIALS"}),
    "litellm": frozenset({"LITELLM_MASTER_KEY", "DATABASE_URL", "LITELLM_MIGRATION_DIR",
                          "ROUTER_REDIS_PASSWORD", "HOME", "XDG_CACHE_HOME"}),
    "ollama": frozenset({"HOME", "OLLAMA_HOST", "OLLAMA_KEEP_ALIVE"}),
}
COMPILER_VOLUMES: dict[str, frozenset[str]] = {
    "agent": frozenset({"tmp"}),
    "vllm": frozenset({"model-cache", "dshm", "model-source", "object-store-credentials",
                       "home", "tmp"}),
    "litellm": frozenset({"config", "tmp", "home", "migrations"}),
    "ollama": frozenset({"data", "tmp", "puller-tmp"}),
}

DEFAULT_RESOURCES: dict[str, K8s] = {
    "agent": {"requests": {"cpu": "100m", "memory": "256Mi"},
              "limits": {"cpu": "1", "memory": "512Mi"}},
    # LiteLLM's production guide: 2 vCPU and 4 GB per instance, one Uvicorn worker per pod.
    "litellm": {"requests": {"cpu": "2", "memory": "4Gi"},
                "limits": {"cpu": "2", "memory": "4Gi"}},
    "ollama": {"requests": {"cpu": "1", "memory": "4Gi"},
               "limits": {"cpu": "4", "memory": "8Gi"}},
    "vllm-gpu": {"requests": {"cpu": "4", "memory": "16Gi"},
                 "limits": {"cpu": "8", "memory": "32Gi"}},
    "vllm-cpu": {"requests": {"cpu": "4", "memory": "8Gi"},
                 "limits": {"cpu": "8", "memory": "16Gi"}},
}


@dataclass(frozen=True)
class Cluster:
    """Per-environment cluster conventions the builders need."""

    gpu_node_labels: dict[str, str]  # accelerator mapping already applied
    storage_class: str | None
    image: Callable[[str], str]  # image reference -> image reference (registry mirror)
    image_pull_secrets: tuple[str, ...] = ()  # cluster.imagePullSecrets


def http_probe(path: str, *, period: int, timeout: int, failures: int) -> K8s:
    return {"httpGet": {"path": path, "port": "http"}, "periodSeconds": period,
            "timeoutSeconds": timeout, "failureThreshold": failures}


def resources(kind: str, spec: Resources, extra: dict[str, Any] | None = None,
              memory_volume: str | None = None, defaults: K8s | None = None) -> K8s:
    """Per-kind defaults (or `defaults`), overridden key by key by the spec, plus extended
    resources. A memory-backed volume (/dev/shm) is charged to the container's memory: a
    default memory limit grows by its size beyond the first 2Gi, which the defaults already
    allow for."""
    defaults = defaults or DEFAULT_RESOURCES[kind]
    default_limits = dict(defaults["limits"])
    if memory_volume:
        extra_gib = max(0, _gib(memory_volume) - SHM_BASE_GIB)
        if extra_gib:
            default_limits["memory"] = f"{_gib(default_limits['memory']) + extra_gib}Gi"
    requests = {**defaults["requests"], **spec.requests}
    limits = {**default_limits, **spec.limits}
    requests, limits = within_limits(requests, limits, spec)
    requests |= extra or {}
    limits |= extra or {}
    return {"requests": _sorted(requests), "limits": _sorted(limits)}


def within_limits(requests: dict[str, Any], limits: dict[str, Any], spec: Resources
                  ) -> tuple[dict[str, Any], dict[str, Any]]:
    """The API server refuses a container whose request is above its limit: a request the
    spec raises above a default limit raises that limit, and a limit the spec lowers below a
    default request lowers that request (both set by the spec: validate.py refuses it)."""
    requests, limits = dict(requests), dict(limits)
    for name in sorted(set(requests) & set(limits)):
        if quantity(requests[name]) <= quantity(limits[name]):
            continue
        if name in spec.limits and name not in spec.requests:
            requests[name] = limits[name]
        else:
            limits[name] = requests[name]
    return requests, limits


_QUANTITY_SUFFIXES = {"m": Decimal("0.001"), "": Decimal(1), "k": Decimal(10) ** 3,
                      "M": Decimal(10) ** 6, "G": Decimal(10) ** 9, "T": Decimal(10) ** 12,
                      "P": Decimal(10) ** 15, "E": Decimal(10) ** 18, "Ki": Decimal(2) ** 10,
                      "Mi": Decimal(2) ** 20, "Gi": Decimal(2) ** 30, "Ti": Decimal(2) ** 40,
                      "Pi": Decimal(2) ** 50, "Ei": Decimal(2) ** 60}


def quantity(value: str | int) -> Decimal:
    """A Kubernetes quantity (spec.py's form: a number and a suffix) as a number."""
    match = re.match(r"^([0-9.]+)([A-Za-z]*)$", str(value))
    if not match or match[2] not in _QUANTITY_SUFFIXES:
        raise ValueError(f"not a quantity: {value!r}")
    return Decimal(match[1]) * _QUANTITY_SUFFIXES[match[2]]


# vLLM runs an API server, an engine core and one worker per GPU, each a busy process: its
# guidance is at least 2 + N physical cores for N GPUs, which is 2 vCPUs each on the
# hyper-threaded instances clouds sell.
VLLM_PROCESSES_BESIDES_GPUS = 2
VCPUS_PER_CORE = 2
VLLM_HOST_GIB = 8  # Python processes, tokenizers, CUDA context on the host side
BYTES_PER_PARAMETER = 2  # 16-bit weights: the most an unquantized checkpoint holds
_PARAMETERS = re.compile(r"(?i)(?:^|[-_/.:])(?:(\d+)x)?(\d+(?:\.\d+)?)b(?=$|[-_/.:])")


def model_weights_gib(*names: str) -> int:
    """The weights' size implied by a parameter count in the model's name ("Llama-3.1-70B",
    "Mixtral-8x7B"), in GiB at 16 bits; 0 when no name tells."""
    billions = [float(m[2]) * int(m[1] or 1) for name in names for m in _PARAMETERS.finditer(name)]
    if not billions:
        return 0
    return math.ceil(max(billions) * 1e9 * BYTES_PER_PARAMETER / 2**30)


def vllm_default_resources(gpus: int, weights_gib: int) -> K8s:
    """vLLM's defaults: CPUs for its processes, and memory for its host side plus the
    weights, which pass through host memory while loading on GPUs and stay there on CPU."""
    floor = DEFAULT_RESOURCES["vllm-gpu" if gpus else "vllm-cpu"]["requests"]
    cpu = VCPUS_PER_CORE * (VLLM_PROCESSES_BESIDES_GPUS + gpus) if gpus else int(floor["cpu"])
    memory = max(_gib(floor["memory"]), VLLM_HOST_GIB + weights_gib)
    return {"requests": {"cpu": str(cpu), "memory": f"{memory}Gi"},
            "limits": {"cpu": str(2 * cpu), "memory": f"{2 * memory}Gi"}}


SHM_BASE_GIB = 2  # /dev/shm of a single-GPU (or CPU) vLLM
SHM_PER_GPU_GIB = 4  # with tensor parallelism: NCCL and vLLM's broadcast buffers grow with ranks


def shm_default(gpus: int) -> str:
    """/dev/shm for `gpus` tensor-parallel ranks."""
    return f"{SHM_PER_GPU_GIB * gpus}Gi" if gpus > 1 else f"{SHM_BASE_GIB}Gi"


def _gib(memory: str) -> int:
    """A memory quantity in whole GiB, rounded up (plain numbers are bytes)."""
    return math.ceil(quantity(memory) / 2**30)


def _sorted(mapping: dict[str, Any]) -> dict[str, Any]:
    return {k: str(v) for k, v in sorted(mapping.items())}


def restricted_pod(uid: int = NON_ROOT_UID) -> K8s:
    """Pod securityContext meeting the 'restricted' Pod Security Standard."""
    return {"fsGroup": uid, "runAsGroup": uid, "runAsNonRoot": True, "runAsUser": uid,
            "seccompProfile": SECCOMP}


def restricted_container(*, read_only_root: bool = True) -> K8s:
    return {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
            "readOnlyRootFilesystem": read_only_root}


def empty_dir(name: str, path: str, *, memory: bool = False, size: str | None = None
              ) -> tuple[K8s, K8s]:
    source: K8s = {}
    if memory:
        source["medium"] = "Memory"
    if size:
        source["sizeLimit"] = size
    return {"name": name, "emptyDir": source}, {"name": name, "mountPath": path}


def cache_volume(name: str, cache: Cache, fullname: str, mount: str, cluster: Cluster
                 ) -> tuple[K8s, K8s, Persistence | None]:
    """The model cache: an existing claim, or a PVC `<fullname>-cache` the chart owns."""
    claim = cache.existing_claim or f"{fullname}-cache"
    persistence = None
    if cache.existing_claim is None:
        persistence = Persistence(size=str(cache.size),
                                  storage_class=cache.storage_class or cluster.storage_class,
                                  access_mode=cache.access_mode)
    volume = {"name": name, "persistentVolumeClaim": {"claimName": claim}}
    return volume, {"name": name, "mountPath": mount}, persistence


def claimed_cache(vllm: Vllm) -> bool:
    """Whether the model cache is a claim: always, except for a model streamed from object
    storage without `cache` in the spec, whose weights never touch the cache."""
    return vllm.model_scheme not in ("s3", "gs") or "cache" in vllm.model_fields_set


def vllm_cache(fullname: str, vllm: Vllm, cluster: Cluster
               ) -> tuple[K8s, K8s, Persistence | None]:
    """vLLM's cache at /models (Hugging Face cache, adapters): a claim, or for a model
    streamed from object storage an emptyDir, so that a woken replica may start in any zone
    instead of waiting for its volume's."""
    if claimed_cache(vllm):
        return cache_volume("model-cache", vllm.cache, fullname, "/models", cluster)
    volume, mount = empty_dir("model-cache", "/models")
    return volume, mount, None


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


def secret_env(name: str, secret: tuple[str, str]) -> K8s:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret[0], "key": secret[1]}}}


def rollout(recreate: bool, max_surge: int = 1) -> K8s:
    """A Deployment strategy. Recreate only where a single-writer cache forbids two pods at
    once; otherwise never below the wanted replicas (maxUnavailable 0), `max_surge` extra
    pods at a time, or, with no room for extra pods, one replica down at a time."""
    if recreate:
        return {"type": "Recreate"}
    if max_surge == 0:
        return {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}}
    return {"type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": max_surge, "maxUnavailable": 0}}


# A StatefulSet (one cache per replica) replaces its pods one at a time, newest first.
STATEFUL_ROLLOUT: K8s = {"type": "RollingUpdate"}


def gpu_scheduling(gpu: Gpu, cluster: Cluster) -> tuple[dict[str, str], list[K8s], dict[str, Any]]:
    """nodeSelector, tolerations and extended resources for `gpu.count` GPUs."""
    if gpu.count == 0:
        return {}, [], {}
    selector = {**cluster.gpu_node_labels, **gpu.node_selector}
    # GPU node pools are tainted with the resource name (GKE, EKS, AKS and the GPU operator's
    # conventions); the spec's tolerations (spot, dedicated pools) come on top of it.
    tolerations = [{"effect": "NoSchedule", "key": gpu.resource, "operator": "Exists"}]
    tolerations += [t for t in gpu.tolerations if t not in tolerations]
    return dict(sorted(selector.items())), tolerations, {gpu.resource: gpu.count}


# --- agents ----------------------------------------------------------------------------------


def agent_workload(agent: Agent, endpoint_env: list[K8s], cluster: Cluster,
                   network: NetworkRules) -> Workload:
    if agent.health_path:
        check: K8s = {"httpGet": {"path": agent.health_path, "port": "http"}}
    else:
        check = {"tcpSocket": {"port": "http"}}
    tmp_volume, tmp_mount = empty_dir("tmp", "/tmp")
    workload = Workload(
        component="agent",
        image=cluster.image(agent.image),
        replicas=agent.replicas,
        port=agent.port,
        strategy=rollout(False),
        env=list(endpoint_env),
        resources=resources("agent", agent.resources),
        probes=Probes(
            startup={**check, "periodSeconds": 5, "failureThreshold": 24, "timeoutSeconds": 3},
            readiness={**check, "periodSeconds": 10, "timeoutSeconds": 3, "failureThreshold": 3},
            liveness={**check, "periodSeconds": 20, "timeoutSeconds": 5, "failureThreshold": 3},
        ),
        pod_security_context=restricted_pod(),
        security_context=restricted_container(),
        volumes=[tmp_volume],
        volume_mounts=[tmp_mount],
        network=network,
    )
    return with_deadline(workload, None)


# --- vLLM ------------------------------------------------------------------------------------


def vllm_args(vllm: Vllm) -> list[str]:
    """`vllm serve` arguments: the model first, then flags, then extraArgs verbatim."""
    engine = vllm.engine
    args = [local_source(vllm.model), "--served-model-name", vllm.served_name,
            "--port", str(VLLM_PORT)]
    if vllm.model_scheme in ("s3", "gs"):
        args += ["--load-format", RUNAI_STREAMER]
    if vllm.gpu.count > 1:
        args += ["--tensor-parallel-size", str(vllm.gpu.count)]
    if engine.max_model_len is not None:
        args += ["--max-model-len", str(engine.max_model_len)]
    args += ["--dtype", engine.dtype]
    if vllm.gpu.count > 0:
        args += ["--gpu-memory-utilization", _number(engine.gpu_memory_utilization)]
    if engine.quantization:
        args += ["--quantization", engine.quantization]
    if vllm.lora_adapters:
        args += ["--enable-lora", "--lora-modules",
                 *(f"{a.name}={local_source(a.source)}" for a in vllm.lora_adapters)]
        if engine.max_loras is not None:
            args += ["--max-loras", str(engine.max_loras)]
        if engine.max_lora_rank is not None:
            args += ["--max-lora-rank", str(engine.max_lora_rank)]
    return args + list(engine.extra_args)


def model_source_volumes(vllm: Vllm) -> tuple[list[K8s], list[K8s]]:
    """Each claim the model or an adapter reads, mounted read-only under MOUNT_ROOT."""
    volumes, mounts = [], []
    for index, claim in enumerate(claims(vllm)):
        name = f"model-source-{index}"
        volumes.append({"name": name,
                        "persistentVolumeClaim": {"claimName": claim, "readOnly": True}})
        mounts.append({"name": name, "mountPath": f"{MOUNT_ROOT}/{claim}", "readOnly": True})
    return volumes, mounts


def object_storage_env(vllm: Vllm) -> tuple[list[K8s], list[K8s], list[K8s]]:
    """Environment, volumes and mounts for the Run:ai streamer's credentials: Secret
    references only (or none, for workload identity)."""
    storage = vllm.object_storage
    if storage is None:
        return [], [], []
    env: list[K8s] = []
    volumes: list[K8s] = []
    mounts: list[K8s] = []
    if storage.access_key_secret and storage.secret_key_secret:
        env.append(secret_env("AWS_ACCESS_KEY_ID", (storage.access_key_secret.name,
                                                    storage.access_key_secret.key)))
        env.append(secret_env("AWS_SECRET_ACCESS_KEY", (storage.secret_key_secret.name,
                                                        storage.secret_key_secret.key)))
        # Keys are given: never fall back to the node's instance role.
        env.append({"name": "AWS_EC2_METADATA_DISABLED", "value": "true"})
    if storage.endpoint:
        env.append({"name": "AWS_ENDPOINT_URL", "value": storage.endpoint})
        # S3-compatible stores address buckets by path, not by virtual host.
        env.append({"name": "RUNAI_STREAMER_S3_USE_VIRTUAL_ADDRESSING", "value": "0"})
    if storage.region:
        env.append({"name": "AWS_DEFAULT_REGION", "value": storage.region})
    if storage.credentials_file_secret:
        secret = storage.credentials_file_secret
        volumes.append({"name": "object-store-credentials", "secret": {
            "secretName": secret.name, "items": [{"key": secret.key, "path": secret.key}]}})
        mounts.append({"name": "object-store-credentials", "mountPath": CREDENTIALS_DIR,
                       "readOnly": True})
        env.append({"name": "GOOGLE_APPLICATION_CREDENTIALS",
                    "value": f"{CREDENTIALS_DIR}/{secret.key}"})
    return env, volumes, mounts


def _number(value: float) -> str:
    return str(int(value)) if value == int(value) else repr(value)


VLLM_HOME = "/home/vllm"


@dataclass(frozen=True)
class PodUser:
    """Who a pod runs as, and the environment and scratch volumes that user needs."""

    pod_security_context: K8s
    security_context: K8s
    env: list[K8s]
    volumes: list[K8s]
    volume_mounts: list[K8s]


def vllm_user(vllm: Vllm) -> PodUser:
    """vLLM as the shared non-root UID on a read-only root filesystem. The image (vLLM's
    docker/Dockerfile) declares no user and writes its caches under the home folder, which a
    UID the image does not know gets as "/": HOME and every cache vLLM's envs.py, PyTorch,
    Triton and numba write move to a writable emptyDir, and /tmp (vLLM's IPC sockets,
    tempfile) is one too. The model cache (HF_HOME) stays on /models. `runAsRoot` keeps the
    image's user and a writable root for images that truly need it."""
    if vllm.run_as_root:
        return PodUser({"seccompProfile": SECCOMP}, restricted_container(read_only_root=False),
                       [], [], [])
    cache = f"{VLLM_HOME}/.cache"
    env = [{"name": name, "value": value} for name, value in (
        ("HOME", VLLM_HOME),
        ("XDG_CACHE_HOME", cache),
        ("XDG_CONFIG_HOME", f"{VLLM_HOME}/.config"),
        ("VLLM_CACHE_ROOT", f"{cache}/vllm"),  # torch.compile artifacts, assets
        ("VLLM_CONFIG_ROOT", f"{VLLM_HOME}/.config/vllm"),  # usage stats
        ("TRITON_CACHE_DIR", f"{cache}/triton"),  # default ~/.triton/cache
        # default /tmp/torchinductor_<user>, named by getpass.getuser(), which fails for a
        # UID with no passwd entry
        ("TORCHINDUCTOR_CACHE_DIR", f"{cache}/torchinductor"),
        ("NUMBA_CACHE_DIR", f"{cache}/numba"),
    )]
    home, home_mount = empty_dir("home", VLLM_HOME)
    tmp, tmp_mount = empty_dir("tmp", "/tmp")
    return PodUser(restricted_pod(), restricted_container(), env, [home, tmp],
                   [home_mount, tmp_mount])


# The multi-node launch vLLM v0.11.0 documents: Ray, started by the script its image ships
# (examples/online_serving/multi-node-serving.sh, copied to /vllm-workspace/examples). The
# leader starts the Ray head and waits until the whole group has joined, then serves with
# the Ray executor; each worker joins the head at LWS_LEADER_ADDRESS, which the
# LeaderWorkerSet controller sets in every pod of a group. (vLLM's own --nnodes/--node-rank
# launch without Ray came later, with vllm-project/vllm#23691.)
MULTI_NODE_SCRIPT = "/vllm-workspace/examples/online_serving/multi-node-serving.sh"
RAY_PORT = 6379
# $0 is the startup budget in seconds, the variables a number and a host name: no quotes.
LEADER_SCRIPT = f"""\
script={MULTI_NODE_SCRIPT}
bash "$script" leader --ray_port={RAY_PORT} \\
  --ray_cluster_size=$LWS_GROUP_SIZE --ray_init_timeout=$0 &&
  exec vllm serve "$@"
"""
WORKER_SCRIPT = f"""\
script={MULTI_NODE_SCRIPT}
exec bash "$script" worker --ray_port={RAY_PORT} \\
  --ray_address=$LWS_LEADER_ADDRESS --ray_init_timeout=$0
"""


def group_rollout(strategy: K8s) -> K8s:
    """The LeaderWorkerSet's rolloutStrategy for a Deployment strategy: whole groups, as many
    spare groups as spare replicas, and one group down at a time when there is no room."""
    rolling = strategy.get("rollingUpdate", {"maxSurge": 0, "maxUnavailable": 1})
    return {"type": "RollingUpdate", "rollingUpdateConfiguration": {
        "maxSurge": rolling["maxSurge"], "maxUnavailable": rolling["maxUnavailable"]}}


def with_group(workload: Workload, vllm: Vllm) -> Workload:
    """`workload` as the leader of LeaderWorkerSet groups of `vllm.nodes` pods: the leader
    serves with tensor parallel = gpu.count (per node) and pipeline parallel = nodes."""
    if vllm.nodes <= 1:
        return workload
    budget = str(max(1, duration_seconds(vllm.startup_timeout)))
    args = [*vllm_args(vllm), "--pipeline-parallel-size", str(vllm.nodes),
            "--distributed-executor-backend", "ray"]
    return workload.model_copy(update={
        "command": ["/bin/sh", "-c", LEADER_SCRIPT, budget],
        "args": args,
        "group": Group(size=vllm.nodes, worker_command=["/bin/sh", "-c", WORKER_SCRIPT, budget],
                       rollout_strategy=group_rollout(workload.strategy)),
    })


def vllm_workload(fullname: str, vllm: Vllm, cluster: Cluster,
                  network: NetworkRules, metrics: bool) -> Workload:
    gpu_mode = vllm.gpu.count > 0
    selector, tolerations, extended = gpu_scheduling(vllm.gpu, cluster)
    cache, cache_mount, persistence = vllm_cache(fullname, vllm, cluster)
    if vllm.nodes > 1 and vllm.cache.access_mode != "ReadWriteMany":
        # The pods of a group run on different nodes: a claim one node mounts cannot be
        # theirs, so each pod caches the model on its own node, up to cache.size.
        cache, cache_mount = empty_dir("model-cache", "/models", size=str(vllm.cache.size))
        persistence = None
    most = max(vllm.replicas, vllm.autoscaling.max_replicas if vllm.autoscaling else 0)
    # a claim only one node (or pod) can mount: one pod at a time
    single_writer = (claimed_cache(vllm) and vllm.cache.access_mode != "ReadWriteMany"
                     and vllm.nodes == 1)
    per_replica = persistence is not None and single_writer and most > 1
    volumes = [cache]
    if per_replica:
        # A claim per replica from the StatefulSet's volumeClaimTemplates: replicas on other
        # nodes would hang on a shared ReadWriteOnce claim (Multi-Attach error).
        assert persistence is not None
        persistence = persistence.model_copy(update={"per_replica": True})
        volumes = []
    shm_size = shm_default(vllm.gpu.count) if vllm.shm_size is None else str(vllm.shm_size)
    shm, shm_mount = empty_dir("dshm", "/dev/shm", memory=True, size=shm_size)
    user = vllm_user(vllm)
    env: list[K8s] = [{"name": "HF_HOME", "value": "/models/huggingface"}, *user.env]
    if vllm.hf_hub_offline:
        env.append({"name": "HF_HUB_OFFLINE", "value": "1"})
    if vllm.hf_token_secret:
        env.append(secret_env("HF_TOKEN", (vllm.hf_token_secret.name, vllm.hf_token_secret.key)))
    if vllm.api_key_secret:
        env.append(secret_env("VLLM_API_KEY", (vllm.api_key_secret.name,
                                               vllm.api_key_secret.key)))
    storage_env, storage_volumes, storage_mounts = object_storage_env(vllm)
    env += storage_env
    source_volumes, source_mounts = model_source_volumes(vllm)
    startup_period = 10
    health = "/health"
    if per_replica:
        strategy = STATEFUL_ROLLOUT
    else:
        # one pod at a time on a claim only one node (or pod) can mount
        strategy = rollout(single_writer and most <= 1, vllm.max_surge)
    workload = Workload(
        component="vllm",
        image=cluster.image(vllm.image if gpu_mode else vllm.cpu_image),
        replicas=vllm.replicas,
        port=VLLM_PORT,
        strategy=strategy,
        command=["vllm", "serve"],
        args=vllm_args(vllm),
        env=env,
        resources=resources("vllm-gpu" if gpu_mode else "vllm-cpu", vllm.resources, extended,
                            memory_volume=shm_size, defaults=vllm_default_resources(
                                vllm.gpu.count, model_weights_gib(vllm.model, vllm.served_name))),
        probes=Probes(
            startup=http_probe(health, period=startup_period, timeout=5, failures=max(
                1, math.ceil(duration_seconds(vllm.startup_timeout) / startup_period))),
            readiness=http_probe(health, period=10, timeout=5, failures=3),
            liveness=http_probe(health, period=15, timeout=10, failures=3),
        ),
        node_selector=selector,
        tolerations=tolerations,
        runtime_class_name=vllm.gpu.runtime_class_name if gpu_mode else None,
        pod_security_context=user.pod_security_context,
        security_context=user.security_context,
        volumes=[*volumes, shm, *user.volumes, *source_volumes, *storage_volumes],
        volume_mounts=[cache_mount, shm_mount, *user.volume_mounts, *source_mounts,
                       *storage_mounts],
        termination_grace_period_seconds=60,
        persistence=persistence,
        metrics_path="/metrics" if metrics else None,
        network=network,
        service_account_annotations=dict(sorted(
            (vllm.object_storage.service_account_annotations if vllm.object_storage
             else {}).items())),
    )
    return with_group(with_deadline(workload, None), vllm)


# --- Ollama ----------------------------------------------------------------------------------

# Waits for the server, then for each model named in the arguments (never in the script
# text): a model already in the cache is used as it is (an air-gapped cluster cannot reach the
# registry, and must not stay unready for it); a missing one is pulled, retrying forever
# rather than exiting. Then it marks itself ready. A failed pull of a missing model therefore
# keeps the pod unready instead of crash-looping the server.
OLLAMA_PULL_SCRIPT = """\
until ollama list >/dev/null 2>&1; do sleep 2; done
for model in "$@"; do
  if ollama show "$model" >/dev/null 2>&1; then
    echo "$model is in the cache"
    continue
  fi
  until ollama pull "$model"; do
    echo "pull of $model failed; retrying in 15s"
    sleep 15
  done
done
touch /tmp/models-ready
exec sleep infinity
"""
OLLAMA_HOME = "/home/ollama"


def ollama_workload(fullname: str, ollama: Ollama, cluster: Cluster,
                    network: NetworkRules) -> Workload:
    selector, tolerations, extended = gpu_scheduling(ollama.gpu, cluster)
    cache, cache_mount, persistence = cache_volume("data", ollama.cache, fullname,
                                                   f"{OLLAMA_HOME}/.ollama", cluster)
    tmp, tmp_mount = empty_dir("tmp", "/tmp")
    home = {"name": "HOME", "value": OLLAMA_HOME}
    sidecars: list[K8s] = []
    if ollama.models:
        puller_tmp, puller_tmp_mount = {"name": "puller-tmp", "emptyDir": {}}, {
            "name": "puller-tmp", "mountPath": "/tmp"}
        sidecars.append({
            "name": "model-puller",
            "image": cluster.image(ollama.image),
            "command": ["/bin/sh", "-c", OLLAMA_PULL_SCRIPT],
            "args": ["pull-models", *ollama.models],
            "env": [home, {"name": "OLLAMA_HOST", "value": f"127.0.0.1:{OLLAMA_PORT}"}],
            "readinessProbe": {"exec": {"command": ["test", "-f", "/tmp/models-ready"]},
                               "periodSeconds": 5},
            "resources": {"requests": {"cpu": "10m", "memory": "32Mi"},
                          "limits": {"cpu": "500m", "memory": "256Mi"}},
            "securityContext": restricted_container(),
            "volumeMounts": [puller_tmp_mount],
        })
    volumes = [cache, tmp] + ([puller_tmp] if ollama.models else [])
    workload = Workload(
        component="ollama",
        image=cluster.image(ollama.image),
        replicas=1,
        port=OLLAMA_PORT,
        strategy=rollout(True),
        args=["serve"],
        env=[home, {"name": "OLLAMA_HOST", "value": f"0.0.0.0:{OLLAMA_PORT}"},
             {"name": "OLLAMA_KEEP_ALIVE", "value": ollama.keep_alive}],
        resources=resources("ollama", ollama.resources, extended),
        probes=Probes(
            startup=http_probe("/api/version", period=5, timeout=3, failures=60),
            readiness=http_probe("/api/tags", period=10, timeout=5, failures=3),
            liveness=http_probe("/api/version", period=20, timeout=5, failures=3),
        ),
        node_selector=selector,
        tolerations=tolerations,
        runtime_class_name=ollama.gpu.runtime_class_name if ollama.gpu.count else None,
        # The image has no user of its own (it runs as root by default): run as the same
        # non-root UID as every other workload, HOME on the cache volume's parent.
        pod_security_context=restricted_pod(),
        security_context=restricted_container(),
        volumes=volumes,
        volume_mounts=[cache_mount, tmp_mount],
        sidecars=sidecars,
        persistence=persistence,
        network=network,
    )
    return with_deadline(workload, duration_seconds(ollama.startup_timeout))


# --- LiteLLM ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class LitellmConfig:
    """What resolve computes for a proxy: config.yaml, its env, the /metrics key."""

    text: str
    env: list[K8s]
    metrics_key: SecretKey | None


# With a database, LiteLLM applies its Prisma migrations at start-up and writes the
# migration files next to them unless LITELLM_MIGRATION_DIR names a writable folder (the
# package folder is on the read-only root). The Prisma CLI and engines are baked into the
# image under /opt/prisma, readable by any UID, and the image's PRISMA_* variables point
# there (LiteLLM PR #33853, in 1.90.6): they are left as the image sets them.
LITELLM_MIGRATION_DIR = "/var/lib/litellm/migrations"
LITELLM_HOME = "/home/litellm"


def litellm_scratch() -> tuple[list[tuple[K8s, K8s]], list[K8s]]:
    """Writable scratch for a UID the image does not know (its HOME would be "/"): /tmp,
    and a home whose .cache (XDG_CACHE_HOME) and .npm take what the proxy and Prisma's
    wrapper write at run time."""
    scratch = [empty_dir("tmp", "/tmp"), empty_dir("home", LITELLM_HOME)]
    env = [{"name": "HOME", "value": LITELLM_HOME},
           {"name": "XDG_CACHE_HOME", "value": f"{LITELLM_HOME}/.cache"}]
    return scratch, env


def litellm_workload(fullname: str, litellm: Litellm, config: LitellmConfig,
                     cluster: Cluster, network: NetworkRules, metrics: bool) -> Workload:
    scratch, home_env = litellm_scratch()
    env = [*config.env, *home_env]
    if litellm.database_url_secret:
        scratch.append(empty_dir("migrations", LITELLM_MIGRATION_DIR))
        env.append({"name": "LITELLM_MIGRATION_DIR", "value": LITELLM_MIGRATION_DIR})
    config_mount = {"name": "config", "mountPath": "/etc/litellm", "readOnly": True}
    workload = Workload(
        component="litellm",
        image=cluster.image(litellm.image),
        replicas=litellm.replicas,
        port=LITELLM_PORT,
        strategy=rollout(False),
        args=["--config", "/etc/litellm/config.yaml", "--port", str(LITELLM_PORT)],
        env=env,
        resources=resources("litellm", litellm.resources),
        probes=Probes(
            startup=http_probe("/health/liveliness", period=5, timeout=5, failures=36),
            readiness=http_probe("/health/readiness", period=10, timeout=10, failures=3),
            liveness=http_probe("/health/liveliness", period=15, timeout=10, failures=5),
        ),
        pod_security_context=restricted_pod(),
        security_context=restricted_container(),
        volumes=[{"name": "config", "configMap": {"name": f"{fullname}-config"}},
                 *(volume for volume, _ in scratch)],
        volume_mounts=[config_mount, *(mount for _, mount in scratch)],
        config=ConfigFile(mount_path="/etc/litellm", file_name="config.yaml",
                          content=config.text),
        metrics_path="/metrics/" if metrics else None,
        metrics_secret=config.metrics_key if metrics else None,
        expose=exposure(litellm.expose, litellm.router.timeout) if litellm.expose else None,
        network=network,
    )
    return with_deadline(workload, None)


def exposure(expose: Expose, timeout: float) -> Exposure:
    gateway = expose.gateway
    return Exposure(
        host=expose.host, kind="HTTPRoute" if gateway else "Ingress",
        ingress_class_name=expose.ingress_class_name, tls_secret=expose.tls_secret,
        gateway_name=gateway.name if gateway else None,
        gateway_namespace=gateway.namespace if gateway else None,
        section_name=gateway.section_name if gateway else None,
        request_timeout=f"{math.ceil(timeout)}s" if gateway else None,
        annotations=dict(sorted(expose.annotations.items())))


# --- pod pass-through and autoscaling --------------------------------------------------------


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


# --- graceful drain --------------------------------------------------------------------------

# How long a stopping pod keeps serving after it left its Service's endpoints: kube-proxy and
# the callers' connection pools learn of it within seconds, never instantly.
ENDPOINT_SECONDS = 10
SHUTDOWN_SECONDS = 30  # after the preStop hook: SIGTERM, then the process exits
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


# --- disruption ------------------------------------------------------------------------------

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
