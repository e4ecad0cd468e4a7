"""validate-manifests over a corpus of valid and invalid manifests: exact verdicts in every
output format (golden files; regenerate with --update-golden)."""

from __future__ import annotations

import json
from pathlib import Path
from xml.etree import ElementTree

import pytest
from click.testing import CliRunner

from conftest import CASES, REPO
from modelapi_compile.cli import cli
from modelapi_compile.verify.crd_schemas import load_crd_schemas

CORPUS = CASES / "manifests"
ARGS = ["validate-manifests", ".", "--strict", "--schema-location", "crds"]


def _run(args: list[str], monkeypatch: pytest.MonkeyPatch, stdin: str | None = None) -> object:
    monkeypatch.chdir(CORPUS)
    return CliRunner().invoke(cli, args, input=stdin)


@pytest.mark.parametrize("output", ["text", "json", "junit", "github"])
def test_corpus_verdicts_match_golden(output: str, monkeypatch: pytest.MonkeyPatch,
                                      update_golden: bool) -> None:
    result = _run([*ARGS, "--output", output, "-v"], monkeypatch)
    assert result.exit_code == 1  # type: ignore[attr-defined]
    golden = CASES / "manifests-expected" / f"report.{output}"
    if update_golden:
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(result.output)  # type: ignore[attr-defined]
    assert result.output == golden.read_text()  # type: ignore[attr-defined]


def test_json_verdicts_by_resource(monkeypatch: pytest.MonkeyPatch) -> None:
    report = json.loads(_run([*ARGS, "--output", "json"], monkeypatch).output)  # type: ignore[attr-defined]
    verdicts = {(r["kind"], r["name"]): r["status"] for r in report["resources"]}
    assert verdicts[("Deployment", "typo")] == "statusInvalid"  # unknown field
    assert verdicts[("Deployment", "wrong-type")] == "statusInvalid"
    assert verdicts[("Service", "missing-required")] == "statusInvalid"
    # no schema in 1.31 to validate against: kubeconform's error, with the reason
    assert verdicts[("PodDisruptionBudget", "removed-api")] == "statusError"
    assert verdicts[("Widget", "good")] == "statusValid"  # CRD converted on the fly
    assert verdicts[("Widget", "bad-field")] == "statusInvalid"
    assert verdicts[("Widget", "bad-label")] == "statusInvalid"  # `$` in a pattern's class
    assert verdicts[("Widget", "bad-since")] == "statusInvalid"  # CRD formats are asserted
    assert verdicts[("Service", "web")] == "statusValid"  # List items are split
    assert verdicts[("Deployment", "json-app")] == "statusValid"  # JSON input
    assert verdicts[("ConfigMap", "dup")] == "statusError"  # duplicate key, named all the same
    assert verdicts[("Deployment", "float-replicas")] == "statusValid"  # 2.0 is an integer
    assert verdicts[("ConfigMap", "yes-bool")] == "statusInvalid"  # yes is a boolean
    assert report["summary"] == {"valid": 11, "invalid": 9, "errors": 4, "skipped": 0}


def test_without_strict_unknown_fields_and_duplicates_pass(
        monkeypatch: pytest.MonkeyPatch) -> None:
    report = json.loads(_run(["validate-manifests", "invalid.yaml", "--output", "json",
                              "--ignore-missing-schemas"], monkeypatch).output)  # type: ignore[attr-defined]
    verdicts = {(r["kind"], r["name"]): r["status"] for r in report["resources"]}
    assert verdicts[("Deployment", "typo")] == "statusValid"
    assert verdicts[("ConfigMap", "dup")] == "statusValid"
    assert verdicts[("Widget", "unknown-crd")] == "statusSkipped"
    removed = next(r for r in report["resources"] if r["name"] == "removed-api")
    assert removed["status"] == "statusSkipped"  # as kubeconform skips it, but said why:
    assert removed["warnings"] == ["PodDisruptionBudget policy/v1beta1 was removed in "
                                   "Kubernetes 1.25; use policy/v1"]


def test_missing_schema_is_an_error_unless_ignored_or_skipped(
        monkeypatch: pytest.MonkeyPatch) -> None:
    widget = "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n"
    result = _run(["validate-manifests", "-"], monkeypatch, stdin=widget)
    assert result.exit_code == 1 and "no schema for Widget" in result.output  # type: ignore[attr-defined]
    result = _run(["validate-manifests", "-", "--skip", "Widget"], monkeypatch, stdin=widget)
    assert result.exit_code == 0 and "Skipped: 1" in result.output  # type: ignore[attr-defined]


def test_deprecated_api_is_a_warning_before_removal(monkeypatch: pytest.MonkeyPatch) -> None:
    pdb = ("apiVersion: policy/v1beta1\nkind: PodDisruptionBudget\nmetadata: {name: p}\n"
           "spec: {minAvailable: 1}\n")
    result = _run(["validate-manifests", "-", "--kubernetes-version", "1.25.0"], monkeypatch,
                  stdin=pdb)
    assert result.exit_code == 1 and "removed in Kubernetes 1.25; use policy/v1" in \
        result.output  # type: ignore[attr-defined]


def test_junit_is_well_formed(monkeypatch: pytest.MonkeyPatch) -> None:
    xml = _run([*ARGS, "--output", "junit"], monkeypatch).output  # type: ignore[attr-defined]
    root = ElementTree.fromstring(xml)
    assert root.tag == "testsuites" and root.get("failures") == "9"


def test_the_build_output_validates(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    result = CliRunner().invoke(cli, ["validate-manifests", "overlays/base", "--strict"])
    assert result.exit_code == 0, result.output
    assert "Invalid: 0, Errors: 0" in result.output


def test_crd_conversion_marks_nullable_and_strictness(tmp_path: Path) -> None:
    schemas = load_crd_schemas((CORPUS / "crds",), strict=True)
    widget = schemas[("example.com/v1", "Widget")]
    spec = widget["properties"]["spec"]
    assert spec["properties"]["color"]["type"] == ["string", "null"]
    assert spec["additionalProperties"] is False
