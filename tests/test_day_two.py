"""Day two (issue 22): changes after the first sync keep syncing, and nothing outside the
stack breaks. Each test plays what a platform team does to a running stack, on the objects
the build writes, with the controllers' behaviour modelled in tests/cluster_models.py."""

from __future__ import annotations

import copy
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from cluster_models import (
    applicationset_finalizers,
    deleted_with_application,
    selector_matches,
)
from conftest import REPO
from modelapi_compile.cli import cli
from modelapi_compile.commands.importer import import_spec
from modelapi_compile.commands.init import starter_spec
from modelapi_compile.emit.flux import ROLLOUTS_DIR
from modelapi_compile.pipeline import Compiled, compile_spec
from modelapi_compile.problems import SpecError
from modelapi_compile.spec.validate import load_spec

Obj = dict[str, Any]
EXAMPLE = REPO / "examples" / "agentic.yaml"
FINALIZER = "resources-finalizer.argocd.argoproj.io"


def example() -> Obj:
    data: Obj = yaml.safe_load(EXAMPLE.read_text())
    return data


def compiled(data: Obj, tmp_path: Path, name: str = "spec.yaml") -> Compiled:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return compile_spec(str(path), use_helm=False, keep_objects=True)


def problems(text: str, tmp_path: Path) -> list[str]:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(SpecError) as error:
        load_spec(str(path))
    return [p.render() for p in error.value.problems]


def gitops(result: Compiled, path: str) -> list[Obj]:
    return result.gitops[path]


def overlay_objects(result: Compiled, env: str) -> list[Obj]:
    """What `kustomize build overlays/<env>` applies: the environment's objects and the
    objects only the overlay has (its Namespace)."""
    files = dict(result.files)
    prefix = f"overlays/{env}/"
    return [document for path, text in sorted(files.items())
            if path.startswith(prefix) and path.endswith(".yaml")
            and not path.endswith("kustomization.yaml")
            for document in yaml.safe_load_all(text) if document]


# ----------------------------------------------------------------- item 3: shared namespaces


def _shared_everywhere(source: str = "helm") -> Obj:
    data = example()
    data["spec"]["sharedNamespace"] = True
    data["spec"]["gitops"]["argocd"]["source"] = source
    return data


@pytest.mark.parametrize("source", ["helm", "kustomize"])
def test_a_shared_namespace_is_neither_created_nor_relabelled(source: str,
                                                              tmp_path: Path) -> None:
    result = compiled(_shared_everywhere(source), tmp_path)
    for env in ("dev", "prod"):
        kinds = {obj["kind"] for obj in overlay_objects(result, env)}
        assert "Namespace" not in kinds
        app = gitops(result, f"gitops/argocd/agentic-{env}.yaml")[0]
        policy = app["spec"]["syncPolicy"]
        # CreateNamespace with managed metadata would label someone else's namespace.
        assert "CreateNamespace=true" not in policy.get("syncOptions", [])
        assert "managedNamespaceMetadata" not in policy
    project_data = _shared_everywhere(source)
    project_data["spec"]["gitops"]["argocd"] |= {"createProject": True, "project": "agentic"}
    project = gitops(compiled(project_data, tmp_path, "project.yaml"),
                     "gitops/argocd/appproject.yaml")[0]
    assert "clusterResourceWhitelist" not in project["spec"]  # no cluster-scoped object


def test_a_shared_namespace_under_flux_helm_is_not_created(tmp_path: Path) -> None:
    data = _shared_everywhere()
    data["spec"]["gitops"]["flux"]["source"] = "helm"
    release = gitops(compiled(data, tmp_path), "gitops/flux/agentic-prod.yaml")[0]
    assert release["spec"]["install"]["createNamespace"] is False


def test_in_a_shared_namespace_every_policy_selects_only_the_stacks_pods(tmp_path: Path
                                                                          ) -> None:
    result = compiled(_shared_everywhere(), tmp_path)
    someone_else = {"app": "someone-else", "app.kubernetes.io/name": "web"}
    for env in ("dev", "prod"):
        policies = [o for o in overlay_objects(result, env) if o["kind"] == "NetworkPolicy"]
        assert policies
        selecting = [p["metadata"]["name"] for p in policies
                     if selector_matches(p["spec"]["podSelector"], someone_else)]
        assert selecting == []


def test_in_its_own_namespace_the_stack_denies_by_default_for_every_pod(tmp_path: Path
                                                                         ) -> None:
    result = compiled(example(), tmp_path)
    objects = overlay_objects(result, "prod")
    deny = next(o for o in objects if o["metadata"]["name"] == "agentic-default-deny")
    assert selector_matches(deny["spec"]["podSelector"], {"app": "someone-else"})
    namespace = next(o for o in objects if o["kind"] == "Namespace")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"]


def test_default_counts_as_shared_unless_the_spec_says_otherwise(tmp_path: Path) -> None:
    data = example()
    data["spec"]["environments"][1]["namespace"] = "default"
    result = compiled(data, tmp_path)
    assert "Namespace" not in {o["kind"] for o in overlay_objects(result, "prod")}
    assert "Namespace" in {o["kind"] for o in overlay_objects(result, "dev")}
    data["spec"]["sharedNamespace"] = False  # the cluster's default namespace is ours
    result = compiled(data, tmp_path, "owned.yaml")
    assert "Namespace" in {o["kind"] for o in overlay_objects(result, "prod")}


def test_one_environment_declares_its_namespace_shared_through_its_patch(tmp_path: Path
                                                                          ) -> None:
    data = example()
    data["spec"]["environments"][0]["patch"]["sharedNamespace"] = True
    data["spec"]["gitops"]["argocd"]["applicationSet"] = True
    result = compiled(data, tmp_path)
    assert "Namespace" not in {o["kind"] for o in overlay_objects(result, "dev")}
    assert "Namespace" in {o["kind"] for o in overlay_objects(result, "prod")}
    # The one ApplicationSet creates and labels prod's namespace, never dev's.
    appset = gitops(result, "gitops/argocd/applicationset.yaml")[0]
    generated = {element["env"]: _generated(appset, element)
                 for element in appset["spec"]["generators"][0]["list"]["elements"]}
    assert "CreateNamespace=true" not in generated["dev"]["syncOptions"]
    assert "managedNamespaceMetadata" not in generated["dev"]
    assert "CreateNamespace=true" in generated["prod"]["syncOptions"]
    assert generated["prod"]["managedNamespaceMetadata"]["labels"][
        "pod-security.kubernetes.io/enforce"] == "restricted"  # vLLM runs as non-root


def _generated(appset: Obj, element: dict[str, str]) -> Obj:
    """The syncPolicy of the Application the controller generates for `element`: the
    template with its parameters, then the rendered templatePatch merged over it (a
    strategic merge: maps merge, lists are replaced). Enough of Go templates for what the
    build writes: `{{.key}}`, `{{- if not .key }}`, `{{- else }}` and `{{- end }}`."""
    def fill(value: Any) -> Any:
        if isinstance(value, str):
            return re.sub(r"\{\{\.(\w+)\}\}", lambda m: element[m.group(1)], value)
        if isinstance(value, list):
            return [fill(v) for v in value]
        if isinstance(value, dict):
            return {k: fill(v) for k, v in value.items()}
        return value

    policy: Obj = fill(copy.deepcopy(appset["spec"]["template"]["spec"]["syncPolicy"]))
    lines: list[str] = []
    keep = [True]
    for line in appset["spec"].get("templatePatch", "").splitlines():
        directive = re.fullmatch(r"\s*\{\{-\s*(if not \.(\w+)|else|end)\s*\}\}", line)
        if directive and directive.group(2):
            keep.append(keep[-1] and not element[directive.group(2)])
        elif directive and directive.group(1) == "else":
            negated = not keep.pop()
            keep.append(keep[-1] and negated)
        elif directive:
            keep.pop()
        elif keep[-1]:
            lines.append(line)
    patch = fill(yaml.safe_load("\n".join(lines)) or {})
    for key, value in ((patch.get("spec") or {}).get("syncPolicy") or {}).items():
        policy[key] = ({**policy.get(key, {}), **value} if isinstance(value, dict)
                       else value)
    return policy


@pytest.mark.parametrize("namespace", ["kube-system", "kube-public", "kube-node-lease"])
def test_the_clusters_own_namespaces_are_refused_at_their_line(namespace: str,
                                                               tmp_path: Path) -> None:
    text = EXAMPLE.read_text().replace("namespace: agentic-dev", f"namespace: {namespace}")
    found = problems(text, tmp_path)
    assert len(found) == 1
    assert re.match(rf".*bad\.yaml:84:\d+: error: spec\.environments\[0\]\.namespace: "
                    rf"'{namespace}' belongs to the cluster's own components; deploy the "
                    "stack into a namespace of its own", found[0])
    text = EXAMPLE.read_text().replace("  namespace: agentic\n",
                                       f"  namespace: {namespace}\n", 1)
    assert re.match(r".*bad\.yaml:9:\d+: error: spec\.namespace: ", problems(text, tmp_path)[0])


def test_init_and_import_never_default_to_the_default_namespace(tmp_path: Path) -> None:
    starter = yaml.safe_load(starter_spec("shop", ["ollama"], None))
    assert starter["spec"]["namespace"] == "shop"
    with pytest.raises(ValueError, match="cluster's own components"):
        starter_spec("shop", ["ollama"], None, "kube-system")
    config = tmp_path / "config.yaml"
    config.write_text("model_list:\n  - model_name: small\n    litellm_params:\n"
                      "      model: ollama_chat/smollm2:135m\n"
                      "      api_base: http://ollama.models.svc:11434\n")
    text, _ = import_spec([str(config)], stack="gateway")
    assert yaml.safe_load(text)["spec"]["namespace"] == "gateway"
    result = CliRunner().invoke(cli, ["import", str(config), "-o", str(tmp_path / "s.yaml"),
                                      "--namespace", "kube-system"])
    assert result.exit_code == 2
    assert "cluster's own components" in result.output


# ----------------------------------------------------------------- item 4: Flux destinations


def test_flux_refuses_an_environment_that_argocd_sends_elsewhere_without_a_kubeconfig(
        tmp_path: Path) -> None:
    text = EXAMPLE.read_text().replace(
        "      namespace: agentic\n",
        "      namespace: agentic\n      destination: {name: prod-eu}\n", 1)
    found = problems(text, tmp_path)
    assert len(found) == 1  # once, although the merged prod spec is checked too
    assert re.match(r".*bad\.yaml:91:20: error: spec\.environments\[1\]\.destination: "
                    r"environment 'prod' goes to cluster prod-eu under Argo CD, but Flux has "
                    r"no kubeconfig for it .*\(add destination\.kubeConfigSecret", found[0])
    fixed = text.replace("{name: prod-eu}",
                         "{name: prod-eu, kubeConfigSecret: {name: prod-eu, key: value}}")
    spec = tmp_path / "fixed.yaml"
    spec.write_text(fixed)
    result = compile_spec(str(spec), use_helm=False)
    prod = result.gitops["gitops/flux/agentic-prod.yaml"]
    assert {k["spec"]["kubeConfig"]["secretRef"]["name"] for k in prod} == {"prod-eu"}
    app = result.gitops["gitops/argocd/agentic-prod.yaml"][0]
    assert app["spec"]["destination"]["name"] == "prod-eu"


@pytest.mark.parametrize("destination", ["{name: in-cluster}",
                                         "{server: \"https://kubernetes.default.svc\"}"])
def test_argocds_own_cluster_needs_no_kubeconfig(destination: str, tmp_path: Path) -> None:
    spec = tmp_path / "local.yaml"
    spec.write_text(EXAMPLE.read_text().replace(
        "      namespace: agentic\n",
        f"      namespace: agentic\n      destination: {destination}\n", 1))
    prod = compile_spec(str(spec), use_helm=False).gitops["gitops/flux/agentic-prod.yaml"]
    assert all("kubeConfig" not in k["spec"] for k in prod)


# ----------------------------------------------------------------- item 5: Flux waits


def _fix_waits_seconds(kustomizations: list[Obj], stuck: set[str]) -> int:
    """How long a new commit waits, at most, before every Kustomization that applies
    something applies it, while the workloads `stuck` never become ready: kustomize-
    controller (CancelHealthCheckOnNewRevision off, its default) takes a new revision only
    after the running health checks passed or timed out."""
    longest = 0
    for ks in kustomizations:
        spec = ks["spec"]
        if spec["path"].rstrip("/").endswith(ROLLOUTS_DIR):
            continue  # applies nothing: waiting there holds up no change
        checked = ({c["name"] for c in spec.get("healthChecks", [])} if not spec["wait"]
                   else {"every object it applies"} | stuck)
        if checked & stuck:
            longest = max(longest, _seconds(spec["timeout"]))
    return longest


def _seconds(duration: str) -> int:
    units = {"h": 3600, "m": 60, "s": 1}
    return sum(int(n) * units[u] for n, u in re.findall(r"(\d+)([hms])", duration))


def _flux_fleet(tmp_path: Path, parts: int = 1) -> Compiled:
    data = example()
    data["spec"]["gitops"]["overlayParts"] = parts
    data["spec"]["environments"][1]["dependsOn"] = ["dev"]
    # A large model: downloads and loads for up to two hours.
    vllm = data["spec"]["modelAPIs"][1]["vllm"]
    vllm["startupTimeout"] = "2h"
    return compiled(data, tmp_path, f"fleet-{parts}.yaml")


@pytest.mark.parametrize("parts", [1, 3])
def test_a_stuck_model_rollout_blocks_no_fix(parts: int, tmp_path: Path) -> None:
    result = _flux_fleet(tmp_path, parts)
    prod = gitops(result, "gitops/flux/agentic-prod.yaml")
    by_name = {k["metadata"]["name"]: k["spec"] for k in prod}
    model = by_name["agentic-prod-rollout-vllm-hosted"]
    # The model's own Kustomization waits as long as its rollout may take...
    assert _seconds(model["timeout"]) >= 2 * 3600
    assert [c["name"] for c in model["healthChecks"]] == ["agentic-vllm-hosted"]
    # ...while a fix to anything, the model included, is applied at the next interval...
    assert _fix_waits_seconds(prod, {"agentic-vllm-hosted"}) == 0
    # ...and waits at most for a quick rollout when that one is stuck.
    waits = _fix_waits_seconds(prod, {"agentic-litellm-proxy"})
    assert 0 < waits < 3600, waits
    # One Kustomization waiting for everything would hold the fix for the model's hours.
    waiting_for_all = [{"spec": {**spec, "wait": True, "timeout": model["timeout"]}}
                       for spec in by_name.values() if "rollouts" not in spec["path"]]
    assert _fix_waits_seconds(waiting_for_all, {"agentic-vllm-hosted"}) >= 2 * 3600
    # Nothing the overlay applies goes unchecked but the model servers.
    checked = {c["name"] for spec in by_name.values() for c in spec.get("healthChecks", [])}
    workloads = {o["metadata"]["name"] for o in result.objects["prod"]
                 if o["kind"] in ("Deployment", "StatefulSet")}
    assert checked == workloads


def test_an_environment_that_depends_on_another_waits_for_its_models(tmp_path: Path) -> None:
    result = _flux_fleet(tmp_path)
    prod = gitops(result, "gitops/flux/agentic-prod.yaml")[0]
    dev = {k["metadata"]["name"] for k in gitops(result, "gitops/flux/agentic-dev.yaml")}
    assert {d["name"] for d in prod["spec"]["dependsOn"]} == dev
    assert "agentic-dev-rollout-vllm-hosted" in dev


def test_the_health_check_only_folder_applies_nothing(tmp_path: Path, kustomize: Any
                                                      ) -> None:
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["build", "-f", str(EXAMPLE), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert kustomize(out / ROLLOUTS_DIR) == []
    spec = gitops(compile_spec(str(EXAMPLE), use_helm=False),
                  "gitops/flux/agentic-dev.yaml")[-1]["spec"]
    assert spec["path"] == f"./deploy/agentic/{ROLLOUTS_DIR}"


# ----------------------------------------------------------------- item 6: deleting a generator


@pytest.mark.parametrize("source", ["helm", "kustomize"])
def test_deleting_the_applicationset_deletes_no_workload_or_cache(source: str,
                                                                  tmp_path: Path) -> None:
    data = example()
    data["spec"]["gitops"]["argocd"] |= {"applicationSet": True, "source": source}
    result = compiled(data, tmp_path)
    appset = gitops(result, "gitops/argocd/applicationset.yaml")[0]
    finalizers = applicationset_finalizers(appset)
    for env in ("dev", "prod"):
        kept = [o for o in overlay_objects(result, env)
                if not deleted_with_application(finalizers, o)]
        assert len(kept) == len(overlay_objects(result, env))


def test_deleting_an_application_deletes_its_workloads_but_keeps_caches(tmp_path: Path
                                                                        ) -> None:
    result = compiled(example(), tmp_path)
    app = gitops(result, "gitops/argocd/agentic-prod.yaml")[0]
    objects = overlay_objects(result, "prod")
    gone = {(o["kind"], o["metadata"]["name"]) for o in objects
            if deleted_with_application(app["metadata"]["finalizers"], o)}
    assert ("Deployment", "agentic-litellm-proxy") in gone
    kept = {(o["kind"], o["metadata"]["name"]) for o in objects} - gone
    assert kept == {("Namespace", "agentic"),
                    ("PersistentVolumeClaim", "agentic-ollama-cache"),
                    ("PersistentVolumeClaim", "agentic-vllm-hosted-cache")}


# ----------------------------------------------------------------- item 7: -o and gitops.path


def _git_repository(folder: Path) -> Path:
    folder.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(folder)], check=True)
    return folder


def _build(out: Path, spec: Path = EXAMPLE, *extra: str) -> Any:
    return CliRunner().invoke(cli, ["build", "-f", str(spec), "-o", str(out), *extra])


def test_a_build_outside_gitops_path_warns_at_the_spec_line(tmp_path: Path) -> None:
    repo = _git_repository(tmp_path / "gitops")
    result = _build(repo / "deploy" / "other")
    assert result.exit_code == 0, result.output
    assert re.search(r"agentic\.yaml:\d+:\d+: warning: spec\.gitops\.path: this build writes "
                     r"deploy/other of the repository at .*, but the Argo CD Applications and "
                     r"Flux Kustomizations read deploy/agentic \(build with -o .*deploy/agentic"
                     r", or set gitops\.path: deploy/other\)", result.output), result.output
    line = next(i for i, text in enumerate(EXAMPLE.read_text().splitlines(), 1)
                if text.strip().startswith("path: deploy/agentic"))
    assert f"agentic.yaml:{line}:" in result.output
    checked = _build(repo / "deploy" / "other", EXAMPLE, "--check")
    assert checked.exit_code == 0 and "warning: spec.gitops.path" in checked.output


def test_a_build_into_gitops_path_or_outside_any_repository_does_not_warn(tmp_path: Path
                                                                          ) -> None:
    repo = _git_repository(tmp_path / "gitops")
    for out in (repo / "deploy" / "agentic", tmp_path / "elsewhere"):
        result = _build(out)
        assert result.exit_code == 0, result.output
        assert "gitops.path" not in result.output, result.output


# ----------------------------------------------------------------- item 8: spec evolution

# Each rule that refuses a spec which used to build: the edit that turns the example into
# such a spec, the field the refusal names, and what its message tells the user to change.
REFUSALS = {
    "Agent keys": (("      apiKeySecret: {name: simple-math-agent-key, key: key}   # its own "
                    "LiteLLM virtual key\n", ""),
                   "spec.agents[0].modelAPI", "set apiKeySecret"),
    "Redis for stateful routing": (("          strategy: simple-shuffle\n",
                                    "          strategy: least-busy\n"),
                                   "spec.modelAPIs[2].litellm.router.strategy",
                                   "add router.redis"),
    "System namespaces": (("      namespace: agentic-dev\n", "      namespace: kube-system\n"),
                          "spec.environments[0].namespace",
                          "deploy the stack into a namespace of its own"),
    "Flux destinations": (("      namespace: agentic\n",
                           "      namespace: agentic\n      destination: {server: "
                           "\"https://prod.example.com\"}\n"),
                          "spec.environments[1].destination",
                          "add destination.kubeConfigSecret"),
    "LiteLLM keys": (("            backend: vllm-hosted\n",
                      "            backend: vllm-hosted\n            params: {rmp: 10}\n"),
                     "spec.modelAPIs[2].litellm.models[1].params.rmp",
                     "did you mean 'rpm'? or, for a key newer than LiteLLM 1.90.6, list it in "
                     "spec.modelAPIs[2].litellm.allowUnknownKeys"),
}


@pytest.mark.parametrize("rule", sorted(REFUSALS))
def test_each_new_refusal_says_what_to_change_and_is_in_the_changelog(
        rule: str, tmp_path: Path) -> None:
    (old, new), field, fix = REFUSALS[rule]
    text = EXAMPLE.read_text()
    if rule == "Redis for stateful routing":
        text = text.replace("        replicas: 1\n        masterKeySecret",
                            "        replicas: 2\n        masterKeySecret")
    assert old in text
    spec = tmp_path / "old.yaml"
    spec.write_text(text.replace(old, new, 1))
    result = CliRunner().invoke(cli, ["validate", "-f", str(spec)])
    assert result.exit_code == 1
    errors = [line for line in result.output.splitlines() if ": error: " in line]
    assert len(errors) == 1, result.output
    assert re.match(rf"{re.escape(str(spec))}:\d+:\d+: error: {re.escape(field)}: .+"
                    rf"{re.escape(fix)}", errors[0]), errors[0]
    changelog = (REPO / "docs" / "changelog.md").read_text()
    assert f"- **{rule}**" in changelog


# --- 1 immutable fields: the refusal and its escape, as a user meets them -----------------------


def test_an_immutable_change_is_refused_at_its_line_until_accepted(tmp_path: Path) -> None:
    """A replicated model's claim template (StatefulSet volumeClaimTemplates) cannot change on
    the cluster: the next build into the folder refuses the new size at the modelAPI's line,
    with the kubectl steps; --accept-immutable-changes, once they are done, lets it through,
    and the folder then holds the new size."""
    text = EXAMPLE.read_text()
    assert "cache: {size: 50Gi" in text and "      replicas: 1\n" in text
    spec = tmp_path / "stack.yaml"
    spec.write_text(text.replace("      replicas: 1\n", "      replicas: 2\n", 1))
    out = tmp_path / "out"
    first = CliRunner().invoke(cli, ["build", "-f", str(spec), "-o", str(out)])
    assert first.exit_code == 0, first.output
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    spec.write_text(spec.read_text().replace("cache: {size: 50Gi", "cache: {size: 80Gi"))
    refused = CliRunner().invoke(cli, ["build", "-f", str(spec), "-o", str(out)])
    assert refused.exit_code == 1
    line = next(i for i, row in enumerate(spec.read_text().splitlines(), 1)
                if "- name: vllm-hosted" in row)
    assert f"{spec}:{line}:" in refused.output
    assert "cannot change in place" in refused.output and "kubectl" in refused.output
    assert refused.output.count("cannot change in place") == len(
        re.findall(r"^\s*- name: (dev|prod)$", text, re.M))  # once per environment
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    accepted = CliRunner().invoke(cli, ["build", "-f", str(spec), "-o", str(out),
                                        "--accept-immutable-changes"])
    assert accepted.exit_code == 0, accepted.output
    assert any("80Gi" in p.read_text() for p in (out / "overlays").rglob("statefulset-*"))
