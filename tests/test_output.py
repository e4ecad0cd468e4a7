"""Safe output: a build killed at any moment leaves the old set, the new set, or a journal
that `build --check` reports and the next `build` completes; foreign files are never touched;
diffs."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import REPO
from modelapi_compile.cli import cli
from modelapi_compile.output.writer import JOURNAL, MANIFEST, STAGING

EXAMPLE = REPO / "examples" / "agentic.yaml"
FOREIGN = "notes/README.md"


def _spec_b(tmp_path: Path) -> Path:
    """The example with changed replicas, one agent fewer (files to prune), one env added."""
    text = EXAMPLE.read_text()
    text = text.replace("            replicas: 3", "            replicas: 5")
    start = text.index("    - name: tinyllama-agent")
    end = text.index("  environments:")
    text = text[:start] + text[end:]
    text = text.replace("    - name: prod\n", "    - name: staging\n      namespace: agentic-stg\n"
                        "    - name: prod\n")
    path = tmp_path / "agentic.yaml"
    path.write_text(text)
    return path


def _command(spec: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "modelapi_compile", "build", "-f", str(spec), "-o", str(out),
            "--no-helm", *extra]


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and STAGING not in p.parts and str(p.relative_to(root)) != FOREIGN}


def _build(spec: Path, out: Path) -> dict[str, bytes]:
    subprocess.run(_command(spec, out), check=True, capture_output=True)
    return _snapshot(out)


def _fresh_old(tmp_path: Path, name: str) -> Path:
    out = tmp_path / name
    (out / "notes").mkdir(parents=True)
    (out / FOREIGN).write_text("theirs\n")
    subprocess.run(_command(EXAMPLE, out), check=True, capture_output=True)
    return out


def test_kill_at_many_moments_never_leaves_a_half_written_set(tmp_path: Path) -> None:
    spec_b = _spec_b(tmp_path)
    old = _build(EXAMPLE, tmp_path / "old")
    new = _build(spec_b, tmp_path / "new")
    assert old != new
    probe = _fresh_old(tmp_path, "probe")
    env = {**os.environ, "MODELAPI_COMPILE_TRACE_WRITES": "1"}
    steps = subprocess.run(_command(spec_b, probe), env=env, capture_output=True, text=True,
                           check=True).stderr.count("modelapi-compile: step")
    assert steps > 20
    rng = random.Random(20261126)
    kill_points = sorted({0, 1, steps // 2, steps - 1, *rng.sample(range(steps), 18)})
    outcomes = {"old": 0, "new": 0, "journal": 0}
    for index, kill_after in enumerate(kill_points):
        out = _fresh_old(tmp_path, f"run{index}")
        process = subprocess.Popen(_command(spec_b, out), env=env, stderr=subprocess.PIPE,
                                   stdout=subprocess.DEVNULL, text=True)
        assert process.stderr is not None
        seen = 0
        for line in process.stderr:
            if line.startswith("modelapi-compile: step"):
                if seen == kill_after:
                    # a random instant after this step began
                    for _ in range(rng.randrange(0, 2000)):
                        pass
                    process.send_signal(signal.SIGKILL)
                    break
                seen += 1
        process.wait()
        assert (out / FOREIGN).read_text() == "theirs\n"
        assert not [p for p in out.rglob("*.tmp") if STAGING not in p.parts]
        if (out / JOURNAL).exists():
            outcomes["journal"] += 1
            check = subprocess.run(_command(spec_b, out, "--check"), capture_output=True,
                                   text=True)
            assert check.returncode == 1 and "interrupted while switching" in check.stderr
            assert (out / JOURNAL).exists()  # --check never writes
            subprocess.run(_command(spec_b, out), check=True, capture_output=True)
            assert not (out / JOURNAL).exists() and not (out / STAGING).exists()
            assert _snapshot(out) == new
        else:
            state = _snapshot(out)
            assert state in (old, new), f"kill after step {kill_after}: mixed state"
            outcomes["old" if state == old else "new"] += 1
    assert outcomes["journal"] > 0 and outcomes["old"] > 0


def test_diff_reports_an_interrupted_switch_and_build_completes_it(tmp_path: Path) -> None:
    spec_b = _spec_b(tmp_path)
    out = _fresh_old(tmp_path, "out")
    env = {**os.environ, "MODELAPI_COMPILE_TRACE_WRITES": "1"}
    process = subprocess.Popen(_command(spec_b, out), env=env, stderr=subprocess.PIPE,
                               stdout=subprocess.DEVNULL, text=True)
    assert process.stderr is not None
    for line in process.stderr:
        if line.startswith("modelapi-compile: step move"):
            process.send_signal(signal.SIGKILL)
            break
    process.wait()
    assert (out / JOURNAL).exists()
    result = CliRunner().invoke(cli, ["diff", "-f", str(spec_b), "-o", str(out), "--no-helm"])
    assert result.exit_code == 0 and "interrupted while switching" in result.output
    assert "No changes" not in result.output  # the files not switched yet show as changes
    assert (out / JOURNAL).exists()  # diff never writes
    build = CliRunner().invoke(cli, ["build", "-f", str(spec_b), "-o", str(out), "--no-helm"])
    assert build.exit_code == 0, build.output
    assert not (out / JOURNAL).exists() and not (out / STAGING).exists()
    result = CliRunner().invoke(cli, ["diff", "-f", str(spec_b), "-o", str(out), "--no-helm"])
    assert result.output.startswith("No changes")


def test_prunes_stale_generated_files_and_keeps_foreign_ones(tmp_path: Path) -> None:
    out = _fresh_old(tmp_path, "out")
    stale = out / "overlays" / "base" / "deployment-agentic-tinyllama-agent.yaml"
    assert stale.exists()
    result = CliRunner().invoke(cli, ["build", "-f", str(_spec_b(tmp_path)), "-o", str(out),
                                      "--no-helm"])
    assert result.exit_code == 0, result.output
    assert not stale.exists()
    assert (out / FOREIGN).read_text() == "theirs\n"
    assert (out / "overlays" / "staging" / "kustomization.yaml").exists()


def test_symlinks_are_never_followed_out_of_the_folder(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    (out / "charts").symlink_to(outside, target_is_directory=True)
    result = CliRunner().invoke(cli, ["build", "-f", str(EXAMPLE), "-o", str(out), "--no-helm"])
    assert result.exit_code == 1 and "symbolic link" in result.output
    assert not any(outside.iterdir())


def test_semantic_diff_ignores_key_order_and_list_order(tmp_path: Path) -> None:
    out = _fresh_old(tmp_path, "out")
    target = out / "overlays" / "base" / "service-agentic-ollama.yaml"
    lines = target.read_text().splitlines()
    header, body = lines[:2], lines[2:]  # the comment and `---`
    target.write_text("\n".join(header + body[2:] + body[:2]) + "\n")  # apiVersion, kind moved
    text_diff = CliRunner().invoke(cli, ["diff", "-f", str(EXAMPLE), "-o", str(out),
                                         "--no-helm"])
    assert "service-agentic-ollama.yaml" in text_diff.output
    semantic = CliRunner().invoke(cli, ["diff", "-f", str(EXAMPLE), "-o", str(out), "--no-helm",
                                        "--semantic"])
    assert "service-agentic-ollama.yaml" not in semantic.output
    replicas = out / "overlays" / "base" / "deployment-agentic-ollama.yaml"
    replicas.write_text(replicas.read_text().replace("replicas: 1", "replicas: 2"))
    semantic = CliRunner().invoke(cli, ["diff", "-f", str(EXAMPLE), "-o", str(out), "--no-helm",
                                        "--semantic"])
    assert "~ overlays/base/deployment-agentic-ollama.yaml" in semantic.output
    assert "spec.replicas: 2 -> 1" in semantic.output


def test_manifest_records_hashes_and_no_timestamps(tmp_path: Path) -> None:
    import json

    out = _fresh_old(tmp_path, "out")
    manifest = json.loads((out / MANIFEST).read_text())
    assert set(manifest) == {"generator", "version", "stack", "spec", "specSha256", "files",
                             "claims", "immutable"}
    assert manifest["claims"] == sorted(manifest["claims"])
    assert FOREIGN not in manifest["files"]
    assert "charts/agentic/values.yaml" in manifest["files"]


@pytest.mark.parametrize("colour_env", [{"NO_COLOR": "1"}, {}])
def test_check_diff_is_plain_when_not_a_terminal(tmp_path: Path, colour_env: dict[str, str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in colour_env.items():
        monkeypatch.setenv(key, value)
    out = _fresh_old(tmp_path, "out")
    (out / "charts" / "agentic" / "values.yaml").write_text("changed\n")
    result = CliRunner().invoke(cli, ["build", "-f", str(EXAMPLE), "-o", str(out), "--no-helm",
                                      "--check"])
    assert result.exit_code == 1 and "\033[" not in result.output


# --- one writer at a time ---------------------------------------------------------------------


def test_concurrent_builds_of_two_specs_serialize_into_one_complete_build(
        tmp_path: Path) -> None:
    spec_b = _spec_b(tmp_path)
    clean = {"a": _build(EXAMPLE, tmp_path / "clean-a"), "b": _build(spec_b, tmp_path / "b")}
    out = tmp_path / "out"
    for round_ in range(3):
        processes = [subprocess.Popen(_command(EXAMPLE if i % 2 else spec_b, out),
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                     for i in range(4)]
        results = [(p.wait(), *p.communicate()) for p in processes]
        for code, stdout, stderr in results:
            assert code == 0, f"round {round_}: {stdout}{stderr}"
            assert "edited by hand" not in stderr and "did not write" not in stderr
        state = _snapshot(out)
        assert state in (clean["a"], clean["b"]), f"round {round_}: not one complete build"
        assert not (out / JOURNAL).exists() and not (out / STAGING).exists()


def test_a_build_waits_while_another_holds_the_folder(tmp_path: Path) -> None:
    from modelapi_compile.output.writer import locked

    out = _fresh_old(tmp_path, "out")
    before = _snapshot(out)
    with locked(out, exclusive=True):
        process = subprocess.Popen(_command(_spec_b(tmp_path), out), stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
        assert process.stderr is not None
        line = process.stderr.readline()  # printed once it finds the folder taken
        assert f"waiting for another modelapi-compile writing {out}" in line
        assert _snapshot(out) == before and process.poll() is None
    assert process.wait() == 0
    assert _snapshot(out) != before


# --- bookkeeping paths --------------------------------------------------------------------


@pytest.mark.parametrize("name", [STAGING, JOURNAL, MANIFEST])
def test_bookkeeping_paths_are_never_used_through_a_symlink(tmp_path: Path, name: str) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "theirs.txt").write_text("theirs\n")
    out = _fresh_old(tmp_path, "out")
    link = out / name
    if link.exists():
        link.unlink()
    link.symlink_to(outside if name == STAGING else outside / "theirs.txt",
                    target_is_directory=name == STAGING)
    before = _snapshot(out)
    build = subprocess.run(_command(_spec_b(tmp_path), out), capture_output=True, text=True)
    assert build.returncode == 1 and f"{link}: error: is a symbolic link" in build.stderr
    # --check reads: a journal (link or not) is drift, a manifest is never read through one
    check = subprocess.run(_command(EXAMPLE, out, "--check"), capture_output=True, text=True)
    assert check.returncode == (0 if name == STAGING else 1), check.stderr
    assert [p.name for p in outside.iterdir()] == ["theirs.txt"]
    assert (outside / "theirs.txt").read_text() == "theirs\n"
    assert _snapshot(out) == before and link.is_symlink()


def test_a_staging_path_that_is_a_file_is_refused(tmp_path: Path) -> None:
    out = _fresh_old(tmp_path, "out")
    (out / STAGING).write_text("not ours\n")
    result = CliRunner().invoke(cli, ["build", "-f", str(_spec_b(tmp_path)), "-o", str(out),
                                      "--no-helm"])
    assert result.exit_code == 1 and "is not a folder" in result.output
    assert (out / STAGING).read_text() == "not ours\n"


# --- a journal is not a command -----------------------------------------------------------


def _tree(root: Path) -> dict[str, bytes]:
    """Every file, bookkeeping included."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and not p.is_symlink()}


def _plant(out: Path, outside: Path, kind: str) -> None:
    """Journals a pull request could commit, each trying to delete or move what the tool
    never wrote."""
    import hashlib
    import json

    staging = out / STAGING
    staging.mkdir()
    victim = "charts/agentic/values.yaml"
    if kind == "old format":
        plan: dict[str, object] = {"moves": [victim], "deletions": [FOREIGN]}
        (staging / "charts" / "agentic").mkdir(parents=True)
        (staging / victim).symlink_to(outside / "secret.txt")
    else:
        payload = b"planted\n"
        manifest = json.loads((out / MANIFEST).read_text())
        manifest["files"][victim] = hashlib.sha256(payload).hexdigest()
        manifest_bytes = json.dumps(manifest).encode()
        (staging / MANIFEST).write_bytes(manifest_bytes)
        digest = hashlib.sha256(manifest_bytes).hexdigest()
        (staging / "charts" / "agentic").mkdir(parents=True)
        if kind == "staged link":
            (staging / victim).symlink_to(outside / "secret.txt")
        else:
            (staging / victim).write_bytes(payload)
        plan = {"format": 2, "moves": [victim, MANIFEST], "deletions": [],
                "manifestSha256": digest}
        if kind == "foreign deletion":
            plan["deletions"] = [FOREIGN]
        if kind == "wrong hash":
            plan["manifestSha256"] = "0" * 64
        if kind == "outside path":
            plan["moves"] = ["../outside/secret.txt", MANIFEST]
    (out / JOURNAL).write_text(json.dumps(plan))


@pytest.mark.parametrize("kind", ["old format", "staged link", "foreign deletion",
                                  "wrong hash", "outside path"])
def test_a_planted_journal_is_refused_and_nothing_is_touched(tmp_path: Path,
                                                             kind: str) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("outside\n")
    out = _fresh_old(tmp_path, "out")
    _plant(out, outside, kind)
    before = _tree(out)
    check = subprocess.run(_command(EXAMPLE, out, "--check"), capture_output=True, text=True)
    assert check.returncode == 1 and "interrupted while switching" in check.stderr
    build = subprocess.run(_command(EXAMPLE, out), capture_output=True, text=True)
    assert build.returncode == 1, build.stderr
    assert "not replayed" in build.stderr and "nothing was touched" in build.stderr
    assert _tree(out) == before
    assert (outside / "secret.txt").read_text() == "outside\n"
    assert list(outside.iterdir()) == [outside / "secret.txt"]


# --- interruptions ------------------------------------------------------------------------


def _terminate_at(spec: Path, out: Path, step: str) -> tuple[int, str]:
    # each `step` pauses, so the signal lands before the write can go past it
    env = {**os.environ, "MODELAPI_COMPILE_TRACE_WRITES": f"slow:{step}"}
    process = subprocess.Popen(_command(spec, out), env=env, stderr=subprocess.PIPE,
                               stdout=subprocess.DEVNULL, text=True)
    assert process.stderr is not None
    for line in process.stderr:
        if line.startswith(f"modelapi-compile: step {step}"):
            process.send_signal(signal.SIGTERM)
            break
    rest = process.stderr.read()
    return process.wait(), rest


def test_sigterm_mid_switch_exits_143_and_the_next_build_completes_it(tmp_path: Path) -> None:
    spec_b = _spec_b(tmp_path)
    new = _build(spec_b, tmp_path / "new")
    out = _fresh_old(tmp_path, "out")
    code, said = _terminate_at(spec_b, out, "move")
    assert code == 143
    lines = [line for line in said.splitlines() if line.startswith("modelapi-compile: term")]
    assert len(lines) == 1 and f"terminated while switching {out}" in lines[0]
    # committed as it is and cloned elsewhere (git keeps no file modes but the executable bit)
    clone = tmp_path / "clone"
    shutil.copytree(out, clone, copy_function=shutil.copyfile)
    for folder in (out, clone):
        check = subprocess.run(_command(spec_b, folder, "--check"), capture_output=True,
                               text=True)
        assert check.returncode == 1 and "interrupted while switching" in check.stderr
        subprocess.run(_command(spec_b, folder), check=True, capture_output=True)
        assert _snapshot(folder) == new


def test_sigterm_while_staging_leaves_the_old_files_and_no_staging(tmp_path: Path) -> None:
    out = _fresh_old(tmp_path, "out")
    old = _snapshot(out)
    code, said = _terminate_at(_spec_b(tmp_path), out, "stage")
    assert code == 143 and f"terminated while writing {out}: its files are unchanged" in said
    assert _snapshot(out) == old and not (out / STAGING).exists()


def test_a_full_disk_names_the_real_path_and_leaves_no_staging(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    from modelapi_compile.output import writer as output

    out = _fresh_old(tmp_path, "out")
    old = _snapshot(out)
    real_write = output.write_atomic
    calls = []

    def fills_up(path: Path, text: str, **options: object) -> None:
        calls.append(path)
        if len(calls) == 3:
            raise OSError(errno.ENOSPC, "No space left on device", str(path) + ".tmp")
        real_write(path, text, **options)  # type: ignore[arg-type]

    monkeypatch.setattr(output, "write_atomic", fills_up)
    result = CliRunner().invoke(cli, ["build", "-f", str(_spec_b(tmp_path)), "-o", str(out),
                                      "--no-helm"])
    assert result.exit_code == 1 and "No space left on device" in result.output
    staged = calls[2].relative_to(out / STAGING)
    assert f"{out / staged}: " in result.output and STAGING not in result.output
    assert _snapshot(out) == old and not (out / STAGING).exists()


def test_a_later_build_cleans_leftover_staging(tmp_path: Path) -> None:
    out = _fresh_old(tmp_path, "out")
    (out / STAGING / "charts").mkdir(parents=True)
    (out / STAGING / "charts" / "half.yaml").write_text("half\n")
    check = CliRunner().invoke(cli, ["build", "-f", str(EXAMPLE), "-o", str(out), "--no-helm",
                                     "--check"])
    assert check.exit_code == 0 and (out / STAGING).exists()  # garbage, not drift; untouched
    result = CliRunner().invoke(cli, ["build", "-f", str(EXAMPLE), "-o", str(out), "--no-helm"])
    assert result.exit_code == 0 and not (out / STAGING).exists()


# --- modes --------------------------------------------------------------------------------


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_files_respect_the_umask(tmp_path: Path, umask: int, mode: int) -> None:
    out = tmp_path / "out"
    previous = os.umask(umask)
    try:
        result = CliRunner().invoke(cli, ["build", "-f", str(EXAMPLE), "-o", str(out),
                                          "--no-helm"])
    finally:
        os.umask(previous)
    assert result.exit_code == 0, result.output
    modes = {p.stat().st_mode & 0o777 for p in out.rglob("*") if p.is_file()}
    assert modes == {mode}
