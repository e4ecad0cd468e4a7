"""The side commands, apart from the pipeline: init and import write a spec, compose a
docker-compose file, graph and explain read a spec, schema and completion print helpers."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from ..problems import Problem, SpecError, display_name
from .common import ENV_OPTION, FORMATS, SPEC_OPTION, _format_option, _guarded, _one_environment


def _environment(spec: str, environment: str | None) -> Any:
    """The resolved model of one environment, or a located error naming the known ones."""
    from ..problems import Problem, did_you_mean
    from ..resolve.stack import resolve
    from ..spec.validate import load_spec

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


@click.command()
@SPEC_OPTION
@ENV_OPTION
@click.option("-o", "--output-file", "out", type=click.Path(dir_okay=False), metavar="FILE",
              help="write here instead of stdout")
@_guarded
def compose(spec: str, environment: str | None, out: str | None) -> None:
    """A docker-compose file for local development with the cluster's wiring."""
    from ..commands.compose import compose_file

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
        from ..output.writer import write_atomic

        write_atomic(Path(out), text)
        click.echo(f"wrote {out}", err=True)
    else:
        click.echo(text, nl=False)


@click.command()
@SPEC_OPTION
@click.option("--env", "environment", metavar="ENV",
              help="one environment (default: all, as subgraphs)")
@click.option("--format", "fmt", type=click.Choice(["mermaid", "dot"]), default="mermaid",
              show_default=True, help="Mermaid (renders in GitHub) or Graphviz dot")
@_guarded
def graph(spec: str, environment: str | None, fmt: str) -> None:
    """Agents -> model APIs -> backends -> GPUs, as Mermaid or Graphviz."""
    from ..commands.graph import graph_text
    from ..spec.validate import load_spec

    click.echo(graph_text(load_spec(spec), environment, fmt), nl=False)


@click.command()
@SPEC_OPTION
@ENV_OPTION
@click.argument("path")
@_guarded
def explain(spec: str, environment: str | None, path: str) -> None:
    """The effective value at a spec PATH and which layer set it.

    PATH looks like spec.modelAPIs[vllm-hosted].vllm.gpu.count (items by name or index)."""
    from ..commands.explain import explain as explain_path
    from ..commands.explain import render_explanation

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
    from ..spec.schema import SCHEMA_FILE, write_schema_beside

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


@click.command()
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
    from ..commands.init import (
        BACKENDS,
        GITOPS_CHOICES,
        check_backends,
        check_name,
        gitops_path,
        starter_spec,
    )
    from ..output.writer import write_atomic

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


@click.command("import")
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
    from ..commands.importer import import_spec
    from ..commands.init import gitops_path
    from ..output.writer import write_atomic

    _refuse_existing(out, force)
    try:
        text, notes = import_spec(list(files), name=name, stack=stack, namespace=namespace,
                                  in_cluster=in_cluster)
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    write_atomic(Path(out), text)
    _written(out, f"modelapi-compile build -f {out} -o {gitops_path(stack)}", report_format,
             notes)


@click.command()
def schema() -> None:
    """Print the JSON Schema of the stack spec."""
    from ..spec.schema import spec_schema_text

    click.echo(spec_schema_text(), nl=False)


@click.command(short_help="Print the shell completion script for bash, zsh or fish.")
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell: str) -> None:
    """Print the shell completion script for SHELL.

    Enable it with: eval "$(modelapi-compile completion bash)" (in ~/.bashrc; likewise zsh
    and fish)."""
    from click.shell_completion import get_completion_class

    completion_class = get_completion_class(shell)
    assert completion_class is not None
    root = click.get_current_context().find_root().command  # the modelapi-compile group
    script = completion_class(root, {}, "modelapi-compile", "_MODELAPI_COMPILE_COMPLETE")
    click.echo(script.source())
