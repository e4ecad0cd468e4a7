"""LiteLLM in production (issues 13 and 15), asserted on the objects the real engines render
(Helm SDK and Kustomize): database and Redis reachable through exact egress rules and
nothing else new, Prisma's writable paths, agents' own keys, Redis routing state, settings
defaults, authenticated metrics, sizing, Ingress / HTTPRoute exposure and its policy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from jsonschema import Draft7Validator

from cluster_models import Address, NetworkPolicies, Pod
from conftest import CASES, missing_engine
from modelapi_compile.cli import cli
from modelapi_compile.verify.engines import render_chart
from modelapi_compile.verify.kubeschemas import SchemaCatalog

SPEC = CASES / "valid" / "litellm-gateway.yaml"
NAMESPACES = {"staging": "llm-staging", "prod": "llm"}
Objects = dict[tuple[str, str], dict[str, Any]]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("gw")
    result = CliRunner().invoke(cli, ["build", "-f", str(SPEC), "-o", str(out)])
    assert result.exit_code == 0, result.output
    return out, result.output


@pytest.fixture(scope="module")
def engines(built: tuple[Path, str], helm: Any, kustomize: Any
            ) -> dict[str, dict[str, Objects]]:
    """env -> engine -> objects by (kind, name): what Helm and Kustomize render."""
    out, _ = built
    rendered: dict[str, dict[str, Objects]] = {}
    for env, namespace in NAMESPACES.items():
        by_engine = {
            "helm": render_chart(helm, out / "charts" / "gw", env, namespace),
            "kustomize": kustomize(out / "overlays" / env),
        }
        rendered[env] = {engine: {(o["kind"], o["metadata"]["name"]): o for o in objects}
                         for engine, objects in by_engine.items()}
        # Only the overlays carry the Namespace; Helm creates it with createNamespace.
        rendered[env]["kustomize"].pop(("Namespace", namespace))
        assert rendered[env]["helm"] == rendered[env]["kustomize"], env
    return rendered


def _each(engines: dict[str, dict[str, Objects]], env: str) -> list[Objects]:
    return list(engines[env].values())


def _config(objs: Objects) -> dict[str, Any]:
    text = objs[("ConfigMap", "gw-gateway-config")]["data"]["config.yaml"]
    loaded: dict[str, Any] = yaml.safe_load(text)
    return loaded


def _container(objs: Objects, name: str) -> dict[str, Any]:
    container: dict[str, Any] = objs[("Deployment", name)]["spec"]["template"]["spec"][
        "containers"][0]
    return container


def _env(objs: Objects, name: str) -> dict[str, Any]:
    return {e["name"]: e for e in _container(objs, name).get("env", [])}


def _pod(objs: Objects, name: str) -> Pod:
    """A pod of the rendered Deployment `name`, with the labels its template gives it."""
    deployment = objs[("Deployment", name)]
    return Pod(deployment["metadata"]["namespace"],
               dict(deployment["spec"]["template"]["metadata"]["labels"]))


def _other(namespace: str, **labels: str) -> Pod:
    return Pod(namespace, dict(labels))


# --- 13.4: database ----------------------------------------------------------------------


def test_proxy_reaches_its_database_and_redis_and_nothing_else_new(engines: Any) -> None:
    for objs in _each(engines, "prod"):
        net = NetworkPolicies.of(objs.values())
        proxy, helper = _pod(objs, "gw-gateway"), _pod(objs, "gw-helper")
        out = net.egress_allowed
        assert out(proxy, Address("10.20.0.15"), 5432)
        assert not out(proxy, Address("10.20.0.16"), 5432)  # the next host
        assert not out(proxy, Address("10.20.0.15"), 5433)
        redis = _other("cache", app="redis")
        assert out(proxy, redis, 6379)
        assert not out(proxy, redis, 6380)
        assert not out(proxy, _other("other", app="redis"), 6379)
        # what the proxy could reach before is unchanged: its backends and public HTTPS
        assert net.connects(proxy, _pod(objs, "gw-ollama"), 11434)
        assert out(proxy, Address("162.159.140.245"), 443)
        assert not out(proxy, Address("10.9.9.9"), 443)  # private ranges stay closed
        # no other pod of the stack gets the database or Redis
        assert not out(helper, Address("10.20.0.15"), 5432)
        assert not out(helper, redis, 6379)
    for objs in _each(engines, "staging"):  # the staging database is given as a range
        net = NetworkPolicies.of(objs.values())
        proxy = _pod(objs, "gw-gateway")
        assert net.egress_allowed(proxy, Address("10.30.0.200"), 5432)
        assert not net.egress_allowed(proxy, Address("10.20.0.15"), 5432)


def test_prisma_writes_only_where_the_pod_can_write(engines: Any, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """LiteLLM 1.80 applies its Prisma migrations at start-up and writes migration files
    into the folder LITELLM_MIGRATION_DIR names, or else into its package on the read-only
    root. The rendered pod names a mounted emptyDir; the real package then copies its
    schema and migrations there."""
    for objs in _each(engines, "prod"):
        spec = objs[("Deployment", "gw-gateway")]["spec"]["template"]["spec"]
        container = spec["containers"][0]
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert spec["securityContext"]["runAsUser"] == 65532
        folder = _env(objs, "gw-gateway")["LITELLM_MIGRATION_DIR"]["value"]
        mount = next(m for m in container["volumeMounts"] if m["mountPath"] == folder)
        volume = next(v for v in spec["volumes"] if v["name"] == mount["name"])
        assert "emptyDir" in volume and not mount.get("readOnly")
        assert _env(objs, "gw-gateway")["DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {
            "name": "litellm-db", "key": "url"}
        assert _config(objs)["general_settings"]["database_url"] == "os.environ/DATABASE_URL"
    try:
        from litellm_proxy_extras.utils import ProxyExtrasDBManager
    except ImportError:
        missing_engine("litellm[proxy] (litellm_proxy_extras)")
    writable = tmp_path / folder.lstrip("/")
    writable.mkdir(parents=True)  # the emptyDir exists, empty, when the container starts
    monkeypatch.setenv("LITELLM_MIGRATION_DIR", str(writable))
    assert ProxyExtrasDBManager._get_prisma_dir() == str(writable)
    assert (writable / "schema.prisma").is_file()
    assert any((writable / "migrations").iterdir())
    monkeypatch.delenv("LITELLM_MIGRATION_DIR")
    package = Path(ProxyExtrasDBManager._get_prisma_dir())
    assert package != writable and "site-packages" in str(package)  # the read-only root


# --- 13.6 / 15.7: agents' own keys ---------------------------------------------------------


def test_agents_use_their_own_key_and_the_master_key_only_when_opted_in(
        engines: Any, built: tuple[Path, str]) -> None:
    for objs in _each(engines, "prod"):
        assert _env(objs, "gw-helper")["MODEL_API_KEY"]["valueFrom"]["secretKeyRef"] == {
            "name": "helper-key", "key": "key"}
        assert _env(objs, "gw-admin-bot")["MODEL_API_KEY"]["valueFrom"]["secretKeyRef"] == {
            "name": "litellm-master", "key": "master-key"}
    _, output = built
    assert ("warning: spec.agents[1].useMasterKey: agent 'admin-bot' gets the master key of "
            "LiteLLM proxy 'gateway'") in output


# --- 13.13 / 15.6: Redis -------------------------------------------------------------------


def test_redis_feeds_router_settings_from_its_secret(engines: Any) -> None:
    for objs in _each(engines, "prod"):
        router = _config(objs)["router_settings"]
        assert router["routing_strategy"] == "usage-based-routing-v2"
        assert (router["redis_host"], router["redis_port"]) == ("redis.cache.svc", 6379)
        assert router["redis_password"] == "os.environ/ROUTER_REDIS_PASSWORD"
        assert _env(objs, "gw-gateway")["ROUTER_REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
            "name": "redis", "key": "password"}
        assert objs[("Deployment", "gw-gateway")]["spec"]["replicas"] == 3


# --- 13.15 / 15.6: settings and params ------------------------------------------------------


def test_settings_defaults_are_overridable_and_params_pass_through(engines: Any) -> None:
    for objs in _each(engines, "prod"):
        config = _config(objs)
        settings = config["litellm_settings"]
        assert settings["drop_params"] is True
        assert settings["disable_hf_tokenizer_download"] is True
        assert settings["request_timeout"] == 300
        assert settings["success_callback"] == ["os.environ/LOG_SINK"]
        assert settings["callbacks"] == ["prometheus"]
        params = {m["model_name"]: m["litellm_params"] for m in config["model_list"]}
        assert params["llama"] == {"model": "ollama_chat/llama3.2:1b",
                                   "api_base": "http://gw-ollama:11434",
                                   "order": 1, "rpm": 100, "stream_timeout": 600}
        assert params["gpt-4o-mini"]["tpm"] == 200000
        assert params["gpt-4o-mini"]["api_key"] == "os.environ/OPENAI_API_KEY"
    for objs in _each(engines, "staging"):
        assert _config(objs)["litellm_settings"]["drop_params"] is False  # overridden


# --- 13.16: metrics -------------------------------------------------------------------------


def test_service_monitor_authenticates_where_metrics_need_a_key(engines: Any,
                                                                shared_crds: Path) -> None:
    schema = json.loads((shared_crds / "monitoring.coreos.com" / "servicemonitor_v1.json")
                        .read_text())
    for objs in _each(engines, "prod"):
        assert _config(objs)["litellm_settings"]["require_auth_for_metrics_endpoint"] is True
        monitor = objs[("ServiceMonitor", "gw-gateway")]
        (endpoint,) = monitor["spec"]["endpoints"]
        assert endpoint["authorization"] == {
            "type": "Bearer", "credentials": {"name": "litellm-metrics", "key": "key"}}
        assert list(Draft7Validator(schema).iter_errors(monitor)) == []


# --- 13.17: sizing --------------------------------------------------------------------------


def test_proxy_is_sized_per_litellm_production_guide(engines: Any) -> None:
    for objs in _each(engines, "prod"):
        resources = _container(objs, "gw-gateway")["resources"]
        assert resources == {"requests": {"cpu": "2", "memory": "4Gi"},
                             "limits": {"cpu": "2", "memory": "4Gi"}}  # Guaranteed QoS


# --- 15.5: exposure -------------------------------------------------------------------------


def test_ingress_with_tls_admits_only_the_controller_namespace(engines: Any) -> None:
    catalog = SchemaCatalog("1.31.0", strict=True)
    for objs in _each(engines, "prod"):
        ingress = objs[("Ingress", "gw-gateway")]
        assert ingress["spec"]["ingressClassName"] == "nginx"
        assert ingress["spec"]["tls"] == [{"hosts": ["llm.example.com"],
                                           "secretName": "llm-tls"}]
        (rule,) = ingress["spec"]["rules"]
        backend = rule["http"]["paths"][0]["backend"]["service"]
        assert backend["name"] == "gw-gateway"
        assert objs[("Service", "gw-gateway")]["spec"]["ports"][0]["name"] == \
            backend["port"]["name"]
        assert catalog.check(ingress) == []
        assert ("HTTPRoute", "gw-gateway") not in objs
        policy = objs[("NetworkPolicy", "gw-gateway")]["spec"]
        controller = [r for r in policy["ingress"] if any(
            p.get("namespaceSelector", {}).get("matchLabels") for p in r["from"])]
        assert {"from": [{"namespaceSelector": {"matchLabels": {
            "kubernetes.io/metadata.name": "ingress-nginx"}}}],
            "ports": [{"port": 4000, "protocol": "TCP"}]} in controller
        net = NetworkPolicies.of(objs.values())
        proxy = _pod(objs, "gw-gateway")
        assert net.ingress_allowed(_other("ingress-nginx", app="controller"), proxy, 4000)
        assert not net.ingress_allowed(_other("default", app="controller"), proxy, 4000)
        assert not net.ingress_allowed(_other("ingress-nginx", app="controller"), proxy, 4001)


def test_httproute_on_a_gateway_is_upstream_valid_and_admitted_alone(engines: Any,
                                                                     shared_crds: Path) -> None:
    upstream = json.loads((shared_crds / "gateway.networking.k8s.io" / "httproute_v1.json")
                          .read_text())
    catalog = SchemaCatalog("1.31.0", strict=True)
    for objs in _each(engines, "staging"):
        route = objs[("HTTPRoute", "gw-gateway")]
        assert route["spec"]["parentRefs"] == [{"name": "shared", "namespace": "gateway-system",
                                                "sectionName": "https"}]
        assert route["spec"]["hostnames"] == ["llm.example.com"]
        (rule,) = route["spec"]["rules"]
        assert rule["backendRefs"] == [{"name": "gw-gateway", "port": 4000}]
        assert rule["timeouts"] == {"request": "600s"}  # the router's, not Envoy's 15 s
        assert list(Draft7Validator(upstream).iter_errors(route)) == []
        assert catalog.check(route) == []
        assert ("Ingress", "gw-gateway") not in objs
        # the gateway's proxies (Envoy Gateway runs them in its controller's namespace,
        # not the Gateway's) are the only pods that come in from outside the stack
        net = NetworkPolicies.of(objs.values())
        proxy = _pod(objs, "gw-gateway")
        into = net.ingress_allowed
        assert into(_other("envoy-gateway-system", app="envoy"), proxy, 4000)
        assert not into(_other("gateway-system", app="envoy"), proxy, 4000)
        assert not into(_other("ingress-nginx", app="nginx"), proxy, 4000)
        assert not into(_other("envoy-gateway-system", app="envoy"), proxy, 4001)
        assert not into(_other("default", app="anything"), proxy, 4000)
        assert net.connects(_pod(objs, "gw-helper"), proxy, 4000)  # the declared caller


def test_graph_explain_and_init_know_the_production_fields(tmp_path: Path) -> None:
    runner = CliRunner()
    graph = runner.invoke(cli, ["graph", "-f", str(SPEC), "--env", "staging"])
    assert graph.exit_code == 0, graph.output
    assert 'e0_expose2[("HTTPRoute on gateway-system/shared llm.example.com")]' in graph.output
    assert 'e0_expose2 -->|"from envoy-gateway-system, 10.40.0.0/16"| e0_api2' in graph.output
    assert "e0_api2 --> e0_redis2" in graph.output
    assert 'e0_database2[("database 10.30.0.0/24:5432")]' in graph.output
    explained = runner.invoke(cli, ["explain", "-f", str(SPEC), "--env", "staging",
                                    "spec.modelAPIs[gateway].litellm.settings.drop_params"])
    assert explained.exit_code == 0, explained.output
    assert "false" in explained.output and "environment patch" in explained.output
    explained = runner.invoke(cli, ["explain", "-f", str(SPEC), "--env", "staging",
                                    "spec.modelAPIs[gateway].litellm.expose.gateway.name"])
    assert explained.exit_code == 0, explained.output
    assert "shared" in explained.output and "environment patch" in explained.output
    explained = runner.invoke(cli, ["explain", "-f", str(SPEC), "--env", "prod",
                                    "spec.agents[helper].apiKeySecret.name"])
    assert explained.exit_code == 0 and "helper-key" in explained.output
    starter = tmp_path / "stack.yaml"
    made = runner.invoke(cli, ["init", "--name", "s", "--backends", "ollama,litellm",
                               "-o", str(starter)])
    assert made.exit_code == 0, made.output
    text = starter.read_text()
    assert "apiKeySecret: {name: assistant-api-key, key: key}" in text or \
        "name: assistant-api-key" in text
    for field in ("params", "settings", "router.redis", "expose"):
        assert field in text, field


def test_stateful_routing_needs_redis_when_autoscaled(tmp_path: Path) -> None:
    """least-busy with one fixed replica is fine; the same proxy under an HPA that may run
    more replicas is refused at the strategy line until it shares Redis."""
    text = SPEC.read_text()
    spec = tmp_path / "spec.yaml"
    autoscaled = text.replace("        replicas: 3\n",
                              "        autoscaling: {minReplicas: 1, maxReplicas: 4}\n")
    no_redis = autoscaled.replace(
        "          redis: {host: redis.cache.svc, port: 6379, passwordSecret: {name: redis, "
        "key: password}}\n", "")
    assert no_redis != autoscaled != text
    spec.write_text(no_redis)
    result = CliRunner().invoke(cli, ["validate", "-f", str(spec)])
    assert result.exit_code == 1
    assert "litellm.router.strategy: usage-based-routing-v2 routing keeps its counts" in \
        result.output
    spec.write_text(autoscaled)
    assert CliRunner().invoke(cli, ["validate", "-f", str(spec)]).exit_code == 0
    spec.write_text(no_redis.replace("autoscaling: {minReplicas: 1, maxReplicas: 4}",
                                     "replicas: 1"))
    assert CliRunner().invoke(cli, ["validate", "-f", str(spec)]).exit_code == 0
