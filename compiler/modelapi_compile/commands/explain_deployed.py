"""`explain` on a workload's resources, replicas or image: what the environment deploys.

The values are read from the objects `build` emits for that environment (resolve/stack.py, then
emit/manifests.py), never recomputed: the controller (Deployment or StatefulSet), its image,
the main container's requests and limits, /dev/shm, and the replicas or the HPA or KEDA
ScaledObject that owns them. Each value is paired with the layer that set it: the spec, the
environment's patch, or the compiler's default (a field the file leaves out).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..emit.manifests import build_objects, fullname
from ..problems import Path
from ..resolve.stack import resolve_environments
from ..spec.validate import ValidatedSpec

# Fields of a modelAPI or agent whose explanation shows what is deployed.
DEPLOYED_FIELDS = frozenset({"resources", "requests", "limits", "replicas", "image",
                             "autoscaling", "shmSize"})
WORKLOAD_KINDS = ("vllm", "ollama", "litellm")
K8s = dict[str, Any]


def workload_of(concrete: Path, model: Any) -> tuple[str, Path] | None:
    """The spec name of the workload `concrete` is about and the path of its fields (the
    item, or its kind block for a modelAPI), when the path asks what is deployed."""
    if len(concrete) < 3 or concrete[1] not in ("modelAPIs", "agents"):
        return None
    item = model["spec"][concrete[1]][concrete[2]]
    base: Path = tuple(concrete[:3])
    if concrete[1] == "modelAPIs":
        kind = next((k for k in WORKLOAD_KINDS if item.get(k) is not None), None)
        if kind is None or (len(concrete) > 3 and concrete[3] != kind):
            return None  # an external modelAPI deploys nothing
        base = (*base, kind)
    rest = {str(part) for part in concrete[len(base):]}
    if rest and not DEPLOYED_FIELDS & rest:
        return None
    return str(item["name"]), base


def deployed_lines(validated: ValidatedSpec, environment: str, name: str, base: Path,
                   layer: Callable[[Path], str], model: Any) -> tuple[str, ...]:
    """What the environment deploys for workload `name`; `layer(path)` names who set the
    spec field at `path`."""
    env = next(e for e in resolve_environments(validated) if e.environment == environment)
    objects = build_objects(env)
    full = fullname(env.values.stack, name)
    controller = next((o for o in objects if o["kind"] in ("Deployment", "StatefulSet")
                       and o["metadata"]["name"] == full), None)
    if controller is None:
        return ()
    pod = controller["spec"]["template"]["spec"]
    container = pod["containers"][0]
    fields = _at(model, base)
    written = fields.get("image")
    image = layer((*base, "image"))
    if written is not None and container["image"] != written:
        image = f"derived from {written} ({image}): {_image_reason(model, fields)}"
    lines = [f"deployed: {controller['kind']} {full} (namespace {env.namespace})",
             f"  image: {container['image']}  [{image}]"]
    lines += _replicas(objects, controller, full, base, layer)
    gpu = fields.get("gpu") or {}
    for section in ("requests", "limits"):
        values = container.get("resources", {}).get(section, {})
        lines.append(f"  {section}:")
        for resource, value in sorted(values.items()):
            at: Path = (*base, "resources", section, resource)
            who = layer(at)
            if resource == gpu.get("resource") and who == "default":
                who = f"gpu.count: {layer((*base, 'gpu', 'count'))}"
            lines.append(f"    {resource}: {value}  [{who}]")
    shm = next((v for v in pod.get("volumes", []) if v.get("name") == "dshm"), None)
    if shm is not None:
        size = shm.get("emptyDir", {}).get("sizeLimit", "node memory")
        lines.append(f"  /dev/shm: {size} (memory-backed emptyDir)  "
                     f"[{layer((*base, 'shmSize'))}]")
    return tuple(lines)


def _at(model: Any, path: Path) -> Any:
    for part in path:
        model = model[part]
    return model


def _image_reason(model: Any, fields: Any) -> str:
    registry = model["spec"]["cluster"].get("imageRegistry")
    gpu = fields.get("gpu") or {}
    reasons = [*(["CPU mode (gpu.count 0): the CPU image"] if gpu and not gpu.get("count")
                 else []), *([f"cluster.imageRegistry {registry}"] if registry else [])]
    return "; ".join(reasons) or "the compiler's pin"


def _replicas(objects: list[K8s], controller: K8s, full: str, base: Path,
              layer: Callable[[Path], str]) -> list[str]:
    for owner in objects:
        if owner["metadata"]["name"] != full:
            continue
        if owner["kind"] == "HorizontalPodAutoscaler":
            spec = owner["spec"]
            return [f"  replicas: owned by HorizontalPodAutoscaler {full}: "
                    f"{spec.get('minReplicas', 1)} to {spec['maxReplicas']}  "
                    f"[{layer((*base, 'autoscaling'))}]"]
        if owner["kind"] == "ScaledObject":
            spec = owner["spec"]
            return [f"  replicas: owned by KEDA ScaledObject {full}: "
                    f"{spec.get('minReplicaCount', 0)} to {spec['maxReplicaCount']}  "
                    f"[{layer((*base, 'autoscaling'))}]"]
    return [f"  replicas: {controller['spec'].get('replicas', 1)}  "
            f"[{layer((*base, 'replicas'))}]"]
