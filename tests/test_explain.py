"""`explain`: the effective value at a spec path and the layer that set it."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import CASES, REPO
from modelapi_compile.commands.explain import Explanation, explain, render_explanation
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


# --- what is deployed (issue 24) -------------------------------------------------------------

KNOBS = str(CASES / "valid" / "production-knobs.yaml")


def _deployed_container(spec: str, environment: str, name: str) -> dict[str, object]:
    from modelapi_compile.emit.manifests import build_objects
    from modelapi_compile.resolve.stack import resolve_environments
    from modelapi_compile.spec.validate import load_spec

    env = next(e for e in resolve_environments(load_spec(spec)) if e.environment == environment)
    controller = next(o for o in build_objects(env) if o["kind"] in ("Deployment", "StatefulSet")
                      and o["metadata"]["name"].endswith(f"-{name}"))
    container: dict[str, object] = controller["spec"]["template"]["spec"]["containers"][0]
    return container


def test_resources_show_what_the_workload_gets() -> None:
    """Not `requests: {}`: the requests and limits of the built container, each with the
    layer that set it, the image and /dev/shm."""
    text = render_explanation(explain(EXAMPLE, "prod",
                                      "spec.modelAPIs[vllm-hosted].vllm.resources"))
    container = _deployed_container(EXAMPLE, "prod", "vllm-hosted")
    requests = container["resources"]["requests"]  # type: ignore[index]
    assert "  deployed: Deployment agentic-vllm-hosted (namespace agentic)\n" in text
    assert f"      cpu: {requests['cpu']}  [default]\n" in text
    assert f"      memory: {requests['memory']}  [default]\n" in text
    assert "      nvidia.com/gpu: 1  [gpu.count: spec, line " in text
    assert f"    image: {container['image']}  [spec, line " in text
    assert "    /dev/shm: 2Gi (memory-backed emptyDir)  [default]\n" in text


def test_the_cpu_image_of_an_environment_says_where_it_comes_from() -> None:
    text = render_explanation(explain(EXAMPLE, "dev", "spec.modelAPIs[vllm-hosted].vllm.image"))
    image = _deployed_container(EXAMPLE, "dev", "vllm-hosted")["image"]
    assert (f"    image: {image}  [derived from vllm/vllm-openai:v0.8.3 (spec, line 23): CPU "
            "mode (gpu.count 0): the CPU image]") in text


def test_replicas_name_the_autoscaler_that_owns_them() -> None:
    keda = render_explanation(explain(KNOBS, "dev", "spec.modelAPIs[qwen].vllm.replicas"))
    assert "    replicas: owned by KEDA ScaledObject knobs-qwen: 1 to 4  [spec, line " in keda
    hpa = render_explanation(explain(KNOBS, "dev", "spec.agents[helper].replicas"))
    assert "    replicas: owned by HorizontalPodAutoscaler knobs-helper: 1 to 2  [spec" in hpa
    patched = render_explanation(explain(KNOBS, "dev", "spec.modelAPIs[gateway].litellm"))
    assert "    replicas: 1  [environment patch, line " in patched
    plain = render_explanation(explain(EXAMPLE, "prod", "spec.agents[simple-math-agent].replicas"))
    assert "    replicas: 3  [environment patch, line 94]\n" in plain


def test_fields_about_something_else_show_no_deployment() -> None:
    text = render_explanation(explain(EXAMPLE, "dev", "spec.modelAPIs[vllm-hosted].vllm.gpu.count"))
    assert "deployed:" not in text


def test_multi_node_groups_and_inference_pools_are_explained() -> None:
    frontier = str(CASES / "valid" / "frontier-serving.yaml")
    nodes = render_explanation(explain(frontier, "prod", "spec.modelAPIs[deepseek].vllm.nodes"))
    assert nodes.startswith("spec.modelAPIs[deepseek].vllm.nodes (prod): 2\n")
    assert "frontier-serving.yaml:19:16" in nodes
    url = "spec.modelAPIs[llama8b].vllm.inferencePool.gateway.url"
    pool = render_explanation(explain(frontier, "prod", url))
    assert "http://inference-gw.gateway-system.svc.cluster.local" in pool
    assert "frontier-serving.yaml:33:" in pool
