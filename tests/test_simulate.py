"""`simulate` and `verify --server`, as users run them, against real control planes:
`simulate` starts its own; `verify --server` dry-runs against the test session's one, where
a ValidatingAdmissionPolicy refuses what a platform team's policy would."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import REPO, SHARED

EXAMPLE = REPO / "examples" / "agentic.yaml"


def _run(*args: str, env: dict[str, str] | None = None, timeout: float = 600
         ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "modelapi_compile", *args], capture_output=True,
                          text=True, timeout=timeout, env=env, check=False)


@pytest.fixture
def binaries(control_plane: Any) -> None:
    """simulate needs the same binaries the session's control plane runs on."""


def test_simulate_places_every_pod_on_a_node_of_its_gpu(binaries: None) -> None:
    done = _run("simulate", "-f", str(EXAMPLE), "--env", "prod", "--crds",
                str(SHARED / "crds-yaml"), "--format", "json")
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert set(report) >= {"rejected", "pods", "pending"}
    assert report["rejected"] == [] and report["pending"] == []
    vllm = [p for p in report["pods"] if "vllm-hosted" in p["pod"]]
    assert vllm and all(p["accelerator"] == "nvidia.com/gpu.product=NVIDIA-L4" for p in vllm)
    assert "starting kube-apiserver" in done.stderr  # progress goes to stderr


def test_simulate_schedules_leader_worker_set_groups(binaries: None) -> None:
    """Issue 25: simulate has no LWS controller either; it makes the groups' StatefulSets as
    the controller would, and every pod of every group lands on an H100 node."""
    spec = REPO / "tests" / "cases" / "valid" / "frontier-serving.yaml"
    done = _run("simulate", "-f", str(spec), "--env", "prod", "--crds",
                str(SHARED / "crds-yaml"), "--format", "json")
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["rejected"] == [] and report["pending"] == []
    group = sorted(p["pod"] for p in report["pods"] if "frontier-deepseek" in p["pod"])
    assert group == ["frontier/frontier-deepseek-0", "frontier/frontier-deepseek-0-1"]
    assert all(p["accelerator"].endswith("=nvidia-h100-80gb") for p in report["pods"]
               if "frontier-deepseek" in p["pod"])
    nodes = {p["node"] for p in report["pods"] if "frontier-deepseek" in p["pod"]}
    assert len(nodes) == 2  # 8 GPUs each, on 8-GPU nodes: one node per pod of the group
    assert "making its groups' StatefulSets" in done.stderr


def test_simulate_says_why_a_pod_stays_pending(binaries: None, tmp_path: Path) -> None:
    pools = tmp_path / "pools.yaml"
    pools.write_text("nodePools:\n  - name: cpu\n    count: 2\n"
                     "    allocatable: {cpu: '16', memory: 64Gi, pods: '110'}\n")
    done = _run("simulate", "-f", str(EXAMPLE), "--env", "prod", "--nodes", str(pools),
                "--crds", str(SHARED / "crds-yaml"), "--timeout", "60")
    assert done.returncode == 1, done.stdout + done.stderr
    pending = [line for line in done.stdout.splitlines()
               if line.startswith("pending ") and "vllm-hosted" in line]
    assert pending, done.stdout
    assert "node(s) didn't match Pod's node affinity/selector" in pending[0] or \
        "Insufficient nvidia.com/gpu" in pending[0]
    # Every other pod runs: only the GPU model lacks a node.
    assert [line for line in done.stdout.splitlines() if line.startswith("pending ")
            and "vllm-hosted" not in line] == []


def test_simulate_locates_what_the_server_refuses_on_upgrade(binaries: None,
                                                              tmp_path: Path) -> None:
    """A StatefulSet's claim template cannot change: the API server refuses the update, and
    the refusal is reported at the modelAPI that owns it."""
    old = tmp_path / "old.yaml"
    new = tmp_path / "new.yaml"
    text = EXAMPLE.read_text()
    assert "cache: {size: 50Gi" in text
    old.write_text(text.replace("      replicas: 1\n", "      replicas: 2\n", 1))
    new.write_text(old.read_text().replace("cache: {size: 50Gi", "cache: {size: 80Gi"))
    done = _run("simulate", "-f", str(new), "--env", "prod", "--upgrade-from", str(old),
                "--crds", str(SHARED / "crds-yaml"), "--format", "json")
    assert done.returncode == 1, done.stdout + done.stderr
    rejected = json.loads(done.stdout)["rejected"]
    assert any("StatefulSet" in r["object"] and "volumeClaimTemplates" in r["message"]
               for r in rejected)
    line = next(i for i, text in enumerate(new.read_text().splitlines(), 1)
                if "- name: vllm-hosted" in text)
    assert {r["line"] for r in rejected if "StatefulSet" in r["object"]} == {line}


def test_missing_binaries_name_both_ways_to_get_them(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items()
           if k not in ("KUBEBUILDER_ASSETS", "MODELAPI_COMPILE_TOOLS")}
    env.update(MODELAPI_COMPILE_CACHE=str(tmp_path), PATH=str(Path(sys.executable).parent))
    done = _run("simulate", "-f", str(EXAMPLE), "--env", "dev", env=env)
    assert done.returncode == 1
    assert "tools/build.sh" in done.stderr and "KUBEBUILDER_ASSETS" in done.stderr
    assert "Traceback" not in done.stderr and done.stderr.count("\n") == 1


def _descendants_alive(folder_hint: str) -> list[int]:
    alive = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if folder_hint in command:
                alive.append(int(entry.name))
    return alive


def test_sigterm_stops_everything_simulate_started(binaries: None, tmp_path: Path) -> None:
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    process = subprocess.Popen([sys.executable, "-m", "modelapi_compile", "simulate", "-f",
                                str(EXAMPLE), "--env", "dev"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=env)
    assert process.stderr is not None
    deadline = time.monotonic() + 180
    for line in process.stderr:
        if "starting kube-controller-manager" in line or time.monotonic() > deadline:
            break
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 143
    time.sleep(0.5)
    assert _descendants_alive(str(tmp_path)) == []
    assert list(tmp_path.glob("modelapi-cp-*")) == []



def test_signals_during_a_start_wait_until_the_process_is_recorded() -> None:
    """The SIGTERM test above raced Popen: a signal inside it leaves a started child that
    nothing records. Inside the deferral the handler is not run; at its end it is, once."""
    from modelapi_compile.cluster.local import _signals_deferred

    seen: list[int] = []

    def record(number: int, _frame: object) -> None:
        seen.append(number)

    previous = signal.signal(signal.SIGTERM, record)
    try:
        with _signals_deferred():
            signal.raise_signal(signal.SIGTERM)
            signal.raise_signal(signal.SIGTERM)
            assert seen == []
        assert seen == [signal.SIGTERM]
        assert signal.getsignal(signal.SIGTERM) is record
    finally:
        signal.signal(signal.SIGTERM, previous)

POLICY = {
    "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
    "metadata": {"name": "at-most-two-replicas"},
    "spec": {"failurePolicy": "Fail",
             "matchConstraints": {"resourceRules": [{
                 "apiGroups": ["apps"], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"],
                 "resources": ["deployments"]}]},
             "validations": [{"expression": "!has(object.spec.replicas) || "
                                            "object.spec.replicas <= 2",
                              "message": "at most 2 replicas in this cluster"}]},
}
BINDING = {
    "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
    "metadata": {"name": "at-most-two-replicas"},
    "spec": {"policyName": "at-most-two-replicas", "validationActions": ["Deny"],
             "matchResources": {"namespaceSelector": {"matchLabels": {"policy-test": "yes"}}}},
}


def test_verify_server_reports_an_admission_policy_at_the_spec_line(control_plane: Any) -> None:
    client = control_plane.client
    client.apply(POLICY, manager="test")
    client.apply(BINDING, manager="test")
    for namespace in ("agentic", "agentic-dev"):
        client.apply({"apiVersion": "v1", "kind": "Namespace",
                      "metadata": {"name": namespace, "labels": {"policy-test": "yes"}}},
                     manager="test")
    try:
        kubeconfig = str(control_plane.kubeconfig)
        # The policy takes effect once the API server has loaded it.
        deadline = time.monotonic() + 30
        while True:
            done = _run("verify", "--server", "-f", str(EXAMPLE), "--env", "prod",
                        "--kubeconfig", kubeconfig)
            if done.returncode == 1 or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert done.returncode == 1, done.stdout + done.stderr
        line = next(i for i, text in enumerate(EXAMPLE.read_text().splitlines(), 1)
                    if "- name: simple-math-agent" in text)
        problems = [p for p in done.stderr.splitlines() if ": error: " in p]
        assert len(problems) == 1, done.stderr
        assert problems[0].startswith(f"{EXAMPLE}:{line}:")
        assert "at most 2 replicas in this cluster" in problems[0]
        assert "spec.agents[0]" in problems[0]
        ok = _run("verify", "--server", "-f", str(EXAMPLE), "--env", "dev",
                  "--kubeconfig", kubeconfig)
        assert ok.returncode == 0, ok.stdout + ok.stderr
        assert "admitted" in ok.stdout
        # A dry run changes nothing.
        assert client.list("apps/v1", "Deployment", "agentic-dev") == []
    finally:
        client.delete(BINDING)
        client.delete(POLICY)
        for namespace in ("agentic", "agentic-dev"):
            client.delete({"apiVersion": "v1", "kind": "Namespace",
                           "metadata": {"name": namespace}})


def test_a_kind_switch_converges_as_argocd_syncs_it(binaries: None, tmp_path: Path) -> None:
    """replicas 1 -> 2 on a ReadWriteOnce cache: the Deployment becomes a StatefulSet. Applied
    as Argo CD syncs (server-side apply of the new objects, prune of the ones that left,
    Prune=false kept: gitops-engine's sync with prune), the old workload goes, the new
    claims bind and every pod runs; the old cache claim stays."""
    old = tmp_path / "old.yaml"
    new = tmp_path / "new.yaml"
    old.write_text(EXAMPLE.read_text())
    new.write_text(EXAMPLE.read_text().replace("      replicas: 1\n", "      replicas: 2\n", 1))
    done = _run("simulate", "-f", str(new), "--env", "prod", "--upgrade-from", str(old),
                "--crds", str(SHARED / "crds-yaml"), "--format", "json")
    assert done.returncode == 0, done.stdout + done.stderr
    pods = [p["pod"] for p in json.loads(done.stdout)["pods"] if "vllm-hosted" in p["pod"]]
    assert sorted(pods) == ["agentic/agentic-vllm-hosted-0", "agentic/agentic-vllm-hosted-1"]
