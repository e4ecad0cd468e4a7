"""API versions that Kubernetes (and Flux) deprecated or removed, with their replacements,
from the Kubernetes deprecated API migration guide and the Flux release notes."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Retired:
    api_version: str
    kinds: tuple[str, ...]  # empty: every kind of that API version
    removed_in: str | None  # Kubernetes minor version, None when it depends on the project
    replacement: str
    deprecated_in: str | None = None


_CORE_1_16 = ("Deployment", "DaemonSet", "ReplicaSet", "StatefulSet")
RETIRED = (
    Retired("extensions/v1beta1", _CORE_1_16, "1.16", "apps/v1"),
    Retired("apps/v1beta1", (), "1.16", "apps/v1"),
    Retired("apps/v1beta2", (), "1.16", "apps/v1"),
    Retired("extensions/v1beta1", ("NetworkPolicy",), "1.16", "networking.k8s.io/v1"),
    Retired("extensions/v1beta1", ("Ingress",), "1.22", "networking.k8s.io/v1"),
    Retired("networking.k8s.io/v1beta1", ("Ingress", "IngressClass"), "1.22",
            "networking.k8s.io/v1"),
    Retired("rbac.authorization.k8s.io/v1beta1", (), "1.22", "rbac.authorization.k8s.io/v1"),
    Retired("admissionregistration.k8s.io/v1beta1", (), "1.22",
            "admissionregistration.k8s.io/v1"),
    Retired("apiextensions.k8s.io/v1beta1", (), "1.22", "apiextensions.k8s.io/v1"),
    Retired("apiregistration.k8s.io/v1beta1", (), "1.22", "apiregistration.k8s.io/v1"),
    Retired("certificates.k8s.io/v1beta1", (), "1.22", "certificates.k8s.io/v1"),
    Retired("coordination.k8s.io/v1beta1", (), "1.22", "coordination.k8s.io/v1"),
    Retired("scheduling.k8s.io/v1beta1", (), "1.22", "scheduling.k8s.io/v1"),
    Retired("storage.k8s.io/v1beta1", ("CSIDriver", "CSINode", "StorageClass",
                                       "VolumeAttachment"), "1.22", "storage.k8s.io/v1"),
    Retired("batch/v1beta1", ("CronJob",), "1.25", "batch/v1", "1.21"),
    Retired("discovery.k8s.io/v1beta1", ("EndpointSlice",), "1.25", "discovery.k8s.io/v1",
            "1.21"),
    Retired("events.k8s.io/v1beta1", ("Event",), "1.25", "events.k8s.io/v1", "1.19"),
    Retired("autoscaling/v2beta1", ("HorizontalPodAutoscaler",), "1.25", "autoscaling/v2",
            "1.22"),
    Retired("policy/v1beta1", ("PodDisruptionBudget",), "1.25", "policy/v1", "1.21"),
    Retired("policy/v1beta1", ("PodSecurityPolicy",), "1.25",
            "Pod Security Admission (no replacement object)", "1.21"),
    Retired("node.k8s.io/v1beta1", ("RuntimeClass",), "1.25", "node.k8s.io/v1", "1.20"),
    Retired("autoscaling/v2beta2", ("HorizontalPodAutoscaler",), "1.26", "autoscaling/v2",
            "1.23"),
    Retired("flowcontrol.apiserver.k8s.io/v1beta1", (), "1.26",
            "flowcontrol.apiserver.k8s.io/v1"),
    Retired("storage.k8s.io/v1beta1", ("CSIStorageCapacity",), "1.27", "storage.k8s.io/v1",
            "1.24"),
    Retired("flowcontrol.apiserver.k8s.io/v1beta2", (), "1.29",
            "flowcontrol.apiserver.k8s.io/v1"),
    Retired("flowcontrol.apiserver.k8s.io/v1beta3", (), "1.32",
            "flowcontrol.apiserver.k8s.io/v1", "1.29"),
    Retired("source.toolkit.fluxcd.io/v1beta2", ("GitRepository",), None,
            "source.toolkit.fluxcd.io/v1 (v1beta2 is gone from Flux 2.8)"),
    Retired("helm.toolkit.fluxcd.io/v2beta1", (), None,
            "helm.toolkit.fluxcd.io/v2 (gone from Flux 2.8)"),
    Retired("helm.toolkit.fluxcd.io/v2beta2", (), None,
            "helm.toolkit.fluxcd.io/v2 (gone from Flux 2.8)"),
    Retired("kustomize.toolkit.fluxcd.io/v1beta2", (), None,
            "kustomize.toolkit.fluxcd.io/v1"),
)


def minor_version(version: str) -> tuple[int, int]:
    major, minor = version.lstrip("v").split(".")[:2]
    return int(major), int(minor)


def retirement(api_version: str, kind: str, kubernetes_version: str) -> tuple[str, str] | None:
    """("removed" | "deprecated", message) when the API version is retired in that version."""
    for entry in RETIRED:
        if entry.api_version != api_version or (entry.kinds and kind not in entry.kinds):
            continue
        if entry.removed_in is None:
            return "deprecated", (f"{kind} {api_version} is deprecated; use "
                                  f"{entry.replacement}")
        if minor_version(kubernetes_version) >= minor_version(entry.removed_in):
            return "removed", (f"{kind} {api_version} was removed in Kubernetes "
                               f"{entry.removed_in}; use {entry.replacement}")
        if (entry.deprecated_in
                and minor_version(kubernetes_version) >= minor_version(entry.deprecated_in)):
            return "deprecated", (f"{kind} {api_version} is deprecated and goes away in "
                                  f"Kubernetes {entry.removed_in}; use {entry.replacement}")
    return None
