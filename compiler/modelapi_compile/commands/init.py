"""The starter spec `modelapi-compile init` writes: a commented stack spec that validates and
builds as written, for any choice of backends and GitOps tool.

Every YAML block is printed by `yamlout.dump` (so a user-supplied name is quoted when YAML
would misread it); only the `#` comment lines around the blocks are literal text.
"""

from __future__ import annotations

import re
from typing import Any

from ..emit import yamlout
from ..spec.fields import SYSTEM_NAMESPACES
from ..spec.model import API_VERSION, DEFAULT_KUBERNETES_VERSION, KIND
from ..spec.schema import MODELINE

BACKENDS: tuple[str, ...] = ("ollama", "vllm", "litellm", "external")
GITOPS_CHOICES: tuple[str, ...] = ("none", "argocd", "flux", "both")

_STACK_NAME = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_MAX_STACK = 40
_MAX_NAMESPACE = 63 - len("-dev")  # the dev environment's namespace adds a suffix

# Small models, so a first build also starts on a laptop-sized cluster.
_OLLAMA_MODEL = "smollm2:135m"
_VLLM_MODEL = "Qwen/Qwen2.5-0.5B-Instruct"
_VLLM_SERVED = "qwen2.5-0.5b"
_EXTERNAL_MODEL = "gpt-4o-mini"
_OPENAI_URL = "https://api.openai.com/v1"
_AGENT_IMAGE = "ghcr.io/example/simple-math-agent:0.1.0"
_REPO_URL = "https://github.com/example/gitops.git"


def starter_spec(name: str, backends: list[str], gitops: str | None,
                 namespace: str | None = None) -> str:
    """A commented starter spec; ValueError (a usage error for the CLI) on a bad choice."""
    chosen = _check_choices(name, backends, gitops, namespace)
    target = namespace or name
    parts = [_header(name), _block(0, {"apiVersion": API_VERSION, "kind": KIND,
                                       "metadata": {"name": name}})]
    parts.append(_block(0, {"spec": {"namespace": target,
                                     "kubernetesVersion": DEFAULT_KUBERNETES_VERSION}}))
    parts.append(_model_apis(chosen))
    parts.append(_agents(chosen))
    parts.append(_environments(target, chosen))
    if gitops is not None and gitops != "none":
        parts.append(_gitops(name, gitops))
    return "".join(parts)


def check_name(name: str) -> None:
    """ValueError unless `name` can be the stack name (and, by default, the namespace)."""
    if len(name) > _MAX_STACK or not _STACK_NAME.match(name):
        raise ValueError(f"name '{name}' must be a DNS-1035 label of at most {_MAX_STACK} "
                         "characters (lower-case letters, digits, '-', starting with a letter)")


def check_namespace(namespace: str) -> None:
    if len(namespace) > _MAX_NAMESPACE or not _DNS_LABEL.match(namespace):
        raise ValueError(f"namespace '{namespace}' must be a DNS-1123 label of at most "
                         f"{_MAX_NAMESPACE} characters")
    if namespace in SYSTEM_NAMESPACES:
        raise ValueError(f"namespace '{namespace}' belongs to the cluster's own components; "
                         "choose a namespace of the stack's own")


def check_backends(backends: list[str]) -> None:
    unknown = [b for b in backends if b not in BACKENDS]
    if unknown or not backends:
        raise ValueError("backends must be one or more of " + ", ".join(BACKENDS)
                         + (f" (unknown: {', '.join(unknown)})" if unknown else ""))


def gitops_path(name: str) -> str:
    """Where the build of stack `name` goes: the starter's gitops.path, and the `-o` that
    `init` and `import` suggest, so the GitOps manifests point at what the build writes."""
    return f"deploy/{name}"


def _check_choices(name: str, backends: list[str], gitops: str | None,
                   namespace: str | None) -> list[str]:
    check_name(name)
    if namespace is None and len(name) > _MAX_NAMESPACE:
        raise ValueError(f"name '{name}' is too long to be the namespace too; pass one")
    check_namespace(namespace or name)
    check_backends(backends)
    if gitops is not None and gitops not in GITOPS_CHOICES:
        raise ValueError("gitops must be one of " + ", ".join(GITOPS_CHOICES))
    # Canonical order, duplicates dropped: the output does not depend on how flags were typed.
    return [b for b in BACKENDS if b in backends]


def _header(name: str) -> str:
    return MODELINE + "\n" + yamlout.comment(
        f"Starter stack spec for '{name}', written by `modelapi-compile init`.") + "\n".join([
        "#   modelapi-compile validate -f <this file>        check it",
        "#   modelapi-compile build -f <this file> -o <dir>  write the chart, overlays,",
        "#                                                   and GitOps files",
        "# Every field and its default: docs/reference.md in modelapi-compile, or",
        "# `modelapi-compile schema`. Images default to pinned releases; set `image:` to",
        "# pin your own.",
        "---",
    ]) + "\n"


def _block(indent: int, data: Any, comments: tuple[str, ...] = ()) -> str:
    """Comment lines, then `data` dumped by the deterministic emitter, indented."""
    pad = " " * indent
    text = yamlout.comment(" ".join(comments), indent) if comments else ""
    lines = [pad + line if line else line for line in yamlout.dump(data).splitlines()]
    return text + "\n".join(lines) + "\n"


def _model_apis(chosen: list[str]) -> str:
    out = ["\n  # Model APIs: each entry is exactly one of ollama | vllm | litellm | external.\n",
           "  modelAPIs:\n"]
    if "ollama" in chosen:
        out.append(_block(4, [{"name": "ollama", "ollama": {
            "models": [_OLLAMA_MODEL], "cache": {"size": "20Gi"}}}], (
            "In-cluster Ollama; it pulls `models` before it reports ready and keeps them on",
            "a PersistentVolumeClaim (`cache`, the cluster's default StorageClass).",
        )))
    if "vllm" in chosen:
        out.append(_block(4, [{"name": "vllm", "vllm": {
            "model": _VLLM_MODEL, "servedModelName": _VLLM_SERVED,
            "gpu": {"count": 1}, "engine": {"maxModelLen": 2048},
            "cache": {"size": "20Gi"}}}], (
            "vLLM's OpenAI-compatible server: `model` is a Hugging Face id, clients send",
            "`servedModelName`. One GPU per replica here; the dev environment runs it on CPU.",
            "Gated models need `hfTokenSecret: {name: hf-token, key: token}`.",
            "To follow vLLM's queue with KEDA (0 = scale to zero when idle; a LiteLLM",
            "route to it wakes it), add",
            "`autoscaling: {minReplicas: 0, maxReplicas: 2, waitingRequests: 5}` and set",
            "spec.monitoring: {enabled: true, prometheusURL: http://<prometheus>:9090}.",
            "Weights may also come from an existing claim (model: pvc://<claim>/<path>,",
            "read-only) or object storage (s3://, gs:// with objectStorage); set",
            "hfHubOffline: true on air-gapped clusters. LoRA adapters:",
            "loraAdapters: [{name: my-adapter, source: org/repo}] serves each adapter",
            "as a model of its own that LiteLLM routes and agents can name.",
            "A model larger than one node: `nodes: 2` with gpu.count the GPUs of a node",
            "runs each replica as a LeaderWorkerSet group (tensor parallel = gpu.count,",
            "pipeline parallel = nodes). Replicas behind the Gateway API Inference",
            "Extension: `inferencePool: {gateway: {name, namespace, url}}` (an",
            "InferencePool and its endpoint picker; LiteLLM then calls the Gateway's url).",
            "docs/frontier-serving.md says when to use which.",
        )))
    if "external" in chosen:
        out.append(_block(4, [_external()], (
            "An OpenAI-compatible endpoint outside the cluster. The key is read from a",
            "Secret you create: kubectl create secret generic openai-api-key",
            "--from-literal=api-key=... (secret values never go in the spec).",
        )))
    if "litellm" in chosen:
        out.append(_block(4, [_litellm(chosen)], (
            "A LiteLLM proxy in front of the backends above: each `models` entry is an alias",
            "clients send and the modelAPI (`backend`) or raw `url` it routes to. The master",
            "key (Secret litellm-master-key) is the admin credential; agents use their own",
            "virtual keys, which LiteLLM keeps in its Postgres: databaseUrlSecret holds the",
            "URL, database says where it listens (here a Service of this namespace).",
            "Production knobs: `params` on a model (stream_timeout, rpm, ...), `settings`",
            "(litellm_settings), `router.redis: {host, port, passwordSecret}` for replicas,",
            "`expose: {host, ingressClassName, tlsSecret, fromNamespace}` or",
            "`expose: {host, gateway: {name, namespace}, fromNamespace}` to publish it",
            "(fromNamespace: where the proxy pods run, e.g. envoy-gateway-system; or",
            "fromCIDRs for a load balancer with no in-cluster proxy pods).",
        )))
    return "".join(out)


def _external() -> dict[str, Any]:
    return {"name": "openai", "external": {
        "url": _OPENAI_URL, "models": [_EXTERNAL_MODEL],
        "apiKeySecret": {"name": "openai-api-key", "key": "api-key"}}}


def _aliases(chosen: list[str]) -> list[dict[str, Any]]:
    """The proxy's model entries: one per other chosen backend."""
    entries: list[dict[str, Any]] = []
    if "ollama" in chosen:
        entries.append({"name": _OLLAMA_MODEL, "backend": "ollama"})
    if "vllm" in chosen:
        entries.append({"name": _VLLM_SERVED, "backend": "vllm"})
    if "external" in chosen:
        entries.append({"name": _EXTERNAL_MODEL, "backend": "openai"})
    if not entries:
        # A proxy alone still needs somewhere to route: OpenAI, as a raw endpoint.
        entries.append({"name": _EXTERNAL_MODEL, "url": _OPENAI_URL, "provider": "openai",
                        "apiKeySecret": {"name": "openai-api-key", "key": "api-key"}})
    return entries


def _litellm(chosen: list[str]) -> dict[str, Any]:
    entries = _aliases(chosen)
    router: dict[str, Any] = {"strategy": "simple-shuffle", "numRetries": 2, "timeout": 600}
    if len(entries) > 1:
        router["fallbacks"] = {entries[0]["name"]: [entries[1]["name"]]}
    return {"name": "litellm", "litellm": {
        "masterKeySecret": {"name": "litellm-master-key", "key": "master-key"},
        "databaseUrlSecret": {"name": "litellm-db", "key": "url"},
        "database": {"host": "litellm-postgres", "port": 5432},
        "models": entries, "router": router}}


def _agent_target(chosen: list[str]) -> tuple[str, str]:
    """(modelAPI, model) of the starter agent: the proxy when there is one."""
    if "litellm" in chosen:
        return "litellm", _aliases(chosen)[0]["name"]
    if "ollama" in chosen:
        return "ollama", _OLLAMA_MODEL
    if "vllm" in chosen:
        return "vllm", _VLLM_SERVED
    return "openai", _EXTERNAL_MODEL


def _agents(chosen: list[str]) -> str:
    api, model = _agent_target(chosen)
    agent: dict[str, Any] = {"name": "assistant", "image": _AGENT_IMAGE, "modelAPI": api,
                             "model": model}
    comments = ["Agents: replace the image with yours. The compiler injects MODEL_API_URL (the",
                "modelAPI's OpenAI base URL, ending in /v1), MODEL_NAME and, when the modelAPI",
                "needs a key, MODEL_API_KEY from its Secret."]
    if api == "litellm":
        agent["apiKeySecret"] = {"name": "assistant-api-key", "key": "key"}
        comments += ["The agent's own LiteLLM virtual key (apiKeySecret), minted by the platform",
                     "team: never the proxy's master key."]
    agent.update({"port": 8000, "replicas": 1, "env": [{"name": "LOG_LEVEL", "value": "info"}]})
    return "\n" + _block(2, {"agents": [agent]}, tuple(comments))


def _environments(namespace: str, chosen: list[str]) -> str:
    dev_patch: dict[str, Any] = {"agents": [{"name": "assistant", "env": [
        {"name": "LOG_LEVEL", "value": "debug"}]}]}
    if "vllm" in chosen:
        dev_patch["modelAPIs"] = [{"name": "vllm", "vllm": {"gpu": {"count": 0}}}]
    prod_patch: dict[str, Any] = {"agents": [{"name": "assistant", "replicas": 2}]}
    if "litellm" in chosen:
        prod_patch["modelAPIs"] = [{"name": "litellm", "litellm": {"autoscaling": {
            "minReplicas": 2, "maxReplicas": 4, "cpuUtilization": 70}}}]
    environments = [
        {"name": "dev", "namespace": f"{namespace}-dev", "patch": dev_patch},
        {"name": "prod", "namespace": namespace, "patch": prod_patch},
    ]
    comments = ["Environments: one overlay, values file and GitOps app each. `patch` is merged",
                "onto spec; list items match by name. prod runs two agent replicas (spread over",
                "nodes) and, with a proxy, scales the proxy with a HorizontalPodAutoscaler on CPU",
                "(`autoscaling`; agents take the same field)."]
    if "vllm" in chosen:
        comments.append("dev runs vLLM on CPU (gpu.count: 0 selects vLLM's CPU image).")
    return "\n" + _block(2, {"environments": environments}, tuple(comments))


def _gitops(name: str, choice: str) -> str:
    gitops = {"repoURL": _REPO_URL, "revision": "main", "path": gitops_path(name),
              "argocd": {"enabled": choice in ("argocd", "both"), "namespace": "argocd",
                         "project": "default", "source": "helm"},
              "flux": {"enabled": choice in ("flux", "both"), "namespace": "flux-system",
                       "interval": "5m", "source": "kustomize"}}
    return "\n" + _block(2, {"gitops": gitops}, (
        "GitOps: replace repoURL with the repository CI commits the build output to",
        "(`build -o <path>`). source: helm syncs the chart, kustomize the overlays.",
    ))
