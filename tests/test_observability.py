"""Issue 26: dashboards and alerts, as Grafana, Prometheus and the cluster see them.

Both real engines render the spec; promtool (the Prometheus release's own checker) parses
every rule and every dashboard query and runs unit tests that fire and resolve each alert on
synthetic series; the PrometheusRule is checked against the operator's strict CRD schema.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from conftest import CASES, go_tool, missing_engine, render_spec
from modelapi_compile.spec.backends import DEFAULT_VLLM_IMAGE

SPEC = CASES / "valid" / "observability.yaml"
Obj = dict[str, Any]
DASHBOARD_LABEL = ("grafana_dashboard", "1")
ALERTS = {"ModelAPINoReadyReplica", "ModelAPIScalingStuck", "ModelAPIScaleFromZeroStuck",
          "ModelAPIKVCacheNearFull", "ModelCacheClaimNearFull", "LiteLLMErrorRateHigh",
          "LiteLLMFallbackRateHigh", "LiteLLMLatencyP99High"}


@pytest.fixture(scope="session")
def promtool() -> str:
    return go_tool("promtool")


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory, helm: Any, kustomize: Any
             ) -> dict[str, dict[str, list[Obj]]]:
    return render_spec(SPEC, tmp_path_factory.mktemp("obs"), helm, kustomize)


def _observability(objects: list[Obj]) -> dict[tuple[str, str], Obj]:
    return {(o["kind"], o["metadata"]["name"]): o for o in objects
            if o["kind"] == "PrometheusRule"
            or (o["kind"] == "ConfigMap"
                and o["metadata"]["labels"].get(DASHBOARD_LABEL[0]) == DASHBOARD_LABEL[1])}


def _prometheus_rules(rendered: dict[str, dict[str, list[Obj]]], env: str) -> list[Obj]:
    return [o for (kind, _), o in sorted(_observability(rendered["helm"][env]).items())
            if kind == "PrometheusRule"]


def _rule(rendered: dict[str, dict[str, list[Obj]]], env: str = "staging") -> Obj:
    """Every PrometheusRule of the environment as one rule file's groups."""
    return {"spec": {"groups": [group for rule in _prometheus_rules(rendered, env)
                                for group in rule["spec"]["groups"]]}}


def _dashboards(objects: list[Obj]) -> list[Obj]:
    return [json.loads(text) for (kind, _), o in sorted(_observability(objects).items())
            if kind == "ConfigMap" for text in o["data"].values()]


def _run(command: list[str], cwd: Path) -> str:
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


# --- rendering ---------------------------------------------------------------------------


def test_helm_and_kustomize_render_the_same_dashboards_and_rules(rendered: Any) -> None:
    for env in ("staging", "prod", "quiet"):
        helm_objects = _observability(rendered["helm"][env])
        assert helm_objects == _observability(rendered["kustomize"][env])
    base = _observability(rendered["helm"]["staging"])
    # one stack dashboard, one per vLLM model, one rule object; none where turned off
    assert sorted(base) == [
        ("ConfigMap", "obs-dashboard"), ("ConfigMap", "obs-nightly-dashboard"),
        ("ConfigMap", "obs-qwen-dashboard"), ("PrometheusRule", "obs-gateway-alerts"),
        ("PrometheusRule", "obs-nightly-alerts"), ("PrometheusRule", "obs-qwen-alerts")]
    assert _observability(rendered["helm"]["quiet"]) == {}
    # one rule object per modelAPI, with the labels Prometheus' ruleSelector picks and the
    # name label that keeps it with its workload in a split overlay
    labels = base[("PrometheusRule", "obs-qwen-alerts")]["metadata"]["labels"]
    assert labels["release"] == "kube-prometheus-stack"
    assert labels["app.kubernetes.io/name"] == "qwen"


def test_the_prometheus_rule_is_valid_against_the_strict_crd(rendered: Any,
                                                              shared_crds: Path) -> None:
    schema = json.loads((shared_crds / "monitoring.coreos.com" / "prometheusrule_v1.json")
                        .read_text())
    for env in ("staging", "prod"):
        for rule in _prometheus_rules(rendered, env):
            jsonschema.validate(rule, schema)


def test_network_policies_still_admit_only_the_monitoring_namespace(rendered: Any) -> None:
    for env in ("staging", "prod", "quiet"):
        policies = [o for o in rendered["helm"][env] if o["kind"] == "NetworkPolicy"]
        metrics = [p for p in policies if p["metadata"]["name"] == "obs-metrics"]
        assert len(metrics) == 1
        assert metrics[0]["spec"]["ingress"] == [{
            "from": [{"namespaceSelector": {"matchLabels": {
                "kubernetes.io/metadata.name": "monitoring"}}}],
            "ports": [{"port": "http", "protocol": "TCP"}]}]
    # dashboards and alerts add no network edge: the policies are those of the quiet env
    def specs(env: str) -> list[Obj]:
        return sorted((json.dumps(o["spec"], sort_keys=True) for o in rendered["helm"][env]
                       if o["kind"] == "NetworkPolicy"), key=str)  # type: ignore[return-value]
    assert specs("staging") == specs("quiet")


# --- alerts with promtool ----------------------------------------------------------------


def _write_rules(rule: Obj, folder: Path) -> Path:
    path = folder / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}, sort_keys=False))
    return path


def test_every_rule_file_passes_promtool_check(rendered: Any, promtool: str,
                                                tmp_path: Path) -> None:
    for env in ("staging", "prod"):
        rule = _rule(rendered, env)
        assert {r["alert"] for g in rule["spec"]["groups"] for r in g["rules"]} == ALERTS
        out = _run([promtool, "check", "rules", str(_write_rules(rule, tmp_path))], tmp_path)
        assert "SUCCESS" in out


def _for_seconds(rule: Obj, alert: str, model: str) -> int:
    """The `for` of one model's alert, in seconds (the startup budget: 2410s, say)."""
    for group in rule["spec"]["groups"]:
        for r in group["rules"]:
            if r["alert"] == alert and r["labels"]["modelapi"] == model:
                match = re.fullmatch(r"(\d+)([sm])", r["for"])
                assert match, r["for"]
                return int(match[1]) * (60 if match[2] == "m" else 1)
    raise AssertionError(f"no {alert} for {model}")


NS = 'namespace="llm"'


def _series(name: str, labels: str, values: str) -> Obj:
    return {"series": f"{name}{{{NS},{labels}}}", "values": values}


def _fired(labels: dict[str, str], summary: str, description: str) -> Obj:
    """One alert as Alertmanager receives it: labels, and annotations as expanded."""
    return {"exp_labels": labels,
            "exp_annotations": {"summary": summary, "description": description}}


def _alert_case(series: list[Obj], checks: list[tuple[str, str, list[Obj]]]) -> Obj:
    return {"interval": "1m", "input_series": series, "alert_rule_test": [
        {"eval_time": at, "alertname": alert, "exp_alerts": expected}
        for at, alert, expected in checks]}


def _minutes(seconds: int) -> int:
    return -(-seconds // 60)


def _unit_tests(rule: Obj) -> list[Obj]:
    """For every alert: series that make it fire, checked before it may fire, while it fires
    and after the series recover. The `for` of the startup-budget alerts is read back so
    that the check lands just before and just after the model's own budget."""
    qwen = {"severity": "warning", "modelapi": "qwen", "namespace": "llm"}
    vllm_q = 'service="obs-qwen",model_name="qwen-7b",engine="0"'
    gw = 'service="obs-gateway",requested_model="qwen"'
    stuck_budget = _for_seconds(rule, "ModelAPIScalingStuck", "qwen")
    cold_budget = _for_seconds(rule, "ModelAPIScaleFromZeroStuck", "nightly")
    stuck, cold = _minutes(stuck_budget), _minutes(cold_budget)
    long = max(stuck, cold) + 60
    return [
        # no ready replica while LiteLLM calls the model (Deployment) or vLLM queues
        # (StatefulSet): fires after 2m of both, resolves once a replica is ready
        _alert_case([
            _series("kube_deployment_status_replicas_available", 'deployment="obs-nightly"',
                    "1x10 0x20 1x30"),
            _series("litellm_deployment_total_requests_total",
                    'service="obs-gateway",api_base="http://obs-nightly:8000/v1",'
                    'requested_model="small"', "0+10x60"),
            _series("kube_statefulset_status_replicas_ready", 'statefulset="obs-qwen"',
                    "1x10 0x20 1x30"),
            _series("vllm:num_requests_waiting", f'pod="obs-qwen-0",{vllm_q}', "3x60"),
        ], [("9m", "ModelAPINoReadyReplica", []),
            ("20m", "ModelAPINoReadyReplica", [
                _fired({"severity": "critical", "modelapi": name, "namespace": "llm"},
                       f"{name} has no ready replica while requests wait",
                       f"obs-{name} in llm has no ready replica and requests are waiting "
                       "for it (vLLM's queue or LiteLLM's calls).")
                for name in ("nightly", "qwen")]),
            ("45m", "ModelAPINoReadyReplica", [])]),
        # waiting per replica above KEDA's target (5): only after the startup budget
        _alert_case([
            _series("vllm:num_requests_waiting", f'pod="obs-qwen-{n}",{vllm_q}',
                    f"0x10 12x{stuck + 20} 0x30") for n in (0, 1)
        ], [(f"{10 + stuck - 2}m", "ModelAPIScalingStuck", []),
            (f"{10 + stuck + 2}m", "ModelAPIScalingStuck", [_fired(
                qwen, "qwen's queue stays above the autoscaler's target",
                "obs-qwen in llm has had 12 waiting requests per replica (target 5) for "
                f"longer than its startup budget ({stuck_budget}s); scaling is stuck or at "
                "maxReplicas (4).")]),
            (f"{stuck + 60}m", "ModelAPIScalingStuck", [])]),
        # scale from zero: replicas asked for, none ready within the startup budget
        _alert_case([
            _series("kube_deployment_spec_replicas", 'deployment="obs-nightly"',
                    f"0x10 1x{long}"),
            _series("kube_deployment_status_replicas_available", 'deployment="obs-nightly"',
                    f"0x{10 + cold + 10} 1x{long}"),
        ], [(f"{10 + cold - 2}m", "ModelAPIScaleFromZeroStuck", []),
            (f"{10 + cold + 2}m", "ModelAPIScaleFromZeroStuck", [_fired(
                {"severity": "critical", "modelapi": "nightly", "namespace": "llm"},
                "nightly did not come up from zero replicas",
                "obs-nightly in llm was asked for replicas but none became ready within its "
                f"startup budget ({cold_budget}s).")]),
            (f"{cold + 30}m", "ModelAPIScaleFromZeroStuck", [])]),
        # KV cache nearly full on one pod for 15m; the other pod is not
        _alert_case([
            _series("vllm:kv_cache_usage_perc", f'pod="obs-qwen-0",{vllm_q}', "0.97x40 0.5x30"),
            _series("vllm:kv_cache_usage_perc", f'pod="obs-qwen-1",{vllm_q}', "0.6x70"),
        ], [("10m", "ModelAPIKVCacheNearFull", []),
            ("30m", "ModelAPIKVCacheNearFull", [_fired(
                {**qwen, "pod": "obs-qwen-0"}, "qwen's KV cache is nearly full",
                "Pod obs-qwen-0 of obs-qwen in llm uses 97% of its KV cache "
                "(threshold 0.95).")]),
            ("60m", "ModelAPIKVCacheNearFull", [])]),
        # the model caches (a StatefulSet's claim, a shared claim), not another claim
        _alert_case([
            _series(metric, f'persistentvolumeclaim="{claim}"', values)
            for claim in ("model-cache-obs-qwen-0", "obs-nightly-cache", "other-cache")
            for metric, values in (("kubelet_volume_stats_used_bytes", "95x30 50x30"),
                                   ("kubelet_volume_stats_capacity_bytes", "100x60"))
        ], [("20m", "ModelCacheClaimNearFull", [
                _fired({"severity": "warning", "modelapi": name, "namespace": "llm",
                        "persistentvolumeclaim": claim},
                       f"{name}'s model cache claim is nearly full",
                       f"Claim {claim} in llm is 95% full (threshold 0.9).")
                for name, claim in (("qwen", "model-cache-obs-qwen-0"),
                                    ("nightly", "obs-nightly-cache"))]),
            ("55m", "ModelCacheClaimNearFull", [])]),
        # 10% of the gateway's requests fail (threshold 2%) until minute 30
        _alert_case([
            _series("litellm_proxy_total_requests_metric_total", gw, "0+100x60"),
            _series("litellm_proxy_failed_requests_metric_total",
                    f'{gw},exception_status="503"', "0+10x30 300x30"),
        ], [("5m", "LiteLLMErrorRateHigh", []),
            ("20m", "LiteLLMErrorRateHigh", [_fired(
                {"severity": "critical", "modelapi": "gateway", "namespace": "llm"},
                "gateway fails too many requests",
                "10% of obs-gateway's requests in llm failed over 5m (threshold 0.02).")]),
            ("50m", "LiteLLMErrorRateHigh", [])]),
        # 20% of requests answered by a fallback (threshold 10%) until minute 30
        _alert_case([
            _series("litellm_proxy_total_requests_metric_total", gw, "0+100x60"),
            _series("litellm_deployment_successful_fallbacks_total",
                    'service="obs-gateway",requested_model="qwen",fallback_model="small"',
                    "0+20x30 600x30"),
        ], [("5m", "LiteLLMFallbackRateHigh", []),
            ("20m", "LiteLLMFallbackRateHigh", [_fired(
                {"severity": "warning", "modelapi": "gateway", "namespace": "llm"},
                "gateway answers too many requests from fallbacks",
                "20% of obs-gateway's requests in llm went to a fallback model over 5m "
                "(threshold 0.1).")]),
            ("50m", "LiteLLMFallbackRateHigh", [])]),
        # every request between 60s and 120s (P99 threshold 30s), then all under 1s
        _alert_case([
            _series("litellm_request_total_latency_metric_bucket", f'{gw},le="{le}"', values)
            for le, values in (("1.0", "0x30 10+10x29"), ("60.0", "0x30 10+10x29"),
                               ("120.0", "0+10x60"), ("+Inf", "0+10x60"))
        ], [("5m", "LiteLLMLatencyP99High", []),
            ("20m", "LiteLLMLatencyP99High", [_fired(
                {"severity": "warning", "modelapi": "gateway", "namespace": "llm"},
                "gateway's P99 latency is high",
                "obs-gateway's P99 request latency in llm is 1m 59s (threshold 30s).")]),
            ("50m", "LiteLLMLatencyP99High", [])]),
    ]


def test_unit_tests_fire_and_resolve_every_alert(rendered: Any, promtool: str,
                                                 tmp_path: Path) -> None:
    rule = _rule(rendered)
    _write_rules(rule, tmp_path)
    tests = _unit_tests(rule)
    fired = {check["alertname"] for case in tests for check in case["alert_rule_test"]
             if check["exp_alerts"]}
    resolved_late = {case["alert_rule_test"][-1]["alertname"] for case in tests
                     if not case["alert_rule_test"][-1]["exp_alerts"]}
    assert fired == resolved_late == ALERTS
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(
        {"rule_files": ["rules.yaml"], "evaluation_interval": "1m", "tests": tests},
        sort_keys=False))
    out = _run([promtool, "test", "rules", "tests.yaml"], tmp_path)
    assert "SUCCESS" in out


def test_unit_tests_fail_when_an_alert_does_not_fire(rendered: Any, promtool: str,
                                                     tmp_path: Path) -> None:
    """The harness can fail: the same series with a KV cache under the threshold."""
    _write_rules(_rule(rendered), tmp_path)
    case = _unit_tests(_rule(rendered))[3]
    case["input_series"][0]["values"] = "0.9x40 0.5x30"
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(
        {"rule_files": ["rules.yaml"], "evaluation_interval": "1m", "tests": [case]}))
    result = subprocess.run([promtool, "test", "rules", "tests.yaml"], cwd=tmp_path,
                            capture_output=True, text=True, check=False)
    assert result.returncode != 0 and "ModelAPIKVCacheNearFull" in result.stdout + result.stderr


def test_thresholds_are_settable_per_environment(rendered: Any, promtool: str,
                                                 tmp_path: Path) -> None:
    """prod lowers kvCacheUsage to 0.9: a KV cache at 92% fires there, not in the base."""
    series = [_series("vllm:kv_cache_usage_perc",
                      'pod="obs-qwen-0",service="obs-qwen",model_name="qwen-7b",engine="0"',
                      "0.92x40")]
    expected = {"staging": [], "prod": [_fired(
        {"severity": "warning", "modelapi": "qwen", "namespace": "llm", "pod": "obs-qwen-0"},
        "qwen's KV cache is nearly full",
        "Pod obs-qwen-0 of obs-qwen in llm uses 92% of its KV cache (threshold 0.9).")]}
    for env, alerts in expected.items():
        _write_rules(_rule(rendered, env), tmp_path)
        (tmp_path / "tests.yaml").write_text(yaml.safe_dump({
            "rule_files": ["rules.yaml"], "evaluation_interval": "1m",
            "tests": [_alert_case(series, [("30m", "ModelAPIKVCacheNearFull", alerts)])]}))
        _run([promtool, "test", "rules", "tests.yaml"], tmp_path)


# --- dashboards ----------------------------------------------------------------------------

GRAFANA_VARIABLES = {"$namespace": "llm", "$model": ".*", "$__rate_interval": "1m"}
LABEL_VALUES = re.compile(r"^label_values\((?P<selector>.+), (?P<label>\w+)\)$")


def _queries(board: Obj) -> list[str]:
    """Every PromQL expression of a dashboard: panel targets and variable queries."""
    queries = [t["expr"] for p in board["panels"] for t in p["targets"]]
    for variable in board["templating"]["list"]:
        if variable["type"] == "query":
            match = LABEL_VALUES.match(variable["query"]["query"])
            assert match, variable["query"]
            queries.append(match["selector"])
    return queries


def _substituted(query: str) -> str:
    for name, value in GRAFANA_VARIABLES.items():
        query = query.replace(name, value)
    assert "$" not in query, query
    return query


def test_every_dashboard_query_parses_as_promql(rendered: Any, promtool: str,
                                                tmp_path: Path) -> None:
    queries = sorted({_substituted(q) for env in ("staging", "prod")
                      for board in _dashboards(rendered["helm"][env])
                      for q in _queries(board)})
    assert len(queries) > 20
    rules = [{"record": f"dashboard:query_{n}", "expr": q} for n, q in enumerate(queries)]
    path = tmp_path / "queries.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    assert "SUCCESS" in _run([promtool, "check", "rules", str(path)], tmp_path)
    # the check rejects what is not PromQL
    path.write_text(yaml.safe_dump({"groups": [{"name": "bad", "rules": [
        {"record": "bad", "expr": "sum(rate(x[$__rate_interval]))"}]}]}))
    assert subprocess.run([promtool, "check", "rules", str(path)], capture_output=True,
                          check=False).returncode != 0


MODEL_PANELS = {"Requests running and waiting", "Time to first token", "Inter-token latency",
                "End-to-end request latency", "KV-cache usage per pod",
                "Prefix-cache hit rate", "Tokens per second", "Replicas", "GPUs"}
STACK_PANELS = {"Requests per route", "Errors per route", "Error ratio per route",
                "Request latency per route", "Fallbacks per route",
                "Spend per model (USD per hour)"}


def _check_layout(board: Obj) -> None:
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    cells = set()
    for p in board["panels"]:
        pos = p["gridPos"]
        assert pos["x"] >= 0 and pos["x"] + pos["w"] <= 24
        cell = (pos["x"], pos["y"])
        assert cell not in cells
        cells.add(cell)
        refs = [t["refId"] for t in p["targets"]]
        assert refs and len(refs) == len(set(refs))
        assert all(t["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
                   for t in p["targets"])


def test_dashboards_are_grafana_dashboards_with_stable_unique_uids(rendered: Any) -> None:
    uids: dict[str, str] = {}
    for env, namespace in (("staging", "llm"), ("prod", "llm-prod")):
        boards = {b["title"]: b for b in _dashboards(rendered["helm"][env])}
        assert set(boards) == {f"obs (LiteLLM, {namespace})",
                               f"obs / qwen (vLLM, {namespace})",
                               f"obs / nightly (vLLM, {namespace})"}
        for title, board in boards.items():
            assert 0 < len(board["uid"]) <= 40 and board["schemaVersion"] >= 36
            assert board["uid"] not in uids, (title, uids)
            uids[board["uid"]] = title
            _check_layout(board)
            variables = {v["name"]: v for v in board["templating"]["list"]}
            assert set(variables) == {"datasource", "namespace", "model"}
            assert variables["namespace"]["current"]["value"] == namespace
            assert variables["model"]["multi"] and variables["model"]["includeAll"]
            titles = {p["title"] for p in board["panels"]}
            expected = STACK_PANELS if "LiteLLM" in title else MODEL_PANELS
            assert expected <= titles
        # KEDA's target is drawn for the autoscaled models only
        assert any("autoscaler's target" in p["title"]
                   for p in boards[f"obs / qwen (vLLM, {namespace})"]["panels"])


def test_same_spec_same_dashboard_bytes_and_uids_survive_edits(tmp_path: Path) -> None:
    from modelapi_compile.pipeline import compile_spec

    def boards(spec: Path) -> dict[str, str]:
        compiled = compile_spec(str(spec), use_helm=False, keep_objects=True)
        return dict(sorted(compiled.base.values.monitoring.dashboards.items()))

    first, second = boards(SPEC), boards(SPEC)
    assert first == second
    edited = tmp_path / "edited.yaml"
    edited.write_text(SPEC.read_text().replace("maxReplicas: 4", "maxReplicas: 6"))
    changed = boards(edited)
    assert changed["qwen-dashboard"] != first["qwen-dashboard"]  # it draws maxReplicas
    assert {k: json.loads(v)["uid"] for k, v in changed.items()} == \
        {k: json.loads(v)["uid"] for k, v in first.items()}


# --- only metrics the pinned releases export -----------------------------------------------

# vLLM v0.11.0, vllm/v1/metrics/loggers.py (PrometheusStatLogger): the metrics shown by
# default (hidden and deprecated ones left out), their type, and their labels.
VLLM_0_11_0 = {
    "vllm:num_requests_running": "gauge", "vllm:num_requests_waiting": "gauge",
    "vllm:kv_cache_usage_perc": "gauge", "vllm:prefix_cache_queries": "counter",
    "vllm:prefix_cache_hits": "counter", "vllm:num_preemptions": "counter",
    "vllm:prompt_tokens": "counter", "vllm:generation_tokens": "counter",
    "vllm:time_to_first_token_seconds": "histogram",
    "vllm:inter_token_latency_seconds": "histogram",
    "vllm:e2e_request_latency_seconds": "histogram",
    "vllm:request_queue_time_seconds": "histogram",
}
VLLM_LABELS = {"model_name", "engine"}
# Labels Prometheus attaches to every series it scrapes through a ServiceMonitor.
TARGET_LABELS = {"namespace", "service", "pod", "job", "instance", "endpoint", "container"}
# kube-state-metrics and kubelet series (not pinned by the project), with their labels.
CLUSTER_METRICS = {
    "kube_deployment_spec_replicas": {"deployment"},
    "kube_deployment_status_replicas_available": {"deployment"},
    "kube_statefulset_replicas": {"statefulset"},
    "kube_statefulset_status_replicas_ready": {"statefulset"},
    "kube_pod_container_resource_requests": {"pod", "resource", "container", "unit"},
    "kubelet_volume_stats_used_bytes": {"persistentvolumeclaim"},
    "kubelet_volume_stats_capacity_bytes": {"persistentvolumeclaim"},
}
SELECTOR = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\{([^}]*)\}")
GROUPING = re.compile(r"\bby \(([^)]*)\)")


def _exported(name: str) -> tuple[str, str]:
    """(metric as registered, suffix Prometheus' client added)."""
    for suffix in ("_total", "_bucket", "_sum", "_count"):
        if name.endswith(suffix):
            return name.removesuffix(suffix), suffix
    return name, ""


def _litellm_labels(base: str) -> set[str]:
    try:
        from litellm.types.integrations.prometheus import (
            DEFINED_PROMETHEUS_METRICS,
            PrometheusMetricLabels,
        )
    except ImportError:
        missing_engine("litellm (pip install -e '.[proxy-tests]')")

    assert base in DEFINED_PROMETHEUS_METRICS.__args__, base  # type: ignore[attr-defined]
    return set(PrometheusMetricLabels.get_labels(base))


def _allowed_labels(name: str) -> set[str]:
    base, suffix = _exported(name)
    if name.startswith("vllm:"):
        kind = VLLM_0_11_0.get(base)
        assert kind, f"{name}: not a default metric of vLLM 0.11.0"
        assert suffix == {"gauge": "", "counter": "_total"}.get(kind, suffix), name
        return VLLM_LABELS | TARGET_LABELS | ({"le"} if suffix == "_bucket" else set())
    if name.startswith("litellm_"):
        return _litellm_labels(base) | TARGET_LABELS | ({"le"} if suffix == "_bucket" else set())
    assert name in CLUSTER_METRICS, f"{name}: an unknown metric"
    return CLUSTER_METRICS[name] | {"namespace"}


def _check_query(query: str) -> set[str]:
    names = set()
    allowed: set[str] = set()
    for name, matchers in SELECTOR.findall(query):
        labels = {m.split("=")[0].strip().rstrip("!~") for m in matchers.split(",") if m}
        own = _allowed_labels(name)
        assert labels <= own, f"{name}: {labels - own} in {query}"
        names.add(name)
        allowed |= own
    for grouping in GROUPING.findall(query):
        used = {label.strip() for label in grouping.split(",")}
        assert used <= allowed, f"{used - allowed} in {query}"
    return names


def test_queries_use_only_metrics_and_labels_the_pinned_releases_export(rendered: Any
                                                                        ) -> None:
    queries = [q for board in _dashboards(rendered["helm"]["staging"]) for q in _queries(board)]
    queries += [r["expr"] for g in _rule(rendered)["spec"]["groups"] for r in g["rules"]]
    used = set().union(*(_check_query(q) for q in queries))
    # the vLLM facts above are those of the default image: re-check them when it moves
    assert DEFAULT_VLLM_IMAGE.endswith(":v0.11.0")
    assert {"vllm:inter_token_latency_seconds_bucket", "litellm_spend_metric_total",
            "litellm_deployment_successful_fallbacks_total"} <= used
    # the checker refuses a name vLLM 0.11 hides, and a label LiteLLM does not set
    with pytest.raises(AssertionError):
        _check_query('vllm:gpu_cache_usage_perc{service="x"}')
    with pytest.raises(AssertionError):
        _check_query('sum by (route) (rate(litellm_spend_metric_total{service="x"}[5m]))')


# --- the picture in docs/production.md ----------------------------------------------------


def test_the_readme_image_is_what_the_script_draws(tmp_path: Path) -> None:
    import importlib.util

    if importlib.util.find_spec("matplotlib") is None:
        missing_engine("matplotlib (pip install -e '.[test]')")
    script = CASES.parents[1] / "docs" / "render_dashboard.py"
    spec = importlib.util.spec_from_file_location("render_dashboard", script)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    board = module.load_dashboard()
    out = tmp_path / "dashboard.png"
    module.draw(board, out)
    assert out.read_bytes() == module.DEFAULT_OUT.read_bytes(), \
        "run python docs/render_dashboard.py and commit docs/images/dashboard.png"
    # it draws the dashboard the build writes: every panel, titled as in Grafana
    assert board["title"] == "obs / qwen (vLLM, llm)"
    assert {p["title"] for p in board["panels"]} >= MODEL_PANELS


def test_dashboard_json_folds_within_80_columns_and_reads_back_the_same(rendered: Any
                                                                        ) -> None:
    """Inside double quotes the YAML writer may break a line before JSON's escaped quotes;
    yamllint passes and YAML 1.1 and 1.2 readers (both engines above) get the same JSON."""
    from yamllint import linter
    from yamllint.config import YamlLintConfig

    from modelapi_compile.emit.yamlout import dump

    text = json.dumps(_dashboards(rendered["helm"]["staging"])[0], sort_keys=True)
    document = "---\n" + dump({"data": {"board.json": text}})
    assert len(document.splitlines()) > 50  # folded, not one line
    assert list(linter.run(document, YamlLintConfig("extends: default"))) == []
    assert yaml.safe_load(document)["data"]["board.json"] == text
