"""The pipeline's commands: validate, build (and --check), diff, template, and
validate-manifests for manifests from anywhere."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from ..problems import Problem, SpecError, display_name
from .common import (
    ENV_OPTION,
    EXIT_INVALID,
    FORMATS,
    SPEC_OPTION,
    Progress,
    _format_option,
    _guarded,
    _one_environment,
    _use_colour,
    _warn,
    plural,
)


@click.command()
@SPEC_OPTION
@_format_option(FORMATS, "the result")
@_guarded
def validate(spec: str, report_format: str) -> None:
    """Check the spec alone; exit 0 when valid, 1 when not."""
    from ..spec.validate import load_spec

    validated = load_spec(spec)
    _warn(validated.warnings)
    apis, agents = validated.stack.spec.model_apis, validated.stack.spec.agents
    envs = [e.name for e in validated.environments]
    if report_format == "json":
        click.echo(json.dumps({"valid": True, "problems": [], "modelAPIs": len(apis),
                               "agents": len(agents), "environments": envs}, indent=2))
    else:
        click.echo(f"{display_name(spec)}: valid ({plural(len(apis), 'modelAPI')}, "
                   f"{plural(len(agents), 'agent')}; "
                   f"{'environment' if len(envs) == 1 else 'environments'}: {', '.join(envs)})")


def _counts(changes: list[Any]) -> dict[str, list[str]]:
    """Paths added, changed and removed (the build manifest is one of the files)."""
    result: dict[str, list[str]] = {"added": [], "changed": [], "removed": []}
    for change in changes:
        kind = "added" if change.old is None else "removed" if change.new is None else "changed"
        result[kind].append(change.path)
    return result


def _count_text(counts: dict[str, list[str]]) -> str:
    return ", ".join(f"{len(paths)} {kind}" for kind, paths in counts.items())


@click.command()
@SPEC_OPTION
@click.option("-o", "--output-dir", "out", required=True, type=click.Path(file_okay=False),
              metavar="DIR", help="folder to write: the spec's gitops.path in the GitOps repo")
@click.option("--check", is_flag=True,
              help="compare instead of writing: exit 1 with a diff when DIR is stale or "
                   "holds a write an interrupted build left (which only `build` completes); "
                   "writes nothing")
@click.option("--force", is_flag=True,
              help="overwrite hand-edited generated files, foreign files in the way, and "
                   "another stack's build")
@click.option("--no-helm", is_flag=True, help="skip the Helm render check even if Helm exists")
@click.option("--accept-immutable-changes", "accept_immutable", is_flag=True,
              help="write changes to fields the cluster cannot change in place (claim "
                   "templates, selectors, claim classes) once the steps the refusal named "
                   "are done")
@_format_option(FORMATS, "problems and the result", "-o DIR (--output-dir DIR)")
@_guarded
def build(spec: str, out: str, check: bool, force: bool, no_helm: bool,
          accept_immutable: bool, report_format: str) -> None:
    """Compile SPEC and write (or, with --check, compare) the output folder."""
    from dataclasses import replace

    from .. import STARTED
    from ..output import memo, writer

    root = Path(out)
    inputs = _memo_inputs(spec, no_helm)
    placement = _placement_warnings(spec, root, inputs)
    if check and inputs is not None:
        with writer.locked(root, exclusive=False):
            verdict = memo.up_to_date(inputs, root)
        if verdict:
            # A memo proves a full compile would find no drift: report exactly what it would.
            shown = (*verdict.warnings, *placement)
            if report_format != "json":
                _warn(shown)
            _report_check(spec, out, root, [], verdict.files + 1, shown, report_format, None)
            return

    progress = Progress(started=STARTED)  # the half second counts from the process start
    progress("load and validate")
    try:
        from ..pipeline import compile_spec

        compiled = compile_spec(spec, use_helm=not no_helm, on_stage=progress,
                                spec_bytes=inputs.spec_bytes if inputs else None)
        progress("write")
    finally:
        progress.done()
    shown = (*compiled.warnings, *placement)
    if report_format != "json":
        _warn(shown)
    spec_bytes = inputs.spec_bytes if inputs else b""
    stack = compiled.base.name
    manifest = writer.manifest_text(compiled.files, spec_bytes, Path(spec).name, stack,
                                    compiled.claims, compiled.immutable)
    if inputs is not None:
        memo.record(replace(inputs, helm_verified=compiled.helm_verified), compiled.included,
                    [*compiled.files, (writer.MANIFEST, manifest)], compiled.warnings)
    files = len(compiled.files) + 1  # and the build manifest
    if check:
        with writer.locked(root, exclusive=False):
            changes = writer.plan_changes(root, compiled.files, manifest)
            interrupted = writer.unfinished(root)
        _report_check(spec, out, root, changes, files, shown, report_format, interrupted)
        return
    from ..output.immutable import problems as immutable_problems

    # From reading the old state to the end of the switch, this build is the folder's only
    # writer: a concurrent build of it waits, then plans against what this one wrote.
    with writer.locked(root, exclusive=True):
        writer.recover(root)
        refused, risky = immutable_problems(writer.previous_immutable(root),
                                            compiled.immutable, compiled.immutable_where,
                                            accepted=accept_immutable)
        if refused:
            raise SpecError(refused)
        if report_format != "json":
            _warn(tuple(risky))
        left_behind = writer.left_behind_claims(root, compiled.claims)
        changes = writer.plan_changes(root, compiled.files, manifest)
        warnings = writer.check_ownership(root, compiled.files, force=force, stack=stack,
                                          spec_name=Path(spec).name)
        writer.apply_changes(root, changes, manifest)
    counts = _counts(changes)
    spec_warnings = [w.render("warning") for w in (*shown, *risky)]
    result = {"command": "build", "spec": spec, "outputDir": out, "files": files, **counts,
              "warnings": spec_warnings}
    kept = [f"left behind: PersistentVolumeClaim {claim} is no longer in the spec; Argo CD, "
            "Flux and Helm keep model caches, delete it by hand when unneeded"
            for claim in left_behind]
    from ..output.secret_list import secrets_json, secrets_summary

    if report_format == "json":
        click.echo(json.dumps({**result, "warnings": spec_warnings + warnings + kept,
                               "secrets": secrets_json(list(compiled.secrets))}, indent=2))
        return
    for warning in warnings:
        click.echo(f"modelapi-compile: warning: {warning}", err=True)
    click.echo(f"wrote {out}: {plural(files, 'file')}; {_count_text(counts)}")
    for line in kept:
        click.echo(line)
    for line in secrets_summary(list(compiled.secrets)):
        click.echo(line, err=True)


def _placement_warnings(spec: str, root: Path, inputs: Any) -> tuple[Problem, ...]:
    """Whether `root` is where the spec's Applications and Kustomizations look."""
    from ..emit.repo_layout import gitops_path_warning

    if inputs is None:
        return ()  # a spec on stdin: the compile reports what is wrong with it
    try:
        warning = gitops_path_warning(spec, inputs.spec_bytes, root)
    except SpecError:
        return ()  # the compile reports it
    return (warning,) if warning else ()


def _report_check(spec: str, out: str, root: Path, changes: list[Any], files: int,
                  warnings: tuple[Problem, ...], report_format: str,
                  interrupted: str | None) -> None:
    """What `build --check` says, whether a compile or a build memo found the answer;
    `interrupted`: what an interrupted build left, which is drift even when every file
    happens to match."""
    from ..output.diffing import unified_diff

    counts = _counts(changes)
    drift = bool(changes or interrupted)
    result = {"command": "build --check", "spec": spec, "outputDir": out, "files": files,
              **counts, "warnings": [w.render("warning") for w in warnings]}
    rerun = f"modelapi-compile build -f {spec} -o {out}"
    if report_format == "json":
        click.echo(json.dumps({**result, "drift": drift, "interrupted": interrupted},
                              indent=2))
    elif report_format == "github":
        for change in changes:
            click.echo(_drift_annotation(root, change, rerun))
        if interrupted:
            click.echo(f"::error title=modelapi-compile build --check::{interrupted}; run: "
                       f"{rerun}")
    elif changes:
        click.echo(unified_diff(changes, colour=_use_colour()), nl=False)
    if interrupted:
        click.echo(f"modelapi-compile: {interrupted}; run: {rerun}", err=True)
    if drift:
        verb = "differs" if len(changes) == 1 else "differ"
        click.echo(f"{out} is out of date: {plural(len(changes), 'file')} {verb} "
                   f"({_count_text(counts)}); run: {rerun}", err=True)
        sys.exit(EXIT_INVALID)
    if report_format != "json":
        click.echo(f"{out} is up to date ({plural(files, 'file')})")


def _drift_annotation(root: Path, change: Any, rerun: str) -> str:
    what = ("is missing" if change.old is None else "should be removed" if change.new is None
            else "differs from the spec")
    text = f"{change.path} {what}; run: {rerun}"
    for old, new in (("%", "%25"), ("\r", "%0D"), ("\n", "%0A")):
        text = text.replace(old, new)
    file = str(root / change.path).replace("%", "%25").replace(":", "%3A").replace(",", "%2C")
    return f"::error file={file},title=modelapi-compile build --check::{text}"


def _memo_inputs(spec: str, no_helm: bool) -> Any:
    """What the build memo keys on, or None for a spec on stdin (always compiled)."""
    from ..output.memo import Inputs
    from ..verify.engines import helm_sdk_available

    if spec == "-":
        return None
    try:
        spec_bytes = Path(spec).read_bytes()
    except OSError:
        return None  # the compile reports it, with the file's name
    return Inputs(Path(spec), spec_bytes, helm_verified=not no_helm and helm_sdk_available())


@click.command()
@SPEC_OPTION
@click.option("-o", "--output-dir", "out", required=True, type=click.Path(file_okay=False),
              metavar="DIR", help="the folder `build -o DIR` writes, to compare with")
@click.option("--no-helm", is_flag=True, help="skip the Helm render check even if Helm exists")
@click.option("--semantic", is_flag=True,
              help="compare Kubernetes objects: moved keys and reordered lists are no change")
@click.option("--bookkeeping", is_flag=True,
              help="also show the build manifest (.modelapi-compile.json) and chart README")
@_format_option(FORMATS, "problems and the changes", "-o DIR (--output-dir DIR)")
@_guarded
def diff(spec: str, out: str, no_helm: bool, semantic: bool, bookkeeping: bool,
         report_format: str) -> None:
    """Show what `build` would change in DIR (exit 0 either way)."""
    from ..output import writer
    from ..output.diffing import is_bookkeeping, semantic_changes, semantic_diff, unified_diff
    from ..pipeline import compile_spec

    compiled = compile_spec(spec, use_helm=not no_helm, keep_documents=semantic)
    spec_bytes = Path(spec).read_bytes() if spec != "-" else b""
    manifest = writer.manifest_text(compiled.files, spec_bytes, Path(spec).name,
                                    compiled.base.name, compiled.claims)
    with writer.locked(Path(out), exclusive=False):
        planned = writer.plan_changes(Path(out), compiled.files, manifest)
        interrupted = writer.unfinished(Path(out))
    if interrupted:
        click.echo(f"modelapi-compile: {interrupted}; `build` completes the switch",
                   err=True)
    changes = [c for c in planned if bookkeeping or not is_bookkeeping(c.path)]
    documents = compiled.files.documents
    if semantic:  # files whose objects are equal are no change
        changes = [c for c in changes if semantic_changes(c, documents) is not None]
    if report_format == "json":
        counts = _counts(changes)
        detail = ({c.path: semantic_changes(c, documents) for c in changes} if semantic
                  else {})
        click.echo(json.dumps({"command": "diff", "spec": spec, "outputDir": out, **counts,
                               **({"differences": detail} if semantic else {}),
                               "warnings": []}, indent=2))
        return
    if not changes:
        click.echo(f"No changes: {out} is what `build` would write.", err=True)
        return
    if semantic:
        click.echo(semantic_diff(changes, documents), nl=False)
    else:
        click.echo(unified_diff(changes, colour=_use_colour()), nl=False)


@click.command()
@SPEC_OPTION
@ENV_OPTION
@_guarded
def template(spec: str, environment: str | None) -> None:
    """Print what `helm template` renders for ENV."""
    from ..emit.template import render_environment

    click.echo(render_environment(spec, _one_environment(spec, environment)), nl=False)


def _kubernetes_version(_context: click.Context, _param: click.Parameter, value: str) -> str:
    import re

    from ..verify.kubeschemas import available_kubernetes_versions

    known = available_kubernetes_versions()
    match = re.fullmatch(r"v?(\d+)\.(\d+)(?:\.\d+)?", value)
    if match is None or (int(match[1]), int(match[2])) < tuple(
            int(x) for x in known[0].split(".")):
        raise click.BadParameter(f"'{value}' is not a Kubernetes version of the offline "
                                 f"schemas ({known[0]} to {known[-1]}, e.g. 1.31.0)")
    return value.lstrip("v")


@click.command("validate-manifests")
@click.argument("paths", nargs=-1, required=True)
@click.option("--kubernetes-version", default="1.31.0", show_default=True,
              callback=_kubernetes_version,
              help="schemas of this Kubernetes version (1.25 or later; newer than the newest "
                   "bundled uses the newest)")
@click.option("--strict", is_flag=True, help="unknown fields and duplicate keys are errors")
@click.option("--schema-location", "locations", multiple=True,
              type=click.Path(exists=True, file_okay=False),
              help="folder of {group}/{kind}_{version}.json schemas or of CRD YAML; repeatable; "
                   "searched first")
@click.option("--ignore-missing-schemas", is_flag=True, help="skip kinds without a schema")
@click.option("--skip", "skip", multiple=True, help="kinds to skip (repeatable or comma-separated)")
@_format_option(["text", "json", "junit", "github"], "the results")
@click.option("-v", "--verbose", is_flag=True, help="also list valid and skipped resources")
@_guarded
def validate_manifests(paths: tuple[str, ...], kubernetes_version: str, strict: bool,
                       locations: tuple[str, ...], ignore_missing_schemas: bool,
                       skip: tuple[str, ...], report_format: str, verbose: bool) -> None:
    """Validate Kubernetes manifests (files, folders, - for stdin) offline, like kubeconform.

    Exit 0 when every resource is valid or skipped, 1 when any is invalid or failed or a
    path cannot be read."""
    from ..reporters import REPORTERS, as_text
    from ..verify.manifests import Options
    from ..verify.manifests import validate_manifests as run

    options = Options(
        kubernetes_version=kubernetes_version, strict=strict,
        schema_locations=tuple(Path(p) for p in locations),
        ignore_missing_schemas=ignore_missing_schemas,
        skip_kinds=frozenset(k.strip() for item in skip for k in item.split(",") if k.strip()))
    results = run(list(paths), options)
    report = (REPORTERS[report_format](results) if report_format in REPORTERS
              else as_text(results, verbose))
    click.echo(report, nl=False)
    if any(r.status in ("invalid", "error") for r in results):
        sys.exit(EXIT_INVALID)
