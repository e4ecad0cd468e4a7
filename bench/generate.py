"""Synthetic stack specs for the benchmark (issue 8).

    python bench/generate.py SIZE -o FILE      # SIZE: S, M, L or 2L

S is a byte copy of examples/agentic.yaml. M, L and 2L are built arithmetically (no
randomness), so the same size always gives the same bytes:

- M: 20 modelAPIs (8 vLLM, 4 Ollama, 4 LiteLLM, 4 external), 200 agents, 3 environments.
- L: 100 vLLM + 20 LiteLLM (50 routes each, to the vLLM servers by servedModelName) + 4
  external modelAPIs, 2,000 agents, 4 environments.
- 2L: everything of L doubled (the linearity check), same 4 environments.

Environments patch replicas, set vLLM gpu.count to 0 in dev and each use their own
namespace. Patches scale with the size, so 2L is twice L in every dimension. L and 2L split
their overlays (gitops.overlayParts 4 and 8), as the build's warning asks at that size.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "agentic.yaml"
SIZES = ("S", "M", "L", "2L")
STACK = "bench"
HF_MODELS = (
    "Qwen/Qwen2.5-0.5B-Instruct",
    "TinyLlama/TinyLlama-1.1B-Chat-v1.0",
    "HuggingFaceTB/SmolLM2-135M-Instruct",
    "microsoft/Phi-3-mini-4k-instruct",
)
ACCELERATORS = ("nvidia-l4", "nvidia-a100-40gb", "nvidia-a100-80gb")
OLLAMA_MODELS = ("smollm2:135m", "qwen2.5:0.5b", "llama3.2:1b")
EXTERNAL_MODELS = ("gpt-4o-mini", "gpt-4o", "o3-mini")
Spec = dict[str, Any]


@dataclass(frozen=True)
class Shape:
    vllm: int
    ollama: int
    litellm: int
    external: int
    routes: int  # models per LiteLLM proxy
    agents: int
    environments: tuple[str, ...]
    # gitops.overlayParts: what the build's warning asks for at this size, so that each part
    # Argo CD and Flux render stays within 30 s (about 2,500 objects).
    overlay_parts: int = 1


SHAPES = {
    "M": Shape(vllm=8, ollama=4, litellm=4, external=4, routes=10, agents=200,
               environments=("dev", "staging", "prod")),
    "L": Shape(vllm=100, ollama=0, litellm=20, external=4, routes=50, agents=2000,
               environments=("dev", "staging", "canary", "prod"), overlay_parts=4),
    "2L": Shape(vllm=200, ollama=0, litellm=40, external=8, routes=50, agents=4000,
                environments=("dev", "staging", "canary", "prod"), overlay_parts=8),
}


def served(i: int) -> str:
    return f"llm-{i:03d}"


def vllm_api(i: int) -> Spec:
    gpus = 2 if i % 10 == 9 else 1
    body: Spec = {
        "model": HF_MODELS[i % len(HF_MODELS)],
        "servedModelName": served(i),
        "replicas": 1,
        "gpu": {"count": gpus, "accelerator": ACCELERATORS[i % len(ACCELERATORS)]},
        "cache": {"size": "50Gi"},
        "engine": {"maxModelLen": 4096, "dtype": "auto", "gpuMemoryUtilization": 0.9},
        "hfTokenSecret": {"name": "hf-token", "key": "token"},
        "startupTimeout": "30m",
    }
    if i % 4 == 0:
        body["apiKeySecret"] = {"name": "vllm-api-key", "key": "key"}
    return {"name": f"vllm-{i:03d}", "vllm": body}


def ollama_api(i: int) -> Spec:
    models = [OLLAMA_MODELS[(i + k) % len(OLLAMA_MODELS)] for k in range(2)]
    return {"name": f"ollama-{i:02d}",
            "ollama": {"models": models, "cache": {"size": "20Gi"}}}


def external_api(i: int) -> Spec:
    return {"name": f"external-{i:02d}",
            "external": {"url": f"https://api{i}.example.com/v1",
                         "models": list(EXTERNAL_MODELS),
                         "apiKeySecret": {"name": f"external-{i:02d}", "key": "api-key"}}}


def litellm_routes(i: int, shape: Shape) -> list[Spec]:
    """`shape.routes` routes: to vLLM servers, plus (in M) Ollama and external ones."""
    routes: list[Spec] = []
    for k in range(shape.routes):
        slot = i * shape.routes + k
        if shape.ollama and k % 5 == 3:
            api = slot % shape.ollama
            model = OLLAMA_MODELS[api % len(OLLAMA_MODELS)]
            routes.append({"name": f"ollama-{api:02d}-{model.replace(':', '-')}",
                           "backend": f"ollama-{api:02d}", "model": model})
        elif shape.ollama and k % 5 == 4:
            routes.append({"name": f"ext-{slot % shape.external:02d}-gpt-4o-mini",
                           "backend": f"external-{slot % shape.external:02d}",
                           "model": "gpt-4o-mini"})
        else:
            routes.append({"name": served(slot % shape.vllm),
                           "backend": f"vllm-{slot % shape.vllm:03d}"})
    return dedupe(routes)


def dedupe(routes: list[Spec]) -> list[Spec]:
    seen: set[str] = set()
    unique = []
    for route in routes:
        if route["name"] not in seen:
            seen.add(route["name"])
            unique.append(route)
    return unique


def litellm_api(i: int, shape: Shape) -> Spec:
    routes = litellm_routes(i, shape)
    body: Spec = {
        "replicas": 2,
        "masterKeySecret": {"name": "litellm-master-key", "key": "master-key"},
        "models": routes,
        "router": {"strategy": "simple-shuffle", "numRetries": 2, "timeout": 600,
                   "fallbacks": {routes[0]["name"]: [routes[1]["name"]]}},
    }
    return {"name": f"litellm-{i:02d}", "litellm": body}


def model_apis(shape: Shape) -> list[Spec]:
    return [*(vllm_api(i) for i in range(shape.vllm)),
            *(ollama_api(i) for i in range(shape.ollama)),
            *(litellm_api(i, shape) for i in range(shape.litellm)),
            *(external_api(i) for i in range(shape.external))]


def agent_target(k: int, apis: list[Spec]) -> tuple[str, str]:
    """(modelAPI, model) of agent k: 60% proxies, 20% vLLM, 10% Ollama, 10% external."""
    kind = {0: "vllm", 1: "vllm", 2: "ollama", 3: "external"}.get(k % 10, "litellm")
    pool = [api for api in apis if kind in api] or [api for api in apis if "vllm" in api]
    api = pool[(k // 10) % len(pool)]
    if "litellm" in api:
        routes = api["litellm"]["models"]
        return api["name"], routes[k % len(routes)]["name"]
    if "vllm" in api:
        return api["name"], api["vllm"]["servedModelName"]
    body = api.get("ollama") or api["external"]
    return api["name"], body["models"][k % len(body["models"])]


def agent(k: int, apis: list[Spec]) -> Spec:
    api, model = agent_target(k, apis)
    spec: Spec = {"name": f"agent-{k:04d}",
                  "image": f"ghcr.io/example/agent-{k % 10}:0.{k % 7}.0",
                  "modelAPI": api, "model": model, "port": 8000,
                  "replicas": 1 + k % 2,
                  "env": [{"name": "LOG_LEVEL", "value": "info"},
                          {"name": "AGENT_ID", "value": str(k)}]}
    if k % 3 == 0:
        spec["healthPath"] = "/healthz"
    if api.startswith("litellm-"):  # a proxy with a master key: each agent its own key
        spec["apiKeySecret"] = {"name": f"agent-{k:04d}-litellm", "key": "key"}
    return spec


def environment(name: str, shape: Shape) -> Spec:
    agents = [{"name": f"agent-{k:04d}", "replicas": replicas(name, k)}
              for k in range(0, shape.agents, 10)]
    patch: Spec = {"agents": agents}
    if name == "dev":
        patch["modelAPIs"] = [{"name": f"vllm-{i:03d}", "vllm": {"gpu": {"count": 0}}}
                              for i in range(shape.vllm)]
    elif name == "prod":
        patch["modelAPIs"] = [{"name": f"vllm-{i:03d}", "vllm": {"replicas": 2}}
                              for i in range(0, shape.vllm, 5)]
    namespace = STACK if name == "prod" else f"{STACK}-{name}"
    return {"name": name, "namespace": namespace, "patch": patch}


def replicas(env: str, k: int) -> int:
    """Agent k's replicas in env: always different from the base (1 + k % 2)."""
    return {"dev": 0, "staging": 3, "canary": 4, "prod": 5}[env] + k % 2


def synthetic(size: str) -> Spec:
    shape = SHAPES[size]
    apis = model_apis(shape)
    return {
        "apiVersion": "modelapi.dev/v1alpha1",
        "kind": "ModelStack",
        "metadata": {"name": STACK},
        "spec": {
            "namespace": STACK,
            "kubernetesVersion": "1.31.0",
            "modelAPIs": apis,
            "agents": [agent(k, apis) for k in range(shape.agents)],
            "environments": [environment(env, shape) for env in shape.environments],
            "gitops": {
                "repoURL": "https://github.com/example/gitops.git", "revision": "main",
                "path": f"deploy/{STACK}",
                "argocd": {"enabled": True, "namespace": "argocd", "project": "default",
                           "source": "helm"},
                "flux": {"enabled": True, "namespace": "flux-system", "interval": "5m",
                         "source": "kustomize"},
                **({"overlayParts": shape.overlay_parts} if shape.overlay_parts > 1 else {}),
            },
        },
    }


def write(size: str, output: Path) -> None:
    output.parent.mkdir(parents=True, exist_ok=True)
    if size == "S":
        shutil.copyfile(EXAMPLE, output)
        return
    header = f"# Generated by bench/generate.py {size}; do not edit.\n"
    body = yaml.safe_dump(synthetic(size), sort_keys=False, width=100)
    output.write_text(header + body, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("size", choices=SIZES)
    parser.add_argument("-o", "--output", type=Path, required=True)
    args = parser.parse_args(argv)
    write(args.size, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
