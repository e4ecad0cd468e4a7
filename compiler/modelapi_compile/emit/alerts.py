"""Alerting rules of each vLLM model, LiteLLM gateway and model cache claim.

Expressions select a workload by its Service (or controller, or claim) name and keep the
`namespace` label (`by (namespace)`), so the rules are the same wherever the chart is
installed and each alert names the namespace it fired in. Summaries and descriptions are
Prometheus templates of `$labels` and `$value` only; spec strings (names) appear in them as
plain DNS labels.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..resolve import observability as m
from ..resolve.model import K8s
from ..resolve.observability import CacheClaim, Gateway, ServedModel
from ..spec.model import AlertThresholds

RATE_WINDOW = "5m"
NO_READY_FOR = "2m"  # requests fail at once with no replica: page soon
RATE_ALERT_FOR = "10m"
SATURATION_FOR = "15m"


@dataclass(frozen=True)
class Runbook:
    """What an alert means and what to do, written to the chart README."""

    alert: str
    meaning: str
    steps: tuple[str, ...]


RUNBOOKS = (
    Runbook("ModelAPINoReadyReplica",
            "A vLLM model has no ready replica while requests wait for it (in vLLM's queue "
            "or as LiteLLM calls to its Service).",
            ("`kubectl -n <namespace> get pods -l app.kubernetes.io/name=<model>`: Pending "
             "pods lack a GPU node (check the node pool and `gpu.accelerator`), crashing pods "
             "show the cause in `kubectl logs --previous`.",
             "A replica that is still loading weights becomes ready within the model's startup "
             "budget (`startupTimeout`); longer means the cache or the download is stuck.",
             "LiteLLM falls back where `router.fallbacks` says; add one for this route.")),
    Runbook("ModelAPIScalingStuck",
            "vLLM's waiting queue per replica has stayed above the KEDA target for longer "
            "than the startup budget: the autoscaler could not add capacity.",
            ("`kubectl -n <namespace> get scaledobject,hpa`: at `maxReplicas`, raise it or "
             "`waitingRequests`.",
             "Below the maximum, new pods are Pending: `kubectl describe pod` names the "
             "missing GPU, quota or node.",
             "Check that KEDA reaches Prometheus (`monitoring.prometheusURL`).")),
    Runbook("ModelAPIScaleFromZeroStuck",
            "KEDA asked for replicas of a model scaled to zero, and none became ready within "
            "the startup budget. Callers wait or fail meanwhile.",
            ("`kubectl -n <namespace> get pods -l app.kubernetes.io/name=<model>` and "
             "`kubectl describe` the Pending or starting pod: GPU node provisioning "
             "(cluster autoscaler, Karpenter) and weight downloads are the usual causes.",
             "Keep `minReplicas: 1` for models whose callers cannot wait a cold start.")),
    Runbook("ModelAPIKVCacheNearFull",
            "A vLLM replica's KV cache has stayed nearly full: new requests queue and running "
            "ones may be preempted.",
            ("Add replicas (`autoscaling.maxReplicas`) or lower `waitingRequests` so KEDA "
             "scales earlier.",
             "Lower `engine.maxModelLen` or raise `engine.gpuMemoryUtilization` to fit more "
             "sequences; a larger GPU or tensor parallelism adds KV-cache room.")),
    Runbook("ModelCacheClaimNearFull",
            "A model cache claim is nearly full (kubelet volume stats); the next model "
            "download or update fails when it is full.",
            ("Raise `cache.size` in the spec (the storage class must allow expansion).",
             "Remove unused models or revisions from the claim.")),
    Runbook("LiteLLMErrorRateHigh",
            "A share of the gateway's requests above the threshold failed.",
            ("The `litellm_proxy_failed_requests_metric` series name the route "
             "(`requested_model`) and `exception_status`: 401/403 are keys, 429 are rate "
             "limits, 5xx are backends.",
             "Check the backend's own alerts (ModelAPINoReadyReplica) and the proxy's logs.")),
    Runbook("LiteLLMFallbackRateHigh",
            "A share of the gateway's requests above the threshold was answered by a fallback "
            "model: the primary backend is failing or too slow.",
            ("`litellm_deployment_successful_fallbacks_total` names the route "
             "(`requested_model`) and the `fallback_model`; check the primary's backend.",)),
    Runbook("LiteLLMLatencyP99High",
            "The gateway's P99 request latency is above the threshold.",
            ("Compare with the backend's time to first token and queue on its dashboard: a "
             "queue means too few replicas, a slow first token means long prompts or a full "
             "KV cache.",
             "For external backends, check the provider's status.")),
)


def one_line(expr: str) -> str:
    """A query on one line, with a space after each selector's `{`: the YAML writer folds
    long strings at a space before a word, within yamllint's 80 columns (a `|` block of a
    multi-line query could not be folded). A `{` after `]` (a regex's repeat) is kept."""
    return re.sub(r"(?<=[A-Za-z0-9_:])\{(?=[A-Za-z_])", "{ ", re.sub(r"\s*\n\s*", " ", expr))


def _rule(alert: str, expr: str, duration: str, severity: str, summary: str,
          description: str, labels: dict[str, str]) -> K8s:
    return {"alert": alert, "expr": one_line(expr), "for": duration,
            "labels": {"severity": severity, **labels},
            "annotations": {"summary": summary, "description": description}}


def _ratio(numerator: str, denominator: str) -> str:
    return f"{numerator}\n/\n{denominator}"


def _ready_replicas(model: ServedModel) -> str:
    r = model.replicas
    return f'max by (namespace) ({r.ready}{{{r.label}="{model.fullname}"}})'


def _desired_replicas(model: ServedModel) -> str:
    r = model.replicas
    return f'max by (namespace) ({r.desired}{{{r.label}="{model.fullname}"}})'


def _waiting(model: ServedModel) -> str:
    return f'sum by (namespace) ({m.VLLM_WAITING}{{service="{model.fullname}"}})'


def _replicas_reporting(model: ServedModel) -> str:
    """Pods that export vLLM's metrics (a pod may run several engines)."""
    return (f'count by (namespace) (count by (namespace, pod) '
            f'({m.VLLM_WAITING}{{service="{model.fullname}"}}))')


def model_rules(model: ServedModel, thresholds: AlertThresholds) -> list[K8s]:
    labels = {"modelapi": model.name}
    startup = f"{model.startup_seconds}s"
    calls = (f'sum by (namespace) (rate({m.LITELLM_DEPLOYMENT_REQUESTS}'
             f'{{api_base=~"{model.api_base}"}}[{RATE_WINDOW}]))')
    rules = [_rule(
        "ModelAPINoReadyReplica",
        f"({_ready_replicas(model)} == 0)\nand on (namespace)\n"
        f"(({_waiting(model)} > 0) or ({calls} > 0))",
        NO_READY_FOR, "critical",
        f"{model.name} has no ready replica while requests wait",
        f"{model.fullname} in {{{{ $labels.namespace }}}} has no ready replica and requests "
        "are waiting for it (vLLM's queue or LiteLLM's calls).", labels)]
    if model.queue_target is not None:
        rules.append(_rule(
            "ModelAPIScalingStuck",
            f"{_ratio(_waiting(model), _replicas_reporting(model))}\n> {model.queue_target}",
            startup, "warning",
            f"{model.name}'s queue stays above the autoscaler's target",
            f"{model.fullname} in {{{{ $labels.namespace }}}} has had {{{{ $value }}}} waiting "
            f"requests per replica (target {model.queue_target}) for longer than its startup "
            f"budget ({startup}); scaling is stuck or at maxReplicas ({model.max_replicas}).",
            labels))
        if model.min_replicas == 0:
            rules.append(_rule(
                "ModelAPIScaleFromZeroStuck",
                f"({_desired_replicas(model)} > 0)\nand on (namespace)\n"
                f"({_ready_replicas(model)} == 0)",
                startup, "critical",
                f"{model.name} did not come up from zero replicas",
                f"{model.fullname} in {{{{ $labels.namespace }}}} was asked for replicas but "
                f"none became ready within its startup budget ({startup}).", labels))
    kv = thresholds.kv_cache_usage
    rules.append(_rule(
        "ModelAPIKVCacheNearFull",
        f'max by (namespace, pod) ({m.VLLM_KV_CACHE}{{service="{model.fullname}"}}) > {kv:g}',
        SATURATION_FOR, "warning",
        f"{model.name}'s KV cache is nearly full",
        f"Pod {{{{ $labels.pod }}}} of {model.fullname} in {{{{ $labels.namespace }}}} uses "
        f"{{{{ $value | humanizePercentage }}}} of its KV cache (threshold {kv:g}).", labels))
    return rules


def claim_rules(claims: list[CacheClaim], thresholds: AlertThresholds) -> list[K8s]:
    limit = thresholds.cache_claim_usage
    rules = []
    for claim in claims:
        selector = f'{{persistentvolumeclaim=~"{claim.pattern}"}}'
        rules.append(_rule(
            "ModelCacheClaimNearFull",
            f"max by (namespace, persistentvolumeclaim) (\n  {m.KUBELET_USED}{selector}\n"
            f"  /\n  {m.KUBELET_CAPACITY}{selector}\n) > {limit:g}",
            SATURATION_FOR, "warning",
            f"{claim.name}'s model cache claim is nearly full",
            "Claim {{ $labels.persistentvolumeclaim }} in {{ $labels.namespace }} is "
            f"{{{{ $value | humanizePercentage }}}} full (threshold {limit:g}).",
            {"modelapi": claim.name}))
    return rules


def gateway_rules(gw: Gateway, thresholds: AlertThresholds) -> list[K8s]:
    labels = {"modelapi": gw.name}
    svc = f'service="{gw.fullname}"'

    def rate(metric: str, by: str = "namespace") -> str:
        return f"sum by ({by}) (rate({metric}{{{svc}}}[{RATE_WINDOW}]))"

    errors, fallbacks = thresholds.error_rate, thresholds.fallback_rate
    p99 = thresholds.p99_latency_seconds
    return [
        _rule("LiteLLMErrorRateHigh",
              f"{_ratio(rate(m.LITELLM_FAILED), rate(m.LITELLM_REQUESTS))}\n> {errors:g}",
              RATE_ALERT_FOR, "critical",
              f"{gw.name} fails too many requests",
              f"{{{{ $value | humanizePercentage }}}} of {gw.fullname}'s requests in "
              f"{{{{ $labels.namespace }}}} failed over {RATE_WINDOW} (threshold {errors:g}).",
              labels),
        _rule("LiteLLMFallbackRateHigh",
              f"{_ratio(rate(m.LITELLM_FALLBACKS_OK), rate(m.LITELLM_REQUESTS))}\n"
              f"> {fallbacks:g}",
              RATE_ALERT_FOR, "warning",
              f"{gw.name} answers too many requests from fallbacks",
              f"{{{{ $value | humanizePercentage }}}} of {gw.fullname}'s requests in "
              f"{{{{ $labels.namespace }}}} went to a fallback model over {RATE_WINDOW} "
              f"(threshold {fallbacks:g}).", labels),
        _rule("LiteLLMLatencyP99High",
              f"histogram_quantile(0.99, {rate(m.LITELLM_LATENCY + '_bucket', 'namespace, le')})"
              f"\n> {p99:g}",
              RATE_ALERT_FOR, "warning",
              f"{gw.name}'s P99 latency is high",
              f"{gw.fullname}'s P99 request latency in {{{{ $labels.namespace }}}} is "
              f"{{{{ $value | humanizeDuration }}}} (threshold {p99:g}s).", labels),
    ]


def alert_rules(models: list[ServedModel], gateways: list[Gateway],
                claims: list[CacheClaim], thresholds: AlertThresholds) -> dict[str, list[K8s]]:
    """The rules of each modelAPI, by its name: one PrometheusRule each, so that no object
    outgrows the API server's size limit however many models a stack serves."""
    rules = {model.name: model_rules(model, thresholds) for model in models}
    rules.update({gw.name: gateway_rules(gw, thresholds) for gw in gateways})
    for claim in claims:
        rules.setdefault(claim.name, []).extend(claim_rules([claim], thresholds))
    return dict(sorted(rules.items()))


def runbook_lines(alerts: dict[str, list[K8s]]) -> list[str]:
    """The chart README's section on the alerts the chart defines."""
    defined = {rule["alert"] for rules in alerts.values() for rule in rules}
    if not defined:
        return []
    lines = ["", "## Alerts", "",
             "Each alert's summary and description are in the PrometheusRule; what to do:"]
    for book in RUNBOOKS:
        if book.alert not in defined:
            continue
        lines += ["", f"### {book.alert}", "", book.meaning, "",
                  *(f"{n}. {step}" for n, step in enumerate(book.steps, 1))]
    return lines
