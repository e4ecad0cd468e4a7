"""The network edges of a resolved stack: who may call whom (agents, the gateway, backends,
scrapers, the exposed proxy), as NetworkPolicy peers and rules per workload, with the egress
that model downloads, object storage, workload identity and backing services need."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from ..spec.backends import Litellm, ModelAPI, Vllm
from ..spec.fields import NetworkAddress
from ..spec.model import KUBE_DNS, Agent, LabelSelector, ModelStack
from .model import (
    COMPONENT_LABEL,
    STACK_LABEL,
    Endpoint,
    K8s,
    NetworkRules,
    Workload,
    calls_label,
    selector_labels,
)

# Never "the internet": private networks, and link-local (cloud metadata servers).
PRIVATE_RANGES = ["10.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12", "192.168.0.0/16"]


@dataclass(frozen=True)
class _Graph:
    """Who calls whom, computed once per environment: agents and LiteLLM backends."""

    apis: dict[str, ModelAPI]
    agents: dict[str, Agent]
    clients: dict[str, list[str]]  # modelAPI -> its callers
    targets: dict[str, list[str]]  # caller -> the modelAPIs it calls


def _graph(stack: ModelStack) -> _Graph:
    edges = {(agent.name, agent.model_api) for agent in stack.spec.agents}
    for api in stack.spec.model_apis:
        if api.litellm:
            edges |= {(api.name, m.backend) for m in api.litellm.models if m.backend}
    clients: dict[str, list[str]] = {}
    targets: dict[str, list[str]] = {}
    for client, target in sorted(edges):
        clients.setdefault(target, []).append(client)
        targets.setdefault(client, []).append(target)
    return _Graph({a.name: a for a in stack.spec.model_apis},
                  {a.name: a for a in stack.spec.agents}, clients, targets)


def _pod_peer(prefix: str, name: str) -> K8s:
    return {"podSelector": {"matchLabels": selector_labels(prefix, name)}}


def dns_peers(servers: list[str]) -> list[K8s]:
    """NetworkPolicy peers for the resolvers pods use: the kube-dns pods, and node-local
    addresses (NodeLocal DNSCache, a cloud metadata server) as /32 blocks."""
    peers: list[K8s] = []
    for server in servers:
        if server == KUBE_DNS:
            peers.append({"namespaceSelector": {"matchLabels": {
                              "kubernetes.io/metadata.name": "kube-system"}},
                          "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}})
        else:
            cidr = server if "/" in server else f"{server}/32"
            peers.append({"ipBlock": {"cidr": cidr}})
    return peers


def _label_selector(selector: LabelSelector) -> K8s:
    return selector.model_dump(by_alias=True, exclude_defaults=True)


def _scraper_peer(stack: ModelStack) -> K8s:
    scrape_from = stack.spec.monitoring.scrape_from
    peer: K8s = {"namespaceSelector": _label_selector(scrape_from.namespace_selector)}
    if scrape_from.pod_selector is not None:
        peer["podSelector"] = _label_selector(scrape_from.pod_selector)
    return peer


def _public(port: int) -> K8s:
    """Egress to addresses outside every private and link-local range, on one port."""
    return {"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": list(PRIVATE_RANGES)}}],
            "ports": [{"port": port, "protocol": "TCP"}]}


def _of_components(prefix: str, components: list[str]) -> K8s:
    """A pod selector for every workload of these components in the stack."""
    return {"matchExpressions": [{"key": COMPONENT_LABEL, "operator": "In",
                                  "values": sorted(components)}],
            "matchLabels": {STACK_LABEL: prefix}}


def edge_policies(stack: ModelStack, graph: _Graph, endpoints: dict[str, Endpoint],
                  workloads: dict[str, Workload]) -> dict[str, K8s]:
    """The stack's NetworkPolicies keyed by edge, not by workload, so that their number grows
    with the modelAPIs and not with the agents (name suffix -> spec):

    - `to-<api>`: an in-cluster modelAPI admits, on its port, the pods labelled as its
      clients (`calls.modelapi.dev/<api>: "true"`, set on the pod template of each caller);
    - `calls-<api>`: those clients may reach it: its pods on its port, or, for an external
      API, public addresses on its URL's port;
    - `agents`: every agent takes calls from pods of its namespace on its own port (the
      container port named http);
    - `metrics`: with monitoring on, the scrapers reach vLLM and LiteLLM on their port.
    Rules that belong to one workload only (model downloads, raw URLs) stay in that
    workload's own policy."""
    prefix = stack.metadata.name
    components: set[str] = {workload.component for workload in workloads.values()}
    policies: dict[str, K8s] = {}
    for target in sorted(graph.clients):
        endpoint = endpoints[target]
        callers = {"matchLabels": {STACK_LABEL: prefix, calls_label(target): "true"}}
        egress: K8s
        if endpoint.gateway_namespace:
            # The callers reach the Gateway's proxies, which reach the pods (`pool-<api>`).
            # Any port: a Gateway's Service port is often not its pods' (Envoy Gateway
            # listens on 10080 for port 80), and policies see the pods' ports.
            egress = {"to": [{"namespaceSelector": {"matchLabels": {
                "kubernetes.io/metadata.name": endpoint.gateway_namespace}}}]}
        elif endpoint.workload:
            policies[f"to-{target}"] = {
                "podSelector": {"matchLabels": selector_labels(prefix, endpoint.workload)},
                "policyTypes": ["Ingress"],
                "ingress": [{"from": [{"podSelector": callers}],
                             "ports": [{"port": endpoint.port, "protocol": "TCP"}]}]}
            egress = {"to": [_pod_peer(prefix, endpoint.workload)],
                      "ports": [{"port": endpoint.port, "protocol": "TCP"}]}
        else:
            egress = _public(_url_port(endpoint.url))
        policies[f"calls-{target}"] = {"podSelector": callers, "policyTypes": ["Egress"],
                                       "egress": [egress]}
    if "agent" in components:
        policies["agents"] = {
            "podSelector": _of_components(prefix, ["agent"]), "policyTypes": ["Ingress"],
            "ingress": [{"from": [{"podSelector": {}}],
                         "ports": [{"port": "http", "protocol": "TCP"}]}]}
    scraped = sorted(components & {"vllm", "litellm"})
    if stack.spec.monitoring.enabled and scraped:
        # /metrics shares the API port: only the scrapers, never every namespace.
        policies["metrics"] = {
            "podSelector": _of_components(prefix, scraped), "policyTypes": ["Ingress"],
            "ingress": [{"from": [_scraper_peer(stack)],
                         "ports": [{"port": "http", "protocol": "TCP"}]}]}
    return dict(sorted(policies.items()))


def _network_rules(name: str, stack: ModelStack, graph: _Graph,
                   endpoints: dict[str, Endpoint]) -> NetworkRules:
    """The rules only this workload needs, beyond the stack's edge policies: a LiteLLM
    proxy's routes to raw URLs (which may be anywhere: no private range excepted), and where
    a model server fetches its weights (which depends on each one's model source), and a
    proxy's exposure and service dependencies (database, Redis), and the traffic inside a
    LeaderWorkerSet group."""
    ingress: list[K8s] = []
    egress: list[K8s] = []
    external_ports: set[tuple[int, bool]] = set()
    own_port = endpoints[name].port if name in endpoints else None
    api = graph.apis.get(name)
    if api and api.litellm:
        for entry in api.litellm.models:
            if entry.url:
                external_ports.add((_url_port(entry.url), False))
    if api and api.ollama:
        external_ports.add((443, True))  # model pulls from the registry
    if api and api.vllm:
        external_ports |= _vllm_downloads(api.vllm)
        egress += _workload_identity_egress(api.vllm)
        if api.vllm.nodes > 1:
            # The pods of a group talk on ports Ray and NCCL choose at run time (the Ray
            # head's 6379, then object manager, worker and collective ports): any port, but
            # only between the model's own pods.
            group = [_pod_peer(stack.metadata.name, name)]
            ingress.append({"from": group})
            egress.append({"to": group})
    if api and api.litellm:
        ingress += _exposure_ingress(api.litellm, own_port)
        egress += _litellm_service_egress(api.litellm)
    for port, public_only in sorted(external_ports):
        block: K8s = {"cidr": "0.0.0.0/0"}
        if public_only:
            block["except"] = list(PRIVATE_RANGES)
        egress.append({"to": [{"ipBlock": block}], "ports": [{"port": port, "protocol": "TCP"}]})
    return NetworkRules(ingress=ingress, egress=egress)


def _vllm_downloads(vllm: Vllm) -> set[tuple[int, bool]]:
    """(port, public only) vLLM reaches for weights: the Hugging Face Hub or public object
    storage over HTTPS (not when the Hub is off and the model comes from a claim), and an
    S3-compatible endpoint, which may be in-cluster or private."""
    ports: set[tuple[int, bool]] = set()
    if not vllm.hf_hub_offline or vllm.model_scheme in ("s3", "gs"):
        ports.add((443, True))
    storage = vllm.object_storage
    if storage and storage.endpoint:
        ports.add((_url_port(storage.endpoint), False))
    return ports


# GKE workload identity: pods get tokens from the metadata server (port 80; 988 on
# Dataplane V2), which GKE's documentation says NetworkPolicies must admit.
_GKE_METADATA = [("169.254.169.254/32", 80), ("169.254.169.252/32", 988)]


def _workload_identity_egress(vllm: Vllm) -> list[K8s]:
    storage = vllm.object_storage
    if not (storage and storage.service_account_annotations and vllm.model_scheme == "gs"):
        return []
    return [{"to": [{"ipBlock": {"cidr": cidr}}], "ports": [{"port": port, "protocol": "TCP"}]}
            for cidr, port in _GKE_METADATA]


def _exposure_ingress(litellm: Litellm, port: int | None) -> list[K8s]:
    """What really sends the exposed traffic, and nothing wider: the namespace of the
    ingress controller's or gateway's proxy pods, and the address ranges of load balancers
    that reach the pods directly."""
    expose = litellm.expose
    if expose is None:
        return []
    sources: list[K8s] = [{"ipBlock": {"cidr": cidr}} for cidr in expose.from_cidrs]
    if expose.from_namespace:
        sources.insert(0, {"namespaceSelector": {"matchLabels": {
            "kubernetes.io/metadata.name": expose.from_namespace}}})
    return [{"from": sources, "ports": [{"port": port, "protocol": "TCP"}]}]


def _litellm_service_egress(litellm: Litellm) -> list[K8s]:
    """Exactly the database and Redis the proxy uses: their address and port."""
    addresses: list[NetworkAddress] = []
    if litellm.database is not None and litellm.database_url_secret is not None:
        addresses.append(litellm.database)
    if litellm.router.redis is not None:
        addresses.append(litellm.router.redis)
    return [{"to": [address_peer(address)],
             "ports": [{"port": address.port, "protocol": "TCP"}]} for address in addresses]


def address_peer(address: NetworkAddress) -> K8s:
    """The NetworkPolicy peer of an address (validate.py refuses DNS names it cannot match):
    an ipBlock, the stack's own namespace, or the Service's namespace."""
    network = address.ip_network()
    if network:
        return {"ipBlock": {"cidr": network}}
    namespace = address.service_namespace()
    if not namespace:
        return {"podSelector": {}}
    return {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}}


def _url_port(url: str) -> int:
    parts = urlsplit(url)
    return parts.port or (443 if parts.scheme == "https" else 80)
