"""The accelerator table: today's GPUs, common spellings read as the table's names, and
suggestions that never name a different GPU."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from modelapi_compile.cli import cli
from modelapi_compile.resolve.stack import resolve_environments
from modelapi_compile.spec.accelerators import ACCELERATORS, BY_NAME, TABLE, canonical, suggestion
from modelapi_compile.spec.validate import load_spec


def test_the_table_covers_todays_gpus() -> None:
    assert {"nvidia-l4", "nvidia-l40s", "nvidia-a10g", "nvidia-a100-40gb", "nvidia-a100-80gb",
            "nvidia-h100-80gb", "nvidia-h100-80gb-pcie", "nvidia-h200", "nvidia-b200",
            "nvidia-gb200", "nvidia-rtx-pro-6000", "amd-mi300x"} <= set(BY_NAME)
    assert BY_NAME["amd-mi300x"].resource == "amd.com/gpu"
    assert {a.resource for a in TABLE if a.name != "amd-mi300x"} == {"nvidia.com/gpu"}
    # every convention's labels select one GPU only
    for convention in ("nvidia-gfd", "gke", "karpenter"):
        selectors = [tuple(sorted(c[convention].items())) for c in ACCELERATORS.values()
                     if convention in c]
        assert len(selectors) == len(set(selectors)), convention


@pytest.mark.parametrize("written, meant", [
    ("nvidia-h100", "nvidia-h100-80gb"), ("nvidia-h100-pcie", "nvidia-h100-80gb-pcie"),
    ("nvidia-h200-141gb", "nvidia-h200"), ("nvidia-tesla-a100", "nvidia-a100-40gb"),
    ("nvidia-tesla-t4", "nvidia-t4"), ("amd-instinct-mi300x", "amd-mi300x"),
    ("NVIDIA-H100", "nvidia-h100-80gb")])
def test_common_spellings_are_aliases(written: str, meant: str) -> None:
    assert canonical(written) == meant


def _typos(name: str) -> list[str]:
    """A dropped, doubled or swapped character, and a wrong vendor prefix."""
    cut = [name[:i] + name[i + 1:] for i in range(len(name))]
    doubled = [name[:i] + name[i] + name[i:] for i in range(len(name))]
    swapped = [name[:i] + name[i + 1] + name[i] + name[i + 2:] for i in range(len(name) - 1)]
    return [*cut, *doubled, *swapped, name.replace("nvidia-", "nvida-")]


@pytest.mark.parametrize("accelerator", TABLE, ids=lambda a: a.name)
def test_a_suggestion_never_names_a_different_gpu(accelerator: object) -> None:
    family = {a.name: a.family for a in TABLE}
    for typo in _typos(accelerator.name):  # type: ignore[attr-defined]
        if canonical(typo) in BY_NAME:
            continue
        hint = suggestion(typo)
        if hint.startswith("known:"):
            continue  # no guess, the whole list
        named = [n for n in BY_NAME if f"'{n}'" in hint or f" {n}," in hint
                 or hint.endswith(f" {n}?")]
        assert named, (typo, hint)
        # only GPUs whose model the name spells out (`nvidiag-b200`, a typo of the GB200,
        # does spell a B200)
        words = "-" + "-".join(re.split(r"[^a-z0-9]+", typo.lower())) + "-"
        assert all(f"-{family[n]}-" in words for n in named), (typo, hint)


def test_h100_typos_and_unknown_sizes(tmp_path: Path) -> None:
    for typo in ("nvidia-h10", "nvidia-h1000", "nvidia-h100x"):
        assert not suggestion(typo).startswith("did you mean"), typo
    assert suggestion("nvidia-h100-94gb").startswith("known:")  # an H100 NVL is not in it
    assert suggestion("nvidia-a100") == "did you mean one of nvidia-a100-40gb, nvidia-a100-80gb?"


def _spec(tmp_path: Path, gpu: str, convention: str = "nvidia-gfd") -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(f"""\
apiVersion: modelapi.dev/v1alpha1
kind: ModelStack
metadata: {{name: demo}}
spec:
  namespace: demo
  cluster: {{gpuNodeLabels: {convention}}}
  modelAPIs:
    - name: m
      vllm: {{model: org/m, gpu: {gpu}}}
""")
    return path


def test_an_alias_selects_the_gpu_it_means(tmp_path: Path) -> None:
    spec = _spec(tmp_path, "{count: 1, accelerator: nvidia-h100}", "gke")
    env = next(iter(resolve_environments(load_spec(str(spec)))))
    selector = env.values.workloads["m"].node_selector
    assert selector["cloud.google.com/gke-accelerator"] == "nvidia-h100-80gb"


def test_mi300x_is_an_amd_device(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["validate", "-f", str(_spec(
        tmp_path, "{count: 1, accelerator: amd-mi300x}"))])
    assert result.exit_code == 1
    assert "'amd-mi300x' is requested as amd.com/gpu, not nvidia.com/gpu" in result.output
    assert "set gpu.resource: amd.com/gpu" in result.output
    spec = _spec(tmp_path, "{count: 8, accelerator: amd-mi300x, resource: amd.com/gpu}")
    env = next(iter(resolve_environments(load_spec(str(spec)))))
    workload = env.values.workloads["m"]
    assert workload.node_selector["amd.com/gpu.product-name"] == "AMD_Instinct_MI300X_OAM"
    assert workload.resources["limits"]["amd.com/gpu"] in (8, "8")


def test_a_gpu_a_convention_lacks_is_refused_with_what_it_offers(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["validate", "-f", str(_spec(
        tmp_path, "{count: 1, accelerator: nvidia-l40s}", "gke"))])
    assert result.exit_code == 1
    assert "'nvidia-l40s' is not offered under cluster.gpuNodeLabels: gke" in result.output
    assert "nvidia-b200" in result.output


def test_explain_shows_the_labels_and_the_table(tmp_path: Path) -> None:
    spec = _spec(tmp_path, "{count: 1, accelerator: nvidia-h100}", "karpenter")
    result = CliRunner().invoke(cli, ["explain", "-f", str(spec),
                                      "modelAPIs[m].vllm.gpu.accelerator"])
    assert result.exit_code == 0, result.output
    assert ("node labels (cluster.gpuNodeLabels: karpenter): karpenter.k8s.aws/"
            "instance-gpu-name=h100, karpenter.k8s.aws/instance-gpu-memory=81920") in result.output
    for accelerator in TABLE:
        assert f"    {accelerator.name}: {accelerator.gpu}" in result.output


def test_simulated_node_pools_follow_the_table(tmp_path: Path) -> None:
    """cluster/nodes.py labels each fake GPU pool from the same table, and an AMD pool
    carries AMD's resource and taint."""
    from modelapi_compile.cluster.nodes import preset_pools
    from modelapi_compile.emit.manifests import build_objects

    spec = _spec(tmp_path, "{count: 8, accelerator: amd-mi300x, resource: amd.com/gpu}")
    env = next(iter(resolve_environments(load_spec(str(spec)))))
    pools = {p.name: p for p in preset_pools("eks", build_objects(env))}
    amd = pools["eks-amd-mi300x"]
    assert amd.labels["amd.com/gpu.product-name"] == "AMD_Instinct_MI300X_OAM"
    assert amd.allocatable["amd.com/gpu"] == "8"
    assert [t["key"] for t in amd.taints] == ["amd.com/gpu"]
    spec = _spec(tmp_path, "{count: 1, accelerator: nvidia-l40s}", "karpenter")
    env = next(iter(resolve_environments(load_spec(str(spec)))))
    pools = {p.name: p for p in preset_pools("karpenter", build_objects(env))}
    assert pools["karpenter-nvidia-l40s"].labels["karpenter.k8s.aws/instance-gpu-name"] == "l40s"
