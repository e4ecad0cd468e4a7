"""Property tests: every generated valid spec builds (verify: strict schemas, helm lint, Helm
render == the compiler's objects, restricted pods) and builds byte-identically twice; every
broken spec is refused with exit 1 and a located message, never a traceback."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings

from modelapi_compile.cli import cli
from modelapi_compile.emit import yamlout
from modelapi_compile.pipeline import compile_spec
from strategies import broken_specs, specs

LOCATED = re.compile(r"^\S+:\d+:\d+: error: |^\S+: error: ", re.MULTILINE)


def _write(tmp: Path, spec: dict[str, Any] | str) -> Path:
    path = tmp / "spec.yaml"
    path.write_text(spec if isinstance(spec, str) else yamlout.dump(spec), encoding="utf-8")
    return path


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(spec=specs())
def test_valid_specs_build_and_verify_deterministically(spec: dict[str, Any], tmp_path: Path,
                                                        helm: Any) -> None:
    path = _write(tmp_path, spec)
    first = compile_spec(str(path), use_helm=True)  # raises on any verify problem
    second = compile_spec(str(path), use_helm=True)
    assert dict(first.files) == dict(second.files)
    lint = helm.lint(str(_chart(tmp_path, first)))
    assert not lint.get("errors")


def _chart(tmp: Path, compiled: Any) -> Path:
    for name, text in compiled.files:
        if name.startswith("charts/"):
            target = tmp / "out" / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
    return tmp / "out" / "charts" / compiled.base.name


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.function_scoped_fixture])
@given(case=broken_specs())
def test_broken_specs_are_refused_with_a_located_message(case: tuple[str, Any],
                                                         tmp_path: Path) -> None:
    kind, spec = case
    path = _write(tmp_path, spec)
    result = CliRunner().invoke(cli, ["validate", "-f", str(path)])
    assert result.exit_code == 1, (kind, result.output)
    assert "Traceback" not in result.output and "internal error" not in result.output
    assert LOCATED.search(result.output), (kind, result.output)


# --- the generators themselves -------------------------------------------------------------


def test_free_form_maps_are_never_given_an_unknown_key() -> None:
    """An unknown key in a map that takes any key is valid: the unknown-field mutation
    targets only mappings whose schema refuses unknown keys."""
    from strategies import closed_mapping

    litellm = ("spec", "modelAPIs", 0, "litellm")
    vllm = ("spec", "modelAPIs", 0, "vllm")
    for free in [(*litellm, "settings"), (*litellm, "models", 0, "params"),
                 (*litellm, "router", "fallbacks"), (*vllm, "podAnnotations"),
                 (*vllm, "nodeSelector"), ("spec", "environments", 0, "patch")]:
        assert not closed_mapping(free), free
    for closed in [(), ("spec",), litellm, (*litellm, "router"), vllm, (*vllm, "gpu"),
                   ("spec", "agents", 0, "env", 0)]:
        assert closed_mapping(closed), closed


@settings(max_examples=40, deadline=None)
@given(spec=specs())
def test_every_mutation_target_is_a_closed_mapping(spec: dict[str, Any]) -> None:
    from strategies import _mappings, closed_mapping

    targets = _mappings(spec)
    assert () in targets
    assert all(closed_mapping(path) for path in targets)
    assert not any("settings" in path or "params" in path or "podAnnotations" in path
                   for path in targets)


def test_ci_keeps_no_hypothesis_examples_between_runs() -> None:
    """Under CI=true a saved example never makes every later run fail: no database."""
    from hypothesis import settings as current

    from conftest import IN_CI

    assert current.get_profile("ci").database is None
    if IN_CI:
        assert current.default.database is None
