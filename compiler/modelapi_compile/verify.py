"""Verify a compiled build before anything is written: every object of every environment
against the schemas of the target Kubernetes version, and, when the Helm SDK is installed,
`helm lint` plus a check that what Helm renders equals the compiler's own objects.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .kubeschemas import SchemaCatalog, SchemaNotFound
from .pod_security import violations
from .problems import Problem, SpecError, format_path
from .resolved import K8s

if TYPE_CHECKING:
    from .pipeline import Compiled
    from .validate import ValidatedSpec


class OutputInvalid(SpecError):
    """The build would write output that fails verification (exit 1, nothing written)."""


def verify(compiled: Compiled, validated: ValidatedSpec, *, use_helm: bool = True) -> None:
    spec_path = validated.file
    catalog = SchemaCatalog(compiled.base.kubernetes_version, strict=True)
    problems = list(_schema_problems(compiled, catalog, validated))
    problems += _policy_problems(compiled, validated)
    if use_helm and not problems:
        problems += _helm_problems(compiled, spec_path)
    if problems:
        raise OutputInvalid(problems)


def _describe(env: str, obj: K8s) -> str:
    where = f"environment {env}: " if env else "base: "
    return f"{where}{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"


def _schema_problems(compiled: Compiled, catalog: SchemaCatalog, validated: ValidatedSpec
                     ) -> Iterator[Problem]:
    for env, objects in [*compiled.objects.items(), *compiled.gitops_objects()]:
        for obj in objects:
            line, column, declared = _origin(obj, validated)
            try:
                found = catalog.check(obj)
            except SchemaNotFound as error:
                yield Problem(validated.file, line, column, _describe(env, obj), str(error))
                continue
            for problem in found:
                yield Problem(validated.file, line, column,
                              f"{_describe(env, obj)}: {problem.path}",
                              f"generated object is invalid: {problem.message}",
                              f"check the values of {declared} that feed this field")


def _policy_problems(compiled: Compiled, validated: ValidatedSpec) -> Iterator[Problem]:
    """No Secret with data ever leaves the compiler; pods meet the restricted profile."""
    for env, objects in [*compiled.objects.items(), *compiled.gitops_objects()]:
        for obj in objects:
            line, column, declared = _origin(obj, validated)
            if obj.get("kind") == "Secret":
                yield Problem(validated.file, line, column, _describe(env, obj),
                              "the build would write a Secret", "reference Secrets by name")
            if obj.get("kind") != "Deployment":
                continue
            template = obj["spec"]["template"]
            component = template["metadata"]["labels"].get("app.kubernetes.io/component", "")
            for message in violations(template["spec"], component):
                yield Problem(validated.file, line, column, _describe(env, obj),
                              f"violates the restricted Pod Security Standard: {message}",
                              f"check the values of {declared}")


def _origin(obj: K8s, validated: ValidatedSpec) -> tuple[int, int, str]:
    """The spec item an object was generated from: line, column and its path."""
    labels = (obj.get("metadata") or {}).get("labels") or {}
    found = validated.origin(str(labels.get("app.kubernetes.io/name", "")))
    if found is None:
        return 0, 0, "the spec"
    path, (line, column) = found
    return line, column, format_path(path)


def helm_sdk() -> Any | None:
    try:
        import helm_python
    except ImportError:
        return None
    return helm_python


def _helm_problems(compiled: Compiled, spec_path: str) -> list[Problem]:
    sdk = helm_sdk()
    if sdk is None:
        return []
    problems: list[Problem] = []
    with tempfile.TemporaryDirectory(prefix="modelapi-compile-") as tmp:
        for path, text in compiled.files:
            if path.startswith("charts/"):
                target = Path(tmp, path)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text, encoding="utf-8")
        chart = Path(tmp, "charts", compiled.base.name)
        lint = sdk.lint(str(chart), strict=False, namespace=compiled.base.namespace)
        for error in lint.get("errors") or []:
            problems.append(Problem(spec_path, 0, 0, "chart", f"helm lint: {error}"))
        for message in lint.get("messages") or []:
            if message.get("severity", 0) >= 3:  # ERROR; info and warnings are advice
                problems.append(Problem(spec_path, 0, 0, f"chart {message.get('path')}",
                                        f"helm lint: {message.get('error')}"))
        for env in (compiled.base, *compiled.environments):
            rendered = render_chart(sdk, chart, env.environment, env.namespace)
            problems += _compare(env.environment, rendered, compiled.objects[env.environment],
                                 spec_path)
    return problems


def load_yaml_documents(text: str) -> list[Any]:
    """Documents of YAML that Go programs wrote (Helm, Kustomize)."""
    import yaml

    from .manifest_check import GoYamlLoader

    return [doc for doc in yaml.load_all(text, Loader=GoYamlLoader) if doc is not None]


def render_chart(sdk: Any, chart: Path, env: str, namespace: str) -> list[K8s]:
    """Objects `helm template` renders for an environment (values-<env>.yaml)."""
    values: dict[str, Any] = {}
    if env:
        documents = load_yaml_documents((chart / f"values-{env}.yaml").read_text("utf-8"))
        values = documents[0] if documents else {}
    release = chart.name
    output = sdk.Chart.load(str(chart)).render(values, name=release, namespace=namespace)
    objects: list[K8s] = []
    for name, text in sorted(output.items()):
        if not name.endswith("NOTES.txt"):  # shown after install, not an object
            objects += [doc for doc in load_yaml_documents(text) if doc]
    return objects


def _compare(env: str, rendered: list[K8s], expected: list[K8s], spec_path: str
             ) -> list[Problem]:
    def key(obj: K8s) -> tuple[str, str]:
        return (obj["kind"], obj["metadata"]["name"])

    ours = {key(o): o for o in expected}
    helms = {key(o): o for o in rendered}
    problems = []
    for missing in sorted(set(ours) ^ set(helms)):
        side = "Helm does not render" if missing in ours else "Helm renders an extra"
        problems.append(Problem(spec_path, 0, 0, f"environment {env or 'base'}",
                                f"{side} {missing[0]}/{missing[1]}",
                                "a bug in modelapi-compile's chart; please report it"))
    for k in sorted(set(ours) & set(helms)):
        if ours[k] != helms[k]:
            problems.append(Problem(spec_path, 0, 0, f"environment {env or 'base'}",
                                    f"Helm renders {k[0]}/{k[1]} differently from the "
                                    "compiler", "a bug in modelapi-compile; please report it"))
    return problems
