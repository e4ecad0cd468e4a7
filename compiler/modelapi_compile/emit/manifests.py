"""The Kubernetes objects of one environment, built from its resolved values.

These are the compiler's own objects: the Kustomize base and overlays are made of them, the
verify stage validates them, and the chart's templates (chart/templates/) must render
exactly these from the same values, which the verify stage checks against real Helm.
"""

from __future__ import annotations

import hashlib

from ..resolve.model import (
    COMPONENT_LABEL,
    PART_OF_LABEL,
    STACK_LABEL,
    Autoscaler,
    ExternalSecrets,
    K8s,
    Monitoring,
    ResolvedStack,
    Workload,
    role_service_account,
    selector_labels,
)
from ..resolve.pod_security import namespace_labels
from .monitoring import monitoring_objects

MANAGED_BY = "modelapi-compile"
SYNC_WAVE = "argocd.argoproj.io/sync-wave"
# Config and identities first, so workloads never start without them. Claims are NOT early:
# with a WaitForFirstConsumer storage class (the default on GKE, EKS and AKS) a claim stays
# Pending until a pod mounts it, and Argo CD would never leave the claim's wave.
EARLY_WAVE = {SYNC_WAVE: "-1"}
# Model caches (hundreds of GB, hours to fill) and the namespace holding them survive a
# rename or removal in the spec, an uninstall, and the deletion of the Argo CD Application
# or the Flux Kustomization; the build summary names what is left behind.
CLAIM_TEMPLATE = "model-cache"  # the StatefulSet's volumeClaimTemplates name
KEEP = {
    "argocd.argoproj.io/sync-options": "Prune=false,Delete=false",
    "helm.sh/resource-policy": "keep",
    "kustomize.toolkit.fluxcd.io/prune": "disabled",
}


def fullname(stack: str, name: str) -> str:
    return f"{stack}-{name}"


def labels(stack: str, name: str, component: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/managed-by": MANAGED_BY,
        "app.kubernetes.io/name": name,
        PART_OF_LABEL: stack,
        STACK_LABEL: stack,
    }


def _metadata(name: str, namespace: str, object_labels: dict[str, str],
              annotations: dict[str, str] | None = None) -> K8s:
    meta: K8s = {"name": name, "namespace": namespace, "labels": object_labels}
    if annotations:
        meta["annotations"] = annotations
    return meta


def build_objects(resolved: ResolvedStack) -> list[K8s]:
    """Every object of the environment, in a stable order."""
    values = resolved.values
    stack, namespace = values.stack, resolved.namespace
    objects: list[K8s] = []
    if values.network_policy:
        objects += stack_network_policies(stack, namespace, values.dns_peers,
                                          shared=values.shared_namespace)
        objects += edge_network_policies(stack, namespace, values.network_policies)
    objects += role_service_accounts(
        stack, namespace, sorted({w.component for w in values.workloads.values()
                                  if not w.service_account_annotations}))
    objects += external_secrets(stack, namespace, values.external_secrets)
    for name, workload in values.workloads.items():
        objects += workload_objects(stack, namespace, name, workload,
                                    values.network_policy, values.monitoring)
    objects += [in_namespace(obj, namespace) for obj in values.objects]
    return objects + monitoring_objects(stack, namespace, values.monitoring)


def in_namespace(obj: K8s, namespace: str) -> K8s:
    """An object the compiler built whole (ChartValues.objects) in `namespace`, with the
    ServiceAccounts it binds (a RoleBinding's subjects) there too."""
    placed = {**obj, "metadata": {**obj["metadata"], "namespace": namespace}}
    if "subjects" in obj:
        placed["subjects"] = [{**subject, "namespace": namespace} for subject in obj["subjects"]]
    return placed


def external_secrets(stack: str, namespace: str, settings: ExternalSecrets) -> list[K8s]:
    """ExternalSecrets that make the Secrets the workloads read; never a Secret with data."""
    if not settings.enabled:
        return []
    common = {"app.kubernetes.io/managed-by": MANAGED_BY, "app.kubernetes.io/part-of": stack}
    return [{
        "apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
        "metadata": _metadata(name, namespace, common, EARLY_WAVE),
        "spec": {
            "refreshInterval": settings.refresh_interval,
            "secretStoreRef": {"kind": settings.store_kind, "name": settings.store_name},
            "target": {"creationPolicy": "Owner", "name": name},
            "data": [{"secretKey": key,
                      "remoteRef": {"key": f"{settings.remote_key_prefix}{name}",
                                    "property": key}} for key in keys],
        },
    } for name, keys in settings.secrets.items()]


def stack_network_policies(stack: str, namespace: str, dns_peers: list[K8s], *,
                           shared: bool = False) -> list[K8s]:
    """The default deny and DNS. The deny isolates every pod of the stack's own namespace,
    but in a shared namespace only the stack's pods: the others are not ours to cut off."""
    common = {"app.kubernetes.io/managed-by": MANAGED_BY, "app.kubernetes.io/part-of": stack}
    isolated: K8s = {"matchLabels": {STACK_LABEL: stack}} if shared else {}
    deny = {
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": _metadata(f"{stack}-default-deny", namespace, common),
        "spec": {"podSelector": isolated, "policyTypes": ["Ingress", "Egress"]},
    }
    dns = {
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": _metadata(f"{stack}-allow-dns", namespace, common),
        "spec": {
            "podSelector": {"matchLabels": {STACK_LABEL: stack}},
            "policyTypes": ["Egress"],
            "egress": [{
                "to": list(dns_peers),
                "ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}],
            }],
        },
    }
    return [deny, dns]


def _common(stack: str) -> dict[str, str]:
    return {"app.kubernetes.io/managed-by": MANAGED_BY, PART_OF_LABEL: stack}


def edge_network_policies(stack: str, namespace: str, policies: dict[str, K8s]
                          ) -> list[K8s]:
    """One NetworkPolicy per network edge of the stack (resolve.edge_policies)."""
    return [{"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
             "metadata": _metadata(f"{stack}-{suffix}", namespace, _common(stack)),
             "spec": spec} for suffix, spec in policies.items()]


def service_account_name(stack: str, name: str, workload: Workload) -> str:
    """Its own ServiceAccount when it asks for an identity (annotations), else its role's."""
    if workload.service_account_annotations:
        return fullname(stack, name)
    return role_service_account(stack, workload.component)


def role_service_accounts(stack: str, namespace: str, components: list[str]) -> list[K8s]:
    """One ServiceAccount per role (component) that the stack runs; no token is mounted."""
    return [{"apiVersion": "v1", "kind": "ServiceAccount",
             "metadata": _metadata(role_service_account(stack, component), namespace,
                                   {COMPONENT_LABEL: component, **_common(stack),
                                    STACK_LABEL: stack}, EARLY_WAVE),
             "automountServiceAccountToken": False} for component in components]


def workload_objects(stack: str, namespace: str, name: str, workload: Workload,
                     network_policy: bool, monitoring: Monitoring) -> list[K8s]:
    full = fullname(stack, name)
    own_labels = labels(stack, name, workload.component)
    objects: list[K8s] = []
    if workload.service_account_annotations:  # its own identity (workload identity)
        objects.append({
            "apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": _metadata(full, namespace, own_labels,
                                  {**workload.service_account_annotations, **EARLY_WAVE}),
            "automountServiceAccountToken": False})
    if workload.config:
        objects.append({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": _metadata(f"{full}-config", namespace, own_labels, EARLY_WAVE),
            "data": {workload.config.file_name: workload.config.content},
        })
    if workload.persistence and not workload.persistence.per_replica:
        objects.append(_claim(full, namespace, own_labels, workload))
    objects.append(_deployment(stack, namespace, name, workload))
    if controller_kind(workload) == "StatefulSet":
        objects.append(_headless_service(stack, namespace, name, workload))
    objects.append({
        "apiVersion": "v1", "kind": "Service",
        "metadata": _metadata(full, namespace, own_labels),
        "spec": {"type": "ClusterIP", "selector": service_selector(stack, name, workload),
                 "ports": [{"name": "http", "port": workload.port, "targetPort": "http",
                            "protocol": "TCP"}]},
    })
    most = workload.autoscaling.max_replicas if workload.autoscaling else workload.replicas
    if most > 1:
        # maxUnavailable (not minAvailable): one pod may always go, at any replica count the
        # autoscaler picks, so a drain never blocks at minReplicas.
        objects.append({
            "apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": _metadata(full, namespace, own_labels),
            "spec": {"maxUnavailable": 1,
                     "selector": {"matchLabels": selector_labels(stack, name)}},
        })
    if workload.autoscaling:
        objects.append(_autoscaler(full, namespace, own_labels, workload.autoscaling,
                                   controller_kind(workload)))
    if network_policy and (workload.network.ingress or workload.network.egress):
        objects.append(_network_policy(stack, namespace, name, workload))
    if monitoring.enabled and workload.metrics_path:
        objects.append(_service_monitor(stack, namespace, name, workload, monitoring))
    if workload.expose is not None:
        objects.append(_exposure(stack, namespace, name, workload))
    return objects


def headless_name(full: str) -> str:
    """The headless Service that governs a StatefulSet's pods (its serviceName)."""
    return f"{full}-pods"


def _headless_service(stack: str, namespace: str, name: str, workload: Workload) -> K8s:
    """A StatefulSet's governing Service: no virtual IP, DNS records per pod, and pods
    listed while still starting (the ClusterIP Service serves the clients)."""
    full = fullname(stack, name)
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": _metadata(headless_name(full), namespace,
                              labels(stack, name, workload.component)),
        "spec": {"clusterIP": "None", "publishNotReadyAddresses": True,
                 "selector": selector_labels(stack, name),
                 "ports": [{"name": "http", "port": workload.port, "targetPort": "http",
                            "protocol": "TCP"}]},
    }


def _exposure(stack: str, namespace: str, name: str, workload: Workload) -> K8s:
    """An Ingress or a Gateway API HTTPRoute to the workload's Service."""
    expose = workload.expose
    assert expose is not None
    full = fullname(stack, name)
    meta = _metadata(full, namespace, labels(stack, name, workload.component),
                     expose.annotations or None)
    if expose.kind == "HTTPRoute":
        parent: K8s = {"name": expose.gateway_name, "namespace": expose.gateway_namespace}
        if expose.section_name:
            parent["sectionName"] = expose.section_name
        rule: K8s = {"matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                     "backendRefs": [{"name": full, "port": workload.port}]}
        if expose.request_timeout:
            rule["timeouts"] = {"request": expose.request_timeout}
        return {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
                "metadata": meta,
                "spec": {"parentRefs": [parent], "hostnames": [expose.host], "rules": [rule]}}
    spec: K8s = {}
    if expose.ingress_class_name:
        spec["ingressClassName"] = expose.ingress_class_name
    if expose.tls_secret:
        spec["tls"] = [{"hosts": [expose.host], "secretName": expose.tls_secret}]
    spec["rules"] = [{"host": expose.host, "http": {"paths": [{
        "path": "/", "pathType": "Prefix",
        "backend": {"service": {"name": full, "port": {"name": "http"}}}}]}}]
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": meta,
            "spec": spec}


def controller_kind(workload: Workload) -> str:
    """A LeaderWorkerSet for replicas that span nodes, a StatefulSet when each replica has
    its own cache claim, else a Deployment."""
    if workload.group is not None:
        return "LeaderWorkerSet"
    per_replica = workload.persistence is not None and workload.persistence.per_replica
    return "StatefulSet" if per_replica else "Deployment"


def _claim_spec(workload: Workload) -> K8s:
    assert workload.persistence
    spec: K8s = {"accessModes": [workload.persistence.access_mode],
                 "resources": {"requests": {"storage": workload.persistence.size}}}
    if workload.persistence.storage_class:
        spec["storageClassName"] = workload.persistence.storage_class
    return spec


def _claim(full: str, namespace: str, own_labels: dict[str, str], workload: Workload) -> K8s:
    spec = _claim_spec(workload)
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": _metadata(f"{full}-cache", namespace, own_labels, dict(KEEP)),
            "spec": spec}


def overlay_namespace(resolved: ResolvedStack) -> list[K8s]:
    """The Namespace the overlay declares: none when the namespace is shared (it exists, and
    its labels belong to whoever owns it)."""
    return [] if resolved.shared_namespace else [namespace_object(resolved)]


def namespace_object(resolved: ResolvedStack) -> K8s:
    """The environment's Namespace, for the Kustomize overlays (Helm and Argo CD create it
    through createNamespace): Pod Security admission enforces the strictest level every
    workload meets, and neither GitOps tool may prune it (that would delete the caches)."""
    labels = {"app.kubernetes.io/managed-by": MANAGED_BY, PART_OF_LABEL: resolved.name,
              **namespace_labels(resolved.pod_security_level, resolved.kubernetes_version)}
    annotations = {"argocd.argoproj.io/sync-options": KEEP["argocd.argoproj.io/sync-options"],
                   **EARLY_WAVE,
                   "kustomize.toolkit.fluxcd.io/prune": KEEP["kustomize.toolkit.fluxcd.io/prune"]}
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": resolved.namespace, "labels": labels,
                         "annotations": annotations}}


def claim_names(resolved: ResolvedStack) -> list[str]:
    """`namespace/name` of every PersistentVolumeClaim the environment's workloads own,
    including those a StatefulSet makes per replica (up to its largest replica count)."""
    names = []
    for name, workload in resolved.values.workloads.items():
        full = fullname(resolved.name, name)
        if workload.persistence and workload.persistence.per_replica:
            most = workload.autoscaling.max_replicas if workload.autoscaling else workload.replicas
            names += [f"{CLAIM_TEMPLATE}-{full}-{i}" for i in range(most)]
        elif workload.persistence:
            names.append(f"{full}-cache")
    return [f"{resolved.namespace}/{name}" for name in names]


def _container(workload: Workload) -> K8s:
    container: K8s = {"name": workload.component, "image": workload.image,
                      "imagePullPolicy": "IfNotPresent"}
    if workload.command:
        container["command"] = list(workload.command)
    if workload.args:
        container["args"] = list(workload.args)
    container["ports"] = [{"name": "http", "containerPort": workload.port, "protocol": "TCP"}]
    if workload.env:
        container["env"] = list(workload.env)
    container["resources"] = workload.resources
    if workload.probes.startup:
        container["startupProbe"] = workload.probes.startup
    container["readinessProbe"] = workload.probes.readiness
    container["livenessProbe"] = workload.probes.liveness
    if workload.lifecycle:
        container["lifecycle"] = workload.lifecycle
    container["securityContext"] = workload.security_context
    if workload.volume_mounts:
        container["volumeMounts"] = list(workload.volume_mounts)
    return container


def _worker_container(workload: Workload) -> K8s:
    """A LeaderWorkerSet worker's container: the leader's, with the worker's command, and
    neither probes nor drain hook (it serves no HTTP; the group restarts as a whole)."""
    assert workload.group is not None
    container = _container(workload)
    for key in ("startupProbe", "readinessProbe", "livenessProbe", "lifecycle", "args"):
        container.pop(key, None)
    container["command"] = list(workload.group.worker_command)
    if workload.group.worker_args:
        container["args"] = list(workload.group.worker_args)
    return container


def _pod_template(stack: str, name: str, workload: Workload, *, worker: bool = False) -> K8s:
    own_labels = labels(stack, name, workload.component)
    template_meta: K8s = {"labels": {**own_labels, **workload.pod_labels,
                                     **workload.edge_labels}}
    annotations = dict(workload.pod_annotations)
    if workload.config:
        digest = hashlib.sha256(workload.config.content.encode()).hexdigest()
        annotations["checksum/config"] = digest
    if annotations:
        template_meta["annotations"] = annotations
    pod: K8s = {
        "serviceAccountName": service_account_name(stack, name, workload),
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": workload.pod_security_context,
        "terminationGracePeriodSeconds": workload.termination_grace_period_seconds,
    }
    if workload.image_pull_secrets:
        pod["imagePullSecrets"] = [{"name": secret} for secret in workload.image_pull_secrets]
    if workload.priority_class_name:
        pod["priorityClassName"] = workload.priority_class_name
    if workload.node_selector:
        pod["nodeSelector"] = workload.node_selector
    if workload.affinity:
        pod["affinity"] = workload.affinity
    if workload.topology_spread_constraints:
        pod["topologySpreadConstraints"] = list(workload.topology_spread_constraints)
    if workload.tolerations:
        pod["tolerations"] = list(workload.tolerations)
    if workload.runtime_class_name:
        pod["runtimeClassName"] = workload.runtime_class_name
    main = _worker_container(workload) if worker else _container(workload)
    pod["containers"] = [main, *workload.sidecars]
    if workload.volumes:
        pod["volumes"] = list(workload.volumes)
    return {"metadata": template_meta, "spec": pod}


# The label the LeaderWorkerSet controller puts on each pod of a group: "0" on its leader
# (lws api/leaderworkerset/v1/leaderworkerset_types.go, WorkerIndexLabelKey).
WORKER_INDEX_LABEL = "leaderworkerset.sigs.k8s.io/worker-index"
LWS_API_VERSION = "leaderworkerset.x-k8s.io/v1"


def service_selector(stack: str, name: str, workload: Workload) -> dict[str, str]:
    """What the workload's Service selects: its pods, or of LeaderWorkerSet groups only the
    leaders, which serve (the workers only run pipeline stages)."""
    selector = selector_labels(stack, name)
    if workload.group is not None:
        selector[WORKER_INDEX_LABEL] = "0"
    return selector


def pod_templates(obj: K8s) -> list[tuple[K8s, int]]:
    """The pod templates of a workload object, each with the pods it makes at most per
    replica: a Deployment's or StatefulSet's one, a LeaderWorkerSet's leader (1 a group)
    and worker (size - 1 a group); [] for any other object."""
    spec = obj.get("spec") or {}
    kind = obj.get("kind")
    if kind in ("Deployment", "StatefulSet") and "template" in spec:
        return [(spec["template"], 1)]
    if kind == "LeaderWorkerSet":
        group = spec.get("leaderWorkerTemplate") or {}
        size = int(group.get("size", 1))
        found = [(group["leaderTemplate"], 1)] if "leaderTemplate" in group else []
        if "workerTemplate" in group and size > 1:
            found.append((group["workerTemplate"], size - 1))
        return found
    return []


def _leader_worker_set(stack: str, namespace: str, name: str, workload: Workload) -> K8s:
    """Each replica a group of `group.size` pods: RecreateGroupOnPodRestart (one failed pod
    restarts the group: a pipeline misses a stage otherwise) and LeaderCreated: the workers
    start with the leader, because the leader is ready only once they have joined its Ray
    cluster and vLLM serves (LeaderReady would wait for that forever)."""
    assert workload.group is not None
    full = fullname(stack, name)
    spec: K8s = {}
    if workload.autoscaling is None:
        spec["replicas"] = workload.replicas
    spec |= {
        "startupPolicy": "LeaderCreated",
        "rolloutStrategy": workload.group.rollout_strategy,
        "leaderWorkerTemplate": {
            "size": workload.group.size,
            "restartPolicy": "RecreateGroupOnPodRestart",
            "leaderTemplate": _pod_template(stack, name, workload),
            "workerTemplate": _pod_template(stack, name, workload, worker=True),
        },
    }
    return {"apiVersion": LWS_API_VERSION, "kind": "LeaderWorkerSet",
            "metadata": _metadata(full, namespace, labels(stack, name, workload.component)),
            "spec": spec}


def _deployment(stack: str, namespace: str, name: str, workload: Workload) -> K8s:
    if workload.group is not None:
        return _leader_worker_set(stack, namespace, name, workload)
    full = fullname(stack, name)
    own_labels = labels(stack, name, workload.component)
    spec: K8s = {}
    if workload.autoscaling is None:
        # With an autoscaler the count is its own: absent here, neither Argo CD nor Flux
        # (server-side apply) nor a Helm upgrade ever writes it back.
        spec["replicas"] = workload.replicas
    kind = controller_kind(workload)
    spec |= {
        "revisionHistoryLimit": 3,
        "selector": {"matchLabels": selector_labels(stack, name)},
        "template": _pod_template(stack, name, workload),
    }
    if kind == "Deployment":
        # Never Progressing=False (Argo CD Degraded, Flux failed) during a normal model load.
        spec["progressDeadlineSeconds"] = workload.progress_deadline_seconds
        spec["strategy"] = workload.strategy
    else:
        spec |= {
            "serviceName": headless_name(full),
            # all replicas load their models at once; updates still go one pod at a time
            "podManagementPolicy": "Parallel",
            "updateStrategy": workload.strategy,
            # the claims (model caches) outlive scale-downs and the StatefulSet itself
            "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain",
                                                     "whenScaled": "Retain"},
            "volumeClaimTemplates": [{"metadata": {"name": CLAIM_TEMPLATE,
                                                   "labels": own_labels},
                                      "spec": _claim_spec(workload)}],
        }
    return {
        "apiVersion": "apps/v1", "kind": kind,
        "metadata": _metadata(full, namespace, own_labels),
        "spec": spec,
    }


def keda_query(metric: str, namespace: str, service: str) -> str:
    """The queue of one workload's replicas, summed (KEDA's AverageValue divides by the
    replica count). ServiceMonitor targets carry the namespace and service labels."""
    return f'sum({metric}{{namespace="{namespace}",service="{service}"}})'


def _autoscaler(full: str, namespace: str, own_labels: dict[str, str],
                scaling: Autoscaler, kind: str) -> K8s:
    api_version = LWS_API_VERSION if kind == "LeaderWorkerSet" else "apps/v1"
    target = {"apiVersion": api_version, "kind": kind, "name": full}
    if scaling.kind == "hpa":
        return {
            "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": _metadata(full, namespace, own_labels),
            "spec": {
                "scaleTargetRef": target,
                "minReplicas": scaling.min_replicas,
                "maxReplicas": scaling.max_replicas,
                "metrics": [{"type": "Resource", "resource": {
                    "name": "cpu", "target": {"type": "Utilization",
                                              "averageUtilization": scaling.cpu_utilization}}}],
            },
        }
    return {
        "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
        "metadata": _metadata(full, namespace, own_labels),
        "spec": {
            "scaleTargetRef": target,
            "minReplicaCount": scaling.min_replicas,
            "maxReplicaCount": scaling.max_replicas,
            "pollingInterval": scaling.polling_interval,
            "cooldownPeriod": scaling.cooldown_period,
            **({"initialCooldownPeriod": scaling.initial_cooldown_period}
               if scaling.initial_cooldown_period is not None else {}),
            **_scale_down(scaling),
            "triggers": [{
                "type": "prometheus",
                "metricType": "AverageValue",
                "metadata": {
                    "serverAddress": scaling.server_address,
                    "query": keda_query(str(scaling.metric), namespace, full),
                    "threshold": str(scaling.threshold),
                    "activationThreshold": str(scaling.activation_threshold),
                },
            }, *_wake_triggers(scaling, namespace)],
        },
    }


# The HPA's own limit on a scaling policy's period.
MAX_POLICY_PERIOD = 1800


def _scale_down(scaling: Autoscaler) -> K8s:
    """How the HPA that KEDA owns removes replicas: cooldownPeriod only governs the step to
    zero (KEDA's scale executor), every other step is the HPA's, by default after 300 s of
    a lower metric. A model that takes longer than that to load is removed one replica at a
    time, after the metric stayed low for the stabilization window."""
    window = scaling.scale_down_stabilization_seconds
    if window is None:
        return {}
    return {"advanced": {"horizontalPodAutoscalerConfig": {"behavior": {"scaleDown": {
        "stabilizationWindowSeconds": window,
        "policies": [{"type": "Pods", "value": 1,
                      "periodSeconds": max(1, min(MAX_POLICY_PERIOD, window))}]}}}}}


# LiteLLM's counter of calls per deployment (success and failure), labelled with the
# deployment's api_base; prometheus_client exposes counters with a _total suffix.
LITELLM_CALLS = "litellm_deployment_total_requests_total"
WAKE_WINDOW_SECONDS = 120
WAKE_THRESHOLD = "1000000"  # never asks for more than one replica: the queue does that


def wake_window(polling_interval: int) -> str:
    """How long calls count: two minutes, and at least two of KEDA's polling intervals, so
    a poll always falls inside it however the calls and the scrapes fall."""
    return f"{max(WAKE_WINDOW_SECONDS, 2 * polling_interval)}s"


def wake_query(namespace: str, api_base: str, window: str) -> str:
    """LiteLLM's calls to `api_base` in the last `window`. increase() never counts the
    first sample of a series, and the counter has a series per deployment, key and pod
    (each created by its first call), so the first calls of a new agent, proxy pod or
    rollout would be lost: a series that is new within the window adds its whole value.
    Each side is 0 rather than empty when it has no series, so the sum never is."""
    # spaces between tokens let the YAML fold the query within 80 columns
    calls = f'{LITELLM_CALLS}{{namespace="{namespace}", api_base=~"{api_base}.*"}}'
    return (f"(sum(increase( {calls}[{window}])) or vector(0))"
            f" + (sum( {calls} unless {calls} offset {window}) or vector(0))")


def _wake_triggers(scaling: Autoscaler, namespace: str) -> list[K8s]:
    """At zero replicas: calls LiteLLM made (and saw fail) in the last minutes wake it."""
    if not scaling.wake_api_base:
        return []
    return [{
        "type": "prometheus",
        "name": "litellm-calls",
        "metricType": "AverageValue",
        "metadata": {
            "serverAddress": scaling.server_address,
            "query": wake_query(namespace, scaling.wake_api_base,
                                wake_window(scaling.polling_interval or 0)),
            "threshold": WAKE_THRESHOLD,
            "activationThreshold": "0",
        },
    }]


def _network_policy(stack: str, namespace: str, name: str, workload: Workload) -> K8s:
    types = [t for t, rules in (("Ingress", workload.network.ingress),
                                ("Egress", workload.network.egress)) if rules]
    spec: K8s = {"podSelector": {"matchLabels": selector_labels(stack, name)},
                 "policyTypes": types}
    if workload.network.ingress:
        spec["ingress"] = list(workload.network.ingress)
    if workload.network.egress:
        spec["egress"] = list(workload.network.egress)
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": _metadata(fullname(stack, name), namespace,
                                  labels(stack, name, workload.component)),
            "spec": spec}


def _service_monitor(stack: str, namespace: str, name: str, workload: Workload,
                     monitoring: Monitoring) -> K8s:
    own_labels = {**labels(stack, name, workload.component), **monitoring.labels}
    return {
        "apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor",
        "metadata": _metadata(fullname(stack, name), namespace, own_labels),
        "spec": {
            "selector": {"matchLabels": selector_labels(stack, name)},
            "endpoints": [_scrape_endpoint(workload, monitoring)],
        },
    }


def _scrape_endpoint(workload: Workload, monitoring: Monitoring) -> K8s:
    endpoint: K8s = {"port": "http", "path": workload.metrics_path,
                     "interval": monitoring.interval}
    if workload.metrics_secret is not None:  # /metrics checks keys: send one
        endpoint["authorization"] = {"type": "Bearer", "credentials": {
            "name": workload.metrics_secret.name, "key": workload.metrics_secret.key}}
    return endpoint
