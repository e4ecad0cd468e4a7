"""The Kubernetes Pod Security Standards, "restricted" profile (which includes "baseline"),
checked on the pod template of every generated workload.

Every workload runs as the shared non-root UID, vLLM included (its caches go to writable
volumes). The one documented exception is a vLLM image that truly needs root
(`vllm.runAsRoot`): its pod may run as root, every other rule still holds for it, and its
namespace enforces `baseline` instead of `restricted`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

ALLOWED_VOLUME_SOURCES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral",
                          "persistentVolumeClaim", "projected", "secret"}
ALLOWED_ADDED_CAPABILITIES = {"NET_BIND_SERVICE"}
ALLOWED_SECCOMP = {"RuntimeDefault", "Localhost"}
# The rules a pod that opted into root (`vllm.runAsRoot`) may break (docs/internals.md: "Generated
# workloads").
ROOT_OPT_OUT = frozenset({"runAsNonRoot"})


def runs_as_root(pod_security_context: dict[str, Any]) -> bool:
    """Whether a pod with this securityContext may run as root (the image's user)."""
    return pod_security_context.get("runAsNonRoot") is not True


def namespace_level(root_pods: Iterable[bool]) -> str:
    """The strictest Pod Security level that all these pods meet (True: one may run as
    root)."""
    return "baseline" if any(root_pods) else "restricted"


def namespace_labels(level: str, kubernetes_version: str) -> dict[str, str]:
    """Pod Security admission labels: enforce and warn `level`, audit restricted, pinned to
    the target Kubernetes minor version so a cluster upgrade never tightens them."""
    version = "v" + ".".join(kubernetes_version.split(".")[:2])
    prefix = "pod-security.kubernetes.io"
    return {f"{prefix}/audit": "restricted", f"{prefix}/audit-version": version,
            f"{prefix}/enforce": level, f"{prefix}/enforce-version": version,
            f"{prefix}/warn": level, f"{prefix}/warn-version": version}


def level_violations(pod: dict[str, Any], level: str) -> list[str]:
    """What Pod Security admission enforcing `level` would reject in this pod."""
    if level == "privileged":
        return []
    checks = _baseline(pod) if level == "baseline" else _checks(pod)
    return [message for _, message in checks]


def violations(pod: dict[str, Any], exempt: Iterable[str] = ()) -> list[str]:
    """What the restricted profile refuses in this pod, but for the `exempt` rules."""
    skipped = set(exempt)
    return [message for rule, message in _checks(pod) if rule not in skipped]


def _containers(pod: dict[str, Any]) -> list[dict[str, Any]]:
    return [*pod.get("initContainers", []), *pod.get("containers", []),
            *pod.get("ephemeralContainers", [])]


def _checks(pod: dict[str, Any]) -> Iterator[tuple[str, str]]:
    yield from _baseline(pod)
    pod_context = pod.get("securityContext") or {}
    for container in _containers(pod):
        name = container.get("name", "?")
        context = container.get("securityContext") or {}
        if context.get("allowPrivilegeEscalation") is not False:
            yield "allowPrivilegeEscalation", f"container {name}: allowPrivilegeEscalation " \
                "must be false"
        if "ALL" not in ((context.get("capabilities") or {}).get("drop") or []):
            yield "capabilities", f"container {name}: capabilities must drop ALL"
        added = set((context.get("capabilities") or {}).get("add") or [])
        if added - ALLOWED_ADDED_CAPABILITIES:
            yield "capabilities", f"container {name}: adds capabilities {sorted(added)}"
        non_root = context.get("runAsNonRoot", pod_context.get("runAsNonRoot"))
        if non_root is not True:
            yield "runAsNonRoot", f"container {name}: runAsNonRoot must be true"
        if context.get("runAsUser", pod_context.get("runAsUser")) == 0:
            yield "runAsNonRoot", f"container {name}: runAsUser must not be 0"
        seccomp = (context.get("seccompProfile") or pod_context.get("seccompProfile") or {})
        if seccomp.get("type") not in ALLOWED_SECCOMP:
            yield "seccompProfile", f"container {name}: seccompProfile must be RuntimeDefault " \
                "or Localhost"
    for volume in pod.get("volumes", []):
        kinds = set(volume) - {"name"}
        if kinds - ALLOWED_VOLUME_SOURCES:
            yield "volumes", f"volume {volume.get('name')}: {sorted(kinds)} is not allowed"


def _baseline(pod: dict[str, Any]) -> Iterator[tuple[str, str]]:
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(field):
            yield field, f"{field} must not be set"
    for container in _containers(pod):
        name = container.get("name", "?")
        context = container.get("securityContext") or {}
        if context.get("privileged"):
            yield "privileged", f"container {name}: privileged"
        if context.get("procMount") not in (None, "Default"):
            yield "procMount", f"container {name}: procMount must be Default"
        for port in container.get("ports", []):
            if port.get("hostPort"):
                yield "hostPorts", f"container {name}: hostPort {port['hostPort']}"
