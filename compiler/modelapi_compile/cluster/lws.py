"""The LeaderWorkerSet controller, played on a control plane that has none (the local one
of `simulate` and the tests): a LeaderWorkerSet is admitted (schema and CEL rules of the
upstream CRD) but makes no pods, so its groups are made the way the controller makes them.

After kubernetes-sigs/lws: pkg/controllers/leaderworkerset_controller.go,
constructLeaderStatefulSetApplyConfiguration (a StatefulSet named after the set, one leader
pod per group, from leaderTemplate, labelled worker-index "0"), and
pkg/controllers/pod_controller.go, constructWorkerStatefulSetApplyConfiguration (per leader
<set>-<group>, size - 1 workers from workerTemplate, ordinals from 1, labelled with the group
index); both annotated with the group size, and with the variables its pod webhook adds
(pkg/utils/pod/pod_utils.go, AddLWSVariables; the webhook sets each leader's own group index,
which a StatefulSet template cannot, so the leaders here all name group 0: no process reads it
on kwok nodes). The kube-controller-manager's StatefulSet controller then makes the pods and
kube-scheduler binds them.
"""

from __future__ import annotations

from typing import Any

from .api import Client

K8s = dict[str, Any]
LWS = "leaderworkerset.sigs.k8s.io"
MANAGER = "lws-controller-played"


def _lws_pod_template(template: K8s, labels: dict[str, str], size: int, env: list[K8s]
                      ) -> K8s:
    metadata = template.get("metadata") or {}
    spec = template["spec"]
    return {"metadata": {"labels": {**(metadata.get("labels") or {}), **labels},
                         "annotations": {**(metadata.get("annotations") or {}),
                                         f"{LWS}/size": str(size)}},
            "spec": {**spec, "containers": [{**c, "env": [*env, *(c.get("env") or [])]}
                                            for c in spec["containers"]]}}


def _lws_variables(name: str, namespace: str, group: int, size: int) -> list[K8s]:
    """What the LWS pod webhook adds to every container of a group's pods."""
    return [{"name": "LWS_LEADER_ADDRESS", "value": f"{name}-{group}.{name}.{namespace}"},
            {"name": "LWS_GROUP_SIZE", "value": str(size)}]


def _lws_statefulset(lws: K8s, sts: str, selector: dict[str, str], pods: int, template: K8s,
                     start: int = 0) -> K8s:
    name, namespace = lws["metadata"]["name"], lws["metadata"]["namespace"]
    return {"apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": sts, "namespace": namespace,
                         "labels": {f"{LWS}/name": name}},
            "spec": {"replicas": pods, "serviceName": name, "podManagementPolicy": "Parallel",
                     "ordinals": {"start": start}, "selector": {"matchLabels": selector},
                     "template": template}}


def play_lws_controller(client: Client, objects: list[K8s]) -> dict[str, int]:
    """For each LeaderWorkerSet in `objects`, its leader and worker StatefulSets, as the LWS
    controller makes them; returns the pods each set should run, by namespace/name."""
    expected = {}
    for lws in (o for o in objects if o.get("kind") == "LeaderWorkerSet"):
        name, namespace = lws["metadata"]["name"], lws["metadata"]["namespace"]
        group = lws["spec"]["leaderWorkerTemplate"]
        size, replicas = int(group["size"]), int(lws["spec"].get("replicas", 1))
        expected[f"{namespace}/{name}"] = replicas * size
        leader = {f"{LWS}/name": name, f"{LWS}/worker-index": "0"}
        client.apply(_lws_statefulset(lws, name, leader, replicas, _lws_pod_template(
            group["leaderTemplate"], leader, size, _lws_variables(name, namespace, 0, size))),
            manager=MANAGER)
        for index in range(replicas):
            workers = {f"{LWS}/name": name, f"{LWS}/group-index": str(index)}
            template = _lws_pod_template(group["workerTemplate"], workers, size,
                                         _lws_variables(name, namespace, index, size))
            client.apply(_lws_statefulset(lws, f"{name}-{index}", workers, size - 1, template,
                                          start=1), manager=MANAGER)
    return expected


def lws_groups(client: Client, namespace: str, name: str) -> dict[str, list[str]]:
    """The nodes of each group's pods: group (leader pod name) -> node names."""
    groups: dict[str, list[str]] = {}
    for pod in client.list("v1", "Pod", namespace):
        labels = pod["metadata"].get("labels") or {}
        if labels.get(f"{LWS}/name") != name:
            continue
        pod_name = pod["metadata"]["name"]
        leader = pod_name if labels.get(f"{LWS}/worker-index") == "0" \
            else pod_name.rsplit("-", 1)[0]
        groups.setdefault(leader, []).append(pod["spec"].get("nodeName") or "")
    return groups
