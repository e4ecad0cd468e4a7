"""`graph`: agents -> model APIs -> backends -> GPUs, in Mermaid and DOT."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import CASES, REPO, missing_engine
from modelapi_compile.commands.graph import graph_text
from modelapi_compile.problems import SpecError
from modelapi_compile.spec.validate import ValidatedSpec, load_spec

EXAMPLE = REPO / "examples" / "agentic.yaml"
PROD = CASES / "valid" / "production-gpu.yaml"


def _spec(path: Path) -> ValidatedSpec:
    return load_spec(str(path))


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> ValidatedSpec:
    """The example with a LiteLLM alias full of characters both formats treat specially."""
    # The raw-URL route's alias (its model line dropped: the label is then the alias alone).
    text = EXAMPLE.read_text().replace("- name: llama-3.1-8b", "- name: 'a\"b#c|d<e>&f`g\\nh end'")
    text = text.replace("            model: llama-3.1-8b-instant\n", "")
    path = tmp_path_factory.mktemp("hostile") / "hostile.yaml"
    path.write_text(text)
    return _spec(path)


def test_mermaid_of_one_environment() -> None:
    text = graph_text(_spec(EXAMPLE), "dev", "mermaid")
    assert text.startswith("flowchart LR\n")
    assert "subgraph" not in text
    assert 'e0_agent0(["agent simple-math-agent"])' in text
    assert 'e0_agent0 -->|"smollm2:135m"| e0_api2' in text  # agent -> litellm-proxy
    assert 'e0_api2 -->|"tinyllama"| e0_api1' in text  # LiteLLM route -> vLLM
    assert 'e0_api1 --> e0_gpu1' in text
    assert 'e0_gpu1{{"CPU"}}' in text  # dev runs vLLM on CPU
    assert 'e0_api0 --> e0_gpu0' in text  # Ollama's hardware too


def test_all_environments_become_subgraphs() -> None:
    text = graph_text(_spec(PROD), None, "mermaid")
    assert re.findall(r'subgraph (\w+)\["environment: (\w+)"\]', text) == [
        ("e0", "dev"), ("e1", "staging"), ("e2", "prod")]
    assert text.count("\n  end\n") == 3
    assert 'e2_gpu0{{"4x nvidia-h100-80gb"}}' in text
    assert 'e2_api0 -->|"2 replicas"| e2_gpu0' in text
    assert 'e2_gpu1{{"1x nvidia-l4"}}' in text
    assert 'e0_gpu0{{"CPU"}}' in text  # the dev patch sets gpu.count 0
    assert "e0_api1[(" in text and "qwen-awq" not in text.split("subgraph e1")[0]
    assert 'e1_agent2(["agent canary"])' in text  # added by the staging patch
    assert '-->|"small → qwen-backup"| e2_url3_2' in text  # a raw URL route


def test_dot_structure() -> None:
    text = graph_text(_spec(PROD), None, "dot")
    assert text.startswith('digraph "prodai" {\n')
    assert text.rstrip().endswith("}")
    assert text.count('subgraph "cluster_e') == 3
    assert '  e2_gpu0 [label="4x nvidia-h100-80gb", shape=hexagon];' in text
    assert '  e2_api3 -> e2_api0 [label="big → llama-3.1-70b"];' in text
    assert '  e2_agent0 -> e2_api3 [label="big"];' in text


def test_dot_of_one_environment_has_no_subgraph() -> None:
    text = graph_text(_spec(EXAMPLE), "prod", "dot")
    assert "subgraph" not in text
    assert 'e1_agent0 [label="agent simple-math-agent (3 replicas)", shape=ellipse];' in text
    assert 'e1_gpu1 [label="1x nvidia-l4", shape=hexagon];' in text


@pytest.mark.parametrize("fmt", ["mermaid", "dot"])
def test_same_text_every_time(fmt: str) -> None:
    assert graph_text(_spec(PROD), None, fmt) == graph_text(_spec(PROD), None, fmt)


def test_labels_are_escaped_for_mermaid(hostile: ValidatedSpec) -> None:
    text = graph_text(hostile, None, "mermaid")
    line = next(line for line in text.splitlines() if "#quot;" in line)
    label = re.search(r'\|"(.*)"\|', line)
    assert label is not None
    assert label.group(1) == "a#quot;b#35;c#124;d#lt;e#gt;#amp;f#96;g\\nh end"
    # Outside the entity codes no special character is left inside any quoted label.
    for quoted in re.findall(r'"([^"]*)"', text):
        assert not set(quoted) & set('"<>&|`')


def test_labels_are_escaped_for_dot(hostile: ValidatedSpec) -> None:
    text = graph_text(hostile, None, "dot")
    assert '[label="a\\"b#c|d<e>&f`g\\\\nh end"]' in text


def _dot_parses(text: str) -> str:
    dot = shutil.which("dot")
    if dot is None:
        missing_engine("Graphviz dot (apt-get install graphviz)")
    result = subprocess.run([dot, "-Tcanon"], input=text, capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    return result.stdout


@pytest.mark.parametrize("spec", [EXAMPLE, PROD], ids=["agentic", "production-gpu"])
def test_graphviz_reads_the_dot(spec: Path) -> None:
    canon = _dot_parses(graph_text(_spec(spec), None, "dot"))
    assert "cluster_e0" in canon


def test_graphviz_keeps_hostile_labels_verbatim(hostile: ValidatedSpec) -> None:
    canon = _dot_parses(graph_text(hostile, "dev", "dot"))
    # -Tcanon writes labels back in DOT syntax: the same escaped string, so same text.
    assert 'a\\"b#c|d<e>&f`g\\\\nh end' in canon


def test_unknown_environment_or_format() -> None:
    with pytest.raises(SpecError, match="did you mean 'prod'"):
        graph_text(_spec(EXAMPLE), "prd", "dot")
    with pytest.raises(SpecError, match="did you mean 'mermaid'"):
        graph_text(_spec(EXAMPLE), None, "mermiad")


def test_autoscaled_workloads_show_their_replica_range() -> None:
    text = graph_text(_spec(CASES / "valid" / "production-knobs.yaml"), "prod", "mermaid")
    assert 'e1_agent0(["agent helper (3-10 replicas by HPA)"])' in text
    assert 'e1_api0 -->|"1-4 replicas by KEDA"| e1_gpu0' in text
    assert 'e1_api1 -->|"0-2 replicas by KEDA"| e1_gpu1' in text  # scales to zero
    assert 'e1_api6["gateway (litellm, 2-6 replicas by HPA)"]' in text
    dev = graph_text(_spec(CASES / "valid" / "production-knobs.yaml"), "dev", "mermaid")
    assert 'e0_api6["gateway (litellm)"]' in dev  # dev turns the HPA off


def test_multi_node_groups_and_inference_pools_are_drawn() -> None:
    """Issue 25: a replica over several nodes shows its nodes and GPUs per node; a model
    behind an InferencePool names the Gateway in front of it."""
    text = graph_text(_spec(CASES / "valid" / "frontier-serving.yaml"), "prod", "mermaid")
    assert "LeaderWorkerSet of 2 nodes a replica" in text
    assert "2 nodes of 8x nvidia-h100-80gb" in text
    assert "InferencePool behind Gateway gateway-system/inference-gw" in text
    assert '-->|"4 replicas"|' in text
