"""A real Kubernetes control plane for tests: etcd, kube-apiserver and kube-controller-manager.

In the envtest style: no scheduler and no kubelet (:mod:`tests.cluster.kubelet` stands in for
them with local processes). Everything listens on free loopback ports, with certificates made
for the session (:mod:`tests.cluster.certs`), and is stopped by its PID at the end.

* the API server enforces RBAC and writes an audit log (every request: user, verb, resource,
  response code) that tests read to count and check the operator's calls;
* the controller manager runs every controller but the node lifecycle one (there is no kubelet
  to renew a node's lease): garbage collection, Deployments, ReplicaSets, ServiceAccount tokens.

Binaries come from ``KUBEBUILDER_ASSETS`` when it holds them, else from
``scripts/install-envtest.sh``, which builds them once and caches them.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.cluster.certs import Certificates

ROOT = Path(__file__).resolve().parents[2]
INSTALL_SCRIPT = ROOT / "scripts" / "install-envtest.sh"
BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager")
SERVICE_RANGE = "10.96.0.0/16"

AUDIT_POLICY = {
    "apiVersion": "audit.k8s.io/v1",
    "kind": "Policy",
    "omitStages": ["RequestReceived"],
    "rules": [
        # Patches of our resources with their bodies: what the operator writes, for tests to read.
        {"level": "Request", "verbs": ["patch"], "resources": [{"group": "floxide.io"}]},
        {"level": "Request", "verbs": ["create"], "resources": [{"group": "", "resources": ["events"]}]},
        {"level": "Metadata"},
    ],
}


class ControlPlaneError(RuntimeError):
    """The control plane could not be had or started; the message says why."""


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def binaries() -> Path:
    """The folder with etcd, kube-apiserver, kube-controller-manager (and kubectl): see the module."""
    result = subprocess.run(
        ["bash", str(INSTALL_SCRIPT)], capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False
    )
    if result.returncode != 0:
        raise ControlPlaneError(f"{INSTALL_SCRIPT.name} failed:\n{result.stderr[-4000:]}")
    return Path(result.stdout.strip().splitlines()[-1])


@dataclass
class AuditEvent:
    """One request, as the API server's audit log records it."""

    user: str
    verb: str
    group: str
    resource: str
    subresource: str
    namespace: str
    name: str
    code: int
    uri: str
    about: str
    """For an Event: the kind of the object it is about."""
    request: Any = None
    """The request's body, where the audit policy records it (patches of our resources, Events)."""


class ControlPlane:
    """etcd, kube-apiserver and kube-controller-manager in ``directory``; :meth:`start`, :meth:`stop`."""

    def __init__(self, assets: Path, directory: Path) -> None:
        self.assets = assets
        self.directory = directory
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.port = free_port()
        self.server = f"https://127.0.0.1:{self.port}"
        self.certs = Certificates(directory / "pki")
        self.audit_log = directory / "audit.log"
        self.admin_kubeconfig = directory / "admin.kubeconfig"
        kubectl = assets / "kubectl"
        self.kubectl_binary = str(kubectl) if kubectl.exists() else shutil.which("kubectl")

    # -- life cycle --------------------------------------------------------------------------

    def start(self) -> None:
        missing = [name for name in BINARIES if not (self.assets / name).exists()]
        if missing:
            raise ControlPlaneError(f"{self.assets} lacks {', '.join(missing)}")
        self.directory.mkdir(parents=True, exist_ok=True)
        self.certs.create()
        self.write_kubeconfig(self.admin_kubeconfig, client=self.certs.admin)
        self._start_etcd()
        self._start_apiserver()
        self._wait_ready()
        self._start_controller_manager()

    def stop(self) -> None:
        for name in reversed(list(self.processes)):
            process = self.processes.pop(name)
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()

    def _spawn(self, name: str, args: Sequence[str]) -> None:
        log = open(self.directory / f"{name}.log", "wb")  # noqa: SIM115 (kept open by the process)
        self.processes[name] = subprocess.Popen(
            [str(self.assets / name), *args], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        log.close()

    def log_tail(self, name: str, size: int = 4000) -> str:
        path = self.directory / f"{name}.log"
        return path.read_text(errors="replace")[-size:] if path.exists() else "(no log)"

    def _start_etcd(self) -> None:
        client, peer = free_port(), free_port()
        self.etcd_url = f"http://127.0.0.1:{client}"
        self._spawn(
            "etcd",
            [
                "--name=default",
                f"--data-dir={self.directory / 'etcd'}",
                f"--listen-client-urls={self.etcd_url}",
                f"--advertise-client-urls={self.etcd_url}",
                f"--listen-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-cluster=default=http://127.0.0.1:{peer}",
                "--unsafe-no-fsync=true",
                "--log-level=warn",
            ],
        )

    def _start_apiserver(self) -> None:
        policy = self.directory / "audit-policy.yaml"
        policy.write_text(yaml.safe_dump(AUDIT_POLICY))
        c = self.certs
        self._spawn(
            "kube-apiserver",
            [
                f"--etcd-servers={self.etcd_url}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={self.port}",
                f"--cert-dir={self.directory / 'apiserver-certs'}",
                f"--tls-cert-file={c.serving.cert}",
                f"--tls-private-key-file={c.serving.key}",
                f"--client-ca-file={c.ca.cert}",
                f"--service-account-key-file={c.service_account_public}",
                f"--service-account-signing-key-file={c.service_account_private}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-cluster-ip-range={SERVICE_RANGE}",
                "--authorization-mode=RBAC",
                "--allow-privileged=true",
                f"--audit-log-path={self.audit_log}",
                f"--audit-policy-file={policy}",
                "--audit-log-format=json",
                "--audit-log-mode=blocking",
                "--profiling=false",
                "--v=0",
            ],
        )

    def _start_controller_manager(self) -> None:
        kubeconfig = self.directory / "controller-manager.kubeconfig"
        self.write_kubeconfig(kubeconfig, client=self.certs.controller_manager)
        self._spawn(
            "kube-controller-manager",
            [
                f"--kubeconfig={kubeconfig}",
                "--controllers=*,-nodelifecycle,-nodeipam,-cloud-node-lifecycle,-service-lb-controller",
                "--use-service-account-credentials=true",
                f"--service-account-private-key-file={self.certs.service_account_private}",
                f"--root-ca-file={self.certs.ca.cert}",
                f"--cluster-signing-cert-file={self.certs.ca.cert}",
                f"--cluster-signing-key-file={self.certs.ca.key}",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={free_port()}",
                "--concurrent-gc-syncs=5",
                "--v=0",
            ],
        )

    def _wait_ready(self, timeout: float = 90.0) -> None:
        context = ssl.create_default_context(cafile=str(self.certs.ca.cert))
        context.load_cert_chain(str(self.certs.admin.cert), str(self.certs.admin.key))
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise ControlPlaneError(f"{name} exited ({process.returncode}):\n{self.log_tail(name)}")
            try:
                with urllib.request.urlopen(f"{self.server}/readyz", context=context, timeout=5) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError) as exc:
                last = str(exc)
            time.sleep(0.25)
        raise ControlPlaneError(
            f"the API server was not ready in {timeout}s ({last}):\n{self.log_tail('kube-apiserver')}"
        )

    # -- clients -----------------------------------------------------------------------------

    def write_kubeconfig(self, path: Path, *, client: Any = None, token: str | None = None) -> Path:
        """A kubeconfig for this server, as a client certificate's holder or a token's."""
        user: dict[str, str] = {}
        if client is not None:
            user = {"client-certificate": str(client.cert), "client-key": str(client.key)}
        if token is not None:
            user = {"token": token}
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "test",
                    "cluster": {"server": self.server, "certificate-authority": str(self.certs.ca.cert)},
                }
            ],
            "users": [{"name": "test", "user": user}],
            "contexts": [{"name": "test", "context": {"cluster": "test", "user": "test"}}],
            "current-context": "test",
        }
        path.write_text(yaml.safe_dump(config))
        path.chmod(0o600)
        return path

    def kubectl(
        self, *args: str, kubeconfig: Path | None = None, input: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl against this server (as the admin unless ``kubeconfig`` says otherwise)."""
        if self.kubectl_binary is None:
            raise ControlPlaneError("no kubectl: neither in the envtest binaries nor on PATH")
        command = [self.kubectl_binary, f"--kubeconfig={kubeconfig or self.admin_kubeconfig}", *args]
        result = subprocess.run(command, capture_output=True, text=True, input=input, timeout=60, check=False)
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
        return result

    def apply(self, manifest: dict[str, Any] | str, *, kubeconfig: Path | None = None) -> None:
        text = manifest if isinstance(manifest, str) else yaml.safe_dump(manifest)
        self.kubectl(
            "apply", "--server-side", "--force-conflicts", "-f", "-", input=text, kubeconfig=kubeconfig
        )

    def token(self, namespace: str, service_account: str, *, hours: int = 4) -> str:
        """A token of ``service_account`` from the TokenRequest API (``kubectl create token``)."""
        result = self.kubectl("create", "token", service_account, "-n", namespace, f"--duration={hours}h")
        return result.stdout.strip()

    def audit(self) -> list[AuditEvent]:
        """Every request the API server has completed (or, for watches, started), in order."""
        events = []
        with contextlib.suppress(FileNotFoundError), open(self.audit_log, encoding="utf-8") as lines:
            for line in lines:
                entry = json.loads(line)
                stage = entry.get("stage")
                if stage != "ResponseComplete" and not (
                    stage == "ResponseStarted" and entry.get("verb") == "watch"
                ):
                    continue  # a watch completes only when it ends: count it when it starts
                ref = entry.get("objectRef") or {}
                events.append(
                    AuditEvent(
                        user=entry.get("user", {}).get("username", ""),
                        verb=entry.get("verb", ""),
                        group=ref.get("apiGroup", ""),
                        resource=ref.get("resource", ""),
                        subresource=ref.get("subresource", ""),
                        namespace=ref.get("namespace", ""),
                        name=ref.get("name", ""),
                        code=int(entry.get("responseStatus", {}).get("code", 0)),
                        uri=entry.get("requestURI", ""),
                        about=_about(entry.get("requestObject")),
                        request=entry.get("requestObject"),
                    )
                )
        return events


def _about(request: Any) -> str:
    """The kind of the object an Event (a created Event's request body) is about."""
    if not isinstance(request, dict):
        return ""
    return str((request.get("involvedObject") or {}).get("kind", ""))


@contextlib.contextmanager
def running(assets: Path, directory: Path) -> Iterator[ControlPlane]:
    """A started control plane, stopped when the block ends."""
    plane = ControlPlane(assets, directory)
    try:
        plane.start()
        yield plane
    finally:
        plane.stop()


def environment_without_cluster() -> dict[str, str]:
    """This process's environment without anything that would lead a client to another cluster."""
    return {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "KUBERNETES_SERVICE_HOST")}
