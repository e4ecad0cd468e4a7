"""The accelerator table: each vendor-neutral GPU name, its common spellings, its device
resource, and the node labels that select exactly that GPU under each labelling convention
(`cluster.gpuNodeLabels`). A convention missing from an entry does not offer that GPU.

Label values, as each convention publishes them:
- `nvidia-gfd`: NVIDIA GPU feature discovery's `nvidia.com/gpu.product` (the GPU's name as
  the driver reports it, spaces as dashes), on any cluster that runs the GPU operator or
  GFD (EKS managed node groups, AKS, on-premises); AMD GPUs carry the AMD node labeller's
  `amd.com/gpu.product-name` instead.
- `gke`: GKE's `cloud.google.com/gke-accelerator` (the GPU type of the node pool).
- `karpenter`: Karpenter's `karpenter.k8s.aws/instance-gpu-name` from EC2, plus the GPU
  memory in MiB (`instance-gpu-memory`), since a name such as `a100` covers two memory
  sizes (p4d 40 GB, p4de 80 GB) and `l4` also the fractional g6f. Values as Karpenter's
  instance-type reference lists them (aws/karpenter-provider-aws,
  website/content/en/preview/reference/instance-types.md).
AKS labels no GPU model of its own: its GPU pools are selected through GFD's labels.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from ..problems import Path, Problem
from .loader import Positions

NVIDIA = "nvidia.com/gpu"
AMD = "amd.com/gpu"
_GFD = "nvidia.com/gpu.product"
_AMD_LABELLER = "amd.com/gpu.product-name"
_GKE = "cloud.google.com/gke-accelerator"
_KARPENTER_NAME = "karpenter.k8s.aws/instance-gpu-name"
_KARPENTER_MEMORY = "karpenter.k8s.aws/instance-gpu-memory"
CONVENTIONS = ("nvidia-gfd", "gke", "karpenter")


@dataclass(frozen=True)
class Accelerator:
    name: str  # the spec's name for it
    gpu: str  # what a person calls it
    family: str  # the GPU model; a suggestion never leaves it
    aliases: tuple[str, ...] = ()
    resource: str = NVIDIA
    labels: dict[str, dict[str, str]] = field(default_factory=dict)  # convention -> labels


def _gfd(product: str) -> dict[str, str]:
    return {_GFD: product}


def _gke(value: str) -> dict[str, str]:
    return {_GKE: value}


def _karpenter(name: str, memory_mib: int) -> dict[str, str]:
    return {_KARPENTER_NAME: name, _KARPENTER_MEMORY: str(memory_mib)}


TABLE: tuple[Accelerator, ...] = (
    Accelerator("nvidia-t4", "NVIDIA T4 16 GB", "t4", ("nvidia-tesla-t4",), labels={
        "nvidia-gfd": _gfd("Tesla-T4"), "gke": _gke("nvidia-tesla-t4"),
        "karpenter": _karpenter("t4", 16384)}),
    Accelerator("nvidia-l4", "NVIDIA L4 24 GB", "l4", labels={
        "nvidia-gfd": _gfd("NVIDIA-L4"), "gke": _gke("nvidia-l4"),
        "karpenter": _karpenter("l4", 22888)}),
    Accelerator("nvidia-l40s", "NVIDIA L40S 48 GB", "l40s", labels={
        "nvidia-gfd": _gfd("NVIDIA-L40S"), "karpenter": _karpenter("l40s", 45776)}),
    Accelerator("nvidia-a10g", "NVIDIA A10G 24 GB", "a10g", labels={
        "nvidia-gfd": _gfd("NVIDIA-A10G"), "karpenter": _karpenter("a10g", 22888)}),
    Accelerator("nvidia-a100-40gb", "NVIDIA A100 40 GB (SXM4)", "a100",
                ("nvidia-tesla-a100", "nvidia-a100-sxm4-40gb"), labels={
                    "nvidia-gfd": _gfd("NVIDIA-A100-SXM4-40GB"),
                    "gke": _gke("nvidia-tesla-a100"), "karpenter": _karpenter("a100", 40960)}),
    Accelerator("nvidia-a100-80gb", "NVIDIA A100 80 GB (SXM4)", "a100",
                ("nvidia-a100-sxm4-80gb",), labels={
                    "nvidia-gfd": _gfd("NVIDIA-A100-SXM4-80GB"),
                    "gke": _gke("nvidia-a100-80gb"), "karpenter": _karpenter("a100", 81920)}),
    Accelerator("nvidia-h100-80gb", "NVIDIA H100 80 GB SXM (HBM3)", "h100",
                ("nvidia-h100", "nvidia-h100-sxm", "nvidia-h100-80gb-sxm",
                 "nvidia-h100-80gb-hbm3"), labels={
                    "nvidia-gfd": _gfd("NVIDIA-H100-80GB-HBM3"),
                    "gke": _gke("nvidia-h100-80gb"), "karpenter": _karpenter("h100", 81920)}),
    Accelerator("nvidia-h100-80gb-pcie", "NVIDIA H100 80 GB PCIe", "h100",
                ("nvidia-h100-pcie",), labels={"nvidia-gfd": _gfd("NVIDIA-H100-PCIe")}),
    Accelerator("nvidia-h200", "NVIDIA H200 141 GB", "h200", ("nvidia-h200-141gb",), labels={
        "nvidia-gfd": _gfd("NVIDIA-H200"), "gke": _gke("nvidia-h200-141gb"),
        "karpenter": _karpenter("h200", 144384)}),
    Accelerator("nvidia-b200", "NVIDIA B200 180 GB", "b200", labels={
        "nvidia-gfd": _gfd("NVIDIA-B200"), "gke": _gke("nvidia-b200"),
        "karpenter": _karpenter("b200", 183359)}),
    Accelerator("nvidia-gb200", "NVIDIA GB200 (Grace Blackwell, arm64 nodes)", "gb200",
                labels={"nvidia-gfd": _gfd("NVIDIA-GB200"), "gke": _gke("nvidia-gb200")}),
    Accelerator("nvidia-rtx-pro-6000", "NVIDIA RTX PRO 6000 Blackwell Server Edition 96 GB",
                "rtx-pro-6000", ("nvidia-rtx-pro-6000-blackwell",
                                 "nvidia-rtx-pro-6000-blackwell-server-edition"), labels={
                    "nvidia-gfd": _gfd("NVIDIA-RTX-PRO-6000-Blackwell-Server-Edition"),
                    "gke": _gke("nvidia-rtx-pro-6000"),
                    "karpenter": _karpenter("rtx-pro-server-6000", 98304)}),
    Accelerator("amd-mi300x", "AMD Instinct MI300X 192 GB", "mi300x", ("amd-instinct-mi300x",),
                resource=AMD, labels={"nvidia-gfd": {_AMD_LABELLER: "AMD_Instinct_MI300X_OAM"}}),
)

BY_NAME: dict[str, Accelerator] = {a.name: a for a in TABLE}
ALIASES: dict[str, str] = {alias: a.name for a in TABLE for alias in a.aliases}
# name -> convention -> the node labels that select it
ACCELERATORS: dict[str, dict[str, dict[str, str]]] = {a.name: a.labels for a in TABLE}


def canonical(name: str) -> str:
    """The table's name for a common spelling (`nvidia-h100` -> `nvidia-h100-80gb`); any
    other value unchanged (validation reports an unknown one)."""
    return ALIASES.get(name.lower(), name)


def suggestion(name: str) -> str:
    """What to write instead of an unknown name: only GPUs of the same model, memory and
    form factor as far as the name says them (a typo of an H100 never suggests an H200,
    nor `nvidia-h100-94gb` an 80 GB H100), else the whole list."""
    lowered = name.lower()
    words = [w for w in re.split(r"[^a-z0-9]+", lowered) if w]
    families = {a.family for a in TABLE}
    found = {"-".join(words[i:j]) for i in range(len(words))
             for j in range(i + 1, len(words) + 1)} & families
    details = [w for w in words if re.fullmatch(r"\d+gb|pcie|sxm\d*", w)]
    same = [a.name for a in TABLE if a.family in found
            and all(d in " ".join((a.name, *a.aliases)) for d in details)]
    if len(same) == 1:
        return f"did you mean '{same[0]}'?"
    if same:
        return "did you mean one of " + ", ".join(same) + "?"
    return "known: " + ", ".join(a.name for a in TABLE) + "."


def reference_markdown() -> str:
    """The accelerator table of the reference and of `explain`."""
    rows = ["| name | GPU | also written | resource | nvidia-gfd | gke | karpenter |",
            "|---|---|---|---|---|---|---|"]
    for a in TABLE:
        cells = [", ".join(f"`{k}={v}`" for k, v in a.labels[c].items()) if c in a.labels
                 else "—" for c in CONVENTIONS]
        aliases = ", ".join(f"`{alias}`" for alias in a.aliases) or "—"
        rows.append(f"| `{a.name}` | {a.gpu} | {aliases} | `{a.resource}` | "
                    + " | ".join(cells) + " |")
    return "\n".join(rows) + "\n"


def reference_text() -> str:
    """The table as plain lines for a terminal (`explain ... gpu.accelerator`)."""
    lines = []
    for a in TABLE:
        lines.append(f"  {a.name}: {a.gpu} ({a.resource})"
                     + (f"; also {', '.join(a.aliases)}" if a.aliases else ""))
        for convention in CONVENTIONS:
            labels = a.labels.get(convention)
            shown = ", ".join(f"{k}={v}" for k, v in labels.items()) if labels else "not offered"
            lines.append(f"    {convention}: {shown}")
    return "\n".join(lines) + "\n"


def accelerator_problems(name: str, resource: str, convention: str, at: Path,
                          positions: Positions) -> Iterator[Problem]:
    """An accelerator the table lacks, that the cluster's label convention does not offer,
    or whose device resource is not gpu.resource."""
    accelerator = BY_NAME.get(name)
    if accelerator is not None and accelerator.resource != resource:
        yield positions.problem((*at, "resource"),
                                f"'{name}' is requested as {accelerator.resource}, not {resource}",
                                f"set gpu.resource: {accelerator.resource}")
    if convention == "explicit":
        return
    if accelerator is None:
        yield positions.problem((*at, "accelerator"), f"unknown accelerator '{name}'",
                                suggestion(name) + " Otherwise set cluster.gpuNodeLabels: "
                                "explicit and gpu.nodeSelector")
    elif convention not in accelerator.labels:
        offered = [a for a, conventions in ACCELERATORS.items() if convention in conventions]
        yield positions.problem(
            (*at, "accelerator"), f"'{name}' is not offered under cluster.gpuNodeLabels: "
            f"{convention}", "choose one of " + ", ".join(offered)
            + "; or set cluster.gpuNodeLabels: explicit and gpu.nodeSelector")
