"""Apply objects to a real API server and let its controllers act: what was rejected (at the
spec line the object came from), which pod runs on which node, what stays Pending and why.

The control plane has no storage driver, so `Provisioner` plays an external provisioner the
way the CSI external-provisioner does: for each claim the scheduler picked a node for
(`volume.kubernetes.io/selected-node`), it creates a PersistentVolume of the claim's size,
class and access modes in that node's zone, as a cloud disk is; the API server's PV
controller then binds them."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from .api import ApiError, Client

K8s = dict[str, Any]
PROVISIONER = "simulate.modelapi.dev/fake"
SELECTED_NODE = "volume.kubernetes.io/selected-node"
ZONE = "topology.kubernetes.io/zone"
WORKLOAD_KINDS = ("Deployment", "StatefulSet")


@dataclass(frozen=True, order=True)
class Rejection:
    file: str
    line: int
    column: int
    path: str  # the spec item the object came from
    object: str  # Kind/namespace/name
    message: str

    def render(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}: " if self.line else ""
        path = f"{self.path}: " if self.path else ""
        return f"{where}rejected: {path}{self.object}: {self.message}"


@dataclass(frozen=True, order=True)
class Placement:
    pod: str  # namespace/name
    node: str
    gpus: str  # e.g. "8 nvidia.com/gpu" or ""
    accelerator: str  # the node's accelerator labels, or "cpu"


@dataclass(frozen=True, order=True)
class Pending:
    pod: str  # namespace/name, or the workload whose pods were never created
    reason: str


@dataclass
class Report:
    rejected: list[Rejection] = field(default_factory=list)
    pods: list[Placement] = field(default_factory=list)
    pending: list[Pending] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.rejected and not self.pending

    def as_dict(self) -> dict[str, Any]:
        return {"rejected": [asdict(r) for r in sorted(self.rejected)],
                "pods": [asdict(p) for p in sorted(self.pods)],
                "pending": [asdict(p) for p in sorted(self.pending)],
                "warnings": sorted(set(self.warnings))}


Locate = Callable[[K8s], tuple[str, int, int, str]]  # object -> file, line, column, spec path


def describe(obj: K8s) -> str:
    meta = obj.get("metadata") or {}
    namespace = f"{meta['namespace']}/" if meta.get("namespace") else ""
    return f"{obj.get('kind')}/{namespace}{meta.get('name')}"


def apply_all(client: Client, objects: Iterable[K8s], *, manager: str, namespace: str,
              locate: Locate, dry_run: bool = False) -> list[Rejection]:
    """Server-side apply in the order Argo CD and Flux use: Namespaces and CRDs, then the rest.
    Every refusal is kept (none stops the others), located by `locate`."""
    ordered = sorted(objects, key=lambda o: 0 if o.get("kind") in (
        "Namespace", "CustomResourceDefinition") else 1)
    rejected = []
    for obj in ordered:
        try:
            client.apply(obj, manager=manager, namespace=namespace, dry_run=dry_run)
        except ApiError as error:
            file, line, column, path = locate(obj)
            rejected.append(Rejection(file, line, column, path, describe(obj), error.message))
    return rejected


def prune(client: Client, old: Iterable[K8s], new: Iterable[K8s], namespace: str) -> list[str]:
    """Delete what the old build had and the new one has not, as Argo CD's and Flux's prune
    do; objects annotated to be kept (the model caches) stay."""
    keep = {_identity(o, namespace) for o in new}
    removed = []
    for obj in old:
        annotations = (obj.get("metadata") or {}).get("annotations") or {}
        if _identity(obj, namespace) in keep or "Prune=false" in annotations.get(
                "argocd.argoproj.io/sync-options", "") or annotations.get(
                "kustomize.toolkit.fluxcd.io/prune") == "disabled":
            continue
        client.delete(obj, namespace)
        removed.append(describe(obj))
    return removed


def _identity(obj: K8s, namespace: str) -> tuple[str, str, str, str]:
    meta = obj.get("metadata") or {}
    return (obj["apiVersion"].split("/")[0], obj["kind"], meta.get("namespace") or namespace,
            meta["name"])


def storage_classes(objects: Iterable[K8s]) -> list[K8s]:
    """A WaitForFirstConsumer StorageClass for every class the claims name, and a default
    one, all served by the fake provisioner."""
    names: set[str] = set()
    for obj in objects:
        for claim in _claims_of(obj):
            if claim.get("spec", {}).get("storageClassName"):
                names.add(claim["spec"]["storageClassName"])
    classes = [_storage_class("standard", default=True)]
    classes += [_storage_class(name) for name in sorted(names - {"standard"})]
    return classes


def _storage_class(name: str, default: bool = False) -> K8s:
    annotations = {"storageclass.kubernetes.io/is-default-class": "true"} if default else {}
    return {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
            "metadata": {"name": name, "annotations": annotations},
            "provisioner": PROVISIONER, "volumeBindingMode": "WaitForFirstConsumer",
            "allowVolumeExpansion": True, "reclaimPolicy": "Delete"}


def _claims_of(obj: K8s) -> list[K8s]:
    if obj.get("kind") == "PersistentVolumeClaim":
        return [obj]
    templates: list[K8s] = (obj.get("spec") or {}).get("volumeClaimTemplates") or []
    return templates


class Provisioner:
    """Creates a volume for each claim the scheduler chose a node for (see module doc)."""

    def __init__(self, client: Client):
        self.client = client
        self.made: set[str] = set()

    def step(self) -> None:
        for claim in self.client.list("v1", "PersistentVolumeClaim"):
            meta, spec = claim["metadata"], claim["spec"]
            key = f"{meta['namespace']}/{meta['name']}"
            if spec.get("volumeName") or key in self.made:
                continue
            node = (meta.get("annotations") or {}).get(SELECTED_NODE)
            if node is None:
                continue
            labels = ((self.client.get("v1", "Node", node) or {}).get("metadata") or {}).get(
                "labels") or {}
            self.client.create(self._volume(claim, labels.get(ZONE, "")))
            self.made.add(key)

    @staticmethod
    def _volume(claim: K8s, zone: str) -> K8s:
        meta, spec = claim["metadata"], claim["spec"]
        return {
            "apiVersion": "v1", "kind": "PersistentVolume",
            "metadata": {"name": f"pv-{meta['uid']}",
                         "annotations": {"pv.kubernetes.io/provisioned-by": PROVISIONER}},
            "spec": {
                "capacity": {"storage": spec["resources"]["requests"]["storage"]},
                "accessModes": spec.get("accessModes") or ["ReadWriteOnce"],
                "storageClassName": spec.get("storageClassName") or "standard",
                "persistentVolumeReclaimPolicy": "Delete",
                "claimRef": {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                             "namespace": meta["namespace"], "name": meta["name"],
                             "uid": meta["uid"]},
                "hostPath": {"path": f"/var/lib/simulate/{meta['uid']}"},
                # A cloud disk lives in the zone of the node it was made for (GCE PD, EBS,
                # Azure Disk): any node of that zone may mount it.
                "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                    {"key": ZONE, "operator": "In", "values": [zone]}]}]}},
            },
        }


def expected_pods(client: Client, namespaces: set[str]) -> dict[str, int]:
    """Workload -> how many pods its controller should have made (its replicas; KEDA and the
    HPA leave an unset count at 1)."""
    wanted = {}
    for namespace in sorted(namespaces):
        for kind in WORKLOAD_KINDS:
            for obj in client.list("apps/v1", kind, namespace):
                # A list's items carry no kind of their own.
                wanted[describe({**obj, "kind": kind})] = int(obj["spec"].get("replicas", 1))
    return wanted


def converge(client: Client, namespaces: set[str], *, timeout: float,
             alive: Callable[[], None] = lambda: None, interval: float = 1.0) -> Report:
    """Wait, at most `timeout` seconds, until every workload has all its pods bound to nodes;
    then report placements, and what is still Pending or was never created, with why."""
    provisioner = Provisioner(client)
    deadline = time.monotonic() + timeout
    while True:
        alive()
        provisioner.step()
        report = _observe(client, namespaces)
        if report.ok or time.monotonic() >= deadline:
            return report
        time.sleep(interval)


def _observe(client: Client, namespaces: set[str]) -> Report:
    report = Report()
    nodes = {n["metadata"]["name"]: n for n in client.list("v1", "Node")}
    counted: dict[str, int] = {}
    for namespace in sorted(namespaces):
        for pod in client.list("v1", "Pod", namespace):
            name = f"{namespace}/{pod['metadata']['name']}"
            for owner in pod["metadata"].get("ownerReferences") or []:
                counted[owner["name"]] = counted.get(owner["name"], 0) + 1
            node = pod["spec"].get("nodeName")
            if node:
                report.pods.append(Placement(name, node, _gpus(pod), _accelerator(nodes.get(node))))
            else:
                report.pending.append(Pending(name, _unscheduled_reason(pod)))
    for workload, replicas in expected_pods(client, namespaces).items():
        missing = replicas - _pods_of(client, workload, counted)
        if missing > 0:
            report.pending.append(Pending(workload, f"{missing} of {replicas} pods not created: "
                                          + _creation_failure(client, workload)))
    return report


def _pods_of(client: Client, workload: str, counted: dict[str, int]) -> int:
    kind, namespace, name = workload.split("/")
    if kind == "StatefulSet":
        return counted.get(name, 0)
    replica_sets = client.list("apps/v1", "ReplicaSet", namespace)
    return sum(counted.get(rs["metadata"]["name"], 0) for rs in replica_sets
               if any(o["name"] == name for o in rs["metadata"].get("ownerReferences") or [])
               and int(rs["spec"].get("replicas", 0)) > 0)


def _creation_failure(client: Client, workload: str) -> str:
    """Why a controller made fewer pods: the ReplicaFailure condition of a ReplicaSet, or the
    FailedCreate events of the workload and its ReplicaSets (Pod Security, quota, webhooks)."""
    kind, namespace, name = workload.split("/")
    messages = []
    for event in client.list("v1", "Event", namespace):
        involved = event.get("involvedObject") or {}
        if event.get("reason") in ("FailedCreate", "FailedCreatePodReason") and (
                involved.get("name", "").startswith(name)):
            messages.append(event.get("message", ""))
    if kind == "Deployment":
        for rs in client.list("apps/v1", "ReplicaSet", namespace):
            for condition in (rs.get("status") or {}).get("conditions") or []:
                if condition.get("type") == "ReplicaFailure" and rs["metadata"]["name"].startswith(
                        name):
                    messages.append(condition.get("message", ""))
    return messages[-1] if messages else "the controller has not made them yet"


def _unscheduled_reason(pod: K8s) -> str:
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
            return str(condition.get("message") or condition.get("reason") or "unschedulable")
    return "not scheduled yet"


def _gpus(pod: K8s) -> str:
    for container in pod["spec"].get("containers") or []:
        for resource, value in ((container.get("resources") or {}).get("limits") or {}).items():
            if resource.endswith("/gpu"):
                return f"{value} {resource}"
    return ""


ACCELERATOR_LABELS = ("nvidia.com/gpu.product", "cloud.google.com/gke-accelerator",
                      "karpenter.k8s.aws/instance-gpu-name")


def _accelerator(node: K8s | None) -> str:
    labels = ((node or {}).get("metadata") or {}).get("labels") or {}
    found = [f"{k}={labels[k]}" for k in ACCELERATOR_LABELS if k in labels]
    return ",".join(found) or "cpu"
