"""vllm."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..spec.backends import Vllm
from ..spec.fields import duration_seconds
from .lifecycle import with_deadline
from .model import (
    Group,
    K8s,
    NetworkRules,
    Persistence,
    Probes,
    Workload,
)
from .model_sources import MOUNT_ROOT, claims, local_source
from .pod_contract import (
    SECCOMP,
    VLLM_PORT,
    Cluster,
)
from .workloads import (
    CREDENTIALS_DIR,
    RUNAI_STREAMER,
    STATEFUL_ROLLOUT,
    cache_volume,
    empty_dir,
    gpu_scheduling,
    http_probe,
    model_weights_gib,
    resources,
    restricted_container,
    restricted_pod,
    rollout,
    secret_env,
    shm_default,
    vllm_default_resources,
)


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


def vllm_cache(fullname: str, vllm: Vllm, cluster: Cluster
               ) -> tuple[K8s, K8s, Persistence | None]:
    """vLLM's cache at /models (Hugging Face cache, adapters): a claim, or for a model
    streamed from object storage an emptyDir, so that a woken replica may start in any zone
    instead of waiting for its volume's."""
    if claimed_cache(vllm):
        return cache_volume("model-cache", vllm.cache, fullname, "/models", cluster)
    volume, mount = empty_dir("model-cache", "/models")
    return volume, mount, None


def claimed_cache(vllm: Vllm) -> bool:
    """Whether the model cache is a claim: always, except for a model streamed from object
    storage without `cache` in the spec, whose weights never touch the cache."""
    return vllm.model_scheme not in ("s3", "gs") or "cache" in vllm.model_fields_set
