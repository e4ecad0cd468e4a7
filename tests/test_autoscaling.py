"""Autoscaling as the controllers see it: KEDA's ScaledObject and the HPAs that real Helm and
Kustomize render, Argo CD and Flux syncing an autoscaled Deployment without reverting the
autoscaler's replica count, and PodDisruptionBudgets that never block a drain."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from jsonschema import Draft7Validator

from conftest import CASES
from modelapi_compile.cli import cli
from modelapi_compile.pipeline import compile_spec
from modelapi_compile.verify.engines import render_chart

KNOBS = CASES / "valid" / "production-knobs.yaml"
ENVS = {"dev": "llm-dev", "prod": "llm"}
Obj = dict[str, Any]
Objects = dict[tuple[str, str], Obj]


@pytest.fixture(scope="module")
def build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("knobs")
    result = CliRunner().invoke(cli, ["build", "-f", str(KNOBS), "-o", str(out)])
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def engines(build: Path, helm: Any, kustomize: Any) -> dict[tuple[str, str], Objects]:
    """What Helm and Kustomize render per environment, by (engine, env)."""
    found: dict[tuple[str, str], Objects] = {}
    for env, namespace in ENVS.items():
        for engine, objects in (
                ("helm", render_chart(helm, build / "charts" / "knobs", env, namespace)),
                ("kustomize", kustomize(build / "overlays" / env))):
            found[(engine, env)] = {(o["kind"], o["metadata"]["name"]): o for o in objects}
    return found


def both(engines: dict[tuple[str, str], Objects], env: str) -> list[Objects]:
    return [engines[("helm", env)], engines[("kustomize", env)]]


def test_keda_scales_vllm_on_its_queue_per_replica(engines: Any, shared_crds: Path) -> None:
    schema = json.loads((shared_crds / "keda.sh" / "scaledobject_v1alpha1.json").read_text())
    for env, namespace in ENVS.items():
        for objs in both(engines, env):
            scaled = objs[("ScaledObject", "knobs-qwen")]
            assert list(Draft7Validator(schema).iter_errors(scaled)) == []
            spec = scaled["spec"]
            assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                              "name": "knobs-qwen"}
            assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == (1, 4)
            trigger = spec["triggers"][0]
            assert trigger["type"] == "prometheus"
            # AverageValue: KEDA's HPA divides the summed queue by the replica count, so the
            # threshold is waiting requests per replica.
            assert trigger["metricType"] == "AverageValue"
            meta = trigger["metadata"]
            assert meta["serverAddress"] == "http://prometheus-operated.monitoring.svc:9090"
            assert meta["query"] == ("sum(vllm:num_requests_waiting"
                                     f'{{namespace="{namespace}",service="knobs-qwen"}})')
            assert meta["threshold"] == "5"
            # Each environment's query reads its own namespace's pods, never another's.
            assert f'namespace="{namespace}"' in meta["query"]
            deployment = objs[("Deployment", "knobs-qwen")]
            assert "replicas" not in deployment["spec"]
            service_monitor = objs[("ServiceMonitor", "knobs-qwen")]
            assert service_monitor["spec"]["endpoints"][0]["path"] == "/metrics"


def test_vllm_scales_to_zero_with_an_activation_threshold(engines: Any) -> None:
    for objs in both(engines, "prod"):
        spec = objs[("ScaledObject", "knobs-nightly")]["spec"]
        assert spec["minReplicaCount"] == 0
        assert spec["cooldownPeriod"] == 900
        meta = spec["triggers"][0]["metadata"]
        assert (meta["threshold"], meta["activationThreshold"]) == ("2", "1")
        # No PDB can hold a pod that may not exist; one exists because up to 2 can run.
        assert objs[("PodDisruptionBudget", "knobs-nightly")]["spec"]["maxUnavailable"] == 1


def test_hpas_on_cpu_for_litellm_and_agents(engines: Any) -> None:
    for objs in both(engines, "prod"):
        for name, bounds, cpu in (("knobs-gateway", (2, 6), 70), ("knobs-helper", (3, 10), 60)):
            hpa = objs[("HorizontalPodAutoscaler", name)]
            assert hpa["apiVersion"] == "autoscaling/v2"
            spec = hpa["spec"]
            assert spec["scaleTargetRef"]["name"] == name
            assert (spec["minReplicas"], spec["maxReplicas"]) == bounds
            assert spec["metrics"] == [{"type": "Resource", "resource": {
                "name": "cpu", "target": {"type": "Utilization", "averageUtilization": cpu}}}]
            deployment = objs[("Deployment", name)]
            assert "replicas" not in deployment["spec"]
            # Utilization is a percentage of the request: without one the HPA cannot work.
            container = deployment["spec"]["template"]["spec"]["containers"][0]
            assert container["resources"]["requests"]["cpu"]


def test_an_environment_can_turn_autoscaling_off(engines: Any) -> None:
    for objs in both(engines, "dev"):
        assert ("HorizontalPodAutoscaler", "knobs-gateway") not in objs
        assert objs[("Deployment", "knobs-gateway")]["spec"]["replicas"] == 1
        assert ("PodDisruptionBudget", "knobs-gateway") not in objs
        assert objs[("HorizontalPodAutoscaler", "knobs-helper")]["spec"]["minReplicas"] == 1


# --- GitOps: the autoscaler's count survives every sync ---------------------------------------


def _pointer_get(obj: Obj, pointer: str) -> Any:
    node: Any = obj
    for part in pointer.strip("/").split("/"):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _pointer_set(obj: Obj, pointer: str, value: Any) -> None:
    parts = pointer.strip("/").split("/")
    node = obj
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    if value is None:
        node.pop(parts[-1], None)
    else:
        node[parts[-1]] = value


def _ignored(app: Obj, obj: Obj) -> list[str]:
    group = obj["apiVersion"].rpartition("/")[0]
    pointers: list[str] = []
    for rule in app["spec"].get("ignoreDifferences", []):
        if (rule["group"], rule["kind"]) == (group, obj["kind"]) and rule.get(
                "name", obj["metadata"]["name"]) == obj["metadata"]["name"]:
            pointers += rule["jsonPointers"]
    return pointers


def _subset_differs(target: Any, live: Any) -> bool:
    """Argo CD's diff, reduced: a field the desired state sets that the live state lacks or
    holds differently (defaulted fields that Git does not set are no difference)."""
    if isinstance(target, dict):
        return not isinstance(live, dict) or any(
            _subset_differs(v, live.get(k)) for k, v in target.items())
    return bool(target != live)


def argocd_sync(app: Obj, desired: Obj, live: Obj) -> tuple[bool, Obj]:
    """(in sync before the sync, live state after it) for one object, modelling Argo CD's
    diff with ignoreDifferences and a server-side-apply sync that honours
    RespectIgnoreDifferences (ignored fields are taken from the live object)."""
    options = app["spec"]["syncPolicy"].get("syncOptions", [])
    target, observed = copy.deepcopy(desired), copy.deepcopy(live)
    for pointer in _ignored(app, desired):
        _pointer_set(target, pointer, None)
        _pointer_set(observed, pointer, None)
    in_sync = not _subset_differs(target, observed)
    applied = copy.deepcopy(desired)
    if "RespectIgnoreDifferences=true" in options:
        for pointer in _ignored(app, desired):
            _pointer_set(applied, pointer, _pointer_get(live, pointer))
    after = copy.deepcopy(live)
    _merge(after, applied)  # server-side apply: the fields the manifest sets win
    return in_sync, after


def _merge(live: Obj, applied: Obj) -> None:
    for key, value in applied.items():
        if isinstance(value, dict) and isinstance(live.get(key), dict):
            _merge(live[key], value)
        else:
            live[key] = copy.deepcopy(value)


def _scaled_by_autoscaler(desired: Obj, replicas: int) -> Obj:
    live = copy.deepcopy(desired)
    live["spec"]["replicas"] = replicas
    live["status"] = {"replicas": replicas}
    return live


def test_argocd_keeps_the_autoscalers_replicas(build: Path, engines: Any) -> None:
    compiled = compile_spec(str(KNOBS), use_helm=False)
    for env in ENVS:
        app = compiled.gitops[f"gitops/argocd/knobs-{env}.yaml"][0]
        objs = engines[("helm", env)]
        autoscaled = {name for (kind, name), o in objs.items()
                      if kind in ("HorizontalPodAutoscaler", "ScaledObject")}
        assert autoscaled
        for name in autoscaled:
            desired = objs[("Deployment", name)]
            live = _scaled_by_autoscaler(desired, 7)
            in_sync, after = argocd_sync(app, desired, live)
            assert in_sync, (env, name)  # no OutOfSync churn from the autoscaler
            assert after["spec"]["replicas"] == 7, (env, name)
        # A Deployment without an autoscaler is still corrected: the model is not blind.
        fixed = objs[("Deployment", "knobs-ollama")]
        in_sync, after = argocd_sync(app, fixed, _scaled_by_autoscaler(fixed, 7))
        assert not in_sync and after["spec"]["replicas"] == fixed["spec"]["replicas"]


def test_argocd_without_respect_option_would_revert_a_fixed_count(engines: Any) -> None:
    """Why the sync option matters: with replicas in the manifest, ignoreDifferences alone
    hides the diff but a sync still writes the manifest's count back."""
    desired = copy.deepcopy(engines[("helm", "prod")][("Deployment", "knobs-qwen")])
    desired["spec"]["replicas"] = 1
    app = {"spec": {"syncPolicy": {"syncOptions": ["ServerSideApply=true"]},
                    "ignoreDifferences": [{"group": "apps", "kind": "Deployment",
                                           "name": "knobs-qwen",
                                           "jsonPointers": ["/spec/replicas"]}]}}
    _, after = argocd_sync(app, desired, _scaled_by_autoscaler(desired, 4))
    assert after["spec"]["replicas"] == 1
    app["spec"]["syncPolicy"]["syncOptions"].append("RespectIgnoreDifferences=true")
    _, after = argocd_sync(app, desired, _scaled_by_autoscaler(desired, 4))
    assert after["spec"]["replicas"] == 4


def helm_upgrade(old: Obj, new: Obj, live: Obj) -> Obj:
    """Helm's three-way merge (Flux's HelmRelease): what the new manifest sets wins, what
    the old one set and the new one dropped is removed, anything else stays as live."""
    after = copy.deepcopy(live)

    def walk(old_node: Any, new_node: Any, live_node: Obj) -> None:
        for key in set(old_node or {}) - set(new_node):
            live_node.pop(key, None)
        for key, value in new_node.items():
            if isinstance(value, dict) and isinstance(live_node.get(key), dict):
                walk((old_node or {}).get(key), value, live_node[key])
            else:
                live_node[key] = copy.deepcopy(value)

    walk(old, new, after)
    return after


def test_flux_never_resets_the_autoscalers_replicas(build: Path, engines: Any) -> None:
    compiled = compile_spec(str(KNOBS), use_helm=False)
    release = compiled.gitops["gitops/flux/knobs-prod.yaml"][0]
    assert release["kind"] == "HelmRelease"
    for name in ("knobs-qwen", "knobs-gateway", "knobs-helper", "knobs-nightly"):
        old = engines[("helm", "prod")][("Deployment", name)]
        new = copy.deepcopy(old)
        new["spec"]["template"]["metadata"]["labels"]["rollout"] = "2"  # any upgrade
        live = _scaled_by_autoscaler(old, 5)
        assert helm_upgrade(old, new, live)["spec"]["replicas"] == 5
        # Kustomization (server-side apply of the overlay): fields absent stay as live.
        applied = copy.deepcopy(live)
        _merge(applied, engines[("kustomize", "prod")][("Deployment", name)])
        assert applied["spec"]["replicas"] == 5


# --- PodDisruptionBudgets ---------------------------------------------------------------------


def disruptions_allowed(pdb: Obj, pods: int) -> int:
    """The disruption controller's arithmetic for `pods` healthy pods of `pods` expected."""
    spec = pdb["spec"]
    if "maxUnavailable" in spec:
        desired_healthy = pods - int(spec["maxUnavailable"])
    else:
        desired_healthy = int(spec["minAvailable"])
    return max(0, pods - desired_healthy)


@pytest.mark.parametrize("env", sorted(ENVS))
def test_pdbs_never_block_a_drain_at_any_replica_count(engines: Any, env: str) -> None:
    for objs in both(engines, env):
        for (kind, name), obj in objs.items():
            if kind != "Deployment":
                continue
            scaler = objs.get(("HorizontalPodAutoscaler", name)) or objs.get(
                ("ScaledObject", name))
            if scaler is None:
                low = high = obj["spec"].get("replicas", 1)
            elif scaler["kind"] == "ScaledObject":
                low, high = scaler["spec"]["minReplicaCount"], scaler["spec"]["maxReplicaCount"]
            else:
                low, high = scaler["spec"]["minReplicas"], scaler["spec"]["maxReplicas"]
            pdb = objs.get(("PodDisruptionBudget", name))
            # A budget exactly where more than one pod can run.
            assert (pdb is not None) == (high > 1), (env, name)
            if pdb is None:
                continue
            assert pdb["spec"]["selector"]["matchLabels"].items() <= \
                obj["spec"]["template"]["metadata"]["labels"].items()
            for pods in range(max(low, 1), high + 1):
                assert disruptions_allowed(pdb, pods) >= 1, (env, name, pods)


def test_every_rendered_object_is_schema_valid(engines: Any, shared_crds: Path) -> None:
    """Both engines, every environment: Kubernetes kinds against the strict schema of
    spec.kubernetesVersion, custom resources against the upstream CRDs (strict)."""
    from modelapi_compile.verify.kubeschemas import SchemaCatalog

    catalog = SchemaCatalog("1.31.0", strict=True)
    kinds = set()
    for objs in engines.values():
        for obj in objs.values():
            group, _, version = obj["apiVersion"].rpartition("/")
            upstream = shared_crds / group / f"{obj['kind'].lower()}_{version}.json"
            if upstream.is_file():
                schema = json.loads(upstream.read_text())
                errors = [e.message for e in Draft7Validator(schema).iter_errors(obj)]
            else:
                builtin = "." not in group or group.endswith(".k8s.io")
                assert builtin, f"no upstream CRD schema for {obj['apiVersion']}"
                errors = [p.message for p in catalog.check(obj)]
            assert errors == [], (obj["kind"], obj["metadata"]["name"], errors)
            kinds.add(obj["kind"])
    assert {"ScaledObject", "HorizontalPodAutoscaler", "PodDisruptionBudget",
            "ServiceMonitor", "Deployment"} <= kinds


def keda_active(triggers: list[Obj], values: list[float | None]) -> bool:
    """KEDA's activation: a ScaledObject leaves zero when any trigger's value exceeds its
    activationThreshold; a query with no series counts as 0 (ignoreNullValues default)."""
    return any((value or 0.0) > float(trigger["metadata"].get("activationThreshold", "0"))
               for trigger, value in zip(triggers, values, strict=True))


def test_litellm_calls_wake_a_model_at_zero(engines: Any, build: Path) -> None:
    import yaml

    for env, namespace in ENVS.items():
        for objs in both(engines, env):
            triggers = objs[("ScaledObject", "knobs-nightly")]["spec"]["triggers"]
            queue, wake = triggers
            # at zero replicas: no vLLM series at all, LiteLLM has made 3 calls
            assert keda_active(triggers, [None, 3.0])
            assert not keda_active([queue], [None])  # the queue alone never wakes it
            assert not keda_active(triggers, [None, 0.0])  # idle stays at zero
            # the wake query selects the api_base LiteLLM really calls for this backend
            config = yaml.safe_load(objs[("ConfigMap", "knobs-gateway-config")]["data"][
                "config.yaml"])
            bases = {m["litellm_params"]["api_base"] for m in config["model_list"]
                     if m["model_name"] == "small"}
            query = wake["metadata"]["query"]
            assert f'namespace="{namespace}"' in query
            assert query.startswith("(sum(increase( litellm_deployment_total_requests_total{")
            pattern = query.split('api_base=~"')[1].split('"')[0]
            assert all(re.fullmatch(pattern, base) for base in bases), (pattern, bases)
            assert not re.fullmatch(pattern, "http://knobs-qwen:8000/v1")
            # a model that never sleeps has only its queue trigger
            assert len(objs[("ScaledObject", "knobs-qwen")]["spec"]["triggers"]) == 1


STATEFUL = """\
apiVersion: modelapi.dev/v1alpha1
kind: ModelStack
metadata: {name: st}
spec:
  namespace: llm
  monitoring: {enabled: true, prometheusURL: "http://prometheus.monitoring.svc:9090"}
  modelAPIs:
    - name: qwen
      vllm:
        model: Qwen/Qwen2.5-0.5B-Instruct
        autoscaling: {minReplicas: 1, maxReplicas: 3}
  gitops:
    repoURL: https://github.com/example/gitops.git
    argocd: {enabled: true}
"""


def test_an_autoscaled_statefulset_keeps_its_count(tmp_path: Path, helm: Any,
                                                   kustomize: Any) -> None:
    """A claim per replica makes the workload a StatefulSet: the scaler targets that kind
    and Argo CD's ignore rule still names it."""
    from conftest import render_spec

    rendered = render_spec(STATEFUL, tmp_path, helm, kustomize)
    compiled = compile_spec(str(tmp_path / "spec.yaml"), use_helm=False)
    app = compiled.gitops["gitops/argocd/st-default.yaml"][0]
    for engine in ("helm", "kustomize"):
        objs = {(o["kind"], o["metadata"]["name"]): o for o in rendered[engine]["default"]}
        workload = objs[("StatefulSet", "st-qwen")]
        assert "replicas" not in workload["spec"]
        target = objs[("ScaledObject", "st-qwen")]["spec"]["scaleTargetRef"]
        assert target == {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "st-qwen"}
        in_sync, after = argocd_sync(app, workload, _scaled_by_autoscaler(workload, 3))
        assert in_sync and after["spec"]["replicas"] == 3
        assert _ignored(app, workload) == ["/spec/replicas"]
