"""`init`'s starter spec: commented, and it validates and builds as written for every choice
of backends and GitOps tool."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
import yaml

from modelapi_compile.commands.init import BACKENDS, GITOPS_CHOICES, MODELINE, starter_spec
from modelapi_compile.pipeline import compile_spec
from modelapi_compile.spec.loader import load_bytes
from modelapi_compile.spec.validate import validate_document

SUBSETS = [list(c) for n in range(1, len(BACKENDS) + 1)
           for c in itertools.combinations(BACKENDS, n)]
GITOPS: list[str | None] = [None, "argocd", "flux", "both"]


@pytest.mark.parametrize("gitops", GITOPS, ids=lambda g: str(g))
@pytest.mark.parametrize("backends", SUBSETS, ids=lambda b: "+".join(b))
def test_starter_validates_and_builds(tmp_path: Path, backends: list[str],
                                      gitops: str | None) -> None:
    text = starter_spec("demo", backends, gitops)
    assert text.splitlines()[0] == MODELINE
    validate_document(load_bytes(text.encode(), "starter.yaml"))
    spec_file = tmp_path / "starter.yaml"
    spec_file.write_text(text, encoding="utf-8")
    compiled = compile_spec(str(spec_file), use_helm=False, keep_objects=True)
    assert [e.environment for e in compiled.environments] == ["dev", "prod"]
    assert bool(compiled.gitops) == (gitops is not None)


def _data(text: str) -> Any:
    return yaml.safe_load(text)


def test_every_backend_is_routed_by_the_proxy() -> None:
    spec = _data(starter_spec("demo", list(BACKENDS), "both"))["spec"]
    apis = {a["name"]: a for a in spec["modelAPIs"]}
    assert set(apis) == {"ollama", "vllm", "openai", "litellm"}
    backends = [m["backend"] for m in apis["litellm"]["litellm"]["models"]]
    assert backends == ["ollama", "vllm", "openai"]
    assert spec["agents"][0]["modelAPI"] == "litellm"
    assert spec["gitops"]["argocd"]["enabled"] and spec["gitops"]["flux"]["enabled"]


def test_dev_runs_vllm_on_cpu_and_prod_on_gpu() -> None:
    spec = _data(starter_spec("demo", ["vllm"], None))["spec"]
    dev, prod = spec["environments"]
    assert dev["patch"]["modelAPIs"] == [{"name": "vllm", "vllm": {"gpu": {"count": 0}}}]
    assert "modelAPIs" not in prod["patch"]
    assert spec["modelAPIs"][0]["vllm"]["gpu"]["count"] == 1
    assert spec["agents"][0]["modelAPI"] == "vllm"
    assert "gitops" not in spec


def test_proxy_alone_routes_to_a_raw_endpoint() -> None:
    spec = _data(starter_spec("demo", ["litellm"], "flux"))["spec"]
    (entry,) = spec["modelAPIs"][0]["litellm"]["models"]
    assert entry["url"] == "https://api.openai.com/v1" and entry["provider"] == "openai"
    assert spec["gitops"]["flux"]["enabled"] and not spec["gitops"]["argocd"]["enabled"]


def test_namespace_and_comments() -> None:
    text = starter_spec("shop", ["ollama", "external"], "argocd", namespace="llm")
    spec = _data(text)["spec"]
    assert spec["namespace"] == "llm"
    assert [e["namespace"] for e in spec["environments"]] == ["llm-dev", "llm"]
    assert spec["gitops"]["path"] == "deploy/shop"
    comments = [line for line in text.splitlines() if line.lstrip().startswith("#")]
    assert len(comments) > 15
    assert "secret values never go in the spec" in text


def test_same_choices_same_bytes() -> None:
    assert starter_spec("demo", ["vllm", "ollama"], "both") == starter_spec(
        "demo", ["ollama", "vllm", "ollama"], "both")


@pytest.mark.parametrize(("name", "backends", "gitops", "namespace", "message"), [
    ("Demo", ["ollama"], None, None, "DNS-1035"),
    ("demo", [], None, None, "one or more of"),
    ("demo", ["olama"], None, None, "unknown: olama"),
    ("demo", ["ollama"], "jenkins", None, "gitops must be one of"),
    ("demo", ["ollama"], None, "Bad_NS", "namespace"),
])
def test_bad_choices_are_usage_errors(name: str, backends: list[str], gitops: str | None,
                                      namespace: str | None, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        starter_spec(name, backends, gitops, namespace)


def test_choice_constants() -> None:
    assert BACKENDS == ("ollama", "vllm", "litellm", "external")
    assert GITOPS_CHOICES == ("none", "argocd", "flux", "both")
    assert starter_spec("demo", ["ollama"], "none") == starter_spec("demo", ["ollama"], None)


def test_prod_scales_the_proxy_with_an_hpa(tmp_path: Path) -> None:
    text = starter_spec("demo", ["ollama", "litellm"], None)
    prod = _data(text)["spec"]["environments"][1]["patch"]
    assert prod["modelAPIs"] == [{"name": "litellm", "litellm": {"autoscaling": {
        "minReplicas": 2, "maxReplicas": 4, "cpuUtilization": 70}}}]
    spec_file = tmp_path / "starter.yaml"
    spec_file.write_text(text, encoding="utf-8")
    compiled = compile_spec(str(spec_file), use_helm=False, keep_objects=True)
    kinds = {(o["kind"], o["metadata"]["name"]) for o in compiled.objects["prod"]}
    assert ("HorizontalPodAutoscaler", "demo-litellm") in kinds
    assert ("HorizontalPodAutoscaler", "demo-litellm") not in {
        (o["kind"], o["metadata"]["name"]) for o in compiled.objects["dev"]}


def test_the_vllm_block_mentions_the_production_fields() -> None:
    text = starter_spec("demo", ["vllm"], None)
    for field in ("autoscaling:", "pvc://", "objectStorage", "hfHubOffline", "loraAdapters",
                  "nodes:", "inferencePool:"):
        assert field in text, field
    assert max(len(line) for line in text.splitlines()) <= 80
