"""Import of the Agent and ModelAPI custom resources (agentic.example.com): agents, hosted
servers, and proxies with an embedded LiteLLM config."""

from __future__ import annotations

from typing import Any

from ...problems import Path, did_you_mean
from ...spec.loader import load_bytes
from ...spec.secret_values import ENV_REF, secretish_name
from .documents import _Doc, _get, _Import, _known_fields, _refuse_secret
from .litellm_config import _infer_provider, _litellm_api, _route


def _agent(state: _Import, doc: _Doc) -> None:
    spec = doc.data.get("spec")
    if not isinstance(spec, dict):
        state.fail(doc, ("spec",), "an Agent needs a spec mapping")
        return
    agent: dict[str, Any] = {"name": doc.data["metadata"]["name"]}
    for key in ("image", "modelAPI", "model"):
        value = spec.get(key)
        if not isinstance(value, str) or not value:
            hint = "the image the agent runs, registry/name:tag" if key == "image" else ""
            state.fail(doc, ("spec", key), f"spec.{key} must be a non-empty string", hint)
            return
        agent[key] = value
    for key in ("port", "replicas"):
        value = spec.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            state.fail(doc, ("spec", key), f"spec.{key} must be an integer")
        elif value is not None:
            agent[key] = value
    # KAOS keeps env under spec.config; spec.env is accepted too.
    env_at: Path = ("spec", "env") if "env" in spec else ("spec", "config", "env")
    env = _env_list(state, doc, env_at, _get(doc.data, *[str(p) for p in env_at]))
    own_key = _env_secrets(env).get("MODEL_API_KEY")
    if own_key:  # the agent's own key: the spec's apiKeySecret sets MODEL_API_KEY
        agent["apiKeySecret"] = own_key
        env = [item for item in env if item["name"] != "MODEL_API_KEY"]
    if env:
        agent["env"] = env
    _known_fields(state, doc, ("spec",), spec, {"image", "modelAPI", "model", "port",
                                                "replicas", "env", "config"})
    _known_fields(state, doc, ("spec", "config"), spec.get("config"), {"env"})
    state.agents.append(agent)
    state.agent_origins.append((doc, ("spec",)))
    state.agent_models.setdefault(agent["modelAPI"], []).append(agent["model"])


def _env_list(state: _Import, doc: _Doc, at: Path, value: Any) -> list[dict[str, Any]]:
    """Kubernetes EnvVars, literal values of secret-looking names refused."""
    if value is None:
        return []
    if not isinstance(value, list):
        state.fail(doc, at, "env must be a list of {name, value | valueFrom}")
        return []
    env = []
    for i, item in enumerate(value):
        name = item.get("name") if isinstance(item, dict) else None
        if not isinstance(name, str):
            state.fail(doc, (*at, i), "an env entry needs a name")
            continue
        if isinstance(item.get("value"), str) and secretish_name(name) and item["value"]:
            _refuse_secret(state, doc, (*at, i, "value"), name)
            continue
        env.append({k: item[k] for k in ("name", "value", "valueFrom") if k in item})
    return env


def _env_secrets(env: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
    """VAR -> the Secret it is read from, for `os.environ/VAR` in an embedded config."""
    found = {}
    for item in env:
        ref = _get(item, "valueFrom", "secretKeyRef")
        if isinstance(ref, dict) and isinstance(ref.get("name"), str) and isinstance(
                ref.get("key"), str):
            found[item["name"]] = {"name": ref["name"], "key": ref["key"]}
    return found


def _check_agents(state: _Import, documents: list[tuple[str, _Doc]]) -> None:
    """References resolve, located at the Agent document rather than the generated spec."""
    docs = {d.data["metadata"]["name"]: d for k, d in documents if k == "Agent"}
    for agent in state.agents:
        doc = docs[agent["name"]]
        api = state.apis.get(agent["modelAPI"])
        if {(agent["modelAPI"], ""), (agent["modelAPI"], agent["model"])} & state.broken:
            continue
        if api is None:
            state.fail(doc, ("spec", "modelAPI"), f"no ModelAPI named '{agent['modelAPI']}'",
                       did_you_mean(agent["modelAPI"], list(state.apis)))
        elif agent["model"] not in _served(api):
            state.fail(doc, ("spec", "model"),
                       f"'{agent['modelAPI']}' does not serve '{agent['model']}'",
                       did_you_mean(agent["model"], _served(api)))


def _served(api: dict[str, Any]) -> list[str]:
    if "litellm" in api:
        return [m["name"] for m in api["litellm"]["models"]]
    if "vllm" in api:
        return [api["vllm"].get("servedModelName", api["vllm"]["model"])]
    return list(next(iter(v for k, v in api.items() if k != "name"))["models"])


def _hosted(state: _Import, doc: _Doc) -> None:
    spec = doc.data["spec"]
    key = "hostedConfig" if "hostedConfig" in spec else "serverConfig"
    config, at = spec.get(key), ("spec", key)
    model = _get(config, "model")
    if not isinstance(model, str) or not model:
        state.fail(doc, (*at, "model"), f"a Hosted ModelAPI needs {key}.model",
                   "the Ollama model to pull, such as smollm2:135m")
        return
    name = doc.data["metadata"]["name"]
    ollama: dict[str, Any] = {"models": [model]}
    resources = _resources(state, doc, (*at, "resources"), config.get("resources"), ollama)
    if resources:
        ollama["resources"] = resources
    _known_fields(state, doc, at, config, {"model", "resources"})
    _known_fields(state, doc, ("spec",), spec, {"mode", key})
    state.apis[name] = {"name": name, "ollama": ollama}
    state.servers[("ollama", name)] = name
    state.api_origins[name] = (doc, at)


def _resources(state: _Import, doc: _Doc, at: Path, value: Any,
               ollama: dict[str, Any]) -> dict[str, Any]:
    """requests/limits as written; a GPU limit becomes gpu.count, which schedules it."""
    if not isinstance(value, dict):
        return {}
    result: dict[str, Any] = {}
    for part in ("requests", "limits"):
        table = value.get(part)
        if isinstance(table, dict):
            gpus = table.get("nvidia.com/gpu")
            kept = {k: v for k, v in table.items() if k != "nvidia.com/gpu"}
            if gpus is not None and str(gpus).isdigit():
                ollama["gpu"] = {"count": int(str(gpus))}
            if kept:
                result[part] = kept
    _known_fields(state, doc, at, value, {"requests", "limits"})
    return result


def _proxy(state: _Import, doc: _Doc) -> None:
    spec = doc.data["spec"]
    name = doc.data["metadata"]["name"]
    config, at = spec.get("proxyConfig"), ("spec", "proxyConfig")
    if not isinstance(config, dict):
        state.fail(doc, at, "a Proxy ModelAPI needs proxyConfig",
                   "configYaml (a LiteLLM config), or apiBase and model")
        return
    env = _env_list(state, doc, (*at, "env"), config.get("env"))
    secrets = _env_secrets(env)
    _known_fields(state, doc, at, config, {"configYaml", "apiBase", "model", "env"})
    _known_fields(state, doc, ("spec",), spec, {"mode", "proxyConfig"})
    if isinstance(config.get("configYaml"), str):
        embedded = _embedded(doc, (*at, "configYaml"), config["configYaml"])
        _litellm_api(state, embedded, (), name, secrets)
        return
    api_base, model = config.get("apiBase"), config.get("model")
    if not isinstance(api_base, str) and not isinstance(model, str):
        state.fail(doc, at, "proxyConfig needs configYaml, or apiBase and model")
        return
    models = [model] if isinstance(model, str) else state.agent_models.get(name, [])
    if not models:
        state.fail(doc, (*at, "apiBase"), "a wildcard proxy (apiBase, no model) serves what "
                   "clients ask for, and no Agent names a model for it",
                   "set proxyConfig.model, or import it with the Agents that use it")
        return
    entries = [_cli_entry(state, doc, at, m, api_base, secrets) for m in dict.fromkeys(models)]
    state.broken |= {(name, m) for m, e in zip(dict.fromkeys(models), entries, strict=True)
                     if e is None}
    state.apis[name] = {"name": name, "litellm": {"models": [e for e in entries if e]}}


def _cli_entry(state: _Import, doc: _Doc, at: Path, model: str, api_base: Any,
               secrets: dict[str, dict[str, str]]) -> dict[str, Any] | None:
    """One-model proxy (LiteLLM's --model/--api_base): clients send the model string; the
    provider's usual key variable (OPENAI_API_KEY, ...) in env is its key."""
    provider = model.partition("/")[0] if "/" in model else _infer_provider(model)
    var = f"{(provider or '').upper()}_API_KEY"
    params = {"model": model, "api_base": api_base,
              "api_key": ENV_REF + var if var in secrets else None}
    route = _route(state, doc, at, params, secrets, field_names=("model", "apiBase"))
    return {"name": model, **route} if route is not None else None


def _embedded(doc: _Doc, at: Path, text: str) -> _Doc:
    """A configYaml string as a document placed where it stands in the file: a block
    scalar's lines start on the next line, indented by the block's indentation."""
    line, column = doc.positions.locate(at)
    lines = doc.text.split("\n")
    indicator = lines[line - 1][column - 1:column] if line <= len(lines) else ""
    if indicator in ("|", ">") and line < len(lines):
        content = lines[line]
        indent = " " * (len(content) - len(content.lstrip(" ")))
        body = "\n".join(indent + t if t else t for t in text.split("\n"))
        padded = "\n" * line + body
    else:
        padded = "\n" * (line - 1) + " " * (column - 1) + text
    loaded = load_bytes(padded.encode(), doc.positions.file)
    return _Doc(loaded.data, loaded.positions, padded)
