"""The whole network posture of a stack, as the CNI enforces what both engines render
(tests/cluster_models.py): for every pair of endpoints (the stack's pods, someone else's pod
in the namespace, pods of other namespaces, DNS, node-local, private and public addresses)
and every port any of them or any policy names, whether a connection is allowed. The matrix
of each spec and environment is golden: a change of the policies' shape must leave it
untouched, a change of the posture shows up as a reviewed diff (`pytest --update-golden`)."""

from __future__ import annotations

import ipaddress
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from cluster_models import (
    Address,
    NetworkPolicies,
    Peer,
    Pod,
    allowed_connections,
    connection_allowed,
    pod_of,
    workloads,
)
from conftest import CASES, ENGINES, REPO, Rendered, render_spec
from modelapi_compile.pipeline import compile_spec

SPECS = {
    "agentic": REPO / "examples" / "agentic.yaml",
    "prodai": CASES / "valid" / "production-gpu.yaml",
    "edges": CASES / "network" / "edges.yaml",
    "shared": CASES / "network" / "shared.yaml",
}
GOLDEN = CASES / "network"
POD_NETWORK = ipaddress.ip_network("10.244.0.0/16")


def _posture(objects: list[dict[str, Any]]) -> tuple[NetworkPolicies, dict[str, Peer], str]:
    policies = NetworkPolicies.of(objects)
    found = sorted(workloads(objects), key=lambda o: str(o["metadata"]["name"]))
    namespace = str(found[0]["metadata"]["namespace"])
    endpoints: dict[str, Peer] = {
        str(o["metadata"]["name"]): pod_of(o, str(POD_NETWORK[index + 10]))
        for index, o in enumerate(found)}
    # Someone else's pod in the namespace, with its own policy letting it call any pod there.
    policies.policies.append({
        "kind": "NetworkPolicy", "metadata": {"name": "theirs", "namespace": namespace},
        "spec": {"podSelector": {"matchLabels": {"app": "someone-else"}},
                 "policyTypes": ["Egress"], "egress": [{"to": [{"podSelector": {}}]}]}})
    endpoints.update({
        "foreign-pod": Pod(namespace, {"app": "someone-else"}, "10.244.1.1"),
        # Someone else's pod with no policy of its own: open unless our policies select it.
        "bystander": Pod(namespace, {"app": "bystander"}, "10.244.1.5",
                         {"web": (8080, "TCP")}),
        "other-namespace-pod": Pod("elsewhere", {}, "10.244.1.2"),
        "prometheus": Pod("monitoring", {"app.kubernetes.io/name": "prometheus"}, "10.244.1.3"),
        "kube-dns": Pod("kube-system", {"k8s-app": "kube-dns"}, "10.244.1.4",
                        {"dns": (53, "UDP"), "dns-tcp": (53, "TCP")}),
        "node-local-dns": Address("169.254.20.10"),
        "cloud-metadata": Address("169.254.169.254"),
        "lan-host": Address("10.1.2.3"),
        "public-host": Address("203.0.113.10"),
    })
    return policies, endpoints, namespace


@pytest.fixture(scope="module")
def rendered(helm: Any, kustomize: Any, tmp_path_factory: pytest.TempPathFactory
             ) -> dict[str, Rendered]:
    return {name: render_spec(spec, tmp_path_factory.mktemp(name), helm, kustomize)
            for name, spec in SPECS.items()}


def _matrix(objects: list[dict[str, Any]]) -> str:
    policies, endpoints, namespace = _posture(objects)
    return f"# namespace {namespace}\n" + "".join(
        f"{line}\n" for line in allowed_connections(policies, endpoints, namespace))


@pytest.mark.parametrize("name", sorted(SPECS))
def test_allowed_connections_match_golden(name: str, rendered: dict[str, Rendered],
                                          update_golden: bool) -> None:
    for env, objects in rendered[name]["kustomize"].items():
        text = _matrix(objects)
        assert _matrix(rendered[name]["helm"][env]) == text, f"{name} {env}: engines differ"
        golden = GOLDEN / f"{name}.{env}.allowed"
        if update_golden:
            golden.write_text(text)
        assert text == golden.read_text(), f"{name} {env}: allowed connections changed"


@pytest.mark.parametrize("engine", ENGINES)
def test_posture_in_plain_words(rendered: dict[str, Rendered], engine: str) -> None:
    """What the matrix must say, independent of any golden file."""
    policies, endpoints, _ = _posture(rendered["edges"][engine]["prod"])

    def allowed(source: str, target: str, port: int, protocol: str = "TCP") -> bool:
        return connection_allowed(policies, endpoints[source], endpoints[target], port,
                                  protocol)

    # Declared edges, on the callee's port only.
    assert allowed("edges-via-proxy", "edges-proxy", 4000)
    assert allowed("edges-proxy", "edges-vllm-a", 8000)
    assert allowed("edges-proxy", "edges-local", 11434)
    assert allowed("edges-direct-vllm", "edges-vllm-b", 8000)
    # No undeclared edge, no other port, nobody else.
    assert not allowed("edges-via-proxy", "edges-vllm-a", 8000)
    assert not allowed("edges-direct-vllm", "edges-vllm-a", 8000)
    assert not allowed("edges-proxy", "edges-vllm-a", 65000)
    assert not allowed("foreign-pod", "edges-vllm-a", 8000)
    assert not allowed("other-namespace-pod", "edges-proxy", 4000)
    # Agents take calls from the namespace on their own port, not on another agent's port.
    assert allowed("foreign-pod", "edges-via-proxy-2", 9090)
    assert not allowed("foreign-pod", "edges-via-proxy-2", 8000)
    assert not allowed("other-namespace-pod", "edges-via-proxy", 8000)
    # Metrics from the monitoring namespace only.
    assert allowed("prometheus", "edges-vllm-a", 8000)
    assert not allowed("prometheus", "edges-local", 11434)
    # Outside: downloads and external APIs over https to public addresses only; a raw URL on
    # its own port wherever it is.
    assert allowed("edges-vllm-b", "public-host", 443)
    assert not allowed("edges-vllm-b", "lan-host", 443)
    assert not allowed("edges-vllm-b", "cloud-metadata", 443)
    assert allowed("edges-direct-vendor", "public-host", 443)
    assert not allowed("edges-direct-vllm", "public-host", 443)
    assert allowed("edges-legacy-user", "public-host", 8081)
    assert allowed("edges-proxy", "public-host", 8443)
    assert not allowed("edges-proxy", "lan-host", 11434)  # prod dropped the LAN route
    # DNS for every pod of the stack; nothing else leaves it.
    assert allowed("edges-via-proxy", "kube-dns", 53, "UDP")
    assert not allowed("edges-via-proxy", "public-host", 443)


@pytest.mark.parametrize("engine", ENGINES)
def test_a_stack_in_a_shared_namespace_leaves_the_other_workloads_reachable(
        rendered: dict[str, Rendered], engine: str) -> None:
    """`default` (prod) and a namespace the environment's patch declares shared (dev): every
    connection of the namespace's other pods is as open as without the stack, while the
    stack's own pods keep exactly their declared edges."""
    for env in ("dev", "prod"):
        policies, endpoints, namespace = _posture(rendered["shared"][engine][env])
        assert namespace == {"dev": "team-tools", "prod": "default"}[env]
        ports = [(53, "UDP"), (443, "TCP"), (8080, "TCP"), (65000, "TCP")]
        bystander = endpoints["bystander"]
        others = [peer for peer in endpoints.values()
                  if not (isinstance(peer, Pod) and "modelapi.dev/stack" in peer.labels)]
        for other in others:
            for port, protocol in ports:
                assert connection_allowed(policies, other, bystander, port, protocol), (
                    env, other, port)
                assert connection_allowed(policies, bystander, other, port, protocol), (
                    env, other, port)
        # ...and the stack is still fenced in.
        assert connection_allowed(policies, endpoints["shared-helper"],
                                  endpoints["shared-proxy"], 4000)
        assert not connection_allowed(policies, endpoints["bystander"],
                                      endpoints["shared-local"], 11434)
        assert not connection_allowed(policies, endpoints["shared-helper"],
                                      endpoints["public-host"], 443)


@pytest.mark.parametrize("engine", ENGINES)
def test_a_stack_in_its_own_namespace_isolates_every_pod_there(
        rendered: dict[str, Rendered], engine: str) -> None:
    policies, endpoints, _ = _posture(rendered["edges"][engine]["prod"])
    assert not connection_allowed(policies, endpoints["other-namespace-pod"],
                                  endpoints["bystander"], 8080)


def test_the_model_resolves_named_ports_on_the_destination() -> None:
    policies = NetworkPolicies([{
        "kind": "NetworkPolicy", "metadata": {"name": "web", "namespace": "a"},
        "spec": {"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Ingress"],
                 "ingress": [{"ports": [{"port": "http"}]}]}}])
    web = Pod("a", {"app": "web"}, "10.244.0.2", {"http": (8080, "TCP")})
    client = Pod("a", {}, "10.244.0.3")
    assert connection_allowed(policies, client, web, 8080)
    assert not connection_allowed(policies, client, web, 8081)
    assert not connection_allowed(policies, client, web, 8080, "UDP")
    assert connection_allowed(policies, web, Address("203.0.113.1"), 1)  # not egress-isolated


def _with_agents(count: int) -> str:
    agents = "".join(
        f"    - {{name: agent-{i}, image: 'ghcr.io/example/a:1.0.0', modelAPI: "
        f"{'proxy' if i % 2 else 'vllm-a'}, model: qwen, port: {8000 + i % 3}}}\n"
        for i in range(count))
    return f"""\
apiVersion: modelapi.dev/v1alpha1
kind: ModelStack
metadata: {{name: grow}}
spec:
  namespace: grow
  monitoring: {{enabled: true}}
  modelAPIs:
    - name: vllm-a
      vllm: {{model: Qwen/Qwen2.5-0.5B-Instruct, servedModelName: qwen, gpu: {{count: 0}}}}
    - name: proxy
      litellm:
        models: [{{name: qwen, backend: vllm-a}}]
  agents:
{agents}"""


def test_policies_and_identities_do_not_grow_with_agents(tmp_path: Path) -> None:
    """Fleet-size cost: agents add their Deployment and Service (and PDB), never a
    NetworkPolicy or a ServiceAccount; every pod runs as its role's ServiceAccount, which
    mounts no token."""
    counts = {}
    for agents in (2, 40):
        spec = tmp_path / f"grow-{agents}.yaml"
        spec.write_text(_with_agents(agents))
        objects = compile_spec(str(spec), use_helm=False).objects[""]
        kinds = Counter(o["kind"] for o in objects)
        counts[agents] = (kinds["NetworkPolicy"], kinds["ServiceAccount"])
        accounts = {o["metadata"]["name"]: o for o in objects if o["kind"] == "ServiceAccount"}
        assert all(a["automountServiceAccountToken"] is False for a in accounts.values())
        for deployment in (o for o in objects if o["kind"] == "Deployment"):
            pod = deployment["spec"]["template"]["spec"]
            component = deployment["metadata"]["labels"]["app.kubernetes.io/component"]
            assert pod["serviceAccountName"] == f"grow-{component}-sa"
            assert pod["serviceAccountName"] in accounts
            assert pod["automountServiceAccountToken"] is False
    assert counts[2] == counts[40] == (9, 3), counts


@pytest.mark.parametrize("name", ["agents", "metrics", "to-qwen", "calls-x", "vllm-sa"])
def test_names_of_the_stacks_own_objects_are_refused_at_their_line(name: str,
                                                                   tmp_path: Path) -> None:
    from click.testing import CliRunner

    from modelapi_compile.cli import cli

    spec = tmp_path / "spec.yaml"
    spec.write_text(_with_agents(1).replace("- name: proxy", f"- name: {name}"))
    result = CliRunner().invoke(cli, ["validate", "-f", str(spec)])
    assert result.exit_code == 1, result.output
    line = spec.read_text().splitlines().index(f"    - name: {name}") + 1
    assert f"spec.yaml:{line}:" in result.output and "is reserved" in result.output


@pytest.mark.parametrize("engine", ENGINES)
def test_exposure_admits_the_gateway_proxies_and_load_balancers_that_send_traffic(
        helm: Any, kustomize: Any, tmp_path: Path, engine: str) -> None:
    """Staging attaches an HTTPRoute to gateway-system/shared, served by Envoy Gateway, whose
    proxies run in its controller's namespace, plus a load balancer range with no proxy pods:
    exactly those reach the proxy's port; the Gateway's own namespace and the rest of the
    network do not."""
    objects = render_spec(CASES / "valid" / "litellm-gateway.yaml", tmp_path, helm,
                          kustomize)[engine]["staging"]
    policies = NetworkPolicies.of(objects)
    route = next(o for o in objects if o["kind"] == "HTTPRoute")
    assert route["spec"]["parentRefs"][0]["namespace"] == "gateway-system"
    proxy = next(pod_of(o, "10.244.0.10") for o in workloads(objects)
                 if o["metadata"]["name"].endswith("gateway"))
    senders: dict[str, Peer] = {
        "envoy-proxy": Pod("envoy-gateway-system", {"app.kubernetes.io/name": "envoy"},
                           "10.244.3.3"),
        "load-balancer": Address("10.40.7.9"),
    }
    others: dict[str, Peer] = {
        "gateway-namespace-pod": Pod("gateway-system", {}, "10.244.3.4"),
        "other-range": Address("10.41.0.1"),
        "public-host": Address("203.0.113.10"),
    }
    for name, peer in senders.items():
        assert connection_allowed(policies, peer, proxy, 4000), name
        assert not connection_allowed(policies, peer, proxy, 65000), name
    for name, peer in others.items():
        assert not connection_allowed(policies, peer, proxy, 4000), name
