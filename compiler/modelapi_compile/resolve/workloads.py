"""How each kind of model API and agent runs: one builder per kind, each returning a
`Workload` (container, probes, volumes, security) from its spec and the bound references.

Facts encoded here (ports, flags, health paths, image users) and where they come from are
listed in docs/internals.md, "Backend facts and pinned images".
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from ..spec.backends import Cache, Expose, Gpu, Litellm, Ollama
from ..spec.fields import Resources, duration_seconds
from ..spec.model import Agent
from .lifecycle import with_deadline
from .model import (
    ConfigFile,
    Exposure,
    K8s,
    NetworkRules,
    Persistence,
    Probes,
    SecretKey,
    Workload,
)
from .pod_contract import (
    LITELLM_PORT,
    NON_ROOT_UID,
    OLLAMA_PORT,
    SECCOMP,
    Cluster,
    quantity,
)

RUNAI_STREAMER = "runai_streamer"  # vLLM's --load-format for s3:// and gs:// models
CREDENTIALS_DIR = "/var/run/secrets/model-storage"

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


# --- graceful drain --------------------------------------------------------------------------


# --- disruption ------------------------------------------------------------------------------
