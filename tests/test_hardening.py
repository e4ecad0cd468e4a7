"""Secrets stay references, ExternalSecrets are valid, pods meet the restricted Pod Security
Standard, and hostile YAML is refused; secret-looking values, names that collide with the
output layout and values the API server would refuse are refused at their line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import CASES
from modelapi_compile.cli import cli
from modelapi_compile.pipeline import compile_spec
from modelapi_compile.problems import SpecError
from modelapi_compile.resolve.pod_security import ROOT_OPT_OUT, violations
from modelapi_compile.spec.loader import MAX_FILE_BYTES, load_bytes

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


# --- attacks on the spec: secrets in plain text, colliding names, API-server limits -----------

ATTACKED = """apiVersion: modelapi.dev/v1alpha1
kind: ModelStack
metadata: {name: atk}
spec:
  namespace: atk
  modelAPIs:
    - name: local
      vllm:
        model: Qwen/Qwen2.5-0.5B-Instruct
        gpu: {count: 0}
        engine: {extraArgs: [--enable-prefix-caching]}
    - name: openai
      external: {url: "https://api.openai.com/v1", models: [gpt-4o-mini]}
    - name: gateway
      litellm:
        models:
          - {name: small, backend: local, model: Qwen/Qwen2.5-0.5B-Instruct}
        expose:
          host: llm.example.com
          ingressClassName: nginx
          fromNamespace: ingress-nginx
          annotations: {nginx.ingress.kubernetes.io/proxy-read-timeout: "600"}
  agents:
    - name: helper
      image: ghcr.io/example/helper:1.2.0
      modelAPI: gateway
      model: small
      podAnnotations: {example.com/team: ml}
      podLabels: {team: ml}
      nodeSelector: {pool: cpu}
      env:
        - {name: LOG_LEVEL, value: info}
  environments:
    - name: dev
      patch:
        agents:
          - name: helper
            replicas: 2
    - name: prod
  gitops:
    repoURL: https://github.com/example/gitops.git
    argocd: {enabled: true}
    flux: {enabled: true}
"""
TOKEN = "ghp_" + "A1b2C3d4E5" * 4  # a GitHub token's shape (not a real one)


def _validate(tmp_path: Path, text: str) -> Any:
    spec = tmp_path / "attacked.yaml"
    spec.write_text(text)
    return CliRunner().invoke(cli, ["validate", "-f", str(spec)])


def _line(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


SECRET_ATTACKS = {
    "env value shaped like a token": (
        "{name: LOG_LEVEL, value: info}", "{name: UPSTREAM, value: sk-proj-abcdefghij0123456789xy}",
        "spec.agents[0].env[0].value", "looks like an API token"),
    "env name of a secret": (
        "{name: LOG_LEVEL, value: info}", "{name: OPENAI_API_KEY, value: abc123}",
        "spec.agents[0].env[0].value", "'OPENAI_API_KEY' looks like a secret"),
    "pod annotation named like a token": (
        "{example.com/team: ml}", "{example.com/api-token: abc123def}",
        "spec.agents[0].podAnnotations.example.com/api-token", "looks like a secret"),
    "pod annotation shaped like a token": (
        "{example.com/team: ml}", "{example.com/team: " + TOKEN + "}",
        "spec.agents[0].podAnnotations.example.com/team", "API token"),
    "label shaped like a token": (
        "podLabels: {team: ml}", "podLabels: {team: sk-abcdefghijklmnopqrstuvwxyz}",
        "spec.agents[0].podLabels.team", "API token"),
    "nodeSelector shaped like an AWS key": (
        "{pool: cpu}", "{pool: AKIAABCDEFGHIJKLMNOP}", "spec.agents[0].nodeSelector.pool",
        "API token"),
    "extraArgs flag and value": (
        "[--enable-prefix-caching]", "[--enable-prefix-caching, --api-key, hunter2hunter2]",
        "spec.modelAPIs[0].vllm.engine.extraArgs[2]", "--api-key passes"),
    "extraArgs flag=value": (
        "[--enable-prefix-caching]", "[--api-key=hunter2hunter2]",
        "spec.modelAPIs[0].vllm.engine.extraArgs[0]", "--api-key passes"),
    "expose annotation with a password URL": (
        '"600"}', '"600", nginx.ingress.kubernetes.io/auth-url: "https://u:pw@auth.example.com"}',
        "spec.modelAPIs[2].litellm.expose.annotations.nginx.ingress.kubernetes.io/auth-url",
        "URL with a password"),
    "external URL with a password": (
        "https://api.openai.com/v1", "https://user:hunter2@api.openai.com/v1",
        "spec.modelAPIs[1].external.url", "URL with a password"),
    "repoURL with a token": (
        "https://github.com/example/gitops.git", f"https://{TOKEN}@github.com/example/g.git",
        "spec.gitops.repoURL", "carries credentials"),
    "repoURL with user and token": (
        "https://github.com/example/gitops.git", "https://oauth2:abc@gitlab.com/example/g.git",
        "spec.gitops.repoURL", "carries credentials"),
    "environment patch": (
        "            replicas: 2", "            replicas: 2\n            podAnnotations: "
        "{example.com/auth: 'Bearer abcdefghijklmnop'}",
        "spec.environments[0].patch.agents[0].podAnnotations.example.com/auth",
        "Authorization header"),
}


@pytest.mark.parametrize("attack", sorted(SECRET_ATTACKS))
def test_secret_looking_values_are_refused_at_their_line(tmp_path: Path, attack: str) -> None:
    old, new, path, message = SECRET_ATTACKS[attack]
    assert old in ATTACKED
    text = ATTACKED.replace(old, new, 1)
    result = _validate(tmp_path, text)
    assert result.exit_code == 1, result.output
    line = _line(text, new.split("\n")[-1].strip()[:30])
    assert f"attacked.yaml:{line}:" in result.output and f"{path}: " in result.output
    assert message in result.output and "spec.notSecrets" in result.output
    assert result.output.count("error:") == 1  # reported once


def test_a_false_positive_is_accepted_only_when_listed_under_not_secrets(
        tmp_path: Path) -> None:
    entry = "{name: OPENAI_API_KEY_FILE, value: /var/run/secrets/openai/api-key}"
    text = ATTACKED.replace("{name: LOG_LEVEL, value: info}", entry)
    refused = _validate(tmp_path, text)
    assert refused.exit_code == 1 and "'OPENAI_API_KEY_FILE' looks like a secret" in \
        refused.output
    allowed = text.replace("  namespace: atk\n", "  namespace: atk\n  notSecrets: "
                           "[/var/run/secrets/openai/api-key]\n")
    assert _validate(tmp_path, allowed).exit_code == 0
    # an entry that accepts nothing is an escape hiding nothing: refused, so none lingers
    stale = ATTACKED.replace("  namespace: atk\n", "  namespace: atk\n  notSecrets: [info]\n")
    result = _validate(tmp_path, stale)
    assert result.exit_code == 1 and "spec.notSecrets[0]: 'info' is not a value" in \
        result.output


NAME_ATTACKS = {
    "base": ("    - name: prod\n", "    - name: base\n", "folder of the output layout"),
    "shared": ("    - name: prod\n", "    - name: shared\n", "folder of the output layout"),
    "part-2": ("    - name: prod\n", "    - name: part-2\n", "folder of the output layout"),
    "dev and dev-part-1": ("    - name: prod\n", "    - name: dev-part-1\n",
                           "would give two generated objects one name"),
    "a generated name over 63": ("    - name: prod\n", "    - name: " + "p" * 55 + "\n",
                                 "exceeds 63 characters"),
}


@pytest.mark.parametrize("attack", sorted(NAME_ATTACKS))
def test_environment_names_that_collide_with_the_output_are_refused(tmp_path: Path,
                                                                    attack: str) -> None:
    old, new, message = NAME_ATTACKS[attack]
    text = ATTACKED.replace(old, new).replace("  gitops:\n", "  gitops:\n    overlayParts: 2\n")
    result = _validate(tmp_path, text)
    assert result.exit_code == 1, result.output
    assert f"attacked.yaml:{_line(text, new.strip())}:" in result.output
    assert "spec.environments[1].name" in result.output and message in result.output


def test_annotations_over_256_kib_are_refused_at_the_field(tmp_path: Path) -> None:
    big = "".join(f"\n        example.com/a{i}: {'x' * 50_000}" for i in range(6))  # 300 KB
    text = ATTACKED.replace(" {example.com/team: ml}", big)
    result = _validate(tmp_path, text)
    assert result.exit_code == 1, result.output[:500]
    assert f"attacked.yaml:{_line(text, 'podAnnotations')}:" in result.output
    assert "spec.agents[0].podAnnotations: 300" in result.output
    assert "at most 262144 (256 KiB)" in result.output


def test_a_configmap_over_1_mib_is_refused_not_an_internal_error(tmp_path: Path) -> None:
    settings = "".join(f"          note{i}: {'y' * 60_000}\n" for i in range(20))  # 1.2 MB
    notes = ", ".join(f"note{i}" for i in range(20))  # not LiteLLM keys: let them through
    text = ATTACKED.replace("        expose:\n", f"        settings:\n{settings}"
                            f"        allowUnknownKeys: [{notes}]\n        expose:\n")
    spec = tmp_path / "attacked.yaml"
    spec.write_text(text)
    result = CliRunner().invoke(cli, ["build", "-f", str(spec), "-o", str(tmp_path / "out"),
                                      "--no-helm"])
    assert result.exit_code == 1, result.output[:2000]
    assert "ConfigMap holds at most 1048576 (1 MiB)" in result.output
    assert f"attacked.yaml:{_line(text, '- name: gateway')}:" in result.output
    assert not (tmp_path / "out").exists()


_env_name = st.one_of(st.sampled_from(["base", "shared", "part-1", "part-2", "dev", "dev-part-1",
                                       "dev-part-2", "dev-shared", "prod", "default"]),
                      st.from_regex(r"[a-z]([-a-z0-9]{0,20}[a-z0-9])?", fullmatch=True))


@settings(max_examples=25, deadline=None)
@given(names=st.lists(_env_name, min_size=1, max_size=3), parts=st.integers(1, 3))
def test_environment_names_never_end_in_an_internal_error(names: list[str],
                                                          parts: int) -> None:
    """Whatever the environments are called: built, or refused at a line (exit 1)."""
    environments = "".join(f"    - name: {name}\n" for name in names)
    text = (ATTACKED.split("  environments:\n")[0] + "  environments:\n" + environments
            + "  gitops:\n" + ATTACKED.split("  gitops:\n")[1]).replace(
        "  gitops:\n", f"  gitops:\n    overlayParts: {parts}\n")
    try:
        compiled = compile_spec("-", use_helm=False, spec_bytes=text.encode())
    except SpecError as error:
        assert all(p.line for p in error.problems), error  # each at its line
        return
    paths = [path for path, _ in compiled.files]
    assert len(paths) == len(set(paths))
