"""The one pipeline: load -> validate -> resolve -> emit -> verify. `compile_spec` returns
the files a build writes; writing them is output/writer.py's job.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import PurePath

from .emit import argocd, flux, helm, kustomize
from .emit.files import OutputFiles, header_comment
from .emit.manifests import build_objects, claim_names, overlay_namespace
from .output.immutable import Facts, immutable_facts, object_key
from .output.secret_list import (
    SECRETS_FILE,
    EnvironmentSecrets,
    needed_secrets,
    secrets_markdown,
)
from .problems import Problem, format_path
from .resolve.model import K8s, ResolvedStack, RolloutCheck
from .resolve.stack import gitops_plan, resolve_environments, slowest_rollout
from .spec.validate import ValidatedSpec, load_spec
from .verify.engines import Verifier, origin_of


@dataclass(frozen=True)
class Compiled:
    files: OutputFiles
    base: ResolvedStack
    environments: tuple[ResolvedStack, ...]  # only with keep_objects
    # Objects per environment name ("" is the base); environments only with keep_objects.
    objects: dict[str, list[K8s]]
    gitops: dict[str, list[K8s]]  # per output file
    # `namespace/name` of every claim the environments own (prune-protected model caches)
    claims: tuple[str, ...] = ()
    warnings: tuple[Problem, ...] = ()  # risky choices the spec opted into
    helm_verified: bool = False  # Helm rendered every environment and matched the objects
    secrets: tuple[EnvironmentSecrets, ...] = ()  # the Secrets to create, per environment
    included: tuple[str, ...] = ()  # files the spec pulled in besides itself (none yet)
    # Per deployed object, the fields Kubernetes never changes in place (immutable.py), and
    # where in the spec each object came from.
    immutable: dict[str, Facts] = field(default_factory=dict)
    immutable_where: dict[str, tuple[str, int, int, str]] = field(default_factory=dict)


def _quiet(stage: str) -> None:
    del stage


def compile_spec(spec_path: str, *, use_helm: bool = True, keep_objects: bool = False,
                 keep_documents: bool = False, spec_bytes: bytes | None = None,
                 on_stage: Callable[[str], None] = _quiet) -> Compiled:
    """Compile and verify. Environments are resolved, emitted and verified one at a time and
    (unless `keep_objects`) dropped before the next, so memory stays bounded on large stacks;
    `keep_documents` keeps the data behind each YAML file for semantic diffs; `spec_bytes` are
    the spec's bytes when the caller has read them already."""
    on_stage("load and validate")
    validated = load_spec(spec_path, spec_bytes)
    source = PurePath(spec_path).name
    resolved = resolve_environments(validated)
    on_stage("resolve")
    base = next(resolved)

    files = OutputFiles(keep_documents=keep_documents)
    chart = helm.Chart(base, [e.name for e in validated.environments], source)
    chart.files(files)
    environments = []
    warnings: list[Problem] = []
    with Verifier(validated, base.kubernetes_version, use_helm=use_helm) as verifier:
        on_stage("verify the chart")
        verifier.start_chart(files, base)
        on_stage("base")
        base_objects = build_objects(base)
        parts = overlay_parts(validated)
        files.update(kustomize.base_files(base_objects, source, parts))
        verifier.check(base, base_objects, {})
        objects = {"": base_objects}
        claims: set[str] = set()
        rollouts: dict[str, tuple[int, str]] = {}
        checks: dict[str, tuple[RolloutCheck, ...]] = {}
        renderers = overlay_renderers(validated)
        immutable: dict[str, Facts] = {}
        where: dict[str, tuple[str, int, int, str]] = {}
        secrets: list[EnvironmentSecrets] = []
        for env in resolved:
            on_stage(f"environment {env.environment}")
            env_values = chart.environment_file(files, env)
            env_objects = build_objects(env)
            overlay_only = overlay_namespace(env)
            files.update(kustomize.overlay_files(env.environment, env.namespace, base_objects,
                                                 env_objects, source, extra=overlay_only,
                                                 parts=parts))
            verifier.check_overlay_only(env, overlay_only)
            claims.update(claim_names(env))
            secrets.append(needed_secrets(env))
            rollouts[env.environment] = slowest_rollout(env)
            checks[env.environment] = flux.rollout_checks(env)
            slow = kustomize.slow_overlay_warning(
                env.environment, kustomize.largest_folder([*overlay_only, *env_objects], parts),
                renderers, parts)
            if slow and (validated.stack.spec.gitops is None or renderers):
                warnings.append(_environment_problem(validated, env.environment, *slow))
            verifier.check(env, env_objects, env_values)
            facts = immutable_facts(env_objects, env.namespace)
            immutable.update(facts)
            for obj in env_objects:  # located only where a refusal may need it
                if (key := object_key(obj, env.namespace)) in facts:
                    line, column, path = origin_of(obj, validated)
                    where[key] = (validated.file, line, column, "" if not line else path)
            if keep_objects:
                objects[env.environment] = env_objects
                environments.append(env)
        # GitOps last: Flux waits as long as the slowest rollout of each environment takes.
        plan = gitops_plan(validated, rollouts, checks)
        gitops: dict[str, list[K8s]] = {}
        if plan is not None:
            gitops = {**argocd.argocd_files(plan), **flux.flux_files(plan)}
        for path, documents in sorted(gitops.items()):
            files.add_yaml(path, header_comment(source), *documents)
        files.add(SECRETS_FILE, secrets_markdown(secrets, source))
        verifier.check_gitops(gitops)
        verifier.finish()
        helm_verified = verifier.sdk is not None
    return Compiled(files, base, tuple(environments), objects, gitops, tuple(sorted(claims)),
                    (*validated.warnings, *warnings), helm_verified=helm_verified,
                    immutable=immutable, immutable_where=where, secrets=tuple(secrets))


def overlay_parts(validated: ValidatedSpec) -> int:
    """How many parts every overlay is split into (gitops.overlayParts, 1 without GitOps)."""
    gitops = validated.stack.spec.gitops
    return 1 if gitops is None else gitops.overlay_parts


def overlay_renderers(validated: ValidatedSpec) -> list[str]:
    """The controllers the spec's GitOps settings point at the Kustomize overlays."""
    gitops = validated.stack.spec.gitops
    if gitops is None:
        return []
    return [name for name, settings in (("Argo CD", gitops.argocd), ("Flux", gitops.flux))
            if settings.enabled and settings.source == "kustomize"]


def _environment_problem(validated: ValidatedSpec, environment: str, message: str,
                         hint: str) -> Problem:
    """A problem located at the environment's entry in the spec (or the spec's top)."""
    names = [e.name for e in validated.stack.spec.environments]
    path: tuple[str | int, ...] = (("spec", "environments", names.index(environment))
                                   if environment in names else ())
    line, column = validated.positions.locate(path)
    return Problem(validated.file, line, column, format_path(path), message, hint)
