"""GitOps repositories lint what they hold: everything the tool writes as YAML (chart
templates excepted: they are Go templates, not YAML) passes yamllint's default rules."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from yamllint import linter
from yamllint.config import YamlLintConfig

from conftest import CASES, REPO, valid_specs
from modelapi_compile.cli import cli
from modelapi_compile.emit.yamlout import dump
from modelapi_compile.pipeline import compile_spec

DEFAULT_RULES = YamlLintConfig("extends: default")


def _lint(name: str, text: str) -> list[str]:
    """Every yamllint problem, warnings included (yamllint -s fails on them too)."""
    return [f"{name}:{p.line}:{p.column}: {p.message}"
            for p in linter.run(text, DEFAULT_RULES, name)]


@pytest.mark.parametrize("spec", valid_specs(), ids=lambda p: p.stem)
def test_build_output_passes_yamllint_default_rules(spec: Path) -> None:
    files = compile_spec(str(spec), use_helm=False).files
    linted = [(path, text) for path, text in files
              if path.endswith((".yaml", ".yml")) and "/templates/" not in path]
    assert len(linted) > 20
    problems = [p for path, text in linted for p in _lint(path, text)]
    assert problems == []


def test_long_values_fold_within_80_columns_and_read_back_the_same() -> None:
    import yaml

    value = {"spec": {"template": {"metadata": {"annotations": {
        "checksum/config": "a" * 64,
        "description": "words " * 30 + "end",
        "quoted": "yes: this needs quotes " * 6,
        # a long word then an operator: the operator may start the next line, which leaves
        # the word alone on its own (a PromQL alert over a long claim name)
        "expr": 'sum(used{claim=~"' + "c" * 60 + '"} / capacity{x}) > 0.9',
    }}}, "args": ["--flag=" + "x" * 90, "many short words " * 8]}}
    text = "---\n" + dump(value)
    assert _lint("folded.yaml", text) == []
    assert yaml.safe_load(text) == value


def test_init_and_import_specs_pass_yamllint(tmp_path: Path) -> None:
    spec = tmp_path / "stack.yaml"
    result = CliRunner().invoke(cli, ["init", "-o", str(spec), "--backends",
                                      "ollama,vllm,litellm,external", "--gitops", "both"])
    assert result.exit_code == 0, result.output
    imported = tmp_path / "imported.yaml"
    cases = CASES / "import"
    result = CliRunner().invoke(cli, ["import", str(cases / "litellm-config.yaml"),
                                      str(cases / "agents.yaml"), "-o", str(imported)])
    assert result.exit_code == 0, result.output
    assert _lint("stack.yaml", spec.read_text()) == []
    assert _lint("imported.yaml", imported.read_text()) == []


def test_committed_build_passes_yamllint() -> None:
    """What this repository commits (the build of examples/agentic.yaml) is linted as a
    GitOps repository would lint it."""
    problems = []
    for folder in ("charts", "overlays", "gitops"):
        for path in sorted((REPO / folder).rglob("*.yaml")):
            if "templates" not in path.parts:
                problems += _lint(str(path.relative_to(REPO)), path.read_text())
    assert problems == []
