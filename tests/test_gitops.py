"""Argo CD and Flux manifests: they validate against the upstream CRD schemas (strict: no
unknown fields) and the project's own schemas, and they point where the build writes."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft7Validator

from cluster_models import applicationset_finalizers
from conftest import SHARED, missing_engine
from modelapi_compile.emit.argocd import argocd_files
from modelapi_compile.emit.flux import flux_files, git_url
from modelapi_compile.resolve.model import GitOpsPlan
from modelapi_compile.resolve.stack import gitops_plan
from modelapi_compile.spec.loader import load_bytes
from modelapi_compile.spec.validate import validate_document

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "agentic.yaml"
OWN_SCHEMAS = ROOT / "schemas" / "gitops"
UPSTREAM_SCHEMAS = SHARED / "crds-strict"
FINALIZER = "resources-finalizer.argocd.argoproj.io/foreground"

Obj = dict[str, Any]
Files = dict[str, list[Obj]]


# ----------------------------------------------------------------- spec variations


def example_data() -> Obj:
    data: Obj = yaml.safe_load(EXAMPLE.read_text())
    return data


def plan_of(data: Obj) -> GitOpsPlan:
    validated = validate_document(load_bytes(yaml.safe_dump(data).encode(), "x.yaml"))
    plan = gitops_plan(validated)
    assert plan is not None
    return plan


def with_gitops(
    argocd: Obj | None = None,
    flux: Obj | None = None,
    path: str | None = None,
    environments: list[Obj] | None = None,
) -> Obj:
    """The example with its gitops section (and maybe environments) changed."""
    data = example_data()
    gitops = data["spec"]["gitops"]
    gitops["argocd"] |= argocd or {}
    gitops["flux"] |= flux or {}
    if path is not None:
        gitops["path"] = path
    if environments is not None:
        data["spec"]["environments"] = environments
    return data


def split(data: Obj, parts: int = 3) -> Obj:
    data["spec"]["gitops"]["overlayParts"] = parts
    return data


FLEET: list[Obj] = [
    {"name": "dev", "namespace": "agentic-dev"},
    {
        "name": "staging",
        "namespace": "agentic-staging",
        "dependsOn": ["dev"],
        "destination": {
            "server": "https://staging.example.com:6443",
            "kubeConfigSecret": {"name": "staging-kubeconfig", "key": "value"},
        },
    },
    {
        "name": "prod",
        "namespace": "agentic",
        "dependsOn": ["dev", "staging"],
        "destination": {
            "name": "prod-eu",
            "kubeConfigSecret": {"name": "prod-kubeconfig", "key": "value.yaml"},
        },
    },
]

VARIANTS: dict[str, Callable[[], Obj]] = {
    "example": example_data,
    "argo-kustomize-flux-helm": lambda: with_gitops({"source": "kustomize"}, {"source": "helm"}),
    "appset-project-helm": lambda: with_gitops(
        {"applicationSet": True, "createProject": True, "project": "agentic"}
    ),
    "appset-project-kustomize-root": lambda: with_gitops(
        {
            "applicationSet": True,
            "createProject": True,
            "project": "agentic",
            "source": "kustomize",
        },
        {"source": "helm", "secretRef": "git-credentials"},
        path="",
    ),
    "fleet-helm": lambda: with_gitops(
        {"createProject": True, "project": "agentic"},
        {"source": "helm"},
        path="./clusters/fleet/agentic/",
        environments=copy.deepcopy(FLEET),
    ),
    "fleet-kustomize-appset": lambda: with_gitops(
        {"applicationSet": True, "source": "kustomize"},
        {"source": "kustomize"},
        path=".",
        environments=copy.deepcopy(FLEET),
    ),
    "split-fleet-kustomize": lambda: split(with_gitops(
        {"source": "kustomize"}, {"source": "kustomize"}, environments=copy.deepcopy(FLEET))),
    "split-appset-kustomize": lambda: split(with_gitops(
        {"applicationSet": True, "source": "kustomize"}, {"source": "kustomize", "prune": False})),
    "manual-sync": lambda: with_gitops(
        {"syncPolicy": {"automated": False, "createNamespace": False, "serverSideApply": False}}
    ),
}


@pytest.fixture(params=sorted(VARIANTS))
def plan(request: pytest.FixtureRequest) -> GitOpsPlan:
    return plan_of(VARIANTS[request.param]())


def autoscaled(plan: GitOpsPlan, **deployments: tuple[str, ...]) -> GitOpsPlan:
    """The resolver does not fill `autoscaled` yet; set it by environment name."""
    envs = tuple(
        env.model_copy(update={"autoscaled": deployments.get(env.name, ())})
        for env in plan.environments
    )
    return plan.model_copy(update={"environments": envs})


def all_files(plan: GitOpsPlan) -> Files:
    return {**argocd_files(plan), **flux_files(plan)}


def objects(files: Files) -> Iterator[Obj]:
    for name in sorted(files):
        yield from files[name]


def by_kind(files: Files, kind: str, api_group: str) -> list[Obj]:
    return [
        o for o in objects(files) if o["kind"] == kind and o["apiVersion"].startswith(api_group)
    ]


# ----------------------------------------------------------------- schema validation


@pytest.fixture(scope="session")
def upstream() -> Path:
    if not UPSTREAM_SCHEMAS.is_dir():
        missing_engine(f"the upstream CRD schemas in {UPSTREAM_SCHEMAS} (set "
                       "MODELAPI_COMPILE_SHARED to the folder holding crds-strict/)")
    return UPSTREAM_SCHEMAS


def schema_file(root: Path, obj: Obj) -> Path:
    """kubeconform layout: {group}/{kind}_{version}.json"""
    group, _, version = str(obj["apiVersion"]).rpartition("/")
    kind = str(obj["kind"]).lower()
    return root / group / f"{kind}_{version}.json"


def schema_errors(root: Path, obj: Obj) -> list[str]:
    schema = json.loads(schema_file(root, obj).read_text())
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in Draft7Validator(schema).iter_errors(obj)
    ]


def is_crd(obj: Obj) -> bool:
    """kustomization.yaml is a kustomize input, not a cluster object: it has no CRD."""
    return not obj["apiVersion"].startswith("kustomize.config.k8s.io/")


def test_objects_validate_against_upstream_crds(plan: GitOpsPlan, upstream: Path) -> None:
    checked = 0
    for obj in filter(is_crd, objects(all_files(autoscaled(plan, prod=("agentic-vllm",))))):
        assert schema_errors(upstream, obj) == [], obj["metadata"]["name"]
        checked += 1
    assert checked >= 3


def test_objects_validate_against_own_schemas(plan: GitOpsPlan) -> None:
    for obj in objects(all_files(autoscaled(plan, prod=("agentic-vllm",)))):
        assert schema_file(OWN_SCHEMAS, obj).is_file(), obj["kind"]
        assert schema_errors(OWN_SCHEMAS, obj) == [], obj.get("metadata", obj["kind"])


def test_own_schemas_are_draft7_and_strict() -> None:
    files = sorted(OWN_SCHEMAS.rglob("*.json"))
    assert len(files) == 7
    for path in files:
        Draft7Validator.check_schema(json.loads(path.read_text()))
    app = argocd_files(plan_of(example_data()))["gitops/argocd/agentic-dev.yaml"][0]
    broken = copy.deepcopy(app)
    broken["spec"]["source"]["helm"]["valueFile"] = ["values-dev.yaml"]  # a typo
    assert schema_errors(OWN_SCHEMAS, broken)
    both = copy.deepcopy(app)
    both["spec"]["destination"]["name"] = "in-cluster"  # Argo CD rejects server + name
    assert schema_errors(OWN_SCHEMAS, both)


# ----------------------------------------------------------------- Argo CD


def test_disabled_tools_write_nothing() -> None:
    plan = plan_of(with_gitops({"enabled": False}, {"enabled": False}))
    assert argocd_files(plan) == {}
    assert flux_files(plan) == {}


def test_argocd_helm_application_per_environment() -> None:
    files = argocd_files(plan_of(example_data()))
    assert sorted(files) == [
        "gitops/argocd/agentic-dev.yaml",
        "gitops/argocd/agentic-prod.yaml",
        "gitops/argocd/kustomization.yaml",
    ]
    app = files["gitops/argocd/agentic-dev.yaml"][0]
    assert list(app) == ["apiVersion", "kind", "metadata", "spec"]
    assert app["metadata"]["name"] == "agentic-dev"
    assert app["metadata"]["namespace"] == "argocd"
    assert app["metadata"]["finalizers"] == [FINALIZER]
    source = app["spec"]["source"]
    assert source["repoURL"] == "https://github.com/example/gitops.git"
    assert source["targetRevision"] == "main"
    assert source["path"] == "deploy/agentic/charts/agentic"
    assert source["helm"] == {"releaseName": "agentic", "valueFiles": ["values-dev.yaml"]}
    assert app["spec"]["destination"] == {
        "server": "https://kubernetes.default.svc",
        "namespace": "agentic-dev",
    }
    policy = app["spec"]["syncPolicy"]
    assert policy["automated"] == {"prune": True, "selfHeal": True}
    assert policy["syncOptions"] == ["CreateNamespace=true", "ServerSideApply=true"]
    assert policy["retry"]["backoff"]["factor"] == 2
    assert "ignoreDifferences" not in app["spec"]
    prod = files["gitops/argocd/agentic-prod.yaml"][0]
    assert prod["spec"]["destination"]["namespace"] == "agentic"
    assert files["gitops/argocd/kustomization.yaml"][0]["resources"] == [
        "agentic-dev.yaml",
        "agentic-prod.yaml",
    ]


@pytest.mark.parametrize("path, overlays", [("", "overlays"), ("./a/b/", "a/b/overlays")])
def test_argocd_kustomize_path(path: str, overlays: str) -> None:
    files = argocd_files(plan_of(with_gitops({"source": "kustomize"}, path=path)))
    source = files["gitops/argocd/agentic-prod.yaml"][0]["spec"]["source"]
    assert source == {
        "repoURL": "https://github.com/example/gitops.git",
        "targetRevision": "main",
        "path": f"{overlays}/prod",
    }


def test_argocd_root_chart_path() -> None:
    files = argocd_files(plan_of(with_gitops(path="")))
    assert files["gitops/argocd/agentic-dev.yaml"][0]["spec"]["source"]["path"] == "charts/agentic"


def test_argocd_fleet_destinations_and_project() -> None:
    files = argocd_files(
        plan_of(
            with_gitops(
                {"createProject": True, "project": "agentic"}, environments=copy.deepcopy(FLEET)
            )
        )
    )
    dest = {
        name: files[f"gitops/argocd/agentic-{name}.yaml"][0]["spec"]["destination"]
        for name in ("dev", "staging", "prod")
    }
    assert dest["dev"] == {"server": "https://kubernetes.default.svc", "namespace": "agentic-dev"}
    assert dest["staging"] == {
        "server": "https://staging.example.com:6443",
        "namespace": "agentic-staging",
    }
    assert dest["prod"] == {"name": "prod-eu", "namespace": "agentic"}
    project = files["gitops/argocd/appproject.yaml"][0]
    assert project["kind"] == "AppProject"
    assert project["metadata"]["name"] == "agentic"
    assert project["metadata"]["finalizers"] == ["resources-finalizer.argocd.argoproj.io"]
    assert project["spec"]["sourceRepos"] == ["https://github.com/example/gitops.git"]
    assert project["spec"]["destinations"] == [
        {"name": "prod-eu", "namespace": "agentic"},
        {"server": "https://kubernetes.default.svc", "namespace": "agentic-dev"},
        {"server": "https://staging.example.com:6443", "namespace": "agentic-staging"},
    ]
    assert project["spec"]["clusterResourceWhitelist"] == [{"group": "", "kind": "Namespace"}]
    for name in ("dev", "staging", "prod"):
        assert files[f"gitops/argocd/agentic-{name}.yaml"][0]["spec"]["project"] == "agentic"


def test_argocd_manual_sync_policy() -> None:
    data = with_gitops(
        {
            "createProject": True,
            "project": "agentic",
            "syncPolicy": {"automated": False, "createNamespace": False, "serverSideApply": False},
        }
    )
    files = argocd_files(plan_of(data))
    policy = files["gitops/argocd/agentic-dev.yaml"][0]["spec"]["syncPolicy"]
    assert "automated" not in policy
    assert "syncOptions" not in policy
    assert "clusterResourceWhitelist" not in files["gitops/argocd/appproject.yaml"][0]["spec"]


def test_argocd_ignores_autoscaled_replicas() -> None:
    plan = autoscaled(plan_of(example_data()), prod=("agentic-vllm", "agentic-litellm"))
    files = argocd_files(plan)
    prod = files["gitops/argocd/agentic-prod.yaml"][0]["spec"]
    assert prod["ignoreDifferences"] == [
        {"group": "apps", "kind": kind, "name": name, "jsonPointers": ["/spec/replicas"]}
        for name in ("agentic-litellm", "agentic-vllm") for kind in ("Deployment", "StatefulSet")
    ]
    assert "RespectIgnoreDifferences=true" in prod["syncPolicy"]["syncOptions"]
    dev = files["gitops/argocd/agentic-dev.yaml"][0]["spec"]
    assert "ignoreDifferences" not in dev
    assert "RespectIgnoreDifferences=true" not in dev["syncPolicy"]["syncOptions"]


def render(value: Any, params: dict[str, str]) -> Any:
    """Enough of Go templating for `{{.key}}` placeholders, to compare with Applications."""
    if isinstance(value, str):
        return re.sub(r"\{\{\.(\w+)\}\}", lambda m: params[m.group(1)], value)
    if isinstance(value, list):
        return [render(v, params) for v in value]
    if isinstance(value, dict):
        return {k: render(v, params) for k, v in value.items()}
    return value


@pytest.mark.parametrize("source", ["helm", "kustomize"])
def test_applicationset_yields_the_same_applications(source: str) -> None:
    apps = argocd_files(plan_of(with_gitops({"source": source})))
    files = argocd_files(plan_of(with_gitops({"source": source, "applicationSet": True})))
    assert sorted(files) == [
        "gitops/argocd/applicationset.yaml",
        "gitops/argocd/kustomization.yaml",
    ]
    appset = files["gitops/argocd/applicationset.yaml"][0]
    assert appset["kind"] == "ApplicationSet"
    assert appset["metadata"]["name"] == "agentic"
    spec = appset["spec"]
    assert spec["goTemplate"] is True
    assert spec["goTemplateOptions"] == ["missingkey=error"]
    assert "templatePatch" not in spec
    elements = spec["generators"][0]["list"]["elements"]
    assert [e["env"] for e in elements] == ["dev", "prod"]
    for element in elements:
        rendered = render(spec["template"], element)
        expected = apps[f"gitops/argocd/agentic-{element['env']}.yaml"][0]
        # the same Applications, but without the finalizer that cascades their deletion
        assert rendered["metadata"] == {
            k: v for k, v in expected["metadata"].items() if k != "finalizers"}
        assert applicationset_finalizers(appset) == []
        assert rendered["spec"] == expected["spec"]


def test_applicationset_patches_what_varies_in_shape() -> None:
    plan = autoscaled(
        plan_of(with_gitops({"applicationSet": True}, environments=copy.deepcopy(FLEET))),
        prod=("agentic-vllm",),
    )
    appset = argocd_files(plan)["gitops/argocd/applicationset.yaml"][0]
    spec = appset["spec"]
    assert spec["template"]["spec"]["destination"] == {"namespace": "{{.namespace}}"}
    elements = {e["env"]: e for e in spec["generators"][0]["list"]["elements"]}
    assert elements["prod"] == {
        "env": "prod",
        "namespace": "agentic",
        "server": "",
        "cluster": "prod-eu",
        "autoscaled": "agentic-vllm",
        "podSecurity": "restricted",  # vLLM runs as non-root too
        "podSecurityVersion": "v1.31",
        "sharedNamespace": "",
    }
    assert elements["staging"]["server"] == "https://staging.example.com:6443"
    patch = spec["templatePatch"]
    assert patch.startswith("spec:\n  destination:")
    assert "name: {{ .cluster | quote }}" in patch
    assert 'splitList "," .autoscaled' in patch
    assert "ignoreDifferences: []" in patch  # never an empty `spec:` patch
    assert "RespectIgnoreDifferences=true" in spec["template"]["spec"]["syncPolicy"]["syncOptions"]


# ----------------------------------------------------------------- Flux


def test_flux_kustomizations_for_the_example() -> None:
    files = flux_files(plan_of(example_data()))
    assert sorted(files) == [
        "gitops/flux/agentic-dev.yaml",
        "gitops/flux/agentic-prod.yaml",
        "gitops/flux/gitrepository.yaml",
        "gitops/flux/kustomization.yaml",
    ]
    repo = files["gitops/flux/gitrepository.yaml"][0]
    assert repo["apiVersion"] == "source.toolkit.fluxcd.io/v1"
    assert repo["metadata"] == {
        "name": "agentic",
        "namespace": "flux-system",
        "labels": repo["metadata"]["labels"],
    }
    assert repo["spec"] == {
        "interval": "5m",
        "url": "https://github.com/example/gitops.git",
        "ref": {"branch": "main"},
    }
    ks = files["gitops/flux/agentic-dev.yaml"][0]
    assert ks["apiVersion"] == "kustomize.toolkit.fluxcd.io/v1"
    assert ks["kind"] == "Kustomization"
    assert ks["metadata"]["name"] == "agentic-dev"
    assert ks["spec"] == {
        "interval": "5m",
        "timeout": "5m",  # no rollouts given: Flux's default
        "path": "./deploy/agentic/overlays/dev",
        "prune": True,
        "wait": False,  # health checks name what to wait for
        "sourceRef": {"kind": "GitRepository", "name": "agentic"},
        "targetNamespace": "agentic-dev",
    }
    folder = files["gitops/flux/kustomization.yaml"][0]
    assert folder == {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": ["agentic-dev.yaml", "agentic-prod.yaml", "gitrepository.yaml"],
    }


def test_flux_fleet_kustomizations() -> None:
    files = flux_files(plan_of(with_gitops(path="", environments=copy.deepcopy(FLEET))))
    dev, staging, prod = (
        files[f"gitops/flux/agentic-{n}.yaml"][0]["spec"] for n in ("dev", "staging", "prod")
    )
    assert dev["path"] == "./overlays/dev"
    assert "dependsOn" not in dev
    assert "kubeConfig" not in dev
    assert staging["dependsOn"] == [{"name": "agentic-dev"}]
    assert staging["kubeConfig"] == {"secretRef": {"name": "staging-kubeconfig", "key": "value"}}
    assert prod["dependsOn"] == [{"name": "agentic-dev"}, {"name": "agentic-staging"}]
    assert prod["kubeConfig"] == {"secretRef": {"name": "prod-kubeconfig", "key": "value.yaml"}}
    assert prod["targetNamespace"] == "agentic"


def test_flux_helm_releases() -> None:
    files = flux_files(
        plan_of(
            with_gitops(
                flux={
                    "source": "helm",
                    "secretRef": "git-credentials",
                    "interval": "1m",
                    "timeout": "20m",
                },
                environments=copy.deepcopy(FLEET),
            )
        )
    )
    repo = files["gitops/flux/gitrepository.yaml"][0]["spec"]
    assert repo["secretRef"] == {"name": "git-credentials"}
    assert repo["interval"] == "1m"
    release = files["gitops/flux/agentic-prod.yaml"][0]
    assert release["apiVersion"] == "helm.toolkit.fluxcd.io/v2"
    assert release["kind"] == "HelmRelease"
    spec = release["spec"]
    chart = "./deploy/agentic/charts/agentic"
    assert spec["chart"]["spec"] == {
        "chart": chart,
        "reconcileStrategy": "Revision",
        "sourceRef": {"kind": "GitRepository", "name": "agentic"},
        "valuesFiles": [f"{chart}/values.yaml", f"{chart}/values-prod.yaml"],
    }
    assert spec["interval"] == "1m"
    assert spec["timeout"] == "20m"
    assert spec["releaseName"] == "agentic"
    assert spec["targetNamespace"] == spec["storageNamespace"] == "agentic"
    assert spec["install"]["createNamespace"] is True
    assert spec["install"]["remediation"]["retries"] > 0
    assert spec["upgrade"]["remediation"]["retries"] > 0
    assert spec["dependsOn"] == [{"name": "agentic-dev"}, {"name": "agentic-staging"}]
    assert spec["kubeConfig"] == {"secretRef": {"name": "prod-kubeconfig", "key": "value.yaml"}}
    dev = files["gitops/flux/agentic-dev.yaml"][0]["spec"]
    assert "dependsOn" not in dev
    assert "kubeConfig" not in dev


def test_flux_kustomization_yaml_lists_the_folder(plan: GitOpsPlan) -> None:
    files = flux_files(plan)
    listed = files["gitops/flux/kustomization.yaml"][0]["resources"]
    assert listed == sorted(Path(f).name for f in files if not f.endswith("/kustomization.yaml"))


@pytest.mark.parametrize(
    "url, expected",
    [
        ("git@github.com:example/gitops.git", "ssh://git@github.com/example/gitops.git"),
        ("ssh://git@github.com/example/gitops.git", "ssh://git@github.com/example/gitops.git"),
        ("https://github.com/example/gitops.git", "https://github.com/example/gitops.git"),
    ],
)
def test_flux_git_url(url: str, expected: str) -> None:
    assert git_url(url) == expected


@pytest.mark.parametrize(
    "revision, ref",
    [
        ("main", {"branch": "main"}),
        (
            "0123456789abcdef0123456789abcdef01234567",
            {"commit": "0123456789abcdef0123456789abcdef01234567"},
        ),
        ("refs/tags/v1.0.0", {"name": "refs/tags/v1.0.0"}),
    ],
)
def test_flux_git_ref(revision: str, ref: dict[str, str]) -> None:
    data = example_data()
    data["spec"]["gitops"]["revision"] = revision
    repo = flux_files(plan_of(data))["gitops/flux/gitrepository.yaml"][0]
    assert repo["spec"]["ref"] == ref


# ----------------------------------------------------------------- both


def test_paths_point_into_the_build_layout(plan: GitOpsPlan) -> None:
    """Every path named is `<root>/charts/<stack>`, `<root>/overlays/<env>` or, with split
    overlays, `<root>/overlays/<env>/<folder>` for each of the overlay's folders."""
    prefix = f"{plan.path}/" if plan.path else ""
    chart = f"{prefix}charts/{plan.stack}"
    envs = {env.name for env in plan.environments}
    folders = plan.overlay_folders or ("",)
    overlays = {f"{env}/{folder}".rstrip("/") for env in envs for folder in folders}
    files = all_files(plan)
    for app in by_kind(files, "Application", "argoproj.io"):
        sources = app["spec"].get("sources") or [app["spec"]["source"]]
        paths = [source["path"].removeprefix(f"{prefix}overlays/") for source in sources]
        assert paths == [chart] or (len(paths) == len(folders) and set(paths) <= overlays)
    for ks in by_kind(files, "Kustomization", "kustomize.toolkit.fluxcd.io"):
        assert ks["spec"]["path"].removeprefix(f"./{prefix}overlays/") in overlays
    for release in by_kind(files, "HelmRelease", "helm.toolkit.fluxcd.io"):
        assert release["spec"]["chart"]["spec"]["chart"] == f"./{chart}"
        for values in release["spec"]["chart"]["spec"]["valuesFiles"]:
            name = values.removeprefix(f"./{chart}/")
            assert (
                name == "values.yaml" or name.removesuffix(".yaml").removeprefix("values-") in envs
            )


def test_output_is_deterministic(plan: GitOpsPlan) -> None:
    first = yaml.safe_dump(all_files(plan), sort_keys=False)
    assert first == yaml.safe_dump(all_files(plan.model_copy(deep=True)), sort_keys=False)
    for name in all_files(plan):
        assert name.startswith(("gitops/argocd/", "gitops/flux/")) and name.endswith(".yaml")


def test_an_environment_waits_for_every_part_of_the_ones_it_depends_on() -> None:
    """With split overlays `<stack>-<env>` is the shared folder only: an environment that
    depends on another waits for all of that one's Kustomizations, and each part of it waits
    for its own shared folder."""
    plan = plan_of(VARIANTS["split-fleet-kustomize"]())
    files = flux_files(plan)
    prod = {k["metadata"]["name"]: k for k in files["gitops/flux/agentic-prod.yaml"]}
    parts = ["part-1", "part-2", "part-3"]
    waits = [d["name"] for d in prod["agentic-prod"]["spec"]["dependsOn"]]
    assert waits == [f"agentic-{env}{suffix}" for env in ("dev", "staging")
                     for suffix in ["", *(f"-{part}" for part in parts)]]
    for part in parts:
        assert prod[f"agentic-prod-{part}"]["spec"]["dependsOn"] == [{"name": "agentic-prod"}]
