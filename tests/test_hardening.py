"""Secrets stay references, ExternalSecrets are valid, pods meet the restricted Pod Security
Standard, and hostile YAML is refused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from conftest import CASES
from modelapi_compile.loader import MAX_FILE_BYTES, load_bytes
from modelapi_compile.pipeline import compile_spec
from modelapi_compile.pod_security import ROOT_OPT_OUT, violations
from modelapi_compile.problems import SpecError

PROD = CASES / "valid" / "production-gpu.yaml"


@pytest.fixture(scope="module")
def prod() -> Any:
    return compile_spec(str(PROD), use_helm=False, keep_objects=True)


def test_external_secrets_cover_every_secret_reference(prod: Any, shared_crds: Path) -> None:
    schema = json.loads((shared_crds / "external-secrets.io" / "externalsecret_v1.json")
                        .read_text())
    for env, objects in prod.objects.items():
        made = {o["metadata"]["name"]: {d["secretKey"] for d in o["spec"]["data"]}
                for o in objects if o["kind"] == "ExternalSecret"}
        for obj in objects:
            if obj["kind"] == "ExternalSecret":
                jsonschema.Draft7Validator(schema).validate(obj)
                assert obj["spec"]["secretStoreRef"] == {"kind": "ClusterSecretStore",
                                                         "name": "vault-backend"}
            if obj["kind"] != "Deployment":
                continue
            for container in obj["spec"]["template"]["spec"]["containers"]:
                for var in container.get("env", []):
                    ref = var.get("valueFrom", {}).get("secretKeyRef")
                    if ref:
                        assert ref["key"] in made.get(ref["name"], set()), (env, ref)


def test_no_secret_object_and_no_secret_value_in_any_output(prod: Any) -> None:
    for objects in prod.objects.values():
        assert not [o for o in objects if o["kind"] == "Secret"]
    text = "".join(t for _, t in prod.files)
    assert "sk-" not in text


def test_generated_pods_meet_the_restricted_profile(prod: Any) -> None:
    for objects in prod.objects.values():
        for obj in objects:
            if obj["kind"] == "Deployment":
                assert violations(obj["spec"]["template"]["spec"]) == []


def _pod(**changes: Any) -> dict[str, Any]:
    container = {"name": "c", "securityContext": {
        "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}}
    pod: dict[str, Any] = {"securityContext": {"runAsNonRoot": True,
                                               "seccompProfile": {"type": "RuntimeDefault"}},
                           "containers": [container], "volumes": [{"name": "t", "emptyDir": {}}]}
    for key, value in changes.items():
        if key == "container":
            container["securityContext"].update(value)
        else:
            pod[key] = value
    return pod


@pytest.mark.parametrize("changes, expected", [
    ({"hostNetwork": True}, "hostNetwork"),
    ({"container": {"privileged": True}}, "privileged"),
    ({"container": {"allowPrivilegeEscalation": True}}, "allowPrivilegeEscalation"),
    ({"container": {"capabilities": {"drop": ["ALL"], "add": ["SYS_ADMIN"]}}}, "SYS_ADMIN"),
    ({"container": {"runAsUser": 0}}, "runAsUser"),
    ({"securityContext": {"runAsNonRoot": True}}, "seccompProfile"),
    ({"volumes": [{"name": "h", "hostPath": {"path": "/"}}]}, "hostPath"),
])
def test_restricted_profile_violations_are_found(changes: dict[str, Any],
                                                 expected: str) -> None:
    assert _pod() and violations(_pod()) == []
    found = violations(_pod(**changes))
    assert found and expected in " ".join(found)


def test_the_root_opt_out_is_excepted_only_from_running_as_root() -> None:
    root_pod = _pod(securityContext={"seccompProfile": {"type": "RuntimeDefault"}})
    assert violations(root_pod, ROOT_OPT_OUT) == []
    assert violations(root_pod)
    privileged = _pod(securityContext={"seccompProfile": {"type": "RuntimeDefault"}},
                      container={"privileged": True})
    assert violations(privileged, ROOT_OPT_OUT)


@pytest.mark.parametrize("data, message", [
    (b"x: " + b"y" * (MAX_FILE_BYTES + 1), "larger than"),
    (b"a: " + b"x" * 100_000 + b"\n", "longer than"),
    (b"a:\n" + b"[\n" * 1000, "nested too deeply"),
    (b"".join(b"  " * i + b"k:\n" for i in range(400)), "nested too deeply"),
    (b"a: !!binary aGVsbG8=\n", "not allowed"),
    (b"a: !!python/object/apply:os.system [id]\n", "not allowed"),
], ids=["huge-file", "long-line", "deep-flow", "deep-block", "binary-tag", "python-tag"])
def test_hostile_yaml_is_refused(data: bytes, message: str) -> None:
    with pytest.raises(SpecError) as caught:
        load_bytes(data, "hostile.yaml")
    assert message in str(caught.value)


def test_yaml_1_2_scalars() -> None:
    data = load_bytes(b"a: yes\nb: 010\nc: on\nd: 0o10\ne: 1e3\nf: <<\n", "x.yaml").data
    assert data == {"a": "yes", "b": 10, "c": "on", "d": 8, "e": 1000.0, "f": "<<"}
