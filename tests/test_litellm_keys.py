"""LiteLLM keys: the shipped list is the pinned release's, and the spec's free-form LiteLLM
maps (`settings`, `models[].params`) are checked against it."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from conftest import CASES, REPO
from modelapi_compile.cli import cli
from modelapi_compile.resolve.stack import resolve_environments
from modelapi_compile.spec import litellm_keys
from modelapi_compile.spec.backends import DEFAULT_LITELLM_IMAGE
from modelapi_compile.spec.validate import load_spec

SHIPPED = REPO / "compiler" / "modelapi_compile" / "spec" / "litellm_keys.json"


def _tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("litellm_keys_tool",
                                                  REPO / "tools" / "litellm_keys.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_shipped_keys_are_those_of_the_pinned_litellm() -> None:
    """Made again from the installed LiteLLM (the [test] extra's, the image's release): a
    LiteLLM upgrade that does not regenerate the list fails here.
    Regenerate: python tools/litellm_keys.py > compiler/modelapi_compile/spec/litellm_keys.json"""
    pytest.importorskip("litellm", reason="the LiteLLM of the [test] extra is not installed")
    tool = _tool()
    assert tool.render(tool.collect()) == SHIPPED.read_text()
    pinned = re.search(r'"litellm\[[^\]]*\]==([^"]+)"', (REPO / "pyproject.toml").read_text())
    assert pinned and litellm_keys.release() == pinned.group(1)
    assert DEFAULT_LITELLM_IMAGE.endswith(f":v{litellm_keys.release()}")


def _spec(tmp_path: Path, litellm: str) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(f"""\
apiVersion: modelapi.dev/v1alpha1
kind: ModelStack
metadata: {{name: demo}}
spec:
  namespace: demo
  modelAPIs:
    - name: gw
      litellm:
{litellm}""")
    return path


TYPOS = """\
        models:
          - name: a
            url: https://api.openai.com/v1
            provider: openai
            params: {stream_timout: 60, rmp: 10, tpm: 1000}
        settings:
          request_timout: 30
          drop_params: false
"""


def test_unknown_keys_are_refused_at_their_line_with_a_guess(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["validate", "-f", str(_spec(tmp_path, TYPOS)),
                                      "--output", "json"])
    assert result.exit_code == 1
    problems = json.loads(result.output)["problems"]
    found = {p["path"].rsplit(".", 1)[1]: p for p in problems}
    assert sorted(found) == ["request_timout", "rmp", "stream_timout"]
    assert (found["stream_timout"]["line"], found["stream_timout"]["column"]) == (13, 22)
    assert found["request_timout"]["line"] == 15
    for typo, meant in (("stream_timout", "stream_timeout"), ("rmp", "rpm"),
                        ("request_timout", "request_timeout")):
        assert f"did you mean '{meant}'?" in found[typo]["hint"]
        assert "spec.modelAPIs[0].litellm.allowUnknownKeys" in found[typo]["hint"]
    assert "LiteLLM 1.90.6 has no litellm_params key 'rmp'" in found["rmp"]["message"]


def test_allow_unknown_keys_lets_a_newer_key_through(tmp_path: Path) -> None:
    spec = _spec(tmp_path, """\
        models:
          - name: a
            url: https://api.openai.com/v1
            provider: openai
            params: {future_param: 1}
        settings: {future_setting: true}
        allowUnknownKeys: [future_param, future_setting]
""")
    config = _router_config(spec)
    assert config["model_list"][0]["litellm_params"]["future_param"] == 1
    assert config["litellm_settings"]["future_setting"] is True
    assert "allowUnknownKeys" not in json.dumps(config)


def test_a_typo_in_a_patch_is_refused_under_the_patch(tmp_path: Path) -> None:
    spec = _spec(tmp_path, """\
        models:
          - {name: a, url: https://api.openai.com/v1, provider: openai}
  environments:
    - name: dev
      patch:
        modelAPIs:
          - name: gw
            litellm: {settings: {num_retires: 3}}
""")
    result = CliRunner().invoke(cli, ["validate", "-f", str(spec)])
    assert result.exit_code == 1
    assert result.output.splitlines()[:-1] == [
        f"{spec}:16:34: error: spec.environments[0].patch.modelAPIs[0].litellm.settings."
        "num_retires: LiteLLM 1.90.6 has no litellm_settings key 'num_retires' (did you mean "
        "'num_retries'? or, for a key newer than LiteLLM 1.90.6, list it in "
        "spec.modelAPIs[0].litellm.allowUnknownKeys)"]


def _router_config(spec: Path) -> Any:
    configs = [w.config.content for env in resolve_environments(load_spec(str(spec)))
               for w in env.values.workloads.values() if w.config is not None]
    return yaml.safe_load(configs[0])


@pytest.mark.parametrize("spec", [REPO / "examples" / "agentic.yaml",
                                  CASES / "valid" / "production-gpu.yaml",
                                  CASES / "valid" / "observability.yaml"],
                         ids=lambda p: p.stem)
def test_keys_the_compiler_writes_are_known(spec: Path) -> None:
    for env in resolve_environments(load_spec(str(spec))):
        for workload in env.values.workloads.values():
            if workload.config is None:
                continue
            config = yaml.safe_load(workload.config.content)
            for section in ("litellm_settings", "router_settings", "general_settings"):
                unknown = set(config.get(section) or {}) - litellm_keys.known_keys(section)
                assert not unknown, (section, unknown)


def test_an_imported_config_is_checked_at_its_own_lines(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("model_list:\n"
                      "  - model_name: m\n"
                      "    litellm_params: {model: openai/gpt-4o-mini, stream_timout: 5}\n"
                      "litellm_settings:\n"
                      "  request_timout: 5\n")
    result = CliRunner().invoke(cli, ["import", str(config), "-o", str(tmp_path / "s.yaml")])
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert lines[0].startswith(f"{config}:3:") and "litellm_params.stream_timout" in lines[0]
    assert "did you mean 'stream_timeout'?" in lines[0]
    assert lines[1].startswith(f"{config}:5:") and "did you mean 'request_timeout'?" in lines[1]
