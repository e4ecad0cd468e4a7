"""Scale to zero as KEDA sees it: the wake-up query of a sleeping vLLM, exactly as Helm and
Kustomize render it, evaluated by Prometheus' own engine (`promtool test rules`) on
synthetic LiteLLM series. KEDA leaves zero replicas when the query's value exceeds the
trigger's activationThreshold; the query stands in an alerting rule that fires exactly then.

LiteLLM's request counter has a series per deployment, key and pod, each created by its
first call, and increase() never counts a series' first sample: the first calls of a new
agent, proxy pod or rollout must still wake the model, within one polling interval, and a
quiet period must let it sleep."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import ENGINES, go_tool, render_spec

NAMESPACE = "llm"
SCRAPE = 15  # seconds between samples of the synthetic series (a Prometheus scrape interval)
SPEC = """\
apiVersion: modelapi.dev/v1alpha1
kind: ModelStack
metadata: {{name: wake}}
spec:
  namespace: {namespace}
  monitoring: {{enabled: true, prometheusURL: "http://prometheus-operated.monitoring.svc:9090"}}
  modelAPIs:
    - name: small
      vllm:
        model: Qwen/Qwen2.5-0.5B-Instruct
        servedModelName: qwen-0.5b
        gpu: {{count: 1}}
        cache: {{accessMode: ReadWriteMany}}  # one Deployment, whose deadline is its budget
        startupTimeout: 45m
        autoscaling: {{minReplicas: 0, maxReplicas: 2, pollingInterval: {polling}}}
    - name: gateway
      litellm:
        masterKeySecret: {{name: litellm-master-key, key: master-key}}
        models:
          - {{name: small, backend: small, model: qwen-0.5b}}
"""


def _sleeping_model(helm: Any, kustomize: Any, folder: Path, polling: int
                    ) -> list[tuple[dict[str, Any], str, dict[str, Any]]]:
    """Per engine: the ScaledObject of the sleeping model, the api_base LiteLLM's
    config.yaml calls it at (what LiteLLM labels its counter with), and its Deployment."""
    rendered = render_spec(SPEC.format(namespace=NAMESPACE, polling=polling), folder, helm,
                           kustomize)
    found = []
    for engine in ENGINES:
        objects = {(o["kind"], o["metadata"]["name"]): o
                   for o in rendered[engine]["default"]}
        config = yaml.safe_load(objects[("ConfigMap", "wake-gateway-config")]["data"][
            "config.yaml"])
        api_base = next(m["litellm_params"]["api_base"] for m in config["model_list"]
                        if m["model_name"] == "small")
        found.append((objects[("ScaledObject", "wake-small")], api_base,
                      objects[("Deployment", "wake-small")]))
    return found


def _series(api_base: str, pod: str, key: str) -> str:
    return ("litellm_deployment_total_requests_total{"
            f'namespace="{NAMESPACE}",pod="{pod}",api_base="{api_base}",'
            f'hashed_api_key="{key}",litellm_model_name="qwen-0.5b"}}')


def _wake_rule(name: str, query: str, threshold: str) -> dict[str, Any]:
    return {"alert": name, "expr": f"({query}) > {threshold}"}


def _run_promtool(folder: Path, rules: list[dict[str, Any]], test: dict[str, Any]) -> None:
    (folder / "rules.yaml").write_text(yaml.safe_dump(
        {"groups": [{"name": "wake", "interval": f"{SCRAPE}s", "rules": rules}]}))
    (folder / "test.yaml").write_text(yaml.safe_dump({
        "rule_files": ["rules.yaml"], "evaluation_interval": f"{SCRAPE}s", "tests": [test]}))
    result = subprocess.run([go_tool("promtool"), "test", "rules", "test.yaml"], cwd=folder,
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def _firing(eval_seconds: int, alert: str, fires: bool) -> dict[str, Any]:
    return {"eval_time": f"{eval_seconds}s", "alertname": alert,
            "exp_alerts": [{"exp_labels": {}}] if fires else []}


@pytest.mark.parametrize("polling", [30, 300])
def test_a_new_series_wakes_the_model_and_a_quiet_period_lets_it_sleep(
        helm: Any, kustomize: Any, tmp_path: Path, polling: int) -> None:
    for index, (scaled, api_base, _) in enumerate(
            _sleeping_model(helm, kustomize, tmp_path / "build", polling)):
        spec = scaled["spec"]
        assert spec["minReplicaCount"] == 0 and spec["pollingInterval"] == polling
        wake = next(t for t in spec["triggers"] if t.get("name") == "litellm-calls")
        query, threshold = wake["metadata"]["query"], wake["metadata"]["activationThreshold"]
        window = max(120, 2 * polling)
        # an agent whose calls all lie further back than the window; then a new agent's
        # first call, scraped with the value 3
        appears = window + 2 * SCRAPE
        quiet = appears + window + SCRAPE  # the window has passed: nothing new since
        end = quiet + 10 * SCRAPE
        samples, blanks = end // SCRAPE, appears // SCRAPE
        old_key = f"5x{samples}"
        new_key = f"_x{blanks} 3x{samples - blanks}"
        rules = [_wake_rule("Wake", query, threshold),
                 # what increase() alone sees: the new series never wakes it
                 _wake_rule("IncreaseOnly",
                            query.split(" or vector(0))")[0].removeprefix("("), threshold)]
        wakes_within_a_poll = [_firing(appears + step, "Wake", True)
                               for step in range(0, polling + 1, SCRAPE)]
        sleeps = [_firing(t, "Wake", False) for t in range(quiet, end + 1, SCRAPE)]
        folder = tmp_path / str(index)
        folder.mkdir()
        _run_promtool(folder, rules, {
            "interval": f"{SCRAPE}s",
            "input_series": [
                {"series": _series(api_base, "gateway-a", "agent-1"), "values": old_key},
                {"series": _series(api_base, "gateway-a", "agent-2"), "values": new_key},
            ],
            "alert_rule_test": [
                _firing(appears - SCRAPE, "Wake", False),  # asleep before the call
                *wakes_within_a_poll, *sleeps,
                *(_firing(t, "IncreaseOnly", False) for t in range(0, end + 1, SCRAPE)),
            ],
            # quiet: the query is 0, not empty (KEDA reads no series as 0 only by default)
            "promql_expr_test": [{"expr": query, "eval_time": f"{end}s",
                                  "exp_samples": [{"labels": "{}", "value": 0}]}],
        })


def test_calls_on_a_known_series_and_a_new_proxy_pod_wake_it(
        helm: Any, kustomize: Any, tmp_path: Path) -> None:
    """An agent that called before calls again (increase()), and a rollout's new proxy pod
    makes the first call of its own series: each wakes the model on its own."""
    scaled, api_base, _ = _sleeping_model(helm, kustomize, tmp_path / "build", 30)[0]
    wake = next(t for t in scaled["spec"]["triggers"] if t.get("name") == "litellm-calls")
    query, threshold = wake["metadata"]["query"], wake["metadata"]["activationThreshold"]
    folder = tmp_path / "promtool"
    folder.mkdir()
    _run_promtool(folder, [_wake_rule("Wake", query, threshold)], {
        "interval": f"{SCRAPE}s",
        "input_series": [
            # calls again at sample 20 (300 s), long after its last ones
            {"series": _series(api_base, "gateway-a", "agent-1"), "values": "4x19 5x20"},
            # a new proxy pod's first call, scraped at sample 60 (900 s)
            {"series": _series(api_base, "gateway-b", "agent-1"), "values": "_x60 1x10"},
            # another model's calls never wake this one
            {"series": _series("http://wake-other:8000", "gateway-a", "agent-1"),
             "values": "0+1x70"},
        ],
        "alert_rule_test": [
            _firing(285, "Wake", False), _firing(300, "Wake", True), _firing(330, "Wake", True),
            _firing(600, "Wake", False),
            _firing(885, "Wake", False), _firing(900, "Wake", True), _firing(930, "Wake", True),
        ],
    })


def test_a_new_scaled_object_waits_for_the_first_start_before_sleeping(
        helm: Any, kustomize: Any, tmp_path: Path) -> None:
    """KEDA scales a target that was never active to zero once initialCooldownPeriod has
    passed since the ScaledObject's creation (scale_scaledobjects.go, scaleToZeroOrIdle):
    that is never before the pod could have started (its progress deadline: image pull and
    the 45m startup budget)."""
    for scaled, _, deployment in _sleeping_model(helm, kustomize, tmp_path, 30):
        first_start = deployment["spec"]["progressDeadlineSeconds"]
        assert first_start >= 45 * 60
        assert scaled["spec"]["initialCooldownPeriod"] >= first_start
