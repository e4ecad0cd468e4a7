"""Issue 25: `vllm.nodes` (a replica as a LeaderWorkerSet group) and `vllm.inferencePool`
(the Gateway API Inference Extension), object by object. Both engines, the CRD schemas and
the real control plane are covered by the suites that run every valid spec."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from conftest import CASES
from modelapi_compile.pipeline import compile_spec
from modelapi_compile.resolve.inference_pool import PICKER_GRPC_PORT, PICKER_IMAGE
from modelapi_compile.resolve.vllm import LEADER_SCRIPT, MULTI_NODE_SCRIPT, WORKER_SCRIPT

SPEC = CASES / "valid" / "frontier-serving.yaml"
K8s = dict[str, Any]


@pytest.fixture(scope="module")
def prod() -> dict[tuple[str, str], K8s]:
    compiled = compile_spec(str(SPEC), use_helm=False, keep_objects=True)
    return {(o["kind"], o["metadata"]["name"]): o for o in compiled.objects["prod"]}


def _container(template: K8s) -> K8s:
    return template["spec"]["containers"][0]


def test_a_replica_over_two_nodes_is_a_leader_worker_set(prod: dict[tuple[str, str], K8s]
                                                         ) -> None:
    lws = prod[("LeaderWorkerSet", "frontier-deepseek")]
    spec = lws["spec"]
    assert "replicas" not in spec  # KEDA owns the count of groups
    assert spec["startupPolicy"] == "LeaderCreated"
    group = spec["leaderWorkerTemplate"]
    assert group["size"] == 2
    assert group["restartPolicy"] == "RecreateGroupOnPodRestart"
    leader, worker = _container(group["leaderTemplate"]), _container(group["workerTemplate"])
    args = leader["args"]
    assert args[args.index("--tensor-parallel-size") + 1] == "8"
    assert args[args.index("--pipeline-parallel-size") + 1] == "2"
    assert args[args.index("--distributed-executor-backend") + 1] == "ray"
    assert leader["command"][:2] == ["/bin/sh", "-c"] and leader["command"][3] == "7200"
    assert {"startupProbe", "readinessProbe", "livenessProbe"} <= set(leader)
    assert not {"startupProbe", "readinessProbe", "livenessProbe", "lifecycle", "args"} \
        & set(worker)
    assert "$LWS_LEADER_ADDRESS" in worker["command"][2]
    for container in (leader, worker):
        assert container["resources"]["limits"]["nvidia.com/gpu"] == "8"
        # each pod caches on its own node: no claim only one node mounts
        cache = next(v for v in group["leaderTemplate"]["spec"]["volumes"]
                     if v["name"] == "model-cache")
        assert cache == {"name": "model-cache", "emptyDir": {"sizeLimit": "800Gi"}}
    assert ("PersistentVolumeClaim", "frontier-deepseek-cache") not in prod


def test_only_leaders_serve_and_groups_scale_and_drain_whole(
        prod: dict[tuple[str, str], K8s]) -> None:
    service = prod[("Service", "frontier-deepseek")]
    assert service["spec"]["selector"]["leaderworkerset.sigs.k8s.io/worker-index"] == "0"
    scaled = prod[("ScaledObject", "frontier-deepseek")]["spec"]["scaleTargetRef"]
    assert scaled == {"apiVersion": "leaderworkerset.x-k8s.io/v1", "kind": "LeaderWorkerSet",
                      "name": "frontier-deepseek"}
    assert prod[("PodDisruptionBudget", "frontier-deepseek")]["spec"]["maxUnavailable"] == 1
    policy = prod[("NetworkPolicy", "frontier-deepseek")]["spec"]
    own = {"podSelector": {"matchLabels": policy["podSelector"]["matchLabels"]}}
    assert {"from": [own]} in policy["ingress"] and {"to": [own]} in policy["egress"]


def test_the_launch_scripts_start_ray_then_serve(tmp_path: Path) -> None:
    """The scripts as the pod's shell runs them, with the image's script and vllm faked."""
    fake = tmp_path / "multi-node-serving.sh"
    fake.write_text('echo "ray $*"\n')
    vllm = tmp_path / "vllm"
    vllm.write_text('#!/bin/sh\necho "vllm $*"\n')
    vllm.chmod(0o755)
    env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}", "LWS_GROUP_SIZE": "2",
           "LWS_LEADER_ADDRESS": "frontier-deepseek-0.frontier-deepseek.frontier"}

    def run(script: str, *args: str) -> str:
        script = script.replace(MULTI_NODE_SCRIPT, str(fake))
        return subprocess.run(["/bin/sh", "-c", script, "7200", *args], env=env, check=True,
                              capture_output=True, text=True).stdout

    assert run(LEADER_SCRIPT, "model", "--served-model-name", "a b").splitlines() == [
        "ray leader --ray_port=6379 --ray_cluster_size=2 --ray_init_timeout=7200",
        "vllm serve model --served-model-name a b"]
    assert run(WORKER_SCRIPT) == ("ray worker --ray_port=6379 --ray_address="
                                  "frontier-deepseek-0.frontier-deepseek.frontier "
                                  "--ray_init_timeout=7200\n")


def test_the_pool_selects_exactly_the_models_pods(prod: dict[tuple[str, str], K8s]) -> None:
    pool = prod[("InferencePool", "frontier-llama8b")]["spec"]
    pods = prod[("StatefulSet", "frontier-llama8b")]["spec"]["selector"]["matchLabels"]
    assert pool["selector"]["matchLabels"] == pods
    assert pool["targetPorts"] == [{"number": 8000}]
    assert pool["endpointPickerRef"]["name"] == "frontier-llama8b-epp"
    assert pool["endpointPickerRef"]["port"] == {"number": PICKER_GRPC_PORT}
    picker = prod[("Deployment", "frontier-llama8b-epp")]["spec"]
    # the picker's pods are not the model's: neither the pool nor the Service picks them
    assert not set(pods.items()) <= set(picker["template"]["metadata"]["labels"].items())
    container = _container(picker["template"])
    assert container["image"] == PICKER_IMAGE
    assert container["args"][:2] == ["--pool-name", "frontier-llama8b"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    role = prod[("Role", "frontier-llama8b-epp")]["rules"]
    assert {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "watch", "list"]} in role
    binding = prod[("RoleBinding", "frontier-llama8b-epp")]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "frontier-llama8b-epp",
                                    "namespace": "frontier"}]


def test_litellm_calls_the_gateway_which_routes_to_the_pool(
        prod: dict[tuple[str, str], K8s]) -> None:
    route = prod[("HTTPRoute", "frontier-llama8b")]["spec"]
    assert route["parentRefs"] == [{"name": "inference-gw", "namespace": "gateway-system"}]
    rule = route["rules"][0]
    assert rule["backendRefs"] == [{"group": "inference.networking.k8s.io",
                                    "kind": "InferencePool", "name": "frontier-llama8b"}]
    assert rule["matches"][0]["path"]["value"] == "/frontier/frontier-llama8b"
    config = prod[("ConfigMap", "frontier-gateway-config")]["data"]["config.yaml"]
    assert ("http://inference-gw.gateway-system.svc.cluster.local/frontier/frontier-llama8b/v1"
            in config)
    assert "http://frontier-deepseek:8000/v1" in config


def test_network_policies_of_the_pool(prod: dict[tuple[str, str], K8s]) -> None:
    proxies = {"namespaceSelector": {"matchLabels": {
        "kubernetes.io/metadata.name": "envoy-gateway-system"}}}
    pool = prod[("NetworkPolicy", "frontier-pool-llama8b")]["spec"]
    assert proxies in pool["ingress"][0]["from"]
    assert pool["ingress"][0]["ports"] == [{"port": 8000, "protocol": "TCP"}]
    picker = prod[("NetworkPolicy", "frontier-epp-llama8b")]["spec"]
    assert picker["ingress"][0] == {"from": [proxies],
                                    "ports": [{"port": PICKER_GRPC_PORT, "protocol": "TCP"}]}
    assert [p["port"] for p in picker["egress"][1]["ports"]] == [443, 6443]
    calls = prod[("NetworkPolicy", "frontier-calls-llama8b")]["spec"]
    assert calls["egress"] == [{"to": [proxies]}]


def test_compose_refuses_what_needs_a_cluster_and_names_the_patch() -> None:
    from click.testing import CliRunner

    from modelapi_compile.cli import cli

    result = CliRunner().invoke(cli, ["compose", "-f", str(SPEC), "--env", "prod"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "spec.modelAPIs[deepseek].vllm" in result.output
    assert "spec.modelAPIs[llama8b].vllm" in result.output
    assert "nodes: 1 and inferencePool: null" in result.output
