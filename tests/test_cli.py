"""What a new user meets in the first hour: honest exit codes, summaries, JSON results,
refusals that protect files, and editor support that resolves offline."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import yaml
from click.testing import CliRunner

from conftest import CASES, REPO
from modelapi_compile.cli import cli

EXAMPLE = str(REPO / "examples" / "agentic.yaml")
IMPORT = CASES / "import"


def _modeline_target(spec: Path) -> Path:
    first = spec.read_text().splitlines()[0]
    match = re.fullmatch(r"# yaml-language-server: \$schema=(\S+)", first)
    assert match, first
    assert "://" not in match.group(1)  # nothing serves a URL; a file beside the spec does
    return spec.parent / match.group(1)


def test_init_and_import_modeline_points_at_a_schema_written_beside(tmp_path: Path) -> None:
    spec = tmp_path / "stack.yaml"
    assert CliRunner().invoke(cli, ["init", "-o", str(spec)]).exit_code == 0
    schema_file = _modeline_target(spec)
    schema = json.loads(schema_file.read_text())
    jsonschema.validate(yaml.safe_load(spec.read_text()), schema)  # the editor's view
    with_errors = yaml.safe_load(spec.read_text())
    with_errors["spec"]["agents"][0]["replicas"] = "two"
    assert list(jsonschema.Draft202012Validator(schema).iter_errors(with_errors))

    imported = tmp_path / "sub" / "imported.yaml"
    imported.parent.mkdir()
    result = CliRunner().invoke(cli, ["import", str(IMPORT / "litellm-config.yaml"),
                                      "-o", str(imported)])
    assert result.exit_code == 0, result.output
    jsonschema.validate(yaml.safe_load(imported.read_text()),
                        json.loads(_modeline_target(imported).read_text()))


def test_a_foreign_file_named_like_the_schema_is_left_alone(tmp_path: Path) -> None:
    foreign = tmp_path / "modelstack.v1alpha1.json"
    foreign.write_text('{"mine": true}\n')
    result = CliRunner().invoke(cli, ["init", "-o", str(tmp_path / "stack.yaml")])
    assert result.exit_code == 0
    assert foreign.read_text() == '{"mine": true}\n'
    assert "left alone" in result.output
