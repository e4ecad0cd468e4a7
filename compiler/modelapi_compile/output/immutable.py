"""Fields the API server never changes on an existing object. A build records them in the
output folder's manifest; the next build compares, and a change that every sync would have
failed on (Argo CD and Flux retry it forever) is refused at the spec line with the steps
that make it possible, instead of reaching the cluster as a silent rewrite.

What Kubernetes forbids (apps/v1 and core/v1 validation on update):
- a StatefulSet's selector, serviceName and volumeClaimTemplates (only replicas, template,
  updateStrategy, minReadySeconds, ordinals and the claim retention policy may change);
- a Deployment's selector;
- a PersistentVolumeClaim's storage class, access modes and volume mode; its size may grow
  (only where the StorageClass allows volume expansion) and never shrink;
- a Service's clusterIP (so a move to or from a headless Service).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..problems import Problem

K8s = dict[str, Any]
Facts = dict[str, Any]

_UNITS = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50,
          "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15}


def object_key(obj: K8s, namespace: str) -> str:
    meta = obj["metadata"]
    return f"{obj['kind']}/{meta.get('namespace') or namespace}/{meta['name']}"


def _claim(spec: K8s) -> Facts:
    return {"storage": spec["resources"]["requests"]["storage"],
            "storageClassName": spec.get("storageClassName"),
            "accessModes": spec.get("accessModes") or [],
            "volumeMode": spec.get("volumeMode")}


def immutable_facts(objects: Iterable[K8s], namespace: str) -> dict[str, Facts]:
    """Per object key, the fields of it that can never change in place."""
    facts: dict[str, Facts] = {}
    for obj in objects:
        kind, spec = obj.get("kind"), obj.get("spec") or {}
        if kind == "StatefulSet":
            facts[object_key(obj, namespace)] = {
                "selector": spec.get("selector"), "serviceName": spec.get("serviceName"),
                "volumeClaimTemplates": {t["metadata"]["name"]: _claim(t["spec"])
                                         for t in spec.get("volumeClaimTemplates") or []}}
        elif kind == "Deployment":
            facts[object_key(obj, namespace)] = {"selector": spec.get("selector")}
        elif kind == "PersistentVolumeClaim":
            facts[object_key(obj, namespace)] = _claim(spec)
        elif kind == "Service":
            facts[object_key(obj, namespace)] = {"clusterIP": spec.get("clusterIP")}
    return facts


def quantity_bytes(value: str) -> float:
    for suffix, factor in sorted(_UNITS.items(), key=lambda item: -len(item[0])):
        if value.endswith(suffix):
            return float(value[: -len(suffix)]) * factor
    return float(value)


def changes(previous: dict[str, Facts], current: dict[str, Facts]
            ) -> Iterable[tuple[str, str, str, bool]]:
    """(object key, what changed, what to do, refused) for each immutable field that differs
    between two builds; `refused` is False for a change the server may accept (a claim that
    grows)."""
    for key in sorted(set(previous) & set(current)):
        old, new = previous[key], current[key]
        if old == new:
            continue
        kind, namespace, name = key.split("/", 2)
        if kind == "PersistentVolumeClaim":
            yield from _claim_change(key, namespace, name, old, new)
        elif kind == "StatefulSet":
            yield key, _what(old, new), _statefulset_steps(namespace, name, old, new), True
        elif kind == "Deployment":
            yield (key, _what(old, new), f"delete it first (kubectl -n {namespace} delete "
                   f"deployment {name}); its pods restart", True)
        elif kind == "Service":
            yield (key, _what(old, new), f"delete it first (kubectl -n {namespace} delete "
                   f"service {name}); clients reconnect", True)


def _claim_change(key: str, namespace: str, name: str, old: Facts, new: Facts
                  ) -> Iterable[tuple[str, str, str, bool]]:
    fixed = {k: v for k, v in old.items() if k != "storage"}
    if fixed != {k: v for k, v in new.items() if k != "storage"}:
        yield (key, _what(old, new), f"the claim must be made anew: delete it (kubectl -n "
               f"{namespace} delete pvc {name}; its cached model is downloaded again)", True)
        return
    if quantity_bytes(new["storage"]) < quantity_bytes(old["storage"]):
        yield (key, f"storage {old['storage']} -> {new['storage']}",
               "a claim never shrinks: keep the size, or delete the claim "
               f"(kubectl -n {namespace} delete pvc {name}) and download the model again",
               True)
    else:
        yield (key, f"storage {old['storage']} -> {new['storage']}",
               "the claim grows in place only where its StorageClass sets "
               "allowVolumeExpansion: true; elsewhere every sync fails on it", False)


def _statefulset_steps(namespace: str, name: str, old: Facts, new: Facts) -> str:
    steps = []
    old_claims, new_claims = old.get("volumeClaimTemplates", {}), new.get("volumeClaimTemplates",
                                                                         {})
    for template, claim in new_claims.items():
        before = old_claims.get(template)
        if before and before["storage"] != claim["storage"] and \
                {k: v for k, v in before.items() if k != "storage"} == \
                {k: v for k, v in claim.items() if k != "storage"}:
            steps.append(f"grow each existing claim {template}-{name}-N (kubectl -n {namespace} "
                         f"patch pvc {template}-{name}-0 -p '{{\"spec\":{{\"resources\":"
                         f"{{\"requests\":{{\"storage\":\"{claim['storage']}\"}}}}}}}}', and "
                         "so on; the StorageClass must allow volume expansion)")
        elif before and before != claim:
            steps.append(f"delete the claims {template}-{name}-N (their cached model is "
                         "downloaded again)")
    steps.append(f"delete the StatefulSet but not its pods (kubectl -n {namespace} delete "
                 f"statefulset {name} --cascade=orphan)")
    return "; ".join(steps)


def _what(old: Facts, new: Facts) -> str:
    changed = [key for key in sorted(set(old) | set(new)) if old.get(key) != new.get(key)]
    return ", ".join(f"{key} {_short(old.get(key))} -> {_short(new.get(key))}"
                     for key in changed)


def _short(value: Any) -> str:
    if isinstance(value, dict) and all(isinstance(v, dict) for v in value.values()) and value:
        return "; ".join(f"{k}: {_short(v)}" for k, v in value.items())
    if isinstance(value, dict):
        return " ".join(f"{k}={v}" for k, v in value.items() if v not in (None, []))
    return str(value)


def kind_switches(previous: dict[str, Facts], current: dict[str, Facts]
                  ) -> Iterable[tuple[str, str, str]]:
    """(new key, old kind, what happens) for a workload that changes between Deployment and
    StatefulSet (replicas 1 <-> N on a ReadWriteOnce cache)."""
    workloads = ("Deployment", "StatefulSet")
    for key in sorted(current):
        kind, namespace, name = key.split("/", 2)
        if kind not in workloads:
            continue
        old_kind = next((k for k in workloads if k != kind), "")
        old = previous.get(f"{old_kind}/{namespace}/{name}")
        if old is None:
            continue
        if old_kind == "StatefulSet":
            claims = [f"{template}-{name}-N" for template in old.get("volumeClaimTemplates", {})]
        else:
            claims = [k.split("/", 2)[2] for k in previous
                      if k.startswith(f"PersistentVolumeClaim/{namespace}/{name}-")]
        yield (key, old_kind,
               f"the next sync prunes the {old_kind} and creates the {kind}; the claims "
               f"{', '.join(claims) or 'of the old workload'} are left behind (caches are "
               "never pruned; delete them when unneeded), and the model weights are "
               "downloaded again into the new claims")


def problems(previous: dict[str, Facts], current: dict[str, Facts],
             where: dict[str, tuple[str, int, int, str]], *, accepted: bool
             ) -> tuple[list[Problem], list[Problem]]:
    """(errors, warnings) for the changes; `where` locates an object key at its spec line.
    With `accepted`, the user has done the steps: refusals become warnings."""
    errors, warnings = [], []
    for key, what, steps, refused in changes(previous, current):
        file, line, column, path = where.get(key, ("", 0, 0, ""))
        message = f"{key} cannot change in place on the cluster: {what}"
        if refused and not accepted:
            errors.append(Problem(file, line, column, path, message,
                                  f"{steps}; then build again with --accept-immutable-changes "
                                  "and sync"))
        else:
            warnings.append(Problem(file, line, column, path, message, steps))
    for key, old_kind, what in kind_switches(previous, current):
        file, line, column, path = where.get(key, ("", 0, 0, ""))
        warnings.append(Problem(file, line, column, path,
                                f"{key} was a {old_kind} in the last build", what))
    return errors, warnings
