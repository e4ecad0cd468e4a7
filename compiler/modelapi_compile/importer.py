"""`modelapi-compile import`: existing LiteLLM proxy configs and Kubernetes-style ModelAPI /
Agent documents in, one stack spec out, so a team moves to the compiler without rewriting.

What each input document is comes from its content, never its file name:

- a mapping with a top-level `model_list` is a LiteLLM proxy `config.yaml`: it becomes one
  `litellm` modelAPI named `--name` (default `litellm-proxy`, so Agent documents that name the
  proxy bind as written). Keys read: `model_list[].model_name`, `model_list[].litellm_params`
  (`model`, `api_base`, `api_key`), `router_settings` (`routing_strategy`, `num_retries`,
  `timeout`, `fallbacks` as LiteLLM's list of one-key maps) and `general_settings`
  (`master_key`, `database_url`). Everything else is listed in the output's header comment as
  not imported.
- `apiVersion: agentic.example.com/v1alpha1` documents of kind `ModelAPI` or `Agent`, shaped
  like the KAOS operator's resources (the assumed shapes; unknown fields are noted, not fatal):

      kind: ModelAPI                          kind: Agent
      metadata: {name: ...}                   metadata: {name: ...}
      spec:                                   spec:
        mode: Proxy | Hosted                    modelAPI: <a ModelAPI or the proxy's name>
        proxyConfig:          # Proxy           model: <a model it serves>
          configYaml: |       # a LiteLLM       image: registry/agent:tag    # required
            model_list: ...   #   config.yaml   replicas: 1
          apiBase: http://... # or one model    port: 8000
          model: ollama/x     #   (no model:    env: [EnvVar...]   # or config.env
          env: [EnvVar...]    #   wildcard)
        serverConfig:         # Hosted: Ollama (hostedConfig is accepted too)
          model: smollm2:135m
          resources: {requests: {}, limits: {}}   # limits nvidia.com/gpu -> gpu.count

  A Proxy ModelAPI is a `litellm` modelAPI; a wildcard proxy (apiBase, no model) serves the
  models its Agents ask for. A Hosted ModelAPI is an in-cluster `ollama` modelAPI.

How a LiteLLM route (`litellm_params.model` = `<provider>/<model>`, `api_base`) is imported:

- `hosted_vllm/m` or `ollama[_chat]/m` whose api_base is in-cluster or local (a Service short
  name, `*.svc[.cluster.local]`, localhost, host.docker.internal; Ollama without api_base is
  LiteLLM's default localhost:11434) stays a raw `url` + `provider` route to that server, as
  written, unless a Hosted ModelAPI document is that server (then it routes to it) or
  `in_cluster` is asked (`import --in-cluster`): then it becomes an in-cluster `vllm` /
  `ollama` modelAPI; routes to the same server share one. The review notes say which.
  vLLM's Hugging Face id is not in a LiteLLM config, so `vllm.model` is `m` (right when the
  server was started with the Hugging Face id, which is also vLLM's default served name);
  the header comment asks to check it.
  An api_base on an in-cluster Gateway under a model's path,
  `http://<gateway>.<namespace>.svc.../<namespace>/<stack>-<model>/v1` (the InferencePool
  route this compiler writes), becomes that vLLM modelAPI with `inferencePool.gateway`.
- the same providers at any other address stay outside the cluster: a raw `url` + `provider`.
- `openai/m` with a public api_base becomes an `external` modelAPI (url = api_base); with an
  in-cluster one a raw url (an `external` modelAPI may only reach public addresses). Other
  providers with an api_base keep their provider prefix as a raw url.
- without api_base, providers with a known public OpenAI-compatible URL (openai, anthropic,
  groq, mistral, ...) become an `external` modelAPI at that URL; any other is an error.
- `api_key: os.environ/VAR` becomes `apiKeySecret: {name: <var in kebab-case>, key: api-key}`
  (or the Secret a ModelAPI's `proxyConfig.env` maps VAR from). A literal secret value
  anywhere is refused, naming its file and line: the spec never holds secret values.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path as FsPath
from typing import Any
from urllib.parse import urlsplit

from . import yamlout
from .loader import MAX_FILE_BYTES, Positions, load_bytes
from .problems import Path, Problem, SpecError, did_you_mean, format_path
from .secret_values import ENV_REF, USERINFO_PASSWORD, secretish_name
from .spec import API_VERSION, KIND, SYSTEM_NAMESPACES
from .spec_schema import MODELINE
from .validate import COMPUTED_PARAMS, validate_document

CRD_GROUP = "agentic.example.com"
CRD_API_VERSION = f"{CRD_GROUP}/v1alpha1"
ROUTING_STRATEGIES = ("simple-shuffle", "least-busy", "usage-based-routing",
                      "usage-based-routing-v2", "latency-based-routing", "cost-based-routing")
# OpenAI-compatible public endpoints, for routes written without api_base.
PUBLIC_URLS = {
    "openai": "https://api.openai.com/v1",
    "anthropic": "https://api.anthropic.com/v1",
    "gemini": "https://generativelanguage.googleapis.com/v1beta/openai",
    "groq": "https://api.groq.com/openai/v1",
    "mistral": "https://api.mistral.ai/v1",
    "deepseek": "https://api.deepseek.com/v1",
    "together_ai": "https://api.together.xyz/v1",
    "fireworks_ai": "https://api.fireworks.ai/inference/v1",
    "openrouter": "https://openrouter.ai/api/v1",
    "xai": "https://api.x.ai/v1",
    "perplexity": "https://api.perplexity.ai",
}
_OLLAMA_DEFAULT_BASE = "http://localhost:11434"  # LiteLLM's default for ollama/ routes
_LOCAL_HOSTS = {"localhost", "0.0.0.0", "::1", "host.docker.internal"}
_CLUSTER_SUFFIXES = (".svc", ".svc.cluster.local", ".cluster.local")
_DOC_MARKER = re.compile(r"^(---|\.\.\.)(?=\s|$)")
_NOT_IMPORTED = "not imported: the spec has no field for it"


@dataclass
class _Doc:
    """One YAML document of an input file, positions in that file's coordinates."""

    data: Any
    positions: Positions
    text: str  # the whole file, to place embedded configYaml text


@dataclass
class _Import:
    """What the documents add up to; problems are collected so the user sees all at once."""

    proxy_name: str
    in_cluster: bool = False  # turn routes to unknown local servers into in-cluster ones
    apis: dict[str, dict[str, Any]] = field(default_factory=dict)
    servers: dict[tuple[str, ...], str] = field(default_factory=dict)  # route key -> api
    reserved: set[str] = field(default_factory=set)
    agents: list[dict[str, Any]] = field(default_factory=list)
    agent_models: dict[str, list[str]] = field(default_factory=dict)  # api -> asked models
    notes: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    # (api, alias) already reported as broken; (api, "") the whole api: agents that use
    # them get no second, consequential error.
    broken: set[tuple[str, str]] = field(default_factory=set)
    # Where parts of the output came from, so a problem the final validation finds in a
    # value copied through (an image, an env entry) is reported at its source line.
    agent_origins: list[tuple[_Doc, Path]] = field(default_factory=list)
    api_origins: dict[str, tuple[_Doc, Path]] = field(default_factory=dict)
    # LiteLLM modelAPI name -> its config and the model_list index of each imported model
    litellm_origins: dict[str, tuple[_Doc, list[int]]] = field(default_factory=dict)

    def note(self, doc: _Doc, at: Path, message: str) -> None:
        line, _ = doc.positions.locate(at, key=True)
        where = f"{doc.positions.file}:{line}"
        self.notes.append(f"{where}: {format_path(at)}: {message}" if at else
                          f"{where}: {message}")

    def fail(self, doc: _Doc, at: Path, message: str, hint: str = "") -> None:
        self.problems.append(doc.positions.problem(at, message, hint))

    def unique_name(self, base: str) -> str:
        stem = _kebab(base)[:30].strip("-") or "backend"
        name, n = stem, 2
        while name in self.reserved or name in self.apis:
            name, n = f"{stem}-{n}", n + 1
        return name


def import_files(paths: list[str], name: str = "litellm-proxy", stack: str = "imported",
                 namespace: str | None = None) -> str:
    """The spec text for `paths`; SpecError (located) for anything that cannot be imported,
    ValueError for a bad name/stack/namespace argument (a usage error)."""
    return import_spec(paths, name, stack, namespace)[0]


def import_spec(paths: list[str], name: str = "litellm-proxy", stack: str = "imported",
                namespace: str | None = None, *, in_cluster: bool = False
                ) -> tuple[str, list[str]]:
    """The spec text and its review notes (what was converted or not carried over). The
    namespace defaults to the stack's name: never `default`, which other workloads share."""
    if not paths:
        raise ValueError("name at least one file to import")
    namespace = namespace or stack
    _check_arguments(name, stack, namespace)
    documents: list[tuple[str, _Doc]] = []
    problems: list[Problem] = []
    for path in paths:
        try:
            loaded = _read_documents(path)
        except SpecError as error:
            problems += error.problems
            continue
        for doc in loaded:
            try:
                documents.append((_classify(doc), doc))
            except SpecError as error:
                problems += error.problems
    if problems:
        raise SpecError(problems)
    state = _Import(proxy_name=name, in_cluster=in_cluster)
    _collect(state, documents)
    if state.problems:
        raise SpecError(state.problems)
    return _render(state, paths, stack, namespace), list(state.notes)


def _check_arguments(name: str, stack: str, namespace: str) -> None:
    if not _is_label(name):
        raise ValueError(f"--name '{name}' is not a DNS-1123 label")
    if len(stack) > 40 or not re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", stack):
        raise ValueError(f"stack name '{stack}' must be a DNS-1035 label of at most 40 "
                         "characters")
    if not _is_label(namespace):
        raise ValueError(f"namespace '{namespace}' is not a DNS-1123 label")
    if namespace in SYSTEM_NAMESPACES:
        raise ValueError(f"namespace '{namespace}' belongs to the cluster's own components; "
                         "choose a namespace of the stack's own")


# --- reading ---------------------------------------------------------------------------------


def _read_documents(path: str) -> list[_Doc]:
    """Every non-empty YAML document of a file. Each is loaded on its own by the hardened
    loader, padded with blank lines so that lines and columns stay the file's."""
    try:
        raw = FsPath(path).read_bytes()
    except OSError as error:
        reason = error.strerror or str(error)
        raise SpecError([Problem(path, 0, 0, "", f"cannot read the file: {reason}")]) from None
    if len(raw) > MAX_FILE_BYTES or not _is_utf8(raw):
        load_bytes(raw, path)  # raises the loader's located error for size or encoding
    text = raw.decode("utf-8-sig")
    docs = []
    for chunk in _split_documents(text):
        loaded = load_bytes(chunk.encode(), path)
        docs.append(_Doc(loaded.data, loaded.positions, text))
    if not docs:
        raise SpecError([Problem(path, 1, 1, "", "the file holds no YAML document")])
    return docs


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return False
    return True


def _split_documents(text: str) -> Iterator[str]:
    """Split at `---` / `...` lines (YAML ends a document there even inside a block scalar);
    a marker becomes spaces and other documents' lines become blank."""
    lines = text.split("\n")
    starts = [0] + [i for i, line in enumerate(lines) if _DOC_MARKER.match(line)]
    for index, start in enumerate(starts):
        end = starts[index + 1] if index + 1 < len(starts) else len(lines)
        body = lines[start:end]
        if body and _DOC_MARKER.match(body[0]):
            body[0] = "   " + body[0][3:]
        if all(not line.strip() or line.lstrip().startswith("#") for line in body):
            continue
        yield "\n" * start + "\n".join(body)


def _classify(doc: _Doc) -> str:
    data = doc.data
    expected = (f"expected a LiteLLM config (top-level model_list) or {CRD_API_VERSION} "
                "ModelAPI / Agent documents")
    if not isinstance(data, dict):
        raise SpecError([doc.positions.problem((), "cannot tell what this document is",
                                               expected)])
    if "model_list" in data:
        return "litellm"
    api, kind = data.get("apiVersion"), data.get("kind")
    if api == API_VERSION and kind == KIND:
        raise SpecError([doc.positions.problem(("kind",), "this is already a stack spec",
                                               "use it with validate/build directly")])
    if isinstance(api, str) and api.startswith(CRD_GROUP + "/"):
        if api != CRD_API_VERSION:
            raise SpecError([doc.positions.problem(("apiVersion",),
                                                   f"unsupported version '{api}'",
                                                   f"write {CRD_API_VERSION}")])
        if kind in ("ModelAPI", "Agent"):
            return str(kind)
        raise SpecError([doc.positions.problem(("kind",), f"unsupported kind {kind!r}",
                                               did_you_mean(str(kind), ["ModelAPI", "Agent"]))])
    raise SpecError([doc.positions.problem((), "cannot tell what this document is", expected)])


# --- the documents, in dependency order -------------------------------------------------------


def _collect(state: _Import, documents: list[tuple[str, _Doc]]) -> None:
    """Names first (so generated backend names avoid them), then agents (wildcard proxies
    serve what agents ask for), hosted servers (routes bind to them), then proxies."""
    _reserve_names(state, documents)
    if state.problems:
        return
    for kind, doc in documents:
        if kind == "Agent":
            _agent(state, doc)
    for kind, doc in documents:
        if kind == "ModelAPI" and _mode(doc) == "hosted":
            _hosted(state, doc)
    for kind, doc in documents:
        if kind == "litellm":
            _litellm_api(state, doc, (), state.proxy_name, {})
        elif kind == "ModelAPI" and _mode(doc) == "proxy":
            _proxy(state, doc)
        elif kind == "ModelAPI" and _mode(doc) is None:
            state.fail(doc, ("spec", "mode"), "spec.mode must be Proxy or Hosted",
                       "Proxy runs LiteLLM, Hosted runs Ollama in the cluster")
    for kind, doc in documents:
        name = state.proxy_name if kind == "litellm" else doc.data["metadata"]["name"]
        if kind != "Agent" and name not in state.apis:
            state.broken.add((name, ""))
    _check_agents(state, documents)


def _reserve_names(state: _Import, documents: list[tuple[str, _Doc]]) -> None:
    owner: dict[str, tuple[_Doc, Path]] = {}
    for kind, doc in documents:
        at: Path = ("metadata", "name")
        if kind == "litellm":
            name, at = state.proxy_name, ()
        else:
            name = _get(doc.data, "metadata", "name")
            if not isinstance(name, str) or not _is_label(name):
                state.fail(doc, at, f"metadata.name {name!r} is not a DNS-1123 label",
                           "lower-case letters, digits and '-'")
                continue
        if name in owner:
            first = owner[name]
            line = first[0].positions.locate(first[1])[0]
            state.fail(doc, at, f"the name '{name}' is already taken",
                       f"{first[0].positions.file}:{line} uses it"
                       + ("; pass another --name" if kind == "litellm" else ""))
            continue
        owner[name] = (doc, at)
        state.reserved.add(name)


def _mode(doc: _Doc) -> str | None:
    mode = _get(doc.data, "spec", "mode")
    lowered = mode.lower() if isinstance(mode, str) else None
    return lowered if lowered in ("proxy", "hosted") else None


def _get(data: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def _known_fields(state: _Import, doc: _Doc, at: Path, value: Any, known: set[str]) -> None:
    """Note every key of a mapping the import does not read."""
    if isinstance(value, dict):
        for key in value:
            if key not in known:
                state.note(doc, (*at, key), _NOT_IMPORTED)


# --- Agent -----------------------------------------------------------------------------------


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


# --- ModelAPI --------------------------------------------------------------------------------


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


# --- LiteLLM config --------------------------------------------------------------------------


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


# --- secrets ---------------------------------------------------------------------------------


def _secret_ref(state: _Import, doc: _Doc, at: Path, value: Any,
                secrets: dict[str, dict[str, str]], key: str) -> dict[str, str] | bool | None:
    """`os.environ/VAR` -> a SecretRef; None when unset; False after refusing a literal."""
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not value.startswith(ENV_REF):
        _refuse_secret(state, doc, at, str(at[-1]))
        return False
    var = value[len(ENV_REF):]
    if var in secrets:
        return dict(secrets[var])
    name = _kebab(var)
    if not _is_label(name):
        state.fail(doc, at, f"cannot name a Secret after the variable '{var}'",
                   "use a variable name of letters, digits and '_'")
        return False
    return {"name": name, "key": key}


def _refuse_secret(state: _Import, doc: _Doc, at: Path, what: str) -> None:
    state.fail(doc, at, f"refusing to import the secret value of '{what}'",
               "write os.environ/<VARIABLE> in the config (or valueFrom.secretKeyRef) and keep "
               "the value in a Kubernetes Secret")


def _scan_secrets(state: _Import, doc: _Doc, at: Path, value: Any) -> None:
    """Literal secret values anywhere in a LiteLLM config, including sections not imported
    (environment_variables, litellm_settings): the import refuses the whole file."""
    if isinstance(value, dict):
        for key, item in value.items():
            literal = isinstance(item, str) and item and not item.startswith(ENV_REF)
            if literal and (secretish_name(str(key)) or USERINFO_PASSWORD.search(item)):
                _refuse_secret(state, doc, (*at, key), str(key))
            else:
                _scan_secrets(state, doc, (*at, key), item)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _scan_secrets(state, doc, (*at, i), item)


# --- output ----------------------------------------------------------------------------------


def _keep_master_keys(state: _Import) -> None:
    """Agents on a proxy with a master key used it before: keep that, opted in and noted."""
    for agent, (doc, at) in zip(state.agents, state.agent_origins, strict=True):
        proxy = state.apis.get(agent["modelAPI"], {}).get("litellm") or {}
        if proxy.get("masterKeySecret") and "apiKeySecret" not in agent:
            agent["useMasterKey"] = True
            state.note(doc, at, f"agent '{agent['name']}' keeps the proxy's master key "
                       "(useMasterKey: true); mint it a virtual key and set apiKeySecret")


def _render(state: _Import, paths: list[str], stack: str, namespace: str) -> str:
    _keep_master_keys(state)
    spec: dict[str, Any] = {"namespace": namespace, "modelAPIs": list(state.apis.values())}
    if state.agents:
        spec["agents"] = state.agents
    document = {"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": stack},
                "spec": spec}
    header = MODELINE + "\n" + yamlout.comment(
        "Imported by `modelapi-compile import` from: "
        + ", ".join(_one_line(p) for p in paths) + ".", hang=2)
    if state.notes:
        header += "# Review before use:\n"
        header += "".join(yamlout.comment("  " + _one_line(n), hang=4) for n in state.notes)
    text = header + "---\n" + yamlout.dump(document)
    # The import must give a spec that validates as written. What fails here is a value
    # copied through unchecked: report it at its source when the origin is known.
    try:
        validate_document(load_bytes(text.encode(), "(imported spec)"))
    except SpecError as error:
        raise SpecError([_at_source(state, p) for p in error.problems]) from None
    return text


def _at_source(state: _Import, problem: Problem) -> Problem:
    origins: dict[str, tuple[_Doc, Path]] = {}
    for i, origin in enumerate(state.agent_origins):
        origins[f"spec.agents[{i}]"] = origin
        doc = origin[0]
        origins[f"spec.agents[{i}].env"] = (doc, ("spec", "env") if "env" in doc.data["spec"]
                                            else ("spec", "config", "env"))
    for j, name in enumerate(state.apis):
        if name in state.api_origins:
            origins[f"spec.modelAPIs[{j}].ollama"] = state.api_origins[name]
        if name in state.litellm_origins:  # keys copied as written (an unknown one, say)
            doc, sources = state.litellm_origins[name]
            origins[f"spec.modelAPIs[{j}].litellm.settings"] = (doc, ("litellm_settings",))
            for k, i in enumerate(sources):
                origins[f"spec.modelAPIs[{j}].litellm.models[{k}].params"] = (
                    doc, ("model_list", i, "litellm_params"))
    for prefix in sorted(origins, key=len, reverse=True):
        rest = problem.path[len(prefix):]
        if problem.path.startswith(prefix) and rest[:1] in ("", ".", "["):
            doc, base = origins[prefix]
            parts: Path = tuple(int(i) if i else k for k, i in
                                re.findall(r"\.([^.\[]+)|\[(\d+)\]", rest))
            return doc.positions.problem((*base, *parts), problem.message, problem.hint)
    return problem


def _one_line(text: str) -> str:
    return re.sub(r"[\x00-\x1f\x7f]", " ", text)


def _kebab(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:63].strip("-")


def _is_label(text: str) -> bool:
    return len(text) <= 63 and re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", text) is not None
