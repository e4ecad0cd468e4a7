"""Where vLLM reads weights from: the Hugging Face Hub (a repo id), an existing
PersistentVolumeClaim (`pvc://<claim>/<path>`, mounted read-only), or object storage
(`s3://`, `gs://`, streamed by vLLM's Run:ai Model Streamer loader); and LoRA adapters,
which vLLM loads from the Hub or a local path (so `pvc://` too, once mounted).

The rules here are reported at their line in the spec; workloads.py turns the same parsed
sources into volumes, mounts, arguments and environment.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from ..problems import Path, Problem
from ..spec.backends import MODEL_SCHEMES, Vllm
from ..spec.loader import Positions
from .pod_options import qualified_name

MOUNT_ROOT = "/mnt/models"  # claims are mounted read-only at <MOUNT_ROOT>/<claim>
_CLAIM = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9._-]{1,221}[a-z0-9]$")


@dataclass(frozen=True)
class ClaimPath:
    claim: str
    path: str  # inside the claim, no leading "/"

    @property
    def local(self) -> str:
        return f"{MOUNT_ROOT}/{self.claim}/{self.path}"


def claim_path(uri: str) -> ClaimPath | None:
    """`pvc://claim/some/dir` -> ClaimPath; None when it is not a well-formed pvc:// URI."""
    if not uri.startswith("pvc://"):
        return None
    claim, _, path = uri.removeprefix("pvc://").partition("/")
    parts = [p for p in path.split("/") if p]
    if (not _CLAIM.match(claim) or len(claim) > 253 or not parts
            or any(p in (".", "..") for p in parts)):
        return None
    return ClaimPath(claim, "/".join(parts))


def claims(vllm: Vllm) -> list[str]:
    """The claims the model and its adapters read, in order of first use."""
    found = [claim_path(vllm.model)] + [claim_path(a.source) for a in vllm.lora_adapters]
    return list(dict.fromkeys(c.claim for c in found if c))


def local_source(source: str) -> str:
    """What vLLM is given for a model or adapter source: a mounted path for pvc://."""
    found = claim_path(source)
    return found.local if found else source


def source_problems(vllm: Vllm, at: Path, positions: Positions) -> Iterator[Problem]:
    scheme = vllm.model_scheme
    model_at: Path = (*at, "model")
    if scheme is not None and scheme not in MODEL_SCHEMES:
        yield positions.problem(model_at, f"unknown model source '{scheme}://'",
                                "use a Hugging Face id, pvc://<claim>/<path>, s3://<bucket>/"
                                "<path> or gs://<bucket>/<path>")
        return
    if scheme == "pvc" and claim_path(vllm.model) is None:
        yield positions.problem(model_at, f"'{vllm.model}' is not pvc://<claim>/<path>",
                                "name an existing PersistentVolumeClaim and the model's "
                                "folder inside it, without '..'")
    if scheme in ("s3", "gs"):
        bucket, _, path = vllm.model.partition("://")[2].partition("/")
        if not _BUCKET.match(bucket) or not path.strip("/"):
            yield positions.problem(model_at, f"'{vllm.model}' is not {scheme}://<bucket>/"
                                    "<path>", "name the bucket and the model's folder in it")
    if scheme is not None and vllm.served_model_name is None:
        yield positions.problem(model_at, f"a model from {scheme}:// needs servedModelName",
                                "set servedModelName: the name clients send")
    yield from _storage_problems(vllm, scheme, (*at, "objectStorage"), positions)
    yield from _adapter_problems(vllm, at, positions)


def _storage_problems(vllm: Vllm, scheme: str | None, at: Path, positions: Positions
                      ) -> Iterator[Problem]:
    storage = vllm.object_storage
    if storage is None:
        return
    if scheme not in ("s3", "gs"):
        yield positions.problem(at, "objectStorage is for s3:// and gs:// models",
                                "remove it, or set model to s3://... or gs://...", key=True)
        return
    keys = (storage.access_key_secret, storage.secret_key_secret)
    if scheme == "s3" and (keys[0] is None) != (keys[1] is None):
        field = "secretKeySecret" if keys[1] is None else "accessKeySecret"
        yield positions.problem((*at, field), f"{field} is missing",
                                "set both accessKeySecret and secretKeySecret, or neither "
                                "for workload identity")
    misplaced = ([("credentialsFileSecret", storage.credentials_file_secret)] if scheme == "s3"
                 else [("accessKeySecret", keys[0]), ("secretKeySecret", keys[1]),
                       ("endpoint", storage.endpoint), ("region", storage.region)])
    for field, value in misplaced:
        if value is not None:
            yield positions.problem((*at, field), f"{field} does not apply to {scheme}://",
                                    "credentialsFileSecret is for gs://, the others for s3://",
                                    key=True)
    for key in storage.service_account_annotations:
        if not qualified_name(key):
            yield positions.problem((*at, "serviceAccountAnnotations", key),
                                    f"'{key}' is not an annotation key",
                                    "[prefix/]name, name at most 63 characters", key=True)


def _adapter_problems(vllm: Vllm, at: Path, positions: Positions) -> Iterator[Problem]:
    seen: dict[str, int] = {}
    for j, adapter in enumerate(vllm.lora_adapters):
        where: Path = (*at, "loraAdapters", j)
        if adapter.name == vllm.served_name:
            yield positions.problem((*where, "name"), f"'{adapter.name}' is the base model's "
                                    "name", "give the adapter a name of its own")
        elif adapter.name in seen:
            yield positions.problem((*where, "name"), f"duplicate adapter '{adapter.name}'",
                                    f"loraAdapters[{seen[adapter.name]}] already uses it")
        seen.setdefault(adapter.name, j)
        scheme, sep, _ = adapter.source.partition("://")
        if sep and scheme != "pvc":
            yield positions.problem((*where, "source"), f"vLLM does not load adapters from "
                                    f"{scheme}://", "use a Hugging Face repo id, "
                                    "pvc://<claim>/<path> or an absolute path")
        elif sep and claim_path(adapter.source) is None:
            yield positions.problem((*where, "source"),
                                    f"'{adapter.source}' is not pvc://<claim>/<path>",
                                    "name an existing claim and the adapter's folder")
    if not vllm.lora_adapters:
        for field in ("maxLoras", "maxLoraRank"):
            value = getattr(vllm.engine, "max_loras" if field == "maxLoras" else "max_lora_rank")
            if value is not None:
                yield positions.problem((*at, "engine", field), f"{field} without loraAdapters",
                                        "add loraAdapters, or remove it")


def shared_source_warnings(vllm: Vllm, at: Path, positions: Positions) -> Iterator[Problem]:
    """A pvc:// source read by more than one replica: the compiler cannot see the claim's
    access mode, and a ReadWriteOnce claim attaches to one node only (the others' pods hang
    in ContainerCreating, Multi-Attach error), read-only mount or not."""
    scaling = vllm.autoscaling
    most = max(vllm.replicas, scaling.max_replicas if scaling else 0)
    if most <= 1:
        return
    sources: list[tuple[Path, str]] = [((*at, "model"), vllm.model)]
    sources += [((*at, "loraAdapters", j, "source"), adapter.source)
                for j, adapter in enumerate(vllm.lora_adapters)]
    for where, source in sources:
        found = claim_path(source)
        if found:
            yield positions.problem(
                where, f"up to {most} replicas read claim '{found.claim}', possibly on "
                "different nodes", "make sure the claim is ReadOnlyMany or ReadWriteMany: a "
                "ReadWriteOnce claim attaches to one node, and replicas elsewhere never start")
