"""Broken specs: each gives located, actionable messages and exit 1, never a traceback.

Expected output lives beside each case as NAME.out; regenerate with --update-golden.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import CASES, REPO
from modelapi_compile.cli import cli
from modelapi_compile.problems import SpecError
from modelapi_compile.spec.loader import load_bytes

INVALID = sorted((CASES / "invalid").glob("*.yaml"))


@pytest.mark.parametrize("case", INVALID, ids=lambda p: p.stem)
def test_invalid_spec_matches_golden(case: Path, update_golden: bool,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(case.parent)
    result = CliRunner().invoke(cli, ["validate", "-f", case.name])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    golden = case.with_suffix(".out")
    if update_golden:
        golden.write_text(result.output)
    assert result.output == golden.read_text()
    first = result.output.splitlines()[0]
    assert first.startswith(f"{case.name}:") and ": error: " in first


def test_json_output_carries_the_same_problems() -> None:
    case = CASES / "invalid" / "dangling-modelapi.yaml"
    result = CliRunner().invoke(cli, ["validate", "-f", str(case), "--output", "json"])
    assert result.exit_code == 1
    report = json.loads(result.output)
    assert report["valid"] is False
    problem = report["problems"][0]
    assert problem["line"] == 13 and problem["column"] == 17
    assert problem["path"] == "spec.agents[0].modelAPI"
    assert "did you mean 'ollama'" in problem["hint"]


def test_missing_file_is_a_user_error() -> None:
    result = CliRunner().invoke(cli, ["validate", "-f", "/nonexistent/spec.yaml"])
    assert result.exit_code == 1
    assert "cannot read the file" in result.output


@pytest.mark.parametrize("text, message", [
    (b"\xff\xfe bad", "not valid UTF-8"),
    (b"[" * 5000, "nested too deeply"),
    (b"a: 1\n---\nb: 2\n", "more than one YAML document"),
    (b"- just\n- a list\n", "must be a mapping"),
    (b"a: &x [*x]\n", "refers to its own anchor"),
], ids=["utf8", "nesting", "two-documents", "not-a-mapping", "recursive-alias"])
def test_hostile_yaml_is_refused(text: bytes, message: str) -> None:
    from modelapi_compile.spec.validate import validate_document

    with pytest.raises(SpecError) as caught:
        validate_document(load_bytes(text, "hostile.yaml"))
    assert message in str(caught.value)


def test_positions_survive_patches() -> None:
    case = CASES / "invalid" / "patch-breaks-rule.yaml"
    result = CliRunner().invoke(cli, ["validate", "-f", str(case)])
    # the error is in the environment's patch (line 15), not in the spec it patches, and
    # its path is the one written there
    assert ":15:30:" in result.output
    assert "spec.environments[0].patch.modelAPIs[0].vllm.replicas" in result.output


def test_errors_through_a_deleting_patch_are_reported_once_where_written() -> None:
    """A spec typo after an item the environment deletes is not reported again at the index
    it has in the environment's merged spec; a patch typo is at its path in the patch."""
    case = CASES / "invalid" / "patch-deletes-then-typos.yaml"
    result = CliRunner().invoke(cli, ["validate", "-f", str(case), "--output", "json"])
    problems = json.loads(result.output)["problems"]
    assert [(p["line"], p["path"]) for p in problems] == [
        (26, "spec.agents[1].replcas"),
        (34, "spec.environments[0].patch.agents[1].helthPath")]


def test_internal_errors_exit_3_with_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    import modelapi_compile.spec.validate as validate

    def explode(path: str) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(validate, "load_spec", explode)
    result = CliRunner().invoke(cli, ["validate", "-f", "x.yaml"])
    assert result.exit_code == 3
    assert "internal error" in result.output and "Traceback" not in result.output
    result = CliRunner().invoke(cli, ["--debug", "validate", "-f", "x.yaml"])
    assert result.exit_code == 3 and "Traceback" in result.output


def test_version_and_schema_commands(update_golden: bool) -> None:
    assert CliRunner().invoke(cli, ["--version"]).output.startswith("modelapi-compile, version")
    result = CliRunner().invoke(cli, ["schema"])
    assert result.exit_code == 0
    committed = REPO / "schemas" / "modelstack.v1alpha1.json"
    if update_golden:
        committed.write_text(result.output)
    assert json.loads(result.output) == json.loads(committed.read_text())


def test_examples_start_with_the_editor_modeline() -> None:
    for example in (REPO / "examples").glob("*.yaml"):
        first = example.read_text().splitlines()[0]
        assert first == "# yaml-language-server: $schema=../schemas/modelstack.v1alpha1.json"


REFERENCE = REPO / "docs" / "reference.md"


def test_spec_reference_is_current(update_golden: bool) -> None:
    """docs/reference.md is generated from the spec models (--update-golden rewrites it)."""
    from modelapi_compile.spec.schema import spec_reference_markdown

    reference = REFERENCE.read_text()
    start, end = "<!-- spec-reference:start -->\n", "<!-- spec-reference:end -->"
    head, section = reference[:reference.index(start) + len(start)], reference[
        reference.index(start) + len(start):reference.index(end)]
    if update_golden:
        REFERENCE.write_text(head + spec_reference_markdown() + reference[reference.index(end):])
        return
    assert section == spec_reference_markdown()


def test_production_fragments_are_from_the_built_spec() -> None:
    """The production examples (docs/production.md) are verbatim excerpts of a spec the
    suite builds."""
    section = (REPO / "docs" / "production.md").read_text()
    spec = "".join((CASES / "valid" / name).read_text()
                   for name in ("production-knobs.yaml", "litellm-gateway.yaml",
                                "observability.yaml"))
    blocks = section.split("```yaml\n")[1:]
    assert len(blocks) >= 12
    for block in blocks:
        fragment = block.split("```")[0]
        assert fragment in spec, fragment
