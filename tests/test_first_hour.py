"""A newcomer's first hour (issue 24): the install builds with Helm or says why not, help
matches behaviour, stdin is named, the quick start's output is ignored by git."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from conftest import REPO
from modelapi_compile.cli import cli

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    tomllib = None

EXAMPLE = REPO / "examples" / "agentic.yaml"


def _pyproject() -> dict[str, Any]:
    text = (REPO / "pyproject.toml").read_text()
    if tomllib is None:
        import pytest

        pytest.skip("tomllib needs Python 3.11")
    loaded: dict[str, Any] = tomllib.loads(text)
    return loaded


def _names(requirements: list[str]) -> set[str]:
    return {re.split(r"[\[<>=~! ;]", r, maxsplit=1)[0].lower() for r in requirements}


# --- item 2: install ------------------------------------------------------------------------


def test_a_plain_install_has_the_helm_sdk_and_no_litellm_proxy() -> None:
    project = _pyproject()["project"]
    core = _names(project["dependencies"])
    extras = project["optional-dependencies"]
    assert "helm-python-sdk" in core
    assert extras["helm"] == []  # the old extra still installs (the SDK is core now)
    # [test] is what a contributor installs; the LiteLLM proxy stays out of it
    assert not any(name.startswith("litellm") for name in _names(extras["test"]))
    assert "litellm" in _names(extras["proxy-tests"])
    assert extras["dev"] == ["modelapi-compile[test,proxy-tests]"]
    # CI installs everything the tests need
    assert "-e '.[dev]'" in (REPO / ".ci" / "run").read_text()


def test_the_ci_workflow_example_installs_what_the_readme_says() -> None:
    readme = (REPO / "README.md").read_text()
    workflow = (REPO / "docs" / "github-actions.yaml").read_text()
    installs = re.findall(r"pip install (\S+)", workflow)
    assert installs == ["modelapi-compile"]
    assert "pip install modelapi-compile" in readme
    assert "--output github" not in workflow  # --format is the option's name


def test_without_the_helm_sdk_a_build_fails_loudly(tmp_path: Path, monkeypatch: Any) -> None:
    from modelapi_compile.verify import engines as verify

    monkeypatch.setattr(verify, "helm_sdk", lambda: None)
    result = CliRunner().invoke(cli, ["build", "-f", str(EXAMPLE), "-o", str(tmp_path / "o")])
    assert result.exit_code == 1, result.output
    assert "the Helm SDK (the Python package helm-python-sdk) is not installed" in result.output
    assert "--no-helm" in result.output
    assert not (tmp_path / "o").exists()
    skipped = CliRunner().invoke(cli, ["build", "-f", str(EXAMPLE), "-o", str(tmp_path / "o"),
                                       "--no-helm"])
    assert skipped.exit_code == 0, skipped.output


# --- item 9: help matches behaviour ---------------------------------------------------------


def _format_options() -> list[tuple[str, Any]]:
    options = []
    for name, command in sorted(cli.commands.items()):
        for param in command.params:
            if "--format" in getattr(param, "opts", []):
                options.append((name, param))
    return options


def test_github_is_accepted_wherever_help_offers_it() -> None:
    options = _format_options()
    assert {name for name, _ in options} >= {"validate", "build", "diff", "init", "import",
                                              "validate-manifests", "verify"}
    for name, param in options:
        choices = list(getattr(param.type, "choices", []))
        if "github" in (param.help or ""):
            assert "github" in choices, name
    for name in ("validate", "build", "diff", "init", "import", "validate-manifests"):
        assert "github" in next(list(p.type.choices) for n, p in options if n == name), name


def test_github_reports_problems_as_annotations(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text(EXAMPLE.read_text().replace("replicas: 1", "replicas: x", 1))
    taken = tmp_path / "taken.yaml"
    taken.write_text("mine\n")
    runs = {
        "validate": ["validate", "-f", str(broken)],
        "build": ["build", "-f", str(broken), "-o", str(tmp_path / "out")],
        "diff": ["diff", "-f", str(broken), "-o", str(tmp_path / "out")],
        "init": ["init", "-o", str(taken)],
        "import": ["import", str(tmp_path / "missing.yaml"), "-o", str(tmp_path / "i.yaml")],
    }
    for name, args in runs.items():
        result = CliRunner().invoke(cli, [*args, "--format", "github"])
        assert result.exit_code == 1, (name, result.output)
        assert result.output.startswith("::error file="), (name, result.output)


def test_output_given_a_path_gets_a_hint_about_the_path_option() -> None:
    cases = {
        ("build", "-f", str(EXAMPLE)): "use -o DIR (--output-dir DIR)",
        ("diff", "-f", str(EXAMPLE)): "use -o DIR (--output-dir DIR)",
        ("init",): "use -o FILE (--output-file FILE)",
        ("import", str(EXAMPLE)): "use -o FILE (--output-file FILE)",
        ("validate", "-f", str(EXAMPLE)): "this command writes no file",
    }
    for args, hint in cases.items():
        result = CliRunner().invoke(cli, [*args, "--output", "deploy/x"])
        assert result.exit_code == 2, result.output
        assert "--output is the old name of --format, the report format" in result.output
        assert hint in result.output, result.output
    typo = CliRunner().invoke(cli, ["build", "-f", str(EXAMPLE), "-o", "x", "--format", "jsn"])
    assert typo.exit_code == 2 and "old name" not in typo.output  # a typo is just a typo


def test_a_spec_on_stdin_is_named_stdin(tmp_path: Path) -> None:
    text = EXAMPLE.read_text()
    valid = CliRunner().invoke(cli, ["validate", "-f", "-"], input=text)
    assert valid.exit_code == 0
    assert valid.output.startswith("<stdin>: valid (")
    broken = text.replace("replicas: 1", "replicas: x", 1)
    for args in (["validate", "-f", "-"], ["build", "-f", "-", "-o", str(tmp_path / "o")]):
        result = CliRunner().invoke(cli, args, input=broken)
        assert result.exit_code == 1
        assert re.search(r"^<stdin>:\d+:\d+: error: ", result.output, re.MULTILINE), result.output
        assert not re.search(r"^-:", result.output, re.MULTILINE)
    unknown = CliRunner().invoke(cli, ["compose", "-f", "-", "--env", "nope"], input=text)
    assert unknown.output.startswith("<stdin>: error: no environment named 'nope'")


def test_reference_tables_are_not_cut_mid_sentence() -> None:
    from modelapi_compile.emit.chart_docs import _cell
    from modelapi_compile.spec.schema import spec_reference_markdown, spec_schema

    reference = spec_reference_markdown()
    for name, model in spec_schema()["$defs"].items():
        paragraph = " ".join((model.get("description") or "").split("\n\n")[0].split())
        if paragraph and "properties" in model and not name.startswith("io.k8s."):
            assert f"#### {name}\n\n{paragraph}\n" in reference, name
    long = "a description " * 20 + "that ends here."
    assert _cell(long) == long.strip()
    chart = (REPO / "charts" / "agentic" / "README.md").read_text()
    rows = [line for line in chart.splitlines() if line.startswith("| ")]
    assert rows and not any(row.rstrip(" |").endswith("...") for row in rows)


def test_the_quick_starts_deploy_folder_is_ignored_by_git() -> None:
    import shutil
    import subprocess

    if shutil.which("git") is None or not (REPO / ".git").exists():
        import pytest

        pytest.skip("not a git checkout")
    readme = (REPO / "README.md").read_text()
    assert "-o deploy/" in readme
    result = subprocess.run(["git", "-C", str(REPO), "check-ignore", "-q",
                             "deploy/agentic/charts/agentic/Chart.yaml"], check=False)
    assert result.returncode == 0
