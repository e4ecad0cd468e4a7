"""Issue 21, done when: the platform the issue describes, as a spec of the project's own
(tests/cases/valid/serving-platform.yaml), builds with no warning, and in every environment
and with both real engines none of the issue's eleven failures holds.

The real API server admits, converges and schedules each environment in
tests/test_control_plane.py (`serving-platform-dev`, `-staging`, `-prod`: Flux's
kustomize-controller code applies the two overlay parts, Argo CD's server-side apply the chart
and the ApplicationSet). The tests here read the rendered objects the way the controller that
acts on them does; where that controller cannot run here, the model it follows is named."""

from __future__ import annotations

import importlib.metadata
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from conftest import CASES, ENGINES, Rendered, render_spec
from modelapi_compile.cli import cli
from modelapi_compile.resolve.pod_security import level_violations
from test_keda_wake import SCRAPE, _firing, _run_promtool, _wake_rule
from test_serving_lifecycle import _amount, _containers, _hpa_replicas, _secret_reads
from vllm_cli import vllm_serve_parser

Obj = dict[str, Any]
Objects = dict[tuple[str, str], Obj]
PLATFORM = CASES / "valid" / "serving-platform.yaml"
ENVIRONMENTS = ("dev", "staging", "prod")
NAMESPACES = {"dev": "llm-dev", "staging": "llm-staging", "prod": "llm"}
ROUTER_TIMEOUT = 600  # router.timeout of the spec: the longest request LiteLLM lets run


@pytest.fixture(scope="module")
def rendered(helm: Any, kustomize: Any, tmp_path_factory: pytest.TempPathFactory) -> Rendered:
    return render_spec(PLATFORM, tmp_path_factory.mktemp("serving"), helm, kustomize)


def _every(rendered: Rendered) -> list[tuple[str, str, Objects]]:
    """(engine, environment, objects by kind and name) for each render."""
    assert set(rendered) == set(ENGINES)
    found = []
    for engine, environments in rendered.items():
        assert set(environments) == set(ENVIRONMENTS)
        for environment, objects in environments.items():
            found.append((engine, environment,
                          {(o["kind"], o["metadata"]["name"]): o for o in objects}))
    return found


def _workload(objs: Objects, name: str) -> Obj:
    for kind in ("Deployment", "StatefulSet"):
        if (kind, f"serving-{name}") in objs:
            return objs[(kind, f"serving-{name}")]
    raise KeyError(name)


def _pod(objs: Objects, name: str) -> Obj:
    pod: Obj = _workload(objs, name)["spec"]["template"]["spec"]
    return pod


def _pods(objs: Objects) -> list[Obj]:
    return [o["spec"]["template"] for (kind, _), o in objs.items()
            if kind in ("Deployment", "StatefulSet")]


def test_the_platform_builds_with_no_warning(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["build", "-f", str(PLATFORM), "-o", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "warning" not in result.output.lower(), result.output
    overlay = tmp_path / "overlays" / "dev"
    assert sorted(p.name for p in overlay.iterdir() if p.is_dir()) == [
        "part-1", "part-2", "shared"]
    applications = list(yaml.safe_load_all(
        next((tmp_path / "gitops" / "argocd").glob("*applicationset*.yaml")).read_text()))
    assert [a["kind"] for a in applications if a] == ["ApplicationSet"]


# --- 1 requests never exceed limits -----------------------------------------------------------


def test_no_request_above_its_limit_in_any_container(rendered: Rendered) -> None:
    """The API server's ValidateResourceRequirements, over every container of every pod."""
    names: set[str] = set()
    for _, _, objs in _every(rendered):
        for template in _pods(objs):
            for container in _containers(template["spec"]):
                limits = container["resources"].get("limits", {})
                for resource, request in container["resources"].get("requests", {}).items():
                    assert resource in limits or resource == "cpu", (container["name"], resource)
                    if resource in limits:
                        assert _amount(request) <= _amount(limits[resource])
                names.add(container["name"])
        big = _pod(objs, "llama70b")["containers"][0]["resources"]["requests"]
        assert _amount(big["cpu"]) >= 2 * (2 + 4)  # 2 + N physical cores for N GPUs
        assert _amount(big["memory"]) >= Decimal(70e9 * 2)  # the 70B model's 16-bit weights
    assert names == {"vllm", "litellm", "ollama", "model-puller", "agent"}


# --- 2 LiteLLM with a database runs as non-root -----------------------------------------------


def test_litellm_with_its_database_runs_as_non_root(rendered: Rendered) -> None:
    tested = importlib.metadata.version("litellm")  # the real-proxy tests' pin
    for _, _, objs in _every(rendered):
        pod = _pod(objs, "gateway")
        container = pod["containers"][0]
        assert container["image"] == f"ghcr.io/berriai/litellm:v{tested}"
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] != 0
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        env = {e["name"]: e for e in container["env"]}
        assert "DATABASE_URL" in env
        assert not [name for name in env if name.startswith("PRISMA_")]  # the image's own
        _assert_on_writable_volumes(_workload(objs, "gateway"), [
            env["HOME"]["value"], env["XDG_CACHE_HOME"]["value"]])


def _assert_on_writable_volumes(workload: Obj, paths: list[str]) -> None:
    """Each path is under a writable mount of an emptyDir or a claim (a StatefulSet's own
    from its claim templates)."""
    pod = workload["spec"]["template"]["spec"]
    container = pod["containers"][0]
    volumes = {v["name"]: v for v in pod["volumes"]}
    volumes |= {t["metadata"]["name"]: {"persistentVolumeClaim": {}}
                for t in workload["spec"].get("volumeClaimTemplates", [])}
    for path in paths:
        mounts = [m for m in container["volumeMounts"]
                  if path == m["mountPath"] or path.startswith(m["mountPath"].rstrip("/") + "/")]
        assert mounts, path
        mount = max(mounts, key=lambda m: len(m["mountPath"]))
        assert not mount.get("readOnly")
        assert "emptyDir" in volumes[mount["name"]] or \
            "persistentVolumeClaim" in volumes[mount["name"]], path


# --- 3 every Secret read exists --------------------------------------------------------------


def test_every_secret_read_has_its_external_secret(rendered: Rendered) -> None:
    for _, _, objs in _every(rendered):
        made = {(o["spec"]["target"]["name"], d["secretKey"])
                for o in objs.values() if o["kind"] == "ExternalSecret" for d in o["spec"]["data"]}
        reads = {pair for obj in objs.values() for pair in _secret_reads(obj)}
        assert {("litellm-metrics", "key"), ("redis", "password"), ("planner-key", "key"),
                ("support-bot-key", "key"), ("indexer-key", "key")} <= reads
        assert reads <= made, reads - made
        assert not [o for o in objs.values() if o["kind"] == "Secret"]  # no value in Git


# --- 4 scale to zero wakes reliably ----------------------------------------------------------


def _api_base(objs: Objects, route: str) -> str:
    config = yaml.safe_load(objs[("ConfigMap", "serving-gateway-config")]["data"]["config.yaml"])
    base: str = next(m["litellm_params"]["api_base"] for m in config["model_list"]
                     if m["model_name"] == route)
    return base


def test_the_sleeping_70b_model_wakes_on_a_new_agents_first_call(rendered: Rendered,
                                                                  tmp_path: Path) -> None:
    """Prometheus' own engine (promtool test rules) on synthetic series of LiteLLM's
    counter: a new series appearing with the value 3 wakes the model within one polling
    interval; a quiet window lets it sleep again."""
    checked = 0
    for engine, environment, objs in _every(rendered):
        spec = objs[("ScaledObject", "serving-llama70b")]["spec"]
        if environment == "prod":
            assert spec["minReplicaCount"] == 1
            continue
        assert spec["minReplicaCount"] == 0
        # KEDA scales a never-active target to zero once initialCooldownPeriod has passed
        # since creation: not before the 1h startup budget and the image pull (a
        # Deployment's progress deadline counts both; a StatefulSet has none)
        workload = _workload(objs, "llama70b")
        probe = workload["spec"]["template"]["spec"]["containers"][0]["startupProbe"]
        assert probe["periodSeconds"] * probe["failureThreshold"] >= 3600
        first_start = workload["spec"].get("progressDeadlineSeconds", 3600)
        assert spec["initialCooldownPeriod"] >= max(first_start, 3600)
        wake = next(t for t in spec["triggers"] if t.get("name") == "litellm-calls")
        query, threshold = wake["metadata"]["query"], wake["metadata"]["activationThreshold"]
        polling = spec["pollingInterval"]
        series = ("litellm_deployment_total_requests_total{"
                  f'namespace="{NAMESPACES[environment]}",pod="gateway-a",'
                  f'api_base="{_api_base(objs, "big")}",hashed_api_key="%s"}}')
        appears, end = 300, 900
        samples, blanks = end // SCRAPE, appears // SCRAPE
        folder = tmp_path / f"{engine}-{environment}"
        folder.mkdir()
        _run_promtool(folder, [_wake_rule("Wake", query, threshold)], {
            "interval": f"{SCRAPE}s",
            "input_series": [
                {"series": series % "planner", "values": f"7x{samples}"},
                {"series": series % "support-bot",
                 "values": f"_x{blanks} 3x{samples - blanks}"},
            ],
            "alert_rule_test": [
                _firing(appears - SCRAPE, "Wake", False),
                *(_firing(appears + s, "Wake", True) for s in range(0, polling + 1, SCRAPE)),
                _firing(end, "Wake", False),
            ],
        })
        checked += 1
    assert checked == 2 * len(ENGINES)  # dev and staging, both engines


# --- 5 scale-in fits a model that took an hour to load ---------------------------------------


def test_scale_in_waits_as_long_as_a_replica_takes_to_load(rendered: Rendered) -> None:
    """autoscaling/v2's algorithm (tests/test_serving_lifecycle.py's model of the HPA that
    KEDA creates from `advanced.horizontalPodAutoscalerConfig`)."""
    for _, environment, objs in _every(rendered):
        if environment != "prod":
            continue
        step = 60
        counts = _hpa_replicas(objs[("ScaledObject", "serving-llama70b")],
                               [15.0] * 5 + [0.0] * 200, current=1, step=step)
        assert max(counts) == 3
        first_drop = next(i for i, n in enumerate(counts) if i > 5 and n < 3)
        assert (first_drop - 4) * step >= 3600  # the 1h startup budget
        assert counts[first_drop] == 2  # one replica at a time
        behavior = objs[("ScaledObject", "serving-llama8b")]["spec"]["advanced"][
            "horizontalPodAutoscalerConfig"]["behavior"]["scaleDown"]
        assert behavior["stabilizationWindowSeconds"] >= 30 * 60  # the default 30m budget


# --- 6 graceful drain -------------------------------------------------------------------------


def test_every_server_drains_before_sigterm(rendered: Rendered) -> None:
    for _, _, objs in _every(rendered):
        for name in ("llama70b", "llama8b", "embeddings"):
            pod = _pod(objs, name)
            command = pod["containers"][0]["lifecycle"]["preStop"]["exec"]["command"]
            budget, endpoint_delay = int(command[3]), int(command[4])
            assert budget >= ROUTER_TIMEOUT + endpoint_delay
            assert pod["terminationGracePeriodSeconds"] > budget
        gateway = _pod(objs, "gateway")
        sleep = gateway["containers"][0]["lifecycle"]["preStop"]["sleep"]["seconds"]
        assert gateway["terminationGracePeriodSeconds"] >= sleep + ROUTER_TIMEOUT


# --- 7 exposure admits what really sends traffic ---------------------------------------------


def test_the_route_and_the_policy_admit_envoy_gateways_proxies(rendered: Rendered) -> None:
    for _, _, objs in _every(rendered):
        route = objs[("HTTPRoute", "serving-gateway")]["spec"]
        assert route["parentRefs"] == [{"name": "public-gw", "namespace": "gateway-system"}]
        assert route["hostnames"] == ["llm.example.com"]
        backend = route["rules"][0]["backendRefs"][0]
        service = objs[("Service", backend["name"])]["spec"]
        port = next(p for p in service["ports"] if p["port"] == backend["port"])
        labels = _workload(objs, "gateway")["spec"]["template"]["metadata"]["labels"]
        container_port = next(p["containerPort"] for p in _pod(objs, "gateway")["containers"][0][
            "ports"] if p["name"] == port["targetPort"] or p["containerPort"] == port["targetPort"])
        admitted = [
            rule for policy in objs.values() if policy["kind"] == "NetworkPolicy"
            and policy["spec"]["podSelector"].get("matchLabels", {}).items() <= labels.items()
            for rule in policy["spec"].get("ingress", [])
            if {"namespaceSelector": {"matchLabels": {
                "kubernetes.io/metadata.name": "envoy-gateway-system"}}} in rule.get("from", [])]
        assert admitted
        assert any(p.get("port") in (container_port, port["targetPort"])
                   for rule in admitted for p in rule.get("ports", []))


# --- 8 object storage without zone pinning ---------------------------------------------------


def test_the_streamed_model_is_not_tied_to_a_zone(rendered: Rendered) -> None:
    for _, _, objs in _every(rendered):
        workload = _workload(objs, "llama8b")
        assert workload["kind"] == "Deployment"
        assert not workload["spec"].get("volumeClaimTemplates")
        volumes = {v["name"]: v for v in workload["spec"]["template"]["spec"]["volumes"]}
        assert "emptyDir" in volumes["model-cache"]
        assert not [v for v in volumes.values() if "persistentVolumeClaim" in v]
        claims = {name for kind, name in objs if kind == "PersistentVolumeClaim"}
        assert not [c for c in claims if "llama8b" in c]


# --- 9 vLLM refuses nothing validate accepted ------------------------------------------------


def test_vllm_parses_every_argument_it_is_given(rendered: Rendered) -> None:
    """Each vLLM container's arguments through the model of the pinned vLLM's own parser
    (tests/vllm_cli.py: EngineArgs' arities, choices and bounds)."""
    for _, _, objs in _every(rendered):
        for name in ("llama70b", "llama8b", "embeddings"):
            container = _pod(objs, name)["containers"][0]
            assert container["command"] == ["vllm", "serve"]
            parsed = vllm_serve_parser().parse_args(container["args"])
            gpus = int(container["resources"]["limits"]["nvidia.com/gpu"])
            assert (parsed.tensor_parallel_size or 1) == gpus
            if name == "llama8b":
                assert parsed.max_lora_rank == 32 and parsed.max_loras == 2
                assert set(parsed.lora_modules) == {"sql", "support"}
                assert parsed.load_format == "runai_streamer"


# --- 10 disruption and spread ----------------------------------------------------------------


def _annotations(objs: Objects, name: str) -> dict[str, str]:
    found: dict[str, str] = _workload(objs, name)["spec"]["template"]["metadata"].get(
        "annotations", {})
    return found


def test_spread_disruption_and_headless_services(rendered: Rendered) -> None:
    for _, environment, objs in _every(rendered):
        keys = {c["topologyKey"] for c in _pod(objs, "gateway")["topologySpreadConstraints"]}
        assert "topology.kubernetes.io/zone" in keys

        # a single GPU replica (the 70B in dev: at most one) is kept off consolidation;
        # replicated models have PodDisruptionBudgets instead
        single = environment == "dev"
        assert ("karpenter.sh/do-not-disrupt" in _annotations(objs, "llama70b")) is single
        for name in ("llama8b", "embeddings"):
            assert "karpenter.sh/do-not-disrupt" not in _annotations(objs, name)
            assert ("PodDisruptionBudget", f"serving-{name}") in objs
        for (kind, _), obj in objs.items():
            if kind == "StatefulSet":
                service = objs[("Service", obj["spec"]["serviceName"])]["spec"]
                assert service["clusterIP"] == "None"
                assert service["selector"] == obj["spec"]["selector"]["matchLabels"]


# --- 11 vLLM without root --------------------------------------------------------------------


def test_every_pod_meets_pod_security_restricted(rendered: Rendered) -> None:
    for engine, environment, objs in _every(rendered):
        if engine == "kustomize":  # the chart leaves the Namespace to Argo CD
            namespace = objs[("Namespace", NAMESPACES[environment])]["metadata"]["labels"]
            assert namespace["pod-security.kubernetes.io/enforce"] == "restricted"
        for template in _pods(objs):
            assert level_violations(template["spec"], "restricted") == []
        for name in ("llama70b", "llama8b", "embeddings"):
            pod = _pod(objs, name)
            container = pod["containers"][0]
            assert pod["securityContext"]["runAsNonRoot"] is True
            assert container["securityContext"]["readOnlyRootFilesystem"] is True
            env = {e["name"]: e.get("value") for e in container["env"]}
            caches = ["HOME", "HF_HOME", "XDG_CACHE_HOME", "VLLM_CACHE_ROOT",
                      "TRITON_CACHE_DIR"]
            _assert_on_writable_volumes(_workload(objs, name), [env[k] for k in caches])
