"""The everyday commands through the CLI: compose, graph, explain."""

from __future__ import annotations

import yaml
from click.testing import CliRunner

from conftest import REPO
from modelapi_compile.cli import cli

EXAMPLE = str(REPO / "examples" / "agentic.yaml")


def test_compose_prints_a_compose_file() -> None:
    result = CliRunner().invoke(cli, ["compose", "-f", EXAMPLE, "--env", "dev"])
    assert result.exit_code == 0, result.output
    services = yaml.safe_load(result.output)["services"]
    assert "agentic-litellm-proxy" in services and "agentic-ollama" in services


def test_compose_unknown_environment_is_a_located_error() -> None:
    result = CliRunner().invoke(cli, ["compose", "-f", EXAMPLE, "--env", "dve"])
    assert result.exit_code == 1 and "did you mean 'dev'" in result.output


def test_graph_formats() -> None:
    mermaid = CliRunner().invoke(cli, ["graph", "-f", EXAMPLE])
    assert mermaid.exit_code == 0 and mermaid.output.startswith("flowchart LR")
    dot = CliRunner().invoke(cli, ["graph", "-f", EXAMPLE, "--env", "prod", "--format", "dot"])
    assert dot.exit_code == 0 and dot.output.startswith("digraph")


def test_explain_names_the_layer() -> None:
    result = CliRunner().invoke(cli, ["explain", "-f", EXAMPLE, "--env", "dev",
                                      "spec.modelAPIs[vllm-hosted].vllm.gpu.count"])
    assert result.exit_code == 0, result.output
    assert "environment patch" in result.output and ": 0" in result.output
