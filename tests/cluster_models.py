"""Small models of how Kubernetes components treat the objects the engines render.

They are deliberately independent of the compiler: each reads rendered objects (what Helm or
Kustomize produced) and decides what the cluster would do, following the documented rules:

- `NetworkPolicies`: the CNI's evaluation of networking.k8s.io/v1 NetworkPolicy (a pod is
  isolated for a direction once any policy with that policyType selects it; then a
  connection is allowed only if some rule of some such policy admits the peer and port).

- `argocd_sync`: Argo CD's sync by waves (gitops-engine pkg/sync/sync_context.go: a wave
  starts once every resource of the earlier waves is healthy; health of a PVC from
  pkg/health/health_pvc.go, Bound) with WaitForFirstConsumer binding (the scheduler's
  volume binder binds a claim only once a pod that mounts it is scheduled).
- `deleted_by`: what Argo CD (controller/sync.go prune with the Prune=false and Delete=false
  sync options), Flux (kustomize-controller's garbage collection, fluxcd/pkg/ssa DeleteAll
  with the prune-disabled exclusion) and Helm (pkg/action upgrade and uninstall, the
  helm.sh/resource-policy: keep annotation) delete.

These stay models because nothing real of them runs here: Argo CD, a CNI dataplane and
helm-controller need a cluster with a container runtime. Where the real components run
(kube-apiserver, controller-manager, kube-scheduler, and Flux's own apply and prune
libraries in tools/cmd/flux-apply), they decide instead: tests/control_plane.py.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

Obj = dict[str, Any]
WORKLOAD_KINDS = ("Deployment", "StatefulSet")


# --- label selectors -------------------------------------------------------------------------


def selector_matches(selector: Obj | None, labels: dict[str, str]) -> bool:
    """metav1.LabelSelector semantics; an empty selector matches everything."""
    if selector is None:
        return False
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        key, operator = expression["key"], expression["operator"]
        values = expression.get("values") or []
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and key in labels and labels[key] in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
    return True


# --- NetworkPolicy evaluation ----------------------------------------------------------------


@dataclass(frozen=True)
class Pod:
    namespace: str
    labels: dict[str, str]
    ip: str | None = None  # for ipBlock peers; pods are usually matched by labels
    # Named container ports, name -> (port, protocol): what a policy's named port means.
    ports: dict[str, tuple[int, str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Address:
    """A destination outside the pod network (a node-local or external IP)."""

    ip: str


Peer = Pod | Address


def namespace_labels(namespace: str) -> dict[str, str]:
    """What the API server sets on every namespace (and nothing else, in these models)."""
    return {"kubernetes.io/metadata.name": namespace}


@dataclass
class NetworkPolicies:
    policies: list[Obj] = field(default_factory=list)

    @classmethod
    def of(cls, objects: Iterable[Obj]) -> NetworkPolicies:
        return cls([o for o in objects if o.get("kind") == "NetworkPolicy"])

    def _selecting(self, pod: Pod, policy_type: str) -> list[Obj]:
        found = []
        for policy in self.policies:
            spec = policy["spec"]
            types = spec.get("policyTypes") or (
                ["Ingress", "Egress"] if "egress" in spec else ["Ingress"])
            if (policy_type in types and policy["metadata"].get("namespace") == pod.namespace
                    and selector_matches(spec.get("podSelector", {}), pod.labels)):
                found.append(policy)
        return found

    def egress_allowed(self, source: Pod, target: Peer, port: int, protocol: str = "TCP"
                       ) -> bool:
        policies = self._selecting(source, "Egress")
        if not policies:
            return True
        return any(_rule_admits(rule, "to", source.namespace, target, target, port, protocol)
                   for policy in policies for rule in policy["spec"].get("egress") or [])

    def ingress_allowed(self, source: Peer, target: Pod, port: int, protocol: str = "TCP"
                        ) -> bool:
        policies = self._selecting(target, "Ingress")
        if not policies:
            return True
        return any(_rule_admits(rule, "from", target.namespace, source, target, port, protocol)
                   for policy in policies for rule in policy["spec"].get("ingress") or [])

    def connects(self, source: Pod, target: Pod, port: int, protocol: str = "TCP") -> bool:
        return (self.egress_allowed(source, target, port, protocol)
                and self.ingress_allowed(source, target, port, protocol))


def _rule_admits(rule: Obj, direction: str, policy_namespace: str, peer: Peer,
                 destination: Peer, port: int, protocol: str) -> bool:
    ports = rule.get("ports")
    if ports and not any(_port_matches(p, destination, port, protocol) for p in ports):
        return False
    peers = rule.get(direction)
    if not peers:  # absent or empty: every peer
        return True
    return any(_peer_matches(p, policy_namespace, peer) for p in peers)


def _port_matches(spec: Obj, destination: Peer, port: int, protocol: str) -> bool:
    """A number (or range with endPort), or the name of a container port of the destination
    pod, in both directions; a name never matches an address outside the cluster."""
    if spec.get("protocol", "TCP") != protocol:
        return False
    if "port" not in spec:
        return True
    low = spec["port"]
    if not isinstance(low, int):
        named = destination.ports.get(low) if isinstance(destination, Pod) else None
        return named == (port, protocol)
    return low <= port <= spec.get("endPort", low)


def _peer_matches(spec: Obj, policy_namespace: str, peer: Peer) -> bool:
    if "ipBlock" in spec:
        ip = peer.ip if isinstance(peer, Address | Pod) else None
        if ip is None:
            return False
        address = ipaddress.ip_address(ip)
        block = spec["ipBlock"]
        if address not in ipaddress.ip_network(block["cidr"]):
            return False
        return not any(address in ipaddress.ip_network(e) for e in block.get("except") or [])
    if not isinstance(peer, Pod):
        return False  # pod and namespace selectors never match node or external addresses
    if "namespaceSelector" in spec:
        if not selector_matches(spec["namespaceSelector"], namespace_labels(peer.namespace)):
            return False
    elif peer.namespace != policy_namespace:
        return False
    return selector_matches(spec.get("podSelector", {}), peer.labels)


# --- rendered workloads ----------------------------------------------------------------------


def workloads(objects: Iterable[Obj]) -> Iterator[Obj]:
    return (o for o in objects if o.get("kind") in WORKLOAD_KINDS)


def pod_of(workload: Obj, ip: str | None = None) -> Pod:
    template = workload["spec"]["template"]
    ports = {port["name"]: (port["containerPort"], port.get("protocol", "TCP"))
             for container in template["spec"]["containers"]
             for port in container.get("ports") or [] if "name" in port}
    return Pod(workload["metadata"]["namespace"], dict(template["metadata"]["labels"]), ip,
               ports)


def by_kind(objects: Iterable[Obj], kind: str) -> dict[str, Obj]:
    return {o["metadata"]["name"]: o for o in objects if o.get("kind") == kind}


# --- Argo CD sync waves with WaitForFirstConsumer storage ------------------------------------

SYNC_WAVE = "argocd.argoproj.io/sync-wave"


def _wave(obj: Obj) -> int:
    return int(((obj["metadata"].get("annotations") or {}).get(SYNC_WAVE)) or 0)


def _claims_mounted(workload: Obj) -> set[str]:
    pod = workload["spec"]["template"]["spec"]
    return {v["persistentVolumeClaim"]["claimName"] for v in pod.get("volumes") or []
            if "persistentVolumeClaim" in v}


def argocd_sync(objects: list[Obj], *, create_namespace: bool = False) -> list[str]:
    """Argo CD applies one wave at a time and moves on only once every object of the wave is
    healthy. A claim of a WaitForFirstConsumer class (GKE, EKS, AKS defaults) binds only
    once a pod that mounts it exists, i.e. its workload was applied in this wave or an
    earlier one; a workload is healthy once the claims its pods mount are bound. Namespaced
    objects need their Namespace first (applied earlier, or CreateNamespace=true).
    Returns why the sync would hang; [] when every wave completes."""
    applied: list[Obj] = []
    namespaces: set[str] = set()
    for wave in sorted({_wave(o) for o in objects}):
        members = [o for o in objects if _wave(o) == wave]
        applied += members
        # within a wave Argo CD applies Namespaces before namespaced kinds
        namespaces |= {o["metadata"]["name"] for o in members if o["kind"] == "Namespace"}
        for obj in members:
            namespace = obj["metadata"].get("namespace")
            if namespace and namespace not in namespaces and not create_namespace:
                return [f"wave {wave}: {obj['kind']}/{obj['metadata']['name']}: "
                        f"namespace {namespace} does not exist"]
        mounted = set().union(*(_claims_mounted(o) for o in applied
                                if o["kind"] in WORKLOAD_KINDS))
        pending = [o["metadata"]["name"] for o in members
                   if o["kind"] == "PersistentVolumeClaim"
                   and o["metadata"]["name"] not in mounted]
        if pending:
            return [f"wave {wave}: claim {name} stays Pending (no pod mounts it yet)"
                    for name in pending]
    return []


# --- pruning: what each tool deletes when an object leaves the desired state ---------------

def _annotations(obj: Obj) -> dict[str, str]:
    return obj["metadata"].get("annotations") or {}


def deleted_by(tool: str, obj: Obj) -> bool:
    """Whether `tool` deletes `obj` once it is no longer rendered (or the app is removed).

    argocd: automated prune, or deleting the Application with its resources finalizer,
    unless sync-options carry Prune=false / Delete=false. flux: Kustomization prune (also
    on its deletion) unless kustomize.toolkit.fluxcd.io/prune is disabled. helm: an upgrade
    without the object, or an uninstall, unless helm.sh/resource-policy is keep."""
    annotations = _annotations(obj)
    if tool == "argocd":
        options = {o.strip() for o in annotations.get("argocd.argoproj.io/sync-options",
                                                      "").split(",")}
        return not {"Prune=false", "Delete=false"} <= options
    if tool == "flux":
        return annotations.get("kustomize.toolkit.fluxcd.io/prune") != "disabled"
    if tool == "helm":
        return annotations.get("helm.sh/resource-policy") != "keep"
    raise ValueError(tool)


# --- deleting Argo CD Applications and ApplicationSets ----------------------------------------

ARGOCD_RESOURCES_FINALIZER = "resources-finalizer.argocd.argoproj.io"


def applicationset_finalizers(appset: Obj) -> list[str]:
    """The finalizers of each Application the ApplicationSet controller generates: the
    template's own, or, when it names none, the resources finalizer unless
    syncPolicy.preserveResourcesOnDeletion is true (Argo CD's RenderTemplateParams)."""
    own = list(appset["spec"]["template"]["metadata"].get("finalizers") or [])
    preserve = (appset["spec"].get("syncPolicy") or {}).get("preserveResourcesOnDeletion")
    if own or preserve:
        return own
    return [ARGOCD_RESOURCES_FINALIZER]


def deleted_with_application(finalizers: list[str], obj: Obj) -> bool:
    """Whether deleting an Application (directly, or through its ApplicationSet's owner
    reference) deletes `obj` that it deployed: only with a resources finalizer (cascading
    deletion), and never an object whose sync-options carry Delete=false."""
    if not any(f.startswith(ARGOCD_RESOURCES_FINALIZER) for f in finalizers):
        return False
    options = {o.strip() for o in _annotations(obj).get("argocd.argoproj.io/sync-options",
                                                       "").split(",")}
    return "Delete=false" not in options


# --- every connection at once ----------------------------------------------------------------


def connection_allowed(policies: NetworkPolicies, source: Peer, target: Peer, port: int,
                       protocol: str = "TCP") -> bool:
    """Either end may be a pod or an outside address; outside addresses enforce nothing."""
    if isinstance(source, Pod) and not policies.egress_allowed(source, target, port, protocol):
        return False
    return not isinstance(target, Pod) or policies.ingress_allowed(source, target, port,
                                                                    protocol)


def policy_ports(policies: NetworkPolicies, endpoints: Iterable[Peer]) -> list[tuple[int, str]]:
    """Every port a pod or a policy names, as (port, protocol), plus one nobody names."""
    found: set[tuple[int, str]] = {(65000, "TCP")}
    for endpoint in endpoints:
        if isinstance(endpoint, Pod):
            found.update(endpoint.ports.values())
    for policy in policies.policies:
        spec = policy["spec"]
        for rule in [*(spec.get("ingress") or []), *(spec.get("egress") or [])]:
            for entry in rule.get("ports") or []:
                if isinstance(entry.get("port"), int):
                    found.add((entry["port"], entry.get("protocol", "TCP")))
    return sorted(found)


def allowed_connections(policies: NetworkPolicies, endpoints: dict[str, Peer],
                        namespace: str) -> Iterator[str]:
    """`source -> target port/protocol` for every allowed connection between two endpoints,
    one of them a pod of `namespace` (its policies decide nothing else), on every port of
    `policy_ports`: a complete picture of a namespace's posture, to compare or review."""
    ports = policy_ports(policies, endpoints.values())
    for source_name, source in sorted(endpoints.items()):
        for target_name, target in sorted(endpoints.items()):
            if source_name == target_name or namespace not in (
                    getattr(source, "namespace", None), getattr(target, "namespace", None)):
                continue
            for port, protocol in ports:
                if connection_allowed(policies, source, target, port, protocol):
                    yield f"{source_name} -> {target_name} {port}/{protocol}"
