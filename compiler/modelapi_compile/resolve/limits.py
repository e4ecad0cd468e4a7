"""What the output layout and the Kubernetes API server refuse, checked at the spec's line.

Names: an environment's name becomes a folder beside `overlays/base` and, with
`gitops.overlayParts`, the names `<stack>-<env>-part-<i>` of its Flux Kustomizations, which
Flux also writes as a label value on every object it applies (at most 63 characters). Limits
of the API server (k8s.io/apimachinery validation and the ConfigMap validator): annotations of
one object at most 256 KiB in all (keys and values), label values at most 63 characters, a
ConfigMap's data at most 1 MiB, and no object larger than what etcd accepts in one request
(1.5 MiB by default). The spec is checked where a user wrote the value; the generated objects
are checked again (`object_problems`), so no spec gets past these limits unnoticed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from ..problems import Path, Problem
from ..spec.loader import Positions
from ..spec.model import ModelStack
from .model import SHARED_FOLDER, overlay_folders

BASE_FOLDER = "base"  # overlays/base: the stack as written
_PART_FOLDER = re.compile(r"part-\d+")
MAX_ANNOTATIONS_BYTES = 256 * 1024  # TotalAnnotationSizeLimitB
MAX_LABEL_VALUE = 63
MAX_DNS_LABEL = 63
MAX_NAME = 253
MAX_CONFIGMAP_BYTES = 1024 * 1024  # MaxSecretSize, which ConfigMaps share
MAX_OBJECT_BYTES = 1536 * 1024  # etcd's default --max-request-bytes
DNS_LABEL_KINDS = frozenset({"Namespace", "Service"})
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")


def environment_name_problems(stack: ModelStack, positions: Positions) -> Iterator[Problem]:
    """Environment names that are folders of the output layout, that make two generated
    names equal, or that make a generated name longer than a label value may be."""
    spec = stack.spec
    parts = spec.gitops.overlay_parts if spec.gitops else 1
    suffixes = [""] + [f"-{folder}" for folder in overlay_folders(parts)[1:]]
    generated: dict[str, str] = {}
    for i, env in enumerate(spec.environments):
        at: Path = ("spec", "environments", i, "name")
        if env.name in (BASE_FOLDER, SHARED_FOLDER) or _PART_FOLDER.fullmatch(env.name):
            yield positions.problem(
                at, f"'{env.name}' is a folder of the output layout (overlays/base holds the "
                "stack as written; shared and part-<i> are the folders of a split overlay)",
                "rename the environment")
            continue
        names = [f"{env.name}{suffix}" for suffix in suffixes]
        clash = next((n for n in names if generated.get(n, env.name) != env.name), None)
        if clash is not None:
            yield positions.problem(
                at, f"environments '{generated[clash]}' and '{env.name}' would give two "
                f"generated objects one name ({stack.metadata.name}-{clash}, with "
                f"gitops.overlayParts: {parts})", "rename one of them")
        generated.update({n: env.name for n in names if n not in generated})
        longest = f"{stack.metadata.name}-{names[-1]}"
        if spec.gitops is not None and len(longest) > MAX_LABEL_VALUE:
            yield positions.problem(
                at, f"the generated name '{longest}' exceeds {MAX_LABEL_VALUE} characters, "
                "and Flux writes it as a label value on every object it applies",
                "shorten the environment name or metadata.name")


def _keyed(field: Any, suffix: str, exact: tuple[str, ...]) -> bool:
    return isinstance(field, str) and (field in exact or field.endswith(suffix))


def map_limit_problems(data: Any, positions: Positions, path: Path = ()
                       ) -> Iterator[Problem]:
    """Annotation maps over 256 KiB and label values over 63 characters, anywhere in a
    spec document (the spec, or one environment's merged spec)."""
    if isinstance(data, dict):
        field = path[-1] if path else ""
        strings = all(isinstance(k, str) and isinstance(v, str) for k, v in data.items())
        if strings and _keyed(field, "Annotations", ("annotations",)):
            size = sum(len(k.encode()) + len(v.encode()) for k, v in data.items())
            if size > MAX_ANNOTATIONS_BYTES:
                yield positions.problem(
                    path, f"{size} bytes of annotations; the API server accepts at most "
                    f"{MAX_ANNOTATIONS_BYTES} (256 KiB) per object, keys and values together",
                    "keep large data in a ConfigMap or a mounted file, not in annotations",
                    key=True)
        # podLabels and nodeSelector have their own rule (pod_options.py)
        if strings and _keyed(field, "Labels", ("labels", "matchLabels")) \
                and field != "podLabels":
            for key, value in data.items():
                if len(value) > MAX_LABEL_VALUE or not _LABEL_VALUE.match(value):
                    yield positions.problem((*path, key), f"'{value[:80]}' is not a label "
                                            "value", "at most 63 letters, digits, '-', '_' "
                                            "or '.'")
        for key, item in data.items():
            yield from map_limit_problems(item, positions, (*path, key))
    elif isinstance(data, list):
        for index, item in enumerate(data):
            yield from map_limit_problems(item, positions, (*path, index))


def object_problems(obj: dict[str, Any]) -> Iterator[str]:
    """What the API server would refuse in a generated object, in words."""
    kind = str(obj.get("kind"))
    metadata = obj.get("metadata") or {}
    name = str(metadata.get("name", ""))
    most = MAX_DNS_LABEL if kind in DNS_LABEL_KINDS else MAX_NAME
    if len(name) > most:
        yield f"its name has {len(name)} characters; a {kind} name has at most {most}"
    template = ((obj.get("spec") or {}).get("template") or {}).get("metadata") or {}
    for where, meta in (("", metadata), ("the pod template's ", template)):
        annotations = meta.get("annotations") or {}
        size = sum(len(str(k).encode()) + len(str(v).encode()) for k, v in annotations.items())
        if size > MAX_ANNOTATIONS_BYTES:
            yield (f"{where}annotations take {size} bytes; the API server accepts at most "
                   f"{MAX_ANNOTATIONS_BYTES} (256 KiB)")
        for key, value in (meta.get("labels") or {}).items():
            if len(str(value)) > MAX_LABEL_VALUE:
                yield f"{where}label {key} has a value longer than {MAX_LABEL_VALUE} characters"
    if kind == "ConfigMap":
        size = sum(len(str(v).encode()) for field in ("data", "binaryData")
                   for v in (obj.get(field) or {}).values())
        if size > MAX_CONFIGMAP_BYTES:
            yield (f"its data takes {size} bytes; a ConfigMap holds at most "
                   f"{MAX_CONFIGMAP_BYTES} (1 MiB)")
    size = len(json.dumps(obj, separators=(",", ":")).encode())
    if size > MAX_OBJECT_BYTES:
        yield (f"it takes {size} bytes; etcd accepts at most {MAX_OBJECT_BYTES} (1.5 MiB) in "
               "one request by default")
