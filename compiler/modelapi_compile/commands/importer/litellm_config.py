"""Import of a LiteLLM proxy config: each model_list route becomes a route of a LiteLLM
modelAPI and, where it points at a server, a vLLM, Ollama or external modelAPI; the
router and litellm settings are carried over where the spec has fields for them."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from ...problems import Path, did_you_mean
from ...spec.rules import COMPUTED_PARAMS
from ...spec.secret_values import ENV_REF
from .documents import (
    _CLUSTER_SUFFIXES,
    _LOCAL_HOSTS,
    _OLLAMA_DEFAULT_BASE,
    PUBLIC_URLS,
    ROUTING_STRATEGIES,
    _Doc,
    _get,
    _Import,
    _is_label,
    _known_fields,
    _scan_secrets,
    _secret_ref,
)


def _litellm_api(state: _Import, doc: _Doc, at: Path, name: str,
                 secrets: dict[str, dict[str, str]]) -> None:
    if not isinstance(doc.data, dict) or not isinstance(doc.data.get("model_list"), list):
        state.fail(doc, (*at, "model_list"), "model_list must be a list of models")
        return
    if any(k == "litellm" for k in state.apis.get(name, {})):
        state.fail(doc, ("model_list",), f"a second LiteLLM config for '{name}'",
                   "import one config per --name, or wrap each in a ModelAPI document")
        return
    _scan_secrets(state, doc, (), doc.data)
    litellm: dict[str, Any] = {"models": []}
    sources: list[int] = []
    for i, entry in enumerate(doc.data["model_list"]):
        model = _model_entry(state, doc, ("model_list", i), entry, secrets)
        if model is not None:
            litellm["models"].append(model)
            sources.append(i)
        else:
            state.broken.add((name, str(_get(entry, "model_name"))))
    _settings(state, doc, litellm, secrets)
    _check_fallbacks(state, doc, name, litellm)
    settings = doc.data.get("litellm_settings")
    if isinstance(settings, dict) and settings:
        litellm["settings"] = settings
    elif settings is not None:
        state.fail(doc, ("litellm_settings",), "litellm_settings must be a mapping")
    _known_fields(state, doc, (), doc.data, {"model_list", "router_settings",
                                              "general_settings", "litellm_settings"})
    state.apis[name] = {"name": name, "litellm": litellm}
    state.litellm_origins[name] = (doc, sources)


def _check_fallbacks(state: _Import, doc: _Doc, name: str, litellm: dict[str, Any]) -> None:
    aliases = [m["name"] for m in litellm["models"]]
    at: Path = ("router_settings", "fallbacks")
    for alias, targets in litellm.get("router", {}).get("fallbacks", {}).items():
        for target in [alias, *targets]:
            if target not in aliases and (name, target) not in state.broken:
                state.fail(doc, at, f"fallback names '{target}', which is no model_name of "
                           "this config", did_you_mean(target, aliases))


def _model_entry(state: _Import, doc: _Doc, at: Path, entry: Any,
                 secrets: dict[str, dict[str, str]]) -> dict[str, Any] | None:
    alias = _get(entry, "model_name")
    params = _get(entry, "litellm_params")
    if not isinstance(alias, str) or not alias:
        state.fail(doc, (*at, "model_name"), "model_name must be a non-empty string")
        return None
    if "*" in alias:
        state.fail(doc, (*at, "model_name"), f"wildcard model_name '{alias}' cannot be "
                   "imported", "list each model the proxy serves by name")
        return None
    if not isinstance(params, dict):
        state.fail(doc, (*at, "litellm_params"), "litellm_params must be a mapping")
        return None
    _known_fields(state, doc, at, entry, {"model_name", "litellm_params"})
    route = _route(state, doc, (*at, "litellm_params"), params, secrets)
    if route is None:
        return None
    if route.get("model") == alias:
        del route["model"]  # the spec's default: the backend's model id is the alias
    # Every other litellm_params key (rpm, stream_timeout, ...) is carried as written;
    # literal secret values were refused by _scan_secrets.
    extra = {k: v for k, v in params.items() if k not in COMPUTED_PARAMS}
    return {"name": alias, **route, **({"params": extra} if extra else {})}


def _route(state: _Import, doc: _Doc, at: Path, params: dict[str, Any],
           secrets: dict[str, dict[str, str]],
           field_names: tuple[str, str] = ("model", "api_base")) -> dict[str, Any] | None:
    """backend (+model) or url + provider (+apiKeySecret) for one LiteLLM route."""
    model_at, base_at = (*at, field_names[0]), (*at, field_names[1])
    model, api_base = params.get("model"), params.get("api_base")
    if not isinstance(model, str) or not model:
        state.fail(doc, model_at, "the model must be a string such as openai/gpt-4o-mini")
        return None
    if api_base is not None and not _usable_url(state, doc, base_at, api_base):
        return None
    provider, _, model_id = model.partition("/")
    if not model_id:
        provider, model_id = _infer_provider(model) or "", model
    key = _secret_ref(state, doc, (*at, "api_key"), params.get("api_key"), secrets, "api-key")
    if key is False:
        return None
    secret = key if isinstance(key, dict) else None
    if provider in ("hosted_vllm", "ollama", "ollama_chat"):
        return _server_route(state, doc, model_at, provider, model_id, api_base, secret)
    return _endpoint_route(state, doc, model_at, provider, model_id, api_base, secret)


def _usable_url(state: _Import, doc: _Doc, at: Path, value: Any) -> bool:
    if isinstance(value, str) and value.startswith(ENV_REF):
        state.fail(doc, at, f"the URL comes from the environment variable "
                   f"{value[len(ENV_REF):]} at run time", "write the URL itself to import it")
        return False
    if not isinstance(value, str) or not re.match(r"^https?://[^\s/$.?#][^\s]*$", value):
        state.fail(doc, at, f"{value!r} is not an http(s) URL")
        return False
    return True


def _infer_provider(model: str) -> str | None:
    """LiteLLM's provider for a bare model name, for the common cases."""
    if model.startswith(("gpt-", "o1", "o3", "o4", "chatgpt-")):
        return "openai"
    if model.startswith("claude"):
        return "anthropic"
    return None


def _server_route(state: _Import, doc: _Doc, at: Path, provider: str, model_id: str,
                  api_base: str | None, secret: dict[str, str] | None) -> dict[str, Any] | None:
    kind = "vllm" if provider == "hosted_vllm" else "ollama"
    if api_base is None and kind == "vllm":
        state.fail(doc, at, "a hosted_vllm route needs api_base", "the vLLM server's /v1 URL")
        return None
    base = api_base or _OLLAMA_DEFAULT_BASE
    host = _in_cluster_host(base)
    declared = state.servers.get(("ollama", host)) if host and kind == "ollama" else None
    if host is None or (declared is None and not state.in_cluster):
        # The route stays as written: the server it names keeps serving it.
        route: dict[str, Any] = {"url": base, "provider": provider, "model": model_id}
        if host is not None:
            state.note(doc, at, f"kept as written: {provider}/{model_id} at {base}; "
                       f"`import --in-cluster` would run it as an in-cluster {kind} modelAPI")
        return {**route, "apiKeySecret": secret} if secret else route
    if declared is not None:
        state.note(doc, at, f"converted: the route to {base} uses the Hosted ModelAPI "
                   f"'{declared}', which serves {model_id}")
    if kind == "vllm":
        pool = _pool_gateway(base)
        # behind a Gateway: the model's own path segment (<stack>-<model>) names the server
        server = [p for p in urlsplit(base).path.split("/") if p][1] if pool else host
        name = _vllm_server(state, doc, at, server, model_id, secret)
        if pool is not None and "inferencePool" not in state.apis[name]["vllm"]:
            state.apis[name]["vllm"]["inferencePool"] = {"gateway": pool}
            state.note(doc, at, f"modelAPI '{name}': {base} is a model's path on the Gateway "
                       f"{pool['namespace']}/{pool['name']} (an InferencePool): kept behind "
                       "it as vllm.inferencePool; check fromNamespace, where its proxy pods run")
    else:
        name = _ollama_server(state, doc, at, host, model_id, secret)
    if declared is None:
        state.note(doc, at, f"converted (--in-cluster): the route to {base} is the new "
                   f"in-cluster {kind} modelAPI '{name}'")
    return {"backend": name, "model": model_id}


def _vllm_server(state: _Import, doc: _Doc, at: Path, host: str, model_id: str,
                 secret: dict[str, str] | None) -> str:
    # One vLLM server serves one model, so the model is part of the key.
    key = ("vllm", host, model_id)
    if key in state.servers:
        return state.servers[key]
    name = state.unique_name(host if not host.startswith("localhost") else "vllm")
    vllm: dict[str, Any] = {"model": model_id}
    if secret:
        vllm["apiKeySecret"] = secret
    state.apis[name] = {"name": name, "vllm": vllm}
    state.servers[key] = name
    if "/" not in model_id:  # not shaped like a Hugging Face id: likely a served alias
        state.note(doc, at, f"modelAPI '{name}': vllm.model is '{model_id}', the name the "
                   "server serves; set it to the Hugging Face id and add servedModelName: "
                   f"'{model_id}'")
    return name


def _ollama_server(state: _Import, doc: _Doc, at: Path, host: str, model_id: str,
                   secret: dict[str, str] | None) -> str:
    key = ("ollama", host)
    name = state.servers.get(key)
    if name is None:
        name = state.unique_name(host if not host.startswith("localhost") else "ollama")
        state.apis[name] = {"name": name, "ollama": {"models": []}}
        state.servers[key] = name
    models = state.apis[name]["ollama"]["models"]
    if model_id not in models:
        models.append(model_id)
    if secret:
        state.note(doc, at, "api_key dropped: the in-cluster Ollama server takes no key")
    return name


def _endpoint_route(state: _Import, doc: _Doc, at: Path, provider: str, model_id: str,
                    api_base: str | None, secret: dict[str, str] | None
                    ) -> dict[str, Any] | None:
    if api_base is None and provider not in PUBLIC_URLS:
        state.fail(doc, at, f"no api_base, and the provider '{provider or '?'}' has no known "
                   "public URL", "add litellm_params.api_base, or write <provider>/<model> for "
                   "one of: " + ", ".join(sorted(PUBLIC_URLS)))
        return None
    openai_like = api_base is None or provider == "openai"
    if not openai_like or _in_cluster_host(api_base or "") is not None:
        # An external modelAPI is routed as openai/ and may only reach public addresses.
        route: dict[str, Any] = {"url": api_base, "provider": provider or "openai",
                                 "model": model_id}
        return {**route, "apiKeySecret": secret} if secret else route
    url = api_base or PUBLIC_URLS[provider]
    if api_base is None and provider not in ("openai",):
        state.note(doc, at, f"'{provider}' is reached through its OpenAI-compatible endpoint "
                   f"{url}")
    return {"backend": _external(state, url, provider, model_id, secret), "model": model_id}


def _external(state: _Import, url: str, provider: str, model_id: str,
              secret: dict[str, str] | None) -> str:
    key = ("external", url.rstrip("/"), secret["name"] if secret else "")
    name = state.servers.get(key)
    if name is None:
        known = next((p for p, u in PUBLIC_URLS.items() if u == url.rstrip("/")), None)
        host = urlsplit(url).hostname or "external"
        name = state.unique_name(known or host.removeprefix("api."))
        external: dict[str, Any] = {"url": url, "models": []}
        if secret:
            external["apiKeySecret"] = secret
        state.apis[name] = {"name": name, "external": external}
        state.servers[key] = name
    models = state.apis[name]["external"]["models"]
    if model_id not in models:
        models.append(model_id)
    return name


def _pool_gateway(url: str) -> dict[str, str] | None:
    """The Gateway of an api_base shaped like an InferencePool route this compiler writes,
    http://<gateway>.<namespace>.svc[.cluster.local]/<namespace>/<stack>-<model>/v1, as
    vllm.inferencePool.gateway; None for any other URL."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    labels = host.split(".")
    segments = [p for p in parts.path.split("/") if p]
    if len(labels) < 3 or labels[2] != "svc" or len(segments) != 3 or segments[2] != "v1":
        return None
    if not all(_is_label(text) for text in (labels[0], labels[1], *segments[:2])):
        return None
    return {"name": labels[0], "namespace": labels[1],
            "url": f"{parts.scheme}://{parts.netloc}"}


def _in_cluster_host(url: str) -> str | None:
    """The key of a server the cluster will run, or None for an address outside it."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if host in _LOCAL_HOSTS or host.startswith("127."):
        return f"localhost:{parts.port or ''}"
    if host and "." not in host:
        return host  # a Service (or compose service) short name
    for suffix in _CLUSTER_SUFFIXES:
        if host.endswith(suffix):
            return host.split(".")[0]
    return None


def _settings(state: _Import, doc: _Doc, litellm: dict[str, Any],
              secrets: dict[str, dict[str, str]]) -> None:
    router = _router(state, doc, doc.data.get("router_settings"))
    if router:
        litellm["router"] = router
    general = doc.data.get("general_settings")
    if general is None:
        return
    if not isinstance(general, dict):
        state.fail(doc, ("general_settings",), "general_settings must be a mapping")
        return
    for field_name, spec_field, key in (("master_key", "masterKeySecret", "master-key"),
                                        ("database_url", "databaseUrlSecret", "database-url")):
        ref = _secret_ref(state, doc, ("general_settings", field_name), general.get(field_name),
                          secrets, key)
        if isinstance(ref, dict):
            litellm[spec_field] = ref
    _known_fields(state, doc, ("general_settings",), general, {"master_key", "database_url"})


def _router(state: _Import, doc: _Doc, settings: Any) -> dict[str, Any]:
    at: Path = ("router_settings",)
    if settings is None:
        return {}
    if not isinstance(settings, dict):
        state.fail(doc, at, "router_settings must be a mapping")
        return {}
    router: dict[str, Any] = {}
    strategy = settings.get("routing_strategy")
    if strategy is not None:
        if strategy in ROUTING_STRATEGIES:
            router["strategy"] = strategy
        else:
            state.fail(doc, (*at, "routing_strategy"), f"unknown routing_strategy {strategy!r}",
                       did_you_mean(str(strategy), list(ROUTING_STRATEGIES)))
    _number(state, doc, (*at, "num_retries"), settings.get("num_retries"), router,
            "numRetries", integer=True)
    _number(state, doc, (*at, "timeout"), settings.get("timeout"), router, "timeout",
            integer=False)
    fallbacks = _fallbacks(state, doc, (*at, "fallbacks"), settings.get("fallbacks"))
    if fallbacks:
        router["fallbacks"] = fallbacks
    redis = _redis(state, doc, at, settings)
    if redis:
        router["redis"] = redis
    _known_fields(state, doc, at, settings, {"routing_strategy", "num_retries", "timeout",
                                             "fallbacks", *_REDIS_KEYS})
    return router


_REDIS_KEYS = ("redis_host", "redis_port", "redis_password")


def _redis(state: _Import, doc: _Doc, at: Path, settings: dict[str, Any]
           ) -> dict[str, Any] | None:
    """router_settings redis_host/redis_port/redis_password -> router.redis."""
    host, port = settings.get("redis_host"), settings.get("redis_port", 6379)
    if host is None:
        return None
    if not isinstance(host, str) or host.startswith(ENV_REF):
        state.fail(doc, (*at, "redis_host"), "redis_host must be the host itself",
                   "write the host name; the spec needs it for the NetworkPolicy")
        return None
    if isinstance(port, str) and port.isdigit():
        port = int(port)
    if not isinstance(port, int) or isinstance(port, bool):
        state.fail(doc, (*at, "redis_port"), "redis_port must be a port number")
        return None
    redis: dict[str, Any] = {"host": host, "port": port}
    password = _secret_ref(state, doc, (*at, "redis_password"), settings.get("redis_password"),
                           {}, "password")
    if isinstance(password, dict):
        redis["passwordSecret"] = password
    return redis


def _number(state: _Import, doc: _Doc, at: Path, value: Any, into: dict[str, Any], key: str,
            *, integer: bool) -> None:
    if value is None:
        return
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or value < 0:
        state.fail(doc, at, f"must be a non-negative {'integer' if integer else 'number'}")
        return
    into[key] = value


def _fallbacks(state: _Import, doc: _Doc, at: Path, value: Any) -> dict[str, list[str]]:
    """LiteLLM's `[{alias: [targets]}, ...]` -> the spec's `{alias: [targets]}`."""
    if value is None:
        return {}
    result: dict[str, list[str]] = {}
    shape_ok = isinstance(value, list) and all(isinstance(item, dict) for item in value)
    if not shape_ok:
        state.fail(doc, at, "fallbacks must be a list of {model: [fallback models]}")
        return {}
    for i, item in enumerate(value):
        for alias, targets in item.items():
            if not isinstance(targets, list) or not all(isinstance(t, str) for t in targets):
                state.fail(doc, (*at, i, alias), "fallback targets must be a list of names")
                continue
            result.setdefault(alias, []).extend(t for t in targets
                                                if t not in result.get(alias, []))
    return result
