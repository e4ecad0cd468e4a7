"""Command line: parse options, call the pipeline, report problems, choose the exit status.

Exit status: 0 success, 1 invalid input or output (or drift under --check), 2 usage error,
3 internal error, 130 interrupted (Ctrl-C), 143 terminated (SIGTERM, as CI runners cancel).
Heavy modules are imported inside commands so `--version` stays fast.
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
from .problems import Problem, SpecError, display_name

F = TypeVar("F", bound=Callable[..., Any])
EXIT_INVALID, EXIT_USAGE, EXIT_INTERNAL, EXIT_INTERRUPTED = 1, 2, 3, 130
EXIT_TERMINATED = 143  # 128 + SIGTERM, what a shell reports for a process SIGTERM ended


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C: the write in progress stops at a point it can resume
    from, and the command says what it left."""


def _on_sigterm(_signal: int, _frame: Any) -> None:
    raise Terminated


def plural(count: int, word: str, many: str = "") -> str:
    """`1 agent`, `2 agents`, `2 modelAPIs`."""
    return f"{count} {word if count == 1 else many or word + 's'}"


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
        click.echo(f"{plural(len(error.problems), 'problem')} found", err=True)


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


def _warn(warnings: tuple[Problem, ...]) -> None:
    for warning in warnings:
        click.echo(warning.render("warning"), err=True)


def _guarded(func: F) -> F:
    """Turn user errors into exit 1 and bugs into exit 3, never a traceback by default."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        context = click.get_current_context()
        try:
            return func(*args, **kwargs)
        except SpecError as error:
            _report(error, kwargs.get("report_format", "text"))
            sys.exit(EXIT_INVALID)
        except (click.exceptions.Exit, click.ClickException, SystemExit, KeyboardInterrupt):
            raise
        except OSError as error:  # the machine, not the spec: a path that cannot be used
            where = error.filename or ""
            problem = Problem(str(where), 0, 0, "", f"cannot use this path: "
                              f"{error.strerror or error}")
            _report(SpecError([problem]), kwargs.get("report_format", "text"))
            sys.exit(EXIT_INVALID)
        except Exception as error:  # a bug: say so in one line
            debug = bool(context.meta.get("debug") or context.find_root().params.get("debug"))
            if debug:
                traceback.print_exc()
            click.echo(f"modelapi-compile: internal error: {type(error).__name__}: {error}. "
                       "This is a bug; please report it with the spec and --debug output.",
                       err=True)
            sys.exit(EXIT_INTERNAL)

    return wrapper  # type: ignore[return-value]


class Progress:
    """Stage names on one terminal line for builds that take more than a moment; nothing
    when stderr is not a terminal or the build is quick. A timer shows the stage in progress
    once DELAY has passed, even when that stage is a long one."""

    DELAY = 0.5  # seconds before anything is shown

    def __init__(self, stream: Any = None, *, timer: Callable[[float, Callable[[], None]],
                                                             Any] | None = None,
                 started: float | None = None) -> None:
        import threading
        import time

        self.stream = stream or sys.stderr
        self.enabled = bool(getattr(self.stream, "isatty", lambda: False)())
        self.started = time.monotonic() if started is None else started
        self.clock = time.monotonic
        self.shown = False
        self.stage = ""
        self.finished = False
        self._lock = threading.Lock()
        self._timer = None
        if self.enabled:
            start = timer or _daemon_timer
            wait = max(0.0, self.DELAY - (self.clock() - self.started))
            self._timer = start(wait, self._show_current)

    def __call__(self, stage: str) -> None:
        self.stage = stage
        if self.enabled and self.clock() - self.started >= self.DELAY:
            self._show_current()

    def _show_current(self) -> None:
        with self._lock:
            if self.finished or not self.stage:
                return
            self.stream.write(f"\r\033[Kmodelapi-compile: {self.stage}...")
            self.stream.flush()
            self.shown = True

    def done(self) -> None:
        with self._lock:
            self.finished = True
            if self._timer is not None:
                self._timer.cancel()
            if self.shown:
                self.stream.write("\r\033[K")
                self.stream.flush()


def _daemon_timer(delay: float, action: Callable[[], None]) -> Any:
    import threading

    timer = threading.Timer(delay, action)
    timer.daemon = True
    timer.start()
    return timer


def _use_colour() -> bool:
    """Colour on a terminal, unless NO_COLOR is set (https://no-color.org)."""
    import os

    return sys.stdout.isatty() and not os.environ.get("NO_COLOR")


def _interrupted(command: str | None, terminated: bool) -> None:
    from .output import WRITING, unfinished

    message = "modelapi-compile: " + ("terminated" if terminated else "interrupted")
    if WRITING:
        folder = Path(WRITING[-1])
        if unfinished(folder):
            message += (f" while switching {folder} to the new files: it is part old, part "
                        "new; the next `build` completes the switch (`build --check` reports "
                        "it as drift until then)")
        else:
            message += (f" while writing {folder}: its files are unchanged (the new ones "
                        "were still being staged)")
    elif command == "build":
        message += "; nothing was written"
    click.echo(message, err=True)
    sys.exit(EXIT_TERMINATED if terminated else EXIT_INTERRUPTED)


class _Cli(click.Group):
    """Ctrl-C is exit 130 and SIGTERM exit 143, each with a line on what it left behind,
    not click's 'Aborted!' (1)."""

    def main(self, args: Any = None, prog_name: str | None = None,
             complete_var: str | None = None, standalone_mode: bool = True,
             **extra: Any) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        argv = list(sys.argv[1:] if args is None else args)
        command = next((a for a in argv if a in self.commands), None)
        import signal

        previous = signal.signal(signal.SIGTERM, _on_sigterm)
        try:
            result = super().main(argv, prog_name, complete_var, False, **extra)
        except click.exceptions.Abort as error:
            cause = error.__cause__ or error.__context__
            if isinstance(cause, KeyboardInterrupt):
                _interrupted(command, isinstance(cause, Terminated))
            click.echo("Aborted!", err=True)
            sys.exit(EXIT_INVALID)
        except click.ClickException as error:
            error.show()
            sys.exit(error.exit_code)
        finally:
            signal.signal(signal.SIGTERM, previous)
        sys.exit(result if isinstance(result, int) else 0)


FORMATS = ["text", "json", "github"]


class _FormatChoice(click.Choice):  # type: ignore[type-arg]
    """The report format; a value that looks like a path (`--output deploy/x`, the old name
    of --format used as if it named the folder) gets a hint about the path option."""

    def __init__(self, choices: list[str], path_option: str) -> None:
        super().__init__(choices)
        self.path_option = path_option

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> Any:
        try:
            return super().convert(value, param, ctx)
        except click.BadParameter as error:
            from .problems import nearest

            word = str(value)
            if any(c in word for c in "/\\.~") or not nearest(word, list(self.choices)):
                where = (f"to say where to write, use {self.path_option}" if self.path_option
                         else "this command writes no file")
                self.fail(f"{error.message} --output is the old name of --format, the report "
                          f"format; {where}.", param, ctx)
            raise


def _format_option(choices: list[str], what: str, path_option: str = "") -> Callable[[F], F]:
    """`--format` (old name `--output`); `path_option` names the command's path option, for
    the hint a path given to `--output` gets."""
    github = "; github: workflow annotations" if "github" in choices else ""
    return click.option(
        "--format", "--output", "report_format", type=_FormatChoice(choices, path_option),
        default="text", show_default=True,
        help=f"how to report {what} (--output is the old name{github})")


SPEC_OPTION = click.option("-f", "--file", "spec", required=True, metavar="SPEC",
                           help="the stack spec (YAML); - for stdin")
ENV_OPTION = click.option("--env", "environment", metavar="ENV",
                          help="environment name (optional when the spec has only one)")


def _set_debug(context: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        context.meta["debug"] = True


DEBUG_OPTION = click.Option(["--debug"], is_flag=True, expose_value=False, is_eager=True,
                            callback=_set_debug,
                            help="show tracebacks of internal errors")


@click.group(cls=_Cli, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="modelapi-compile")
@click.option("--debug", is_flag=True, help="show tracebacks of internal errors")
def cli(debug: bool) -> None:
    """Compile a stack spec of model APIs and agents into Helm, Kustomize and GitOps files."""


@cli.command()
@SPEC_OPTION
@_format_option(FORMATS, "the result")
@_guarded
def validate(spec: str, report_format: str) -> None:
    """Check the spec alone; exit 0 when valid, 1 when not."""
    from .validate import load_spec

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


@cli.command()
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

    from . import STARTED, memo
    from . import output as writer

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
        from .pipeline import compile_spec

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
    from .immutable import problems as immutable_problems

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
    from .emit.secret_list import secrets_json, secrets_summary

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
    from .repo_layout import gitops_path_warning

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
    from .diffing import unified_diff

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
    from .memo import Inputs
    from .verify import helm_sdk_available

    if spec == "-":
        return None
    try:
        spec_bytes = Path(spec).read_bytes()
    except OSError:
        return None  # the compile reports it, with the file's name
    return Inputs(Path(spec), spec_bytes, helm_verified=not no_helm and helm_sdk_available())


@cli.command()
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
    from . import output as writer
    from .diffing import is_bookkeeping, semantic_changes, semantic_diff, unified_diff
    from .pipeline import compile_spec

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


def _one_environment(spec: str, environment: str | None) -> str:
    """--env as given, or the spec's only environment; a usage error when it has several."""
    if environment is not None:
        return environment
    from .validate import load_spec

    names = [e.name for e in load_spec(spec).environments]
    if len(names) == 1:
        return names[0]
    raise click.UsageError(f"--env is required: {display_name(spec)} has environments "
                           f"{', '.join(names)}")


@cli.command()
@SPEC_OPTION
@ENV_OPTION
@_guarded
def template(spec: str, environment: str | None) -> None:
    """Print what `helm template` renders for ENV."""
    from .template import render_environment

    click.echo(render_environment(spec, _one_environment(spec, environment)), nl=False)


def _kubernetes_version(_context: click.Context, _param: click.Parameter, value: str) -> str:
    import re

    from .kubeschemas import available_kubernetes_versions

    known = available_kubernetes_versions()
    match = re.fullmatch(r"v?(\d+)\.(\d+)(?:\.\d+)?", value)
    if match is None or (int(match[1]), int(match[2])) < tuple(
            int(x) for x in known[0].split(".")):
        raise click.BadParameter(f"'{value}' is not a Kubernetes version of the offline "
                                 f"schemas ({known[0]} to {known[-1]}, e.g. 1.31.0)")
    return value.lstrip("v")


@cli.command("validate-manifests")
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
    from .manifest_check import Options
    from .manifest_check import validate_manifests as run
    from .reporters import REPORTERS, as_text

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


def _environment(spec: str, environment: str | None) -> Any:
    """The resolved model of one environment, or a located error naming the known ones."""
    from .problems import Problem, did_you_mean
    from .resolve import resolve
    from .validate import load_spec

    resolved = resolve(load_spec(spec))
    resolved.pop("")
    if environment is None:
        if len(resolved) != 1:
            raise click.UsageError(f"--env is required: {display_name(spec)} has environments "
                                   + ", ".join(sorted(resolved)))
        environment = next(iter(resolved))
    if environment not in resolved:
        raise SpecError([Problem(display_name(spec), 0, 0, "",
                                 f"no environment named '{environment}'",
                                 did_you_mean(environment, sorted(resolved)))])
    return resolved[environment]


@cli.command()
@SPEC_OPTION
@ENV_OPTION
@click.option("-o", "--output-file", "out", type=click.Path(dir_okay=False), metavar="FILE",
              help="write here instead of stdout")
@_guarded
def compose(spec: str, environment: str | None, out: str | None) -> None:
    """A docker-compose file for local development with the cluster's wiring."""
    from .emit.compose import compose_file
    from .problems import Problem

    resolved = _environment(spec, environment)
    # Neither runs on one Docker host: a group needs its nodes, a pool its Gateway.
    cluster_only = [Problem(spec, 0, 0, f"spec.modelAPIs[{name}].vllm",
                            "a replica over several nodes (nodes) or behind an InferencePool "
                            "(inferencePool) needs a cluster",
                            f"patch environment '{resolved.environment}' with nodes: 1 and "
                            "inferencePool: null for local development")
                    for name, workload in resolved.values.workloads.items()
                    if workload.group is not None or workload.served_at is not None]
    if cluster_only:
        raise SpecError(cluster_only)
    text = compose_file(resolved)
    if out:
        from .output import write_atomic

        write_atomic(Path(out), text)
        click.echo(f"wrote {out}", err=True)
    else:
        click.echo(text, nl=False)


@cli.command()
@SPEC_OPTION
@click.option("--env", "environment", metavar="ENV",
              help="one environment (default: all, as subgraphs)")
@click.option("--format", "fmt", type=click.Choice(["mermaid", "dot"]), default="mermaid",
              show_default=True, help="Mermaid (renders in GitHub) or Graphviz dot")
@_guarded
def graph(spec: str, environment: str | None, fmt: str) -> None:
    """Agents -> model APIs -> backends -> GPUs, as Mermaid or Graphviz."""
    from .graph import graph_text
    from .validate import load_spec

    click.echo(graph_text(load_spec(spec), environment, fmt), nl=False)


@cli.command()
@SPEC_OPTION
@ENV_OPTION
@click.argument("path")
@_guarded
def explain(spec: str, environment: str | None, path: str) -> None:
    """The effective value at a spec PATH and which layer set it.

    PATH looks like spec.modelAPIs[vllm-hosted].vllm.gpu.count (items by name or index)."""
    from .explain import explain as explain_path
    from .explain import render_explanation

    explained = explain_path(spec, _one_environment(spec, environment), path)
    click.echo(render_explanation(explained), nl=False)


def _interactive() -> bool:
    return sys.stdin.isatty()


def _refuse_existing(out: str, force: bool) -> None:
    if Path(out).exists() and not force:
        raise SpecError([Problem(out, 0, 0, "", "the file exists; nothing was written",
                                 "pass --force to overwrite it, or choose another -o")])


def _prompted(label: str, default: str, check: Callable[[str], Any]) -> str:
    """Ask until the answer passes `check` (a ValueError says why it does not)."""

    def value_proc(text: str) -> str:
        try:
            check(text)
        except ValueError as error:
            raise click.UsageError(str(error)) from None
        return text

    return str(click.prompt(label, default=default, value_proc=value_proc))


def _written(out: str, next_command: str, report_format: str,
             notes: list[str] | None = None) -> None:
    from .spec_schema import SCHEMA_FILE, write_schema_beside

    warning = write_schema_beside(Path(out))
    warnings = [warning] if warning else []
    if report_format == "json":
        click.echo(json.dumps({"written": out, "added": [out], "changed": [], "removed": [],
                               "schema": str(Path(out).parent / SCHEMA_FILE) if not warning
                               else None, "next": next_command, "notes": notes or [],
                               "warnings": warnings}, indent=2))
        return
    for text in warnings:
        click.echo(f"modelapi-compile: warning: {text}", err=True)
    click.echo(f"wrote {out}; next: {next_command}")


@cli.command()
@click.option("-o", "--output-file", "out", required=True, type=click.Path(dir_okay=False),
              metavar="FILE", help="where to write the starter spec")
@click.option("--name", help="stack name (default: agentic)")
@click.option("--backends", help="comma-separated: ollama, vllm, litellm, external "
                                 "(default: ollama,litellm)")
@click.option("--gitops", type=click.Choice(["none", "argocd", "flux", "both"]),
              help="GitOps manifests to generate: Argo CD Applications, Flux Kustomizations, "
                   "both or none (default: none)")
@click.option("--namespace", help="target namespace (default: the name)")
@click.option("--force", is_flag=True, help="overwrite FILE if it exists")
@_format_option(FORMATS, "problems and the result", "-o FILE (--output-file FILE)")
@_guarded
def init(out: str, name: str | None, backends: str | None, gitops: str | None,
         namespace: str | None, force: bool, report_format: str) -> None:
    """Write a commented starter spec that validates and builds as written.

    Prompts for what the flags leave open when stdin is a terminal, checking each answer as
    it is given."""
    from .output import write_atomic
    from .starter import (
        BACKENDS,
        GITOPS_CHOICES,
        check_backends,
        check_name,
        gitops_path,
        starter_spec,
    )

    _refuse_existing(out, force)
    interactive = _interactive()
    if name is None:
        name = _prompted("Stack name", "agentic", check_name) if interactive else "agentic"
    if backends is None:
        default = "ollama,litellm"
        backends = (_prompted(f"Backends ({', '.join(BACKENDS)})", default,
                              lambda text: check_backends(_split(text)))
                    if interactive else default)
    if gitops is None:
        gitops = (click.prompt("GitOps tool", type=click.Choice(GITOPS_CHOICES), default="none")
                  if interactive else "none")
    try:
        text = starter_spec(name, _split(backends), None if gitops == "none" else gitops,
                            namespace)
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    write_atomic(Path(out), text)
    _written(out, f"modelapi-compile build -f {out} -o {gitops_path(name)}", report_format)


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


@cli.command("import")
@click.argument("files", nargs=-1, required=True)
@click.option("-o", "--output-file", "out", required=True, type=click.Path(dir_okay=False),
              metavar="SPEC", help="where to write the spec")
@click.option("--name", default="litellm-proxy", show_default=True,
              help="name of the imported LiteLLM proxy modelAPI")
@click.option("--stack", default="imported", show_default=True, help="metadata.name")
@click.option("--namespace", help="spec.namespace (default: the stack name)")
@click.option("--force", is_flag=True, help="overwrite SPEC if it exists")
@click.option("--in-cluster", is_flag=True,
              help="run the Ollama and vLLM servers that routes reach at local or in-cluster "
                   "addresses as modelAPIs of the spec (default: keep each route as written)")
@_format_option(FORMATS, "problems and the result", "-o FILE (--output-file FILE)")
@_guarded
def import_(files: tuple[str, ...], out: str, name: str, stack: str, namespace: str | None,
            force: bool, in_cluster: bool, report_format: str) -> None:
    """Make a spec from a LiteLLM config.yaml and ModelAPI / Agent documents."""
    from .importer import import_spec
    from .output import write_atomic
    from .starter import gitops_path

    _refuse_existing(out, force)
    try:
        text, notes = import_spec(list(files), name=name, stack=stack, namespace=namespace,
                                  in_cluster=in_cluster)
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    write_atomic(Path(out), text)
    _written(out, f"modelapi-compile build -f {out} -o {gitops_path(stack)}", report_format,
             notes)


@cli.command()
def schema() -> None:
    """Print the JSON Schema of the stack spec."""
    from .spec_schema import spec_schema_text

    click.echo(spec_schema_text(), nl=False)


@cli.command(short_help="Print the shell completion script for bash, zsh or fish.")
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell: str) -> None:
    """Print the shell completion script for SHELL.

    Enable it with: eval "$(modelapi-compile completion bash)" (in ~/.bashrc; likewise zsh
    and fish)."""
    from click.shell_completion import get_completion_class

    completion_class = get_completion_class(shell)
    assert completion_class is not None
    script = completion_class(cli, {}, "modelapi-compile", "_MODELAPI_COMPILE_COMPLETE")
    click.echo(script.source())


for _command in cli.commands.values():  # `--debug` after the subcommand works too
    _command.params.append(DEBUG_OPTION)


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


def _register_cluster_commands() -> None:
    # Defined apart (cluster/commands.py) because they drive a control plane, not the build.
    from .cluster.commands import simulate, verify

    cli.add_command(simulate)
    cli.add_command(verify)


_register_cluster_commands()
