"""NetworkPolicies as the CNI evaluates them (tests/cluster_models.py), on the objects Helm
and Kustomize render: DNS under default-deny (kube-dns, NodeLocal DNSCache, the GKE
metadata server), metrics only from the monitoring namespace, API ports only for declared
clients, and selectors that survive Argo CD's label tracking."""

from __future__ import annotations

from typing import Any

import pytest

from cluster_models import Address, NetworkPolicies, Pod, by_kind, pod_of, selector_matches
from conftest import ENGINES, Rendered, render_spec

SPEC = """\
apiVersion: modelapi.dev/v1alpha1
kind: ModelStack
metadata: {name: net}
spec:
  namespace: llm
  monitoring: {enabled: true}
  modelAPIs:
    - name: qwen
      vllm: {model: Qwen/Qwen2.5-0.5B-Instruct, gpu: {count: 1}}
    - name: gateway
      litellm:
        models: [{name: small, backend: qwen, model: Qwen/Qwen2.5-0.5B-Instruct}]
  agents:
    - {name: helper, image: "ghcr.io/example/helper:1.0.0", modelAPI: gateway, model: small}
  environments:
    - name: gke
      namespace: llm
    - name: plain
      namespace: llm-plain
      patch:
        cluster: {dnsServers: [kube-dns]}
        monitoring: {scrapeFrom: {namespaceSelector: {matchLabels: {team: observability}},
                                  podSelector: {matchLabels: {app: prometheus}}}}
"""

KUBE_DNS = Pod("kube-system", {"k8s-app": "kube-dns"})
NODE_LOCAL_DNS = Address("169.254.20.10")
GKE_METADATA_DNS = Address("169.254.169.254")


@pytest.fixture(scope="module")
def rendered(helm: Any, kustomize: Any, tmp_path_factory: pytest.TempPathFactory) -> Rendered:
    return render_spec(SPEC, tmp_path_factory.mktemp("net"), helm, kustomize)


def _pods(objects: list[dict[str, Any]]) -> dict[str, Pod]:
    return {o["metadata"]["name"]: pod_of(o) for o in objects
            if o["kind"] in ("Deployment", "StatefulSet")}


@pytest.mark.parametrize("engine", ENGINES)
def test_every_pod_resolves_names_through_every_default_resolver(rendered: Any,
                                                                 engine: str) -> None:
    objects = rendered[engine]["gke"]
    policies = NetworkPolicies.of(objects)
    pods = _pods(objects)
    assert len(pods) == 3
    for name, pod in pods.items():
        for protocol in ("UDP", "TCP"):
            assert policies.connects(pod, KUBE_DNS, 53, protocol), (name, protocol)
            assert policies.egress_allowed(pod, NODE_LOCAL_DNS, 53, protocol), (name, protocol)
            assert policies.egress_allowed(pod, GKE_METADATA_DNS, 53, protocol), name
        # default-deny still holds: no other resolver, no metadata server over HTTP
        assert not policies.egress_allowed(pod, Address("8.8.8.8"), 53, "UDP"), name
        assert not policies.egress_allowed(pod, GKE_METADATA_DNS, 80), name


@pytest.mark.parametrize("engine", ENGINES)
def test_dns_servers_narrow_the_resolvers(rendered: Any, engine: str) -> None:
    objects = rendered[engine]["plain"]
    policies = NetworkPolicies.of(objects)
    for name, pod in _pods(objects).items():
        assert policies.egress_allowed(pod, KUBE_DNS, 53, "UDP"), name
        assert not policies.egress_allowed(pod, NODE_LOCAL_DNS, 53, "UDP"), name
        assert not policies.egress_allowed(pod, GKE_METADATA_DNS, 53, "UDP"), name


@pytest.mark.parametrize("engine", ENGINES)
def test_metrics_only_from_the_monitoring_namespace(rendered: Any, engine: str) -> None:
    objects = rendered[engine]["gke"]
    policies = NetworkPolicies.of(objects)
    pods = _pods(objects)
    prometheus = Pod("monitoring", {"app.kubernetes.io/name": "prometheus"})
    stranger = Pod("default", {"app": "curl"})
    for name, port in (("net-qwen", 8000), ("net-gateway", 4000)):
        assert policies.ingress_allowed(prometheus, pods[name], port), name
        assert not policies.ingress_allowed(stranger, pods[name], port), name
    # the plain environment's selector: labelled namespace AND labelled pod
    plain = NetworkPolicies.of(rendered[engine]["plain"])
    qwen = _pods(rendered[engine]["plain"])["net-qwen"]
    assert not plain.ingress_allowed(prometheus, qwen, 8000)
    observability = Pod("observability", {"app": "prometheus"})
    assert not plain.ingress_allowed(observability, qwen, 8000)  # namespace not labelled


@pytest.mark.parametrize("engine", ENGINES)
def test_api_ports_admit_only_declared_clients(rendered: Any, engine: str) -> None:
    objects = rendered[engine]["gke"]
    policies = NetworkPolicies.of(objects)
    pods = _pods(objects)
    assert policies.connects(pods["net-helper"], pods["net-gateway"], 4000)
    assert policies.connects(pods["net-gateway"], pods["net-qwen"], 8000)
    # the agent calls the gateway, not vLLM directly; no one else reaches either
    assert not policies.connects(pods["net-helper"], pods["net-qwen"], 8000)
    neighbour = Pod("llm", {"app": "other"})
    elsewhere = Pod("other", {"app.kubernetes.io/name": "helper"})
    for target, port in (("net-gateway", 4000), ("net-qwen", 8000)):
        assert not policies.ingress_allowed(neighbour, pods[target], port), target
        assert not policies.ingress_allowed(elsewhere, pods[target], port), target
    for policy in by_kind(objects, "NetworkPolicy").values():
        for rule in policy["spec"].get("ingress", []):
            assert {"namespaceSelector": {}} not in rule.get("from", []), policy


@pytest.mark.parametrize("engine", ENGINES)
def test_selectors_survive_argocd_label_tracking(rendered: Any, engine: str) -> None:
    """Argo CD before 3.0 overwrites app.kubernetes.io/instance with the Application name on
    every object it syncs; every selector must still find its pods and Services."""
    objects = rendered[engine]["gke"]
    for obj in objects:  # what label tracking does to the synced objects
        obj["metadata"].setdefault("labels", {})["app.kubernetes.io/instance"] = "net-gke"
    pods = _pods(objects)
    services = by_kind(objects, "Service")
    for name, workload in by_kind(objects, "Deployment").items():
        selector = workload["spec"]["selector"]
        assert "app.kubernetes.io/instance" not in selector["matchLabels"]
        assert selector_matches(selector, pods[name].labels)
        assert selector_matches({"matchLabels": services[name]["spec"]["selector"]},
                                pods[name].labels)
    for monitor in by_kind(objects, "ServiceMonitor").values():
        name = monitor["metadata"]["name"]
        assert selector_matches(monitor["spec"]["selector"], services[name]["metadata"]["labels"])
