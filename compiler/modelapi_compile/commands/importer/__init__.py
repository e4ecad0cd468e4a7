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
from pathlib import Path as FsPath
from typing import Any

from ...emit import yamlout
from ...problems import Path, Problem, SpecError, did_you_mean
from ...spec.fields import SYSTEM_NAMESPACES
from ...spec.loader import MAX_FILE_BYTES, load_bytes
from ...spec.model import API_VERSION, KIND
from ...spec.schema import MODELINE
from ...spec.validate import validate_document
from .crds import _agent, _check_agents, _hosted, _proxy
from .documents import (
    _DOC_MARKER,
    CRD_API_VERSION,
    CRD_GROUP,
    _Doc,
    _get,
    _Import,
    _is_label,
    _mode,
    _one_line,
)
from .litellm_config import _litellm_api


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


# --- Agent -----------------------------------------------------------------------------------


# --- ModelAPI --------------------------------------------------------------------------------


# --- LiteLLM config --------------------------------------------------------------------------


# --- secrets ---------------------------------------------------------------------------------


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
