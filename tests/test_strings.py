"""Spec strings are data: YAML-special scalars and template syntax reach the cluster exactly
as written through both Helm and Kustomize."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from modelapi_compile.cli import cli
from modelapi_compile.emit import yamlout
from modelapi_compile.verify.engines import render_chart

TRICKY = ["yes", "no", "on", "off", "y", "n", "~", "null", "true", "False", "010", "0x10",
          "0o17", "1e3", "1_000", ".inf", "-.inf", ".nan", "12:30", "2024-01-01", "=", "<<",
          "{{ .Values.x }}", "{{- include \"x\" . }}", "}}", "a\\b", "say \"hi\"", "it's",
          "line1\nline2", "trailing\n", "  lead", "tab\there", "ünïcødé ☃", "#hash", "- dash",
          "key: value", "", " ", "@at", "`tick`", "%percent", "!bang", "&anchor", "*alias"]


def _spec(values: list[str]) -> str:
    env = "\n".join(f"        - name: V{i}\n          value: {yamlout.quote(v)}"
                    for i, v in enumerate(values))
    return f"""apiVersion: modelapi.dev/v1alpha1
kind: ModelStack
metadata: {{name: strings}}
spec:
  namespace: strings
  modelAPIs:
    - name: ext
      external: {{url: "https://api.example.com/v1", models: [m]}}
  agents:
    - name: agent
      image: example.com/agent:1.0.0
      modelAPI: ext
      model: m
      env:
{env}
  environments:
    - name: dev
      patch:
        agents:
          - name: agent
            replicas: 2
"""


def _env_values(objects: list[dict[str, Any]]) -> dict[str, str]:
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    env = deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    return {e["name"]: e["value"] for e in env if e["name"].startswith("V")}


def test_tricky_strings_survive_helm_and_kustomize(tmp_path: Path, helm: Any,
                                                   kustomize: Any) -> None:
    spec = tmp_path / "strings.yaml"
    spec.write_text(_spec(TRICKY))
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["build", "-f", str(spec), "-o", str(out)])
    assert result.exit_code == 0, result.output
    expected = {f"V{i}": v for i, v in enumerate(TRICKY)}
    assert _env_values(render_chart(helm, out / "charts" / "strings", "dev", "strings")) \
        == expected
    assert _env_values(kustomize(out / "overlays" / "dev")) == expected
    assert _env_values(kustomize(out / "overlays" / "base")) == expected


_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)
_leaf = st.one_of(st.none(), st.booleans(), st.integers(-(2**53), 2**53), _text,
                  st.floats(allow_nan=False, allow_infinity=False))
_tree = st.recursive(_leaf, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(_text, inner, max_size=4)), max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(_tree)
def test_dump_round_trips_in_yaml_1_1_and_1_2(value: Any) -> None:
    text = yamlout.dump(value)
    assert yaml.load(text, Loader=yaml.CSafeLoader) == value  # YAML 1.1, like Helm
    assert YAML(typ="safe", pure=True).load(text) == value  # YAML 1.2, like Kustomize


def test_tricky_model_names_survive_into_the_litellm_config(tmp_path: Path, helm: Any,
                                                            kustomize: Any) -> None:
    names = [n for n in TRICKY if n.strip() and "\n" not in n]
    models = "\n".join(f"          - {{name: {yamlout.quote(n)}, url: \"http://x.example.com\","
                       f" provider: openai}}" for n in names)
    spec = tmp_path / "strings.yaml"
    spec.write_text(f"""apiVersion: modelapi.dev/v1alpha1
kind: ModelStack
metadata: {{name: strings}}
spec:
  namespace: strings
  modelAPIs:
    - name: proxy
      litellm:
        models:
{models}
  environments: [{{name: dev}}]
""")
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["build", "-f", str(spec), "-o", str(out)])
    assert result.exit_code == 0, result.output

    def aliases(objects: list[dict[str, Any]]) -> list[str]:
        config = next(o for o in objects if o["kind"] == "ConfigMap")["data"]["config.yaml"]
        return [m["model_name"] for m in yaml.safe_load(config)["model_list"]]

    assert aliases(render_chart(helm, out / "charts" / "strings", "dev", "strings")) == names
    assert aliases(kustomize(out / "overlays" / "dev")) == names
