"""A stand-in for the scheduler and kubelet of one node: worker pods become local processes.

The controller manager turns the operator's worker Deployments into ReplicaSets and Pods, as on
a real cluster; nothing would run them. :class:`LocalKubelet` does, for pods labelled as Floxide
workers:

* binds each new pod to its Node (``pods/binding``, what the scheduler does);
* starts ``floxide <container args>`` with the container's environment resolved as the kubelet
  resolves it (values, Secret keys, the pod's own fields) and ``HOSTNAME`` set to the pod's name;
  each process gets a free port for its HTTP server, whose ``/readyz`` decides the pod's Ready
  condition, so the Deployment's ready count is the Deployment controller's own;
* restarts a process that exits (``restartPolicy: Always``), counting restarts;
* on a pod's deletion, sends SIGTERM, waits for the process, then removes the pod.

:meth:`LocalKubelet.crash` kills a pod's process with SIGKILL: a crash, not a graceful stop.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kubernetes.client
import kubernetes.config
from kubernetes.client.exceptions import ApiException

from tests.cluster.controlplane import ControlPlane, free_port

ROOT = Path(__file__).resolve().parents[2]
NODE = "local-node"
WORKER_SELECTOR = "app.kubernetes.io/component=worker,app.kubernetes.io/part-of=floxide"
FLOXIDE = str(Path(sys.executable).with_name("floxide"))


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class LocalPod:
    """One pod's process, and what was last reported about it."""

    namespace: str
    name: str
    log: Path
    process: subprocess.Popen[bytes] | None = None
    port: int = 0
    restarts: int = 0
    reported: tuple[bool, int] | None = None
    terminating: bool = False
    environment: dict[str, str] = field(default_factory=dict)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def ready(self) -> bool:
        if not self.alive():
            return False
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/readyz", timeout=0.5) as response:
                return bool(response.status == 200)
        except OSError:
            return False


class LocalKubelet:
    """Runs the worker pods of a control plane as local processes (see the module)."""

    def __init__(self, plane: ControlPlane, directory: Path) -> None:
        self.plane = plane
        self.directory = directory
        configuration = kubernetes.client.Configuration()
        kubernetes.config.load_kube_config(
            config_file=str(plane.admin_kubeconfig), client_configuration=configuration
        )
        self.api = kubernetes.client.ApiClient(configuration)
        self.core = kubernetes.client.CoreV1Api(self.api)
        self.pods: dict[tuple[str, str], LocalPod] = {}
        self.started = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.errors: list[str] = []

    # -- life cycle --------------------------------------------------------------------------

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(ApiException):
            self.core.create_node({"metadata": {"name": NODE, "labels": {"kubernetes.io/hostname": NODE}}})
        status = {
            "conditions": [
                {"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "local processes",
                 "lastHeartbeatTime": _now(), "lastTransitionTime": _now()},
            ],
            "capacity": {"cpu": "64", "memory": "256Gi", "pods": "1000"},
            "allocatable": {"cpu": "64", "memory": "256Gi", "pods": "1000"},
        }  # fmt: skip
        self.core.patch_node_status(NODE, {"status": status})
        self._thread = threading.Thread(target=self._loop, name="local-kubelet", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        pods = list(self.pods.values())
        for pod in pods:  # every pod is told at once, then each is waited for
            self._terminate(pod, timeout=0)
        for pod in pods:
            self._terminate(pod, timeout=10)
        self.api.close()

    # -- what tests use ----------------------------------------------------------------------

    def running(self, namespace: str, prefix: str = "") -> list[LocalPod]:
        """The live processes of pods in ``namespace`` whose names start with ``prefix``."""
        with self._lock:
            return [
                pod
                for (ns, name), pod in self.pods.items()
                if ns == namespace and name.startswith(prefix) and pod.alive() and not pod.terminating
            ]

    def crash(self, pod: LocalPod) -> None:
        """Kill the pod's process with SIGKILL (the kubelet restarts it, as a container runtime would)."""
        assert pod.process is not None
        pod.process.send_signal(signal.SIGKILL)
        pod.process.wait()

    def logs(self) -> str:
        return "\n".join(
            f"--- {pod.namespace}/{pod.name}\n{pod.log.read_text(errors='replace')[-3000:]}"
            for pod in list(self.pods.values())
            if pod.log.exists()
        )

    # -- the loop ----------------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stop.wait(0.2):
            try:
                self._sync()
            except Exception as exc:  # keep serving: a test reads the errors when it fails
                self.errors.append(f"{type(exc).__name__}: {exc}")
                time.sleep(0.5)

    def _sync(self) -> None:
        listed = self.core.list_pod_for_all_namespaces(label_selector=WORKER_SELECTOR).items
        seen = set()
        for item in listed:
            key = (item.metadata.namespace, item.metadata.name)
            seen.add(key)
            with self._lock:
                pod = self.pods.get(key)
                if pod is None:
                    pod = self.pods[key] = LocalPod(*key, log=self.directory / f"{key[0]}_{key[1]}.log")
            if item.metadata.deletion_timestamp is not None:
                self._delete(pod)
                continue
            if not item.spec.node_name:
                self._bind(pod)
            if not pod.alive():
                if pod.process is not None:
                    pod.restarts += 1
                self._start(pod, item)
            self._report(pod, item)
        for key in [key for key in self.pods if key not in seen]:
            pod = self.pods[key]
            self._terminate(pod, timeout=10)
            with self._lock:
                del self.pods[key]

    def _bind(self, pod: LocalPod) -> None:
        body = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": pod.name},
            "target": {"apiVersion": "v1", "kind": "Node", "name": NODE},
        }
        self.core.create_namespaced_pod_binding(pod.name, pod.namespace, body, _preload_content=False)

    def _environment(self, item: Any, container: Any) -> dict[str, str]:
        env: dict[str, str] = {}
        for var in container.env or []:
            if var.value is not None:
                env[var.name] = var.value
                continue
            source = var.value_from
            if source is None:
                continue
            if source.field_ref is not None:
                path = source.field_ref.field_path
                env[var.name] = {
                    "metadata.name": item.metadata.name,
                    "metadata.namespace": item.metadata.namespace,
                }[path]
            elif source.secret_key_ref is not None:
                ref = source.secret_key_ref
                try:
                    secret = self.core.read_namespaced_secret(ref.name, item.metadata.namespace)
                except ApiException as exc:
                    if exc.status == 404 and ref.optional:
                        continue
                    raise
                data = secret.data or {}
                if ref.key in data:
                    env[var.name] = base64.b64decode(data[ref.key]).decode()
                elif not ref.optional:
                    raise LookupError(f"Secret {ref.name} has no key {ref.key}")
        return env

    def _start(self, pod: LocalPod, item: Any) -> None:
        container = item.spec.containers[0]
        env = self._environment(item, container)
        pod.port = free_port()
        env.update(
            HOSTNAME=pod.name, FLOXIDE_WORKER_HTTP_PORT=str(pod.port), FLOXIDE_WORKER_HTTP_HOST="127.0.0.1"
        )
        pod.environment = env
        process_env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "PYTHONPATH": str(ROOT),
            "PYTHONUNBUFFERED": "1",
            "FLOXIDE_LOG_FORMAT": "text",
            **env,
        }
        with open(pod.log, "ab") as out:
            pod.process = subprocess.Popen(
                [FLOXIDE, *container.args], cwd=self.directory, env=process_env,
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )  # fmt: skip
        self.started += 1

    def _report(self, pod: LocalPod, item: Any) -> None:
        state = (pod.ready(), pod.restarts)
        if state == pod.reported:
            return
        ready = "True" if state[0] else "False"
        now = _now()
        status = {
            "phase": "Running",
            "hostIP": "127.0.0.1",
            "podIP": "127.0.0.1",
            "startTime": now,
            "conditions": [
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
                {"type": "Initialized", "status": "True", "lastTransitionTime": now},
                {"type": "ContainersReady", "status": ready, "lastTransitionTime": now},
                {"type": "Ready", "status": ready, "lastTransitionTime": now},
            ],
            "containerStatuses": [
                {
                    "name": item.spec.containers[0].name,
                    "image": item.spec.containers[0].image,
                    "imageID": "",
                    "ready": state[0],
                    "started": True,
                    "restartCount": state[1],
                    "state": {"running": {"startedAt": now}},
                }
            ],
        }
        self.core.patch_namespaced_pod_status(pod.name, pod.namespace, {"status": status})
        pod.reported = state

    def _delete(self, pod: LocalPod) -> None:
        self._terminate(pod, timeout=30)
        with contextlib.suppress(ApiException):
            self.core.delete_namespaced_pod(pod.name, pod.namespace, grace_period_seconds=0)

    def _terminate(self, pod: LocalPod, *, timeout: float) -> None:
        """SIGTERM (once), then SIGKILL after ``timeout`` seconds; ``timeout=0`` only signals."""
        if pod.process is None or pod.process.poll() is not None:
            pod.terminating = True
            return
        if not pod.terminating:
            pod.terminating = True
            pod.process.send_signal(signal.SIGTERM)
        if timeout == 0:
            return
        try:
            pod.process.wait(timeout)
        except subprocess.TimeoutExpired:
            pod.process.kill()
            pod.process.wait()
