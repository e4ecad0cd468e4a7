"""A small Kubernetes API client: discovery, server-side apply (also as a dry run), get, list,
create and delete, with the API server's warnings kept. It speaks to the local control plane
of `simulate` and to any cluster of a kubeconfig (`verify --server`), with only the standard
library, so neither needs kubectl."""

from __future__ import annotations

import base64
import json
import os
import ssl
import subprocess
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

K8s = dict[str, Any]


class ApiError(Exception):
    """The API server refused a request: its status code, reason and message."""

    def __init__(self, code: int, reason: str, message: str):
        self.code, self.reason, self.message = code, reason, message
        super().__init__(f"{reason or code}: {message}")


@dataclass(frozen=True)
class Resource:
    path: str  # /api/v1 or /apis/group/version
    plural: str
    namespaced: bool


@dataclass
class Connection:
    server: str
    token: str | None = None
    ca_file: str | None = None
    client_cert: tuple[str, str] | None = None  # (cert file, key file)
    insecure: bool = False
    _scratch: list[Any] = field(default_factory=list)  # temporary files kept alive

    def context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=self.ca_file)
        if self.insecure:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if self.client_cert:
            ctx.load_cert_chain(*self.client_cert)
        return ctx


class Client:
    def __init__(self, connection: Connection, timeout: float = 30.0):
        self.connection = connection
        self.timeout = timeout
        self._ssl = connection.context()
        self._resources: dict[tuple[str, str], Resource] = {}
        self.warnings: list[str] = []

    # -- transport ---------------------------------------------------------------------------

    def request(self, method: str, path: str, body: Any = None, *,
                content_type: str = "application/json", query: dict[str, str] | None = None
                ) -> Any:
        url = self.connection.server.rstrip("/") + path
        if query:
            url += "?" + urllib.parse.urlencode(query)
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(url, data=data, method=method)
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", content_type)
        if self.connection.token:
            request.add_header("Authorization", f"Bearer {self.connection.token}")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout, context=self._ssl) as reply:
                self._keep_warnings(reply.headers.get_all("Warning") or [])
                payload = reply.read()
        except urllib.error.HTTPError as error:
            self._keep_warnings(error.headers.get_all("Warning") or [])
            raise _api_error(error) from None
        if not payload:
            return None
        if reply.headers.get_content_type() != "application/json":
            return payload.decode("utf-8", errors="replace")  # /readyz, /healthz: plain text
        return json.loads(payload)

    def _keep_warnings(self, headers: list[str]) -> None:
        for header in headers:
            # RFC 7234 warning: `299 - "text"`; the API server sends one header per warning.
            text = header.split(" ", 2)[-1].strip()
            text = text[1:-1] if text.startswith('"') else text
            self.warnings.append(text.replace('\\"', '"'))  # a quoted-string's escapes

    # -- discovery ---------------------------------------------------------------------------

    def resource(self, api_version: str, kind: str) -> Resource:
        key = (api_version, kind)
        if key not in self._resources:
            self._discover(api_version)
        if key not in self._resources:
            raise ApiError(404, "NotFound",
                           f"the server does not serve {kind} in {api_version} "
                           "(is its CustomResourceDefinition installed?)")
        return self._resources[key]

    def _discover(self, api_version: str) -> None:
        path = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
        try:
            listing = self.request("GET", path)
        except ApiError as error:
            if error.code == 404:
                return
            raise
        for item in listing.get("resources", []):
            if "/" not in item["name"]:  # subresources such as deployments/scale
                self._resources[(api_version, item["kind"])] = Resource(
                    path, item["name"], bool(item.get("namespaced")))

    def object_path(self, obj: K8s, default_namespace: str = "") -> str:
        resource = self.resource(obj["apiVersion"], obj["kind"])
        name = urllib.parse.quote(obj["metadata"]["name"])
        return self._collection(resource, obj["metadata"].get("namespace") or default_namespace
                                ) + f"/{name}"

    @staticmethod
    def _collection(resource: Resource, namespace: str) -> str:
        if resource.namespaced:
            return f"{resource.path}/namespaces/{namespace}/{resource.plural}"
        return f"{resource.path}/{resource.plural}"

    # -- verbs -------------------------------------------------------------------------------

    def apply(self, obj: K8s, *, manager: str, namespace: str = "", dry_run: bool = False,
              force: bool = True) -> K8s:
        """Server-side apply, as Argo CD (ServerSideApply=true), Flux and `kubectl apply
        --server-side` do."""
        obj = dict(obj)
        resource = self.resource(obj["apiVersion"], obj["kind"])
        if resource.namespaced and not obj["metadata"].get("namespace") and namespace:
            obj["metadata"] = {**obj["metadata"], "namespace": namespace}
        query = {"fieldManager": manager, "force": "true" if force else "false"}
        if dry_run:
            query["dryRun"] = "All"
        result: K8s = self.request("PATCH", self.object_path(obj, namespace), obj,
                                   content_type="application/apply-patch+yaml", query=query)
        return result

    def get(self, api_version: str, kind: str, name: str, namespace: str = "") -> K8s | None:
        obj = {"apiVersion": api_version, "kind": kind,
               "metadata": {"name": name, "namespace": namespace}}
        try:
            found: K8s = self.request("GET", self.object_path(obj))
        except ApiError as error:
            if error.code == 404:
                return None
            raise
        return found

    def list(self, api_version: str, kind: str, namespace: str = "",
             label_selector: str = "") -> list[K8s]:
        resource = self.resource(api_version, kind)
        path = (self._collection(resource, namespace) if namespace or not resource.namespaced
                else f"{resource.path}/{resource.plural}")
        query = {"labelSelector": label_selector} if label_selector else None
        items: list[K8s] = self.request("GET", path, query=query).get("items", [])
        return items

    def create(self, obj: K8s) -> K8s:
        resource = self.resource(obj["apiVersion"], obj["kind"])
        path = self._collection(resource, obj["metadata"].get("namespace", ""))
        created: K8s = self.request("POST", path, obj)
        return created

    def delete(self, obj: K8s, namespace: str = "") -> None:
        try:
            self.request("DELETE", self.object_path(obj, namespace),
                         {"propagationPolicy": "Background"})
        except ApiError as error:
            if error.code != 404:
                raise


def _api_error(error: urllib.error.HTTPError) -> ApiError:
    try:
        status = json.loads(error.read() or b"{}")
    except ValueError:
        status = {}
    return ApiError(error.code, status.get("reason", ""), status.get("message", str(error)))


# -- kubeconfig ----------------------------------------------------------------------------------


class KubeconfigError(Exception):
    pass


def from_kubeconfig(path: str, context: str | None = None) -> Connection:
    """The server and credentials of a kubeconfig context: token, token file, client
    certificate, or an exec credential plugin (as EKS, GKE and AKS kubeconfigs use)."""
    try:
        config = yaml.safe_load(Path(path).read_text("utf-8")) or {}
    except (OSError, yaml.YAMLError) as error:
        raise KubeconfigError(f"cannot read kubeconfig {path}: {error}") from None
    name = context or config.get("current-context")
    contexts = {c["name"]: c.get("context") or {} for c in config.get("contexts") or []}
    if name not in contexts:
        raise KubeconfigError(f"kubeconfig {path} has no context {name!r} "
                              f"(it has: {', '.join(sorted(contexts)) or 'none'})")
    chosen = contexts[name]
    cluster = _named(config, "clusters", chosen.get("cluster"), "cluster")
    user = _named(config, "users", chosen.get("user"), "user")
    base = Path(path).parent
    connection = Connection(server=cluster.get("server", ""),
                            insecure=bool(cluster.get("insecure-skip-tls-verify")))
    connection.ca_file = _file(connection, base, cluster, "certificate-authority")
    cert = _file(connection, base, user, "client-certificate")
    key = _file(connection, base, user, "client-key")
    if cert and key:
        connection.client_cert = (cert, key)
    if user.get("token"):
        connection.token = user["token"]
    elif user.get("tokenFile"):
        connection.token = Path(base, user["tokenFile"]).read_text("utf-8").strip()
    elif user.get("exec"):
        _exec_credential(connection, user["exec"])
    return connection


def _named(config: K8s, section: str, name: str | None, key: str) -> K8s:
    for item in config.get(section) or []:
        if item.get("name") == name:
            found: K8s = item.get(key) or {}
            return found
    return {}


def _file(connection: Connection, base: Path, section: K8s, key: str) -> str | None:
    if section.get(f"{key}-data"):
        return _scratch_file(connection, base64.b64decode(section[f"{key}-data"]))
    if section.get(key):
        return str(base / section[key])
    return None


def _exec_credential(connection: Connection, spec: K8s) -> None:
    env = dict(os.environ)
    env.update({e["name"]: e["value"] for e in spec.get("env") or []})
    try:
        done = subprocess.run([spec["command"], *(spec.get("args") or [])], env=env,
                              capture_output=True, text=True, timeout=60, check=True)
    except (OSError, subprocess.SubprocessError) as error:
        raise KubeconfigError(f"the kubeconfig's credential plugin {spec.get('command')} "
                              f"failed: {error}") from None
    status = (json.loads(done.stdout) or {}).get("status") or {}
    if status.get("token"):
        connection.token = status["token"]
    elif status.get("clientCertificateData"):
        connection.client_cert = (
            _scratch_file(connection, status["clientCertificateData"].encode()),
            _scratch_file(connection, status["clientKeyData"].encode()))


def _scratch_file(connection: Connection, data: bytes) -> str:
    """A private temporary file for credentials that ssl can only load from a path; it lives
    as long as the connection and is removed with it."""
    scratch = tempfile.NamedTemporaryFile(prefix="modelapi-compile-", suffix=".pem")  # noqa: SIM115
    scratch.write(data)
    scratch.flush()
    connection._scratch.append(scratch)
    return scratch.name
