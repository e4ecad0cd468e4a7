"""Argo CD manifests that sync the build: an Application per environment, or one
ApplicationSet, and optionally the AppProject that fences them in.

Everything here points back into the GitOps repo written by the build: the chart at
`plan.chart_path` with its `values-<env>.yaml`, or the overlay `plan.overlays_path/<env>`.
"""

from __future__ import annotations

from typing import Any

from ..resolve.model import GitOpsEnvironment, GitOpsPlan
from . import yamlout
from .manifests import MANAGED_BY

Obj = dict[str, Any]

API_VERSION = "argoproj.io/v1alpha1"
DIR = "gitops/argocd"
# Deleting the Application then deletes what it deployed, instead of orphaning it, in the
# foreground. The path form is Argo CD's own name for it (ForegroundPropagationPolicyFinalizer,
# same behaviour as the bare name); the API server warns about a finalizer without a path.
FINALIZER = "resources-finalizer.argocd.argoproj.io/foreground"
# An AppProject is kept while Applications use it by Argo CD's bare finalizer name.
PROJECT_FINALIZER = "resources-finalizer.argocd.argoproj.io"
IN_CLUSTER = "https://kubernetes.default.svc"
IN_CLUSTER_NAME = "in-cluster"  # how Argo CD registers the cluster it runs in
# Argo CD's documented backoff: rides out a namespace or a CRD that is not there yet.
RETRY: Obj = {"limit": 5, "backoff": {"duration": "5s", "factor": 2, "maxDuration": "3m"}}
REPLICAS_POINTER = "/spec/replicas"


def argocd_files(plan: GitOpsPlan) -> dict[str, list[Obj]]:
    """Files under the build root, each with its objects; {} when Argo CD is disabled."""
    if not plan.argocd.enabled or not plan.environments:
        return {}
    files: dict[str, list[Obj]] = {}
    if plan.argocd.create_project:
        files[f"{DIR}/appproject.yaml"] = [app_project(plan)]
    if plan.argocd.application_set:
        files[f"{DIR}/applicationset.yaml"] = [application_set(plan)]
    else:
        # `<stack>-<env>` always has a hyphen, so it never collides with the fixed names.
        for env in plan.environments:
            files[f"{DIR}/{plan.stack}-{env.name}.yaml"] = [application(plan, env)]
    resources = sorted(path.removeprefix(f"{DIR}/") for path in files)
    files[f"{DIR}/kustomization.yaml"] = [_kustomization(resources)]
    return dict(sorted(files.items()))


def application(plan: GitOpsPlan, env: GitOpsEnvironment) -> Obj:
    spec: Obj = {
        "project": plan.argocd.project,
        **_sources(plan, env.name),
        "destination": {**_cluster(env), "namespace": env.namespace},
        "syncPolicy": _sync_policy(plan, bool(env.autoscaled),
                                   create_namespace=not env.shared_namespace),
    }
    if _argocd_creates_namespace(plan) and not env.shared_namespace:
        spec["syncPolicy"]["managedNamespaceMetadata"] = {"labels": env.namespace_labels}
    if env.autoscaled:
        spec["ignoreDifferences"] = _ignore_replicas(env.autoscaled)
    return {
        "apiVersion": API_VERSION,
        "kind": "Application",
        "metadata": _metadata(f"{plan.stack}-{env.name}", plan, finalizers=True),
        "spec": spec,
    }


def application_set(plan: GitOpsPlan) -> Obj:
    """One ApplicationSet whose list generator yields the same Applications as above."""
    envs = plan.environments
    autoscaled = any(env.autoscaled for env in envs)
    uses_name = {env.cluster_name is not None for env in envs}
    shared = {env.shared_namespace for env in envs}
    template_spec: Obj = {
        "project": plan.argocd.project,
        **_sources(plan, "{{.env}}"),
        "destination": {**_templated_cluster(uses_name), "namespace": "{{.namespace}}"},
        "syncPolicy": _sync_policy(plan, autoscaled, create_namespace=shared == {False}),
    }
    owned_policy = _owned_namespace_sync_policy(plan, envs, autoscaled)
    if shared == {False}:
        template_spec["syncPolicy"] = owned_policy
    spec: Obj = {
        # Go templates with missingkey=error: a typo in a parameter fails loudly.
        "goTemplate": True,
        "goTemplateOptions": ["missingkey=error"],
        "generators": [{"list": {"elements": [_element(env) for env in envs]}}],
        # Deleting the ApplicationSet (or an environment leaving the list) deletes its
        # Applications but none of their workloads or caches.
        "syncPolicy": {"preserveResourcesOnDeletion": True},
        "template": {
            "metadata": _template_metadata(plan),
            "spec": template_spec,
        },
    }
    patch = _template_patch(len(uses_name) > 1, autoscaled,
                            owned_policy if len(shared) > 1 else None)
    if patch:
        spec["templatePatch"] = patch
    return {
        "apiVersion": API_VERSION,
        "kind": "ApplicationSet",
        "metadata": _metadata(plan.stack, plan, finalizers=False),
        "spec": spec,
    }


def app_project(plan: GitOpsPlan) -> Obj:
    """A project that may only pull from the stack's repo into the stack's namespaces."""
    destinations = sorted({(_cluster_key(env), env.namespace) for env in plan.environments})
    spec: Obj = {
        "description": f"{plan.stack}: written by {MANAGED_BY}",
        "sourceRepos": [plan.repo_url],
        "destinations": [{kind: value, "namespace": ns} for (kind, value), ns in destinations],
    }
    owns_a_namespace = not all(env.shared_namespace for env in plan.environments)
    if owns_a_namespace and (plan.argocd.sync_policy.create_namespace
                             or plan.argocd.source == "kustomize"):
        # Projects deny cluster-scoped kinds by default; CreateNamespace and the overlays'
        # Namespace need it.
        spec["clusterResourceWhitelist"] = [{"group": "", "kind": "Namespace"}]
    return {
        "apiVersion": API_VERSION,
        "kind": "AppProject",
        # The finalizer keeps the project until no Application references it.
        "metadata": _metadata(plan.argocd.project, plan, finalizers=True,
                              finalizer=PROJECT_FINALIZER),
        "spec": spec,
    }


def _metadata(name: str, plan: GitOpsPlan, *, finalizers: bool, finalizer: str = FINALIZER
              ) -> Obj:
    meta: Obj = {"name": name, "namespace": plan.argocd.namespace, "labels": _labels(plan)}
    if finalizers:
        meta["finalizers"] = [finalizer]
    return meta


def _template_metadata(plan: GitOpsPlan) -> Obj:
    """No finalizer: the controller adds the resources finalizer to a template without one
    unless preserveResourcesOnDeletion is set, and keeps one the template names, which would
    undo that setting."""
    return {
        "name": f"{plan.stack}-{{{{.env}}}}",
        "namespace": plan.argocd.namespace,
        "labels": _labels(plan),
    }


def _labels(plan: GitOpsPlan) -> dict[str, str]:
    return {"app.kubernetes.io/managed-by": MANAGED_BY, "app.kubernetes.io/part-of": plan.stack}


def _sources(plan: GitOpsPlan, env: str) -> Obj:
    """`source`, or with split overlays `sources`: one per folder, each rendered by its own
    call to the repo-server (and its own ARGOCD_EXEC_TIMEOUT), all synced as one application,
    so sync waves hold across them and a workload moving between parts is never pruned."""
    if plan.argocd.source != "kustomize" or not plan.overlay_folders:
        return {"source": _source(plan, env)}
    return {"sources": [{**_source(plan, env), "path": f"{plan.overlays_path}/{env}/{folder}"}
                        for folder in plan.overlay_folders]}


def _source(plan: GitOpsPlan, env: str) -> Obj:
    """Where the environment's manifests are; `env` may be a template expression."""
    source: Obj = {"repoURL": plan.repo_url, "targetRevision": plan.revision}
    if plan.argocd.source == "kustomize":
        source["path"] = f"{plan.overlays_path}/{env}"
        return source
    source["path"] = plan.chart_path
    # valueFiles are relative to `path`; Helm still applies the chart's values.yaml first.
    source["helm"] = {"releaseName": plan.stack, "valueFiles": [f"values-{env}.yaml"]}
    return source


def _cluster(env: GitOpsEnvironment) -> dict[str, str]:
    """Argo CD takes a cluster by API server URL or by registered name, never both."""
    return dict([_cluster_key(env)])


def _cluster_key(env: GitOpsEnvironment) -> tuple[str, str]:
    if env.cluster_name is not None:
        return ("name", env.cluster_name)
    return ("server", env.server or IN_CLUSTER)


def _owned_namespace_sync_policy(plan: GitOpsPlan, envs: tuple[GitOpsEnvironment, ...],
                                 autoscaled: bool) -> Obj:
    """The ApplicationSet's sync policy for environments whose namespace is the stack's own:
    Argo CD may create it, labelled with each environment's Pod Security level."""
    policy = _sync_policy(plan, autoscaled, create_namespace=True)
    owned = [env for env in envs if not env.shared_namespace]
    if _argocd_creates_namespace(plan) and owned:
        policy["managedNamespaceMetadata"] = {
            "labels": _templated_namespace_labels(owned[0].namespace_labels)}
    return policy


def _sync_policy(plan: GitOpsPlan, autoscaled: bool, *, create_namespace: bool = True) -> Obj:
    """`create_namespace` False for a shared namespace: it exists, and CreateNamespace with
    managed metadata would relabel someone else's namespace."""
    wanted = plan.argocd.sync_policy
    policy: Obj = {}
    if wanted.automated:
        policy["automated"] = {"prune": wanted.prune, "selfHeal": wanted.self_heal}
    options = []
    if wanted.create_namespace and create_namespace:
        options.append("CreateNamespace=true")
    if wanted.server_side_apply:
        options.append("ServerSideApply=true")
    if autoscaled:
        # Without it a sync still writes the ignored replicas back over the autoscaler's.
        options.append("RespectIgnoreDifferences=true")
    if options:
        policy["syncOptions"] = options
    policy["retry"] = RETRY
    return policy


# An autoscaled workload is a Deployment, or a StatefulSet when each replica has its own
# cache claim; a rule per kind names it either way (the other rule matches nothing).
SCALED_KINDS = ("Deployment", "StatefulSet")


def _ignore_replicas(workloads: tuple[str, ...]) -> list[Obj]:
    return [
        {"group": "apps", "kind": kind, "name": name, "jsonPointers": [REPLICAS_POINTER]}
        for name in sorted(set(workloads)) for kind in SCALED_KINDS
    ]


def _argocd_creates_namespace(plan: GitOpsPlan) -> bool:
    """The chart has no Namespace (the overlays have theirs): with a Helm source, Argo CD
    creates it, with the Pod Security labels the overlays would set."""
    return plan.argocd.source == "helm" and plan.argocd.sync_policy.create_namespace


def _templated_namespace_labels(labels: dict[str, str]) -> dict[str, str]:
    """The Pod Security labels with each environment's level and version as parameters."""
    return {key: ("{{.podSecurityVersion}}" if key.endswith("-version")
                  else "{{.podSecurity}}" if key.endswith(("/enforce", "/warn")) else value)
            for key, value in labels.items()}


def _element(env: GitOpsEnvironment) -> dict[str, str]:
    """List-generator parameters: strings only, every key present for missingkey=error."""
    labels = env.namespace_labels
    return {
        "env": env.name,
        "namespace": env.namespace,
        "server": "" if env.cluster_name is not None else env.server or IN_CLUSTER,
        "cluster": env.cluster_name or "",
        "autoscaled": ",".join(sorted(set(env.autoscaled))),
        "podSecurity": labels.get("pod-security.kubernetes.io/enforce", ""),
        "podSecurityVersion": labels.get("pod-security.kubernetes.io/enforce-version", ""),
        "sharedNamespace": "true" if env.shared_namespace else "",
    }


def _templated_cluster(uses_name: set[bool]) -> dict[str, str]:
    """The destination cluster when every environment names it the same way; when they
    mix server URLs and cluster names, the template patch sets it instead."""
    if uses_name == {True}:
        return {"name": "{{.cluster}}"}
    if uses_name == {False}:
        return {"server": "{{.server}}"}
    return {}


def _template_patch(mixed_clusters: bool, autoscaled: bool, owned_policy: Obj | None) -> str:
    """What varies in shape between environments, as an ApplicationSet templatePatch.
    `owned_policy`: the sync policy of the environments whose namespace is not shared, when
    others share theirs (it replaces the template's whole syncPolicy for them)."""
    lines: list[str] = []
    if owned_policy is not None:
        body = yamlout.dump(owned_policy).rstrip("\n").splitlines()
        lines += [
            "  {{- if not .sharedNamespace }}",
            "  syncPolicy:",
            *(f"    {line}" for line in body),
            "  {{- else }}",
            "  syncPolicy: {}",  # never a bare `spec:` (see below)
            "  {{- end }}",
        ]
    if mixed_clusters:
        lines += [
            "  destination:",
            "    {{- if .cluster }}",
            "    name: {{ .cluster | quote }}",
            "    {{- else }}",
            "    server: {{ .server | quote }}",
            "    {{- end }}",
        ]
    if autoscaled:
        lines += [
            "  {{- if .autoscaled }}",
            "  ignoreDifferences:",
            '    {{- range $name := splitList "," .autoscaled }}',
            '    {{- range $kind := list ' + " ".join(f'"{k}"' for k in SCALED_KINDS) + " }}",
            "    - group: apps",
            "      kind: {{ $kind }}",
            "      name: {{ $name | quote }}",
            "      jsonPointers:",
            f"        - {REPLICAS_POINTER}",
            "    {{- end }}",
            "    {{- end }}",
            "  {{- else }}",
            # Never render a bare `spec:`: a null in the patch would wipe the spec.
            "  ignoreDifferences: []",
            "  {{- end }}",
        ]
    return "\n".join(["spec:", *lines, ""]) if lines else ""


def _kustomization(resources: list[str]) -> Obj:
    """Lets an app-of-apps or `kubectl apply -k` take the whole folder."""
    return {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": resources,
    }
