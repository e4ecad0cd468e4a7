"""`verify --server`: every object of an environment through a server-side apply dry run
(`dryRun=All`), so admission webhooks, ValidatingAdmissionPolicies, Pod Security, quotas,
CEL rules and immutable fields on the live objects all have their say, and nothing is
changed."""

from __future__ import annotations

import os
from pathlib import Path

from ..problems import Problem
from .api import ApiError, Client, KubeconfigError, from_kubeconfig
from .converge import apply_all
from .simulate import FIELD_MANAGER, compile_environment


def default_kubeconfig() -> str:
    first = (os.environ.get("KUBECONFIG") or "").split(os.pathsep)[0]
    return first or str(Path.home() / ".kube" / "config")


def dry_run(spec: str, environment: str, kubeconfig: str | None, context: str | None
            ) -> tuple[list[Problem], list[str]]:
    env = compile_environment(spec, environment)
    path = kubeconfig or default_kubeconfig()
    try:
        client = Client(from_kubeconfig(path, context))
        client.request("GET", "/version")
    except (KubeconfigError, ApiError, OSError) as error:
        return [Problem(path, 0, 0, "", f"cannot reach the cluster: {error}",
                        "check --kubeconfig and --context, and that the cluster answers")], []
    rejected = apply_all(client, env.objects, manager=FIELD_MANAGER, namespace=env.namespace,
                         locate=env.locate, dry_run=True)
    problems = []
    missing_namespace = f'namespaces "{env.namespace}" not found'
    namespace_missing = any(missing_namespace in r.message for r in rejected)
    for rejection in rejected:
        if namespace_missing and missing_namespace in rejection.message:
            continue
        problems.append(Problem(rejection.file, rejection.line, rejection.column,
                                rejection.path or rejection.object,
                                f"{rejection.object} rejected by the API server: "
                                f"{rejection.message}",
                                "change the spec so the object is admitted, or fix the "
                                "cluster policy that refuses it"))
    if namespace_missing:
        problems.append(Problem(spec, 0, 0, f"namespace {env.namespace}",
                                "the namespace does not exist on the cluster, so its objects "
                                "could not be dry-run", "create it (or sync the environment's "
                                "Namespace first), then verify again"))
    return problems, sorted(set(client.warnings))
