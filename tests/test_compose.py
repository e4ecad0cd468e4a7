"""The docker-compose file: same wiring as the cluster, valid Compose, no secret values."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import CASES, REPO, missing_engine
from modelapi_compile.commands.compose import compose_file
from modelapi_compile.resolve.model import ResolvedStack
from modelapi_compile.resolve.stack import resolve
from modelapi_compile.spec.validate import load_spec

EXAMPLE = REPO / "examples" / "agentic.yaml"
PROD = CASES / "valid" / "production-gpu.yaml"
_VARIABLE = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _resolved(spec: Path) -> dict[str, ResolvedStack]:
    return resolve(load_spec(str(spec)))


def _all_outputs() -> list[tuple[str, str, str]]:
    """(spec, environment, compose text) for every environment of both specs."""
    outputs = []
    for spec in (EXAMPLE, PROD):
        for env, stack in _resolved(spec).items():
            outputs.append((spec.name, env, compose_file(stack)))
    return outputs


OUTPUTS = _all_outputs()
IDS = [f"{spec}:{env or 'base'}" for spec, env, _ in OUTPUTS]


@pytest.fixture(scope="module")
def dev() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(compose_file(_resolved(EXAMPLE)["dev"]))
    return loaded


def test_one_service_per_workload_named_like_the_kubernetes_service(
        dev: dict[str, Any]) -> None:
    assert "version" not in dev
    assert sorted(dev["services"]) == [
        "agentic-litellm-proxy", "agentic-ollama", "agentic-ollama-model-puller",
        "agentic-simple-math-agent", "agentic-tinyllama-agent", "agentic-vllm-hosted",
        "litellm-postgres"]  # the proxy's database, named as the spec's database.host


def test_ports_are_published_on_loopback_with_the_usual_numbers(dev: dict[str, Any]) -> None:
    services = dev["services"]
    assert services["agentic-litellm-proxy"]["ports"] == ["127.0.0.1:4000:4000"]
    assert services["agentic-ollama"]["ports"] == ["127.0.0.1:11434:11434"]
    assert services["agentic-simple-math-agent"]["ports"] == ["127.0.0.1:8000:8000"]
    # Two more listeners on 8000 inside the network; on the host they move up, in order.
    assert services["agentic-tinyllama-agent"]["ports"] == ["127.0.0.1:8001:8000"]
    assert services["agentic-vllm-hosted"]["ports"] == ["127.0.0.1:8002:8000"]


@pytest.mark.parametrize(("spec", "env", "text"), OUTPUTS, ids=IDS)
def test_every_published_port_is_loopback_and_unique(spec: str, env: str, text: str) -> None:
    services = yaml.safe_load(text)["services"]
    host_ports = []
    for service in services.values():
        for port in service.get("ports", []):
            host, published, _ = port.split(":")
            assert host == "127.0.0.1"
            host_ports.append(published)
    assert len(host_ports) == len(set(host_ports))


def test_litellm_gets_the_same_config_at_the_same_path(dev: dict[str, Any]) -> None:
    workload = _resolved(EXAMPLE)["dev"].values.workloads["litellm-proxy"]
    assert workload.config is not None
    proxy = dev["services"]["agentic-litellm-proxy"]
    assert proxy["command"] == workload.args
    assert proxy["configs"] == [{"source": "agentic-litellm-proxy-config",
                                 "target": "/etc/litellm/config.yaml"}]
    assert dev["configs"]["agentic-litellm-proxy-config"]["content"] == workload.config.content
    assert "--config" in proxy["command"] and "/etc/litellm/config.yaml" in proxy["command"]


@pytest.mark.parametrize(("spec", "env", "text"), OUTPUTS, ids=IDS)
def test_every_in_cluster_url_names_a_service_and_its_container_port(
        spec: str, env: str, text: str) -> None:
    document = yaml.safe_load(text)
    services = document["services"]
    bodies = [json.dumps(s.get("environment", {})) for s in services.values()]
    bodies += [c["content"] for c in document.get("configs", {}).values()]
    urls = re.findall(r"http://([a-z0-9-]+):([0-9]+)", "\n".join(bodies))
    for host, port in urls:
        if host == "host.docker.internal":
            continue
        assert host in services, host
        assert services[host]["ports"][0].endswith(f":{port}"), (host, port)


def test_agents_call_their_model_api(dev: dict[str, Any]) -> None:
    math_agent = dev["services"]["agentic-simple-math-agent"]
    assert math_agent["environment"]["MODEL_API_URL"] == "http://agentic-litellm-proxy:4000/v1"
    assert math_agent["environment"]["MODEL_NAME"] == "smollm2:135m"
    assert math_agent["depends_on"] == ["agentic-litellm-proxy"]
    tiny = dev["services"]["agentic-tinyllama-agent"]
    assert tiny["environment"]["MODEL_API_URL"] == "http://agentic-vllm-hosted:8000/v1"
    assert tiny["depends_on"] == ["agentic-vllm-hosted"]


def test_vllm_runs_the_cpu_image_where_the_environment_has_no_gpu(dev: dict[str, Any]) -> None:
    vllm = dev["services"]["agentic-vllm-hosted"]
    assert vllm["image"].startswith("public.ecr.aws/q9t5s3a7/vllm-cpu-release-repo:")
    assert vllm["entrypoint"] == ["vllm", "serve"]
    assert vllm["command"][:3] == ["TinyLlama/TinyLlama-1.1B-Chat-v1.0", "--served-model-name",
                                   "tinyllama"]
    assert "deploy" not in vllm
    assert vllm["shm_size"] == 2 * 1024**3
    assert vllm["volumes"] == ["agentic-vllm-hosted-cache:/models"]
    assert "agentic-vllm-hosted-cache" in dev["volumes"]


def test_gpu_environments_reserve_gpus() -> None:
    prod = yaml.safe_load(compose_file(_resolved(PROD)["prod"]))
    llama = prod["services"]["prodai-llama70b"]
    assert llama["image"] == "vllm/vllm-openai:v0.11.0"
    assert llama["deploy"]["resources"]["reservations"]["devices"] == [
        {"driver": "nvidia", "count": 4, "capabilities": ["gpu"]}]
    # An existing claim becomes a named volume of that name.
    assert prod["services"]["prodai-qwen-awq"]["volumes"] == ["shared-models:/models"]
    dev = yaml.safe_load(compose_file(_resolved(PROD)["dev"]))
    assert "deploy" not in dev["services"]["prodai-llama70b"]
    assert "prodai-qwen-awq" not in dev["services"]  # deleted by the dev patch


def test_model_puller_shares_the_server_network_and_reports_health(
        dev: dict[str, Any]) -> None:
    puller = dev["services"]["agentic-ollama-model-puller"]
    assert puller["network_mode"] == "service:agentic-ollama"
    assert puller["environment"]["OLLAMA_HOST"] == "127.0.0.1:11434"
    assert puller["command"] == ["pull-models", "smollm2:135m"]
    assert puller["healthcheck"]["test"] == ["CMD", "test", "-f", "/tmp/models-ready"]
    # The shell variables of the pull script survive Compose interpolation.
    assert '"$$@"' in puller["entrypoint"][2]
    ollama = dev["services"]["agentic-ollama"]
    assert ollama["volumes"] == ["agentic-ollama-cache:/home/ollama/.ollama"]
    assert ollama["healthcheck"]["test"] == ["CMD", "ollama", "list"]


def test_healthchecks_only_where_the_image_can_run_them(dev: dict[str, Any]) -> None:
    services = dev["services"]
    assert "healthcheck" not in services["agentic-simple-math-agent"]
    vllm_check = services["agentic-vllm-hosted"]["healthcheck"]
    assert vllm_check["test"][:2] == ["CMD", "python3"]
    assert "http://127.0.0.1:8000/health" in vllm_check["test"][3]
    assert vllm_check["start_period"] == "1800s"  # the spec's startupTimeout: 30m
    proxy_check = services["agentic-litellm-proxy"]["healthcheck"]
    assert "/health/readiness" in proxy_check["test"][3]


@pytest.mark.parametrize(("spec", "env", "text"), OUTPUTS, ids=IDS)
def test_secrets_are_interpolated_and_documented_never_written(
        spec: str, env: str, text: str) -> None:
    header = [line for line in text.splitlines() if line.startswith("#")]
    documented = {m.group(1) for line in header
                  if (m := re.match(r"#   ([A-Z0-9_]+): (Secret|ConfigMap|the local) ", line))}
    used = set(_VARIABLE.findall(text))
    assert used == documented
    stacks = _resolved(EXAMPLE if spec == EXAMPLE.name else PROD)
    for workload in stacks[env].values.workloads.values():
        for item in workload.env:
            if "secretKeyRef" in item.get("valueFrom", {}):
                assert item["name"] in text  # the variable is set, from ${...}


def test_one_variable_per_secret_key(dev: dict[str, Any]) -> None:
    # One variable per Secret key: the proxy's master key and the agent's own key differ.
    proxy = dev["services"]["agentic-litellm-proxy"]["environment"]
    agent = dev["services"]["agentic-simple-math-agent"]["environment"]
    assert proxy["LITELLM_MASTER_KEY"] == "${LITELLM_MASTER_KEY}"
    assert agent["MODEL_API_KEY"] == "${SIMPLE_MATH_AGENT_KEY}"


def test_pod_fields_and_spec_strings_stay_data() -> None:
    prod = yaml.safe_load(compose_file(_resolved(PROD)["prod"]))
    planner = prod["services"]["prodai-planner"]["environment"]
    assert planner["TEMPLATE"] == "{{ .Values.secret }}"
    assert planner["POD_NAME"] == "prodai-planner"
    assert planner["UPSTREAM_TOKEN"] == "${UPSTREAM_TOKEN}"


def test_dollar_signs_from_the_spec_are_escaped(tmp_path: Path) -> None:
    spec = EXAMPLE.read_text().replace("{name: LOG_LEVEL, value: info}",
                                       "{name: PROMPT_PREFIX, value: 'costs $5 ${HOME}'}")
    path = tmp_path / "dollar.yaml"
    path.write_text(spec)
    text = compose_file(_resolved(path)["dev"])
    document = yaml.safe_load(text)
    env = document["services"]["agentic-simple-math-agent"]["environment"]
    assert env["PROMPT_PREFIX"] == "costs $$5 $${HOME}"
    assert "HOME" not in _VARIABLE.findall(text)


@pytest.mark.parametrize(("spec", "env", "text"), OUTPUTS, ids=IDS)
def test_same_bytes_every_time(spec: str, env: str, text: str) -> None:
    source = EXAMPLE if spec == EXAMPLE.name else PROD
    assert compose_file(_resolved(source)[env]) == text


# --- validation by real parsers --------------------------------------------------------------


@pytest.mark.parametrize(("spec", "env", "text"), OUTPUTS, ids=IDS)
def test_parses_with_the_compose_spec_library(spec: str, env: str, text: str) -> None:
    """compose-spec (PyPI) wraps the Rust compose_spec crate: a strict, current parser."""
    try:
        import compose_spec
    except ImportError:
        missing_engine("the compose-spec parser (pip install compose-spec)")
    # The crate reads extra_hosts as IP addresses only; Docker's `host-gateway` (the host's
    # address, Docker 20.10+) is stood in for by an address of the same shape.
    parsed = compose_spec.PyCompose.from_yaml(text.replace(":host-gateway", ":172.17.0.1"))
    parsed.validate()  # every volume and config a service uses is declared
    assert sorted(parsed.service_names()) == sorted(yaml.safe_load(text)["services"])


# --- issue 24, item 10: names, the services the stack needs, the README's command ----------


def test_variable_names_never_double_a_suffix() -> None:
    from modelapi_compile.commands.compose import variable_name

    assert variable_name("litellm-master-key", "master-key") == "LITELLM_MASTER_KEY"
    assert variable_name("hf-token", "token") == "HF_TOKEN"
    assert variable_name("simple-math-agent-key", "key") == "SIMPLE_MATH_AGENT_KEY"
    assert variable_name("groq", "api-key") == "GROQ_API_KEY"
    assert variable_name("openai-api", "api-key") == "OPENAI_API_KEY"
    assert variable_name("litellm-db", "url") == "LITELLM_DB_URL"
    assert variable_name("9lives", "key") == "_9LIVES_KEY"
    for _spec, _env, text in OUTPUTS:
        for name in _VARIABLE.findall(text):
            words = name.split("_")
            assert not any(words[i:i + 1] == words[i + 1:i + 2] for i in range(len(words) - 1)
                           if words[i]), name


def test_names_that_would_collide_get_a_suffix(tmp_path: Path) -> None:
    from modelapi_compile.commands.compose import _variables
    from modelapi_compile.resolve.model import Workload

    base = _resolved(EXAMPLE)["dev"].values.workloads["litellm-proxy"]
    env = [{"name": "A", "valueFrom": {"secretKeyRef": {"name": "x-key", "key": "key"}}},
           {"name": "B", "valueFrom": {"secretKeyRef": {"name": "x", "key": "key"}}}]
    workload: Workload = base.model_copy(update={"env": env, "sidecars": []})
    names = _variables({"w": workload}, {})
    assert sorted(names.values()) == ["X_KEY", "X_KEY_2"]


def test_the_proxys_database_runs_locally_and_the_proxy_uses_it(dev: dict[str, Any]) -> None:
    database = dev["services"]["litellm-postgres"]  # the spec's database.host
    assert database["image"].startswith("postgres:")
    assert database["environment"]["POSTGRES_PASSWORD"] == "${POSTGRES_PASSWORD}"
    assert "ports" not in database  # reached on the Compose network only
    assert database["healthcheck"]["test"][:2] == ["CMD", "pg_isready"]
    proxy = dev["services"]["agentic-litellm-proxy"]
    assert proxy["environment"]["DATABASE_URL"] == (
        "postgresql://litellm:${POSTGRES_PASSWORD}@litellm-postgres:5432/litellm")
    assert "litellm-postgres" in proxy["depends_on"]
    assert any(v.startswith("agentic-postgres-data:") for v in database["volumes"])


def test_redis_runs_locally_under_the_host_the_router_names() -> None:
    prod = yaml.safe_load(compose_file(_resolved(PROD)["prod"]))
    redis = prod["services"]["redis"]
    assert redis["image"].startswith("redis:")
    assert redis["networks"]["default"]["aliases"] == ["redis.cache.svc"]
    assert redis["command"][-2:] == ["--requirepass", "${REDIS_PASSWORD}"]
    proxy = prod["services"]["prodai-router"]
    assert proxy["environment"]["ROUTER_REDIS_PASSWORD"] == "${REDIS_PASSWORD}"
    assert "redis" in proxy["depends_on"]


def test_a_server_outside_the_cluster_is_named_as_not_run(tmp_path: Path) -> None:
    spec = tmp_path / "ip.yaml"
    spec.write_text(EXAMPLE.read_text().replace("database: {host: litellm-postgres, port: 5432}",
                                                "database: {host: 10.1.2.3, port: 5432}"))
    text = compose_file(_resolved(spec)["dev"])
    assert "litellm-postgres" not in yaml.safe_load(text)["services"]
    assert ("# PostgreSQL of agentic-litellm-proxy at 10.1.2.3:5432 (outside the cluster): "
            "not run here") in text
    assert "LITELLM_DB_URL: Secret 'litellm-db', key 'url'" in text  # the user's own URL


def test_the_readmes_compose_command_sets_every_variable() -> None:
    readme = (REPO / "README.md").read_text()
    command = next(line for line in readme.splitlines() if "docker compose" in line
                   and "up" in line)
    given = set(re.findall(r"\b([A-Z][A-Z0-9_]*)=", command))
    header = compose_file(_resolved(EXAMPLE)["dev"])
    needed = set(_VARIABLE.findall(header))
    assert given == needed, (sorted(given), sorted(needed))
