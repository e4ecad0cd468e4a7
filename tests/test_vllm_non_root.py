"""vLLM without root, as the kubelet and Pod Security admission see the rendered pods: the
shared non-root UID, a read-only root filesystem, a namespace that enforces `restricted`,
and every place the pinned vLLM image writes on a writable volume; `runAsRoot` is the one
documented way back to the image's user."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

import pytest

from cluster_models import by_kind, workloads
from conftest import ENGINES, render_spec
from modelapi_compile.resolve.pod_security import ROOT_OPT_OUT, level_violations, violations

SPEC = """\
apiVersion: modelapi.dev/v1alpha1
kind: ModelStack
metadata: {{name: nr}}
spec:
  namespace: llm
  modelAPIs:
    - name: gpu
      vllm:
        model: Qwen/Qwen2.5-7B-Instruct
        gpu: {{count: 2}}
    - name: sharded
      vllm:
        model: Qwen/Qwen2.5-0.5B-Instruct
        replicas: 2
        gpu: {{count: 1}}
    - name: cpu
      vllm:
        model: Qwen/Qwen2.5-0.5B-Instruct
        gpu: {{count: 0}}{opt_out}
"""


def _writes(env: dict[str, str]) -> dict[str, str]:
    """Where the pinned vLLM image writes at run time, resolved the way each writer resolves
    it (vLLM's envs.py; huggingface_hub; Triton, PyTorch Inductor, numba, FlashInfer and
    CUDA defaults; tempfile): an unset HOME is "/" for a UID the image does not know."""
    home = env.get("HOME", "/")
    cache = env.get("XDG_CACHE_HOME", f"{home}/.cache")
    config = env.get("XDG_CONFIG_HOME", f"{home}/.config")
    tmp = env.get("TMPDIR", "/tmp")
    return {
        "VLLM_CACHE_ROOT": env.get("VLLM_CACHE_ROOT", f"{cache}/vllm"),
        "VLLM_CONFIG_ROOT": env.get("VLLM_CONFIG_ROOT", f"{config}/vllm"),
        "VLLM_RPC_BASE_PATH": env.get("VLLM_RPC_BASE_PATH", tmp),
        "HF_HOME": env.get("HF_HOME", f"{cache}/huggingface"),
        "TRITON_CACHE_DIR": env.get("TRITON_CACHE_DIR", f"{home}/.triton/cache"),
        "TORCHINDUCTOR_CACHE_DIR": env.get("TORCHINDUCTOR_CACHE_DIR",
                                           f"{tmp}/torchinductor_root"),
        "NUMBA_CACHE_DIR": env.get("NUMBA_CACHE_DIR", "/usr/local/lib/python3.12"),
        "flashinfer JIT": env.get("FLASHINFER_WORKSPACE_BASE", home) + "/.cache/flashinfer",
        "CUDA_CACHE_PATH": env.get("CUDA_CACHE_PATH", f"{home}/.nv/ComputeCache"),
        "tempfile": tmp,
        "NCCL shared memory": "/dev/shm",
    }


def _writable_mounts(workload: dict[str, Any]) -> list[PurePosixPath]:
    pod = workload["spec"]["template"]["spec"]
    writable = {v["name"] for v in pod.get("volumes", [])
                if "emptyDir" in v or ("persistentVolumeClaim" in v
                                       and not v["persistentVolumeClaim"].get("readOnly"))}
    writable |= {t["metadata"]["name"]
                 for t in workload["spec"].get("volumeClaimTemplates", [])}
    container = pod["containers"][0]
    return [PurePosixPath(m["mountPath"]) for m in container.get("volumeMounts", [])
            if m["name"] in writable and not m.get("readOnly")]


def _vllm_workloads(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [w for w in workloads(objects)
            if w["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"]
            == "vllm"]


@pytest.fixture(scope="module")
def rendered(helm: Any, kustomize: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    return {opt_out: render_spec(
        SPEC.format(opt_out="\n        runAsRoot: true" if opt_out else ""),
        tmp_path_factory.mktemp("opt-out" if opt_out else "non-root"), helm, kustomize)
        for opt_out in (False, True)}


@pytest.mark.parametrize("engine", ENGINES)
def test_vllm_runs_as_the_shared_uid_and_writes_only_to_volumes(rendered: Any,
                                                                engine: str) -> None:
    objects = rendered[False][engine]["default"]
    found = _vllm_workloads(objects)
    assert {w["kind"] for w in found} == {"Deployment", "StatefulSet"}
    for workload in found:
        name = workload["metadata"]["name"]
        pod = workload["spec"]["template"]["spec"]
        assert level_violations(pod, "restricted") == [], name
        assert pod["securityContext"]["runAsUser"] == 65532, name
        container = pod["containers"][0]
        assert container["securityContext"]["readOnlyRootFilesystem"] is True, name
        env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
        mounts = _writable_mounts(workload)
        for writer, path in _writes(env).items():
            assert any(PurePosixPath(path).is_relative_to(m) for m in mounts), (
                name, writer, path, mounts)


def test_the_namespace_enforces_restricted_with_vllm(rendered: Any) -> None:
    for opt_out, level in ((False, "restricted"), (True, "baseline")):
        objects = rendered[opt_out]["kustomize"]["default"]
        labels = by_kind(objects, "Namespace")["llm"]["metadata"]["labels"]
        assert labels["pod-security.kubernetes.io/enforce"] == level
        for workload in workloads(objects):
            assert level_violations(workload["spec"]["template"]["spec"], level) == []


@pytest.mark.parametrize("engine", ENGINES)
def test_run_as_root_keeps_the_image_user_and_every_other_rule(rendered: Any,
                                                               engine: str) -> None:
    by_name = {w["metadata"]["name"]: w for w in _vllm_workloads(
        rendered[True][engine]["default"])}
    root = by_name["nr-cpu"]["spec"]["template"]["spec"]
    assert "runAsUser" not in root["securityContext"]
    assert "runAsNonRoot" not in root["securityContext"]
    assert root["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is False
    assert violations(root)  # not restricted...
    assert violations(root, ROOT_OPT_OUT) == []  # ...but for the user only
    # the models that did not opt out stay non-root in the same namespace
    assert by_name["nr-gpu"]["spec"]["template"]["spec"]["securityContext"][
        "runAsNonRoot"] is True

