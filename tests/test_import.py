"""`import`: LiteLLM configs and agentic.example.com ModelAPI / Agent documents become a spec
that validates and builds without edits; everything that cannot be imported is a located
error, and secret values are refused."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import CASES
from modelapi_compile.commands.importer import import_files, import_spec
from modelapi_compile.commands.init import MODELINE
from modelapi_compile.pipeline import compile_spec
from modelapi_compile.problems import Problem, SpecError
from modelapi_compile.spec.loader import load_bytes
from modelapi_compile.spec.validate import validate_document

IMPORT = CASES / "import"
LITELLM = str(IMPORT / "litellm-config.yaml")
AGENTS = str(IMPORT / "agents.yaml")
EMBEDDED = str(IMPORT / "kaos-embedded.yaml")


def _build(tmp_path: Path, text: str) -> None:
    validate_document(load_bytes(text.encode(), "imported.yaml"))
    spec_file = tmp_path / "imported.yaml"
    spec_file.write_text(text, encoding="utf-8")
    compile_spec(str(spec_file), use_helm=False)


def _apis(text: str) -> dict[str, Any]:
    return {a["name"]: a for a in yaml.safe_load(text)["spec"]["modelAPIs"]}


def _header(text: str) -> str:
    """The header comment as one line: it is wrapped at 80 columns between words."""
    comments = text.split("\n---\n")[0].splitlines()
    return " ".join(line.lstrip("#").strip() for line in comments)


def test_litellm_config_plus_documents_builds_without_edits(tmp_path: Path) -> None:
    text = import_files([LITELLM, AGENTS])
    assert text.splitlines()[0] == MODELINE
    _build(tmp_path, text)


def test_litellm_routes(tmp_path: Path) -> None:
    apis = _apis(import_spec([LITELLM, AGENTS], in_cluster=True)[0])
    proxy = apis["litellm-proxy"]["litellm"]
    routes = [(m["name"], m.get("backend") or m.get("url")) for m in proxy["models"]]
    assert routes == [("smollm2:135m", "ollama"), ("tinyllama", "vllm"),
                      ("gpt-4o-mini", "openai"), ("gpt-4o-mini", "llm-gateway-example-com"),
                      ("laptop-llama", "http://192.168.1.20:11434"), ("claude", "anthropic")]
    # The route to http://ollama:11434 lands on the Hosted ModelAPI named ollama.
    assert apis["ollama"]["ollama"]["models"] == ["qwen2.5:0.5b", "smollm2:135m"]
    assert apis["vllm"]["vllm"] == {"model": "TinyLlama/TinyLlama-1.1B-Chat-v1.0",
                                    "apiKeySecret": {"name": "vllm-api-key", "key": "api-key"}}
    assert apis["openai"]["external"]["url"] == "https://api.openai.com/v1"
    assert apis["openai"]["external"]["apiKeySecret"] == {"name": "openai-api-key",
                                                          "key": "api-key"}
    assert proxy["models"][4]["provider"] == "ollama"
    assert proxy["router"] == {"strategy": "least-busy", "numRetries": 3, "timeout": 120,
                               "fallbacks": {"tinyllama": ["smollm2:135m"],
                                             "gpt-4o-mini": ["claude"]}}
    assert proxy["masterKeySecret"] == {"name": "litellm-master-key", "key": "master-key"}


def test_documents_map_to_modelapis_and_agents() -> None:
    spec = yaml.safe_load(import_files([LITELLM, AGENTS]))["spec"]
    apis = {a["name"]: a for a in spec["modelAPIs"]}
    assert apis["ollama"]["ollama"]["resources"] == {
        "requests": {"memory": "2Gi", "cpu": "1"}, "limits": {"memory": "8Gi"}}
    (entry,) = apis["openai-proxy"]["litellm"]["models"]
    assert entry["name"] == "openai/gpt-4o"
    secret = apis[entry["backend"]]["external"]["apiKeySecret"]
    assert secret == {"name": "openai-secrets", "key": "api-key"}  # from proxyConfig.env
    agents = {a["name"]: a for a in spec["agents"]}
    # It used the proxy's master key before the import; it keeps it, opted in and noted.
    assert agents["math-agent"] == {"name": "math-agent", "modelAPI": "litellm-proxy",
                                    "model": "smollm2:135m", "replicas": 2,
                                    "image": "ghcr.io/example/simple-math-agent:0.1.0",
                                    "env": [{"name": "LOG_LEVEL", "value": "info"}],
                                    "useMasterKey": True}


def test_unimported_fields_are_listed_in_the_header() -> None:
    text = import_files([LITELLM, AGENTS])
    header = _header(text)
    assert "not imported" not in header.split("agents.yaml")[0]  # the config loses nothing
    assert "agents.yaml:52: spec.mcpServers: not imported" in header
    assert "math-agent' keeps the proxy's master key (useMasterKey: true)" in header


def test_every_litellm_param_and_setting_is_carried() -> None:
    """Issue 15 item 6: keys the import used to drop reach params and settings."""
    proxy = _apis(import_files([LITELLM]))["litellm-proxy"]["litellm"]
    models = proxy["models"]
    assert models[1]["name"] == "tinyllama"
    assert models[1]["params"] == {"stream_timeout": 600}
    assert models[3]["params"] == {"rpm": 60}
    assert "params" not in models[0]
    assert proxy["settings"] == {"drop_params": True}


def test_router_redis_and_agent_key_are_imported(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        "model_list:\n"
        "  - {model_name: m, litellm_params: {model: openai/gpt-4o-mini}}\n"
        "router_settings:\n"
        "  routing_strategy: usage-based-routing-v2\n"
        "  redis_host: redis.cache.svc\n"
        "  redis_port: 6380\n"
        "  redis_password: os.environ/REDIS_PASSWORD\n"
        "general_settings: {master_key: os.environ/LITELLM_MASTER_KEY}\n")
    agent = tmp_path / "agent.yaml"
    agent.write_text(
        "apiVersion: agentic.example.com/v1alpha1\nkind: Agent\nmetadata: {name: bot}\n"
        "spec:\n  modelAPI: litellm-proxy\n  model: m\n  image: ghcr.io/x/bot:1.0.0\n"
        "  env:\n    - name: MODEL_API_KEY\n"
        "      valueFrom: {secretKeyRef: {name: bot-key, key: key}}\n")
    text = import_files([str(config), str(agent)])
    spec = yaml.safe_load(text)["spec"]
    apis = {a["name"]: a for a in spec["modelAPIs"]}
    router = apis["litellm-proxy"]["litellm"]["router"]
    assert router["redis"] == {"host": "redis.cache.svc", "port": 6380,
                               "passwordSecret": {"name": "redis-password", "key": "password"}}
    (bot,) = spec["agents"]
    assert bot["apiKeySecret"] == {"name": "bot-key", "key": "key"}
    assert "env" not in bot and "useMasterKey" not in bot


def test_embedded_config_env_keys_and_wildcard_proxy(tmp_path: Path) -> None:
    text, _ = import_spec([EMBEDDED], stack="kaos", namespace="agents", in_cluster=True)
    _build(tmp_path, text)
    apis = _apis(text)
    assert apis["openai"]["external"]["apiKeySecret"] == {"name": "llm-secrets",
                                                          "key": "openai-key"}
    fast = apis["multi-model"]["litellm"]["models"][0]
    assert apis[fast["backend"]]["ollama"]["models"] == ["smollm2:135m"]
    (wildcard,) = apis["dev-ollama"]["litellm"]["models"]
    assert wildcard["name"] == "ollama/smollm2:135m"
    # The note points into the embedded config at its line in the outer file.
    assert "kaos-embedded.yaml:22: model_list[2].litellm_params.model" in _header(text)


def test_kind_comes_from_content_not_file_name(tmp_path: Path) -> None:
    disguised = tmp_path / "agent.yaml"
    shutil.copy(LITELLM, disguised)
    proxy = tmp_path / "proxy.conf"
    shutil.copy(AGENTS, proxy)
    text = import_files([str(proxy), str(disguised)])
    assert "litellm-proxy" in _apis(text)


def test_name_binds_existing_agents(tmp_path: Path) -> None:
    agents = _write(tmp_path, "agent.yaml", """\
        apiVersion: agentic.example.com/v1alpha1
        kind: Agent
        metadata: {name: bot}
        spec: {modelAPI: gateway, model: smollm2:135m, image: ghcr.io/example/bot:1.0.0}
        """)
    text = import_files([LITELLM, agents], name="gateway")
    assert "gateway" in _apis(text)
    with pytest.raises(SpecError) as caught:
        import_files([LITELLM, agents])
    (problem,) = caught.value.problems
    assert (problem.line, problem.path) == (4, "spec.modelAPI")
    assert "no ModelAPI named 'gateway'" in problem.message


def test_same_input_same_bytes() -> None:
    assert import_files([LITELLM, AGENTS]) == import_files([LITELLM, AGENTS])


# --- errors ----------------------------------------------------------------------------------


def _write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return str(path)


def _problems(*paths: str) -> list[Problem]:
    with pytest.raises(SpecError) as caught:
        import_files(list(paths))
    problems: list[Problem] = caught.value.problems
    return problems


def test_literal_secrets_are_refused_with_their_lines(tmp_path: Path) -> None:
    config = _write(tmp_path, "config.yaml", """\
        model_list:
          - model_name: gpt-4o
            litellm_params:
              model: openai/gpt-4o
              api_key: sk-live-1234
        general_settings:
          master_key: sk-1234
          database_url: postgresql://llm:hunter2@db:5432/litellm
        environment_variables:
          REDIS_PASSWORD: hunter2
        """)
    problems = _problems(config)
    assert [(p.line, p.path) for p in problems] == [
        (5, "model_list[0].litellm_params.api_key"), (7, "general_settings.master_key"),
        (8, "general_settings.database_url"), (10, "environment_variables.REDIS_PASSWORD")]
    assert all(p.file == config and "refusing to import the secret value" in p.message
               for p in problems)
    assert all("hunter2" not in p.render() and "sk-1234" not in p.render() for p in problems)


def test_literal_secret_in_documents_is_refused(tmp_path: Path) -> None:
    docs = _write(tmp_path, "docs.yaml", """\
        apiVersion: agentic.example.com/v1alpha1
        kind: ModelAPI
        metadata: {name: proxy}
        spec:
          mode: Proxy
          proxyConfig:
            configYaml: |
              model_list:
                - model_name: gpt-4o
                  litellm_params:
                    model: openai/gpt-4o
                    api_key: sk-abc
        ---
        apiVersion: agentic.example.com/v1alpha1
        kind: Agent
        metadata: {name: bot}
        spec:
          modelAPI: proxy
          model: gpt-4o
          image: ghcr.io/example/bot:1.0.0
          env:
            - {name: OPENAI_API_KEY, value: sk-abc}
        """)
    problems = _problems(docs)
    assert [(p.line, p.column, p.path) for p in problems] == [
        (12, 22, "model_list[0].litellm_params.api_key"), (22, 37, "spec.env[0].value")]


@pytest.mark.parametrize(("params", "message"), [
    ("{model: bedrock/claude}", "no api_base, and the provider 'bedrock' has no known public URL"),
    ("{model: hosted_vllm/qwen}", "a hosted_vllm route needs api_base"),
    ("{model: openai/x, api_base: os.environ/BASE}", "comes from the environment variable BASE"),
    ("{model: openai/x, api_base: ftp://host}", "is not an http(s) URL"),
    ("{api_base: http://x:1}", "the model must be a string"),
])
def test_unroutable_entries(tmp_path: Path, params: str, message: str) -> None:
    config = _write(tmp_path, "config.yaml", f"""\
        model_list:
          - model_name: m
            litellm_params: {params}
        """)
    (problem,) = _problems(config)
    assert problem.line == 3 and message in problem.message


def test_all_problems_at_once(tmp_path: Path) -> None:
    config = _write(tmp_path, "config.yaml", """\
        model_list:
          - model_name: "*"
            litellm_params: {model: "openai/*"}
          - model_name: ok
            litellm_params: {model: openai/gpt-4o}
        router_settings:
          routing_strategy: least_busy
          fallbacks: {ok: [x]}
        """)
    problems = _problems(config)
    assert [(p.line, p.message.split(" ")[0]) for p in problems] == [
        (2, "wildcard"), (7, "unknown"), (8, "fallbacks")]
    assert problems[1].hint == "did you mean 'least-busy'?"


def test_unknown_documents(tmp_path: Path) -> None:
    unknown = _write(tmp_path, "deploy.yaml", """\
        apiVersion: apps/v1
        kind: Deployment
        metadata: {name: x}
        ---
        apiVersion: agentic.example.com/v1alpha1
        kind: MCPServer
        metadata: {name: y}
        ---
        apiVersion: agentic.example.com/v2
        kind: Agent
        """)
    problems = _problems(unknown)
    assert [(p.line, p.message) for p in problems] == [
        (1, "cannot tell what this document is"), (6, "unsupported kind 'MCPServer'"),
        (9, "unsupported version 'agentic.example.com/v2'")]


def test_document_errors(tmp_path: Path) -> None:
    docs = _write(tmp_path, "docs.yaml", """\
        apiVersion: agentic.example.com/v1alpha1
        kind: ModelAPI
        metadata: {name: ollama}
        spec: {mode: Hosted, serverConfig: {}}
        ---
        apiVersion: agentic.example.com/v1alpha1
        kind: ModelAPI
        metadata: {name: wild}
        spec: {mode: Proxy, proxyConfig: {apiBase: "http://ollama:11434"}}
        ---
        apiVersion: agentic.example.com/v1alpha1
        kind: Agent
        metadata: {name: bot}
        spec: {modelAPI: ollama, model: smollm2}
        ---
        apiVersion: agentic.example.com/v1alpha1
        kind: ModelAPI
        metadata: {name: gone}
        spec: {mode: Remote}
        """)
    problems = _problems(docs)
    assert [(p.line, p.path) for p in problems] == [
        (4, "spec.serverConfig.model"), (9, "spec.proxyConfig.apiBase"), (14, "spec.image"),
        (19, "spec.mode")]


def test_duplicate_names(tmp_path: Path) -> None:
    docs = _write(tmp_path, "docs.yaml", """\
        apiVersion: agentic.example.com/v1alpha1
        kind: ModelAPI
        metadata: {name: litellm-proxy}
        spec: {mode: Hosted, serverConfig: {model: smollm2:135m}}
        """)
    (problem,) = _problems(LITELLM, docs)
    assert (problem.file, problem.line) == (docs, 3)
    assert "already taken" in problem.message


def test_hostile_and_missing_files(tmp_path: Path) -> None:
    bomb = _write(tmp_path, "bomb.yaml", """\
        a: &a [x, x, x, x, x, x, x, x, x, x]
        b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]
        c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]
        d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]
        e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]
        f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]
        model_list: [*f]
        """)
    assert "alias" in _problems(bomb)[0].message
    assert "cannot read the file" in _problems(str(tmp_path / "missing.yaml"))[0].message
    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes(b"model_list: []\n# caf\xe9\n")
    assert _problems(str(latin1))[0].line == 2


def test_bad_arguments_are_usage_errors() -> None:
    with pytest.raises(ValueError, match="--name"):
        import_files([LITELLM], name="Bad Name")
    with pytest.raises(ValueError, match="stack name"):
        import_files([LITELLM], stack="9lives")


def test_copied_values_are_checked_at_their_source(tmp_path: Path) -> None:
    docs = _write(tmp_path, "docs.yaml", """\
        apiVersion: agentic.example.com/v1alpha1
        kind: ModelAPI
        metadata: {name: ollama}
        spec:
          mode: Hosted
          serverConfig:
            model: smollm2:135m
            resources: {limits: {memory: lots}}
        ---
        apiVersion: agentic.example.com/v1alpha1
        kind: Agent
        metadata: {name: bot}
        spec:
          modelAPI: ollama
          model: smollm2:135m
          image: bot:latest
          config:
            env:
              - {name: LOG_LEVEL}
        """)
    problems = _problems(docs)
    assert [(p.file, p.line, p.path) for p in problems] == [
        (docs, 8, "spec.serverConfig.resources.limits.memory"), (docs, 16, "spec.image"),
        (docs, 19, "spec.config.env[0]")]


def test_routes_are_kept_as_written_unless_in_cluster_is_asked(tmp_path: Path) -> None:
    """Issue 16 item 11: the server a route names keeps serving it; only --in-cluster (or a
    Hosted ModelAPI document of that name) makes it a modelAPI of the spec, and the review
    notes say which routes were converted and which kept."""
    text, notes = import_spec([LITELLM])
    _build(tmp_path, text)
    apis = _apis(text)
    assert not any("ollama" in api or "vllm" in api for api in apis.values())
    routes = {m["name"]: m for m in apis["litellm-proxy"]["litellm"]["models"]}
    assert routes["smollm2:135m"] == {"name": "smollm2:135m", "url": "http://ollama:11434",
                                      "provider": "ollama_chat"}
    assert routes["tinyllama"]["url"] == "http://vllm:8000/v1"
    assert routes["tinyllama"]["params"] == {"stream_timeout": 600}
    assert routes["tinyllama"]["apiKeySecret"] == {"name": "vllm-api-key", "key": "api-key"}
    kept = [n for n in notes if "kept as written" in n]
    assert len(kept) == 2 and all("--in-cluster" in n for n in kept)
    seed = tmp_path / "seed.yaml"  # the seed scenario: Ollama on the developer's machine
    seed.write_text("model_list:\n  - model_name: local\n    litellm_params:\n"
                    "      model: ollama/llama3.2:1b\n"
                    "      api_base: http://host.docker.internal:11434\n"
                    "      stream_timeout: 600\n")
    local = _apis(import_spec([str(seed)])[0])["litellm-proxy"]["litellm"]["models"][0]
    assert local == {"name": "local", "url": "http://host.docker.internal:11434",
                     "provider": "ollama", "model": "llama3.2:1b",
                     "params": {"stream_timeout": 600}}
    converted, converted_notes = import_spec([LITELLM, AGENTS], in_cluster=True)
    apis = _apis(converted)
    assert "vllm" in apis["vllm"] and apis["ollama"]["ollama"]["models"][-1] == "smollm2:135m"
    assert any("converted (--in-cluster)" in n and "'vllm'" in n for n in converted_notes)
    assert any("Hosted ModelAPI 'ollama'" in n for n in converted_notes)


def test_a_route_on_an_inference_gateway_stays_behind_it(tmp_path: Path) -> None:
    """Issue 25: an api_base on a Gateway under a model's path (the InferencePool route the
    compiler writes) becomes, with --in-cluster, a vLLM modelAPI with inferencePool."""
    config = tmp_path / "config.yaml"
    config.write_text(textwrap.dedent("""\
        model_list:
          - model_name: llama-8b
            litellm_params:
              model: hosted_vllm/meta-llama/Llama-3.1-8B-Instruct
              api_base: http://inference-gw.gateway-system.svc.cluster.local/ai/ai-llama8b/v1
        """))
    text, notes = import_spec([str(config)], in_cluster=True)
    api = _apis(text)["ai-llama8b"]["vllm"]
    assert api["inferencePool"] == {"gateway": {
        "name": "inference-gw", "namespace": "gateway-system",
        "url": "http://inference-gw.gateway-system.svc.cluster.local"}}
    assert any("InferencePool" in note for note in notes)
    _build(tmp_path, text)
