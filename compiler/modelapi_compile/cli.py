"""Command line: parse options, call the pipeline, report problems, choose the exit status.

Exit status: 0 success, 1 invalid input or output (or drift under --check), 2 usage error,
3 internal error. Heavy modules are imported inside commands so `--version` stays fast.
"""

from __future__ import annotations

import json
import sys
import traceback
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click

from . import __version__
from .problems import Problem, SpecError

F = TypeVar("F", bound=Callable[..., Any])
EXIT_INVALID, EXIT_INTERNAL = 1, 3


def _report(error: SpecError, output: str) -> None:
    if output == "json":
        click.echo(json.dumps({"valid": False,
                               "problems": [p.as_dict() for p in error.problems]}, indent=2))
    elif output == "github":
        for problem in error.problems:
            click.echo(_github_annotation(problem))
    else:
        for problem in error.problems:
            click.echo(problem.render(), err=True)
        count = len(error.problems)
        click.echo(f"{count} problem{'s' if count != 1 else ''} found", err=True)


def _github_annotation(problem: Problem) -> str:
    """A GitHub Actions workflow command that marks the problem on the spec's line."""

    def escape(text: str, *, prop: bool = False) -> str:
        text = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
        return text.replace(":", "%3A").replace(",", "%2C") if prop else text

    where = f"file={escape(problem.file, prop=True)}"
    if problem.line:
        where += f",line={problem.line},col={problem.column}"
    message = f"{problem.path}: {problem.message}" if problem.path else problem.message
    if problem.hint:
        message += f" ({problem.hint})"
    return f"::error {where},title=modelapi-compile::{escape(message)}"


def _guarded(func: F) -> F:
    """Turn user errors into exit 1 and bugs into exit 3, never a traceback by default."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        context = click.get_current_context()
        debug = bool(context.find_root().params.get("debug"))
        try:
            return func(*args, **kwargs)
        except SpecError as error:
            _report(error, kwargs.get("output", "text"))
            sys.exit(EXIT_INVALID)
        except (click.exceptions.Exit, click.ClickException, SystemExit, KeyboardInterrupt):
            raise
        except Exception as error:  # a bug: say so in one line
            if debug:
                traceback.print_exc()
            click.echo(f"modelapi-compile: internal error: {type(error).__name__}: {error}. "
                       "This is a bug; please report it with the spec and --debug output.",
                       err=True)
            sys.exit(EXIT_INTERNAL)

    return wrapper  # type: ignore[return-value]


class Progress:
    """Stage names on one terminal line for builds that take more than a moment; nothing
    when stderr is not a terminal or the build is quick."""

    DELAY = 0.5  # seconds before anything is shown

    def __init__(self, stream: Any = None) -> None:
        import time

        self.stream = stream or sys.stderr
        self.enabled = bool(getattr(self.stream, "isatty", lambda: False)())
        self.started = time.monotonic()
        self.clock = time.monotonic
        self.shown = False

    def __call__(self, stage: str) -> None:
        if self.enabled and self.clock() - self.started >= self.DELAY:
            self.stream.write(f"\r\033[Kmodelapi-compile: {stage}...")
            self.stream.flush()
            self.shown = True

    def done(self) -> None:
        if self.shown:
            self.stream.write("\r\033[K")
            self.stream.flush()


def _use_colour() -> bool:
    """Colour on a terminal, unless NO_COLOR is set (https://no-color.org)."""
    import os

    return sys.stdout.isatty() and not os.environ.get("NO_COLOR")


SPEC_OPTION = click.option("-f", "--file", "spec", required=True, metavar="SPEC",
                           help="the stack spec (YAML); - for stdin")
OUTPUT_OPTION = click.option("--output", type=click.Choice(["text", "json", "github"]),
                             default="text", show_default=True,
                             help="how to report problems (github: workflow annotations)")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="modelapi-compile")
@click.option("--debug", is_flag=True, help="show tracebacks of internal errors")
def cli(debug: bool) -> None:
    """Compile a stack spec of model APIs and agents into Helm, Kustomize and GitOps files."""


@cli.command()
@SPEC_OPTION
@OUTPUT_OPTION
@_guarded
def validate(spec: str, output: str) -> None:
    """Check the spec alone; exit 0 when valid, 1 when not."""
    from .validate import load_spec

    validated = load_spec(spec)
    if output == "json":
        click.echo(json.dumps({"valid": True, "problems": []}, indent=2))
    else:
        envs = ", ".join(e.name for e in validated.environments)
        click.echo(f"{spec}: valid ({len(validated.stack.spec.model_apis)} modelAPIs, "
                   f"{len(validated.stack.spec.agents)} agents; environments: {envs})")


@cli.command()
@SPEC_OPTION
@click.option("-o", "--output-dir", "out", required=True, type=click.Path(file_okay=False),
              help="folder to write (the GitOps repo path)")
@click.option("--check", is_flag=True, help="write nothing; exit 1 with a diff if DIR is stale")
@click.option("--force", is_flag=True, help="overwrite hand-edited or foreign files")
@click.option("--no-helm", is_flag=True, help="skip the Helm render check even if Helm exists")
@OUTPUT_OPTION
@_guarded
def build(spec: str, out: str, check: bool, force: bool, no_helm: bool, output: str) -> None:
    """Compile SPEC and write (or, with --check, compare) the output folder."""
    from . import output as writer
    from .diffing import unified_diff
    from .pipeline import compile_spec

    progress = Progress()
    try:
        compiled = compile_spec(spec, use_helm=not no_helm, on_stage=progress)
        progress("write")
    finally:
        progress.done()
    root = Path(out)
    spec_bytes = Path(spec).read_bytes() if spec != "-" else b""
    manifest = writer.manifest_text(compiled.files, spec_bytes, Path(spec).name,
                                    compiled.claims)
    left_behind = writer.left_behind_claims(root, compiled.claims)
    changes = writer.plan_changes(root, compiled.files, manifest)
    if check:
        if changes:
            click.echo(unified_diff(changes, colour=_use_colour()), nl=False)
            click.echo(f"{out} is out of date: {len(changes)} file(s) differ; "
                       f"run: modelapi-compile build -f {spec} -o {out}", err=True)
            sys.exit(EXIT_INVALID)
        click.echo(f"{out} is up to date ({len(compiled.files)} files)")
        return
    writer.check_ownership(root, compiled.files, force=force)
    writer.apply_changes(root, changes)
    click.echo(f"wrote {out}: {len(compiled.files)} files, {len(changes)} changed")
    for claim in left_behind:
        click.echo(f"left behind: PersistentVolumeClaim {claim} is no longer in the spec; "
                   "Argo CD, Flux and Helm keep model caches, delete it by hand when unneeded")


@cli.command()
@SPEC_OPTION
@click.option("-o", "--output-dir", "out", required=True, type=click.Path(file_okay=False))
@click.option("--no-helm", is_flag=True, help="skip the Helm render check even if Helm exists")
@click.option("--semantic", is_flag=True,
              help="compare Kubernetes objects: moved keys and reordered lists are no change")
@_guarded
def diff(spec: str, out: str, no_helm: bool, semantic: bool) -> None:
    """Show what `build` would change in DIR (exit 0 either way)."""
    from . import output as writer
    from .diffing import semantic_diff, unified_diff
    from .pipeline import compile_spec

    compiled = compile_spec(spec, use_helm=not no_helm, keep_documents=semantic)
    manifest = writer.manifest_text(compiled.files, Path(spec).read_bytes(), Path(spec).name,
                                    compiled.claims)
    changes = writer.plan_changes(Path(out), compiled.files, manifest)
    if semantic:
        click.echo(semantic_diff(changes, compiled.files.documents), nl=False)
    else:
        click.echo(unified_diff(changes, colour=_use_colour()), nl=False)


@cli.command()
@SPEC_OPTION
@click.option("--env", "environment", required=True, help="environment name")
@_guarded
def template(spec: str, environment: str) -> None:
    """Print what `helm template` renders for ENV."""
    from .template import render_environment

    click.echo(render_environment(spec, environment), nl=False)


@cli.command("validate-manifests")
@click.argument("paths", nargs=-1, required=True)
@click.option("--kubernetes-version", default="1.31.0", show_default=True,
              help="schemas of this Kubernetes version")
@click.option("--strict", is_flag=True, help="unknown fields and duplicate keys are errors")
@click.option("--schema-location", "locations", multiple=True,
              type=click.Path(exists=True, file_okay=False),
              help="folder of {group}/{kind}_{version}.json schemas or of CRD YAML; repeatable; "
                   "searched first")
@click.option("--ignore-missing-schemas", is_flag=True, help="skip kinds without a schema")
@click.option("--skip", "skip", multiple=True, help="kinds to skip (repeatable or comma-separated)")
@click.option("--output", type=click.Choice(["text", "json", "junit", "github"]), default="text",
              show_default=True)
@click.option("-v", "--verbose", is_flag=True, help="also list valid and skipped resources")
@_guarded
def validate_manifests(paths: tuple[str, ...], kubernetes_version: str, strict: bool,
                       locations: tuple[str, ...], ignore_missing_schemas: bool,
                       skip: tuple[str, ...], output: str, verbose: bool) -> None:
    """Validate Kubernetes manifests (files, folders, - for stdin) offline, like kubeconform.

    Exit 0 when every resource is valid or skipped, 1 when any is invalid or failed."""
    from .manifest_check import Options
    from .manifest_check import validate_manifests as run
    from .reporters import REPORTERS, as_text

    options = Options(
        kubernetes_version=kubernetes_version.lstrip("v"), strict=strict,
        schema_locations=tuple(Path(p) for p in locations),
        ignore_missing_schemas=ignore_missing_schemas,
        skip_kinds=frozenset(k.strip() for item in skip for k in item.split(",") if k.strip()))
    results = run(list(paths), options)
    report = REPORTERS[output](results) if output in REPORTERS else as_text(results, verbose)
    click.echo(report, nl=False)
    if any(r.status in ("invalid", "error") for r in results):
        sys.exit(EXIT_INVALID)


def _environment(spec: str, environment: str) -> Any:
    """The resolved model of one environment, or a located error naming the known ones."""
    from .problems import Problem, did_you_mean
    from .resolve import resolve
    from .validate import load_spec

    resolved = resolve(load_spec(spec))
    resolved.pop("")
    if environment not in resolved:
        raise SpecError([Problem(spec, 0, 0, "", f"no environment named '{environment}'",
                                 did_you_mean(environment, sorted(resolved)))])
    return resolved[environment]


@cli.command()
@SPEC_OPTION
@click.option("--env", "environment", required=True, help="environment name")
@click.option("-o", "--output-file", "out", type=click.Path(dir_okay=False),
              help="write here instead of stdout")
@_guarded
def compose(spec: str, environment: str, out: str | None) -> None:
    """A docker-compose file for local development with the cluster's wiring."""
    from .emit.compose import compose_file

    text = compose_file(_environment(spec, environment))
    if out:
        from .output import write_atomic

        write_atomic(Path(out), text)
        click.echo(f"wrote {out}", err=True)
    else:
        click.echo(text, nl=False)


@cli.command()
@SPEC_OPTION
@click.option("--env", "environment", help="one environment (default: all, as subgraphs)")
@click.option("--format", "fmt", type=click.Choice(["mermaid", "dot"]), default="mermaid",
              show_default=True)
@_guarded
def graph(spec: str, environment: str | None, fmt: str) -> None:
    """Agents -> model APIs -> backends -> GPUs, as Mermaid or Graphviz."""
    from .graph import graph_text
    from .validate import load_spec

    click.echo(graph_text(load_spec(spec), environment, fmt), nl=False)


@cli.command()
@SPEC_OPTION
@click.option("--env", "environment", required=True, help="environment name")
@click.argument("path")
@_guarded
def explain(spec: str, environment: str, path: str) -> None:
    """The effective value at a spec PATH and which layer set it.

    PATH looks like spec.modelAPIs[vllm-hosted].vllm.gpu.count (items by name or index)."""
    from .explain import explain as explain_path
    from .explain import render_explanation

    click.echo(render_explanation(explain_path(spec, environment, path)), nl=False)


@cli.command()
@click.option("-o", "--output-file", "out", required=True, type=click.Path(dir_okay=False),
              help="where to write the starter spec")
@click.option("--name", help="stack name (default: agentic)")
@click.option("--backends", help="comma-separated: ollama, vllm, litellm, external")
@click.option("--gitops", type=click.Choice(["none", "argocd", "flux", "both"]))
@click.option("--namespace", help="target namespace (default: the name)")
@click.option("--force", is_flag=True, help="overwrite FILE if it exists")
@_guarded
def init(out: str, name: str | None, backends: str | None, gitops: str | None,
         namespace: str | None, force: bool) -> None:
    """Write a commented starter spec that validates and builds as written.

    Prompts for what the flags leave open when stdin is a terminal."""
    from .output import write_atomic
    from .starter import BACKENDS, GITOPS_CHOICES, starter_spec

    if Path(out).exists() and not force:
        raise click.UsageError(f"{out} exists; pass --force to overwrite it")
    interactive = sys.stdin.isatty()
    if name is None:
        name = click.prompt("Stack name", default="agentic") if interactive else "agentic"
    if backends is None:
        default = "ollama,litellm"
        backends = (click.prompt(f"Backends ({', '.join(BACKENDS)})", default=default)
                    if interactive else default)
    if gitops is None:
        gitops = (click.prompt("GitOps tool", type=click.Choice(GITOPS_CHOICES), default="none")
                  if interactive else "none")
    chosen = [b.strip() for b in backends.split(",") if b.strip()]
    try:
        text = starter_spec(name, chosen, None if gitops == "none" else gitops, namespace)
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    write_atomic(Path(out), text)
    _schema_beside(Path(out))
    click.echo(f"wrote {out}; next: modelapi-compile build -f {out} -o deploy")


def _schema_beside(spec_file: Path) -> None:
    from .spec_schema import write_schema_beside

    note = write_schema_beside(spec_file)
    if note:
        click.echo(f"modelapi-compile: warning: {note}", err=True)


@cli.command("import")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--output-file", "out", required=True, type=click.Path(dir_okay=False),
              help="where to write the spec")
@click.option("--name", default="litellm-proxy", show_default=True,
              help="name of the imported LiteLLM proxy modelAPI")
@click.option("--stack", default="imported", show_default=True, help="metadata.name")
@click.option("--namespace", default="default", show_default=True)
@_guarded
def import_(files: tuple[str, ...], out: str, name: str, stack: str, namespace: str) -> None:
    """Make a spec from a LiteLLM config.yaml and ModelAPI / Agent documents."""
    from .importer import import_files
    from .output import write_atomic

    try:
        text = import_files(list(files), name=name, stack=stack, namespace=namespace)
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    write_atomic(Path(out), text)
    _schema_beside(Path(out))
    click.echo(f"wrote {out}; next: modelapi-compile build -f {out} -o deploy")


@cli.command()
def schema() -> None:
    """Print the JSON Schema of the stack spec."""
    from .spec_schema import spec_schema_text

    click.echo(spec_schema_text(), nl=False)


@cli.command()
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell: str) -> None:
    """Print the shell completion script, e.g. `eval "$(modelapi-compile completion bash)"`."""
    from click.shell_completion import get_completion_class

    completion_class = get_completion_class(shell)
    assert completion_class is not None
    script = completion_class(cli, {}, "modelapi-compile", "_MODELAPI_COMPILE_COMPLETE")
    click.echo(script.source())


HELM_COMMANDS = {"build", "diff", "template"}


def _tune_helm_runtime() -> None:
    """Restart once with GOGC=25 before a command that runs the embedded Helm SDK.

    Its Go runtime reads GOGC only from the environment the process started with, and Go's
    default lets the heap double between collections: on a stack of thousands of workloads
    that is hundreds of megabytes. One extra interpreter start (~40 ms) buys that back."""
    import os

    words = set(sys.argv[1:])
    if (os.name != "posix" or "GOGC" in os.environ or not words & HELM_COMMANDS
            or "--no-helm" in words or words & {"-h", "--help"}):
        return
    from importlib.util import find_spec

    if find_spec("helm_python") is None:
        return
    os.environ["GOGC"] = "25"
    os.execv(sys.executable, [sys.executable, "-m", "modelapi_compile", *sys.argv[1:]])


def main() -> None:
    _tune_helm_runtime()
    cli(prog_name="modelapi-compile")
