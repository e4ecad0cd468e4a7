"""Workloads as the scheduler, the kubelet, the Deployment and StatefulSet controllers and
Flux treat them (tests/cluster_models.py), on objects both engines render: replicas and
ReadWriteOnce caches, rollouts that never drop below the wanted replicas, progress deadlines
and Flux timeouts against the startup budget, GPU taints with extra tolerations, GPU node
labels of every convention, /dev/shm for tensor parallelism, and Ollama's model puller."""

from __future__ import annotations

import contextlib
import math
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from cluster_models import by_kind, workloads
from conftest import ENGINES, Rendered, render_spec
from control_plane import node, pods_fit
from modelapi_compile.cli import cli
from modelapi_compile.spec.accelerators import ACCELERATORS, TABLE
from modelapi_compile.verify.engines import load_yaml_documents

SPOT = {"key": "example.com/spot", "operator": "Exists", "effect": "NoSchedule"}
SPEC = """\
apiVersion: modelapi.dev/v1alpha1
kind: ModelStack
metadata: {name: fit}
spec:
  namespace: llm
  cluster: {gpuNodeLabels: karpenter}
  modelAPIs:
    - name: big
      vllm:
        model: meta-llama/Llama-3.1-70B-Instruct
        replicas: 2
        startupTimeout: 1h30m
        gpu:
          count: 4
          accelerator: nvidia-a100-80gb
          tolerations: [{key: example.com/spot, operator: Exists, effect: NoSchedule}]
    - name: shared
      vllm:
        model: Qwen/Qwen2.5-7B-Instruct
        replicas: 3
        maxSurge: 2
        cache: {accessMode: ReadWriteMany}
        gpu: {count: 1, accelerator: nvidia-l4}
    - name: single
      vllm:
        model: Qwen/Qwen2.5-0.5B-Instruct
        gpu: {count: 1, accelerator: nvidia-a100-40gb}
    - name: local
      ollama: {models: ["smollm2:135m"]}
    - name: gateway
      litellm:
        replicas: 2
        models: [{name: small, backend: shared, model: Qwen/Qwen2.5-7B-Instruct}]
  environments:
    - name: prod
      namespace: llm
  gitops:
    repoURL: https://github.com/example/gitops.git
    flux: {enabled: true, source: kustomize}
"""
# Pulling a multi-GB image onto a fresh GPU node before any probe runs (the kubelet model).
IMAGE_PULL = 600


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fit")


@pytest.fixture(scope="module")
def rendered(helm: Any, kustomize: Any, folder: Path) -> Rendered:
    return render_spec(SPEC, folder, helm, kustomize)


def _pod(workload: dict[str, Any]) -> dict[str, Any]:
    pod = workload["spec"]["template"]["spec"]
    assert isinstance(pod, dict)
    return pod


def _replicas(workload: dict[str, Any]) -> int:
    return int(workload["spec"].get("replicas", 1))


# --- item 5: Multi-Attach ----------------------------------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
def test_no_two_replicas_share_a_single_writer_claim(rendered: Rendered, engine: str) -> None:
    """The attach/detach controller attaches a ReadWriteOnce volume to one node: a replica
    scheduled elsewhere waits forever (Multi-Attach). Every replicated workload either has
    a claim per replica or mounts a ReadWriteMany claim."""
    objects = rendered[engine]["prod"]
    claims = by_kind(objects, "PersistentVolumeClaim")
    for workload in workloads(objects):
        mounted = [v["persistentVolumeClaim"]["claimName"] for v in _pod(workload).get(
            "volumes", []) if "persistentVolumeClaim" in v]
        if _replicas(workload) > 1:
            for claim in mounted:
                assert claims[claim]["spec"]["accessModes"] == ["ReadWriteMany"], claim
    big = by_kind(objects, "StatefulSet")["fit-big"]
    templates = big["spec"]["volumeClaimTemplates"]
    assert [t["metadata"]["name"] for t in templates] == ["model-cache"]
    assert templates[0]["spec"]["accessModes"] == ["ReadWriteOnce"]
    mounts = _pod(big)["containers"][0]["volumeMounts"]
    assert {"name": "model-cache", "mountPath": "/models"} in mounts
    assert big["spec"]["persistentVolumeClaimRetentionPolicy"] == {
        "whenDeleted": "Retain", "whenScaled": "Retain"}
    assert big["spec"]["podManagementPolicy"] == "Parallel"


def test_replicas_on_an_existing_single_writer_claim_are_refused_at_the_line(
        tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC.replace("        replicas: 3\n        maxSurge: 2\n"
                                 "        cache: {accessMode: ReadWriteMany}",
                                 "        replicas: 3\n        cache: {existingClaim: models}"))
    result = CliRunner().invoke(cli, ["validate", "-f", str(spec)])
    assert result.exit_code == 1
    line = SPEC.splitlines().index("        replicas: 3") + 1
    assert f"spec.yaml:{line}:19: error: spec.modelAPIs[1].vllm.replicas: 3 replicas would " \
           "share the existing claim 'models', which is ReadWriteOnce" in result.output
    assert "ReadWriteMany" in result.output


# --- item 9: rollouts ------------------------------------------------------------------------


def _lowest_available(workload: dict[str, Any]) -> int:
    """The fewest ready replicas during a rollout, as the controllers run it."""
    replicas = _replicas(workload)
    if workload["kind"] == "StatefulSet":
        return replicas - 1  # RollingUpdate replaces one pod at a time
    strategy = workload["spec"]["strategy"]
    if strategy["type"] == "Recreate":
        return 0
    return replicas - int(strategy["rollingUpdate"]["maxUnavailable"])


@pytest.mark.parametrize("engine", ENGINES)
def test_rollouts_keep_replicated_models_serving(rendered: Rendered, engine: str) -> None:
    objects = {w["metadata"]["name"]: w for w in workloads(rendered[engine]["prod"])}
    shared = objects["fit-shared"]["spec"]["strategy"]
    assert shared == {"type": "RollingUpdate",
                      "rollingUpdate": {"maxSurge": 2, "maxUnavailable": 0}}
    assert _lowest_available(objects["fit-shared"]) == 3
    assert _lowest_available(objects["fit-big"]) == 1  # never all replicas down
    assert _lowest_available(objects["fit-gateway"]) == 2
    # Recreate only where one pod at a time is forced: one replica on a ReadWriteOnce claim
    # (a surge pod on another node could not attach it)
    for name in ("fit-single", "fit-local"):
        assert objects[name]["spec"]["strategy"] == {"type": "Recreate"}, name


# --- items 7 and 8: budgets ------------------------------------------------------------------


def _probe_budget(probe: dict[str, Any] | None) -> int:
    if not probe:
        return 0
    return int(probe.get("initialDelaySeconds", 0)
               + probe["periodSeconds"] * probe["failureThreshold"])


def _pod_ready_worst_case(workload: dict[str, Any]) -> int:
    """The kubelet's view: the image pull, then the startup probe may use its whole budget,
    then readiness succeeds at its next period."""
    main = _pod(workload)["containers"][0]
    return (IMAGE_PULL + _probe_budget(main.get("startupProbe"))
            + int(main["readinessProbe"]["periodSeconds"]))


@pytest.mark.parametrize("engine", ENGINES)
def test_progress_deadline_covers_the_startup_budget(rendered: Rendered, engine: str) -> None:
    """The Deployment controller reports ProgressDeadlineExceeded (Argo CD: Degraded, Flux
    health check: failed) when a rollout makes no progress for progressDeadlineSeconds."""
    for workload in by_kind(rendered[engine]["prod"], "Deployment").values():
        deadline = workload["spec"]["progressDeadlineSeconds"]
        needed = _pod_ready_worst_case(workload)
        if workload["spec"]["strategy"]["type"] == "Recreate":
            needed += _pod(workload)["terminationGracePeriodSeconds"]
        assert deadline >= needed, workload["metadata"]["name"]
    # the budget follows startupTimeout: a CPU-less 1h30m load is not cut at 10 minutes
    single = by_kind(rendered[engine]["prod"], "Deployment")["fit-single"]
    assert single["spec"]["progressDeadlineSeconds"] >= 30 * 60


def _duration(text: str) -> int:
    units = {"h": 3600, "m": 60, "s": 1}
    return sum(int(n) * units[u] for n, u in re.findall(r"(\d+)([hms])", text))


def _rollout_worst_case(workload: dict[str, Any]) -> int:
    """How long the controllers may take to finish a rollout within the pods' budgets."""
    per_pod = _pod_ready_worst_case(workload)
    grace = _pod(workload)["terminationGracePeriodSeconds"]
    replicas = max(1, _replicas(workload))
    if workload["kind"] == "StatefulSet":
        return replicas * (grace + per_pod)
    strategy = workload["spec"]["strategy"]
    if strategy["type"] == "Recreate":
        return grace + per_pod
    surge = strategy["rollingUpdate"]["maxSurge"] or 1
    return math.ceil(replicas / surge) * per_pod


def test_flux_waits_for_each_rollout_as_long_as_it_may_take(rendered: Rendered,
                                                             folder: Path) -> None:
    """Every workload is health-checked by a Kustomization whose timeout covers its worst
    case (the model servers each by their own, so they never hold up the others)."""
    kustomizations = load_yaml_documents((folder / "out" / "gitops" / "flux" / "fit-prod.yaml")
                                         .read_text())
    timeout_of = {check["name"]: _duration(k["spec"]["timeout"]) for k in kustomizations
                  for check in k["spec"].get("healthChecks", [])}
    for engine in ENGINES:
        found = list(workloads(rendered[engine]["prod"]))
        assert sorted(timeout_of) == sorted(w["metadata"]["name"] for w in found)
        for workload in found:
            assert timeout_of[workload["metadata"]["name"]] >= _rollout_worst_case(workload)
        slowest = max(_rollout_worst_case(w) for w in found)
        assert slowest > 2 * 3600  # two 4-GPU replicas of 1h30m each, one after the other


def test_a_too_short_flux_timeout_is_refused_at_its_line(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    text = SPEC.replace("flux: {enabled: true, source: kustomize}",
                        "flux: {enabled: true, source: kustomize, timeout: 30m}")
    spec.write_text(text)
    result = CliRunner().invoke(cli, ["build", "-f", str(spec), "-o", str(tmp_path / "o"),
                                      "--no-helm"])
    assert result.exit_code == 1, result.output
    line = text.splitlines().index(
        "    flux: {enabled: true, source: kustomize, timeout: 30m}") + 1
    assert f"spec.yaml:{line}:" in result.output
    assert "spec.gitops.flux.timeout: Flux waits 30m for environment prod, but a rollout " \
           "of 'big' may take" in result.output
    assert "remove timeout to derive it" in result.output
    assert not (tmp_path / "o").exists()


# --- items 10 and 11: scheduling -------------------------------------------------------------

GPU_TAINT = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}
SPOT_TAINT = {"key": "example.com/spot", "value": "true", "effect": "NoSchedule"}


def _karpenter_node(name: str, gpu: str, memory: int, *taints: dict[str, str]
                    ) -> dict[str, Any]:
    return node(name, {"karpenter.k8s.aws/instance-gpu-name": gpu,
                       "karpenter.k8s.aws/instance-gpu-memory": str(memory)},
                (GPU_TAINT, *taints), 8)


@pytest.mark.parametrize("engine", ENGINES)
def test_user_tolerations_add_to_the_gpu_toleration(rendered: Rendered, engine: str,
                                                    control_plane: Any) -> None:
    big = _pod(by_kind(rendered[engine]["prod"], "StatefulSet")["fit-big"])
    spot = _karpenter_node(f"p4de-spot-{engine}", "a100", 81920, SPOT_TAINT)
    on_demand = _karpenter_node(f"p4de-{engine}", "a100", 81920)
    assert pods_fit(control_plane, [(big, spot), (big, on_demand)]) == [[], []]
    assert SPOT in big["tolerations"]


@pytest.mark.parametrize("engine", ENGINES)
def test_karpenter_keeps_an_80gb_model_off_40gb_nodes(rendered: Rendered, engine: str,
                                                      control_plane: Any) -> None:
    objects = {w["metadata"]["name"]: _pod(w) for w in workloads(rendered[engine]["prod"])}
    p4d = _karpenter_node(f"p4d-{engine}", "a100", 40960)
    p4de = _karpenter_node(f"p4de-{engine}", "a100", 81920)
    g6f = _karpenter_node(f"g6f-{engine}", "l4", 2861)  # a fraction of an L4
    g6 = _karpenter_node(f"g6-{engine}", "l4", 22888)
    verdicts = pods_fit(control_plane, [
        (objects["fit-big"], p4de), (objects["fit-big"], p4d),
        (objects["fit-single"], p4d), (objects["fit-single"], p4de),
        (objects["fit-shared"], g6), (objects["fit-shared"], g6f)])
    fits = [not reasons for reasons in verdicts]
    assert fits == [True, False, True, False, True, False], verdicts


# Real GPU nodes of each labelling convention: (the GPU it has, its labels). Karpenter values
# are from Karpenter's instance-type reference (EC2 DescribeInstanceTypes), GKE's from its
# accelerator names, GPU feature discovery's from nvidia-smi product names.
FLEETS: dict[str, list[tuple[str, dict[str, str]]]] = {
    "karpenter": [(gpu, {"karpenter.k8s.aws/instance-gpu-name": name,
                         "karpenter.k8s.aws/instance-gpu-memory": str(memory)})
                  for gpu, name, memory in (
                      ("nvidia-t4", "t4", 16384), ("nvidia-l4", "l4", 22888),
                      ("l4-fraction", "l4", 2861), ("l4-fraction", "l4", 11444),
                      ("nvidia-a10g", "a10g", 22888), ("nvidia-a100-40gb", "a100", 40960),
                      ("nvidia-a100-80gb", "a100", 81920), ("nvidia-h100-80gb", "h100", 81920),
                      ("nvidia-h200", "h200", 144384), ("nvidia-l40s", "l40s", 45776),
                      ("nvidia-b200", "b200", 183359), ("b300", "b300", 275040),
                      ("nvidia-rtx-pro-6000", "rtx-pro-server-6000", 98304))],
    "gke": [(gpu, {"cloud.google.com/gke-accelerator": value}) for gpu, value in (
        ("nvidia-t4", "nvidia-tesla-t4"), ("nvidia-l4", "nvidia-l4"),
        ("nvidia-a100-40gb", "nvidia-tesla-a100"), ("nvidia-a100-80gb", "nvidia-a100-80gb"),
        ("nvidia-h100-80gb", "nvidia-h100-80gb"), ("h100-mega", "nvidia-h100-mega-80gb"),
        ("nvidia-h200", "nvidia-h200-141gb"), ("nvidia-b200", "nvidia-b200"),
        ("nvidia-gb200", "nvidia-gb200"), ("nvidia-rtx-pro-6000", "nvidia-rtx-pro-6000"))],
    "nvidia-gfd": [(gpu, {"nvidia.com/gpu.product": value}) for gpu, value in (
        ("nvidia-t4", "Tesla-T4"), ("nvidia-l4", "NVIDIA-L4"), ("nvidia-a10g", "NVIDIA-A10G"),
        ("nvidia-a100-40gb", "NVIDIA-A100-SXM4-40GB"),
        ("nvidia-a100-80gb", "NVIDIA-A100-SXM4-80GB"),
        ("nvidia-h100-80gb", "NVIDIA-H100-80GB-HBM3"), ("nvidia-h200", "NVIDIA-H200"),
        ("nvidia-l40s", "NVIDIA-L40S"), ("nvidia-h100-80gb-pcie", "NVIDIA-H100-PCIe"),
        ("nvidia-b200", "NVIDIA-B200"), ("nvidia-gb200", "NVIDIA-GB200"),
        ("nvidia-rtx-pro-6000", "NVIDIA-RTX-PRO-6000-Blackwell-Server-Edition"))],
}


def _accelerator_spec() -> str:
    """One vLLM per accelerator, one environment per convention (minus what it lacks)."""
    apis = "".join(f"    - name: {a.name}\n      vllm: {{model: org/m, gpu: {{count: 1, "
                   f"accelerator: {a.name}, resource: {a.resource}}}}}\n" for a in TABLE)
    envs = ""
    for convention in FLEETS:
        missing = [n for n, c in ACCELERATORS.items() if convention not in c]
        deletes = "".join(f"          - {{name: {n}, $patch: delete}}\n" for n in missing)
        envs += (f"    - name: {convention}\n      patch:\n"
                 f"        cluster: {{gpuNodeLabels: {convention}}}\n")
        envs += f"        modelAPIs:\n{deletes}" if deletes else ""
    return ("apiVersion: modelapi.dev/v1alpha1\nkind: ModelStack\nmetadata: {name: gpus}\n"
            f"spec:\n  namespace: llm\n  modelAPIs:\n{apis}  environments:\n{envs}")


def test_every_accelerator_lands_only_on_its_gpu_in_every_convention(
        helm: Any, kustomize: Any, tmp_path: Path, control_plane: Any) -> None:
    """Every pod against every node of every fleet, judged by the real scheduler."""
    rendered = render_spec(_accelerator_spec(), tmp_path, helm, kustomize)
    for engine in ENGINES:
        pairs, expected = [], []
        for convention, fleet in FLEETS.items():
            pods = {w["metadata"]["name"].removeprefix("gpus-"): _pod(w)
                    for w in workloads(rendered[engine][convention])}
            offered = {n for n, c in ACCELERATORS.items() if convention in c}
            assert set(pods) == offered, convention
            nodes = [(gpu, node(f"{engine}-{convention}-{i}", labels, (GPU_TAINT,), 8))
                     for i, (gpu, labels) in enumerate(fleet)]
            for accelerator, pod in pods.items():
                for gpu, candidate in nodes:
                    pairs.append((pod, candidate))
                    expected.append((convention, accelerator, gpu, gpu == accelerator))
        verdicts = pods_fit(control_plane, pairs)
        wrong = [(case, reasons) for case, reasons in zip(expected, verdicts, strict=True)
                 if case[3] != (reasons == [])]
        assert wrong == [], (engine, wrong[:5])


# --- item 17: shared memory and Ollama -------------------------------------------------------


def _gib(quantity: str) -> float:
    number, unit = re.match(r"^([0-9.]+)(Gi|Mi)$", quantity).groups()  # type: ignore[union-attr]
    return float(number) * (1 if unit == "Gi" else 1 / 1024)


@pytest.mark.parametrize("engine", ENGINES)
def test_shared_memory_grows_with_tensor_parallelism(rendered: Rendered, engine: str) -> None:
    """NCCL and vLLM's workers exchange tensors through /dev/shm; a memory-backed emptyDir is
    charged to the container's memory limit, so the limit grows with it."""
    objects = {w["metadata"]["name"]: _pod(w) for w in workloads(rendered[engine]["prod"])}
    sizes = {}
    for name in ("fit-big", "fit-single"):
        shm = next(v for v in objects[name]["volumes"] if v["name"] == "dshm")["emptyDir"]
        assert shm["medium"] == "Memory"
        sizes[name] = _gib(shm["sizeLimit"])
        limit = _gib(objects[name]["containers"][0]["resources"]["limits"]["memory"])
        assert limit - sizes[name] >= 30, name  # the server's own memory is left intact
    assert sizes == {"fit-big": 16, "fit-single": 2}


@pytest.mark.parametrize("engine", ENGINES)
def test_ollama_runs_as_the_shared_non_root_uid(rendered: Rendered, engine: str) -> None:
    pods = {w["metadata"]["name"]: _pod(w) for w in workloads(rendered[engine]["prod"])}
    ollama = pods["fit-local"]
    assert ollama["securityContext"]["runAsUser"] == \
        pods["fit-gateway"]["securityContext"]["runAsUser"] == 65532
    assert ollama["securityContext"]["runAsNonRoot"] is True
    server = ollama["containers"][0]
    assert server["securityContext"]["readOnlyRootFilesystem"] is True
    home = next(e["value"] for e in server["env"] if e["name"] == "HOME")
    # Ollama keeps keys and models under $HOME/.ollama: that must be a writable volume
    writable = [m["mountPath"] for m in server["volumeMounts"] if not m.get("readOnly")]
    assert f"{home}/.ollama" in writable
    claim = next(v for v in ollama["volumes"] if v["name"] == "data")
    assert claim["persistentVolumeClaim"]["claimName"] == "fit-local-cache"
    assert ollama["securityContext"]["fsGroup"] == 65532  # the claim is writable by that UID


def _fake_tools(folder: Path, cached: list[str]) -> dict[str, str]:
    """`ollama` with the given models cached and no registry; `sleep` that returns at once;
    `touch` that records the file it would create."""
    bin_dir = folder / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "ollama").write_text(
        "#!/bin/sh\n"
        'case "$1" in\n'
        "  list) exit 0 ;;\n"
        f'  show) for m in {" ".join(cached)}; do [ "$m" = "$2" ] && exit 0; done\n'
        '        echo "Error: model \'$2\' not found" >&2; exit 1 ;;\n'
        '  pull) echo "Error: pull model manifest: dial tcp: lookup registry.ollama.ai: '
        'no such host" >&2; exit 1 ;;\n'
        "esac\nexit 2\n")
    (bin_dir / "sleep").write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "touch").write_text(f'#!/bin/sh\necho "$1" >> {folder}/touched\n')
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}


def _run_puller(rendered: Rendered, engine: str, folder: Path, cached: list[str]) -> str:
    ollama = _pod(by_kind(rendered[engine]["prod"], "Deployment")["fit-local"])
    puller = next(c for c in ollama["containers"] if c["name"] == "model-puller")
    env = _fake_tools(folder, cached)
    with contextlib.suppress(subprocess.TimeoutExpired):  # still retrying the pull
        subprocess.run([*puller["command"], *puller["args"]], env=env, timeout=2,
                       capture_output=True, check=False)
    touched = folder / "touched"
    return touched.read_text() if touched.exists() else ""


@pytest.mark.parametrize("engine", ENGINES)
def test_ollama_puller_is_ready_with_a_cached_model_and_no_registry(
        rendered: Rendered, engine: str, tmp_path: Path) -> None:
    ollama = _pod(by_kind(rendered[engine]["prod"], "Deployment")["fit-local"])
    puller = next(c for c in ollama["containers"] if c["name"] == "model-puller")
    ready_file = puller["readinessProbe"]["exec"]["command"][-1]
    assert _run_puller(rendered, engine, tmp_path / "cached", ["smollm2:135m"]) == \
        f"{ready_file}\n"
    # a model that is not there yet still keeps the pod unready until it is pulled
    assert _run_puller(rendered, engine, tmp_path / "missing", []) == ""
