"""Kustomize: `overlays/base` holds the objects of the stack as written and `overlays/<env>`
every object of that environment, rendered (namespace included), one file per object under
the same file names, so `diff -r overlays/base overlays/<env>` lines them up.

Environment overlays are self-contained on purpose. Kustomize appends every resource it
loads into a list that it scans for duplicates, so its cost grows with the square of the
objects, and an overlay on top of `../base` pays that twice, plus one pass per patch and
per transformer (namespace, labels). Argo CD and Flux render each overlay again on every
refresh; a rendered overlay costs them what a plain list of the same objects costs. What an
environment changes stays reviewable: `overlays/<env>/CHANGES.md` lists, against the base,
the namespace, the objects added and removed, and every changed field with both values.
With `gitops.overlayParts: N` every overlay is split into a folder `shared` (the Namespace,
the ServiceAccounts per role, the policies per network edge) and N folders `part-<i>`, each
workload's objects in the part its name hashes to. Each folder is a kustomization of its own
that Argo CD (one source each) and Flux (one Kustomization each) render separately, so the
quadratic cost is paid per part; the overlay's own kustomization.yaml lists the folders for
`kubectl apply -k`. Only Kustomize v5 features are used.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import textwrap
from collections.abc import Iterator
from typing import Any

from ..resolve.model import NAME_LABEL, SHARED_FOLDER, K8s, overlay_folders
from . import yamlout
from .files import OutputFiles, header_comment

KUSTOMIZATION = {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization"}

# How long `kubectl kustomize` (Kustomize v5.5) takes to render a plain list of N objects on
# a 2-core machine: it appends each resource to a list it scans for duplicates, and scans
# every object again per Deployment for name references, so the time grows with N squared.
# Fitted to CPU seconds measured here: 159 s for the 5,833 objects of the L benchmark's
# largest overlay, 1.5 s for M's 616 (docs/performance.md).
KUSTOMIZE_SECONDS_PER_OBJECT_SQUARED = 4.7e-6
KUSTOMIZE_STARTUP_SECONDS = 0.15
# Argo CD's repo-server gives manifest generation 90 s (ARGOCD_EXEC_TIMEOUT), the shortest
# default of the controllers that render overlays on every refresh.
CONTROLLER_RENDER_SECONDS = 90.0
# What a part of a split overlay should cost at most: a third of that budget, for a loaded
# repo-server and for the growth of the stack between two builds.
PART_RENDER_SECONDS = 30.0


def object_key(obj: K8s) -> tuple[str, str, str]:
    return (obj["apiVersion"], obj["kind"], obj["metadata"]["name"])


def object_file(obj: K8s) -> str:
    return f"{obj['kind'].lower()}-{obj['metadata']['name']}.yaml"


def object_folder(obj: K8s, parts: int) -> str:
    """The folder of a split overlay that holds `obj`. A workload's objects (labelled with its
    name) go to the part its name hashes to, together, so a part applies a workload whole and
    a workload never moves when others come or go; everything else is shared."""
    name = obj["metadata"].get("labels", {}).get(NAME_LABEL)
    return SHARED_FOLDER if name is None else workload_folder(name, parts)


def workload_folder(name: str, parts: int) -> str:
    """The part of a split overlay that holds the objects of the workload `name`."""
    digest = hashlib.sha256(name.encode()).digest()
    return overlay_folders(parts)[1 + int.from_bytes(digest[:8], "big") % parts]


def object_path(obj: K8s, parts: int) -> str:
    """Where `obj` is written inside an overlay (base or environment)."""
    if parts <= 1:
        return object_file(obj)
    return f"{object_folder(obj, parts)}/{object_file(obj)}"


def _kustomization(files: OutputFiles, folder: str, resources: list[str], source: str,
                   what: str) -> None:
    files.add_yaml(f"{folder}/kustomization.yaml", header_comment(source) + yamlout.comment(what),
                   {**KUSTOMIZATION, "resources": resources})


def _rendered(root: str, objects: list[K8s], source: str, what: str,
              parts: int) -> OutputFiles:
    files = OutputFiles(keep_documents=True)  # the caller's OutputFiles decides
    folders = overlay_folders(parts)
    members: dict[str, list[str]] = {folder: [] for folder in folders or ("",)}
    for obj in objects:
        path = object_path(obj, parts)
        files.add_yaml(f"{root}/{path}", header_comment(source), obj)
        folder, _, name = path.rpartition("/")
        members[folder].append(name)
    if not folders:
        _kustomization(files, root, sorted(members[""]), source, what)
        return files
    for folder, names in members.items():
        role = ("what the whole stack shares" if folder == SHARED_FOLDER
                else f"the workloads whose names hash to {folder}")
        _kustomization(files, f"{root}/{folder}", sorted(names), source,
                       f"{what}; this folder: {role}, rendered and synced on its own")
    # Folders in their own order (shared first): the one list of the whole overlay.
    _kustomization(files, root, list(folders), source,
                   f"{what}; split into {', '.join(folders)}, which Argo CD and Flux render "
                   "one by one (gitops.overlayParts); this file is for kubectl apply -k")
    return files


def base_files(objects: list[K8s], source: str, parts: int = 1) -> OutputFiles:
    return _rendered("overlays/base", objects, source,
                     "the objects the chart renders with values.yaml", parts)


def overlay_files(env: str, namespace: str, base: list[K8s], target: list[K8s],
                  source: str, extra: list[K8s] | None = None, parts: int = 1) -> OutputFiles:
    """The overlay of `env`: every object of `target`, rendered, plus `extra` objects that
    only the overlays have (the Namespace; Helm creates it with createNamespace)."""
    root = f"overlays/{env}"
    objects = [*(extra or []), *target]
    files = _rendered(root, objects, source,
                      f"environment {env}: every object, rendered; CHANGES.md says what "
                      "differs from overlays/base", parts)
    files.add(f"{root}/CHANGES.md", changes_note(env, namespace, base, objects, source, parts))
    return files


def largest_folder(objects: list[K8s], parts: int) -> int:
    """How many objects the largest folder a controller renders on its own holds."""
    if parts <= 1:
        return len(objects)
    counts: dict[str, int] = {}
    for obj in objects:
        folder = object_folder(obj, parts)
        counts[folder] = counts.get(folder, 0) + 1
    return max(counts.values(), default=0)


def changes_note(env: str, namespace: str, base: list[K8s], target: list[K8s],
                 source: str, parts: int = 1) -> str:
    """What environment `env` changes from the base, for reviewers (Markdown)."""
    base_by_key = {object_key(o): o for o in base}
    target_by_key = {object_key(o): o for o in target}
    base_namespaces = sorted({o["metadata"].get("namespace", "") for o in base})
    intro = (f"Generated by modelapi-compile from {source}; do not edit. This folder holds "
             f"every object of {env}, rendered, under the file names of overlays/base "
             f"(`diff -r overlays/base overlays/{env}` lines them up); this note is the "
             "review view.")
    lines = [f"# Environment {env}: what differs from overlays/base", "",
             textwrap.fill(intro, 80), ""]
    if base_namespaces != [namespace]:
        lines.append(f"- Namespace of every namespaced object: {', '.join(base_namespaces)} -> "
                     f"{namespace}")
    added = sorted(set(target_by_key) - set(base_by_key))
    removed = sorted(set(base_by_key) - set(target_by_key))
    lines += [f"- Added: {kind} {name} (`{object_path(target_by_key[(v, kind, name)], parts)}`)"
              for v, kind, name in added]
    lines += [f"- Removed: {kind} {name}" for _, kind, name in removed]
    for key in sorted(set(base_by_key) & set(target_by_key)):
        changes = list(field_changes(_without_namespace(base_by_key[key]),
                                     _without_namespace(target_by_key[key])))
        if changes:
            lines.append(f"- Changed: {key[1]} {key[2]}")
            lines += [f"  - {change}" for change in changes]
    if len(lines) == 5:
        lines.append("- Nothing: the environment is the base as written.")
    return "\n".join(lines) + "\n"


def _without_namespace(obj: K8s) -> K8s:
    metadata = {k: v for k, v in obj["metadata"].items() if k != "namespace"}
    return {**obj, "metadata": metadata}


def _path(parts: tuple[str | int, ...]) -> str:
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        elif not part.replace("-", "").replace("_", "").isalnum():
            text += f"[{json.dumps(part)}]"  # keys such as nvidia.com/gpu
        else:
            text += f".{part}" if text else part
    return text


def _value(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, ensure_ascii=False)
    return f"`{text}`" if len(text) <= 100 else f"`{text[:97]}...`"


def field_changes(base: Any, target: Any, path: tuple[str | int, ...] = ()) -> Iterator[str]:
    """`path: old -> new` for every field that differs: per key for maps, per item for lists
    of equal length, whole values otherwise."""
    if isinstance(base, dict) and isinstance(target, dict):
        for key in base:
            if key not in target:
                yield f"{_path((*path, key))}: removed (was {_value(base[key])})"
        for key, value in target.items():
            if key not in base:
                yield f"{_path((*path, key))}: added {_value(value)}"
            else:
                yield from field_changes(base[key], value, (*path, key))
    elif isinstance(base, list) and isinstance(target, list) and len(base) == len(target):
        for index, (old, new) in enumerate(zip(base, target, strict=True)):
            yield from field_changes(old, new, (*path, index))
    elif isinstance(base, list) and isinstance(target, list):
        # Items inserted or dropped: name the slices that differ, not the whole lists.
        keys = [json.dumps(item, sort_keys=True) for item in base], [
            json.dumps(item, sort_keys=True) for item in target]
        matcher = difflib.SequenceMatcher(None, *keys, autojunk=False)
        for tag, i1, i2, j1, j2 in matcher.get_opcodes():
            if tag != "equal":
                where = f"{_path(path)}[{i1}:{i2}]"
                yield f"{where}: {_value(base[i1:i2])} -> {_value(target[j1:j2])}"
    elif base != target or type(base) is not type(target):
        yield f"{_path(path)}: {_value(base)} -> {_value(target)}"


def render_seconds(objects: float) -> float:
    """Estimated seconds `kubectl kustomize` needs for an overlay of `objects` objects."""
    return KUSTOMIZE_STARTUP_SECONDS + KUSTOMIZE_SECONDS_PER_OBJECT_SQUARED * objects ** 2


def largest_renderable_overlay(seconds: float = CONTROLLER_RENDER_SECONDS) -> int:
    """The most objects an overlay may hold and still render within `seconds` (by default a
    controller's default timeout) on a 2-core machine."""
    budget = seconds - KUSTOMIZE_STARTUP_SECONDS
    return int((budget / KUSTOMIZE_SECONDS_PER_OBJECT_SQUARED) ** 0.5)


def parts_needed(objects: int) -> int:
    """The fewest overlay parts that keep each within PART_RENDER_SECONDS, workloads spread
    evenly (a hash spreads them to within a few percent on large stacks)."""
    return -(-objects // largest_renderable_overlay(PART_RENDER_SECONDS))


def slow_overlay_warning(env: str, objects: int, renderers: list[str], parts: int = 1
                         ) -> tuple[str, str] | None:
    """(message, hint) when the controllers that render `overlays/<env>` (named by the GitOps
    settings: "Argo CD", "Flux"; empty when unknown) would likely time out on it; `objects`
    counts the largest folder they render on its own."""
    if objects <= largest_renderable_overlay():
        return None
    who = " and ".join(renderers) if renderers else "a GitOps controller"
    fields = " and ".join(f"gitops.{'argocd' if r == 'Argo CD' else 'flux'}.source: helm"
                          for r in renderers) or "a Helm source"
    where = f"overlays/{env}" if parts <= 1 else f"a folder of overlays/{env}"
    message = (f"{where} holds {objects} objects: Kustomize needs about "
               f"{render_seconds(objects):.0f} s to render it on 2 cores, more than the "
               f"{CONTROLLER_RENDER_SECONDS:.0f} s a controller gets by default (Argo CD's "
               f"ARGOCD_EXEC_TIMEOUT), and {who} would render it again on every refresh")
    split = parts * parts_needed(objects)
    hint = (f"split the overlays (gitops.overlayParts: {split}) so that each part renders in "
            f"under {PART_RENDER_SECONDS:.0f} s, or sync the chart instead ({fields}): it "
            f"renders the same objects with values-{env}.yaml in seconds")
    return message, hint
