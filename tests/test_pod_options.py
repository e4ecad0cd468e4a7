"""Pod pass-through (env, volumes, affinity, spread, priority, pull secrets, pod metadata,
node selectors) on every kind of workload, as real Helm and Kustomize render it, and the
default spread of replicated workloads as the scheduler would place their pods."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from conftest import CASES
from modelapi_compile.cli import cli
from modelapi_compile.verify.engines import render_chart

KNOBS = CASES / "valid" / "production-knobs.yaml"
Obj = dict[str, Any]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory, helm: Any, kustomize: Any
             ) -> list[dict[tuple[str, str], Obj]]:
    out = tmp_path_factory.mktemp("knobs")
    result = CliRunner().invoke(cli, ["build", "-f", str(KNOBS), "-o", str(out)])
    assert result.exit_code == 0, result.output
    return [{(o["kind"], o["metadata"]["name"]): o for o in objects} for objects in (
        render_chart(helm, out / "charts" / "knobs", "prod", "llm"),
        kustomize(out / "overlays" / "prod"))]


def pod(objs: dict[tuple[str, str], Obj], name: str) -> Obj:
    template: Obj = objs[("Deployment", name)]["spec"]["template"]
    return template


def test_pass_through_fields_reach_the_pod(rendered: Any) -> None:
    for objs in rendered:
        qwen = pod(objs, "knobs-qwen")
        spec, container = qwen["spec"], qwen["spec"]["containers"][0]
        assert {"name": "VLLM_LOGGING_LEVEL", "value": "INFO"} in container["env"]
        assert {"name": "chat-templates", "configMap": {"name": "chat-templates"}} \
            in spec["volumes"]
        assert {"name": "chat-templates", "mountPath": "/templates", "readOnly": True} \
            in container["volumeMounts"]
        assert spec["affinity"]["nodeAffinity"][
            "preferredDuringSchedulingIgnoredDuringExecution"][0]["weight"] == 50
        assert spec["priorityClassName"] == "llm-serving"
        assert qwen["metadata"]["annotations"] == {
            "cluster-autoscaler.kubernetes.io/safe-to-evict": "false"}
        assert qwen["metadata"]["labels"]["team"] == "ml-platform"
        # the spec's node labels merge over the accelerator's
        assert spec["nodeSelector"] == {"cloud.google.com/gke-spot": "false",
                                        "nvidia.com/gpu.product": "NVIDIA-L4"}
        gateway = pod(objs, "knobs-gateway")
        assert gateway["spec"]["priorityClassName"] == "llm-gateway"
        env = {e["name"]: e for e in gateway["spec"]["containers"][0]["env"]}
        assert env["LANGFUSE_SECRET_KEY"]["valueFrom"]["secretKeyRef"] == {
            "name": "langfuse", "key": "secret-key"}
        assert "LITELLM_MASTER_KEY" in env  # the compiler's own env stays
        # a config checksum and the spec's annotations live side by side
        assert "checksum/config" in gateway["metadata"]["annotations"]
        helper = pod(objs, "knobs-helper")
        assert {"name": "scratch", "mountPath": "/scratch"} in \
            helper["spec"]["containers"][0]["volumeMounts"]
        assert helper["metadata"]["labels"]["cost-center"] == "agents"
        ollama = pod(objs, "knobs-ollama")
        assert ollama["metadata"]["annotations"] == {"backup.velero.io/backup-volumes": "data"}


def test_every_pod_pulls_with_the_cluster_secret(rendered: Any) -> None:
    for objs in rendered:
        for (kind, name), obj in objs.items():
            if kind != "Deployment":
                continue
            secrets = [s["name"] for s in obj["spec"]["template"]["spec"]["imagePullSecrets"]]
            expected = ["regcred", "ollama-mirror"] if name == "knobs-ollama" else ["regcred"]
            assert secrets == expected, name


def test_pod_labels_never_change_the_selector(rendered: Any) -> None:
    for objs in rendered:
        for (kind, name), obj in objs.items():
            if kind == "Deployment":
                selector = obj["spec"]["selector"]["matchLabels"]
                assert set(selector) == {"modelapi.dev/stack", "app.kubernetes.io/name"}
                assert selector.items() <= obj["spec"]["template"]["metadata"]["labels"].items()
                service = objs[("Service", name)]
                assert service["spec"]["selector"] == selector


# --- the scheduler ----------------------------------------------------------------------------


def _matches(selector: Obj, labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


def schedule(template: Obj, replicas: int, nodes: dict[str, dict[str, str]]
             ) -> dict[str, str] | None:
    """Place `replicas` pods of `template` the way kube-scheduler's PodTopologySpread plugin
    does for one constraint: DoNotSchedule filters nodes whose domain would exceed maxSkew,
    ScheduleAnyway only scores (fewest matching pods in the domain wins). Returns pod ->
    node, or None when a pod stays Pending."""
    spec, labels = template["spec"], template["metadata"]["labels"]
    constraints = spec.get("topologySpreadConstraints", [])
    placed: dict[str, str] = {}
    for index in range(replicas):
        candidates = sorted(nodes)
        scores: Counter[str] = Counter()
        for constraint in constraints:
            key = constraint["topologyKey"]
            counts: Counter[str] = Counter()
            if _matches(constraint["labelSelector"], labels):
                counts.update(nodes[node][key] for node in placed.values())
            domains = {nodes[n][key] for n in nodes}
            low = min(counts.get(d, 0) for d in domains)
            if constraint["whenUnsatisfiable"] == "DoNotSchedule":
                candidates = [n for n in candidates if counts.get(nodes[n][key], 0) + 1 - low
                              <= constraint["maxSkew"]]
            for node in candidates:
                scores[node] += counts.get(nodes[node][key], 0)
        if not candidates:
            return None
        placed[f"pod-{index}"] = min(candidates, key=lambda n: (scores[n], n))
    return placed


NODES = {f"gpu-{i}": {"kubernetes.io/hostname": f"gpu-{i}",
                      "topology.kubernetes.io/zone": f"zone-{i % 2}"} for i in range(4)}


def test_replicated_workloads_spread_across_nodes(rendered: Any) -> None:
    for objs in rendered:
        for name, replicas in (("knobs-qwen", 4), ("knobs-gateway", 4), ("knobs-helper", 4)):
            template = pod(objs, name)
            constraint = template["spec"]["topologySpreadConstraints"][0]
            assert constraint["whenUnsatisfiable"] == "ScheduleAnyway"
            placed = schedule(template, replicas, NODES)
            assert placed is not None
            assert len(set(placed.values())) == replicas, name  # one pod per node
            # ScheduleAnyway never leaves a pod Pending, even on a single node.
            one_node = {"gpu-0": NODES["gpu-0"]}
            assert schedule(template, replicas, one_node) == {
                f"pod-{i}": "gpu-0" for i in range(replicas)}
        # The model is not blind: without the constraint, every pod lands on one node.
        bare = pod(objs, "knobs-qwen")
        bare = {**bare, "spec": {**bare["spec"], "topologySpreadConstraints": []}}
        assert set((schedule(bare, 4, NODES) or {}).values()) == {"gpu-0"}


def test_single_replica_workloads_get_no_default_spread(rendered: Any) -> None:
    result = CliRunner().invoke(cli, ["template", "-f", str(KNOBS), "--env", "dev"])
    assert result.exit_code == 0, result.output
    dev = {d["metadata"]["name"]: d for d in yaml.safe_load_all(result.output)
           if d and d["kind"] == "Deployment"}
    assert dev["knobs-gateway"]["spec"]["replicas"] == 1  # dev turns its autoscaling off
    assert "topologySpreadConstraints" not in dev["knobs-gateway"]["spec"]["template"]["spec"]
    for objs in rendered:
        # Ollama runs one replica: its spread is the spec's own (zones, DoNotSchedule).
        own = pod(objs, "knobs-ollama")["spec"]["topologySpreadConstraints"]
        assert own == [{"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
                        "whenUnsatisfiable": "DoNotSchedule",
                        "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "ollama"}}}]


def test_a_spec_spread_replaces_the_default(tmp_path: Path) -> None:
    data = yaml.safe_load(KNOBS.read_text())
    helper = data["spec"]["agents"][0]
    helper["topologySpreadConstraints"] = []
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(data))
    result = CliRunner().invoke(cli, ["template", "-f", str(spec), "--env", "prod"])
    assert result.exit_code == 0, result.output
    deployment = next(d for d in yaml.safe_load_all(result.output)
                      if d and d["kind"] == "Deployment"
                      and d["metadata"]["name"] == "knobs-helper")
    assert "topologySpreadConstraints" not in deployment["spec"]["template"]["spec"]


def test_editors_get_the_kubernetes_shapes_from_the_spec_schema() -> None:
    """The spec's JSON Schema types pass-through fields by Kubernetes' definitions, so the
    YAML language server flags the typo `validate` flags."""
    from jsonschema import Draft202012Validator

    from modelapi_compile.spec.schema import spec_schema

    schema = spec_schema()
    assert Draft202012Validator(schema).is_valid(yaml.safe_load(KNOBS.read_text()))
    vllm = Draft202012Validator({"$defs": schema["$defs"], "$ref": "#/$defs/Vllm"})
    body = {"model": "org/m", "extraVolumes": [{"name": "t", "emptyDir": {}}],
            "extraVolumeMounts": [{"name": "t", "mountpath": "/t"}]}
    errors = list(vllm.iter_errors(body))
    assert errors and any("mountpath" in e.message for e in errors)
    body["extraVolumeMounts"] = [{"name": "t", "mountPath": "/t"}]
    assert vllm.is_valid(body)
