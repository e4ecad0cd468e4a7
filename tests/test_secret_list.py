"""The Secrets to create: `build` prints them after its summary and writes SECRETS.md."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from conftest import CASES, REPO
from modelapi_compile.cli import cli

EXAMPLE = REPO / "examples" / "agentic.yaml"
SIX = ("groq", "hf-token", "litellm-db", "litellm-master-key", "openai",
       "simple-math-agent-key")


def _build(spec: Path, out: Path) -> object:
    result = CliRunner().invoke(cli, ["build", "-f", str(spec), "-o", str(out), "--no-helm"])
    assert result.exit_code == 0, result.output
    return result


def test_build_prints_and_writes_the_secrets_to_create(tmp_path: Path) -> None:
    result = _build(EXAMPLE, tmp_path / "out")
    stderr = result.stderr.splitlines()  # type: ignore[attr-defined]
    assert result.stdout.startswith("wrote ")  # type: ignore[attr-defined]
    start = stderr.index("Secrets to create before the first sync (SECRETS.md):")
    assert stderr[start + 1] == (
        "  dev (namespace agentic-dev): groq (api-key); hf-token (token); litellm-db (url); "
        "litellm-master-key (master-key); openai (api-key); simple-math-agent-key (key)")
    assert stderr[start + 2].startswith("  prod (namespace agentic): groq (api-key);")
    listing = (tmp_path / "out" / "SECRETS.md").read_text()
    assert "## dev (namespace `agentic-dev`)" in listing
    assert ("| `litellm-master-key` | generic | `master-key` | litellm-proxy "
            "(LITELLM_MASTER_KEY) | you: `kubectl -n agentic-dev create secret generic "
            "litellm-master-key --from-literal=master-key=...` |") in listing
    for name in SIX:
        assert listing.count(f"| `{name}` |") == 2  # dev and prod
    # the committed build of the example carries the same file
    assert (REPO / "SECRETS.md").read_text() == listing


def test_secrets_from_external_secrets_say_so(tmp_path: Path) -> None:
    result = _build(CASES / "valid" / "production-gpu.yaml", tmp_path / "out")
    listing = (tmp_path / "out" / "SECRETS.md").read_text()
    assert ("ExternalSecrets from ClusterSecretStore/vault-backend make those marked so: "
            "fill remote key `llm/<name>`") in listing
    assert ("| `vllm-key` | generic | `key` | llama70b (VLLM_API_KEY); router "
            "(LLAMA70B_API_KEY) | its ExternalSecret |") in listing
    assert ("  prod (namespace llm): from ExternalSecrets (ClusterSecretStore/vault-backend): "
            "anthropic, backup") in result.stderr  # type: ignore[attr-defined]


def test_the_list_is_part_of_the_managed_output(tmp_path: Path) -> None:
    out = tmp_path / "out"
    _build(EXAMPLE, out)
    before = (out / "SECRETS.md").read_bytes()
    (out / "SECRETS.md").write_text("edited\n")
    check = CliRunner().invoke(cli, ["build", "-f", str(EXAMPLE), "-o", str(out), "--no-helm",
                                     "--check"])
    assert check.exit_code == 1 and "SECRETS.md" in check.output
    rebuilt = CliRunner().invoke(cli, ["build", "-f", str(EXAMPLE), "-o", str(out),
                                       "--no-helm", "--force"])
    assert rebuilt.exit_code == 0, rebuilt.output
    assert (out / "SECRETS.md").read_bytes() == before


def test_build_json_carries_the_list(tmp_path: Path) -> None:
    import json

    result = CliRunner().invoke(cli, ["build", "-f", str(EXAMPLE), "-o", str(tmp_path / "out"),
                                      "--no-helm", "--format", "json"])
    assert result.exit_code == 0, result.output
    secrets = json.loads(result.stdout)["secrets"]
    assert {(s["environment"], s["name"]) for s in secrets} == {
        (env, name) for env in ("dev", "prod") for name in SIX}
    assert {"environment": "dev", "namespace": "agentic-dev", "name": "litellm-db",
            "type": "generic", "keys": ["url"], "readBy": ["litellm-proxy (DATABASE_URL)"],
            "madeBy": "user"} in secrets
