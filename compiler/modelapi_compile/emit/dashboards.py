"""Grafana dashboards: one for the stack's LiteLLM routes, one per vLLM model.

A dashboard is plain JSON (Grafana's dashboard model, schemaVersion 39) whose panels query
Prometheus through a `datasource` variable. Every dashboard has `namespace` and `model`
variables; its UID and title derive from the namespace, the stack and the dashboard's name,
so environments that share a Grafana do not overwrite each other and a rebuild keeps the
same UID (same spec, same bytes).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from ..resolve import observability as m
from ..resolve.observability import Gateway, ServedModel
from .alerts import one_line

SCHEMA_VERSION = 39
PANEL_WIDTH, PANEL_HEIGHT, COLUMNS = 12, 8, 2
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
RATE = "$__rate_interval"
Json = dict[str, Any]


def dashboard_uid(namespace: str, stack: str, key: str) -> str:
    """At most 40 characters, Grafana's limit."""
    digest = hashlib.sha256(f"{namespace}/{stack}/{key}".encode()).hexdigest()
    return f"mac-{digest[:24]}"


def target(expr: str, legend: str, ref: str) -> Json:
    return {"datasource": DATASOURCE, "expr": one_line(expr), "legendFormat": legend,
            "refId": ref}


def panel(title: str, unit: str, queries: list[tuple[str, str]], description: str = ""
          ) -> Json:
    """A time series panel; ids and positions are set when the dashboard is laid out."""
    return {
        "type": "timeseries", "title": title, "description": description,
        "datasource": DATASOURCE,
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom"},
                    "tooltip": {"mode": "multi", "sort": "none"}},
        "targets": [target(expr, legend, chr(ord("A") + n))
                    for n, (expr, legend) in enumerate(queries)],
    }


def _laid_out(panels: list[Json]) -> list[Json]:
    return [{**p, "id": n + 1,
             "gridPos": {"h": PANEL_HEIGHT, "w": PANEL_WIDTH,
                         "x": (n % COLUMNS) * PANEL_WIDTH, "y": (n // COLUMNS) * PANEL_HEIGHT}}
            for n, p in enumerate(panels)]


def _query_variable(name: str, label: str, query: str, current: str | None,
                    multi: bool) -> Json:
    variable: Json = {
        "type": "query", "name": name, "label": label, "datasource": DATASOURCE,
        "definition": query, "query": {"query": query, "refId": name},
        "refresh": 2, "sort": 1, "hide": 0, "includeAll": multi, "multi": multi,
        "options": [],
    }
    if multi:
        variable["allValue"] = ".*"
        variable["current"] = {"selected": True, "text": ["All"], "value": ["$__all"]}
    else:
        variable["current"] = {"selected": True, "text": current, "value": current}
    return variable


def _variables(namespace_query: str, namespace: str, model_query: str, model_label: str
               ) -> list[Json]:
    return [
        {"type": "datasource", "name": "datasource", "label": "Data source",
         "query": "prometheus", "hide": 0, "current": {}, "options": [], "refresh": 1},
        _query_variable("namespace", "Namespace", namespace_query, namespace, multi=False),
        _query_variable("model", model_label, model_query, None, multi=True),
    ]


def dashboard(uid: str, title: str, tags: list[str], variables: list[Json],
              panels: list[Json]) -> Json:
    return {
        "uid": uid, "title": title, "tags": tags, "editable": True, "graphTooltip": 1,
        "schemaVersion": SCHEMA_VERSION, "version": 1, "timezone": "browser",
        "time": {"from": "now-6h", "to": "now"}, "refresh": "30s",
        "annotations": {"list": []}, "links": [],
        "templating": {"list": variables},
        "panels": _laid_out(panels),
    }


def _quantiles(metric: str, selector: str, by: str = "") -> list[tuple[str, str]]:
    group = f"le, {by}" if by else "le"
    legend = f"{{{{{by}}}}} " if by else ""
    return [(f"histogram_quantile({q}, sum by ({group}) "
             f"(rate({metric}_bucket{{{selector}}}[{RATE}])))", f"{legend}P{int(q * 100)}")
            for q in (0.5, 0.99)]


def model_dashboard(stack: str, namespace: str, model: ServedModel) -> Json:
    sel = f'namespace="$namespace", service="{model.fullname}", model_name=~"$model"'
    owner = f'namespace="$namespace", {model.replicas.label}="{model.fullname}"'
    panels = [
        panel("Requests running and waiting", "short", [
            (f"sum({m.VLLM_RUNNING}{{{sel}}})", "running"),
            (f"sum({m.VLLM_WAITING}{{{sel}}})", "waiting")]),
        panel("Time to first token", "s", _quantiles(m.VLLM_TTFT, sel)),
        panel("Inter-token latency", "s", _quantiles(m.VLLM_ITL, sel)),
        panel("End-to-end request latency", "s", _quantiles(m.VLLM_E2E, sel)),
        panel("KV-cache usage per pod", "percentunit", [
            (f"max by (pod) ({m.VLLM_KV_CACHE}{{{sel}}})", "{{pod}}")]),
        panel("Prefix-cache hit rate", "percentunit", [
            (f"sum(rate({m.VLLM_PREFIX_HITS}{{{sel}}}[{RATE}]))\n/\n"
             f"sum(rate({m.VLLM_PREFIX_QUERIES}{{{sel}}}[{RATE}]))", "hit rate")]),
        panel("Tokens per second", "short", [
            (f"sum(rate({m.VLLM_GENERATION_TOKENS}{{{sel}}}[{RATE}]))", "generated"),
            (f"sum(rate({m.VLLM_PROMPT_TOKENS}{{{sel}}}[{RATE}]))", "prompt")]),
        panel("Replicas", "short", [
            (f"max({model.replicas.ready}{{{owner}}})", "ready"),
            (f"max({model.replicas.desired}{{{owner}}})", "desired"),
            (f"vector({model.max_replicas})", "maxReplicas")],
            "ready and desired replicas (kube-state-metrics), and the spec's maximum"),
    ]
    if model.queue_target is not None:
        per_replica = (f"sum({m.VLLM_WAITING}{{{sel}}})\n/\n"
                       f"count(count by (pod) ({m.VLLM_WAITING}{{{sel}}}))")
        panels.append(panel("Waiting requests per replica and the autoscaler's target",
                            "short", [(per_replica, "waiting per replica"),
                                      (f"vector({model.queue_target})", "KEDA target")],
                            "KEDA adds a replica while the queue per replica is above "
                            "the target"))
    panels.append(panel("GPUs", "short", [
        (f'sum({m.KSM_REQUESTS}{{namespace="$namespace", pod=~"{model.pod_pattern}", '
         f'resource="{model.gpu_resource}"}})', "GPUs requested")],
        f"{model.gpus} per replica (kube-state-metrics requests)"))
    namespace_query = f'label_values({m.VLLM_RUNNING}{{service="{model.fullname}"}}, namespace)'
    model_query = (f'label_values({m.VLLM_RUNNING}{{namespace="$namespace", '
                   f'service="{model.fullname}"}}, model_name)')
    return dashboard(dashboard_uid(namespace, stack, model.name),
                     f"{stack} / {model.name} (vLLM, {namespace})",
                     ["modelapi-compile", stack, "vllm"],
                     _variables(namespace_query, namespace, model_query, "Model"), panels)


def stack_dashboard(stack: str, namespace: str, gateways: list[Gateway]) -> Json:
    services = "|".join(gw.fullname for gw in gateways)
    sel = f'namespace="$namespace", service=~"{services}", requested_model=~"$model"'
    spend_sel = f'namespace="$namespace", service=~"{services}"'
    by = "requested_model"
    panels = [
        panel("Requests per route", "reqps", [
            (f"sum by ({by}) (rate({m.LITELLM_REQUESTS}{{{sel}}}[{RATE}]))",
             f"{{{{{by}}}}}")]),
        panel("Errors per route", "reqps", [
            (f"sum by ({by}, exception_status) (rate({m.LITELLM_FAILED}{{{sel}}}[{RATE}]))",
             f"{{{{{by}}}}} {{{{exception_status}}}}")]),
        panel("Error ratio per route", "percentunit", [
            (f"sum by ({by}) (rate({m.LITELLM_FAILED}{{{sel}}}[{RATE}]))\n/\n"
             f"sum by ({by}) (rate({m.LITELLM_REQUESTS}{{{sel}}}[{RATE}]))",
             f"{{{{{by}}}}}")]),
        panel("Request latency per route", "s", _quantiles(m.LITELLM_LATENCY, sel, by)),
        panel("Fallbacks per route", "reqps", [
            (f"sum by ({by}, fallback_model) "
             f"(rate({m.LITELLM_FALLBACKS_OK}{{{sel}}}[{RATE}]))",
             f"{{{{{by}}}}} -> {{{{fallback_model}}}}"),
            (f"sum by ({by}, fallback_model) "
             f"(rate({m.LITELLM_FALLBACKS_FAILED}{{{sel}}}[{RATE}]))",
             f"{{{{{by}}}}} -> {{{{fallback_model}}}} (failed)")]),
        panel("Spend per model (USD per hour)", "currencyUSD", [
            (f"sum by (model) (increase({m.LITELLM_SPEND}{{{spend_sel}}}[1h]))",
             "{{model}}")],
            "LiteLLM's spend counter, labelled by the provider model it called"),
    ]
    first = gateways[0].fullname
    namespace_query = f'label_values({m.LITELLM_REQUESTS}{{service="{first}"}}, namespace)'
    model_query = (f'label_values({m.LITELLM_REQUESTS}{{namespace="$namespace", '
                   f'service=~"{services}"}}, requested_model)')
    return dashboard(dashboard_uid(namespace, stack, ""), f"{stack} (LiteLLM, {namespace})",
                     ["modelapi-compile", stack, "litellm"],
                     _variables(namespace_query, namespace, model_query, "Route"), panels)


def dashboard_text(board: Json) -> str:
    """Sorted keys (stable bytes) on one line with a space after each separator, which
    the YAML writer folds at (a multi-line JSON would be a `|` block that cannot fold)."""
    return json.dumps(board, sort_keys=True)


def dashboards(stack: str, namespace: str, models: list[ServedModel],
               gateways: list[Gateway]) -> dict[str, str]:
    """Dashboard JSON by the ConfigMap's name suffix (`<stack>-<suffix>`)."""
    boards = {}
    if gateways:
        boards["dashboard"] = dashboard_text(stack_dashboard(stack, namespace, gateways))
    for model in models:
        boards[f"{model.name}-dashboard"] = dashboard_text(
            model_dashboard(stack, namespace, model))
    return boards
