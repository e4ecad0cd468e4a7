"""Verify a compiled build before anything is written: every object of every environment
against the schemas of the target Kubernetes version, and, when the Helm SDK is installed,
`helm lint` plus a check that what Helm renders equals the compiler's own objects.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..emit.manifests import pod_templates
from ..problems import Problem, SpecError, format_path
from ..resolve.limits import object_problems
from ..resolve.model import K8s, ResolvedStack
from ..resolve.pod_security import ROOT_OPT_OUT, violations
from .kubeschemas import SchemaCatalog, SchemaNotFound

if TYPE_CHECKING:
    from ..emit.files import OutputFiles
    from ..spec.validate import ValidatedSpec


class OutputInvalid(SpecError):
    """The build would write output that fails verification (exit 1, nothing written)."""


class Verifier:
    """Checks one environment's objects at a time, so a large stack never holds every
    environment's objects at once. Use as a context manager; `finish` raises OutputInvalid
    with everything found."""

    def __init__(self, validated: ValidatedSpec, kubernetes_version: str, *, use_helm: bool):
        self.validated = validated
        self.catalog = SchemaCatalog(kubernetes_version, strict=True)
        self.sdk = helm_sdk() if use_helm else None
        if use_helm and self.sdk is None:
            raise SpecError([Problem(
                validated.file, 0, 0, "", HELM_SDK_MISSING,
                "reinstall modelapi-compile (helm-python-sdk is one of its dependencies), "
                "or pass --no-helm to build without the Helm check")])
        self.problems: list[Problem] = []
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self.chart: Path | None = None

    def __enter__(self) -> Verifier:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()

    def start_chart(self, files: OutputFiles, base: ResolvedStack) -> None:
        """Write the chart to a scratch folder and lint it (when Helm is there)."""
        if self.sdk is None:
            return
        self._tmp = tempfile.TemporaryDirectory(prefix="modelapi-compile-")
        for path, text in files:
            if path.startswith("charts/"):
                target = Path(self._tmp.name, path)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text, encoding="utf-8")
        self.chart = Path(self._tmp.name, "charts", base.name)
        self.problems += _lint_problems(self.sdk, self.chart, base, self.validated.file)

    def check(self, env: ResolvedStack, objects: list[K8s], values: dict[str, Any]) -> None:
        """Schemas and policy for the objects; with Helm, also that rendering the chart with
        `values` (what values-<env>.yaml holds) gives exactly these objects."""
        label = f"environment {env.environment}" if env.environment else ""
        found = list(_schema_problems(label, objects, self.catalog, self.validated))
        found += _policy_problems(label, objects, self.validated, env.pod_security_level)
        if self.sdk is not None and self.chart is not None and not found:
            rendered = iter_rendered(self.sdk, self.chart, values, env.namespace)
            found += _compare(env.environment, rendered, objects, self.validated.file)
        self.problems += found

    def check_overlay_only(self, env: ResolvedStack, objects: list[K8s]) -> None:
        """Objects only the Kustomize overlay has (its Namespace): schemas only."""
        self.problems += _schema_problems(f"environment {env.environment}", objects,
                                          self.catalog, self.validated)

    def check_gitops(self, gitops: dict[str, list[K8s]]) -> None:
        for path, objects in sorted(gitops.items()):
            self.problems += _schema_problems(path, objects, self.catalog, self.validated)

    def finish(self) -> None:
        if self.problems:
            raise OutputInvalid(self.problems)


def _describe(label: str, obj: K8s) -> str:
    where = f"{label}: " if label else "base: "
    return f"{where}{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"


def _schema_problems(env: str, objects: list[K8s], catalog: SchemaCatalog,
                     validated: ValidatedSpec) -> Iterator[Problem]:
    for obj in objects:
        line, column, declared = origin_of(obj, validated)
        try:
            found = catalog.check(obj)
        except SchemaNotFound as error:
            yield Problem(validated.file, line, column, _describe(env, obj), str(error))
            continue
        if obj.get("kind") == "LeaderWorkerSet":
            # Its CRD leaves the pod templates open: check them as core PodTemplates.
            for template, _ in pod_templates(obj):
                found = [*found, *catalog.check({"apiVersion": "v1", "kind": "PodTemplate",
                                                 "metadata": {"name": "template"},
                                                 "template": template})]
        for problem in found:
            yield Problem(validated.file, line, column,
                          f"{_describe(env, obj)}: {problem.path}",
                          f"generated object is invalid: {problem.message}",
                          f"check the values of {declared} that feed this field")


def _policy_problems(env: str, objects: list[K8s], validated: ValidatedSpec,
                     level: str) -> Iterator[Problem]:
    """No Secret with data ever leaves the compiler; pods meet the restricted profile, but
    for running as root in a namespace that a `runAsRoot` opt-out lowered to baseline."""
    exempt = ROOT_OPT_OUT if level == "baseline" else frozenset()
    for obj in objects:
        line, column, declared = origin_of(obj, validated)
        if obj.get("kind") == "Secret":
            yield Problem(validated.file, line, column, _describe(env, obj),
                          "the build would write a Secret", "reference Secrets by name")
        for message in object_problems(obj):
            yield Problem(validated.file, line, column, _describe(env, obj),
                          f"the API server would refuse it: {message}",
                          f"make the values of {declared} smaller")
        for template, _ in pod_templates(obj):
            for message in violations(template["spec"], exempt):
                yield Problem(validated.file, line, column, _describe(env, obj),
                              f"violates the restricted Pod Security Standard: {message}",
                              f"check the values of {declared}")


def origin_of(obj: K8s, validated: ValidatedSpec) -> tuple[int, int, str]:
    """The spec item an object was generated from: line, column and its path."""
    labels = (obj.get("metadata") or {}).get("labels") or {}
    found = validated.origin(str(labels.get("app.kubernetes.io/name", "")))
    if found is None:
        return 0, 0, "the spec"
    path, (line, column) = found
    return line, column, format_path(path)


HELM_SDK_MISSING = ("the Helm SDK (the Python package helm-python-sdk) is not installed, so "
                    "the chart cannot be linted and rendered with Helm")


def helm_sdk_available() -> bool:
    """Whether `helm_sdk()` would find the SDK, without loading it."""
    from importlib.util import find_spec

    return find_spec("helm_python") is not None


def helm_sdk() -> Any | None:
    """The embedded Helm SDK, or None."""
    try:
        import helm_python
    except ImportError:
        return None
    return helm_python


def _lint_problems(sdk: Any, chart: Path, base: ResolvedStack, spec_path: str) -> list[Problem]:
    """`helm lint` on one workload of each kind: the chart's files, schema and template
    syntax are the same for every workload, and every object of every environment is
    rendered and compared below anyway, so linting thousands of workloads adds nothing."""
    sample: dict[str, str] = {}
    for name, workload in base.values.workloads.items():
        sample.setdefault(workload.component, name)
    keep = set(sample.values())
    overrides = {"workloads": {name: None for name in base.values.workloads
                               if name not in keep}}
    lint = sdk.lint(str(chart), overrides, strict=False, namespace=base.namespace)
    problems = [Problem(spec_path, 0, 0, "chart", f"helm lint: {error}")
                for error in lint.get("errors") or []]
    for message in lint.get("messages") or []:
        if message.get("severity", 0) >= 3:  # ERROR; info and warnings are advice
            problems.append(Problem(spec_path, 0, 0, f"chart {message.get('path')}",
                                    f"helm lint: {message.get('error')}"))
    return problems


def load_yaml_documents(text: str) -> list[Any]:
    """Documents of YAML that Go programs wrote (Helm, Kustomize)."""
    import yaml

    from .manifests import GoYamlLoader

    return [doc for doc in yaml.load_all(text, Loader=GoYamlLoader) if doc is not None]


def iter_rendered(sdk: Any, chart: Path, values: dict[str, Any], namespace: str
                  ) -> Iterator[K8s]:
    """Objects `helm template` renders with `values` over the chart's own, one at a time,
    so that thousands of them are never all held at once."""
    import yaml

    from .manifests import GoYamlLoader

    output = sdk.Chart.load(str(chart)).render(values, name=chart.name, namespace=namespace)
    for name, text in sorted(output.items()):
        if not name.endswith("NOTES.txt"):  # shown after install, not an object
            yield from (doc for doc in yaml.load_all(text, Loader=GoYamlLoader) if doc)


def render_chart(sdk: Any, chart: Path, env: str, namespace: str) -> list[K8s]:
    """All objects `helm template -f values-<env>.yaml` renders (env "" for none)."""
    values: dict[str, Any] = {}
    if env:
        documents = load_yaml_documents((chart / f"values-{env}.yaml").read_text("utf-8"))
        values = documents[0] if documents else {}
    return list(iter_rendered(sdk, chart, values, namespace))


def _compare(env: str, rendered: Iterator[K8s], expected: list[K8s], spec_path: str
             ) -> list[Problem]:
    where = f"environment {env or 'base'}"
    ours = {(o["kind"], o["metadata"]["name"]): o for o in expected}
    seen: set[tuple[str, str]] = set()
    problems = []
    for obj in rendered:
        key = (obj["kind"], obj["metadata"]["name"])
        seen.add(key)
        if key not in ours:
            problems.append(Problem(spec_path, 0, 0, where,
                                    f"Helm renders an extra {key[0]}/{key[1]}",
                                    "a bug in modelapi-compile's chart; please report it"))
        elif ours[key] != obj:
            problems.append(Problem(spec_path, 0, 0, where,
                                    f"Helm renders {key[0]}/{key[1]} differently from the "
                                    "compiler", "a bug in modelapi-compile; please report it"))
    for missing in sorted(set(ours) - seen):
        problems.append(Problem(spec_path, 0, 0, where,
                                f"Helm does not render {missing[0]}/{missing[1]}",
                                "a bug in modelapi-compile's chart; please report it"))
    return problems
