"""`explain`: the effective value at a spec path and the layer that set it."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import CASES, REPO
from modelapi_compile.explain import Explanation, explain, render_explanation
from modelapi_compile.problems import SpecError

EXAMPLE = str(REPO / "examples" / "agentic.yaml")
PROD = str(CASES / "valid" / "production-gpu.yaml")


def _line_of(path: str, line: int) -> str:
    return Path(path).read_text().splitlines()[line - 1]


def test_a_value_the_patch_sets() -> None:
    e = explain(EXAMPLE, "dev", "spec.modelAPIs[vllm-hosted].vllm.gpu.count")
    assert (e.value, e.layer, e.file) == (0, "environment patch", EXAMPLE)
    assert _line_of(EXAMPLE, e.line)[e.column - 1:].startswith("0}}")
    assert "gpu: {count: 0}" in _line_of(EXAMPLE, e.line)


def test_the_same_path_in_an_environment_without_that_patch() -> None:
    e = explain(EXAMPLE, "prod", "spec.modelAPIs[vllm-hosted].vllm.gpu.count")
    assert (e.value, e.layer) == (1, "spec")
    assert _line_of(EXAMPLE, e.line).strip() == "count: 1"


def test_a_default() -> None:
    e = explain(EXAMPLE, "dev", "spec.modelAPIs[ollama].ollama.keepAlive")
    assert (e.value, e.layer) == ("24h", "default")
    # The position is the enclosing entry, where the field would be written.
    assert _line_of(EXAMPLE, e.line).strip() == "ollama:"


def test_items_by_name_or_index_and_the_spec_prefix_is_optional() -> None:
    by_name = explain(EXAMPLE, "prod", "spec.agents[simple-math-agent].replicas")
    by_index = explain(EXAMPLE, "prod", "agents[0].replicas")
    assert by_name == by_index
    assert (by_name.value, by_name.layer) == (3, "environment patch")
    assert by_name.path == "spec.agents[simple-math-agent].replicas"


def test_a_map_both_layers_wrote_names_what_the_patch_changed() -> None:
    e = explain(PROD, "dev", "spec.cluster")
    assert e.layer == "spec"
    assert e.value["gpuNodeLabels"] == "explicit"
    assert e.value["networkPolicies"] is True  # a default, filled in
    assert e.patched == ("gpuNodeLabels", "imageRegistry", "storageClass")


def test_an_item_the_patch_adds() -> None:
    e = explain(PROD, "staging", "spec.agents[canary]")
    assert e.layer == "environment patch"
    assert e.value["image"] == "registry.example.com/agents/planner:1.0.0-rc1"
    port = explain(PROD, "staging", "spec.agents[canary].port")
    assert (port.value, port.layer) == (8000, "default")


def test_map_keys_in_brackets_and_list_values() -> None:
    e = explain(PROD, "dev", "spec.modelAPIs[router].litellm.router.fallbacks[big]")
    assert (e.value, e.layer) == (["claude"], "environment patch")
    prod = explain(PROD, "prod", "spec.modelAPIs[router].litellm.router.fallbacks.big")
    assert (prod.value, prod.layer) == (["claude", "small"], "spec")


def test_template_text_is_a_value() -> None:
    e = explain(PROD, "prod", "spec.agents[planner].env[TEMPLATE].value")
    assert e.value == "{{ .Values.secret }}"
    assert '"{{ .Values.secret }}"' in render_explanation(e)


def test_unknown_field_suggests_the_nearest() -> None:
    with pytest.raises(SpecError) as error:
        explain(EXAMPLE, "dev", "spec.modelAPIs[vllm-hosted].vllm.gpu.cuont")
    problem = error.value.problems[0]
    assert "unknown field 'cuont'" in problem.message
    assert problem.hint == "did you mean 'count'?"
    assert problem.line > 0


def test_unknown_item_and_environment_suggest_the_nearest() -> None:
    with pytest.raises(SpecError, match="did you mean 'vllm-hosted'"):
        explain(EXAMPLE, "dev", "spec.modelAPIs[vlm-hosted].vllm")
    with pytest.raises(SpecError, match="did you mean 'prod'"):
        explain(EXAMPLE, "prd", "spec.namespace")


def test_what_the_patch_removes_is_reported_as_removed() -> None:
    with pytest.raises(SpecError, match="patch of environment 'dev' removes it"):
        explain(PROD, "dev", "spec.modelAPIs[qwen-awq].vllm.gpu.count")
    with pytest.raises(SpecError, match="removes it"):
        explain(PROD, "dev", "spec.modelAPIs[router].litellm.router.fallbacks.small")


def test_not_a_path() -> None:
    with pytest.raises(SpecError, match="not a spec path"):
        explain(EXAMPLE, "dev", "spec..namespace")


def test_render() -> None:
    e = explain(EXAMPLE, "dev", "spec.modelAPIs[vllm-hosted].vllm.gpu.count")
    assert render_explanation(e) == (
        "spec.modelAPIs[vllm-hosted].vllm.gpu.count (dev): 0\n"
        f"  set by: environment patch of 'dev' at {EXAMPLE}:{e.line}:{e.column}\n")
    default = render_explanation(explain(EXAMPLE, "dev", "spec.modelAPIs[ollama].ollama.keepAlive"))
    assert "set by: default" in default
    nested = render_explanation(explain(PROD, "dev", "spec.cluster"))
    assert "\n  gpuNodeLabels: explicit\n" in nested
    assert "changed by the environment patch: gpuNodeLabels" in nested


def test_explanation_fields() -> None:
    e = explain(EXAMPLE, "dev", "metadata.name")
    assert isinstance(e, Explanation)
    assert (e.value, e.layer, e.environment) == ("agentic", "spec", "dev")


def test_autoscaling_and_pass_through_fields_are_explained() -> None:
    knobs = str(CASES / "valid" / "production-knobs.yaml")
    e = explain(knobs, "dev", "agents[helper].autoscaling.minReplicas")
    assert (e.value, e.layer) == (1, "environment patch")
    e = explain(knobs, "dev", "agents[helper].autoscaling.cpuUtilization")
    assert (e.value, e.layer) == (60, "spec")  # the patch merges into the spec's HPA
    e = explain(knobs, "prod", "modelAPIs[nightly].vllm.autoscaling.pollingInterval")
    assert (e.value, e.layer) == (30, "default")
    e = explain(knobs, "prod", "modelAPIs[qwen].vllm.nodeSelector")
    assert (e.value, e.layer) == ({"cloud.google.com/gke-spot": "false"}, "spec")
    e = explain(knobs, "prod", "cluster.imagePullSecrets")
    assert (e.value, e.layer) == (["regcred"], "spec")


def test_model_sources_and_adapters_are_explained() -> None:
    knobs = str(CASES / "valid" / "production-knobs.yaml")
    e = explain(knobs, "prod", "modelAPIs[qwen].vllm.loraAdapters[sql-adapter].source")
    assert (e.value, e.layer) == ("example-org/qwen-sql-lora", "spec")
    e = explain(knobs, "prod", "modelAPIs[llama].vllm.hfHubOffline")
    assert (e.value, e.layer) == (True, "spec")
    e = explain(knobs, "dev", "modelAPIs[qwen].vllm.engine.maxLoraRank")
    assert (e.value, e.layer) == (64, "spec")
    e = explain(knobs, "prod", "modelAPIs[mistral].vllm.objectStorage.region")
    assert (e.value, e.layer) == (None, "default")
