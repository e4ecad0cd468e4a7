"""Fake node pools for kwok, as each managed platform labels and taints its nodes: one pool per
accelerator the environment's pods ask for, plus CPU nodes. A pools file
(`nodePools: [{name, count, labels, taints, allocatable}]`) replaces the preset."""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..emit.manifests import pod_templates
from ..output.immutable import quantity_bytes
from ..spec.accelerators import ACCELERATORS

K8s = dict[str, Any]

# preset -> (the accelerator label convention its GPU nodes carry, labels of every node,
# labels and taints of GPU nodes beyond the accelerator's own labels)
_GPU_TAINT = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}
PRESETS: dict[str, tuple[str, dict[str, str], dict[str, str], list[K8s]]] = {
    # GKE taints every GPU node nvidia.com/gpu=present:NoSchedule and labels the accelerator.
    "gke": ("gke", {"cloud.google.com/gke-nodepool": "default-pool"},
            {"cloud.google.com/gke-gpu": "true"}, [_GPU_TAINT]),
    # EKS managed node groups on the accelerated AMI with the NVIDIA GPU operator (GFD labels),
    # tainted for GPU workloads only.
    "eks": ("nvidia-gfd", {"eks.amazonaws.com/nodegroup": "default"},
            {"eks.amazonaws.com/nodegroup": "gpu", "nvidia.com/gpu.present": "true"},
            [{"key": "nvidia.com/gpu", "effect": "NoSchedule"}]),
    # AKS GPU node pools: GFD labels from the GPU operator, and the sku=gpu taint the AKS
    # documentation recommends for GPU pools.
    "aks": ("nvidia-gfd", {"kubernetes.azure.com/agentpool": "system"},
            {"kubernetes.azure.com/agentpool": "gpu", "accelerator": "nvidia"},
            [{"key": "sku", "value": "gpu", "effect": "NoSchedule"}]),
    # Karpenter NodePools on EC2: instance-gpu-name / -memory labels, the GPU taint of the
    # NodePool template.
    "karpenter": ("karpenter", {"karpenter.sh/nodepool": "default"},
                  {"karpenter.sh/nodepool": "gpu"}, [{"key": "nvidia.com/gpu",
                                                      "effect": "NoSchedule"}]),
    # On-premises nodes with NVIDIA GPU feature discovery and no taint.
    "gfd": ("nvidia-gfd", {}, {"nvidia.com/gpu.present": "true"}, []),
}
PRESET_FOR_CONVENTION = {"gke": "gke", "karpenter": "karpenter", "nvidia-gfd": "gfd",
                         "explicit": "gfd"}
GPUS_PER_NODE = 8
CPU_NODE = {"cpu": "32", "memory": "128Gi", "pods": "110"}
GPU_NODE = {"cpu": "192", "memory": "1800Gi", "pods": "110"}


@dataclass
class NodePool:
    name: str
    count: int
    labels: dict[str, str] = field(default_factory=dict)
    taints: list[K8s] = field(default_factory=list)
    allocatable: dict[str, str] = field(default_factory=dict)

    def nodes(self) -> list[K8s]:
        return [_node(f"{self.name}-{i}", self, i) for i in range(self.count)]


def _node(name: str, pool: NodePool, index: int) -> K8s:
    zones = ("zone-a", "zone-b", "zone-c")
    labels = {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
              "kubernetes.io/arch": "amd64", "topology.kubernetes.io/zone": zones[index % 3],
              "type": "kwok", **pool.labels}
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": labels,
                         "annotations": {"kwok.x-k8s.io/node": "fake"}},
            "spec": {"taints": pool.taints},
            "status": {"allocatable": pool.allocatable, "capacity": pool.allocatable}}


def load_pools(path: str) -> list[NodePool]:
    data = yaml.safe_load(Path(path).read_text("utf-8")) or {}
    pools = []
    for item in data.get("nodePools") or []:
        pools.append(NodePool(name=item["name"], count=int(item.get("count", 1)),
                              labels=_strings(item.get("labels") or {}),
                              taints=list(item.get("taints") or []),
                              allocatable=_strings(item.get("allocatable") or CPU_NODE)))
    return pools


def _strings(mapping: dict[Any, Any]) -> dict[str, str]:
    return {str(k): str(v) for k, v in mapping.items()}


def preset_pools(preset: str, objects: list[K8s]) -> list[NodePool]:
    """CPU nodes, and for each accelerator the pods ask for, enough GPU nodes for every pod
    at its largest scale (plus one), labelled in the preset's convention. An accelerator the
    preset's convention has no label for gets no pool (its pods stay Pending, as they would)."""
    convention, node_labels, gpu_labels, taints = PRESETS[preset]
    # (GPU resource, accelerator or "", the pod's other node labels): what a pool must offer.
    demand: dict[tuple[str, str, str], int] = {}
    cpu_pods = 0
    for template, replicas in _pod_templates(objects):
        resource, gpus = _gpu_request(template)
        if not gpus:
            cpu_pods += replicas
            continue
        selector = template.get("nodeSelector") or {}
        accelerator = _accelerator(selector) or ""
        # Labels the spec selects beyond the accelerator's (gpu.nodeSelector, a spot label,
        # gpuNodeLabels: explicit) are the user's own node labels: the pool has them too.
        extra = ",".join(f"{k}={v}" for k, v in sorted(selector.items())
                         if k not in _CONVENTION_KEYS)
        key = (resource, accelerator, extra)
        demand[key] = demand.get(key, 0) + replicas * gpus
    # Pool names carry the preset: nodes of another convention are other nodes.
    pools = [NodePool(f"{preset}-cpu", max(3, math.ceil(cpu_pods / 20) + 1), dict(node_labels),
                      [], _cpu_node_for(objects))]
    for (resource, accelerator, extra), gpus in sorted(demand.items()):
        labels = {**node_labels, **gpu_labels}
        name = f"{preset}-{accelerator or 'gpu'}"
        if accelerator:
            own = ACCELERATORS[accelerator].get(convention)
            if own is None:
                continue
            labels.update(own)
        if extra:
            labels.update(dict(item.split("=", 1) for item in extra.split(",")))
            name += f"-{hashlib.sha256(extra.encode()).hexdigest()[:8]}"
        # Room for every GPU pod in each of the three zones, as a cluster autoscaler would
        # make: a cache disk made in one zone is mounted there only, so a replica whose
        # claim is in a zone must find its GPUs there.
        count = 3 * (math.ceil(gpus / GPUS_PER_NODE) + 1)
        # A preset's GPU taint is keyed by the device's resource (amd.com/gpu on AMD nodes).
        own_taints = [{**t, "key": resource} if t.get("key") == "nvidia.com/gpu" else t
                      for t in taints]
        pools.append(NodePool(name, count, labels, own_taints,
                              {**GPU_NODE, resource: str(GPUS_PER_NODE)}))
    return pools


_CONVENTION_KEYS = {key for conventions in ACCELERATORS.values()
                    for labels in conventions.values() for key in labels}


def _cpu_node_for(objects: list[K8s]) -> dict[str, str]:
    """CPU nodes large enough for the largest pod without GPUs, as an autoscaler (Karpenter,
    a node pool of a larger machine type) would pick: a 70B model in CPU mode asks for
    hundreds of GiB."""
    cpu, memory = quantity_cpu(CPU_NODE["cpu"]), quantity_bytes(CPU_NODE["memory"])
    for template, _ in _pod_templates(objects):
        if _gpu_request(template)[1]:
            continue
        requests = [((c.get("resources") or {}).get("requests") or {})
                    for c in template.get("containers") or []]
        cpu = max(cpu, sum(quantity_cpu(str(r.get("cpu", "0"))) for r in requests) + 2)
        memory = max(memory, sum(quantity_bytes(str(r.get("memory", "0"))) for r in requests)
                     + 8 * 2**30)
    return {"cpu": str(math.ceil(cpu)), "memory": f"{math.ceil(memory / 2**30)}Gi",
            "pods": CPU_NODE["pods"]}


def quantity_cpu(value: str) -> float:
    return float(value[:-1]) / 1000 if value.endswith("m") else float(value)


def _pod_templates(objects: list[K8s]) -> list[tuple[K8s, int]]:
    """Each workload's pod spec with the most pods it makes (LeaderWorkerSet groups: a
    leader and size - 1 workers per replica)."""
    found = []
    for obj in objects:
        replicas = max(int((obj.get("spec") or {}).get("replicas", 1)), 1)
        for template, per_replica in pod_templates(obj):
            found.append((template.get("spec") or {}, replicas * per_replica))
    return found


def _gpu_request(pod: K8s) -> tuple[str, int]:
    for container in pod.get("containers") or []:
        limits = (container.get("resources") or {}).get("limits") or {}
        for resource, value in limits.items():
            if resource.endswith("/gpu"):
                return resource, int(value)
    return "", 0


def _accelerator(selector: dict[str, str]) -> str | None:
    for name, conventions in ACCELERATORS.items():
        for labels in conventions.values():
            if labels and all(selector.get(k) == v for k, v in labels.items()):
                return name
    return None
