"""Environment overlays are cheap for controllers to render and still reviewable: each is a
plain list of its rendered objects (no ../base, no patches, no transformers, which Kustomize
would run again on every refresh), and its CHANGES.md names exactly the objects and fields
that differ from the base, as Kustomize itself renders them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from conftest import CASES, REPO
from modelapi_compile.cli import cli

SPECS = [REPO / "examples" / "agentic.yaml", CASES / "valid" / "production-gpu.yaml"]
PLAIN_KEYS = {"apiVersion", "kind", "resources"}


def _built(spec: Path, out: Path) -> list[str]:
    result = CliRunner().invoke(cli, ["build", "-f", str(spec), "-o", str(out), "--no-helm"])
    assert result.exit_code == 0, result.output
    return sorted(p.name for p in (out / "overlays").iterdir() if p.name != "base")


def _key(obj: dict[str, Any]) -> tuple[str, str]:
    return obj["kind"], obj["metadata"]["name"]


@pytest.mark.parametrize("spec", SPECS, ids=lambda p: p.stem)
def test_every_overlay_is_a_plain_list_of_its_own_files(spec: Path, tmp_path: Path) -> None:
    for env in ["base", *_built(spec, tmp_path)]:
        folder = tmp_path / "overlays" / env
        kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text())
        assert set(kustomization) == PLAIN_KEYS, (env, sorted(kustomization))
        files = {p.name for p in folder.glob("*.yaml") if p.name != "kustomization.yaml"}
        assert sorted(kustomization["resources"]) == sorted(files), env


@pytest.mark.parametrize("spec", SPECS, ids=lambda p: p.stem)
def test_changes_note_names_what_kustomize_renders_differently(spec: Path, tmp_path: Path,
                                                               kustomize: Any) -> None:
    environments = _built(spec, tmp_path)
    base = {_key(o): o for o in kustomize(tmp_path / "overlays" / "base")}
    for env in environments:
        rendered = {_key(o): o for o in kustomize(tmp_path / "overlays" / env)}
        note = (tmp_path / "overlays" / env / "CHANGES.md").read_text()
        for key in sorted(set(rendered) | set(base)):
            kind, name = key
            if key not in base:
                assert f"- Added: {kind} {name} " in note, (env, key)
            elif key not in rendered:
                assert f"- Removed: {kind} {name}\n" in note, (env, key)
            else:
                old = {**base[key], "metadata": {**base[key]["metadata"], "namespace": None}}
                new = {**rendered[key], "metadata": {**rendered[key]["metadata"],
                                                     "namespace": None}}
                assert (old != new) == (f"- Changed: {kind} {name}\n" in note), (env, key)
        namespaces = {o["metadata"].get("namespace") for o in rendered.values()} - {None}
        base_namespaces = {o["metadata"]["namespace"] for o in base.values()}
        moved = f"- Namespace of every namespaced object: {min(base_namespaces)} -> "
        assert (moved in note) == (namespaces != base_namespaces), env


def test_changes_note_shows_both_values(tmp_path: Path) -> None:
    _built(REPO / "examples" / "agentic.yaml", tmp_path)
    prod = (tmp_path / "overlays" / "prod" / "CHANGES.md").read_text()
    assert "- Changed: Deployment agentic-simple-math-agent\n  - spec.replicas: `1` -> `3`" in prod
    dev = (tmp_path / "overlays" / "dev" / "CHANGES.md").read_text()
    assert "- Namespace of every namespaced object: agentic -> agentic-dev" in dev
    assert ('resources.limits["nvidia.com/gpu"]: removed (was `"1"`)' in dev)
    assert '.args[9:11]: `["--gpu-memory-utilization", "0.9"]` -> `[]`' in dev


def test_an_overlay_too_large_for_a_controller_warns_and_names_helm(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The estimate is Kustomize's measured cost; here it is scaled up so that the example's
    overlays count as too large, as an L stack's do."""
    from modelapi_compile.emit import kustomize as engine

    assert engine.render_seconds(engine.largest_renderable_overlay()) <= 90
    assert engine.render_seconds(engine.largest_renderable_overlay() + 1) > 90
    monkeypatch.setenv("MODELAPI_COMPILE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(engine, "KUSTOMIZE_SECONDS_PER_OBJECT_SQUARED", 1.0)
    spec = REPO / "examples" / "agentic.yaml"  # Flux syncs the overlays, Argo CD the chart
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["build", "-f", str(spec), "-o", str(out), "--no-helm"])
    assert result.exit_code == 0, result.output
    lines = result.stderr.splitlines()
    for index, env in enumerate(("dev", "prod")):  # at the environment's line in the spec
        line = spec.read_text().splitlines().index(f"    - name: {env}") + 1
        assert any(text.startswith(f"{spec}:{line}:7: warning: spec.environments[{index}]: "
                                   f"overlays/{env} holds") for text in lines), lines
    assert "Flux would render it again on every refresh" in result.stderr
    assert "gitops.flux.source: helm" in result.stderr
    assert "split the overlays (gitops.overlayParts: " in result.stderr
    check = CliRunner().invoke(cli, ["build", "-f", str(spec), "-o", str(out), "--no-helm",
                                     "--check"])
    # the memo says it too (a check lists no Secrets to create: it writes nothing)
    warnings = result.stderr.split("Secrets to create before the first sync")[0]
    assert check.exit_code == 0 and check.stderr == warnings
    helm_only = tmp_path / "helm.yaml"
    helm_only.write_text(spec.read_text().replace("source: kustomize", "source: helm"))
    quiet = CliRunner().invoke(cli, ["build", "-f", str(helm_only), "-o", str(tmp_path / "h"),
                                     "--no-helm"])
    assert quiet.exit_code == 0 and "warning" not in quiet.stderr
