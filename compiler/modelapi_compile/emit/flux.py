"""Flux manifests that sync the build: one GitRepository, then a Kustomization or a
HelmRelease per environment, and a kustomization.yaml so one folder holds them all.

Paths are relative to the repository root with a leading "./", as Flux documents them.

Waiting never blocks a fix. kustomize-controller applies a new revision only after the
health checks of the previous one passed or timed out (unless its feature gate
CancelHealthCheckOnNewRevision is on; it is off by default), so a Kustomization that waits
hours for a model download would hold every commit, its fix included, for hours. Hence the
Kustomizations that apply an overlay health-check only the workloads that roll out in
minutes (agents, LiteLLM), with a timeout derived from them, and each model server gets a
Kustomization of its own that applies nothing and health-checks that one server with its own
timeout: what depends on the environment still waits for every model to be ready.
"""

from __future__ import annotations

import re
from typing import Any

from ..resolve import lifecycle
from ..resolve.model import GitOpsEnvironment, GitOpsPlan, ResolvedStack, RolloutCheck
from ..resolve.stack import flux_timeout
from .kustomize import KUSTOMIZATION, workload_folder
from .manifests import LWS_API_VERSION, MANAGED_BY, controller_kind

Obj = dict[str, Any]

DIR = "gitops/flux"
SOURCE_API = "source.toolkit.fluxcd.io/v1"
KUSTOMIZE_API = "kustomize.toolkit.fluxcd.io/v1"
HELM_API = "helm.toolkit.fluxcd.io/v2"
# A folder that applies nothing: the path of the Kustomizations that only health-check.
ROLLOUTS_DIR = f"{DIR}/rollouts"
# Workloads whose rollout downloads and loads model weights.
MODEL_COMPONENTS = ("ollama", "vllm")
# Install and upgrade retry this often (remediating in between) before giving up.
REMEDIATION_RETRIES = 3
_COMMIT = re.compile(r"^[0-9a-f]{40}$")
_SCP_LIKE = re.compile(r"^(?P<user>[^@/:]+)@(?P<host>[^:/]+):(?P<path>[^/].*)$")


def flux_files(plan: GitOpsPlan) -> dict[str, list[Obj]]:
    """Files under the build root, each with its objects; {} when Flux is disabled."""
    if not plan.flux.enabled or not plan.environments:
        return {}
    files: dict[str, list[Obj]] = {f"{DIR}/gitrepository.yaml": [git_repository(plan)]}
    # `<stack>-<env>` always has a hyphen, so it never collides with the fixed names.
    for env in plan.environments:
        files[f"{DIR}/{plan.stack}-{env.name}.yaml"] = (
            kustomizations(plan, env) if plan.flux.source == "kustomize"
            else [helm_release(plan, env)])
    resources = sorted(path.removeprefix(f"{DIR}/") for path in files)
    files[f"{DIR}/kustomization.yaml"] = [_kustomize_config(resources)]
    if any(_model_rollouts(plan, env) for env in plan.environments):
        files[f"{ROLLOUTS_DIR}/kustomization.yaml"] = [{**KUSTOMIZATION, "resources": []}]
    return dict(sorted(files.items()))


def rollout_checks(resolved: ResolvedStack) -> tuple[RolloutCheck, ...]:
    """The environment's workloads as Flux health-checks them."""
    return tuple(
        RolloutCheck(kind=controller_kind(workload), name=f"{resolved.name}-{name}",
                     workload=name, seconds=lifecycle.rollout_seconds(workload),
                     model=workload.component in MODEL_COMPONENTS)
        for name, workload in resolved.values.workloads.items())


def git_repository(plan: GitOpsPlan) -> Obj:
    spec: Obj = {
        "interval": plan.flux.interval,
        "url": git_url(plan.repo_url),
        "ref": _ref(plan.revision),
    }
    if plan.flux.secret_ref:
        spec["secretRef"] = {"name": plan.flux.secret_ref}
    return {
        "apiVersion": SOURCE_API,
        "kind": "GitRepository",
        "metadata": _metadata(plan.stack, plan),
        "spec": spec,
    }


def kustomizations(plan: GitOpsPlan, env: GitOpsEnvironment) -> list[Obj]:
    """`<stack>-<env>` for the overlay, or, when overlays are split, for its shared folder
    (the Namespace and the ServiceAccounts every part needs first) and `<stack>-<env>-<part>`
    for each part, which waits for it."""
    root = f"./{plan.overlays_path}/{env.name}"
    names = _names(plan, env.name)
    quick = [check for check in env.rollouts if not check.model]
    if not plan.overlay_folders:
        applying = [kustomization(plan, env, names[0], root, _depends_on(plan, env), quick)]
    else:
        after_shared = {"dependsOn": [{"name": names[0]}]}
        parts = len(plan.overlay_folders) - 1
        applying = [
            kustomization(plan, env, name, f"{root}/{folder}",
                          after_shared if index else _depends_on(plan, env),
                          [c for c in quick if index and workload_folder(c.workload, parts)
                           == folder])
            for index, (name, folder) in enumerate(zip(names, plan.overlay_folders,
                                                       strict=True))]
    return applying + [rollout_kustomization(plan, env, check)
                       for check in _model_rollouts(plan, env)]


def _model_rollouts(plan: GitOpsPlan, env: GitOpsEnvironment) -> list[RolloutCheck]:
    """The model servers that get a health-checking Kustomization of their own."""
    if plan.flux.source != "kustomize":
        return []
    return [check for check in env.rollouts if check.model]


def _rollout_name(plan: GitOpsPlan, env: str, check: RolloutCheck) -> str:
    return f"{plan.stack}-{env}-rollout-{check.workload}"


def _applied_by(plan: GitOpsPlan, env: str, check: RolloutCheck) -> str:
    """The Kustomization that applies the workload of `check`."""
    names = _names(plan, env)
    if not plan.overlay_folders:
        return names[0]
    folder = workload_folder(check.workload, len(plan.overlay_folders) - 1)
    return names[plan.overlay_folders.index(folder)]


def _timeout(plan: GitOpsPlan, checks: list[RolloutCheck]) -> str:
    """The user's timeout (validated against the slowest rollout), else the slowest of
    `checks` (at least Flux's default)."""
    return plan.flux.timeout or flux_timeout(max((c.seconds for c in checks), default=0))


def _health_checks(env: GitOpsEnvironment, checks: list[RolloutCheck]) -> Obj:
    if not checks:
        return {}
    return {"healthChecks": [{"apiVersion": LWS_API_VERSION if check.kind == "LeaderWorkerSet"
                              else "apps/v1", "kind": check.kind, "name": check.name,
                              "namespace": env.namespace} for check in checks]}


def rollout_kustomization(plan: GitOpsPlan, env: GitOpsEnvironment, check: RolloutCheck
                          ) -> Obj:
    """Applies nothing, waits for one model server: stuck, it blocks no commit, and what
    depends on the environment still waits for it."""
    spec: Obj = {
        "dependsOn": [{"name": _applied_by(plan, env.name, check)}],
        "interval": plan.flux.interval,
        "timeout": _timeout(plan, [check]),
        "path": f"./{plan.gitops_path}{ROLLOUTS_DIR}",
        "prune": plan.flux.prune,  # it applies nothing; the same setting as the others
        "wait": False,
        **_health_checks(env, [check]),
        "sourceRef": _source_ref(plan),
    }
    spec |= _kube_config(env)
    return {
        "apiVersion": KUSTOMIZE_API,
        "kind": "Kustomization",
        "metadata": _metadata(_rollout_name(plan, env.name, check), plan),
        "spec": spec,
    }


def _names(plan: GitOpsPlan, env: str) -> list[str]:
    """The Kustomizations (one per overlay folder; the shared one keeps the environment's
    name) or the HelmRelease of environment `env`."""
    name = f"{plan.stack}-{env}"
    if plan.flux.source == "helm" or not plan.overlay_folders:
        return [name]
    return [name, *(f"{name}-{part}" for part in plan.overlay_folders[1:])]


def kustomization(plan: GitOpsPlan, env: GitOpsEnvironment, name: str, path: str,
                  depends_on: Obj, checks: list[RolloutCheck]) -> Obj:
    """Applies an overlay folder; Ready once the quick workloads it applies are (`checks`):
    what dependsOn of other environments waits for, along with the model Kustomizations."""
    spec: Obj = {**depends_on}
    spec |= {
        "interval": plan.flux.interval,
        # at least the slowest rollout it waits for (derived, or checked at the spec's line)
        "timeout": _timeout(plan, checks),
        "path": path,
        "prune": plan.flux.prune,
        "wait": False,
        **_health_checks(env, checks),
        "sourceRef": _source_ref(plan),
        "targetNamespace": env.namespace,
    }
    spec |= _kube_config(env)
    return {
        "apiVersion": KUSTOMIZE_API,
        "kind": "Kustomization",
        "metadata": _metadata(name, plan),
        "spec": spec,
    }


def helm_release(plan: GitOpsPlan, env: GitOpsEnvironment) -> Obj:
    chart = f"./{plan.chart_path}"
    spec: Obj = {**_depends_on(plan, env)}
    spec |= {
        "interval": plan.flux.interval,
        # at least the slowest rollout it waits for (derived, or checked at the spec's line)
        "timeout": env.flux_timeout,
        "chart": {
            "spec": {
                "chart": chart,
                # A new chart artifact per Git revision: the chart version never changes.
                "reconcileStrategy": "Revision",
                "sourceRef": _source_ref(plan),
                # valuesFiles replace the chart's values.yaml, so it must come first.
                "valuesFiles": [f"{chart}/values.yaml", f"{chart}/values-{env.name}.yaml"],
            }
        },
        # The same release name as Argo CD and `helm template`, so names match everywhere.
        "releaseName": plan.stack,
        "targetNamespace": env.namespace,
        # Release history next to the release (and on the target cluster with kubeConfig),
        # not in the Flux namespace.
        "storageNamespace": env.namespace,
        "install": {
            # A shared namespace exists and is someone else's.
            "createNamespace": not env.shared_namespace,
            "remediation": {"retries": REMEDIATION_RETRIES},
        },
        "upgrade": {
            "cleanupOnFail": True,
            "remediation": {"retries": REMEDIATION_RETRIES},
        },
    }
    spec |= _kube_config(env)
    return {
        "apiVersion": HELM_API,
        "kind": "HelmRelease",
        "metadata": _metadata(f"{plan.stack}-{env.name}", plan),
        "spec": spec,
    }


def git_url(url: str) -> str:
    """Flux takes only http(s):// or ssh:// URLs; rewrite scp-like `git@host:org/repo`."""
    match = _SCP_LIKE.match(url)
    if match and "://" not in url:
        return f"ssh://{match['user']}@{match['host']}/{match['path']}"
    return url


def _ref(revision: str) -> dict[str, str]:
    """A full commit SHA or a full ref name pins exactly; anything else is a branch."""
    if _COMMIT.match(revision):
        return {"commit": revision}
    if revision.startswith("refs/"):
        return {"name": revision}
    return {"branch": revision}


def _metadata(name: str, plan: GitOpsPlan) -> Obj:
    return {
        "name": name,
        "namespace": plan.flux.namespace,
        "labels": {
            "app.kubernetes.io/managed-by": MANAGED_BY,
            "app.kubernetes.io/part-of": plan.stack,
        },
    }


def _source_ref(plan: GitOpsPlan) -> dict[str, str]:
    return {"kind": "GitRepository", "name": plan.stack}


def _depends_on(plan: GitOpsPlan, env: GitOpsEnvironment) -> Obj:
    if not env.depends_on:
        return {}
    # Another environment is ready once all of its Kustomizations are.
    envs = {e.name: e for e in plan.environments}
    return {"dependsOn": [{"name": name} for other in env.depends_on
                          for name in [*_names(plan, other),
                                       *(_rollout_name(plan, other, check)
                                         for check in _model_rollouts(plan, envs[other]))]]}


def _kube_config(env: GitOpsEnvironment) -> Obj:
    """A remote cluster for fleets: Flux reads its kubeconfig from this Secret."""
    if env.kube_config_secret is None:
        return {}
    name, key = env.kube_config_secret
    return {"kubeConfig": {"secretRef": {"name": name, "key": key}}}


def _kustomize_config(resources: list[str]) -> Obj:
    """What `flux bootstrap` or a parent Kustomization points at."""
    return {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": resources,
    }
