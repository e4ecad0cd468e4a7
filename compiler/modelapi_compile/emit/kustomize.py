"""Kustomize: `overlays/base` holds the objects of the stack as written, one file each;
`overlays/<env>` sets the namespace and carries one RFC 6902 JSON patch per changed object
(only the fields that differ), new objects as files, and `$patch: delete` for dropped ones.
Only Kustomize v5 features are used.
"""

from __future__ import annotations

from typing import Any

from .. import yamlout
from ..resolved import K8s
from .files import OutputFiles, header_comment

KUSTOMIZATION = {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization"}


def object_key(obj: K8s) -> tuple[str, str, str]:
    return (obj["apiVersion"], obj["kind"], obj["metadata"]["name"])


def object_file(obj: K8s) -> str:
    return f"{obj['kind'].lower()}-{obj['metadata']['name']}.yaml"


def base_files(objects: list[K8s], source: str) -> OutputFiles:
    files = OutputFiles(keep_documents=True)  # the caller's OutputFiles decides
    names = []
    for obj in objects:
        name = object_file(obj)
        names.append(name)
        files.add_yaml(f"overlays/base/{name}", header_comment(source), obj)
    kustomization = {**KUSTOMIZATION, "resources": sorted(names)}
    files.add_yaml("overlays/base/kustomization.yaml",
                   header_comment(source, "the objects the chart renders with values.yaml"),
                   kustomization)
    return files


def overlay_files(env: str, namespace: str, base: list[K8s], target: list[K8s],
                  source: str, extra: list[K8s] | None = None) -> OutputFiles:
    """The overlay of `env`: `target` as patches over `base`, plus `extra` objects that
    only the overlays have (the Namespace; Helm creates it with createNamespace)."""
    files = OutputFiles(keep_documents=True)  # the caller's OutputFiles decides
    root = f"overlays/{env}"
    base_by_key = {object_key(o): o for o in base}
    target_by_key = {object_key(o): o for o in target}
    resources = ["../base"]
    patches: list[K8s] = []
    for obj in extra or []:
        name = object_file(obj)
        resources.append(name)
        files.add_yaml(f"{root}/{name}", header_comment(source), obj)
    for key, obj in sorted(target_by_key.items()):
        if key not in base_by_key:
            name = object_file(obj)
            resources.append(name)
            files.add_yaml(f"{root}/{name}", header_comment(source), obj)
            continue
        operations = json_patch(base_by_key[key], _in_namespace(obj, base_by_key[key]))
        if operations:
            path = f"patches/{object_file(obj)}"
            files.add_yaml(f"{root}/{path}", header_comment(
                source, f"{obj['kind']} {obj['metadata']['name']}: what {env} changes"),
                operations)
            patches.append({"path": path, "target": _target(obj)})
    for key, obj in sorted(base_by_key.items()):
        if key not in target_by_key:
            deletion = {"$patch": "delete", "apiVersion": obj["apiVersion"],
                        "kind": obj["kind"],
                        "metadata": {"name": obj["metadata"]["name"],
                                     "namespace": obj["metadata"]["namespace"]}}
            patches.append({"patch": yamlout.dump(deletion)})
    kustomization: K8s = {**KUSTOMIZATION, "namespace": namespace, "resources": resources}
    if patches:
        kustomization["patches"] = patches
    files.add_yaml(f"{root}/kustomization.yaml", header_comment(source, f"environment {env}"),
                   kustomization)
    return files


def _in_namespace(obj: K8s, like: K8s) -> K8s:
    """`obj` with the namespace of `like`: the kustomization's namespace sets it."""
    namespace = like["metadata"].get("namespace")
    return {**obj, "metadata": {**obj["metadata"], "namespace": namespace}}


def _target(obj: K8s) -> dict[str, str]:
    group, _, version = obj["apiVersion"].rpartition("/")
    target = {"group": group, "version": version} if group else {"version": version}
    return {**target, "kind": obj["kind"], "name": obj["metadata"]["name"]}


def _pointer(path: tuple[str | int, ...]) -> str:
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in path)


def json_patch(base: Any, target: Any, path: tuple[str | int, ...] = ()) -> list[K8s]:
    """RFC 6902 operations turning `base` into `target`: per key for maps, per item for
    lists of equal length, whole values otherwise."""
    if isinstance(base, dict) and isinstance(target, dict):
        operations: list[K8s] = []
        for key in base:
            if key not in target:
                operations.append({"op": "remove", "path": _pointer((*path, key))})
        for key, value in target.items():
            if key not in base:
                operations.append({"op": "add", "path": _pointer((*path, key)), "value": value})
            else:
                operations += json_patch(base[key], value, (*path, key))
        return operations
    if isinstance(base, list) and isinstance(target, list) and len(base) == len(target):
        operations = []
        for index, (old, new) in enumerate(zip(base, target, strict=True)):
            operations += json_patch(old, new, (*path, index))
        return operations
    if base == target and type(base) is type(target):
        return []
    return [{"op": "replace", "path": _pointer(path), "value": target}]
