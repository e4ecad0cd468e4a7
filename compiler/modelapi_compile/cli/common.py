"""What every command shares: the spec and environment options, report formats, problem
reports (text, JSON, GitHub annotations), progress lines, exit statuses, and the guard that
turns a SpecError into exit 1 and an internal error into exit 3."""

from __future__ import annotations

import json
import sys
import traceback
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click

from ..problems import Problem, SpecError, display_name

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
    from ..output.writer import WRITING, unfinished

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
            from ..problems import nearest

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


def _one_environment(spec: str, environment: str | None) -> str:
    """--env as given, or the spec's only environment; a usage error when it has several."""
    if environment is not None:
        return environment
    from ..spec.validate import load_spec

    names = [e.name for e in load_spec(spec).environments]
    if len(names) == 1:
        return names[0]
    raise click.UsageError(f"--env is required: {display_name(spec)} has environments "
                           f"{', '.join(names)}")
