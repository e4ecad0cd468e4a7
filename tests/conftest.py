"""Shared fixtures: the real engines (Helm SDK, Kustomize), specs, golden-file switch.

Under CI=true a missing engine fails the run instead of skipping tests.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings as hypothesis_settings

from modelapi_compile.verify.engines import load_yaml_documents

REPO = Path(__file__).resolve().parents[1]
CASES = Path(__file__).parent / "cases"
# The CRD schemas shared by the project's test machines; MODELAPI_COMPILE_SHARED points
# elsewhere (a worktree or a clone outside the workspace).
SHARED = Path(os.environ.get("MODELAPI_COMPILE_SHARED", REPO.parent / "shared"))
IN_CI = os.environ.get("CI", "").lower() == "true"

# Hypothesis keeps every failing example in .hypothesis/ and replays it first on later runs:
# useful on a laptop, where the failure is being fixed, but in CI a one-off example would
# fail every later run of the same cache. Under CI=true no example database is read or
# written; a failure prints the blob that reproduces it (@reproduce_failure) instead.
# Examples stay random in CI (no derandomize), so new cases are still found.
hypothesis_settings.register_profile("ci", database=None, print_blob=True)
if IN_CI:
    hypothesis_settings.load_profile("ci")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--update-golden", action="store_true",
                     help="rewrite expected outputs under tests/cases from current results")


@pytest.fixture
def update_golden(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--update-golden"))


def missing_engine(what: str) -> None:
    if IN_CI:
        pytest.fail(f"{what} is required in CI (CI=true) but is not available")
    pytest.skip(f"{what} not available")


@pytest.fixture(scope="session")
def helm() -> Any:
    try:
        import helm_python
    except ImportError:
        missing_engine("the Helm SDK (pip install helm-python-sdk)")
    return helm_python


def go_tool(name: str) -> str:
    """A Go-built tool (promtool, kubeconform, ...): from MODELAPI_COMPILE_TOOLS, the cache
    tools/build.sh fills, else PATH; skipped when absent, a failure under CI=true."""
    from modelapi_compile.cluster.binaries import find

    found = find(name)
    if found is None:
        missing_engine(f"{name} (in $MODELAPI_COMPILE_TOOLS or on PATH)")
    assert found is not None
    return found


def kustomize_command() -> list[str] | None:
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    return None


@pytest.fixture(scope="session")
def kustomize() -> Any:
    command = kustomize_command()
    if command is None:
        missing_engine("kustomize (a kustomize binary or kubectl)")

    def build(folder: Path) -> list[dict[str, Any]]:
        result = subprocess.run([*command, str(folder)], capture_output=True, text=True,
                                check=False)
        assert result.returncode == 0, result.stderr
        return [d for d in load_yaml_documents(result.stdout) if d]

    return build


@pytest.fixture(scope="session")
def shared_crds() -> Path:
    folder = SHARED / "crds-strict"
    if not folder.is_dir():
        missing_engine(f"the CRD schemas in {folder} (set MODELAPI_COMPILE_SHARED to the "
                       "folder holding crds-strict/)")
    return folder


def valid_specs() -> list[Path]:
    return [REPO / "examples" / "agentic.yaml", *sorted((CASES / "valid").glob("*.yaml"))]



ENGINES = ("helm", "kustomize")
Rendered = dict[str, dict[str, list[dict[str, Any]]]]


def render_spec(spec: Path | str, folder: Path, helm: Any, kustomize: Any) -> Rendered:
    """Build a spec (a path, or spec text) into `folder`, then render every environment
    with both real engines: {engine: {environment: [objects]}}."""
    from click.testing import CliRunner

    from modelapi_compile.cli import cli
    from modelapi_compile.pipeline import compile_spec
    from modelapi_compile.verify.engines import render_chart

    if isinstance(spec, str):
        path = folder / "spec.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(spec, encoding="utf-8")
        spec = path
    out = folder / "out"
    result = CliRunner().invoke(cli, ["build", "-f", str(spec), "-o", str(out)])
    assert result.exit_code == 0, result.output
    compiled = compile_spec(str(spec), use_helm=False, keep_objects=True)
    chart = out / "charts" / compiled.base.name
    rendered: Rendered = {engine: {} for engine in ENGINES}
    for env in compiled.environments:
        rendered["helm"][env.environment] = render_chart(helm, chart, env.environment,
                                                         env.namespace)
        rendered["kustomize"][env.environment] = kustomize(out / "overlays" / env.environment)
    return rendered


@pytest.fixture(scope="session")
def control_plane() -> Any:
    """The real control plane (tests/control_plane.py), started once per session."""
    from modelapi_compile.cluster.binaries import CONTROL_PLANE, MissingBinaries, require

    try:
        require((*CONTROL_PLANE, "flux-apply"))
    except MissingBinaries as error:
        missing_engine(f"the control plane binaries ({error})")
    folder = SHARED / "crds-yaml"
    if not folder.is_dir():
        missing_engine(f"the upstream CRD manifests in {folder}")
    import signal

    from control_plane import start_control_plane

    def interrupt(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt  # pytest then tears fixtures down: no orphaned servers

    previous = signal.signal(signal.SIGTERM, interrupt)
    plane = start_control_plane(SHARED)
    try:
        yield plane
    finally:
        plane.stop()
        signal.signal(signal.SIGTERM, previous)
