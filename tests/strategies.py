"""Hypothesis strategies: valid stack specs as data, and mutations that break them.

Shared by tests/test_properties.py (a few hundred examples) and bench/fuzz.py (10,000+)."""

from __future__ import annotations

import copy
import functools
from typing import Any

from hypothesis import strategies as st

from modelapi_compile.emit import yamlout
from modelapi_compile.spec.accelerators import ACCELERATORS, BY_NAME

NAME = st.from_regex(r"[a-z][a-z0-9]{0,6}(-[a-z0-9]{1,4})?", fullmatch=True)
MODEL_ID = st.from_regex(r"[a-z0-9][a-z0-9._:-]{0,12}", fullmatch=True)
# Any printable text, YAML specials and template syntax included: spec strings are data.
TEXT = st.one_of(
    st.sampled_from(["yes", "no", "on", "~", "null", "010", "0x10", "1e3", ".inf", "=", "<<",
                     "{{ .Values.x }}", "{{- x }}", "}}", "a\\b", "\"q\"", "line\nbreak", ""]),
    st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=30),
)


@st.composite
def model_apis(draw: st.DrawFn) -> list[dict[str, Any]]:
    names = draw(st.lists(NAME, min_size=1, max_size=4, unique=True))
    apis: list[dict[str, Any]] = []
    for name in names:
        kind = draw(st.sampled_from(["vllm", "ollama", "external"]))
        if kind == "vllm":
            gpu: dict[str, Any] = {"count": draw(st.integers(0, 4))}
            if draw(st.booleans()):
                accelerator = draw(st.sampled_from(sorted(ACCELERATORS)))
                gpu["accelerator"] = accelerator
                if BY_NAME[accelerator].resource != "nvidia.com/gpu":
                    gpu["resource"] = BY_NAME[accelerator].resource
            body: dict[str, Any] = {"model": "org/" + draw(MODEL_ID), "gpu": gpu,
                                    "replicas": draw(st.integers(0, 3))}
            if draw(st.booleans()):
                body["servedModelName"] = draw(MODEL_ID)
            if draw(st.booleans()):
                body["engine"] = {"maxModelLen": draw(st.integers(128, 32768)),
                                  "extraArgs": draw(st.lists(TEXT, max_size=2))}
            if draw(st.booleans()):  # a model on a claim, LoRA adapters, pod pass-through
                body["model"] = f"pvc://{draw(NAME)}/models/{draw(MODEL_ID)}"
                body["servedModelName"] = draw(MODEL_ID)
                body["loraAdapters"] = [{"name": "lora_" + draw(MODEL_ID),  # never a MODEL_ID
                                         "source": "org/" + draw(MODEL_ID)}]
                body["podAnnotations"] = {"example.com/note": draw(TEXT)}
                body["env"] = [{"name": "NOTE", "value": draw(TEXT)}]
        elif kind == "ollama":
            body = {"models": draw(st.lists(MODEL_ID, min_size=1, max_size=3, unique=True))}
        else:
            body = {"url": "https://" + draw(NAME) + ".example.com/v1",
                    "models": draw(st.lists(MODEL_ID, min_size=1, max_size=2, unique=True))}
            if draw(st.booleans()):
                body["apiKeySecret"] = {"name": draw(NAME), "key": "api-key"}
        apis.append({"name": name, kind: body})
    if draw(st.booleans()):
        apis.append(_litellm(draw, apis))
    return apis


def served(api: dict[str, Any]) -> list[str]:
    if "vllm" in api:
        adapters = [a["name"] for a in api["vllm"].get("loraAdapters", [])]
        return [api["vllm"].get("servedModelName") or api["vllm"]["model"], *adapters]
    if "litellm" in api:
        return list(dict.fromkeys(m["name"] for m in api["litellm"]["models"]))
    body = api.get("ollama") or api["external"]
    return list(body["models"])


def _litellm(draw: st.DrawFn, backends: list[dict[str, Any]]) -> dict[str, Any]:
    models: list[dict[str, Any]] = []
    for api in backends:
        for model in served(api):
            if draw(st.booleans()):
                models.append({"name": draw(TEXT.filter(bool)), "backend": api["name"],
                               "model": model})
    if not models or draw(st.booleans()):
        models.append({"name": draw(MODEL_ID), "url": "http://raw.example.com:8080",
                       "provider": "openai"})
    aliases = list(dict.fromkeys(m["name"] for m in models))
    router: dict[str, Any] = {"numRetries": draw(st.integers(0, 5))}
    if len(aliases) > 1 and draw(st.booleans()):
        router["fallbacks"] = {aliases[0]: aliases[1:]}
    if draw(st.booleans()):
        models[0]["params"] = {"rpm": draw(st.integers(1, 1000)), "stream_timeout": 600}
    body: dict[str, Any] = {"models": models, "router": router}
    if draw(st.booleans()):
        body["settings"] = {"request_timeout": draw(st.integers(1, 900)),
                            "drop_params": draw(st.booleans())}
    if draw(st.booleans()):
        router["redis"] = {"host": "redis.cache.svc", "port": 6379}
    if draw(st.booleans()):
        body["expose"] = {"host": "llm.example.com", "fromNamespace": "ingress"} | (
            {"gateway": {"name": "gw", "namespace": "gateway"}} if draw(st.booleans())
            else {"tlsSecret": "llm-tls"})
    if draw(st.booleans()):
        body["masterKeySecret"] = {"name": "litellm-master", "key": "key"}
    taken = {a["name"] for a in backends}
    name = draw(NAME.filter(lambda n: n not in taken))
    return {"name": name, "litellm": body}


@st.composite
def specs(draw: st.DrawFn) -> dict[str, Any]:
    apis = draw(model_apis())
    taken = {a["name"] for a in apis}
    agent_names = draw(st.lists(NAME.filter(lambda n: n not in taken), max_size=3, unique=True))
    agents = []
    for name in agent_names:
        target = draw(st.sampled_from(apis))
        agents.append({
            "name": name, "image": "example.com/agents/" + name + ":1.0.0",
            "modelAPI": target["name"], "model": draw(st.sampled_from(served(target))),
            "replicas": draw(st.integers(0, 3)),
            "env": [{"name": f"VAR_{i}", "value": value}
                    for i, value in enumerate(draw(st.lists(TEXT, max_size=3)))],
        })
        if "masterKeySecret" in target.get("litellm", {}):  # its own key, or the opt-in
            agents[-1].update({"apiKeySecret": {"name": name + "-key", "key": "key"}}
                              if draw(st.booleans()) else {"useMasterKey": True})
    spec: dict[str, Any] = {"namespace": draw(NAME), "modelAPIs": apis, "agents": agents}
    environments = []
    for env_name in draw(st.lists(st.sampled_from(["dev", "staging", "prod"]), max_size=2,
                                  unique=True)):
        patch: dict[str, Any] = {}
        if agents and draw(st.booleans()):
            patch["agents"] = [{"name": agents[0]["name"], "replicas": draw(st.integers(0, 5))}]
        vllm = [a for a in apis if "vllm" in a]
        if vllm and draw(st.booleans()):
            patch["modelAPIs"] = [{"name": vllm[0]["name"],
                                   "vllm": {"gpu": {"count": draw(st.integers(0, 2))}}}]
        environments.append({"name": env_name, "namespace": f"{spec['namespace']}-{env_name}",
                             "patch": patch})
    spec["environments"] = environments
    spec["monitoring"] = {"enabled": draw(st.booleans())}
    spec["cluster"] = {"networkPolicies": draw(st.booleans())}
    if draw(st.booleans()):
        spec["secrets"] = {"store": {"name": "vault"}}
    return {"apiVersion": "modelapi.dev/v1alpha1", "kind": "ModelStack",
            "metadata": {"name": draw(NAME)}, "spec": spec}


# --- mutations: each one always makes the spec invalid -----------------------------------


@functools.cache
def _spec_schema() -> dict[str, Any]:
    from modelapi_compile.spec.schema import spec_schema

    return spec_schema()


def _schema_at(path: tuple[Any, ...]) -> dict[str, Any] | None:
    """The JSON schema of the node at `path` of a spec, or None where the schema says
    nothing (inside a free-form map)."""
    root = _spec_schema()
    definitions = root.get("$defs", {})

    def resolved(node: dict[str, Any]) -> dict[str, Any]:
        while True:
            if "$ref" in node:
                node = definitions[node["$ref"].rsplit("/", 1)[-1]]
            elif "anyOf" in node:
                options = [o for o in node["anyOf"] if o.get("type") != "null"]
                if len(options) != 1:
                    return node
                node = options[0]
            else:
                return node

    node: dict[str, Any] | None = resolved(root)
    for part in path:
        if node is None:
            return None
        if isinstance(part, int):
            items = node.get("items")
            node = resolved(items) if isinstance(items, dict) else None
        else:
            child = (node.get("properties") or {}).get(part)
            node = resolved(child) if isinstance(child, dict) else None
    return node


def closed_mapping(path: tuple[Any, ...]) -> bool:
    """Whether the schema refuses an unknown key in the mapping at `path`. Free-form maps
    (`litellm.settings`, `params`, `podAnnotations`, `nodeSelector`, a patch, ...) take any
    key, so an unknown one there is valid: never a target of the unknown-field mutation."""
    node = _schema_at(path)
    return node is not None and node.get("additionalProperties") is False


def _mappings(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every mapping of the spec whose schema refuses unknown keys."""
    found = []
    if isinstance(node, dict):
        if closed_mapping(path):
            found.append(path)
        for key, value in node.items():
            found += _mappings(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _mappings(value, (*path, index))
    return found


def _at(node: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        node = node[part]
    return node


@st.composite
def broken_specs(draw: st.DrawFn) -> tuple[str, dict[str, Any] | str]:
    """(what was broken, the spec as data, or as YAML text for syntax damage)."""
    spec = copy.deepcopy(draw(specs()))
    kind = draw(st.sampled_from(["unknown-field", "wrong-type", "dangling", "missing",
                                 "bad-name", "syntax", "duplicate-name"]))
    if kind == "unknown-field":
        target = _at(spec, draw(st.sampled_from(_mappings(spec))))
        target["zzUnknown" + draw(st.from_regex(r"[A-Za-z]{0,5}", fullmatch=True))] = 1
    elif kind == "wrong-type":
        spec["spec"]["modelAPIs"][0]["name"] = draw(st.sampled_from([12, [], {}, True]))
    elif kind == "dangling":
        if spec["spec"]["agents"]:
            spec["spec"]["agents"][0]["modelAPI"] = "zz-missing"
        else:
            spec["spec"]["agents"] = [{"name": "zz-agent", "image": "x.io/a:1", "modelAPI":
                                       "zz-missing", "model": "m"}]
    elif kind == "missing":
        del spec["metadata"]
    elif kind == "bad-name":
        spec["spec"]["modelAPIs"][0]["name"] = draw(st.sampled_from(["Bad", "-x", "a_b", "x" * 70]))
    elif kind == "duplicate-name":
        spec["spec"]["modelAPIs"].append(copy.deepcopy(spec["spec"]["modelAPIs"][0]))
    else:
        damage = draw(st.sampled_from(["  bad: [unclosed\n", "\tbad: tab\n", "x: &a\n  - *b\n",
                                       "spec: {\n", "- item\nkey: value\n"]))
        return kind, yamlout.dump(spec) + damage
    return kind, spec
