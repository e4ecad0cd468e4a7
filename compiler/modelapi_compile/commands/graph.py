"""The stack as a graph: agents -> model APIs -> backends (LiteLLM routes) -> GPUs.

One small graph model, two writers (Mermaid for pull requests, DOT for Graphviz). Node ids
are generated (`e0_api1`), never taken from names, and every label is quoted and escaped
for its format, so any name in the spec is safe in both. Order follows the spec's lists,
so the same spec always gives the same text.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from ..problems import Problem, SpecError, did_you_mean
from ..spec.backends import Gpu, ModelAPI, VllmAutoscaling
from ..spec.fields import Autoscaling
from ..spec.model import ModelStack
from ..spec.validate import ValidatedSpec

FORMATS = ("mermaid", "dot")


@dataclass(frozen=True)
class Node:
    id: str
    label: str
    shape: str  # "agent" | "api" | "endpoint" | "gpu"


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    label: str = ""


@dataclass
class Cluster:
    """The graph of one environment."""

    id: str
    label: str
    nodes: list[Node] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)


def graph_text(validated: ValidatedSpec, environment: str | None, fmt: str) -> str:
    """The graph of one environment, or of all of them as subgraphs when None."""
    if fmt not in FORMATS:
        raise SpecError([Problem(validated.file, 0, 0, "", f"unknown graph format '{fmt}'",
                                 did_you_mean(fmt, list(FORMATS)))])
    names = [env.name for env in validated.environments]
    if environment is not None and environment not in names:
        raise SpecError([Problem(validated.file, 0, 0, "",
                                 f"no environment named '{environment}'",
                                 did_you_mean(environment, names))])
    clusters = [_cluster(f"e{i}", env.name, env.stack)
                for i, env in enumerate(validated.environments)
                if environment is None or env.name == environment]
    title = validated.stack.metadata.name
    grouped = environment is None
    if fmt == "mermaid":
        return _mermaid(clusters, grouped)
    return _dot(title, clusters, grouped)


# --- the model -------------------------------------------------------------------------------


def _cluster(prefix: str, name: str, stack: ModelStack) -> Cluster:
    cluster = Cluster(prefix, f"environment: {name}")
    spec = stack.spec
    api_ids = {api.name: f"{prefix}_api{i}" for i, api in enumerate(spec.model_apis)}
    for i, agent in enumerate(spec.agents):
        node = f"{prefix}_agent{i}"
        replicas = _replica_text(agent.replicas, agent.autoscaling, "HPA")
        replicas = f" ({replicas})" if replicas else ""
        cluster.nodes.append(Node(node, f"agent {agent.name}{replicas}", "agent"))
        if agent.model_api in api_ids:
            cluster.edges.append(Edge(node, api_ids[agent.model_api], agent.model))
    for i, api in enumerate(spec.model_apis):
        cluster.nodes.append(Node(api_ids[api.name], _api_label(api), _api_shape(api)))
        cluster.nodes.extend(_routes(cluster, prefix, i, api, api_ids))
        cluster.nodes.extend(_litellm_services(cluster, prefix, i, api, api_ids[api.name]))
        gpu = _gpu_node(f"{prefix}_gpu{i}", api)
        if gpu:
            cluster.nodes.append(gpu)
            cluster.edges.append(Edge(api_ids[api.name], gpu.id, _replicas(api)))
    return cluster


def _api_label(api: ModelAPI) -> str:
    if api.external:
        return f"{api.name} (external {api.external.url})"
    if api.vllm:
        text = f"vllm {api.vllm.served_name}"
        if api.vllm.model_scheme:
            text += f" from {api.vllm.model}"
        if api.vllm.lora_adapters:
            text += " + LoRA " + ", ".join(a.name for a in api.vllm.lora_adapters)
        if api.vllm.nodes > 1:
            text += f", LeaderWorkerSet of {api.vllm.nodes} nodes a replica"
        pool = api.vllm.inference_pool
        if pool is not None:
            text += (f", InferencePool behind Gateway "
                     f"{pool.gateway.namespace}/{pool.gateway.name}")
        return f"{api.name} ({text})"
    if api.litellm and api.litellm.autoscaling:
        scaling = _replica_text(api.litellm.replicas, api.litellm.autoscaling, "HPA")
        return f"{api.name} (litellm, {scaling})"
    return f"{api.name} ({api.kind})"


def _replica_text(fixed: int, scaling: Autoscaling | VllmAutoscaling | None, by: str) -> str:
    """`3 replicas`, `0-4 replicas by KEDA` or "" for the usual single replica."""
    if scaling is not None:
        return f"{scaling.min_replicas}-{scaling.max_replicas} replicas by {by}"
    return f"{fixed} replicas" if fixed != 1 else ""


def _api_shape(api: ModelAPI) -> str:
    return "endpoint" if api.external else "api"


def _routes(cluster: Cluster, prefix: str, index: int, api: ModelAPI,
            api_ids: dict[str, str]) -> Iterator[Node]:
    """LiteLLM model_list entries as edges; raw URLs become endpoint nodes of their own."""
    if not api.litellm:
        return
    source = api_ids[api.name]
    for j, entry in enumerate(api.litellm.models):
        target_model = entry.model or entry.name
        label = entry.name if target_model == entry.name else f"{entry.name} → {target_model}"
        if entry.backend:
            if entry.backend in api_ids:
                cluster.edges.append(Edge(source, api_ids[entry.backend], label))
            continue
        node = Node(f"{prefix}_url{index}_{j}", f"{entry.provider} {entry.url}", "endpoint")
        cluster.edges.append(Edge(source, node.id, label))
        yield node


def _litellm_services(cluster: Cluster, prefix: str, index: int, api: ModelAPI, api_id: str
                      ) -> Iterator[Node]:
    """A proxy's entry point from outside (Ingress or HTTPRoute) and the database and Redis
    it keeps state in."""
    if not api.litellm:
        return
    litellm = api.litellm
    if litellm.expose:
        expose = litellm.expose
        via = (f"HTTPRoute on {expose.gateway.namespace}/{expose.gateway.name}"
               if expose.gateway else "Ingress")
        node = Node(f"{prefix}_expose{index}", f"{via} {expose.host}", "endpoint")
        cluster.edges.append(Edge(node.id, api_id, "from " + ", ".join(expose.sources)))
        yield node
    for kind, address in (("database", litellm.database if litellm.database_url_secret
                           else None), ("redis", litellm.router.redis)):
        if address is None:
            continue
        where = address.host or address.cidr
        node = Node(f"{prefix}_{kind}{index}", f"{kind} {where}:{address.port}", "endpoint")
        cluster.edges.append(Edge(api_id, node.id))
        yield node


def _gpu_of(api: ModelAPI) -> Gpu | None:
    if api.vllm:
        return api.vllm.gpu
    if api.ollama:
        return api.ollama.gpu
    return None


def _gpu_node(node_id: str, api: ModelAPI) -> Node | None:
    """Hardware per replica: GPUs with their accelerator, or CPU for a model server."""
    gpu = _gpu_of(api)
    if gpu is None:
        return None
    if gpu.count == 0:
        return Node(node_id, "CPU", "gpu")
    kind = gpu.accelerator or gpu.resource
    nodes = api.vllm.nodes if api.vllm else 1
    per_node = f"{gpu.count}x {kind}"
    return Node(node_id, f"{nodes} nodes of {per_node}" if nodes > 1 else per_node, "gpu")


def _replicas(api: ModelAPI) -> str:
    if api.vllm:
        return _replica_text(api.vllm.replicas, api.vllm.autoscaling, "KEDA")
    return ""  # Ollama always runs one replica


# --- Mermaid ---------------------------------------------------------------------------------

_MERMAID_SHAPES = {"agent": ('(["', '"])'), "api": ('["', '"]'), "endpoint": ('[("', '")]'),
                   "gpu": ('{{"', '"}}')}
# Inside a quoted Mermaid label only entity codes are safe for these characters.
_MERMAID_ENTITIES = {"#": "#35;", '"': "#quot;", "<": "#lt;", ">": "#gt;", "&": "#amp;",
                     "|": "#124;", "`": "#96;", "\n": " ", "\r": " "}


def _mermaid_text(text: str) -> str:
    return "".join(_MERMAID_ENTITIES.get(char, char) for char in text)


def _mermaid(clusters: list[Cluster], grouped: bool) -> str:
    lines = ["flowchart LR"]
    for cluster in clusters:
        indent = "    " if grouped else "  "
        if grouped:
            lines.append(f'  subgraph {cluster.id}["{_mermaid_text(cluster.label)}"]')
        for node in cluster.nodes:
            left, right = _MERMAID_SHAPES[node.shape]
            lines.append(f"{indent}{node.id}{left}{_mermaid_text(node.label)}{right}")
        for edge in cluster.edges:
            arrow = f'-->|"{_mermaid_text(edge.label)}"|' if edge.label else "-->"
            lines.append(f"{indent}{edge.source} {arrow} {edge.target}")
        if grouped:
            lines.append("  end")
    return "\n".join(lines) + "\n"


# --- DOT -------------------------------------------------------------------------------------

_DOT_SHAPES = {"agent": "ellipse", "api": "box", "endpoint": "cylinder", "gpu": "hexagon"}


def _dot_text(text: str) -> str:
    """A DOT double-quoted string: backslash first so that `\\n` in a name stays text."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + escaped.replace("\r", " ").replace("\n", " ") + '"'


def _dot(title: str, clusters: list[Cluster], grouped: bool) -> str:
    lines = [f"digraph {_dot_text(title)} {{", "  rankdir=LR;", "  node [shape=box];"]
    for cluster in clusters:
        indent = "    " if grouped else "  "
        if grouped:
            # Graphviz draws a subgraph as a box only when its name starts with "cluster".
            lines.append(f"  subgraph {_dot_text('cluster_' + cluster.id)} {{")
            lines.append(f"    label={_dot_text(cluster.label)};")
        for node in cluster.nodes:
            lines.append(f"{indent}{node.id} [label={_dot_text(node.label)}, "
                         f"shape={_DOT_SHAPES[node.shape]}];")
        for edge in cluster.edges:
            label = f" [label={_dot_text(edge.label)}]" if edge.label else ""
            lines.append(f"{indent}{edge.source} -> {edge.target}{label};")
        if grouped:
            lines.append("  }")
    lines.append("}")
    return "\n".join(lines) + "\n"
