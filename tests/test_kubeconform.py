"""The real kubeconform and `validate-manifests` give the same verdict on every object: every
file of the manifest corpus (strict with the corpus' CRDs, and lenient), everything the build
of each valid spec renders (Helm and Kustomize per environment, the GitOps folders), and edge
cases of each format a CRD carries. And CI's check of the committed build passes.

kubeconform runs through .ci/kubeconform, the helper CI uses on the committed build, so these
tests also prove its offline schema locations. The binary comes from $MODELAPI_COMPILE_TOOLS
(a folder), else PATH; without it the tests skip, and fail under CI=true.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from conftest import CASES, REPO, SHARED, missing_engine, render_spec, valid_specs
from modelapi_compile.cli import cli
from modelapi_compile.verify.crd_schemas import load_crd_schemas

HELPER = REPO / ".ci" / "kubeconform"
CORPUS = CASES / "manifests"
# kubeconform's {{ .StrictSuffix }} picks the strict copy of a schema folder under -strict
CRD_LAYOUT = "{{ .StrictSuffix }}/{{ .Group }}/{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json"

Verdicts = Counter[tuple[str, str, str, str]]  # (file, kind, name, status) -> how many


@pytest.fixture(scope="session")
def kubeconform() -> Path:
    folder = os.environ.get("MODELAPI_COMPILE_TOOLS")
    found = Path(folder) / "kubeconform" if folder else None
    if found is None or not found.is_file():
        on_path = shutil.which("kubeconform")
        found = Path(on_path) if on_path else None
    if found is None:
        missing_engine("kubeconform (MODELAPI_COMPILE_TOOLS=<folder of the tools build> or "
                       "PATH)")
    assert found is not None
    return found


def run_kubeconform(binary: Path, args: list[str], cwd: Path, version: str = "1.31.0"
                    ) -> Verdicts:
    """kubeconform's verdict on every object (empty documents have none, as in ours)."""
    env = {**os.environ, "PYTHON": sys.executable, "MODELAPI_COMPILE_SHARED": str(SHARED),
           "KUBERNETES_VERSION": version}
    result = subprocess.run([str(HELPER), str(binary), "--", "-output", "json", "-verbose",
                             *args], cwd=cwd, env=env, capture_output=True, text=True,
                            timeout=300, check=False)
    assert result.returncode in (0, 1), result.stderr
    resources = json.loads(result.stdout)["resources"] or []
    return Counter((r["filename"], r["kind"], r["name"], r["status"]) for r in resources
                   if r["status"] != "statusEmpty")


def run_validate_manifests(args: list[str], cwd: Path, monkeypatch: pytest.MonkeyPatch
                           ) -> Verdicts:
    monkeypatch.chdir(cwd)
    result = CliRunner().invoke(cli, ["validate-manifests", *args, "--output", "json"])
    assert result.exit_code in (0, 1), result.output
    resources = json.loads(result.output)["resources"]
    return Counter((r["filename"], r["kind"], r["name"], r["status"]) for r in resources)


def assert_same(ours: Verdicts, theirs: Verdicts) -> None:
    only_ours, only_theirs = ours - theirs, theirs - ours
    assert not only_ours and not only_theirs, (
        "validate-manifests and kubeconform disagree:\n"
        + "".join(f"  validate-manifests: {key}\n" for key in sorted(only_ours))
        + "".join(f"  kubeconform:        {key}\n" for key in sorted(only_theirs)))


def corpus_crds_as_json(folder: Path) -> str:
    """The corpus' CRD YAML as kubeconform reads CRDs (JSON schemas, one folder per
    strictness), converted by validate-manifests' own converter: these tests compare the
    validators; the conversion has its own tests in test_manifests.py."""
    for strict, name in ((False, "crds"), (True, "crds-strict")):
        for (api_version, kind), schema in load_crd_schemas((CORPUS / "crds",), strict).items():
            group, _, version = api_version.rpartition("/")
            path = folder / name / group / f"{kind.lower()}_{version}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(schema), encoding="utf-8")
    return str(folder / "crds") + CRD_LAYOUT


def test_the_corpus_verdicts_are_kubeconforms_in_strict_mode(
        kubeconform: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    theirs = run_kubeconform(kubeconform, ["-strict", "-schema-location",
                                           corpus_crds_as_json(tmp_path), "."], CORPUS)
    ours = run_validate_manifests([".", "--strict", "--schema-location", "crds"], CORPUS,
                                  monkeypatch)
    assert_same(ours, theirs)
    statuses = Counter(status for *_, status in ours.elements())
    assert statuses["statusValid"] and statuses["statusInvalid"] and statuses["statusError"]


def test_the_corpus_verdicts_are_kubeconforms_without_strict_or_missing_schemas(
        kubeconform: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    theirs = run_kubeconform(kubeconform, ["-ignore-missing-schemas", "."], CORPUS)
    ours = run_validate_manifests([".", "--ignore-missing-schemas"], CORPUS, monkeypatch)
    assert_same(ours, theirs)
    assert ("invalid.yaml", "Deployment", "typo", "statusValid") in ours  # unknown field
    assert ("widgets.yaml", "Widget", "good", "statusSkipped") in ours  # no CRD given


def write_renders(spec: Path, build: Path, folder: Path, helm: Any, kustomize: Any) -> int:
    """Into `folder`, every object the build of `spec` (in `build`) renders: one file per
    engine and environment and one per GitOps folder; the number of objects."""
    renders = render_spec(spec, build, helm, kustomize)
    files = {f"{engine}-{env}.yaml": objects for engine, by_env in renders.items()
             for env, objects in by_env.items()}
    for tool in sorted((build / "out" / "gitops").glob("*/")):
        files[f"gitops-{tool.name}.yaml"] = kustomize(tool)
    for name, objects in files.items():
        (folder / name).write_text(yaml.safe_dump_all(objects, sort_keys=False), "utf-8")
    return sum(len(objects) for objects in files.values())


def spec_kubernetes_version(spec: Path) -> str:
    data = yaml.safe_load(spec.read_text(encoding="utf-8"))
    version = str((data.get("spec") or {}).get("kubernetesVersion") or "1.31.0")
    major, minor = version.lstrip("v").split(".")[:2]
    return f"{major}.{minor}.0"  # the schema folder both tools use


@pytest.mark.parametrize("spec", valid_specs(), ids=lambda p: p.stem)
def test_every_rendered_object_of_a_valid_spec_has_kubeconforms_verdict(
        spec: Path, kubeconform: Path, helm: Any, kustomize: Any, shared_crds: Path,
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    renders = tmp_path / "renders"
    renders.mkdir()
    objects = write_renders(spec, tmp_path / "build", renders, helm, kustomize)
    version = spec_kubernetes_version(spec)
    theirs = run_kubeconform(kubeconform, ["-strict", "."], renders, version)
    ours = run_validate_manifests([".", "--strict", "--kubernetes-version", version,
                                   "--schema-location", str(shared_crds)], renders, monkeypatch)
    assert sum(ours.values()) == objects
    assert_same(ours, theirs)
    assert set(status for *_, status in ours) == {"statusValid"}


FORMAT_CASES = {
    "date-time": ["2026-01-02T03:04:05Z", "2026-01-02t03:04:05z", "2026-01-02T03:04:05.5+01:00",
                  "2026-13-02T03:04:05Z", "2026-02-30T00:00:00Z", "2026-01-02 03:04:05Z",
                  "2026-12-31T23:59:60Z", "2026-12-31T22:59:60-01:00", "2026-12-31T12:00:60Z",
                  "2026-01-02T03:04:05", "2026-01-02T03:04:05+0100", "yesterday"],
    "date": ["2026-01-02", "2026-1-2", "2026-02-29", "2024-02-29"],
    "time": ["03:04:05Z", "03:04:05", "24:00:00Z", "03:04:05.5+05:30", "03:04:05+24:00"],
    "ipv4": ["10.0.0.1", "010.0.0.1", "256.1.1.1", "1.2.3", "1.2.3.4.5", "+1.2.3.4", "a.b.c.d"],
    "ipv6": ["::1", "fe80::1%eth0", "1.2.3.4", "::ffff:1.2.3.4", "2001:db8::g",
             "1:2:3:4:5:6:7:8:9"],
}


def test_crd_formats_get_kubeconforms_verdicts(kubeconform: Path, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """kubeconform asserts the formats of a schema without $schema (draft 4): each edge case
    of each format a CRD carries gets the same verdict from both."""
    fields = {name.replace("-", ""): name for name in FORMAT_CASES}
    schema = {"type": "object", "properties": {"spec": {"type": "object", "properties": {
        field: {"type": "string", "format": name} for field, name in fields.items()}}}}
    cases = {field: FORMAT_CASES[name] for field, name in fields.items()}
    # both verdicts occur for every format
    assert _probe_verdicts(kubeconform, tmp_path, monkeypatch, schema, cases) == {
        (field, status) for field in fields for status in ("statusValid", "statusInvalid")}


def check_build(kubeconform: Path, **where: str) -> subprocess.CompletedProcess[str]:
    """.ci/kubeconform on the committed build, or on the build BUILD of the spec SPEC."""
    env = {**os.environ, "PYTHON": sys.executable, "MODELAPI_COMPILE_SHARED": str(SHARED),
           **where}
    env.pop("KUBERNETES_VERSION", None)  # the spec's
    result = subprocess.run([str(HELPER), str(kubeconform)], env=env, capture_output=True,
                            text=True, timeout=900, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Invalid: 0, Errors: 0, Skipped: 0" in result.stdout
    return result


def test_ci_checks_the_committed_build_with_kubeconform(kubeconform: Path, kustomize: Any
                                                        ) -> None:
    """What CI runs: the committed build rendered (chart per environment, overlays, GitOps
    folders) and checked by kubeconform in strict mode, offline."""
    result = check_build(kubeconform)
    assert "kubeconform on 6 renders" in result.stderr  # dev, prod twice; Argo CD, Flux
    assert "(Kubernetes 1.31.0, strict)" in result.stderr


def test_ci_check_renders_each_part_of_a_split_overlay(kubeconform: Path, kustomize: Any,
                                                      tmp_path: Path) -> None:
    from test_overlay_parts import PARTS, split_spec

    spec = tmp_path / "split.yaml"
    spec.write_text(split_spec(), encoding="utf-8")
    out = tmp_path / "out"
    built = CliRunner().invoke(cli, ["build", "-f", str(spec), "-o", str(out), "--no-helm"])
    assert built.exit_code == 0, built.output
    environments = [p for p in (out / "overlays").iterdir() if p.name != "base"]
    tools = list((out / "gitops").iterdir())
    result = check_build(kubeconform, SPEC=str(spec), BUILD=str(out))
    # per environment: the chart, then the shared folder and each part on its own
    renders = len(environments) * (1 + 1 + PARTS) + len(tools)
    assert f"kubeconform on {renders} renders" in result.stderr


PATTERN_CASES = {  # a `$` in a character class, where fastjsonschema used to break
    "dollar-in-class": "^[a$]+$", "negated": "^[^$]+$", "bracket-first": "^[]$]+$",
    "escaped-bracket": "^[\\]$]+$", "anchor-after-escape": "^a\\[$",
}


def test_patterns_get_kubeconforms_verdicts(kubeconform: Path, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    fields = {name.replace("-", ""): pattern for name, pattern in PATTERN_CASES.items()}
    schema = {"type": "object", "properties": {"spec": {"type": "object", "properties": {
        field: {"type": "string", "pattern": pattern} for field, pattern in fields.items()}}}}
    values = ["a$", "$", "]", "a[", "ab", "a"]
    # both verdicts occur for every pattern
    assert _probe_verdicts(kubeconform, tmp_path, monkeypatch, schema,
                           {field: values for field in fields}) == {
        (field, status) for field in fields for status in ("statusValid", "statusInvalid")}


def _probe_verdicts(kubeconform: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                    schema: dict[str, Any], cases: dict[str, list[str]]) -> set[tuple[str, str]]:
    """One Probe object per (spec field, value) under a CRD schema; asserts both tools give
    each the same verdict and returns the (field, verdict) pairs seen."""
    schemas = tmp_path / "schemas"
    (schemas / "example.com").mkdir(parents=True)
    (schemas / "example.com" / "probe_v1.json").write_text(json.dumps(schema), "utf-8")
    objects = [{"apiVersion": "example.com/v1", "kind": "Probe",
                "metadata": {"name": f"{field}-{n}"}, "spec": {field: value}}
               for field, values in cases.items() for n, value in enumerate(values)]
    (tmp_path / "probes.yaml").write_text(yaml.safe_dump_all(objects), "utf-8")
    theirs = run_kubeconform(kubeconform, ["-schema-location", str(schemas) + CRD_LAYOUT,
                                           "probes.yaml"], tmp_path)
    ours = run_validate_manifests(["probes.yaml", "--schema-location", str(schemas)], tmp_path,
                                  monkeypatch)
    assert_same(ours, theirs)
    return {(name.rsplit("-", 1)[0], status) for _, _, name, status in ours}
