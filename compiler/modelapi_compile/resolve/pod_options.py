"""Rules for the pod pass-through fields (spec.PodOptions) and autoscaling, reported at their
line in the spec.

The Kubernetes-shaped fields (volumes, mounts, affinity, spread constraints) are checked
against the definitions of the Kubernetes JSON schema of `spec.kubernetesVersion` shipped by
kubernetes-validate (strict: unknown fields are errors), so a typo fails at `validate` time
with the spec's line and column instead of at `kubectl apply` time.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from functools import cache
from typing import Any

from ..problems import Path, Problem, did_you_mean
from ..spec.backends import Litellm, ModelAPI
from ..spec.fields import PodOptions, Resources
from ..spec.loader import Positions
from ..spec.model import Agent, StackSpec
from .pod_contract import (
    COMPILER_ENV,
    COMPILER_VOLUMES,
    ENDPOINT_SECONDS,
    SHUTDOWN_SECONDS,
    quantity,
)

COMPILER_LABEL_PREFIXES = ("app.kubernetes.io/", "modelapi.dev/")
_QUALIFIED_NAME = re.compile(r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
                             r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")

# Spec field -> the Kubernetes definition each item (or the value) must match.
SHAPES: dict[str, tuple[str, bool]] = {
    "extraVolumes": ("io.k8s.api.core.v1.Volume", True),
    "extraVolumeMounts": ("io.k8s.api.core.v1.VolumeMount", True),
    "affinity": ("io.k8s.api.core.v1.Affinity", False),
    "topologySpreadConstraints": ("io.k8s.api.core.v1.TopologySpreadConstraint", True),
}


def qualified_name(key: str) -> bool:
    """A Kubernetes label or annotation key: [DNS subdomain/]name."""
    return bool(_QUALIFIED_NAME.match(key))


@cache
def _validator(kubernetes_version: str, definition: str) -> Any:
    import jsonschema

    from ..verify.kubeschemas import _definitions, self_contained

    schema = self_contained({"$ref": f"#/$defs/{definition}"},
                            _definitions(kubernetes_version, True))
    return jsonschema.Draft7Validator(schema)


def shape_problems(value: Any, definition: str, at: Path, kubernetes_version: str,
                   positions: Positions) -> Iterator[Problem]:
    """`value` against a Kubernetes definition; each problem at its own spec position."""
    validator = _validator(kubernetes_version, definition)
    for error in validator.iter_errors(value):
        where: Path = (*at, *error.absolute_path)
        if error.validator == "additionalProperties" and isinstance(error.instance, dict):
            known = list(error.schema.get("properties") or {})
            for extra in sorted(set(error.instance) - set(known)):
                yield positions.problem((*where, extra), f"unknown field '{extra}'",
                                        did_you_mean(extra, known), key=True)
            continue
        short = definition.rsplit(".", 1)[-1]
        if error.validator == "required":
            missing = str(error.message).split("'")[1]
            yield positions.problem((*where, missing), f"required field '{missing}' is missing "
                                    f"(Kubernetes {short})", "add it")
            continue
        yield positions.problem(where, f"{error.message} (Kubernetes {short})",
                                "see the Kubernetes API reference for this field")


def _own_names(kind: str) -> tuple[frozenset[str], frozenset[str]]:
    """Env var and volume names the compiler sets for a kind of workload."""

    return COMPILER_ENV[kind], COMPILER_VOLUMES[kind]


def pod_option_problems(options: PodOptions, kind: str, at: Path, spec: StackSpec,
                        positions: Positions) -> Iterator[Problem]:
    version = spec.kubernetes_version
    data = options.model_dump(by_alias=True)
    for field, (definition, is_list) in SHAPES.items():
        value = data.get(field)
        if value is None:
            continue
        items = list(enumerate(value)) if is_list else [(None, value)]
        for index, item in items:
            where: Path = (*at, field) if index is None else (*at, field, index)
            yield from shape_problems(item, definition, where, version, positions)
    env_names, volume_names = _own_names(kind)
    # Lists Kubernetes merges by a key: a repeated key makes server-side apply refuse the
    # object (Argo CD and Flux both apply server-side).
    for field, key, keyed in (("env", "name", [e.name for e in options.env]),
                              ("extraVolumes", "name",
                               [str(v.get("name", "")) for v in options.extra_volumes]),
                              ("extraVolumeMounts", "mountPath",
                               [str(m.get("mountPath", "")) for m in options.extra_volume_mounts])):
        first: dict[str, int] = {}
        for j, value in enumerate(keyed):
            if value and value in first:
                yield positions.problem((*at, field, j, key), f"duplicate {key} '{value}'",
                                        f"{field}[{first[value]}] already uses it")
            first.setdefault(value, j)
    for j, env in enumerate(options.env):  # secret values: secret_values.py, on every string
        if env.name in env_names:
            yield positions.problem((*at, "env", j, "name"), f"{env.name} is set by the compiler",
                                    "remove it; the spec's own fields decide it")
    declared = [str(v.get("name", "")) for v in options.extra_volumes]
    for j, name in enumerate(declared):
        # model-source-<n>: one per claim a vLLM model or adapter reads (workloads.py)
        if name in volume_names or name.startswith("model-source-"):
            yield positions.problem((*at, "extraVolumes", j, "name"),
                                    f"volume '{name}' is the compiler's own",
                                    "choose another name")
    for j, mount in enumerate(options.extra_volume_mounts):
        name = str(mount.get("name", ""))
        if name and name not in declared:
            yield positions.problem((*at, "extraVolumeMounts", j, "name"),
                                    f"no extraVolumes entry named '{name}'",
                                    did_you_mean(name, declared) or "declare it in extraVolumes")
    for field, mapping in (("podLabels", options.pod_labels),
                           ("nodeSelector", options.node_selector)):
        for key, value in mapping.items():
            if field == "podLabels" and key.startswith(COMPILER_LABEL_PREFIXES):
                yield positions.problem((*at, field, key), f"'{key}' is set by the compiler",
                                        "labels under app.kubernetes.io/ and modelapi.dev/ "
                                        "select the pods; use another prefix", key=True)
            elif not _QUALIFIED_NAME.match(key):
                yield positions.problem((*at, field, key), f"'{key}' is not a label key",
                                        "[prefix/]name, name at most 63 characters", key=True)
            if not _LABEL_VALUE.match(value):
                yield positions.problem((*at, field, key), f"'{value}' is not a label value",
                                        "at most 63 letters, digits, '-', '_' or '.'")
    for key in options.pod_annotations:
        if not _QUALIFIED_NAME.match(key):
            yield positions.problem((*at, "podAnnotations", key),
                                    f"'{key}' is not an annotation key",
                                    "[prefix/]name, name at most 63 characters", key=True)


def autoscaling_problems(owner: ModelAPI | Agent, at: Path, spec: StackSpec,
                         positions: Positions) -> Iterator[Problem]:
    """min <= max; no fixed replicas fighting the autoscaler; KEDA needs Prometheus."""
    if isinstance(owner, Agent):
        holder: Any = owner
    else:
        holder = owner.vllm or owner.litellm
    scaling = getattr(holder, "autoscaling", None) if holder is not None else None
    if scaling is None:
        return
    where: Path = (*at, "autoscaling")
    if scaling.min_replicas > scaling.max_replicas:
        yield positions.problem((*where, "minReplicas"),
                                f"minReplicas {scaling.min_replicas} is above maxReplicas "
                                f"{scaling.max_replicas}", "lower minReplicas or raise maxReplicas")
    if "replicas" in holder.model_fields_set and holder.replicas != scaling.min_replicas:
        yield positions.problem((*at, "replicas"),
                                f"replicas: {holder.replicas} is fixed, but autoscaling owns the "
                                "replica count", "remove replicas: the autoscaler starts "
                                "from minReplicas")
    if isinstance(owner, ModelAPI) and owner.vllm is not None:
        routed = any(api.litellm and any(m.backend == owner.name for m in api.litellm.models)
                     for api in spec.model_apis)
        if scaling.min_replicas == 0 and not routed:
            yield positions.problem((*where, "minReplicas"),
                                    "nothing can wake this model from zero replicas: vLLM "
                                    "exports no queue while it is down",
                                    "route to it from a LiteLLM modelAPI of this spec, whose "
                                    "calls wake it, or set minReplicas: 1")
        field = (*where, "waitingRequests")
        if spec.monitoring.prometheus_url is None:
            yield positions.problem(field, "waitingRequests is read from Prometheus, but "
                                    "monitoring.prometheusURL is not set",
                                    "set spec.monitoring.prometheusURL to the Prometheus KEDA "
                                    "queries, e.g. http://prometheus-operated.monitoring.svc:9090")
        if not spec.monitoring.enabled:
            yield positions.problem(field, "vLLM's queue metric is only scraped with "
                                    "monitoring.enabled", "set spec.monitoring.enabled: true; its "
                                    "ServiceMonitor scrapes vLLM's /metrics")


# What a model server's callers may wait for when no LiteLLM proxy of the spec routes to it
# (agents calling it directly): LiteLLM's own default request timeout.
DEFAULT_REQUEST_SECONDS = 600
_REQUEST_PARAMS = ("timeout", "stream_timeout")


def _proxy_request_seconds(litellm: Litellm, backend: str | None = None) -> int:
    """The longest a LiteLLM proxy lets one call run: its router timeout, or a longer
    timeout of a model entry (of those routed to `backend`, when given)."""
    longest = float(litellm.router.timeout)
    for entry in litellm.models:
        if backend is not None and entry.backend != backend:
            continue
        for key in _REQUEST_PARAMS:
            value = entry.params.get(key)
            if isinstance(value, int | float) and not isinstance(value, bool):
                longest = max(longest, float(value))
    return math.ceil(longest)


def longest_request(spec: StackSpec, api: ModelAPI) -> int | None:
    """Seconds the longest request to `api` may run, as its callers allow it: a LiteLLM
    proxy's own timeouts; for a vLLM server, those of the proxies that route to it (or
    LiteLLM's default when agents call it directly); None for what holds no long requests."""
    if api.litellm:
        return _proxy_request_seconds(api.litellm)
    if not api.vllm:
        return None
    callers = [_proxy_request_seconds(proxy.litellm, api.name) for proxy in spec.model_apis
               if proxy.litellm and any(m.backend == api.name for m in proxy.litellm.models)]
    return max(callers, default=DEFAULT_REQUEST_SECONDS)


def grace_warnings(api: ModelAPI, at: Path, spec: StackSpec, positions: Positions
                   ) -> Iterator[Problem]:
    """A grace period shorter than the drain the longest request needs: say what is cut."""

    holder = api.vllm or api.litellm
    longest = longest_request(spec, api)
    grace = holder.termination_grace_period_seconds if holder else None
    if grace is None or longest is None:
        return
    drained = grace - SHUTDOWN_SECONDS - ENDPOINT_SECONDS
    if drained < longest:
        yield positions.problem(
            (*at, "terminationGracePeriodSeconds"),
            f"a stopping pod serves for {max(0, drained)} s after it leaves the endpoints, but "
            f"its callers allow requests of {longest} s: longer ones are cut",
            f"set at least {longest + ENDPOINT_SECONDS + SHUTDOWN_SECONDS}, or remove it to "
            "derive it")


def resource_problems(resources: Resources, at: Path, positions: Positions
                      ) -> Iterator[Problem]:
    """A request above its limit, both written in the spec: the API server refuses the pod
    (a request or limit the spec leaves out follows the other, see workloads.within_limits)."""

    for name, request in sorted(resources.requests.items()):
        limit = resources.limits.get(name)
        if limit is not None and quantity(request) > quantity(limit):
            yield positions.problem(
                (*at, "resources", "requests", name),
                f"the {name} request {request} is above its limit {limit}, which the API "
                "server refuses", f"lower the request, or raise resources.limits.{name}")


def scaling_warnings(api: ModelAPI, at: Path, positions: Positions) -> Iterator[Problem]:
    """KEDA settings that do nothing for this model: cooldownPeriod and the activation
    threshold only act on the step between zero and one replica."""
    scaling = api.vllm.autoscaling if api.vllm else None
    if scaling is None or scaling.min_replicas == 0:
        return
    for field, name in (("cooldown_period", "cooldownPeriod"),
                        ("activation_waiting_requests", "activationWaitingRequests")):
        if field in scaling.model_fields_set:
            yield positions.problem(
                (*at, "autoscaling", name),
                f"{name} has no effect with minReplicas {scaling.min_replicas}: KEDA uses it "
                "only between zero and one replica",
                "remove it; scaleDownStabilizationSeconds sets how fast replicas are removed"
                if field == "cooldown_period" else "remove it, or set minReplicas: 0")
