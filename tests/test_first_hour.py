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
    from modelapi_compile import verify

    monkeypatch.setattr(verify, "helm_sdk", lambda: None)
    result = CliRunner().invoke(cli, ["build", "-f", str(EXAMPLE), "-o", str(tmp_path / "o")])
    assert result.exit_code == 1, result.output
    assert "the Helm SDK (the Python package helm-python-sdk) is not installed" in result.output
    assert "--no-helm" in result.output
    assert not (tmp_path / "o").exists()
    skipped = CliRunner().invoke(cli, ["build", "-f", str(EXAMPLE), "-o", str(tmp_path / "o"),
                                       "--no-helm"])
    assert skipped.exit_code == 0, skipped.output
