"""The real control plane in tests: one per test session (etcd, kube-apiserver,
kube-controller-manager, kube-scheduler and kwok, built from source by tools/build.sh), with
the upstream CRDs of ../shared/crds-yaml installed, and the ways Argo CD and Flux apply a
build to it.

- Argo CD (ServerSideApply=true) applies what its repo-server rendered with server-side
  apply under the field manager `argocd-controller`; for a Helm source that is the chart
  rendered with the environment's values file.
- Flux's kustomize-controller is played by tools/cmd/flux-apply, which uses Flux's own
  libraries (fluxcd/pkg/kustomize to build, fluxcd/pkg/ssa to apply in stages).
- helm-controller installs the chart render: applied like Argo CD's, under its manager.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import yaml

from modelapi_compile.cluster.api import Client
from modelapi_compile.cluster.binaries import find
from modelapi_compile.cluster.converge import Report, apply_all, converge, describe
from modelapi_compile.cluster.local import LocalControlPlane
from modelapi_compile.cluster.nodes import NodePool, preset_pools
from modelapi_compile.cluster.simulate import crd_documents, install_crds, prepare_cluster

K8s = dict[str, Any]


def start_control_plane(shared: Path) -> LocalControlPlane:
    plane = LocalControlPlane()
    plane.__enter__()
    try:
        assert plane.client is not None
        install_crds(plane.client, crd_documents([str(shared / "crds-yaml")]))
        for namespace in ("argocd", "flux-system"):
            plane.client.apply({"apiVersion": "v1", "kind": "Namespace",
                                "metadata": {"name": namespace}}, manager="test")
    except BaseException:
        plane.stop()
        raise
    return plane


def no_location(obj: K8s) -> tuple[str, int, int, str]:
    return "", 0, 0, ""


def argocd_apply(client: Client, objects: list[K8s], namespace: str) -> list[str]:
    rejected = apply_all(client, objects, manager="argocd-controller", namespace=namespace,
                         locate=no_location)
    return [r.render() for r in rejected]


def flux_apply(plane: LocalControlPlane, root: Path, kustomization: K8s,
               inventory: Path | None = None) -> dict[str, Any]:
    """One Flux Kustomization reconciled by flux-apply (see module doc)."""
    tool = find("flux-apply")
    assert tool, "flux-apply is built by tools/build.sh"
    file = root / f".flux-{kustomization['metadata']['name']}.yaml"
    file.write_text(yaml.safe_dump(kustomization))
    command = [tool, "--kubeconfig", str(plane.kubeconfig), "--root", str(root),
               "--kustomization", str(file)]
    if inventory is not None:
        command += ["--inventory", str(inventory)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    result: dict[str, Any] = json.loads(done.stdout)
    file.unlink()
    return result


def flux_kustomizations(out: Path, environment: str) -> list[K8s]:
    """The environment's Flux Kustomizations in dependsOn order."""
    found = []
    for path in sorted((out / "gitops" / "flux").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict) and doc.get("kind") == "Kustomization" and \
                    doc["apiVersion"].startswith("kustomize.toolkit") and \
                    doc["spec"]["path"].rstrip("/").split("/overlays/")[-1].split("/")[0] \
                    == environment:
                found.append(doc)
    names = {d["metadata"]["name"] for d in found}
    ordered: list[K8s] = []
    while found:
        ready = [d for d in found if all(dep["name"] not in names or dep["name"] in
                                         {o["metadata"]["name"] for o in ordered}
                                         for dep in d["spec"].get("dependsOn") or [])]
        assert ready, "dependsOn has a cycle"
        ordered += ready
        found = [d for d in found if d not in ready]
    return ordered


def gitops_objects(out: Path) -> list[K8s]:
    objects = []
    for path in sorted((out / "gitops").rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict) and doc.get("kind") and \
                    doc["apiVersion"] != "kustomize.config.k8s.io/v1beta1":
                objects.append(doc)
    return objects


def nodes_for(plane: LocalControlPlane, preset: str, objects: list[K8s]) -> list[NodePool]:
    assert plane.client is not None
    pools = preset_pools(preset, objects)
    prepare_cluster(plane.client, pools, objects)
    return pools


def settle(plane: LocalControlPlane, namespaces: set[str], timeout: float = 90) -> Report:
    assert plane.client is not None
    return converge(plane.client, namespaces, timeout=timeout, alive=plane.check_alive,
                    interval=0.5)


def delete_namespaces(plane: LocalControlPlane, namespaces: set[str], timeout: float = 120
                      ) -> None:
    """Delete and wait until the namespace controller has emptied and removed them, so the
    next test starts from a clean cluster (claims, pods and GPUs released)."""
    client = plane.client
    assert client is not None
    for namespace in namespaces:
        client.delete({"apiVersion": "v1", "kind": "Namespace",
                       "metadata": {"name": namespace}})
    deadline = time.monotonic() + timeout
    while any(client.get("v1", "Namespace", n) for n in namespaces):
        assert time.monotonic() < deadline, f"namespaces {namespaces} not deleted"
        time.sleep(0.5)


def wrong_nodes(client: Client, report: Report) -> list[str]:
    """Pods on a node that lacks a label their nodeSelector asks for, or a GPU count their
    node cannot hold: the scheduler must never do this; checked independently of it."""
    problems = []
    nodes = {n["metadata"]["name"]: n for n in client.list("v1", "Node")}
    for placement in report.pods:
        namespace, name = placement.pod.split("/")
        pod = client.get("v1", "Pod", name, namespace) or {}
        labels = nodes[placement.node]["metadata"]["labels"]
        for key, value in (pod.get("spec", {}).get("nodeSelector") or {}).items():
            if labels.get(key) != value:
                problems.append(f"{placement.pod} on {placement.node}: {key}={value} missing")
        if placement.gpus:
            count, resource = placement.gpus.split(" ")
            allocatable = nodes[placement.node]["status"]["allocatable"].get(resource, "0")
            if int(count) > int(allocatable):
                problems.append(f"{placement.pod} needs {placement.gpus}, node has {allocatable}")
    return problems


__all__ = ["argocd_apply", "delete_namespaces", "describe", "flux_apply",
           "flux_kustomizations", "gitops_objects", "nodes_for", "settle",
           "start_control_plane", "wrong_nodes"]


FIT_NAMESPACE = "fit-check"


def _bare_pod(name: str, template: K8s, node: str) -> K8s:
    """The pod spec alone, pinned to one node, without what needs other objects (claims,
    ConfigMaps, its ServiceAccount): what is left is what the scheduler weighs for GPUs."""
    spec = {k: v for k, v in template.items()
            if k not in ("volumes", "serviceAccountName", "initContainers")}
    spec["containers"] = [{k: v for k, v in c.items() if k != "volumeMounts"}
                          for c in template["containers"]]
    spec["nodeSelector"] = {**(template.get("nodeSelector") or {}),
                            "kubernetes.io/hostname": node}
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": FIT_NAMESPACE}, "spec": spec}


def pods_fit(plane: LocalControlPlane, pairs: list[tuple[K8s, K8s]], timeout: float = 120
             ) -> list[list[str]]:
    """For each (pod spec, Node), why the real kube-scheduler does not bind the pod to that
    node ([] when it does): each pod is pinned to its node by hostname and the scheduler's
    filters (node selector and affinity, taints, resources) decide. Nodes are made and removed
    here; they carry names no other test uses."""
    client = plane.client
    assert client is not None
    client.apply({"apiVersion": "v1", "kind": "Namespace",
                  "metadata": {"name": FIT_NAMESPACE}}, manager="test")
    nodes = {n["metadata"]["name"]: n for _, n in pairs}
    for node in nodes.values():
        node = {**node, "metadata": {**node["metadata"],
                                     "annotations": {"kwok.x-k8s.io/node": "fake"}}}
        client.create(node)
    _wait_ready(client, list(nodes), timeout)
    names = [f"fit-{i}" for i in range(len(pairs))]
    try:
        for name, (template, node) in zip(names, pairs, strict=True):
            client.create(_bare_pod(name, template, node["metadata"]["name"]))
        verdicts: dict[str, list[str]] = {}
        deadline = time.monotonic() + timeout
        while len(verdicts) < len(names):
            assert time.monotonic() < deadline, "the scheduler did not decide in time"
            for pod in client.list("v1", "Pod", FIT_NAMESPACE):
                name = pod["metadata"]["name"]
                conditions = (pod.get("status") or {}).get("conditions") or []
                scheduled = [c for c in conditions if c.get("type") == "PodScheduled"]
                if pod["spec"].get("nodeName"):
                    verdicts[name] = []
                elif scheduled and scheduled[0].get("reason") == "Unschedulable":
                    verdicts[name] = [scheduled[0].get("message", "unschedulable")]
            time.sleep(0.3)
        return [verdicts[name] for name in names]
    finally:
        delete_namespaces(plane, {FIT_NAMESPACE})
        for name in nodes:
            client.delete({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}})


def _wait_ready(client: Client, names: list[str], timeout: float) -> None:
    """Until kwok has made the nodes Ready and the node lifecycle controller has lifted its
    not-ready taint: before that every pod is unschedulable for a reason of no interest."""
    deadline = time.monotonic() + timeout
    while True:
        pending = []
        for name in names:
            found = client.get("v1", "Node", name) or {}
            conditions = (found.get("status") or {}).get("conditions") or []
            ready = any(c.get("type") == "Ready" and c.get("status") == "True"
                        for c in conditions)
            taints = (found.get("spec") or {}).get("taints") or []
            if not ready or any(t["key"].startswith("node.kubernetes.io/") for t in taints):
                pending.append(name)
        if not pending:
            return
        assert time.monotonic() < deadline, f"nodes not ready: {pending}"
        time.sleep(0.3)


def node(name: str, labels: dict[str, str], taints: tuple[K8s, ...] | list[K8s],
         gpus: int) -> K8s:
    """A Node with `gpus` nvidia.com/gpu (and room for any CPU and memory request)."""
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {**labels, "kubernetes.io/hostname": name}},
            "spec": {"taints": list(taints)},
            "status": {"allocatable": {"cpu": "256", "memory": "2Ti", "pods": "110",
                                       "nvidia.com/gpu": str(gpus)},
                       "capacity": {"cpu": "256", "memory": "2Ti", "pods": "110",
                                    "nvidia.com/gpu": str(gpus)}}}
