"""What each backend's objects must hold, asserted on what real Helm renders."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from cluster_models import NetworkPolicies, Pod, pod_of, workloads
from conftest import CASES, REPO
from modelapi_compile.cli import cli
from modelapi_compile.verify.engines import render_chart

PROD = CASES / "valid" / "production-gpu.yaml"
EXAMPLE = REPO / "examples" / "agentic.yaml"


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory, helm: Any
             ) -> dict[tuple[str, str], dict[tuple[str, str], Any]]:
    objects: dict[tuple[str, str], dict[tuple[str, str], Any]] = {}
    for spec, stack, envs in ((PROD, "prodai", {"dev": "llm-dev", "prod": "llm"}),
                              (EXAMPLE, "agentic", {"dev": "agentic-dev", "prod": "agentic"})):
        out = tmp_path_factory.mktemp(stack)
        result = CliRunner().invoke(cli, ["build", "-f", str(spec), "-o", str(out)])
        assert result.exit_code == 0, result.output
        for env, namespace in envs.items():
            found = render_chart(helm, out / "charts" / stack, env, namespace)
            objects[(stack, env)] = {(o["kind"], o["metadata"]["name"]): o for o in found}
    return objects


def _workload(objs: dict[tuple[str, str], Any], name: str) -> dict[str, Any]:
    found = objs.get(("Deployment", name)) or objs[("StatefulSet", name)]
    assert isinstance(found, dict)
    return found


def _container(objs: dict[tuple[str, str], Any], name: str) -> dict[str, Any]:
    return _workload(objs, name)["spec"]["template"]["spec"]["containers"][0]


def _pod(objs: dict[tuple[str, str], Any], name: str) -> dict[str, Any]:
    return _workload(objs, name)["spec"]["template"]["spec"]


def test_vllm_on_four_gpus(rendered: Any) -> None:
    objs = rendered[("prodai", "prod")]
    container = _container(objs, "prodai-llama70b")
    args = container["args"]
    assert container["command"] == ["vllm", "serve"]
    assert args[0] == "meta-llama/Llama-3.1-70B-Instruct"
    assert args[args.index("--served-model-name") + 1] == "llama-3.1-70b"
    assert args[args.index("--tensor-parallel-size") + 1] == "4"
    assert args[args.index("--max-model-len") + 1] == "8192"
    assert args[args.index("--gpu-memory-utilization") + 1] == "0.92"
    assert args[-1] == "--enable-prefix-caching"
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "4"
    assert container["resources"]["requests"]["nvidia.com/gpu"] == "4"
    pod = _pod(objs, "prodai-llama70b")
    assert pod["nodeSelector"] == {"cloud.google.com/gke-accelerator": "nvidia-h100-80gb"}
    assert pod["tolerations"] == [{"effect": "NoSchedule", "key": "nvidia.com/gpu",
                                   "operator": "Exists"}]
    assert pod["runtimeClassName"] == "nvidia"
    shm = next(v for v in pod["volumes"] if v["name"] == "dshm")
    assert shm["emptyDir"] == {"medium": "Memory", "sizeLimit": "16Gi"}  # 4 GPUs x 4Gi
    startup = container["startupProbe"]
    assert startup["httpGet"]["path"] == "/health"
    assert startup["periodSeconds"] * startup["failureThreshold"] == 5400  # 1h30m
    assert "initialDelaySeconds" not in container["livenessProbe"]
    # two replicas, each with its own ReadWriteOnce cache: replaced one at a time
    assert objs[("StatefulSet", "prodai-llama70b")]["spec"]["updateStrategy"] == {
        "type": "RollingUpdate"}
    env = {e["name"]: e for e in container["env"]}
    assert env["HF_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "hf-token", "key": "token"}
    assert env["VLLM_API_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "vllm-key"
    assert env["HF_HOME"]["value"].startswith("/models")
    claim = objs[("StatefulSet", "prodai-llama70b")]["spec"]["volumeClaimTemplates"][0]
    assert claim["spec"]["storageClassName"] == "premium-rwo"
    assert objs[("ServiceMonitor", "prodai-llama70b")]["spec"]["endpoints"][0]["path"] \
        == "/metrics"


def test_quantized_model_on_existing_rwx_cache(rendered: Any) -> None:
    objs = rendered[("prodai", "prod")]
    args = _container(objs, "prodai-qwen-awq")["args"]
    assert args[args.index("--quantization") + 1] == "awq"
    assert "--tensor-parallel-size" not in args
    volume = next(v for v in _pod(objs, "prodai-qwen-awq")["volumes"]
                  if v["name"] == "model-cache")
    assert volume["persistentVolumeClaim"]["claimName"] == "shared-models"
    assert ("PersistentVolumeClaim", "prodai-qwen-awq-cache") not in objs


def test_cpu_mode_in_dev(rendered: Any) -> None:
    objs = rendered[("prodai", "dev")]
    container = _container(objs, "prodai-llama70b")
    assert "vllm-cpu" in container["image"] and container["image"].startswith("mirror.internal")
    assert "nvidia.com/gpu" not in container["resources"]["limits"]
    assert "tolerations" not in _pod(objs, "prodai-llama70b")
    assert "--gpu-memory-utilization" not in container["args"]
    assert ("Deployment", "prodai-qwen-awq") not in objs  # deleted by the dev patch


def test_litellm_config_routes_and_secrets(rendered: Any) -> None:
    objs = rendered[("prodai", "prod")]
    config = yaml.safe_load(objs[("ConfigMap", "prodai-router-config")]["data"]["config.yaml"])
    routes = {(m["model_name"], m["litellm_params"]["model"]): m["litellm_params"]
              for m in config["model_list"]}
    assert routes[("big", "hosted_vllm/llama-3.1-70b")]["api_base"] \
        == "http://prodai-llama70b:8000/v1"
    assert routes[("big", "hosted_vllm/llama-3.1-70b")]["api_key"] == \
        "os.environ/LLAMA70B_API_KEY"
    assert routes[("small", "openai/qwen-backup")]["api_base"] == \
        "https://backup.example.com:8443/v1"
    assert routes[("claude", "openai/claude-sonnet")]["api_key"] == \
        "os.environ/ANTHROPIC_API_KEY"
    assert config["router_settings"]["fallbacks"] == [{"big": ["claude", "small"]},
                                                      {"small": ["claude"]}]
    assert config["general_settings"]["master_key"] == "os.environ/LITELLM_MASTER_KEY"
    assert "sk-" not in objs[("ConfigMap", "prodai-router-config")]["data"]["config.yaml"]
    container = _container(objs, "prodai-router")
    assert container["readinessProbe"]["httpGet"]["path"] == "/health/readiness"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health/liveliness"
    assert "--config" in container["args"]
    env = {e["name"] for e in container["env"]}
    assert {"LITELLM_MASTER_KEY", "LLAMA70B_API_KEY", "ANTHROPIC_API_KEY",
            "MODEL_2_API_KEY"} <= env
    annotations = objs[("Deployment", "prodai-router")]["spec"]["template"]["metadata"][
        "annotations"]
    assert len(annotations["checksum/config"]) == 64
    assert objs[("PodDisruptionBudget", "prodai-router")]["spec"]["maxUnavailable"] == 1


def test_ollama_pulls_models_without_crash_looping(rendered: Any) -> None:
    objs = rendered[("agentic", "prod")]
    pod = _pod(objs, "agentic-ollama")
    server, puller = pod["containers"]
    env = {e["name"]: e.get("value") for e in server["env"]}
    assert env["OLLAMA_HOST"] == "0.0.0.0:11434" and env["OLLAMA_KEEP_ALIVE"] == "24h"
    assert server["readinessProbe"]["httpGet"]["path"] == "/api/tags"
    assert "lifecycle" not in server
    assert puller["args"] == ["pull-models", "smollm2:135m"]
    assert "smollm2" not in puller["command"][2]  # model names are data, not script text
    assert puller["readinessProbe"]["exec"]["command"] == ["test", "-f", "/tmp/models-ready"]
    mount = next(m for m in server["volumeMounts"] if m["name"] == "data")
    assert mount["mountPath"] == "/home/ollama/.ollama"


def test_agents_get_endpoint_env(rendered: Any) -> None:
    objs = rendered[("agentic", "prod")]
    env = {e["name"]: e for e in _container(objs, "agentic-simple-math-agent")["env"]}
    assert env["MODEL_API_URL"]["value"] == "http://agentic-litellm-proxy:4000/v1"
    assert env["MODEL_NAME"]["value"] == "smollm2:135m"
    # its own key, never the proxy's master key (issue 13 item 6)
    assert env["MODEL_API_KEY"]["valueFrom"]["secretKeyRef"] == {
        "name": "simple-math-agent-key", "key": "key"}
    prod = rendered[("prodai", "prod")]
    env = {e["name"]: e for e in _container(prod, "prodai-summarizer")["env"]}
    assert env["MODEL_API_URL"]["value"] == "https://api.anthropic.example/v1"
    assert ("Service", "prodai-summarizer") in prod


def test_every_workload_is_secure_by_default(rendered: Any) -> None:
    for objs in rendered.values():
        for (kind, name), obj in objs.items():
            if kind != "Deployment":
                continue
            pod = obj["spec"]["template"]["spec"]
            assert pod["automountServiceAccountToken"] is False
            assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
            for container in pod["containers"]:
                security = container["securityContext"]
                assert security["allowPrivilegeEscalation"] is False, name
                assert security["capabilities"] == {"drop": ["ALL"]}, name
                assert container["resources"]["requests"], name
                assert "readinessProbe" in container, name
                assert ":latest" not in container["image"]
            assert pod["securityContext"]["runAsNonRoot"] is True, name


def test_network_policies_allow_only_declared_edges(rendered: Any) -> None:
    objs = list(rendered[("agentic", "prod")].values())
    assert rendered[("agentic", "prod")][("NetworkPolicy", "agentic-default-deny")][
        "spec"]["podSelector"] == {}
    policies = NetworkPolicies.of(objs)
    pods = {o["metadata"]["name"]: pod_of(o) for o in workloads(objs)}
    proxy, ollama, vllm = (pods[f"agentic-{n}"] for n in ("litellm-proxy", "ollama",
                                                         "vllm-hosted"))
    tinyllama, math = pods["agentic-tinyllama-agent"], pods["agentic-simple-math-agent"]
    assert policies.connects(proxy, ollama, 11434)
    assert policies.connects(proxy, vllm, 8000)
    assert policies.connects(tinyllama, vllm, 8000)
    assert policies.connects(math, proxy, 4000)
    assert not policies.connects(tinyllama, ollama, 11434)
    assert not policies.connects(math, vllm, 8000)
    assert not policies.connects(ollama, proxy, 4000)
    assert not policies.connects(proxy, vllm, 8001)
    # and its database, a Service of the namespace: any pod there, on Postgres' port only
    database = Pod(proxy.namespace, {"app": "postgres"})
    assert policies.egress_allowed(proxy, database, 5432)
    assert not policies.egress_allowed(proxy, database, 5433)
    assert not policies.egress_allowed(math, database, 5432)


def test_template_command_prints_helm_output(tmp_path: Path, helm: Any) -> None:
    result = CliRunner().invoke(cli, ["template", "-f", str(EXAMPLE), "--env", "dev"])
    assert result.exit_code == 0, result.output
    documents = [d for d in yaml.safe_load_all(result.output) if d]
    assert {d["metadata"]["namespace"] for d in documents} == {"agentic-dev"}
    assert "# Source: agentic/templates/workload.yaml" in result.output
