"""Flux manifests that sync the build: one GitRepository, then a Kustomization or a
HelmRelease per environment, and a kustomization.yaml so one folder holds them all.

Paths are relative to the repository root with a leading "./", as Flux documents them.
"""

from __future__ import annotations

import re
from typing import Any

from ..resolved import GitOpsEnvironment, GitOpsPlan
from .manifests import MANAGED_BY

Obj = dict[str, Any]

DIR = "gitops/flux"
SOURCE_API = "source.toolkit.fluxcd.io/v1"
KUSTOMIZE_API = "kustomize.toolkit.fluxcd.io/v1"
HELM_API = "helm.toolkit.fluxcd.io/v2"
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
    return dict(sorted(files.items()))


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
    if not plan.overlay_folders:
        return [kustomization(plan, env, names[0], root, _depends_on(plan, env))]
    after_shared = {"dependsOn": [{"name": names[0]}]}
    return [kustomization(plan, env, name, f"{root}/{folder}",
                          after_shared if index else _depends_on(plan, env))
            for index, (name, folder) in enumerate(zip(names, plan.overlay_folders,
                                                       strict=True))]


def _names(plan: GitOpsPlan, env: str) -> list[str]:
    """The Kustomizations (one per overlay folder; the shared one keeps the environment's
    name) or the HelmRelease of environment `env`."""
    name = f"{plan.stack}-{env}"
    if plan.flux.source == "helm" or not plan.overlay_folders:
        return [name]
    return [name, *(f"{name}-{part}" for part in plan.overlay_folders[1:])]


def kustomization(plan: GitOpsPlan, env: GitOpsEnvironment, name: str, path: str,
                  depends_on: Obj) -> Obj:
    spec: Obj = {**depends_on}
    spec |= {
        "interval": plan.flux.interval,
        # at least the slowest rollout it waits for (derived, or checked at the spec's line)
        "timeout": env.flux_timeout,
        "path": path,
        "prune": plan.flux.prune,
        # Ready only once the workloads are: what dependsOn of other environments waits for.
        "wait": True,
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
            "createNamespace": True,
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
    return {"dependsOn": [{"name": name} for other in env.depends_on
                          for name in _names(plan, other)]}


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
