"""`build --check` answers from a build memo only when a full compile would say exactly the
same: every input changed in turn, and every kind of drift, falls back to the full compile,
whose verdict and output the fast answer must equal."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from conftest import REPO
from modelapi_compile import pipeline
from modelapi_compile.cli import cli
from modelapi_compile.output import memo
from modelapi_compile.output.writer import JOURNAL, MANIFEST

EXAMPLE = REPO / "examples" / "agentic.yaml"


class Compiles:
    """Counts full compiles by wrapping the pipeline the CLI calls."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        real = pipeline.compile_spec

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.count += 1
            return real(*args, **kwargs)

        monkeypatch.setattr(pipeline, "compile_spec", counted)


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("MODELAPI_COMPILE_CACHE", str(folder))
    return folder


@pytest.fixture
def compiles(monkeypatch: pytest.MonkeyPatch) -> Compiles:
    return Compiles(monkeypatch)


def _run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def _built(tmp_path: Path, *extra: str) -> tuple[Path, Path]:
    """A copy of the example spec and its build (which records a memo)."""
    spec = tmp_path / "spec" / "agentic.yaml"
    spec.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(EXAMPLE, spec)
    out = tmp_path / "out"
    result = _run("build", "-f", str(spec), "-o", str(out), *extra)
    assert result.exit_code == 0, result.output
    return spec, out


def _check(spec: Path, out: Path, *extra: str) -> Result:
    return _run("build", "-f", str(spec), "-o", str(out), "--check", *extra)


def _full_check(spec: Path, out: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                *extra: str) -> Result:
    """The same check with no memo to go by: always the full compile."""
    with monkeypatch.context() as scoped:
        scoped.setenv("MODELAPI_COMPILE_CACHE", str(tmp_path / "empty-cache"))
        return _check(spec, out, *extra)


def _same(fast: Result, full: Result) -> None:
    assert (fast.exit_code, fast.stdout, fast.stderr) == (full.exit_code, full.stdout,
                                                          full.stderr)


def test_unchanged_tree_is_checked_without_compiling(tmp_path: Path, cache: Path,
                                                     compiles: Compiles,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    spec, out = _built(tmp_path, "--no-helm")
    assert compiles.count == 1
    fast = _check(spec, out, "--no-helm")
    assert compiles.count == 1, "an unchanged tree must not be compiled again"
    full = _full_check(spec, out, monkeypatch, tmp_path, "--no-helm")
    assert compiles.count == 2
    assert fast.exit_code == 0 and "is up to date" in fast.stdout
    _same(fast, full)
    for report in ("json", "github"):
        fast = _check(spec, out, "--no-helm", "--format", report)
        assert compiles.count == 2
        _same(fast, _full_check(spec, out, monkeypatch, tmp_path, "--no-helm", "--format",
                                report))


def test_files_nobody_generated_are_ignored_by_both_paths(
        tmp_path: Path, cache: Path, compiles: Compiles,
        monkeypatch: pytest.MonkeyPatch) -> None:
    spec, out = _built(tmp_path, "--no-helm")
    (out / "notes.md").write_text("ours, not generated\n")
    fast = _check(spec, out, "--no-helm")
    assert compiles.count == 1
    _same(fast, _full_check(spec, out, monkeypatch, tmp_path, "--no-helm"))


# Each change returns the spec and options the check then runs with.
Change = Callable[[Path, pytest.MonkeyPatch, Path], tuple[Path, tuple[str, ...]]]
NO_HELM = ("--no-helm",)


def _spec_bytes(spec: Path, monkeypatch: pytest.MonkeyPatch, tmp: Path
                ) -> tuple[Path, tuple[str, ...]]:
    spec.write_bytes(spec.read_bytes() + b"# same stack, other bytes\n")
    return spec, NO_HELM


def _spec_location(spec: Path, monkeypatch: pytest.MonkeyPatch, tmp: Path
                   ) -> tuple[Path, tuple[str, ...]]:
    other = tmp / "other" / spec.name  # where files it includes would resolve differently
    other.parent.mkdir()
    shutil.copyfile(spec, other)
    return other, NO_HELM


def _tool_version(spec: Path, monkeypatch: pytest.MonkeyPatch, tmp: Path
                  ) -> tuple[Path, tuple[str, ...]]:
    monkeypatch.setattr(memo, "__version__", "99.0.0")
    return spec, NO_HELM


def _tool_files(spec: Path, monkeypatch: pytest.MonkeyPatch, tmp: Path
                ) -> tuple[Path, tuple[str, ...]]:
    # One more file among the tool's packages: the fingerprint covers every byte of them.
    package = tmp / "site" / "extra_package"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp / "site"))
    monkeypatch.setattr(memo, "PACKAGES", (*memo.PACKAGES, "extra_package"))
    return spec, NO_HELM


def _library_version(spec: Path, monkeypatch: pytest.MonkeyPatch, tmp: Path
                     ) -> tuple[Path, tuple[str, ...]]:
    from importlib import metadata

    real = metadata.version
    monkeypatch.setattr(metadata, "version",
                        lambda name: "0.0.1" if name == "kubernetes-validate" else real(name))
    return spec, NO_HELM


def _helm_verification(spec: Path, monkeypatch: pytest.MonkeyPatch, tmp: Path
                       ) -> tuple[Path, tuple[str, ...]]:
    pytest.importorskip("helm_python")
    return spec, ()


INPUT_CHANGES: dict[str, Change] = {
    "spec bytes": _spec_bytes,
    "spec location": _spec_location,
    "tool version": _tool_version,
    "tool files": _tool_files,
    "library version": _library_version,
    "helm verification": _helm_verification,
}


@pytest.mark.parametrize("change", sorted(INPUT_CHANGES))
def test_any_changed_input_means_a_full_compile(change: str, tmp_path: Path, cache: Path,
                                                compiles: Compiles,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    spec, out = _built(tmp_path, "--no-helm")
    checked, options = INPUT_CHANGES[change](spec, monkeypatch, tmp_path)
    before = compiles.count
    result = _check(checked, out, *options)
    assert compiles.count == before + 1, f"a changed {change} must compile again"
    _same(result, _full_check(checked, out, monkeypatch, tmp_path, *options))
    if change == "spec bytes":
        assert result.exit_code == 1  # the manifest records the spec's hash
        return
    assert result.exit_code == 0, result.output
    again = _check(checked, out, *options)
    assert compiles.count == before + 2, "the full check recorded a memo for the new inputs"
    _same(again, result)


def test_a_changed_included_file_voids_the_memo(tmp_path: Path, cache: Path) -> None:
    spec, out = _built(tmp_path, "--no-helm")
    inputs = memo.Inputs(spec, spec.read_bytes(), helm_verified=False)
    assert memo.up_to_date(inputs, out) is not None
    included = tmp_path / "models.yaml"
    included.write_text("a: 1\n")
    wanted = [(str(p.relative_to(out)), p.read_text()) for p in sorted(out.rglob("*"))
              if p.is_file() and p.name != "notes.md"]
    memo.record(inputs, [str(included)], wanted, ())
    assert memo.up_to_date(inputs, out) is not None
    included.write_text("a: 2\n")
    assert memo.up_to_date(inputs, out) is None
    included.unlink()
    assert memo.up_to_date(inputs, out) is None


def _edit_generated(out: Path) -> None:
    target = out / "overlays" / "base" / "service-agentic-ollama.yaml"
    target.write_text(target.read_text().replace("port: 11434", "port: 11435"))


def _delete_generated(out: Path) -> None:
    (out / "charts" / "agentic" / "values.yaml").unlink()


def _whitespace(out: Path) -> None:
    target = out / "charts" / "agentic" / "Chart.yaml"
    target.write_bytes(target.read_bytes() + b"\n")


def _edit_manifest(out: Path) -> None:
    manifest = json.loads((out / MANIFEST).read_text())
    manifest["files"]["overlays/base/stale.yaml"] = "0" * 64
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    (out / "overlays" / "base" / "stale.yaml").write_text("kind: Stale\n")


def _symlink(out: Path) -> None:
    real = out.parent / "real-gitops"
    shutil.move(out / "gitops", real)
    (out / "gitops").symlink_to(real, target_is_directory=True)


def _interrupted_switch(out: Path) -> None:
    (out / JOURNAL).write_text(json.dumps({"moves": [], "deletions": []}) + "\n")


DRIFT: dict[str, Callable[[Path], None]] = {
    "edited file": _edit_generated,
    "deleted file": _delete_generated,
    "one more byte": _whitespace,
    "stale generated file": _edit_manifest,
    "symbolic link": _symlink,
    "interrupted switch": _interrupted_switch,
}


@pytest.mark.parametrize("drift", sorted(DRIFT))
def test_drift_is_reported_exactly_as_the_full_check_does(
        drift: str, tmp_path: Path, cache: Path, compiles: Compiles,
        monkeypatch: pytest.MonkeyPatch) -> None:
    spec, out = _built(tmp_path, "--no-helm")
    twin = tmp_path / "twin"
    shutil.copytree(out, twin, symlinks=True)
    DRIFT[drift](out)
    DRIFT[drift](twin)
    before = compiles.count
    fast = _check(spec, out, "--no-helm")
    assert compiles.count == before + 1, f"{drift}: the memo must not answer"
    full = _full_check(spec, twin, monkeypatch, tmp_path, "--no-helm")
    assert fast.exit_code == full.exit_code
    assert fast.stdout == full.stdout.replace(str(twin), str(out))
    assert fast.stderr == full.stderr.replace(str(twin), str(out))
    assert fast.exit_code == 1


def test_a_failed_compile_records_nothing(tmp_path: Path, cache: Path) -> None:
    spec = tmp_path / "broken.yaml"
    spec.write_text(EXAMPLE.read_text().replace("modelAPI: litellm-proxy", "modelAPI: nope"))
    result = _run("build", "-f", str(spec), "-o", str(tmp_path / "out"), "--no-helm",
                  "--check")
    assert result.exit_code == 1
    assert not list(cache.glob("builds/*.json"))


def test_helm_verified_memo_answers_a_helm_check(tmp_path: Path, cache: Path,
                                                 compiles: Compiles) -> None:
    pytest.importorskip("helm_python")
    spec, out = _built(tmp_path)
    result = _check(spec, out)
    assert result.exit_code == 0 and compiles.count == 1
    # A memo of a compile that skipped Helm never vouches for one that renders with it.
    (cache / "builds").rename(cache / "helm-builds")
    _check(spec, out, "--no-helm")
    assert compiles.count == 2
    _check(spec, out)
    assert compiles.count == 3
