"""Dashboards and alerts of one environment: computed into the chart's values by the
resolver, rendered as ConfigMaps and PrometheusRules here and by the chart's
`monitoring.yaml` template from the same values."""

from __future__ import annotations

from ..resolve import observability as o
from ..resolve.model import NAME_LABEL, PART_OF_LABEL, K8s, Monitoring, Workload
from ..spec.model import Monitoring as MonitoringSpec
from .alerts import alert_rules
from .dashboards import dashboards


def monitoring_values(stack: str, namespace: str, spec: MonitoringSpec,
                      workloads: dict[str, Workload], vllm_port: int) -> Monitoring:
    values = Monitoring(enabled=spec.enabled, interval=spec.interval, labels=spec.labels)
    if not spec.enabled:
        return values
    ordered = sorted(workloads.items())
    models = [o.served_model(stack, name, w, vllm_port) for name, w in ordered
              if w.component == "vllm"]
    gateways = [o.Gateway(name, f"{stack}-{name}") for name, w in ordered
                if w.component == "litellm"]
    return values.model_copy(update={
        "dashboard_labels": dict(spec.dashboard_labels) if spec.dashboards else {},
        "dashboards": dashboards(stack, namespace, models, gateways) if spec.dashboards
        else {},
        "alerts": alert_rules(models, gateways, o.cache_claims(stack, dict(ordered)),
                              spec.thresholds) if spec.alerts else {},
    })


def _labels(stack: str, given: dict[str, str], **own: str) -> dict[str, str]:
    """The spec's labels, under the ones the compiler relies on."""
    return {**given, "app.kubernetes.io/managed-by": "modelapi-compile", PART_OF_LABEL: stack,
            **own}


def monitoring_objects(stack: str, namespace: str, monitoring: Monitoring) -> list[K8s]:
    if not monitoring.enabled:
        return []
    objects: list[K8s] = [{
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": f"{stack}-{suffix}", "namespace": namespace,
                     "labels": _labels(stack, monitoring.dashboard_labels)},
        # the sidecar writes every key into one folder: keys unique per stack
        "data": {f"{stack}-{suffix}.json": text},
    } for suffix, text in monitoring.dashboards.items()]
    # each in its modelAPI's part of a split overlay (kustomize.object_folder)
    objects += [{
        "apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule",
        "metadata": {"name": f"{stack}-{name}-alerts", "namespace": namespace,
                     "labels": _labels(stack, monitoring.labels, **{NAME_LABEL: name})},
        "spec": {"groups": [{"name": f"{stack}/{name}", "rules": rules}]},
    } for name, rules in monitoring.alerts.items()]
    return objects
