"""A local control plane: etcd, kube-apiserver, kube-controller-manager and kube-scheduler on
127.0.0.1, with kwok playing the kubelets of fake nodes. Everything lives in one scratch
folder and one process group per component; `stop` ends them all whatever happened, and
every wait is bounded."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from .api import ApiError, Client, Connection
from .binaries import require

ADMIN_TOKEN_USER = "modelapi-compile-admin"
START_TIMEOUT = 120.0  # seconds for the API server to answer /readyz on a loaded 2-core box


class ControlPlaneError(Exception):
    pass


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class LocalControlPlane:
    """Use as a context manager; `client` is an admin client once started."""

    log: Callable[[str], None] = lambda message: None
    folder: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="modelapi-cp-")))
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    client: Client | None = None
    kubeconfig: Path | None = None

    def __enter__(self) -> LocalControlPlane:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- start -------------------------------------------------------------------------------

    def start(self) -> None:
        binaries = require()
        token = os.urandom(16).hex()
        certs = self.folder / "certs"
        certs.mkdir(parents=True)
        key = certs / "service-accounts.key"
        key.write_bytes(_rsa_private_key())
        (certs / "tokens.csv").write_text(f'{token},{ADMIN_TOKEN_USER},1,"system:masters"\n')

        etcd_port, peer_port, api_port = free_port(), free_port(), free_port()
        self.log("starting etcd")
        self._spawn("etcd", [
            binaries["etcd"], "--data-dir", str(self.folder / "etcd"),
            "--listen-client-urls", f"http://127.0.0.1:{etcd_port}",
            "--advertise-client-urls", f"http://127.0.0.1:{etcd_port}",
            "--listen-peer-urls", f"http://127.0.0.1:{peer_port}",
            "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer_port}",
            "--initial-cluster", f"default=http://127.0.0.1:{peer_port}",
            "--unsafe-no-fsync", "--log-level", "error"])
        self.log("starting kube-apiserver")
        self._spawn("kube-apiserver", [
            binaries["kube-apiserver"], "--etcd-servers", f"http://127.0.0.1:{etcd_port}",
            "--bind-address", "127.0.0.1", "--secure-port", str(api_port),
            "--advertise-address", "127.0.0.1", "--endpoint-reconciler-type", "none",
            "--cert-dir", str(certs),  # a self-signed serving certificate for 127.0.0.1
            "--token-auth-file", str(certs / "tokens.csv"),
            "--authorization-mode", "RBAC",
            "--service-account-issuer", "https://kubernetes.default.svc.cluster.local",
            "--service-account-key-file", str(key),
            "--service-account-signing-key-file", str(key),
            "--service-cluster-ip-range", "10.96.0.0/16",
            "--allow-privileged=true", "--v=0"])
        ca = certs / "apiserver.crt"
        connection = Connection(server=f"https://127.0.0.1:{api_port}", token=token,
                                insecure=True)
        self._wait_ready(connection, ca)
        self.client = Client(Connection(server=connection.server, token=token,
                                        ca_file=str(ca)))
        self.kubeconfig = self._write_kubeconfig(connection.server, ca, token)
        kubeconfig = str(self.kubeconfig)
        self.log("starting kube-controller-manager, kube-scheduler and kwok")
        self._spawn("kube-controller-manager", [
            binaries["kube-controller-manager"], "--kubeconfig", kubeconfig,
            "--authentication-kubeconfig", kubeconfig, "--authorization-kubeconfig", kubeconfig,
            "--leader-elect=false", "--bind-address", "127.0.0.1",
            "--secure-port", str(free_port()), "--controllers", "*",
            "--service-account-private-key-file", str(key), "--root-ca-file", str(ca),
            "--use-service-account-credentials=false",
            "--cluster-cidr", "10.244.0.0/16", "--service-cluster-ip-range", "10.96.0.0/16",
            "--concurrent-statefulset-syncs", "10", "--v=0"])
        self._spawn("kube-scheduler", [
            binaries["kube-scheduler"], "--kubeconfig", kubeconfig,
            "--authentication-kubeconfig", kubeconfig, "--authorization-kubeconfig", kubeconfig,
            "--leader-elect=false", "--bind-address", "127.0.0.1",
            "--secure-port", str(free_port()), "--v=0"])
        stages = self.folder / "kwok-stages.yaml"
        stages.write_text(resources.files(__package__).joinpath("kwok-stages.yaml")
                          .read_text("utf-8"))
        self._spawn("kwok", [
            binaries["kwok"], "--kubeconfig", kubeconfig, "--config", str(stages),
            "--manage-all-nodes=false",
            "--manage-nodes-with-annotation-selector", "kwok.x-k8s.io/node=fake",
            "--node-ip", "10.250.0.1", "--cidr", "10.244.0.0/16",
            "--node-lease-duration-seconds", "40", "--server-address", f"127.0.0.1:{free_port()}"])

    def _spawn(self, name: str, command: list[str]) -> None:
        # A signal inside Popen would leave a started child that `stop` never learns of
        # (Popen does not kill it), so Ctrl-C and SIGTERM wait until it is recorded.
        with (self.folder / f"{name}.log").open("wb") as log, _signals_deferred():
            self.processes[name] = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True, cwd=self.folder)

    def _wait_ready(self, connection: Connection, ca: Path) -> None:
        client = Client(connection, timeout=5)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            self.check_alive()
            with contextlib.suppress(OSError, ApiError, ValueError):
                client.request("GET", "/readyz")
                if ca.exists():
                    return
            time.sleep(0.5)
        raise ControlPlaneError(f"kube-apiserver was not ready within {START_TIMEOUT:.0f} s; "
                                f"see {self.folder / 'kube-apiserver.log'}")

    def check_alive(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                tail = (self.folder / f"{name}.log").read_text("utf-8", errors="replace")
                raise ControlPlaneError(f"{name} exited with status {process.returncode}:\n"
                                        + "\n".join(tail.splitlines()[-15:]))

    def _write_kubeconfig(self, server: str, ca: Path, token: str) -> Path:
        path = self.folder / "kubeconfig"
        path.write_text(
            "apiVersion: v1\nkind: Config\ncurrent-context: local\n"
            f"clusters:\n- name: local\n  cluster:\n    server: {server}\n"
            f"    certificate-authority: {ca}\n"
            "contexts:\n- name: local\n  context: {cluster: local, user: admin}\n"
            f"users:\n- name: admin\n  user:\n    token: {token}\n")
        path.chmod(0o600)
        return path

    # -- stop --------------------------------------------------------------------------------

    def stop(self) -> None:
        """End every component (its whole process group), then remove the scratch folder."""
        for process in reversed(list(self.processes.values())):
            _signal_group(process, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for process in self.processes.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(process, signal.SIGKILL)
                process.wait(timeout=10)
        self.processes.clear()
        if os.environ.get("MODELAPI_COMPILE_KEEP_CONTROL_PLANE"):
            self.log(f"kept {self.folder}")
            return
        import shutil

        shutil.rmtree(self.folder, ignore_errors=True)


@contextlib.contextmanager
def _signals_deferred() -> Iterator[None]:
    """Hold SIGINT and SIGTERM until the block ends, then deliver them to the handlers that
    were there before. Only the main thread may set handlers; elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[int] = []
    previous = {sig: signal.signal(sig, lambda number, _frame: held.append(number))
                for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)
        for number in dict.fromkeys(held):
            signal.raise_signal(number)


def _signal_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, sig)


def _rsa_private_key() -> bytes:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(serialization.Encoding.PEM,
                             serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption())
