"""Safe output: a build killed at any moment leaves the old set, the new set, or a journal
that the next command completes; foreign files are never touched; diffs."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import REPO
from modelapi_compile.cli import cli
from modelapi_compile.output import JOURNAL, MANIFEST, STAGING

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
            assert check.returncode == 0, check.stdout + check.stderr
            assert not (out / JOURNAL).exists() and not (out / STAGING).exists()
            assert _snapshot(out) == new
        else:
            state = _snapshot(out)
            assert state in (old, new), f"kill after step {kill_after}: mixed state"
            outcomes["old" if state == old else "new"] += 1
    assert outcomes["journal"] > 0 and outcomes["old"] > 0


def test_recovery_runs_before_diff_and_build(tmp_path: Path) -> None:
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
    assert result.exit_code == 0 and result.output.startswith("No changes")  # switch finished
    assert not (out / JOURNAL).exists()


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
                             "claims"}
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
