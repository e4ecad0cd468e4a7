"""Property tests: every generated valid spec builds (verify: strict schemas, helm lint, Helm
render == the compiler's objects, restricted pods) and builds byte-identically twice; every
broken spec is refused with exit 1 and a located message, never a traceback."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings

from modelapi_compile import yamlout
from modelapi_compile.cli import cli
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
