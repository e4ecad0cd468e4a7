"""Day two on the real control plane: the platform spec is built and applied as Flux applies
it, then built again after each change a team makes over months and applied over the
running state (with Flux's garbage collection of what left). Each change is admitted by the
API server and converges, or the build refuses it at the spec line and says what to do by
hand; nothing is refused only at sync time."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from conftest import CASES
from control_plane import (
    delete_namespaces,
    flux_apply,
    flux_kustomizations,
    nodes_for,
    settle,
)
from modelapi_compile.pipeline import compile_spec

Spec = dict[str, Any]
ENVIRONMENT = "gke"


def _api(spec: Spec, name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(a for a in spec["spec"]["modelAPIs"] if a["name"] == name)
    return found


def _vllm(spec: Spec, name: str) -> dict[str, Any]:
    found: dict[str, Any] = _api(spec, name)["vllm"]
    return found


def _set(edit: Callable[[Spec], None]) -> Callable[[Spec], Spec]:
    def change(spec: Spec) -> Spec:
        spec = copy.deepcopy(spec)
        edit(spec)
        return spec

    return change


def _agent(spec: Spec, name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(a for a in spec["spec"]["agents"] if a["name"] == name)
    return found


# (what changes, the edit, whether the build must refuse it)
CHANGES: list[tuple[str, Callable[[Spec], Spec], bool]] = [
    ("claim template size of a replicated model",
     _set(lambda s: _vllm(s, "llama70b")["cache"].update(size="500Gi")), True),
    ("storage class of a shared cache",
     _set(lambda s: _vllm(s, "qwen")["cache"].update(storageClass="filestore-premium")), True),
    ("access mode of a shared cache (a kind switch to a claim per replica)",
     _set(lambda s: _vllm(s, "qwen")["cache"].update(accessMode="ReadWriteOnce")), False),
    ("agent replicas 1 -> 2", _set(lambda s: _agent(s, "summarizer").update(replicas=2)), False),
    ("agent replicas 2 -> 1", _set(lambda s: _agent(s, "summarizer").update(replicas=1)), False),
    ("model replicas 2 -> 1 (StatefulSet -> Deployment)",
     _set(lambda s: _vllm(s, "llama70b").update(replicas=1)), False),
    ("model replicas 1 -> 2 (Deployment -> StatefulSet)",
     _set(lambda s: _vllm(s, "llama70b").update(replicas=2)), False),
    ("model id", _set(lambda s: _vllm(s, "qwen").update(model="Qwen/Qwen2.5-7B-Instruct-AWQ")),
     False),
    ("tensor parallel size 4 -> 8",
     _set(lambda s: _vllm(s, "llama70b")["gpu"].update(count=8)), False),
    ("accelerator L4 -> A100 80GB",
     _set(lambda s: _vllm(s, "qwen")["gpu"].update(accelerator="nvidia-a100-80gb")), False),
    ("add an agent", _set(lambda s: s["spec"]["agents"].append({
        "name": "reviewer", "image": "ghcr.io/example/reviewer:1.0.0", "modelAPI": "gateway",
        "model": "small", "apiKeySecret": {"name": "reviewer-key", "key": "key"}})), False),
    ("remove an agent", _set(lambda s: s["spec"].update(
        agents=[a for a in s["spec"]["agents"] if a["name"] != "summarizer"])), False),
    ("add a modelAPI", _set(lambda s: s["spec"]["modelAPIs"].append(
        {"name": "ollama2", "ollama": {"models": ["qwen2.5:0.5b"]}})), False),
    ("remove a modelAPI", _set(lambda s: s["spec"].update(
        modelAPIs=[a for a in s["spec"]["modelAPIs"] if a["name"] != "ollama2"])), False),
    ("autoscaling on", _set(lambda s: (
        s["spec"]["monitoring"].update(
            prometheusURL="http://prometheus-operated.monitoring.svc:9090"),
        _vllm(s, "qwen").pop("replicas"),  # the autoscaler owns the count
        _vllm(s, "qwen").update(autoscaling={"minReplicas": 1, "maxReplicas": 4,
                                             "waitingRequests": 5}))), False),
    ("autoscaling off", _set(lambda s: (_vllm(s, "qwen").pop("autoscaling", None),
                                        _vllm(s, "qwen").update(replicas=3))), False),
    ("image bump", _set(lambda s: _api(s, "ollama")["ollama"].update(
        image="ollama/ollama:0.6.6")), False),
    ("overlayParts 1 -> 2", _set(lambda s: s["spec"]["gitops"].update(overlayParts=2)), False),
    ("environment namespace", _set(lambda s: s["spec"]["environments"][0].update(
        namespace="llm-next")), False),
]


def _build(spec: Spec, path: Path, out: Path) -> subprocess.CompletedProcess[str]:
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return subprocess.run([sys.executable, "-m", "modelapi_compile", "build", "-f", str(path),
                           "-o", str(out), "--no-helm"], capture_output=True, text=True,
                          check=False, timeout=300)


class FluxState:
    """The Flux Kustomizations of the environment and their inventories, across syncs."""

    def __init__(self, plane: Any, root: Path):
        self.plane, self.root = plane, root
        self.inventories: dict[str, Path] = {}

    def sync(self, out: Path) -> list[str]:
        errors = []
        current = flux_kustomizations(out, ENVIRONMENT)
        names = {k["metadata"]["name"] for k in current}
        for kustomization in current:
            name = kustomization["metadata"]["name"]
            inventory = self.inventories.setdefault(name, self.root / f"inventory-{name}.json")
            result = flux_apply(self.plane, self.root, kustomization, inventory)
            if result.get("error"):
                errors.append(f"{name}: {result['error']}")
        for gone in sorted(set(self.inventories) - names):
            self._finalize(gone)
        return errors

    def _finalize(self, name: str) -> None:
        """A Kustomization removed from Git is deleted by its parent; its finalizer deletes
        the objects of its inventory that still carry its owner labels (kustomize-controller
        finalize with prune: true; ssa DeleteAll with owner-label inclusions)."""
        client = self.plane.client
        for entry in json.loads(self.inventories.pop(name).read_text()):
            namespace, object_name, group, kind, version = entry.split("_", 4)
            api_version = f"{group}/{version}" if group else version
            obj = client.get(api_version, kind, object_name, namespace)
            labels = ((obj or {}).get("metadata") or {}).get("labels") or {}
            annotations = ((obj or {}).get("metadata") or {}).get("annotations") or {}
            if labels.get("kustomize.toolkit.fluxcd.io/name") == name and annotations.get(
                    "kustomize.toolkit.fluxcd.io/prune") != "disabled":
                client.delete(obj, namespace)


def test_every_day_two_change_is_admitted_or_refused_at_its_line(control_plane: Any,
                                                                  tmp_path: Path) -> None:
    spec: Spec = yaml.safe_load((CASES / "valid" / "platform.yaml").read_text())
    path = tmp_path / "platform.yaml"
    out = tmp_path / spec["spec"]["gitops"]["path"]
    flux = FluxState(control_plane, tmp_path)
    namespaces = {"llm"}
    failures: list[str] = []
    try:
        built = _build(spec, path, out)
        assert built.returncode == 0, built.stderr
        objects = compile_spec(str(path), use_helm=False, keep_objects=True).objects
        nodes_for(control_plane, "gke", [o for env in objects.values() for o in env])
        assert flux.sync(out) == []
        first = settle(control_plane, namespaces)
        assert first.ok, (first.rejected, first.pending)
        for what, change, refused in CHANGES:
            candidate = change(spec)
            built = _build(candidate, path, out)
            if refused:
                if built.returncode != 1 or "cannot change in place" not in built.stderr or \
                        "kubectl" not in built.stderr or f"{path}:" not in built.stderr:
                    failures.append(f"{what}: not refused at its line: {built.stderr}")
                path.write_text(yaml.safe_dump(spec, sort_keys=False))
                continue
            if built.returncode != 0:
                failures.append(f"{what}: the build failed: {built.stderr}")
                continue
            if "StatefulSet ->" in what or "-> StatefulSet" in what:
                announced = "in the last build" in built.stderr and "downloaded again" in \
                    built.stderr
                if not announced:
                    failures.append(f"{what}: the kind switch was not announced")
            spec = candidate
            namespaces.add(spec["spec"]["environments"][0]["namespace"])
            objects = compile_spec(str(path), use_helm=False, keep_objects=True).objects
            nodes_for(control_plane, "gke", objects[ENVIRONMENT])
            errors = flux.sync(out)
            report = settle(control_plane, namespaces, timeout=60)
            print(f"{what}: {errors} {report.rejected} {report.pending}", flush=True)
            if errors or not report.ok:
                failures.append(f"{what}: {errors} {report.rejected} {report.pending}")
        assert failures == []
    finally:
        delete_namespaces(control_plane, namespaces)
