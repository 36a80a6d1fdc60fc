"""The chart installed by the real Helm into the test control plane, and its operator as a process.

:class:`Installation` runs ``helm install`` (no ``--wait``: there are no pods for the operator
and Redis, which the tier runs itself). :class:`Operator` runs ``floxide operator`` with the
environment of the chart's own operator Deployment, read back from the API server (values,
Secret keys and fields resolved as the kubelet would), and a kubeconfig holding a token of the
chart's ServiceAccount: the chart's RBAC is exactly what the operator may do. Only what a pod
gets from its node is replaced: the ports (free ones on loopback) and the pod's namespace.
"""

from __future__ import annotations

import base64
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kubernetes.client
import kubernetes.config
import yaml
from kubernetes.client.exceptions import ApiException

from tests.cluster.controlplane import ControlPlane, free_port
from tests.helm.helmchart import CHART, HELM

ROOT = Path(__file__).resolve().parents[2]
FLOXIDE = str(Path(sys.executable).with_name("floxide"))
GROUP, VERSION = "floxide.io", "v1alpha1"


def eventually(
    check: Callable[[], Any], *, timeout: float = 60.0, interval: float = 0.2, what: str = ""
) -> Any:
    """Poll ``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        last = check()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or check} (last: {last!r})")
        time.sleep(interval)


class Kube:
    """The admin's clients of the test API server."""

    def __init__(self, plane: ControlPlane) -> None:
        configuration = kubernetes.client.Configuration()
        kubernetes.config.load_kube_config(
            config_file=str(plane.admin_kubeconfig), client_configuration=configuration
        )
        self.api = kubernetes.client.ApiClient(configuration)
        self.core = kubernetes.client.CoreV1Api(self.api)
        self.apps = kubernetes.client.AppsV1Api(self.api)
        self.custom = kubernetes.client.CustomObjectsApi(self.api)

    def get(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        """A Workflow or WorkflowRun, or None."""
        try:
            found: dict[str, Any] = self.custom.get_namespaced_custom_object(
                GROUP, VERSION, namespace, plural, name
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return found

    def status(self, plural: str, namespace: str, name: str) -> dict[str, Any]:
        return dict((self.get(plural, namespace, name) or {}).get("status") or {})

    def create(self, plural: str, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        created: dict[str, Any] = self.custom.create_namespaced_custom_object(
            GROUP, VERSION, namespace, plural, body
        )
        return created

    def delete(self, plural: str, namespace: str, name: str) -> None:
        with contextlib.suppress(ApiException):
            self.custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, plural, name)

    def patch(self, plural: str, namespace: str, name: str, body: dict[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, plural, name, body)

    def secret(self, namespace: str, name: str) -> dict[str, str] | None:
        try:
            found = self.core.read_namespaced_secret(name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return {key: base64.b64decode(value).decode() for key, value in (found.data or {}).items()}

    def put_secret(
        self, namespace: str, name: str, data: dict[str, str], *, labels: dict[str, str] | None = None
    ) -> None:
        body = {"metadata": {"name": name, "labels": labels or {}}, "stringData": data}
        try:
            self.core.create_namespaced_secret(namespace, body)
        except ApiException as exc:
            if exc.status != 409:
                raise
            encoded = {key: base64.b64encode(value.encode()).decode() for key, value in data.items()}
            patch: dict[str, Any] = {"data": encoded}
            if labels:
                patch["metadata"] = {"labels": labels}
            self.core.patch_namespaced_secret(name, namespace, patch)

    def ensure_namespace(self, name: str) -> None:
        with contextlib.suppress(ApiException):
            self.core.create_namespace({"metadata": {"name": name}})


def workflow(name: str, entrypoint: str, **spec: Any) -> dict[str, Any]:
    """A Workflow manifest of the examples image; scaling from zero, down at once."""
    scaling = {
        "minWorkers": 0,
        "maxWorkers": 2,
        "scaleDownStabilizationSeconds": 0,
        **spec.pop("scaling", {}),
    }
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Workflow",
        "metadata": {"name": name},
        "spec": {"image": "floxide-examples:0.1.0", "entrypoint": entrypoint, "scaling": scaling, **spec},
    }


def workflow_run(name: str, workflow: str, input: Any = None, **spec: Any) -> dict[str, Any]:
    """A WorkflowRun manifest (``input=None`` leaves the input out)."""
    body: dict[str, Any] = {"workflow": workflow, **spec}
    if input is not None:
        body["input"] = input
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "WorkflowRun",
        "metadata": {"name": name},
        "spec": body,
    }


def helm(plane: ControlPlane, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run the real helm against the test API server (as the admin)."""
    return subprocess.run(
        [str(HELM), f"--kubeconfig={plane.admin_kubeconfig}", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )


@dataclass
class Operator:
    """``floxide operator`` as a local process with the chart's environment (see the module)."""

    installation: Installation
    directory: Path
    process: subprocess.Popen[bytes] | None = None
    metrics_port: int = 0
    environment: dict[str, str] = field(default_factory=dict)
    starts: int = 0

    @property
    def log(self) -> Path:
        return self.directory / "operator.log"

    def start(self) -> Operator:
        inst = self.installation
        deployment = inst.kube.apps.read_namespaced_deployment(f"{inst.release}-operator", inst.namespace)
        pod = deployment.spec.template.spec
        container = pod.containers[0]
        env = resolve_env(inst.kube, inst.namespace, container.env or [])
        token = inst.plane.token(inst.namespace, pod.service_account_name)
        kubeconfig = inst.plane.write_kubeconfig(self.directory / "operator.kubeconfig", token=token)
        self.metrics_port = free_port()
        env.update(
            KUBECONFIG=str(kubeconfig),
            FLOXIDE_OPERATOR_POD_NAMESPACE=inst.namespace,
            FLOXIDE_OPERATOR_METRICS_PORT=str(self.metrics_port),
            FLOXIDE_OPERATOR_LIVENESS_ENDPOINT=f"http://127.0.0.1:{free_port()}/healthz",
        )
        self.environment = env
        process_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.directory), **env}
        with open(self.log, "ab") as out:
            out.write(f"--- start {self.starts + 1}\n".encode())
            out.flush()
            self.process = subprocess.Popen(
                [FLOXIDE, *container.args], cwd=self.directory, env=process_env,
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )  # fmt: skip
        self.starts += 1
        inst.operator = self
        return self

    def stop(self, *, kill: bool = False) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def restart(self, *, kill: bool = False) -> None:
        self.stop(kill=kill)
        self.start()

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    @property
    def user(self) -> str:
        """The operator's user name in the API server's audit log."""
        inst = self.installation
        return f"system:serviceaccount:{inst.namespace}:{inst.release}-operator"


def resolve_env(kube: Kube, namespace: str, variables: list[Any]) -> dict[str, str]:
    """A container's environment as the kubelet resolves it (values, Secret keys, pod fields)."""
    env: dict[str, str] = {}
    for var in variables:
        if var.value is not None:
            env[var.name] = var.value
        elif var.value_from is not None and var.value_from.secret_key_ref is not None:
            ref = var.value_from.secret_key_ref
            data = kube.secret(namespace, ref.name) or {}
            if ref.key in data:
                env[var.name] = data[ref.key]
            elif not ref.optional:
                raise AssertionError(f"Secret {namespace}/{ref.name} has no key {ref.key}")
        elif var.value_from is not None and var.value_from.field_ref is not None:
            env[var.name] = {"metadata.namespace": namespace}[var.value_from.field_ref.field_path]
    return env


@dataclass
class Installation:
    """One release of the chart in the test control plane."""

    plane: ControlPlane
    kube: Kube
    namespace: str
    release: str
    directory: Path
    operator: Operator | None = None

    @classmethod
    def create(
        cls,
        plane: ControlPlane,
        *,
        namespace: str,
        release: str,
        redis_url: str,
        redis_password: str,
        directory: Path,
        values: dict[str, Any] | None = None,
    ) -> Installation:
        """``helm install`` against an external Redis whose password is in the Secret ``redis-auth``.

        As with the bundled Redis, each namespace's workers log in as a Redis user of their own
        (``redis.acl.namespaceUsers``), here set again every second
        (``FLOXIDE_OPERATOR_REDIS_ACL_CHECK_INTERVAL``).
        """
        kube = Kube(plane)
        kube.ensure_namespace(namespace)
        kube.put_secret(namespace, "redis-auth", {"redis-password": redis_password})
        settings = {
            "redis": {
                "enabled": False,
                "external": {"url": redis_url, "existingSecret": "redis-auth"},
                "acl": {"namespaceUsers": True},
            },
            "operator": {"extraEnv": [{"name": "FLOXIDE_OPERATOR_REDIS_ACL_CHECK_INTERVAL", "value": "1"}]},
            "logging": {"format": "text"},
            **(values or {}),
        }
        values_file = directory / "values.yaml"
        values_file.write_text(yaml.safe_dump(settings))
        installation = cls(plane, kube, namespace, release, directory)
        installation.helm_upgrade(values_file)
        return installation

    def helm_upgrade(self, values_file: Path) -> None:
        result = helm(
            self.plane, "upgrade", "--install", self.release, str(CHART), "--namespace", self.namespace,
            "--values", str(values_file),
        )  # fmt: skip
        assert result.returncode == 0, f"helm upgrade --install failed:\n{result.stderr}"

    def start_operator(self) -> Operator:
        return Operator(self, self.directory).start()
