"""`modelapi-compile simulate`: an environment applied to a local control plane (the real API
server, controller-manager and scheduler, kwok nodes), optionally over the environment of an
older spec, and what Kubernetes made of it."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..emit.manifests import pod_templates
from .api import ApiError, Client
from .converge import Locate, Report, apply_all, converge, prune, storage_classes
from .local import LocalControlPlane
from .lws import play_lws_controller
from .nodes import PRESET_FOR_CONVENTION, PRESETS, NodePool, load_pools, preset_pools

K8s = dict[str, Any]
FIELD_MANAGER = "modelapi-compile"
CRD_TIMEOUT = 60.0


@dataclass
class Environment:
    """One environment's objects as the build writes them, and where each came from."""

    name: str
    namespace: str
    objects: list[K8s]
    locate: Locate
    convention: str  # the spec's GPU node label convention


def compile_environment(spec: str, environment: str) -> Environment:
    from ..emit.manifests import overlay_namespace
    from ..pipeline import compile_spec
    from ..spec.validate import load_spec
    from ..verify.engines import origin_of

    validated = load_spec(spec)
    compiled = compile_spec(spec, use_helm=False, keep_objects=True)
    resolved = next(e for e in compiled.environments if e.environment == environment)
    objects = [*overlay_namespace(resolved), *compiled.objects[environment]]

    def locate(obj: K8s) -> tuple[str, int, int, str]:
        line, column, path = origin_of(obj, validated)
        return validated.file, line, column, "" if path == "the spec" else path

    merged = next(e.stack for e in validated.environments if e.name == environment)
    convention = merged.spec.cluster.gpu_node_labels
    return Environment(environment, resolved.namespace, objects, locate, convention)


def node_pools(choice: str | None, env: Environment) -> list[NodePool]:
    if choice and choice not in PRESETS:
        return load_pools(choice)
    preset = choice or PRESET_FOR_CONVENTION[env.convention]
    return preset_pools(preset, env.objects)


def crd_documents(folders: Iterable[str]) -> list[K8s]:
    documents = []
    for folder in folders:
        for path in sorted(Path(folder).rglob("*.y*ml")):
            for doc in yaml.safe_load_all(path.read_text("utf-8")):
                if isinstance(doc, dict) and doc.get("kind") == "CustomResourceDefinition":
                    documents.append(doc)
    return documents


def needed_crds(crds: list[K8s], objects: list[K8s]) -> list[K8s]:
    """Only the CRDs of kinds the objects use: a few large CRDs take most of a start."""
    used = {(o["apiVersion"].split("/")[0], o["kind"]) for o in objects if "/" in o["apiVersion"]}
    return [c for c in crds if (c["spec"]["group"], c["spec"]["names"]["kind"]) in used]


def install_crds(client: Client, crds: list[K8s]) -> None:
    """Apply CRDs and wait until the API server serves each (Established)."""
    for crd in crds:
        client.apply(crd, manager=FIELD_MANAGER)
    deadline = time.monotonic() + CRD_TIMEOUT
    for crd in crds:
        while True:
            found = client.get("apiextensions.k8s.io/v1", "CustomResourceDefinition",
                               crd["metadata"]["name"]) or {}
            conditions = (found.get("status") or {}).get("conditions") or []
            if any(c.get("type") == "Established" and c.get("status") == "True"
                   for c in conditions):
                break
            if time.monotonic() > deadline:
                raise ApiError(504, "Timeout", f"CRD {crd['metadata']['name']} not established")
            time.sleep(0.2)


def prepare_cluster(client: Client, pools: list[NodePool], objects: list[K8s]) -> None:
    """What a GPU cluster has before the stack arrives: storage classes, the nodes, the
    RuntimeClasses the GPU operator installs (handler = name, as the NVIDIA GPU operator
    makes `nvidia`) and the PriorityClasses the pods name. The claims the spec names as
    existing (pvc:// sources, cache.existingClaim) are `existing_claims`."""
    for storage_class in storage_classes(objects):
        client.apply(storage_class, manager=FIELD_MANAGER)
    for runtime in _named(objects, "runtimeClassName"):
        client.apply({"apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass",
                      "metadata": {"name": runtime}, "handler": runtime}, manager=FIELD_MANAGER)
    for priority in _named(objects, "priorityClassName"):
        client.apply({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
                      "metadata": {"name": priority}, "value": 1000}, manager=FIELD_MANAGER)
    for pool in pools:
        for node in pool.nodes():
            if client.get("v1", "Node", node["metadata"]["name"]) is None:
                client.create(node)


def _named(objects: list[K8s], field: str) -> list[str]:
    """The cluster objects the pods name in `field` (RuntimeClass, PriorityClass)."""
    return sorted({str(pod[field]) for pod in _pod_specs(objects) if pod.get(field)})


def existing_claims(objects: list[K8s], namespace: str) -> list[K8s]:
    """Claims the pods mount that the objects do not make: the spec names them as existing."""
    made = {o["metadata"]["name"] for o in objects if o.get("kind") == "PersistentVolumeClaim"}
    names = set()
    for pod in _pod_specs(objects):
        for volume in pod.get("volumes") or []:
            claim = (volume.get("persistentVolumeClaim") or {}).get("claimName")
            if claim and claim not in made:
                names.add(claim)
    return [{"apiVersion": "v1", "kind": "PersistentVolumeClaim",
             "metadata": {"name": name, "namespace": namespace,
                          "annotations": {"simulate.modelapi.dev/existing": "true"}},
             "spec": {"accessModes": ["ReadWriteMany"],
                      "resources": {"requests": {"storage": "1Ti"}}}} for name in sorted(names)]


def _pod_specs(objects: list[K8s]) -> list[K8s]:
    return [template.get("spec") or {} for o in objects for template, _ in pod_templates(o)]


def simulate(spec: str, environment: str, *, nodes: str | None = None,
             upgrade_from: str | None = None, crds: Iterable[str] = (),
             timeout: float = 120.0, log: Callable[[str], None] = lambda m: None) -> Report:
    """Start a control plane, apply (OLD then) the environment, wait, report."""
    log(f"compiling {spec} ({environment})")
    new = compile_environment(spec, environment)
    old = compile_environment(upgrade_from, environment) if upgrade_from else None
    pools = node_pools(nodes, new)
    with LocalControlPlane(log=log) as plane:
        assert plane.client is not None
        client = plane.client
        crd_docs = needed_crds(crd_documents(crds), [*new.objects, *(old.objects if old else [])])
        if crd_docs:
            log(f"installing {len(crd_docs)} CustomResourceDefinitions")
            install_crds(client, crd_docs)
        prepare_cluster(client, pools, [*new.objects, *(old.objects if old else [])])
        if old is not None:
            log(f"applying {upgrade_from} ({len(old.objects)} objects)")
            first = apply_all(client, old.objects, manager=FIELD_MANAGER,
                              namespace=old.namespace, locate=old.locate)
            before = converge(client, {old.namespace}, timeout=timeout, alive=plane.check_alive)
            if first or not before.ok:
                before.rejected = first + before.rejected
                log("the old spec did not converge; reporting it")
                return before
            client.warnings.clear()
        log(f"applying {spec} ({len(new.objects)} objects)")
        for claim in existing_claims(new.objects, new.namespace):
            client.apply(claim, manager=FIELD_MANAGER)
        rejected = apply_all(client, new.objects, manager=FIELD_MANAGER,
                             namespace=new.namespace, locate=new.locate)
        if old is not None:
            prune(client, old.objects, new.objects, new.namespace)
        if play_lws_controller(client, new.objects):
            log("no LeaderWorkerSet controller here: making its groups' StatefulSets as it "
                "would")
        log("waiting for the controllers and the scheduler")
        report = converge(client, {new.namespace}, timeout=timeout, alive=plane.check_alive)
        report.rejected = rejected + report.rejected
        report.warnings = list(client.warnings)
        return report


def render_text(report: Report) -> str:
    lines = []
    for rejection in sorted(report.rejected):
        lines.append(rejection.render())
    for warning in sorted(set(report.warnings)):
        lines.append(f"warning: {warning}")
    for placement in sorted(report.pods):
        gpus = f" ({placement.gpus} on {placement.accelerator})" if placement.gpus else ""
        lines.append(f"pod {placement.pod} -> {placement.node}{gpus}")
    for pending in sorted(report.pending):
        lines.append(f"pending {pending.pod}: {pending.reason}")
    verdict = ("admitted, and every pod is bound to a node" if report.ok else
               f"{len(report.rejected)} rejected, {len(report.pending)} pending")
    lines.append(f"{len(report.pods)} pods scheduled; {verdict}")
    return "\n".join(lines) + "\n"
