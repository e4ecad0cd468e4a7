"""End to end with the real engines: every valid spec builds, Helm (SDK) and Kustomize
render the same objects for every environment, every object validates strictly, and the
same spec gives the same bytes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from conftest import REPO, valid_specs
from modelapi_compile.cli import cli
from modelapi_compile.pipeline import compile_spec
from modelapi_compile.verify.engines import load_yaml_documents, render_chart

HELM_ONLY_LABELS = ("helm.sh/chart",)


def _key(obj: dict[str, Any]) -> tuple[str, str, str]:
    return (obj["apiVersion"], obj["kind"], obj["metadata"]["name"])


def _write(out: Path, spec: Path) -> None:
    result = CliRunner().invoke(cli, ["build", "-f", str(spec), "-o", str(out)])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("spec", valid_specs(), ids=lambda p: p.stem)
def test_helm_and_kustomize_describe_the_same_objects(spec: Path, tmp_path: Path, helm: Any,
                                                      kustomize: Any) -> None:
    _write(tmp_path, spec)
    compiled = compile_spec(str(spec), use_helm=False, keep_objects=True)
    chart = tmp_path / "charts" / compiled.base.name
    assert not helm.lint(str(chart)).get("errors")
    for env in compiled.environments:
        rendered = {_key(o): o for o in render_chart(helm, chart, env.environment,
                                                     env.namespace)}
        built = {_key(o): o for o in kustomize(tmp_path / "overlays" / env.environment)}
        # Only the overlays carry the Namespace; Helm creates it with createNamespace.
        namespace = built.pop(("v1", "Namespace", env.namespace))
        assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"]
        assert sorted(rendered) == sorted(built), env.environment
        for key, obj in rendered.items():
            assert obj == built[key], (env.environment, key)
            assert obj["metadata"]["namespace"] == env.namespace
        # and both equal the compiler's own objects
        assert {_key(o): o for o in compiled.objects[env.environment]} == rendered


@pytest.mark.parametrize("spec", valid_specs(), ids=lambda p: p.stem)
def test_same_spec_same_bytes(spec: Path, tmp_path: Path) -> None:
    _write(tmp_path / "one", spec)
    _write(tmp_path / "two", spec)
    one = {p.relative_to(tmp_path / "one"): p.read_bytes()
           for p in sorted((tmp_path / "one").rglob("*")) if p.is_file()}
    two = {p.relative_to(tmp_path / "two"): p.read_bytes()
           for p in sorted((tmp_path / "two").rglob("*")) if p.is_file()}
    assert one == two
    assert len(one) > 10


def test_committed_build_of_the_example_is_fresh() -> None:
    result = CliRunner().invoke(cli, ["build", "-f", str(REPO / "examples" / "agentic.yaml"),
                                      "-o", str(REPO), "--check"])
    assert result.exit_code == 0, result.output


def test_check_reports_drift_with_a_diff(tmp_path: Path) -> None:
    spec = REPO / "examples" / "agentic.yaml"
    _write(tmp_path, spec)
    values = tmp_path / "charts" / "agentic" / "values-prod.yaml"
    values.write_text(values.read_text() + "# drift\n")
    result = CliRunner().invoke(cli, ["build", "-f", str(spec), "-o", str(tmp_path),
                                      "--check"])
    assert result.exit_code == 1
    assert "-# drift" in result.output
    assert "+++ b/charts/agentic/values-prod.yaml" in result.output


def test_build_keeps_foreign_files_and_refuses_hand_edits(tmp_path: Path) -> None:
    spec = REPO / "examples" / "agentic.yaml"
    (tmp_path / "README.md").write_text("theirs\n")
    _write(tmp_path, spec)
    assert (tmp_path / "README.md").read_text() == "theirs\n"
    edited = tmp_path / "overlays" / "base" / "kustomization.yaml"
    edited.write_text("edited\n")
    result = CliRunner().invoke(cli, ["build", "-f", str(spec), "-o", str(tmp_path)])
    assert result.exit_code == 1
    assert "edited by hand" in result.output
    result = CliRunner().invoke(cli, ["build", "-f", str(spec), "-o", str(tmp_path), "--force"])
    assert result.exit_code == 0
    assert edited.read_text() != "edited\n"


def test_argocd_helm_applications_render_with_their_value_files(tmp_path: Path,
                                                                  helm: Any) -> None:
    """Check out the build where gitops.path says, then render what each Application names."""
    spec = REPO / "examples" / "agentic.yaml"
    compiled = compile_spec(str(spec), use_helm=False, keep_objects=True)
    repo_root = tmp_path / "repo"
    _write(repo_root / "deploy" / "agentic", spec)
    applications = [doc for path, docs in compiled.gitops.items()
                    if path.startswith("gitops/argocd/") for doc in docs
                    if doc["kind"] == "Application"]
    assert applications
    for app in applications:
        source = app["spec"]["source"]
        chart = repo_root / source["path"]
        assert (chart / "Chart.yaml").is_file()
        values: dict[str, Any] = {}
        for name in source["helm"]["valueFiles"]:
            loaded = load_yaml_documents((chart / name).read_text())
            values = {**values, **(loaded[0] if loaded else {})}
        namespace = app["spec"]["destination"]["namespace"]
        objects = helm.Chart.load(str(chart)).render(values, name=source["helm"]["releaseName"],
                                                     namespace=namespace)
        assert any("kind: Deployment" in text for text in objects.values())
