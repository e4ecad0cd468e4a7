"""The everyday commands through the CLI: compose, graph, explain."""

from __future__ import annotations

from pathlib import Path

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


def test_init_without_a_terminal_writes_a_spec_that_builds(tmp_path: Path) -> None:
    spec = tmp_path / "stack.yaml"
    result = CliRunner().invoke(cli, ["init", "-o", str(spec), "--backends", "ollama,vllm",
                                      "--gitops", "argocd"])
    assert result.exit_code == 0, result.output
    built = CliRunner().invoke(cli, ["build", "-f", str(spec), "-o", str(tmp_path / "out"),
                                     "--no-helm"])
    assert built.exit_code == 0, built.output
    again = CliRunner().invoke(cli, ["init", "-o", str(spec)])
    assert again.exit_code == 1 and "--force" in again.output  # refused, file untouched


def test_init_rejects_an_unknown_backend(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["init", "-o", str(tmp_path / "s.yaml"),
                                      "--backends", "tgi"])
    assert result.exit_code == 2


def test_import_builds_without_edits(tmp_path: Path) -> None:
    cases = REPO / "tests" / "cases" / "import"
    spec = tmp_path / "imported.yaml"
    result = CliRunner().invoke(cli, ["import", str(cases / "litellm-config.yaml"),
                                      str(cases / "agents.yaml"), "-o", str(spec)])
    assert result.exit_code == 0, result.output
    built = CliRunner().invoke(cli, ["build", "-f", str(spec), "-o", str(tmp_path / "out")])
    assert built.exit_code == 0, built.output
