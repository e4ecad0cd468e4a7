"""Command line: parse options, call the pipeline, report problems, choose the exit status.

Exit status: 0 success, 1 invalid input or output (or drift under --check), 2 usage error,
3 internal error, 130 interrupted (Ctrl-C), 143 terminated (SIGTERM, as CI runners cancel).
Heavy modules are imported inside commands so `--version` stays fast.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from .. import __version__
from .common import DEBUG_OPTION, EXIT_INVALID, Terminated, _interrupted, _on_sigterm


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


@click.group(cls=_Cli, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="modelapi-compile")
@click.option("--debug", is_flag=True, help="show tracebacks of internal errors")
def cli(debug: bool) -> None:
    """Compile a stack spec of model APIs and agents into Helm, Kustomize and GitOps files."""


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


from .build import build, diff, template, validate, validate_manifests  # noqa: E402
from .cluster import simulate, verify  # noqa: E402
from .side_commands import (  # noqa: E402
    completion,
    compose,
    explain,
    graph,
    import_,
    init,
    schema,
)

# The pipeline's commands, the side commands, and the two that drive a control plane.
for _command in (validate, build, diff, template, validate_manifests, compose, graph, explain,
                 init, import_, schema, completion, simulate, verify):
    cli.add_command(_command)
    _command.params.append(DEBUG_OPTION)  # `--debug` after the subcommand works too
