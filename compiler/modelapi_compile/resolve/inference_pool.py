"""A vLLM model behind the Gateway API Inference Extension (`vllm.inferencePool`).

The Gateway sends each request to the InferencePool's endpoint picker (Envoy's external
processing protocol, gRPC on 9002), which chooses a replica by its queue and KV-cache use as
vLLM's /metrics report them. The objects are built whole here, without their namespace (the
chart and the overlays set it), and reach both engines through `ChartValues.objects`.

The picker is llm-d's router (ghcr.io/llm-d/llm-d-router-endpoint-picker): since v1.6.0 the
extension itself ships only a lightweight picker for its conformance tests, and its README
names llm-d/llm-d-router as the home of the endpoint picker. Its arguments, ports, probes and
RBAC follow that router's chart (config/charts/routerlib, v0.10.0).
"""

from __future__ import annotations

import yaml

from ..spec.backends import InferencePool
from .model import (
    COMPONENT_LABEL,
    NAME_LABEL,
    PART_OF_LABEL,
    STACK_LABEL,
    K8s,
    selector_labels,
)
from .pod_contract import NON_ROOT_UID, SECCOMP, VLLM_PORT
from .workloads import empty_dir

PICKER_IMAGE = "ghcr.io/llm-d/llm-d-router-endpoint-picker:v0.10.0"
PICKER_COMPONENT = "endpoint-picker"
PICKER_GRPC_PORT = 9002  # ext-proc, what the Gateway calls
PICKER_HEALTH_PORT = 9003  # gRPC health service
PICKER_METRICS_PORT = 9090
POOL_GROUP = "inference.networking.k8s.io"
POOL_API_VERSION = f"{POOL_GROUP}/v1"
PICKER_CONFIG_FILE = "default-plugins.yaml"
# The router's default scheduling: the shortest queue, the least KV-cache in use, and the
# longest prefix already cached, weighted as its chart weights them; the scores come from
# vLLM's own /metrics.
PICKER_CONFIG: K8s = {
    "apiVersion": "llm-d.ai/v1alpha1",
    "kind": "EndpointPickerConfig",
    "plugins": [
        {"type": "queue-scorer"},
        {"type": "kv-cache-utilization-scorer"},
        {"type": "prefix-cache-scorer"},
        {"type": "metrics-data-source",
         "parameters": {"scheme": "http", "path": "/metrics", "insecureSkipVerify": True}},
        {"type": "core-metrics-extractor"},
    ],
    "schedulingProfiles": [{"name": "default", "plugins": [
        {"pluginRef": "queue-scorer", "weight": 2},
        {"pluginRef": "kv-cache-utilization-scorer", "weight": 2},
        {"pluginRef": "prefix-cache-scorer", "weight": 3},
    ]}],
}
PICKER_RESOURCES: K8s = {"requests": {"cpu": "2", "memory": "4Gi"},
                         "limits": {"cpu": "8", "memory": "16Gi"}}
# The Kubernetes API server: its address is the cluster's, unknown here; its ports are
# 443 (the kubernetes Service) and 6443 (what the Service's endpoints usually listen on).
API_SERVER_PORTS = (443, 6443)


def picker_name(name: str) -> str:
    """The spec name the picker's objects carry (`<stack>-<name>-epp`)."""
    return f"{name}-epp"


def gateway_path(namespace: str, fullname: str) -> str:
    """The path prefix on the Gateway that leads to this model's pool: a shared Gateway
    serves many pools, of many namespaces."""
    return f"/{namespace}/{fullname}"


def pool_url(pool: InferencePool, namespace: str, fullname: str) -> str:
    """What LiteLLM calls: the Gateway, under the model's path prefix."""
    return f"{pool.gateway.url.rstrip('/')}{gateway_path(namespace, fullname)}/v1"


def proxy_namespace(pool: InferencePool) -> str:
    """Where the Gateway's proxy pods run (the NetworkPolicies admit that namespace)."""
    return pool.from_namespace or pool.gateway.namespace


def _labels(stack: str, name: str, component: str) -> dict[str, str]:
    return {COMPONENT_LABEL: component, "app.kubernetes.io/managed-by": "modelapi-compile",
            NAME_LABEL: name, PART_OF_LABEL: stack, STACK_LABEL: stack}


def _meta(name: str, labels: dict[str, str]) -> K8s:
    return {"name": name, "labels": dict(labels)}


def pool_objects(stack: str, name: str, pool: InferencePool, namespace: str, image: str,
                 request_seconds: int | None) -> list[K8s]:
    """The InferencePool over the model's pods, its endpoint picker (ConfigMap,
    ServiceAccount, Role and RoleBinding, Deployment, Service) and the HTTPRoute from the
    Gateway; no namespace (set by the chart and the overlays)."""
    full = f"{stack}-{name}"
    picker = f"{full}-epp"
    model_labels = _labels(stack, name, "vllm")
    picker_labels = _labels(stack, picker_name(name), PICKER_COMPONENT)
    picker_selector = selector_labels(stack, picker_name(name))
    config_file = yaml.safe_dump(PICKER_CONFIG, sort_keys=False)
    tmp, tmp_mount = empty_dir("tmp", "/tmp")
    container: K8s = {
        "name": "epp",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "args": ["--pool-name", full, "--pool-namespace", "$(NAMESPACE)",
                 "--pool-group", POOL_GROUP, "--zap-encoder", "json",
                 "--config-file", f"/config/{PICKER_CONFIG_FILE}",
                 "--grpc-health-port", str(PICKER_HEALTH_PORT),
                 # Prometheus reads /metrics without a token: the NetworkPolicy admits only
                 # the scrapers (a token check would need cluster-wide TokenReview rights).
                 "--tracing=false", "--metrics-endpoint-auth=false"],
        "ports": [{"name": "grpc", "containerPort": PICKER_GRPC_PORT, "protocol": "TCP"},
                  {"name": "grpc-health", "containerPort": PICKER_HEALTH_PORT,
                   "protocol": "TCP"},
                  {"name": "metrics", "containerPort": PICKER_METRICS_PORT, "protocol": "TCP"}],
        "env": [{"name": "NAMESPACE",
                 "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                {"name": "POD_NAME",
                 "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
        "resources": PICKER_RESOURCES,
        "livenessProbe": {"grpc": {"port": PICKER_HEALTH_PORT,
                                   "service": "inference-extension"},
                          "initialDelaySeconds": 5, "periodSeconds": 10},
        "readinessProbe": {"grpc": {"port": PICKER_HEALTH_PORT,
                                    "service": "inference-extension"},
                           "periodSeconds": 2},
        "securityContext": {"allowPrivilegeEscalation": False,
                            "capabilities": {"drop": ["ALL"]},
                            "readOnlyRootFilesystem": True},
        "volumeMounts": [{"name": "config", "mountPath": "/config", "readOnly": True},
                         tmp_mount],
    }
    deployment: K8s = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": _meta(picker, picker_labels),
        "spec": {
            "replicas": 1,
            "revisionHistoryLimit": 3,
            "selector": {"matchLabels": picker_selector},
            "template": {
                "metadata": {"labels": dict(picker_labels)},
                "spec": {
                    "serviceAccountName": picker,
                    # It watches the pool and the model's pods through the API server.
                    "automountServiceAccountToken": True,
                    "enableServiceLinks": False,
                    "securityContext": {"runAsNonRoot": True, "runAsUser": NON_ROOT_UID,
                                        "runAsGroup": NON_ROOT_UID,
                                        "seccompProfile": dict(SECCOMP)},
                    # as the router's chart: the longest drain of the pool's own pods
                    "terminationGracePeriodSeconds": 130,
                    "containers": [container],
                    "volumes": [{"name": "config", "configMap": {"name": picker}}, tmp],
                },
            },
        },
    }
    read = ["get", "watch", "list"]
    rule: K8s = {"matches": [{"path": {"type": "PathPrefix",
                                       "value": gateway_path(namespace, full)}}],
                 "filters": [{"type": "URLRewrite", "urlRewrite": {"path": {
                     "type": "ReplacePrefixMatch", "replacePrefixMatch": "/"}}}],
                 "backendRefs": [{"group": POOL_GROUP, "kind": "InferencePool",
                                  "name": full}]}
    if request_seconds:
        # the callers' longest request, not the gateway's default (15 s in Envoy)
        rule["timeouts"] = {"request": f"{request_seconds}s"}
    parent: K8s = {"name": pool.gateway.name, "namespace": pool.gateway.namespace}
    if pool.gateway.section_name:
        parent["sectionName"] = pool.gateway.section_name
    return [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta(picker, picker_labels),
         "data": {PICKER_CONFIG_FILE: config_file}},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(picker, picker_labels),
         "automountServiceAccountToken": False},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
         "metadata": _meta(picker, picker_labels),
         "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": read},
                   {"apiGroups": [POOL_GROUP], "resources": ["inferencepools"], "verbs": read},
                   {"apiGroups": ["inference.networking.x-k8s.io", "llm-d.ai"],
                    "resources": ["inferenceobjectives", "inferencemodelrewrites"],
                    "verbs": read}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
         "metadata": _meta(picker, picker_labels),
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": picker},
         "subjects": [{"kind": "ServiceAccount", "name": picker}]},
        deployment,
        {"apiVersion": "v1", "kind": "Service", "metadata": _meta(picker, picker_labels),
         "spec": {"type": "ClusterIP", "selector": picker_selector,
                  "ports": [{"name": "grpc-ext-proc", "port": PICKER_GRPC_PORT,
                             "targetPort": "grpc", "protocol": "TCP",
                             "appProtocol": "kubernetes.io/h2c"},
                            {"name": "http-metrics", "port": PICKER_METRICS_PORT,
                             "targetPort": "metrics", "protocol": "TCP"}]}},
        {"apiVersion": POOL_API_VERSION, "kind": "InferencePool",
         "metadata": _meta(full, model_labels),
         "spec": {"selector": {"matchLabels": selector_labels(stack, name)},
                  "targetPorts": [{"number": VLLM_PORT}],
                  "appProtocol": "http",
                  "endpointPickerRef": {"name": picker, "port": {"number": PICKER_GRPC_PORT},
                                        "failureMode": "FailOpen"}}},
        {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
         "metadata": _meta(full, model_labels),
         "spec": {"parentRefs": [parent], "rules": [rule]}},
    ]


def pool_policies(stack: str, name: str, pool: InferencePool, scrapers: K8s | None
                  ) -> dict[str, K8s]:
    """NetworkPolicy specs by name suffix: the Gateway's proxies reach the model's pods on
    vLLM's port and the picker on its gRPC port; the picker reaches the model's pods (their
    /metrics) and the API server (it watches the pool and the pods); with monitoring, the
    scrapers read the picker's metrics."""
    proxies: K8s = {"namespaceSelector": {"matchLabels": {
        "kubernetes.io/metadata.name": proxy_namespace(pool)}}}
    picker_pods = {"matchLabels": selector_labels(stack, picker_name(name))}
    model_pods = {"matchLabels": selector_labels(stack, name)}
    vllm_port = [{"port": VLLM_PORT, "protocol": "TCP"}]
    picker_ingress: list[K8s] = [{"from": [proxies],
                                  "ports": [{"port": PICKER_GRPC_PORT, "protocol": "TCP"}]}]
    if scrapers is not None:
        picker_ingress.append({"from": [scrapers],
                               "ports": [{"port": PICKER_METRICS_PORT, "protocol": "TCP"}]})
    return {
        f"pool-{name}": {
            "podSelector": model_pods, "policyTypes": ["Ingress"],
            "ingress": [{"from": [proxies, {"podSelector": picker_pods}], "ports": vllm_port}]},
        f"epp-{name}": {
            "podSelector": picker_pods, "policyTypes": ["Ingress", "Egress"],
            "ingress": picker_ingress,
            "egress": [{"to": [{"podSelector": model_pods}], "ports": vllm_port},
                       {"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}],
                        "ports": [{"port": port, "protocol": "TCP"}
                                  for port in API_SERVER_PORTS]}]},
    }
