"""What CI and daily use rely on: GitHub annotations, completion, pre-commit hook, progress."""

from __future__ import annotations

import io

import yaml
from click.testing import CliRunner

from conftest import CASES, REPO
from modelapi_compile.cli import cli
from modelapi_compile.cli.common import Progress


def test_github_annotations_point_at_the_spec_line() -> None:
    case = CASES / "invalid" / "dangling-modelapi.yaml"
    result = CliRunner().invoke(cli, ["validate", "-f", str(case), "--output", "github"])
    assert result.exit_code == 1
    assert result.output.startswith(f"::error file={case},line=13,col=17,title=modelapi-compile::")
    assert "did you mean 'ollama'" in result.output


def test_completion_scripts() -> None:
    for shell in ("bash", "zsh", "fish"):
        result = CliRunner().invoke(cli, ["completion", shell])
        assert result.exit_code == 0 and "_MODELAPI_COMPILE_COMPLETE" in result.output


def test_pre_commit_hook_runs_build_check() -> None:
    hooks = yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text())
    hook = next(h for h in hooks if h["id"] == "modelapi-compile-check")
    assert hook["entry"].startswith("modelapi-compile build --check")
    assert hook["pass_filenames"] is False


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_shows_only_on_a_terminal_after_a_moment() -> None:
    quiet = io.StringIO()
    Progress(quiet)("verify")
    assert quiet.getvalue() == ""
    terminal = _Terminal()
    progress = Progress(terminal)
    progress("resolve")  # too early: the build may well finish before anyone looks
    assert terminal.getvalue() == ""
    progress.started -= 1
    progress("verify")
    progress.done()
    assert "modelapi-compile: verify..." in terminal.getvalue()
    assert terminal.getvalue().endswith("\r\033[K")


def test_chart_readme_lists_values_like_helm_docs() -> None:
    readme = (REPO / "charts" / "agentic" / "README.md").read_text()
    assert "| Key | Type | Default | Description |" in readme
    assert "| workloads.<name>.replicas | int | see below |" in readme
    assert "| ollama | ollama | `ollama/ollama:0.6.5` | 1 |" in readme


def test_notes_tell_how_to_reach_the_proxy_and_agents(helm: object) -> None:
    import helm_python

    output = helm_python.Chart.load(str(REPO / "charts" / "agentic")).render(
        {}, name="agentic", namespace="team")
    notes = output["agentic/templates/NOTES.txt"]
    assert "port-forward svc/agentic-litellm-proxy 4000:4000" in notes
    assert "port-forward svc/agentic-simple-math-agent 8000:8000" in notes
