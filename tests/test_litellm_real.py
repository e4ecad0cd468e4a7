"""The real LiteLLM proxy (litellm[proxy], the version of the image the build pins) on the
config.yaml the chart renders, against a fake OpenAI / Ollama backend on loopback.

Only the api_base hosts are rewritten (to the fake backend, over plain HTTP); the rest is the
generated file, started the way the container starts it (`litellm --config ... --port`),
with the Secret-fed environment variables set to test values. Every wait is bounded, only
127.0.0.1 is used, and the test stops what it started.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import yaml

from conftest import missing_engine
from modelapi_compile.resolve.workloads import LITELLM_HOME
from modelapi_compile.spec.backends import DEFAULT_LITELLM_IMAGE
from modelapi_compile.verify.engines import render_chart

MASTER_KEY = "sk-test-master-0123456789"
CHAT_PATHS = ("/api/chat", "/v1/chat/completions")
STARTUP_BUDGET = 120.0  # seconds for the proxy to answer its liveliness probe
SPEC = """\
apiVersion: modelapi.dev/v1alpha1
kind: ModelStack
metadata:
  name: real
spec:
  namespace: llm
  monitoring: {enabled: true}
  modelAPIs:
    - name: ollama
      ollama:
        models: [smollm2:135m]
    - name: tiny
      vllm:
        model: TinyLlama/TinyLlama-1.1B-Chat-v1.0
        servedModelName: tinyllama
        gpu: {count: 0}
    - name: llama3
      vllm:
        model: meta-llama/Meta-Llama-3-8B-Instruct
        gpu: {count: 0}
    - name: flaky
      vllm:
        model: org/flaky-model
        servedModelName: flaky-model
        gpu: {count: 0}
    - name: openai
      external:
        url: https://api.openai.com/v1
        models: [gpt-4o-mini]
        apiKeySecret: {name: openai, key: api-key}
    - name: proxy
      litellm:
        masterKeySecret: {name: litellm-master, key: master-key}
        models:
          - {name: small, backend: ollama, model: smollm2:135m}
          - {name: tinyllama, backend: tiny}
          - {name: llama-3-8b, backend: llama3, model: meta-llama/Meta-Llama-3-8B-Instruct}
          - {name: flaky, backend: flaky, model: flaky-model, params: {max_retries: 0}}
          - {name: gpt-4o-mini, backend: openai}
        router:
          numRetries: 0
          fallbacks: {flaky: [small]}
  agents:
    - name: bot
      image: ghcr.io/example/bot:1.0.0
      modelAPI: proxy
      model: small
      apiKeySecret: {name: bot-key, key: key}
"""


def test_litellm_pin_matches_the_image() -> None:
    """The test dependency is the image's release: image v1.90.6 is PyPI 1.90.6."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        installed = version("litellm")
    except PackageNotFoundError:
        missing_engine("litellm[proxy] (pip install -e '.[proxy-tests]')")
    tag = DEFAULT_LITELLM_IMAGE.rsplit(":", 1)[1]
    assert tag.removeprefix("v").split("-")[0] == installed


# --- the fake backend ------------------------------------------------------------------------


@dataclass
class Backend:
    """Records every request; answers like vLLM / OpenAI (/v1/chat/completions) and like
    Ollama (/api/chat); the model `flaky-model` always fails with 500."""

    calls: list[tuple[str, dict[str, Any], dict[str, str]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def handler(self) -> type[BaseHTTPRequestHandler]:
        backend = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep pytest output clean
                del args

            def _reply(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._reply(200, {"models": [], "data": []})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                with backend.lock:
                    backend.calls.append((self.path, body, dict(self.headers.items())))
                model = str(body.get("model", ""))
                if self.path == "/v1/chat/completions":
                    if model == "flaky-model":
                        self._reply(500, {"error": {"message": "backend down"}})
                        return
                    self._reply(200, {
                        "id": "chatcmpl-1", "object": "chat.completion", "created": 1,
                        "model": model, "choices": [{"index": 0, "finish_reason": "stop",
                            "message": {"role": "assistant", "content": f"from {model}"}}],
                        "usage": {"prompt_tokens": 3, "completion_tokens": 3,
                                  "total_tokens": 6}})
                elif self.path == "/api/chat":
                    self._reply(200, {
                        "model": model, "created_at": "2025-01-01T00:00:00Z",
                        "message": {"role": "assistant", "content": f"from {model}"},
                        "done": True, "done_reason": "stop", "prompt_eval_count": 3,
                        "eval_count": 3})
                else:
                    self._reply(200, {})

        return Handler


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def backend() -> Iterator[tuple[Backend, int]]:
    fake = Backend()
    server = ThreadingHTTPServer(("127.0.0.1", 0), fake.handler())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake, server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


# --- the proxy -------------------------------------------------------------------------------


def _rendered(tmp: Path, helm: Any) -> tuple[str, list[dict[str, Any]]]:
    """config.yaml and the container env of the proxy, as Helm renders them."""
    from click.testing import CliRunner

    from modelapi_compile.cli import cli

    spec = tmp / "spec.yaml"
    spec.write_text(SPEC)
    out = tmp / "out"
    result = CliRunner().invoke(cli, ["build", "-f", str(spec), "-o", str(out)])
    assert result.exit_code == 0, result.output
    objects = {(o["kind"], o["metadata"]["name"]): o
               for o in render_chart(helm, out / "charts" / "real", "", "llm")}
    config = objects[("ConfigMap", "real-proxy-config")]["data"]["config.yaml"]
    container = objects[("Deployment", "real-proxy")]["spec"]["template"]["spec"][
        "containers"][0]
    return config, container.get("env", [])


def _point_at(config_text: str, port: int) -> str:
    """The generated config with every api_base host replaced by the fake backend (plain
    HTTP on loopback: an https:// endpoint keeps its path but loses TLS)."""
    config = yaml.safe_load(config_text)
    for entry in config["model_list"]:
        params = entry["litellm_params"]
        parts = urlsplit(params["api_base"])
        params["api_base"] = urlunsplit(parts._replace(scheme="http",
                                                       netloc=f"127.0.0.1:{port}"))
    return yaml.safe_dump(config, sort_keys=False)


@dataclass
class Proxy:
    base: str
    process: subprocess.Popen[bytes]
    log: Path
    hf_home: Path

    def request(self, method: str, path: str, body: dict[str, Any] | None = None,
                key: str | None = MASTER_KEY, timeout: float = 60) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        if key:
            request.add_header("Authorization", f"Bearer {key}")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                raw = response.read()
                status = response.status
        except urllib.error.HTTPError as error:
            raw, status = error.read(), error.code
        try:
            return status, json.loads(raw)
        except ValueError:
            return status, raw.decode(errors="replace")

    def chat(self, model: str, **extra: Any) -> tuple[int, Any]:
        return self.request("POST", "/v1/chat/completions", {
            "model": model, "messages": [{"role": "user", "content": "hi"}], **extra})


def _litellm_command() -> list[str]:
    script = Path(sys.executable).parent / "litellm"
    if script.is_file():
        return [str(script)]
    found = shutil.which("litellm")
    if found is None:
        missing_engine("the litellm proxy (pip install -e '.[proxy-tests]')")
    return [str(found)]


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory, helm: Any,
          backend: tuple[Backend, int]) -> Iterator[Proxy]:
    try:
        import litellm.proxy.proxy_server  # noqa: F401  (the [proxy] extra is installed)
    except ImportError:
        missing_engine("litellm[proxy] (pip install -e '.[proxy-tests]')")
    tmp = tmp_path_factory.mktemp("litellm")
    config_text, env_vars = _rendered(tmp, helm)
    config = tmp / "config.yaml"
    config.write_text(_point_at(config_text, backend[1]))
    hf_home = tmp / "hf"
    hf_home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LITELLM_", "OPENAI_"))}
    # The kubelet's part: each secretKeyRef variable gets a (test) value.
    for var in env_vars:
        if "secretKeyRef" in var.get("valueFrom", {}):
            env[var["name"]] = MASTER_KEY if var["name"] == "LITELLM_MASTER_KEY" else "sk-x"
        elif "value" in var:
            # the pod's home (an emptyDir) is a fresh folder here
            env[var["name"]] = var["value"].replace(LITELLM_HOME, str(tmp / "home"))
    assert env["HOME"] == str(tmp / "home")
    env.update({"HF_HOME": str(hf_home), "LITELLM_MODE": "PRODUCTION",
                "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"})
    port = _free_port()
    log = tmp / "proxy.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [*_litellm_command(), "--config", str(config), "--host", "127.0.0.1",
             "--port", str(port)],
            stdout=sink, stderr=subprocess.STDOUT, env=env, cwd=tmp)
    running = Proxy(f"http://127.0.0.1:{port}", process, log, hf_home)
    try:
        deadline = time.monotonic() + STARTUP_BUDGET
        while True:
            assert process.poll() is None, "the proxy exited:\n" + log.read_text()[-4000:]
            try:
                status, _ = running.request("GET", "/health/liveliness", key=None, timeout=5)
                if status == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, (
                f"no liveliness within {STARTUP_BUDGET}s:\n" + log.read_text()[-4000:])
            time.sleep(0.5)
        yield running
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)


def _completions_since(fake: Backend, start: int
                       ) -> list[tuple[str, dict[str, Any], dict[str, str]]]:
    """The completion calls the backend received since call number `start`. LiteLLM 1.90
    also asks an Ollama server for a model's details (POST /api/show, in the background
    after an ollama_chat call), which is not a completion and may land at any time."""
    with fake.lock:
        return [call for call in fake.calls[start:] if call[0] in CHAT_PATHS]


# --- what the real proxy does ----------------------------------------------------------------


def test_starts_clean_and_reports_live_and_ready(proxy: Proxy) -> None:
    assert proxy.request("GET", "/health/liveliness", key=None)[0] == 200
    status, body = proxy.request("GET", "/health/readiness", key=None)
    assert status == 200, body
    log = proxy.log.read_text()
    assert "Traceback" not in log, log[-4000:]
    assert "Application startup complete" in log


def test_refuses_requests_without_the_key(proxy: Proxy) -> None:
    status, _ = proxy.request(
        "POST", "/v1/chat/completions",
        {"model": "small", "messages": [{"role": "user", "content": "hi"}]}, key=None)
    assert status == 401
    # Any other key is a virtual key to LiteLLM, looked up in its database: refused here,
    # as this proxy has none (validate warns about agents' keys on such a proxy).
    status, body = proxy.request("GET", "/v1/models", key="sk-wrong")
    assert status in (400, 401), body


def test_every_model_reaches_its_backend_path_and_model_id(
        proxy: Proxy, backend: tuple[Backend, int]) -> None:
    fake, _ = backend
    expected = {
        "small": ("/api/chat", "smollm2:135m"),
        "tinyllama": ("/v1/chat/completions", "tinyllama"),
        "llama-3-8b": ("/v1/chat/completions", "meta-llama/Meta-Llama-3-8B-Instruct"),
        "gpt-4o-mini": ("/v1/chat/completions", "gpt-4o-mini"),
    }
    for alias, (path, model_id) in expected.items():
        start = len(fake.calls)
        status, body = proxy.chat(alias)
        assert status == 200, (alias, body)
        assert body["choices"][0]["message"]["content"] == f"from {model_id}"
        calls = _completions_since(fake, start)
        assert [(c[0], c[1]["model"]) for c in calls] == [(path, model_id)], alias
    openai_call = _completions_since(fake, 0)[-1]
    headers = {k.lower(): v for k, v in openai_call[2].items()}
    assert headers["authorization"] == "Bearer sk-x"  # OPENAI_API_KEY from its Secret


def test_fallback_is_taken_when_a_backend_fails(proxy: Proxy,
                                                backend: tuple[Backend, int]) -> None:
    fake, _ = backend
    start = len(fake.calls)
    status, body = proxy.chat("flaky")
    assert status == 200, body
    calls = [(c[0], c[1]["model"]) for c in _completions_since(fake, start)]
    assert calls[0] == ("/v1/chat/completions", "flaky-model")
    assert calls[-1] == ("/api/chat", "smollm2:135m")  # the fallback: small, on Ollama
    assert body["choices"][0]["message"]["content"] == "from smollm2:135m"


def test_openai_only_parameters_to_ollama_are_dropped(proxy: Proxy,
                                                      backend: tuple[Backend, int]) -> None:
    fake, _ = backend
    start = len(fake.calls)
    status, body = proxy.chat("small", presence_penalty=0.5, logit_bias={"1": 2})
    assert status == 200, body  # drop_params: no 400 UnsupportedParamsError
    (call,) = _completions_since(fake, start)
    assert call[0] == "/api/chat" and "presence_penalty" not in json.dumps(call[1])


def test_llama3_answers_fast_without_internet(proxy: Proxy) -> None:
    started = time.monotonic()
    status, body = proxy.chat("llama-3-8b")
    elapsed = time.monotonic() - started
    assert status == 200, body
    assert elapsed < 1.0, f"{elapsed:.2f}s"
    assert not any(proxy.hf_home.iterdir())  # no Hugging Face tokenizer was fetched
    live_started = time.monotonic()
    assert proxy.request("GET", "/health/liveliness", key=None, timeout=5)[0] == 200
    assert time.monotonic() - live_started < 1.0


def test_metrics_answer_the_service_monitor_without_the_master_key(proxy: Proxy) -> None:
    """The spec gives no metricsKeySecret, and Prometheus is never handed the master key:
    the ServiceMonitor sends no key, and the proxy serves /metrics without one."""
    status, body = proxy.request("GET", "/metrics/", key=None)
    assert status == 200, body
    assert "litellm" in str(body)


def test_every_litellm_series_the_dashboards_and_alerts_query_is_exported(
        proxy: Proxy, tmp_path: Path) -> None:
    """Issue 26: after a success, a fallback and a refused model, the proxy's /metrics has
    every litellm_* series the generated dashboards and PrometheusRule query, with the route
    in `requested_model`."""
    import re

    from modelapi_compile.pipeline import compile_spec

    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC)
    monitoring = compile_spec(str(spec), use_helm=False).base.values.monitoring
    queries = json.dumps([*monitoring.dashboards.values(), monitoring.alerts])
    wanted = set(re.findall(r"\b(litellm_[a-z_]+?)(?:_bucket)?\{", queries))
    assert "litellm_deployment_successful_fallbacks_total" in wanted
    # a failed fallback needs a fallback model that fails too, which this stack has not;
    # the name is checked against the release's metric list in test_observability.py
    wanted.discard("litellm_deployment_failed_fallbacks_total")
    assert proxy.chat("small")[0] == 200
    assert proxy.chat("flaky")[0] == 200  # answered by its fallback, small
    assert proxy.chat("no-such-route")[0] >= 400
    status, body = proxy.request("GET", "/metrics/")
    assert status == 200, body
    exported = {line.split("{")[0].split(" ")[0] for line in str(body).splitlines()
                if line.startswith("litellm_")}
    histograms = {name.removesuffix("_bucket") for name in exported if name.endswith("_bucket")}
    assert wanted <= exported | histograms, wanted - exported - histograms
    assert re.search(r'litellm_deployment_successful_fallbacks_total\{[^}]*'
                     r'fallback_model="small"[^}]*requested_model="flaky"', str(body)) or \
        re.search(r'litellm_deployment_successful_fallbacks_total\{[^}]*'
                  r'requested_model="flaky"[^}]*fallback_model="small"', str(body))
