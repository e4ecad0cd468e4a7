"""What the compiler owns in every pod it writes, shared by the workload builders and the
checks of the spec's pod pass-through: ports, the non-root user, the env and volume names it
sets, the drain timings, the cluster conventions the builders follow, and Kubernetes
quantities as numbers."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

VLLM_PORT = 8000
LITELLM_PORT = 4000
OLLAMA_PORT = 11434
NON_ROOT_UID = 65532
SECCOMP = {"type": "RuntimeDefault"}
# vLLM's gauge of requests queued for a slot, per server (KEDA divides by replicas).
VLLM_QUEUE_METRIC = "vllm:num_requests_waiting"
SPREAD_KEY = "kubernetes.io/hostname"

@dataclass(frozen=True)
class Cluster:
    """Per-environment cluster conventions the builders need."""

    gpu_node_labels: dict[str, str]  # accelerator mapping already applied
    storage_class: str | None
    image: Callable[[str], str]  # image reference -> image reference (registry mirror)
    image_pull_secrets: tuple[str, ...] = ()  # cluster.imagePullSecrets


# What the workload builders set themselves: the spec's env and extraVolumes may not reuse
# these names (a duplicate env name makes server-side apply fail; a duplicate volume, the pod).
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

# How long a stopping pod keeps serving after it left its Service's endpoints: kube-proxy and
# the callers' connection pools learn of it within seconds, never instantly.
ENDPOINT_SECONDS = 10
SHUTDOWN_SECONDS = 30  # after the preStop hook: SIGTERM, then the process exits


_QUANTITY_SUFFIXES = {"m": Decimal("0.001"), "": Decimal(1), "k": Decimal(10) ** 3,
                      "M": Decimal(10) ** 6, "G": Decimal(10) ** 9, "T": Decimal(10) ** 12,
                      "P": Decimal(10) ** 15, "E": Decimal(10) ** 18, "Ki": Decimal(2) ** 10,
                      "Mi": Decimal(2) ** 20, "Gi": Decimal(2) ** 30, "Ti": Decimal(2) ** 40,
                      "Pi": Decimal(2) ** 50, "Ei": Decimal(2) ** 60}


def quantity(value: str | int) -> Decimal:
    """A Kubernetes quantity (the spec's form: a number and a suffix) as a number."""
    match = re.match(r"^([0-9.]+)([A-Za-z]*)$", str(value))
    if not match or match[2] not in _QUANTITY_SUFFIXES:
        raise ValueError(f"not a quantity: {value!r}")
    return Decimal(match[1]) * _QUANTITY_SUFFIXES[match[2]]
