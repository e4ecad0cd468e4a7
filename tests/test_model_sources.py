"""Model sources (Hugging Face, pvc://, s3://, gs://) and LoRA adapters on vLLM, checked on
what real Helm and Kustomize render: the argv parsed the way `vllm serve` parses it, the
mounts it reads, the credentials it gets (Secret references only), what the NetworkPolicies
let it reach, and LiteLLM routes and agents that name adapters."""

from __future__ import annotations

import argparse
from typing import Any

import pytest
import yaml

from cluster_models import Address, NetworkPolicies, pod_of
from conftest import CASES, render_spec
from vllm_cli import vllm_serve_parser

KNOBS = CASES / "valid" / "production-knobs.yaml"
Obj = dict[str, Any]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory, helm: Any, kustomize: Any
             ) -> list[list[Obj]]:
    found = render_spec(KNOBS, tmp_path_factory.mktemp("knobs"), helm, kustomize)
    return [found["helm"]["prod"], found["kustomize"]["prod"]]


def _deployment(objects: list[Obj], name: str) -> Obj:
    return next(o for o in objects if o["kind"] == "Deployment"
                and o["metadata"]["name"] == name)


def _argv(objects: list[Obj], name: str) -> argparse.Namespace:
    container = _deployment(objects, name)["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["vllm", "serve"]
    return vllm_serve_parser().parse_args(container["args"])


def _mount_of(objects: list[Obj], name: str, path: str) -> tuple[Obj, Obj]:
    """The volume and mount under which `path` lies in the vLLM container."""
    pod = _deployment(objects, name)["spec"]["template"]["spec"]
    mounts = pod["containers"][0]["volumeMounts"]
    mount = max((m for m in mounts if path.startswith(m["mountPath"].rstrip("/") + "/")),
                key=lambda m: len(m["mountPath"]))
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    return volume, mount


def _env(objects: list[Obj], name: str) -> dict[str, Obj]:
    container = _deployment(objects, name)["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e for e in container.get("env", [])}


def test_lora_adapters_as_vllm_parses_them(rendered: Any) -> None:
    for objects in rendered:
        args = _argv(objects, "knobs-qwen")
        assert args.model_tag == "Qwen/Qwen2.5-7B-Instruct"
        assert args.enable_lora is True
        assert args.lora_modules == {"sql-adapter": "example-org/qwen-sql-lora",
                                     "support-adapter": "/mnt/models/adapters/qwen/support"}
        assert (args.max_loras, args.max_lora_rank) == (2, 64)
        # the adapter on a claim is readable there, read-only
        volume, mount = _mount_of(objects, "knobs-qwen", args.lora_modules["support-adapter"])
        assert volume["persistentVolumeClaim"] == {"claimName": "adapters", "readOnly": True}
        assert mount["readOnly"] is True
        # a model without adapters gets no LoRA flags
        assert _argv(objects, "knobs-nightly").enable_lora is None


def test_pvc_model_is_served_from_the_read_only_claim(rendered: Any) -> None:
    for objects in rendered:
        args = _argv(objects, "knobs-llama")
        assert args.model_tag == "/mnt/models/models-rwx/meta-llama/Llama-3.1-8B-Instruct"
        assert args.served_model_name == ["llama-8b"]
        assert args.load_format is None
        volume, mount = _mount_of(objects, "knobs-llama", args.model_tag)
        assert volume["persistentVolumeClaim"] == {"claimName": "models-rwx", "readOnly": True}
        assert mount == {"name": volume["name"], "mountPath": "/mnt/models/models-rwx",
                         "readOnly": True}
        assert not any(o["kind"] == "PersistentVolumeClaim"
                       and o["metadata"]["name"] == "models-rwx" for o in objects)
        assert _env(objects, "knobs-llama")["HF_HUB_OFFLINE"]["value"] == "1"


def test_object_storage_models_stream_with_secret_references(rendered: Any) -> None:
    for objects in rendered:
        s3 = _argv(objects, "knobs-mistral")
        assert (s3.model_tag, s3.load_format) == ("s3://models/mistral-7b-instruct",
                                                  "runai_streamer")
        env = _env(objects, "knobs-mistral")
        assert env["AWS_ACCESS_KEY_ID"]["valueFrom"]["secretKeyRef"] == {
            "name": "minio", "key": "access-key"}
        assert env["AWS_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"] == {
            "name": "minio", "key": "secret-key"}
        assert "value" not in env["AWS_ACCESS_KEY_ID"]
        assert env["AWS_ENDPOINT_URL"]["value"] == "http://minio.storage.svc:9000"
        assert env["RUNAI_STREAMER_S3_USE_VIRTUAL_ADDRESSING"]["value"] == "0"
        gs = _argv(objects, "knobs-gemma")
        assert (gs.model_tag, gs.load_format) == ("gs://models-eu/gemma-2-9b-it",
                                                  "runai_streamer")
        # workload identity: the pod's own ServiceAccount carries the binding, no keys
        account = next(o for o in objects if o["kind"] == "ServiceAccount"
                       and o["metadata"]["name"] == "knobs-gemma")
        assert account["metadata"]["annotations"]["iam.gke.io/gcp-service-account"] == \
            "vllm@example-project.iam.gserviceaccount.com"
        assert _deployment(objects, "knobs-gemma")["spec"]["template"]["spec"][
            "serviceAccountName"] == "knobs-gemma"
        assert not {"AWS_ACCESS_KEY_ID", "GOOGLE_APPLICATION_CREDENTIALS"} & set(
            _env(objects, "knobs-gemma"))


def test_what_each_model_source_may_reach(rendered: Any) -> None:
    for objects in rendered:
        policies = NetworkPolicies.of(objects)
        pods = {name: pod_of(_deployment(objects, f"knobs-{name}"))
                for name in ("qwen", "llama", "mistral", "gemma")}
        hub, minio, metadata = Address("18.239.50.1"), Address("10.8.0.5"), Address(
            "169.254.169.254")
        assert policies.egress_allowed(pods["qwen"], hub, 443)  # Hugging Face
        assert not policies.egress_allowed(pods["llama"], hub, 443)  # offline, from a claim
        assert policies.egress_allowed(pods["mistral"], minio, 9000)  # its S3 endpoint
        assert not policies.egress_allowed(pods["qwen"], minio, 9000)
        assert policies.egress_allowed(pods["gemma"], metadata, 80)  # GKE workload identity
        assert not policies.egress_allowed(pods["qwen"], metadata, 80)


def test_litellm_routes_and_agents_reach_adapters(rendered: Any) -> None:
    for objects in rendered:
        served = {}
        for name in ("qwen", "llama", "mistral", "gemma", "nightly"):
            args = _argv(objects, f"knobs-{name}")
            served[f"http://knobs-{name}:8000/v1"] = set(args.served_model_name) | set(
                args.lora_modules or {})
        config = next(o for o in objects if o["kind"] == "ConfigMap"
                      and o["metadata"]["name"] == "knobs-gateway-config")
        model_list = yaml.safe_load(config["data"]["config.yaml"])["model_list"]
        routes = {m["model_name"]: m["litellm_params"] for m in model_list}
        assert routes["sql"]["model"] == "hosted_vllm/sql-adapter"
        for params in routes.values():
            if params["model"].startswith("hosted_vllm/"):
                # what LiteLLM sends as `model` is a name that vLLM process serves
                assert params["model"].removeprefix("hosted_vllm/") in served[
                    params["api_base"]], params
        env = {e["name"]: e.get("value") for e in _env(objects, "knobs-sql-agent").values()}
        assert env["MODEL_NAME"] in served[env["MODEL_API_URL"]]
        assert env["MODEL_NAME"] == "sql-adapter"


def test_the_parser_model_rejects_what_vllm_rejects() -> None:
    parser = vllm_serve_parser()
    with pytest.raises(SystemExit):
        parser.parse_args(["m", "--lora-modules", "no-path-here"])
    with pytest.raises(argparse.ArgumentError):
        parser.parse_args(["m", "--load-format", "streamer"])


def test_graph_shows_sources_and_adapters() -> None:
    from modelapi_compile.commands.graph import graph_text
    from modelapi_compile.spec.validate import load_spec

    text = graph_text(load_spec(str(KNOBS)), "prod", "mermaid")
    assert '"qwen (vllm qwen-7b + LoRA sql-adapter, support-adapter)"' in text
    assert '"llama (vllm llama-8b from pvc://models-rwx/meta-llama/Llama-3.1-8B-Instruct)"' \
        in text
    assert '-->|"sql → sql-adapter"|' in text


