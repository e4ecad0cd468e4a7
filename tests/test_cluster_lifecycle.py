"""The first sync and later changes as Argo CD, Flux and Helm carry them out
(tests/cluster_models.py), on objects both engines render: sync waves with
WaitForFirstConsumer storage, the Namespace on a fresh cluster with Pod Security admission,
and what pruning leaves behind."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from cluster_models import SYNC_WAVE, argocd_sync, by_kind, deleted_by, workloads
from conftest import ENGINES, Rendered, render_spec
from modelapi_compile.cli import cli
from modelapi_compile.resolve.pod_security import level_violations
from modelapi_compile.verify.engines import load_yaml_documents

SPEC = """\
apiVersion: modelapi.dev/v1alpha1
kind: ModelStack
metadata: {name: life}
spec:
  namespace: llm
  modelAPIs:
    - name: qwen
      vllm: {model: Qwen/Qwen2.5-0.5B-Instruct, gpu: {count: 1}}
    - name: local
      ollama: {models: ["smollm2:135m"]}
    - name: gateway
      litellm:
        models:
          - {name: small, backend: qwen, model: Qwen/Qwen2.5-0.5B-Instruct}
          - {name: tiny, backend: local, model: "smollm2:135m"}
  agents:
    - {name: helper, image: "ghcr.io/example/helper:1.0.0", modelAPI: gateway, model: small}
  environments:
    - name: prod
      namespace: llm-prod
    - name: cpu-only
      namespace: llm-cpu
      patch:
        modelAPIs:
          - {name: qwen, $patch: delete}
          - name: gateway
            litellm:
              models:
                - {name: small, $patch: delete}
        agents:
          - {name: helper, model: tiny}
  gitops:
    repoURL: https://github.com/example/gitops.git
    argocd: {enabled: true, source: kustomize}
    flux: {enabled: true, source: kustomize}
"""


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("life")


@pytest.fixture(scope="module")
def rendered(helm: Any, kustomize: Any, folder: Path) -> Rendered:
    return render_spec(SPEC, folder, helm, kustomize)


@pytest.mark.parametrize("engine", ENGINES)
def test_argocd_sync_completes_with_wait_for_first_consumer_claims(rendered: Rendered,
                                                                   engine: str) -> None:
    for env, objects in rendered[engine].items():
        claims = by_kind(objects, "PersistentVolumeClaim")
        assert claims, env
        # The chart relies on CreateNamespace=true; the overlays bring their Namespace.
        assert argocd_sync(objects, create_namespace=engine == "helm") == [], env
    # the model does catch the old layout: a claim one wave ahead of its workload
    objects = copy.deepcopy(rendered["kustomize"]["prod"])
    for claim in by_kind(objects, "PersistentVolumeClaim").values():
        claim["metadata"]["annotations"][SYNC_WAVE] = "-1"
    assert "stays Pending" in argocd_sync(objects)[0]


def test_flux_kustomize_on_a_fresh_cluster_creates_the_namespace(rendered: Rendered,
                                                                 folder: Path) -> None:
    """Flux applies the overlay into targetNamespace with nothing else on the cluster: the
    overlay itself must create that namespace, with Pod Security labels its pods meet."""
    for env, objects in rendered["kustomize"].items():
        flux = load_yaml_documents(
            (folder / "out" / "gitops" / "flux" / f"life-{env}.yaml").read_text())[0]
        target = flux["spec"]["targetNamespace"]
        namespaces = by_kind(objects, "Namespace")
        assert list(namespaces) == [target], env
        assert argocd_sync(objects) == [], env  # and nothing needs a namespace before it
        labels = namespaces[target]["metadata"]["labels"]
        level = labels["pod-security.kubernetes.io/enforce"]
        for workload in workloads(objects):
            pod = workload["spec"]["template"]["spec"]
            assert level_violations(pod, level) == [], (env, workload["metadata"]["name"])
        # every pod runs as non-root, vLLM included: the namespace enforces restricted
        assert level == "restricted", env
        # neither GitOps tool deletes the namespace (and every cache in it) on prune
        for tool in ("argocd", "flux"):
            assert not deleted_by(tool, namespaces[target]), (env, tool)


def test_argocd_helm_source_creates_the_namespace_with_pod_security_labels(
        rendered: Rendered, tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC.replace("argocd: {enabled: true, source: kustomize}",
                                 "argocd: {enabled: true, source: helm}"))
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["build", "-f", str(spec), "-o", str(out), "--no-helm"])
    assert result.exit_code == 0, result.output
    for env, objects in rendered["helm"].items():
        app = load_yaml_documents(
            (out / "gitops" / "argocd" / f"life-{env}.yaml").read_text())[0]
        policy = app["spec"]["syncPolicy"]
        assert "CreateNamespace=true" in policy["syncOptions"]
        level = policy["managedNamespaceMetadata"]["labels"]["pod-security.kubernetes.io/enforce"]
        for workload in workloads(objects):
            assert level_violations(workload["spec"]["template"]["spec"], level) == [], env


@pytest.mark.parametrize("engine", ENGINES)
def test_removing_a_modelapi_keeps_its_cache_under_every_tool(rendered: Rendered,
                                                              engine: str) -> None:
    """The cpu-only environment is prod without the vLLM modelAPI: what prod has and
    cpu-only lacks is what a tool prunes when the spec drops `qwen`."""
    before = {(o["kind"], o["metadata"]["name"]): o for o in rendered[engine]["prod"]}
    after = {(o["kind"], o["metadata"]["name"]) for o in rendered[engine]["cpu-only"]}
    gone = [obj for key, obj in before.items() if key not in after
            and obj["kind"] != "Namespace"]
    assert ("PersistentVolumeClaim", "life-qwen-cache") in {
        (o["kind"], o["metadata"]["name"]) for o in gone}
    for tool in ("argocd", "flux", "helm"):
        deleted = {(o["kind"], o["metadata"]["name"]) for o in gone if deleted_by(tool, o)}
        assert ("Deployment", "life-qwen") in deleted, tool  # pruning still works
        assert not {k for k in deleted if k[0] == "PersistentVolumeClaim"}, tool


def test_build_summary_names_the_claims_left_behind(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    out = tmp_path / "out"
    spec.write_text(SPEC)
    first = CliRunner().invoke(cli, ["build", "-f", str(spec), "-o", str(out), "--no-helm"])
    assert first.exit_code == 0 and "left behind" not in first.output
    spec.write_text(SPEC.replace("    - name: qwen\n      vllm:", "    - name: qwen2\n      vllm:")
                    .replace("backend: qwen,", "backend: qwen2,")
                    .replace("{name: qwen, $patch", "{name: qwen2, $patch"))
    second = CliRunner().invoke(cli, ["build", "-f", str(spec), "-o", str(out), "--no-helm"])
    assert second.exit_code == 0, second.output
    lines = [line for line in second.output.splitlines() if line.startswith("left behind")]
    assert lines == ["left behind: PersistentVolumeClaim llm-prod/life-qwen-cache is no longer "
                     "in the spec; Argo CD, Flux and Helm keep model caches, delete it by hand "
                     "when unneeded"]
