"""Issue 21, serving lifecycle: what the API server admits (requests within limits), which
Secrets exist, how KEDA's HPA removes replicas, how pods drain, where object-storage models
and single GPU replicas run, and that vLLM takes every engine setting validate accepts.
Each test reads the objects both real engines render, as the controller that acts on them
sees them."""

from __future__ import annotations

import http.server
import math
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from conftest import render_spec
from modelapi_compile.cli import cli
from vllm_cli import VLLM_DTYPES, VLLM_LORA_RANKS, vllm_serve_parser

Obj = dict[str, Any]

HEADER = """\
apiVersion: modelapi.dev/v1alpha1
kind: ModelStack
metadata:
  name: life
spec:
  namespace: llm
"""

# One spec with every lifecycle case of the issue: a 70B model on 4 GPUs under KEDA
# (Karpenter), an 8B model streamed from s3:// with adapters, a CPU model, Ollama with its
# puller sidecar, a replicated LiteLLM gateway with a metrics key, agents with raised and
# lowered resources, Secrets from External Secrets.
PLATFORM = HEADER + """\
  monitoring:
    enabled: true
    prometheusURL: http://prometheus-operated.monitoring.svc:9090
  cluster:
    gpuNodeLabels: karpenter
  secrets:
    store: {name: vault}
  modelAPIs:
    - name: big
      vllm:
        model: meta-llama/Llama-3.1-70B-Instruct
        servedModelName: llama-70b
        gpu: {count: 4, accelerator: nvidia-h100-80gb}
        startupTimeout: 2h
        autoscaling: {minReplicas: 1, maxReplicas: 3}
        resources: {requests: {cpu: "32"}}
    - name: solo
      vllm:
        model: meta-llama/Llama-3.1-8B-Instruct
        servedModelName: llama-8b
        gpu: {count: 1, accelerator: nvidia-l4}
    - name: streamed
      vllm:
        model: s3://models/llama-3.1-8b
        servedModelName: llama-8b-s3
        gpu: {count: 1, accelerator: nvidia-l4}
        autoscaling: {minReplicas: 0, maxReplicas: 2, scaleDownStabilizationSeconds: 900}
        doNotDisrupt: false
        loraAdapters: [{name: sql, source: example-org/sql-lora}]
        engine: {maxLoraRank: 32}
    - name: cached
      vllm:
        model: s3://models/qwen-7b
        servedModelName: qwen-7b
        gpu: {count: 0}
        cache: {size: 40Gi}
    - name: ollama
      ollama:
        models: [smollm2:135m]
        resources: {limits: {memory: 2Gi}}
    - name: gateway
      litellm:
        replicas: 3
        masterKeySecret: {name: litellm, key: master-key}
        metricsKeySecret: {name: litellm-metrics, key: key}
        databaseUrlSecret: {name: litellm-db, key: url}
        database: {host: postgres.db.svc, port: 5432}
        router:
          timeout: 900
          redis: {host: redis.cache.svc, port: 6379}
        models:
          - {name: llama-70b, backend: big}
          - {name: llama-8b, backend: solo, params: {stream_timeout: 1200}}
          - {name: sql, backend: streamed}
          - {name: qwen-7b, backend: cached}
          - {name: smollm2, backend: ollama, model: "smollm2:135m"}
  agents:
    - name: helper
      image: ghcr.io/example/helper:1.0.0
      modelAPI: gateway
      model: llama-70b
      apiKeySecret: {name: helper-key, key: key}
      resources: {requests: {memory: 1Gi}, limits: {cpu: 50m}}
      terminationGracePeriodSeconds: 5
"""


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory, helm: Any, kustomize: Any
             ) -> dict[str, list[Obj]]:
    rendered = render_spec(PLATFORM, tmp_path_factory.mktemp("life"), helm, kustomize)
    return {engine: envs["default"] for engine, envs in rendered.items()}


def _objects(platform: dict[str, list[Obj]]) -> Iterator[tuple[str, dict[tuple[str, str], Obj]]]:
    for engine, objects in platform.items():
        yield engine, {(o["kind"], o["metadata"]["name"]): o for o in objects}


def _pod(objs: dict[tuple[str, str], Obj], name: str) -> Obj:
    for kind in ("Deployment", "StatefulSet"):
        if (kind, name) in objs:
            pod: Obj = objs[(kind, name)]["spec"]["template"]["spec"]
            return pod
    raise KeyError(name)


def _validate(text: str, tmp_path: Path) -> Any:
    spec = tmp_path / "spec.yaml"
    spec.write_text(text)
    return CliRunner().invoke(cli, ["validate", "-f", str(spec)])


# --- 1 requests never exceed limits ----------------------------------------------------------

_SUFFIX = {"m": Decimal("1e-3"), "": Decimal(1), "k": Decimal("1e3"), "M": Decimal("1e6"),
           "G": Decimal("1e9"), "T": Decimal("1e12"), "Ki": Decimal(1024),
           "Mi": Decimal(1024) ** 2, "Gi": Decimal(1024) ** 3, "Ti": Decimal(1024) ** 4}


def _amount(quantity: str) -> Decimal:
    """Kubernetes' quantity, as the API server compares them (test-side, independent)."""
    number = quantity.rstrip("kmMGTi")
    return Decimal(number) * _SUFFIX[quantity[len(number):]]


def _containers(pod: Obj) -> list[Obj]:
    return [*pod.get("initContainers", []), *pod["containers"]]


def test_no_container_requests_more_than_its_limit(platform: dict[str, list[Obj]]) -> None:
    """The API server's rule (ValidateResourceRequirements): every request of every
    container, init containers and sidecars included, is at most its limit."""
    checked: set[str] = set()
    for _, objs in _objects(platform):
        for (kind, _name), obj in objs.items():
            if kind not in ("Deployment", "StatefulSet"):
                continue
            for container in _containers(obj["spec"]["template"]["spec"]):
                requests = container["resources"].get("requests", {})
                limits = container["resources"].get("limits", {})
                for resource, request in requests.items():
                    if resource in limits:
                        assert _amount(request) <= _amount(limits[resource]), (
                            obj["metadata"]["name"], container["name"], resource)
                        checked.add(container["name"])
    # every workload kind, the Ollama puller sidecar included
    assert checked == {"vllm", "litellm", "ollama", "model-puller", "agent"}


def test_resources_derive_from_what_the_spec_sets(platform: dict[str, list[Obj]]) -> None:
    for _, objs in _objects(platform):
        big = _pod(objs, "life-big")["containers"][0]["resources"]
        assert big["requests"]["cpu"] == "32" and _amount(big["limits"]["cpu"]) >= 32
        helper = _pod(objs, "life-helper")["containers"][0]["resources"]
        assert helper["limits"]["cpu"] == "50m" and helper["requests"]["cpu"] == "50m"
        ollama = _pod(objs, "life-ollama")["containers"][0]["resources"]
        assert ollama["requests"]["memory"] == "2Gi"


def test_vllm_defaults_follow_gpus_and_model_size(platform: dict[str, list[Obj]]) -> None:
    for _, objs in _objects(platform):
        solo = _pod(objs, "life-solo")["containers"][0]["resources"]["requests"]
        # vLLM: at least 2 + N physical cores (2 vCPUs each) for N GPUs
        assert _amount(solo["cpu"]) >= 2 * (2 + 1)
        # an 8B model's 16-bit weights (~15 GiB) fit in the host memory it loads through
        assert _amount(solo["memory"]) >= Decimal(8e9 * 2)
        big = objs[("StatefulSet", "life-big")] if ("StatefulSet", "life-big") in objs \
            else objs[("Deployment", "life-big")]
        memory = big["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"][
            "memory"]
        assert _amount(memory) >= Decimal(70e9 * 2)  # a 70B model's weights


def test_a_request_above_its_limit_is_refused_at_its_line(tmp_path: Path) -> None:
    text = HEADER + """\
  agents:
    - name: helper
      image: ghcr.io/example/helper:1.0.0
      modelAPI: openai
      model: gpt-4o
      resources:
        requests: {cpu: "4"}
        limits: {cpu: "2"}
  modelAPIs:
    - name: openai
      external: {url: "https://api.openai.com/v1", models: [gpt-4o]}
"""
    result = _validate(text, tmp_path)
    assert result.exit_code == 1 and "Traceback" not in result.output
    line = next(i for i, row in enumerate(text.splitlines(), 1) if "requests: {cpu" in row)
    assert f"spec.yaml:{line}:" in result.output
    assert "spec.agents[0].resources.requests.cpu" in result.output
    assert "raise resources.limits.cpu" in result.output


# --- 3 every Secret the output reads exists ---------------------------------------------------


def _secret_reads(obj: Obj) -> Iterator[tuple[str, str]]:
    """(Secret, key) pairs an object makes a controller or the kubelet read."""
    if obj["kind"] == "ServiceMonitor":
        for endpoint in obj["spec"]["endpoints"]:
            credentials = (endpoint.get("authorization") or {}).get("credentials")
            if credentials:
                yield credentials["name"], credentials["key"]
    if obj["kind"] == "TriggerAuthentication":  # KEDA's operator reads them
        for ref in obj["spec"].get("secretTargetRef", []):
            yield ref["name"], ref["key"]
    if obj["kind"] in ("Deployment", "StatefulSet"):
        pod = obj["spec"]["template"]["spec"]
        for container in _containers(pod):
            for var in container.get("env", []):
                ref = (var.get("valueFrom") or {}).get("secretKeyRef")
                if ref:
                    yield ref["name"], ref["key"]
            for source in container.get("envFrom", []):
                assert "secretRef" not in source, "every key read is named"
        for volume in pod.get("volumes", []):
            for item in (volume.get("secret") or {}).get("items", []):
                yield volume["secret"]["secretName"], item["key"]


def test_every_secret_read_has_its_external_secret(platform: dict[str, list[Obj]]) -> None:
    for _, objs in _objects(platform):
        made = {(o["spec"]["target"]["name"], d["secretKey"])
                for o in objs.values() if o["kind"] == "ExternalSecret" for d in o["spec"]["data"]}
        reads = {pair for obj in objs.values() for pair in _secret_reads(obj)}
        assert ("litellm-metrics", "key") in reads  # the ServiceMonitor's bearer token
        assert reads <= made, reads - made


def test_prometheus_never_gets_the_master_key(tmp_path: Path, helm: Any,
                                              kustomize: Any) -> None:
    text = PLATFORM.replace("        metricsKeySecret: {name: litellm-metrics, key: key}\n", "")
    for objects in render_spec(text, tmp_path, helm, kustomize).values():
        objs = {(o["kind"], o["metadata"]["name"]): o for o in objects["default"]}
        monitor = objs[("ServiceMonitor", "life-gateway")]["spec"]["endpoints"][0]
        assert "authorization" not in monitor  # /metrics open, not checked with the master key
        config = yaml.safe_load(objs[("ConfigMap", "life-gateway-config")]["data"][
            "config.yaml"])
        # said explicitly: the pinned LiteLLM (1.90.6) asks for a key by default
        assert config["litellm_settings"]["require_auth_for_metrics_endpoint"] is False
        # only the scrapers' policy admits other namespaces to the proxy's port
        metrics = objs[("NetworkPolicy", "life-metrics")]["spec"]["ingress"][0]["from"]
        assert metrics == [{"namespaceSelector": {"matchLabels": {
            "kubernetes.io/metadata.name": "monitoring"}}}]


def test_an_exposed_open_metrics_endpoint_is_warned_about(tmp_path: Path) -> None:
    text = PLATFORM.replace(
        "        metricsKeySecret: {name: litellm-metrics, key: key}\n",
        "        expose: {host: llm.example.com, gateway: {name: gw, namespace: gw},\n"
        "                 fromNamespace: envoy-gateway-system}\n")
    result = _validate(text, tmp_path)
    assert result.exit_code == 0, result.output
    assert "warning:" in result.output and "metricsKeySecret" in result.output
    assert "spec.modelAPIs[5].litellm.expose" in result.output


# --- 5 scale-in ------------------------------------------------------------------------------


def _hpa_replicas(scaled_object: Obj, queue: list[float], current: int, step: int) -> list[int]:
    """The replica count KEDA's HPA keeps over time, sampled every `step` seconds, for a
    queue of `queue[i]` waiting requests at sample i (autoscaling/v2's algorithm: desired
    replicas from the AverageValue target, the highest recommendation of the stabilization
    window on the way down, at most `value` pods removed per `periodSeconds`)."""
    spec = scaled_object["spec"]
    behavior = spec.get("advanced", {}).get("horizontalPodAutoscalerConfig", {}).get(
        "behavior", {}).get("scaleDown", {})
    window = behavior.get("stabilizationWindowSeconds", 300)
    policy = (behavior.get("policies") or [{"type": "Pods", "value": 100, "periodSeconds": 15}])[0]
    threshold = float(spec["triggers"][0]["metadata"]["threshold"])
    recommendations: list[tuple[int, int]] = []
    removals: list[tuple[int, int]] = []
    counts = []
    for i, waiting in enumerate(queue):
        now = i * step
        desired = max(spec["minReplicaCount"], min(spec["maxReplicaCount"],
                                                   math.ceil(waiting / threshold)))
        recommendations.append((now, desired))
        if desired >= current:
            current = desired
        else:
            stabilized = max(r for t, r in recommendations if t > now - window)
            removed = sum(n for t, n in removals if t > now - policy["periodSeconds"])
            allowed = current - max(0, policy["value"] - removed)
            lower = max(stabilized, allowed)
            if lower < current:
                removals.append((now, current - lower))
                current = lower
        counts.append(current)
    return counts


def test_scale_in_waits_as_long_as_a_replica_takes_to_load(
        platform: dict[str, list[Obj]]) -> None:
    for _, objs in _objects(platform):
        scaled = objs[("ScaledObject", "life-big")]
        # KEDA applies cooldownPeriod only to the step to zero; with minReplicaCount >= 1
        # the HPA removes replicas, here after a quiet window as long as the 2h startup
        # budget allows (3600 s, the HPA's limit), one replica at a time
        step = 60
        burst = [15.0] * 5 + [0.0] * 200
        counts = _hpa_replicas(scaled, burst, current=1, step=step)
        assert max(counts) == 3
        first_drop = next(i for i, n in enumerate(counts) if i > 5 and n < 3)
        assert (first_drop - 4) * step >= 3600
        assert counts[first_drop] == 2  # one replica at a time
        # the spec's own window wins
        window = objs[("ScaledObject", "life-streamed")]["spec"]["advanced"][
            "horizontalPodAutoscalerConfig"]["behavior"]["scaleDown"]
        assert window["stabilizationWindowSeconds"] == 900


def test_settings_without_effect_are_warned_about(tmp_path: Path) -> None:
    text = PLATFORM.replace("autoscaling: {minReplicas: 1, maxReplicas: 3}",
                            "autoscaling: {minReplicas: 1, maxReplicas: 3, cooldownPeriod: 600,"
                            " activationWaitingRequests: 2}")
    result = _validate(text, tmp_path)
    assert result.exit_code == 0, result.output
    warned = [row for row in result.output.splitlines() if "warning:" in row]
    assert any("autoscaling.cooldownPeriod" in row and "no effect" in row for row in warned)
    assert any("autoscaling.activationWaitingRequests" in row for row in warned)


# --- 6 graceful drain ------------------------------------------------------------------------


class _Metrics(http.server.BaseHTTPRequestHandler):
    busy_until = 0.0

    def do_GET(self) -> None:
        running = 1 if time.monotonic() < type(self).busy_until else 0
        body = ("# HELP vllm:num_requests_running Running requests.\n"
                f'vllm:num_requests_running{{model_name="m"}} {running}.0\n'
                'vllm:num_requests_waiting{model_name="m"} 0.0\n').encode()
        self.send_response(200)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        del args


def _run_pre_stop(command: list[str], budget: str, url: str) -> float:
    """Run the rendered preStop command (its script as rendered) with a short budget and
    no endpoint delay, against `url`; the seconds it took."""
    assert command[:2] == ["python3", "-c"]
    start = time.monotonic()
    subprocess.run([sys.executable, "-c", command[2], budget, "0", url], check=True,
                   timeout=30)
    return time.monotonic() - start


def test_vllm_drains_running_requests_before_sigterm(platform: dict[str, list[Obj]]) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Metrics)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/metrics"
    try:
        for _, objs in _objects(platform):
            pod = _pod(objs, "life-solo")
            command = pod["containers"][0]["lifecycle"]["preStop"]["exec"]["command"]
            # the budget the pod gives it covers the longest request LiteLLM allows
            # (stream_timeout 1200 of the route to it) plus the endpoint delay
            assert int(command[3]) >= 1200 + int(command[4])
            assert pod["terminationGracePeriodSeconds"] > int(command[3])
            _Metrics.busy_until = time.monotonic() + 2  # a request still running for 2 s
            assert 1.5 <= _run_pre_stop(command, "20", url) < 10
            _Metrics.busy_until = time.monotonic() + 60  # never idle: the budget ends it
            assert 2.5 <= _run_pre_stop(command, "3", url) < 10
    finally:
        server.shutdown()


def test_litellm_and_pass_through_grace_periods(platform: dict[str, list[Obj]]) -> None:
    for _, objs in _objects(platform):
        gateway = _pod(objs, "life-gateway")
        sleep = gateway["containers"][0]["lifecycle"]["preStop"]["sleep"]["seconds"]
        # uvicorn finishes running requests after SIGTERM: the grace covers the router's
        # timeout after the endpoints stopped sending
        assert gateway["terminationGracePeriodSeconds"] >= sleep + 900
        assert _pod(objs, "life-helper")["terminationGracePeriodSeconds"] == 5


def test_a_grace_period_that_cuts_requests_is_warned_about(tmp_path: Path) -> None:
    text = PLATFORM.replace("        servedModelName: llama-8b\n",
                            "        servedModelName: llama-8b\n"
                            "        terminationGracePeriodSeconds: 120\n", 1)
    result = _validate(text, tmp_path)
    assert result.exit_code == 0, result.output
    assert "terminationGracePeriodSeconds" in result.output and "cut" in result.output


# --- 8 object storage without zone pinning ---------------------------------------------------


def test_object_storage_gets_no_claim_unless_cache_is_set(
        platform: dict[str, list[Obj]]) -> None:
    for _, objs in _objects(platform):
        claims = {name for kind, name in objs if kind == "PersistentVolumeClaim"}
        assert "life-streamed-cache" not in claims
        assert ("Deployment", "life-streamed") in objs  # no StatefulSet with claim templates
        pod = _pod(objs, "life-streamed")
        cache = next(v for v in pod["volumes"] if v["name"] == "model-cache")
        assert "emptyDir" in cache
        assert objs[("Deployment", "life-streamed")]["spec"]["strategy"]["type"] \
            == "RollingUpdate"
        assert "life-cached-cache" in claims  # cache written in the spec: a claim


def test_a_shared_pvc_source_is_warned_about_at_its_line(tmp_path: Path) -> None:
    text = HEADER + """\
  modelAPIs:
    - name: llama
      vllm:
        model: pvc://models/llama-8b
        servedModelName: llama-8b
        replicas: 2
"""
    result = _validate(text, tmp_path)
    assert result.exit_code == 0, result.output
    assert "spec.yaml:10:16: warning:" in result.output
    assert "ReadOnlyMany or ReadWriteMany" in result.output


# --- 9 vLLM refuses nothing validate accepted ------------------------------------------------

ENGINES = [{"maxLoraRank": rank} for rank in range(1, 600)] + [
    {"maxLoras": n} for n in (0, 1, 4)] + [
    {"dtype": d} for d in (*VLLM_DTYPES, "fp8", "int8")] + [
    {"gpuMemoryUtilization": u} for u in (0.0, 0.05, 0.9, 1.0, 1.01)] + [
    {"maxModelLen": n} for n in (0, 1, 4096)]


def test_vllm_takes_every_engine_setting_validate_accepts() -> None:
    from pydantic import ValidationError

    from modelapi_compile.resolve.vllm import vllm_args
    from modelapi_compile.spec.backends import Vllm

    accepted = 0
    for engine in ENGINES:
        try:
            vllm = Vllm.model_validate({"model": "org/m", "engine": engine,
                                        "loraAdapters": [{"name": "a", "source": "org/a"}]})
        except ValidationError:
            continue
        accepted += 1
        vllm_serve_parser().parse_args(vllm_args(vllm))  # raises on what vLLM refuses
    assert accepted == len(VLLM_LORA_RANKS) + 2 + len(VLLM_DTYPES) + 3 + 2


def test_an_unsupported_lora_rank_is_refused_at_its_line(tmp_path: Path) -> None:
    text = PLATFORM.replace("maxLoraRank: 32", "maxLoraRank: 24")
    result = _validate(text, tmp_path)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "engine.maxLoraRank" in result.output and "use 32" in result.output


# --- 10 disruption and spread ----------------------------------------------------------------


def test_replicas_spread_across_zones(platform: dict[str, list[Obj]]) -> None:
    for _, objs in _objects(platform):
        keys = {c["topologyKey"] for c in _pod(objs, "life-gateway")["topologySpreadConstraints"]}
        assert "topology.kubernetes.io/zone" in keys


def test_single_gpu_replicas_under_karpenter_are_not_disrupted(
        platform: dict[str, list[Obj]]) -> None:
    def annotations(objs: dict[tuple[str, str], Obj], name: str) -> dict[str, str]:
        for kind in ("Deployment", "StatefulSet"):
            if (kind, name) in objs:
                found: dict[str, str] = objs[(kind, name)]["spec"]["template"]["metadata"].get(
                    "annotations", {})
                return found
        raise KeyError(name)

    for _, objs in _objects(platform):
        assert annotations(objs, "life-solo").get("karpenter.sh/do-not-disrupt") == "true"
        assert "karpenter.sh/do-not-disrupt" not in annotations(objs, "life-big")  # 3 replicas
        assert "karpenter.sh/do-not-disrupt" not in annotations(objs, "life-streamed")  # opt-out
        assert "karpenter.sh/do-not-disrupt" not in annotations(objs, "life-cached")  # no GPU


def test_a_statefulset_is_governed_by_a_headless_service(
        platform: dict[str, list[Obj]]) -> None:
    seen = 0
    for _, objs in _objects(platform):
        for (kind, _), obj in objs.items():
            if kind != "StatefulSet":
                continue
            service = objs[("Service", obj["spec"]["serviceName"])]["spec"]
            assert service["clusterIP"] == "None"
            assert service["selector"] == obj["spec"]["selector"]["matchLabels"]
            seen += 1
    assert seen == 2  # life-big (a claim per replica) on both engines


def _objects_of(text: str, tmp_path: Path) -> dict[tuple[str, str], Obj]:
    from modelapi_compile.pipeline import compile_spec

    spec = tmp_path / "spec.yaml"
    spec.write_text(text)
    compiled = compile_spec(str(spec), use_helm=False, keep_objects=True)
    return {(o["kind"], o["metadata"]["name"]): o for o in compiled.objects["default"]}


def test_pre_stop_hooks_the_api_server_admits(tmp_path: Path) -> None:
    """The sleep action is on from Kubernetes 1.30 (an exec of sleep before), and a 0 s
    sleep is refused before 1.32: a grace period with no time to drain gets no hook."""
    text = HEADER + """\
  kubernetesVersion: "1.29.0"
  modelAPIs:
    - name: gateway
      litellm:
        models: [{name: gpt-4o, url: "https://api.openai.com/v1", provider: openai}]
    - name: quick
      litellm:
        terminationGracePeriodSeconds: 20
        models: [{name: gpt-4o, url: "https://api.openai.com/v1", provider: openai}]
"""
    objs = _objects_of(text, tmp_path)
    gateway = _pod(objs, "life-gateway")["containers"][0]
    assert gateway["lifecycle"]["preStop"] == {"exec": {"command": ["sleep", "10"]}}
    quick = _pod(objs, "life-quick")
    assert quick["terminationGracePeriodSeconds"] == 20 and "lifecycle" not in quick[
        "containers"][0]
