"""Issue 13, done when: the platform stack (tests/cases/valid/platform.yaml) builds, and for
the objects Helm and Kustomize render for each of its environments none of the first-deploy
and at-scale failures holds, judged by the real scheduler (tests/control_plane.py) and,
where nothing real runs here, the controller models of tests/cluster_models.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cluster_models import (
    Address,
    NetworkPolicies,
    Pod,
    argocd_sync,
    by_kind,
    deleted_by,
    pod_of,
    selector_matches,
    workloads,
)
from conftest import CASES, ENGINES, Rendered, render_spec
from control_plane import node, pods_fit
from modelapi_compile.resolve.pod_security import level_violations
from modelapi_compile.verify.engines import load_yaml_documents
from test_cluster_workloads import (
    GPU_TAINT,
    _duration,
    _lowest_available,
    _pod_ready_worst_case,
    _rollout_worst_case,
)

PLATFORM = CASES / "valid" / "platform.yaml"
ENVIRONMENTS = {"gke": "llm", "eks": "llm-eks"}


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("platform")


@pytest.fixture(scope="module")
def rendered(helm: Any, kustomize: Any, folder: Path) -> Rendered:
    return render_spec(PLATFORM, folder, helm, kustomize)


def _cases(rendered: Rendered) -> list[tuple[str, str, list[dict[str, Any]]]]:
    return [(engine, env, rendered[engine][env]) for engine in ENGINES for env in ENVIRONMENTS]


def test_none_of_the_first_deploy_failures(rendered: Rendered, folder: Path) -> None:
    for engine, env, objects in _cases(rendered):
        where = (engine, env)
        # 1: every sync wave completes with WaitForFirstConsumer claims
        assert argocd_sync(objects, create_namespace=engine == "helm") == [], where
        # 2: every pod resolves names through kube-dns, NodeLocal DNSCache, GKE's metadata DNS
        policies = NetworkPolicies.of(objects)
        for workload in workloads(objects):
            pod = pod_of(workload)
            for protocol in ("UDP", "TCP"):
                assert policies.connects(pod, Pod("kube-system", {"k8s-app": "kube-dns"}),
                                         53, protocol), where
                for resolver in ("169.254.20.10", "169.254.169.254"):
                    assert policies.egress_allowed(pod, Address(resolver), 53, protocol), where
        # 3: on a fresh cluster the overlay creates Flux's target namespace, labelled for
        # Pod Security at a level its pods meet
        if engine == "kustomize":
            flux = load_yaml_documents((folder / "out" / "gitops" / "flux" /
                                        f"platform-{env}.yaml").read_text())[0]
            namespace = by_kind(objects, "Namespace")[flux["spec"]["targetNamespace"]]
            level = namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"]
            for workload in workloads(objects):
                assert level_violations(workload["spec"]["template"]["spec"], level) == []
        # 5: no two replicas on one single-writer claim
        claims = by_kind(objects, "PersistentVolumeClaim")
        for workload in workloads(objects):
            replicas = workload["spec"].get("replicas", 1)
            for volume in workload["spec"]["template"]["spec"].get("volumes", []):
                claim = (volume.get("persistentVolumeClaim") or {}).get("claimName")
                if claim and replicas > 1 and claim in claims:
                    assert claims[claim]["spec"]["accessModes"] == ["ReadWriteMany"], where
        assert "platform-llama70b" in by_kind(objects, "StatefulSet"), where
        # 6: no agent holds the proxy's master key
        for name in ("platform-planner", "platform-summarizer"):
            agent = by_kind(objects, "Deployment")[name]
            env_vars = {e["name"]: e for e in
                        agent["spec"]["template"]["spec"]["containers"][0]["env"]}
            secret = env_vars["MODEL_API_KEY"]["valueFrom"]["secretKeyRef"]["name"]
            assert secret != "litellm-master", where


def test_none_of_the_failures_at_scale(rendered: Rendered, folder: Path,
                                      control_plane: Any) -> None:
    for engine, env, objects in _cases(rendered):
        where = (engine, env)
        # 7: no Deployment is declared failed during a normal model load
        for workload in by_kind(objects, "Deployment").values():
            needed = _pod_ready_worst_case(workload)
            if workload["spec"]["strategy"]["type"] == "Recreate":
                needed += workload["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
            assert workload["spec"]["progressDeadlineSeconds"] >= needed, where
        # 8: Flux waits for each rollout as long as it may take (each model server in a
        # Kustomization of its own, so it holds up no other change)
        kustomizations = load_yaml_documents((folder / "out" / "gitops" / "flux" /
                                              f"platform-{env}.yaml").read_text())
        timeout_of = {check["name"]: _duration(k["spec"]["timeout"]) for k in kustomizations
                      for check in k["spec"].get("healthChecks", [])}
        for workload in workloads(objects):
            assert timeout_of[workload["metadata"]["name"]] >= _rollout_worst_case(workload), (
                where, workload["metadata"]["name"])
        # 9: replicated models keep serving through a rollout
        for name in ("platform-llama70b", "platform-qwen", "platform-gateway"):
            workload = next(w for w in workloads(objects) if w["metadata"]["name"] == name)
            assert _lowest_available(workload) >= workload["spec"]["replicas"] - 1, where
        assert _lowest_available(by_kind(objects, "Deployment")["platform-qwen"]) == 3
        # 10 and 11: the GPU pods fit the GPU nodes of the environment and only those (the
        # real scheduler decides)
        big = by_kind(objects, "StatefulSet")["platform-llama70b"]["spec"]["template"]["spec"]
        if env == "eks":
            spot = {"key": "karpenter.sh/capacity-type", "value": "spot",
                    "effect": "NoSchedule"}
            labels = {"karpenter.k8s.aws/instance-gpu-name": "a100"}
            right = node(f"p4de-{engine}-{env}", {**labels,
                                            "karpenter.k8s.aws/instance-gpu-memory": "81920"},
                         (GPU_TAINT, spot), 8)
            wrong = node(f"p4d-{engine}-{env}", {**labels,
                                           "karpenter.k8s.aws/instance-gpu-memory": "40960"},
                         (GPU_TAINT, spot), 8)
        else:
            right = node(f"a2-ultragpu-4g-{engine}",
                         {"cloud.google.com/gke-accelerator": "nvidia-a100-80gb"},
                         (GPU_TAINT,), 4)
            wrong = node(f"a2-highgpu-4g-{engine}",
                         {"cloud.google.com/gke-accelerator": "nvidia-tesla-a100"},
                         (GPU_TAINT,), 4)
        fit_right, fit_wrong = pods_fit(control_plane, [(big, right), (big, wrong)])
        assert fit_right == [] and fit_wrong, where
        # 12: model caches survive pruning by every tool
        caches = list(by_kind(objects, "PersistentVolumeClaim").values())
        assert caches, where
        for claim in caches:
            for tool in ("argocd", "flux", "helm"):
                assert not deleted_by(tool, claim), (where, tool, claim["metadata"]["name"])
        # 14: selectors never use the label Argo CD's label tracking rewrites
        for obj in objects:
            spec = obj.get("spec") or {}
            for selector in (spec.get("selector"), spec.get("podSelector")):
                if isinstance(selector, dict):
                    flat = {**selector.get("matchLabels", {}), **selector}
                    assert "app.kubernetes.io/instance" not in flat, (where, obj["kind"])
        for workload in workloads(objects):
            labels = workload["spec"]["template"]["metadata"]["labels"]
            assert selector_matches(workload["spec"]["selector"],
                                    {**labels, "app.kubernetes.io/instance": "rewritten"})
