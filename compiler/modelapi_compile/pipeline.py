"""The one pipeline: load -> validate -> resolve -> emit -> verify. `compile_spec` returns
the files a build writes; writing them is output.py's job.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import PurePath

from .emit import argocd, flux, helm, kustomize
from .emit.files import OutputFiles, header_comment
from .emit.manifests import build_objects
from .resolve import gitops_plan, resolve
from .resolved import K8s, ResolvedStack
from .validate import load_spec
from .verify import verify


@dataclass(frozen=True)
class Compiled:
    files: OutputFiles
    base: ResolvedStack
    environments: tuple[ResolvedStack, ...]
    objects: dict[str, list[K8s]]  # per environment name; "" is the base
    gitops: dict[str, list[K8s]]  # per output file

    def gitops_objects(self) -> list[tuple[str, list[K8s]]]:
        return sorted(self.gitops.items())


def _quiet(stage: str) -> None:
    del stage


def compile_spec(spec_path: str, *, use_helm: bool = True,
                 on_stage: Callable[[str], None] = _quiet) -> Compiled:
    on_stage("load and validate")
    validated = load_spec(spec_path)
    on_stage("resolve")
    resolved = resolve(validated)
    base = resolved.pop("")
    environments = tuple(resolved.values())
    source = PurePath(spec_path).name
    on_stage("emit")
    objects = {"": build_objects(base), **{e.environment: build_objects(e) for e in environments}}

    files = OutputFiles()
    files.update(helm.chart_files(base, list(environments), source))
    files.update(kustomize.base_files(objects[""], source))
    for env in environments:
        files.update(kustomize.overlay_files(env.environment, env.namespace, objects[""],
                                             objects[env.environment], source))
    plan = gitops_plan(validated)
    gitops: dict[str, list[K8s]] = {}
    if plan is not None:
        gitops = {**argocd.argocd_files(plan), **flux.flux_files(plan)}
    for path, documents in sorted(gitops.items()):
        files.add_yaml(path, header_comment(source), *documents)

    compiled = Compiled(files, base, environments, objects, gitops)
    on_stage("verify")
    verify(compiled, validated, use_helm=use_helm)
    return compiled
