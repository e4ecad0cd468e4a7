"""The commands that talk to a real control plane: `simulate` (a local one it starts) and
`verify --server` (a cluster of a kubeconfig). Registered on the CLI by cli/__init__.py."""

from __future__ import annotations

import json
import signal
import sys
from typing import Any

import click

from ..problems import Problem, SpecError, display_name
from .common import (
    ENV_OPTION,
    EXIT_INVALID,
    EXIT_TERMINATED,
    SPEC_OPTION,
    _guarded,
    _one_environment,
)


def _stop_on_sigterm() -> None:
    """SIGTERM (what CI runners cancel with) unwinds like Ctrl-C, so every process the command
    started is stopped by the same `finally`."""

    def terminate(_signum: int, _frame: Any) -> None:
        raise SystemExit(EXIT_TERMINATED)

    signal.signal(signal.SIGTERM, terminate)


def _progress(message: str) -> None:
    click.echo(f"modelapi-compile: {message}", err=True)


@click.command()
@SPEC_OPTION
@ENV_OPTION
@click.option("--nodes", default=None, metavar="PRESET|FILE",
              help="node pools: gke, eks, aks, karpenter or gfd (default: the spec's GPU label "
              "convention), or a YAML file with nodePools")
@click.option("--upgrade-from", "upgrade_from", metavar="OLD_SPEC", default=None,
              help="apply OLD_SPEC's environment first, then this one over it (pruning what "
                   "left), as a GitOps sync of the change would")
@click.option("--crds", "crds", multiple=True, metavar="DIR",
              type=click.Path(exists=True, file_okay=False),
              help="folders of CustomResourceDefinition manifests to install first "
                   "(repeatable); kinds without a CRD are rejected as a cluster without it "
                   "would reject them")
@click.option("--timeout", default=120, show_default=True, type=click.IntRange(5, 3600),
              help="seconds to wait for every pod to be bound")
@click.option("--format", "report_format", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="text, or JSON with rejected, pods and pending")
@_guarded
def simulate(spec: str, environment: str | None, nodes: str | None, upgrade_from: str | None,
             crds: tuple[str, ...], timeout: int, report_format: str) -> None:
    """Apply an environment to a local control plane and report what Kubernetes made of it.

    The real kube-apiserver, etcd, controller-manager and scheduler run with kwok nodes; the
    report says what was rejected, where each pod runs and what stays Pending. Exit 0 only
    when everything was admitted and every pod is bound."""
    from ..cluster.binaries import MissingBinaries, require
    from ..cluster.local import ControlPlaneError
    from ..cluster.nodes import PRESETS
    from ..cluster.simulate import render_text
    from ..cluster.simulate import simulate as run

    if nodes and nodes not in PRESETS:
        from pathlib import Path

        if not Path(nodes).is_file():
            raise click.BadParameter(f"{nodes!r} is neither a preset ({', '.join(PRESETS)}) "
                                     "nor a file", param_hint="--nodes")
    from ..spec.validate import load_spec

    env = _one_environment(spec, environment)
    load_spec(spec)  # a spec that cannot be read is the first thing to say
    try:
        require()
    except MissingBinaries as error:
        click.echo(f"modelapi-compile: simulate needs a local control plane: {error}", err=True)
        sys.exit(EXIT_INVALID)
    _stop_on_sigterm()
    try:
        report = run(spec, env, nodes=nodes, upgrade_from=upgrade_from, crds=crds,
                     timeout=timeout, log=_progress)
    except ControlPlaneError as error:
        click.echo(f"modelapi-compile: the local control plane failed: {error}", err=True)
        sys.exit(EXIT_INVALID)
    if report_format == "json":
        click.echo(json.dumps(report.as_dict(), indent=2))
    else:
        click.echo(render_text(report), nl=False)
    sys.exit(0 if report.ok else EXIT_INVALID)


@click.command()
@SPEC_OPTION
@ENV_OPTION
@click.option("--server", is_flag=True, required=True,
              help="dry-run on the API server of the kubeconfig (required: the offline checks "
                   "run in every build)")
@click.option("--kubeconfig", default=None, metavar="FILE",
              help="kubeconfig (default: $KUBECONFIG, else ~/.kube/config)")
@click.option("--context", "context", default=None, metavar="NAME",
              help="kubeconfig context (default: its current context)")
@click.option("--format", "report_format", type=click.Choice(["text", "json", "github"]),
              default="text", show_default=True, help="how to report rejections")
@_guarded
def verify(spec: str, environment: str | None, server: bool, kubeconfig: str | None,
           context: str | None, report_format: str) -> None:
    """Dry-run an environment on a real cluster (server-side apply with dryRun=All).

    The cluster's admission (webhooks, ValidatingAdmissionPolicies, Pod Security, quotas),
    CEL rules and immutable fields judge every object; each rejection is reported at the
    spec line it came from."""
    del server
    from ..cluster.server import dry_run

    env = _one_environment(spec, environment)
    problems, warnings = dry_run(spec, env, kubeconfig, context)
    for warning in warnings:
        click.echo(f"modelapi-compile: warning: the API server says: {warning}", err=True)
    if problems:
        raise SpecError(problems)
    if report_format == "json":
        click.echo(json.dumps({"valid": True, "problems": [], "warnings": warnings}, indent=2))
    else:
        click.echo(f"{display_name(spec)}: every object of environment {env} was admitted "
                   "(server dry-run)")


def connection_problem(spec: str, message: str) -> SpecError:
    return SpecError([Problem(display_name(spec), 0, 0, "", message,
                              "check --kubeconfig and --context, and that the cluster answers")])
