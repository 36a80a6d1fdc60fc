"""Helpers of the operator tier: a fuller KMock, the operator runner, and a "kubelet" that runs real
worker processes for the worker Deployments the operator creates. (Private redis-servers come
from the Redis tier's ``RedisServer``.)

KMock is an in-memory store that speaks HTTP, not an apiserver (see TESTING-KOPF.md):

* :class:`Emulator` adds what the operator relies on: uid, creationTimestamp, generation (bumped
  on spec changes) and resourceVersion (bumped on every write), names from generateName, and a
  failed JSON-patch ``test`` answered with 422 as a real apiserver does;
* :class:`Kubelet` plays the Deployment controller and the kubelet: for each worker Deployment it
  keeps ``spec.replicas`` real worker processes running (``python -m floxide_worker``, with the
  pod template's environment and Secret references resolved, and the pod name as hostname),
  and PATCHes the Deployment's status with the ready count;
* :func:`operator` runs the real operator under ``kopf.testing.KopfRunner`` (``-A --standalone``,
  a fresh registry), waits for its watches before the test acts, and stops it off the event loop.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime
import itertools
import logging
import os
import random
import signal
import string
import subprocess
import sys
import time
import uuid
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import attrs
import jsonpatch
import kmock
import kopf
import yaml
from kopf.testing import KopfRunner
from redis.asyncio import Redis

from floxide.redis import RedisBackend

ROOT = Path(__file__).resolve().parents[2]
CRDS = sorted((ROOT / "crds").glob("*.yaml"))
ENTRY = Path(__file__).with_name("operator_entry.py")
NAMESPACE = "probe"
GROUP = "floxide.io"
VERSION = "v1alpha1"
WORKFLOWS = f"{GROUP}/{VERSION}/workflows"
RUNS = f"{GROUP}/{VERSION}/workflowruns"
SCHEDULES = f"{GROUP}/{VERSION}/workflowschedules"
DEPLOYMENTS = "apps/v1/deployments"
SECRETS = "v1/secrets"
CONFIG_MAPS = "v1/configmaps"


# -- the API server ------------------------------------------------------------------------------


@attrs.frozen
class Unprocessable(kmock.KubernetesError):
    """What a real apiserver answers when a JSON-patch ``test`` fails."""

    status: int = 422
    reason: str = "Invalid"
    message: str = "the server rejected our request due to an error in our request"


class Emulator(kmock.KubernetesEmulator):
    """KMock with the server-side metadata a real apiserver adds (TESTING-KOPF.md, pitfall 6)."""

    @property
    def arrivals(self) -> dict[int, float]:
        """When each request arrived (wall clock), by request id."""
        if "_arrivals" not in self.__dict__:
            self.__dict__["_arrivals"] = {}
        arrivals: dict[int, float] = self.__dict__["_arrivals"]
        return arrivals

    def _next_version(self) -> str:
        return str(next(_VERSIONS))

    async def _handle(self, request: kmock.Request) -> Any:
        self.arrivals[request.id] = time.time()
        if request.resource is not None and isinstance(request.data, dict | list):
            if request.action == kmock.action.CREATE and isinstance(request.data, dict):
                meta = request.data.setdefault("metadata", {})
                if not meta.get("name") and meta.get("generateName"):
                    suffix = "".join(random.choices(string.ascii_lowercase + string.digits, k=5))
                    meta["name"] = meta["generateName"] + suffix
                meta.setdefault("namespace", request.namespace)
                meta.setdefault("uid", str(uuid.uuid4()))
                meta.setdefault("creationTimestamp", _now())
                meta["generation"] = 1
                meta["resourceVersion"] = self._next_version()
            elif request.action == kmock.action.UPDATE:
                self._bump(request)
        try:
            return await super()._handle(request)
        except jsonpatch.JsonPatchTestFailed as exc:
            raise Unprocessable() from exc

    def _bump(self, request: kmock.Request) -> None:
        version = self._next_version()
        key = (request.resource, request.namespace, request.name)
        current = self.objects[key] if key in self.objects else None  # noqa: SIM401 (no .get)
        generation = (current or {}).get("metadata", {}).get("generation", 1)
        spec_changed = request.subresource != "status" and (
            "spec" in request.data
            if isinstance(request.data, dict)
            else any(op.get("path", "").startswith("/spec") for op in request.data)
        )
        if isinstance(request.data, dict):
            meta = request.data.setdefault("metadata", {}) or {}
            request.data["metadata"] = meta
            meta["resourceVersion"] = version
            if spec_changed:
                meta["generation"] = generation + 1
        else:
            request.data.append({"op": "add", "path": "/metadata/resourceVersion", "value": version})
            if spec_changed:
                request.data.append({"op": "add", "path": "/metadata/generation", "value": generation + 1})


_VERSIONS = itertools.count(1)


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def register_resources(emulator: kmock.KubernetesEmulator) -> None:
    """Builtins from KMock's bundle, our CRDs from ``crds/*.yaml`` (one source of truth)."""
    with warnings.catch_warnings():  # KMock reads its bundle with a deprecated importlib call
        warnings.simplefilter("ignore", DeprecationWarning)
        emulator.resources.load_bundled()
    for path in CRDS:
        crd = yaml.safe_load(path.read_text())
        spec = crd["spec"]
        for version in spec["versions"]:
            emulator.resources[f"{spec['group']}/{version['name']}/{spec['names']['plural']}"] = (
                kmock.ResourceInfo(
                    kind=spec["names"]["kind"],
                    singular=spec["names"]["singular"],
                    namespaced=spec["scope"] == "Namespaced",
                    shortnames=set(spec["names"].get("shortNames", [])),
                    categories=set(spec["names"].get("categories", [])),
                    subresources=set(version.get("subresources", {})),
                    verbs={"create", "delete", "get", "list", "patch", "update", "watch"},
                )
            )


def write_kubeconfig(path: Path, server: str) -> Path:
    """A kubeconfig pointing at ``server`` with a dummy token."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "kmock", "cluster": {"server": server}}],
        "users": [{"name": "kmock", "user": {"token": "kmock"}}],
        "contexts": [{"name": "kmock", "context": {"cluster": "kmock", "user": "kmock"}}],
        "current-context": "kmock",
    }
    path.write_text(yaml.safe_dump(config))
    return path


class Api:
    """Writes through the emulator's HTTP API (so that watches see them) and reads its objects."""

    def __init__(self, emulator: kmock.KubernetesEmulator, namespace: str = NAMESPACE) -> None:
        self.k = emulator
        self.namespace = namespace

    def path(self, resource: str, name: str | None = None, *, subresource: str | None = None) -> str:
        group_version, _, plural = resource.rpartition("/")
        prefix = f"/api/{group_version}" if "/" not in group_version else f"/apis/{group_version}"
        path = f"{prefix}/namespaces/{self.namespace}/{plural}"
        if name:
            path += f"/{name}"
        if subresource:
            path += f"/{subresource}"
        return path

    async def _send(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        # One connection per request: a kept-alive one would keep a server task past the test.
        headers = {"Connection": "close"}
        async with getattr(self.k, method)(path, headers=headers, **kwargs) as response:
            body: dict[str, Any] = await response.json()
            assert response.status < 300, f"{method.upper()} {path}: {response.status} {body}"
            return body

    async def create(self, resource: str, body: dict[str, Any]) -> dict[str, Any]:
        return await self._send("post", self.path(resource), json=body)

    async def patch(
        self, resource: str, name: str, body: Any, *, subresource: str | None = None
    ) -> dict[str, Any]:
        return await self._send("patch", self.path(resource, name, subresource=subresource), json=body)

    async def delete(self, resource: str, name: str) -> dict[str, Any]:
        return await self._send("delete", self.path(resource, name))

    def get(self, resource: str, name: str) -> dict[str, Any] | None:
        key = (self.k.resource(resource), self.namespace, name)
        if key not in self.k.objects or self.k.objects[key].deleted:
            return None
        return dict(self.k.objects[key].raw)

    def exists(self, resource: str, name: str) -> bool:
        return self.get(resource, name) is not None

    def status(self, resource: str, name: str) -> dict[str, Any]:
        return dict((self.get(resource, name) or {}).get("status") or {})

    def items(self, resource: str) -> list[dict[str, Any]]:
        wanted = self.k.resource(resource)
        return [
            dict(obj.raw)
            for (kind, namespace, _), obj in self.k.objects.items()
            if kind == wanted and namespace == self.namespace and not obj.deleted
        ]

    def events(self, name: str, kind: str = "WorkflowRun") -> list[tuple[str, str, str]]:
        """The Events posted about the ``kind`` named ``name``: (type, reason, message), in order."""
        return [
            (event.get("type", ""), event.get("reason", ""), event.get("message", ""))
            for r in self.requests("POST", "v1/events")
            if (about := (event := r.data or {}).get("involvedObject", {})).get("name") == name
            and about.get("kind") == kind
        ]

    def requests(self, method: str, resource: str, *, subresource: str | None = None) -> list[kmock.Request]:
        wanted = self.k.resource(resource)
        return [
            r
            for r in list(self.k)
            if str(r.method).upper().endswith(method.upper())
            and r.resource == wanted
            and r.subresource == subresource
        ]


def workflow_manifest(
    name: str = "examples", entrypoint: str = "examples.branching:workflow", **spec: Any
) -> dict[str, Any]:
    """A Workflow in the test namespace; scaling starts from zero and scales down at once."""
    scaling = {
        "minWorkers": 0,
        "maxWorkers": 2,
        "scaleDownStabilizationSeconds": 0,
        **spec.pop("scaling", {}),
    }
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Workflow",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {"image": "floxide-examples:0.1.0", "entrypoint": entrypoint, "scaling": scaling, **spec},
    }


def run_manifest(name: str, input: Any = None, workflow: str = "examples", **spec: Any) -> dict[str, Any]:
    """A WorkflowRun in the test namespace (``input=None`` leaves the input out)."""
    body: dict[str, Any] = {"workflow": workflow, **spec}
    if input is not None:
        body["input"] = input
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "WorkflowRun",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": body,
    }


async def eventually(
    check: Callable[[], Any], *, timeout: float = 30.0, interval: float = 0.05, what: str = "condition"
) -> Any:
    """Poll ``check`` (sync or async) until it returns a truthy value; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        last = check()
        if isinstance(last, Awaitable):
            last = await last
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")
        await asyncio.sleep(interval)


# -- the status contract ----------------------------------------------------------------------


def _without_nulls(value: Any) -> Any:
    """A merge patch's content without its deletions (``null`` removes a field; it is not a value)."""
    if isinstance(value, dict):
        return {key: _without_nulls(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [_without_nulls(item) for item in value]
    return value


def status_patches(emulator: kmock.KubernetesEmulator) -> list[tuple[str, str, dict[str, Any]]]:
    """Every status patch sent to a Workflow, WorkflowRun or WorkflowSchedule: (kind, name, status)."""
    kinds = {
        emulator.resource(WORKFLOWS): "Workflow",
        emulator.resource(RUNS): "WorkflowRun",
        emulator.resource(SCHEDULES): "WorkflowSchedule",
    }
    return [
        (kinds[r.resource], str(r.name), dict(r.data.get("status") or {}))
        for r in list(emulator)
        if str(r.method).upper().endswith("PATCH")
        and r.resource in kinds
        and r.subresource == "status"
        and isinstance(r.data, dict)
    ]


def contract_violations(emulator: kmock.KubernetesEmulator) -> list[str]:
    """Why the apiserver would refuse or prune a status patch the operator sent (the CRD contract).

    KMock stores anything; a real apiserver validates against the CRD schema and prunes unknown
    fields. ``test_crds.refusals`` stands in for it.
    """
    from tests.operator.test_crds import refusals, run, schedule, workflow

    logging.getLogger("celpy").setLevel(logging.WARNING)  # kopf's --verbose made the root logger DEBUG
    manifests = {"Workflow": workflow(), "WorkflowRun": run(), "WorkflowSchedule": schedule()}
    problems = []
    for kind, name, status in status_patches(emulator):
        for refusal in refusals({**manifests[kind], "status": _without_nulls(status)}):
            problems.append(f"{kind} {name}: {refusal}")
    return problems


@dataclass
class Cluster:
    """What an operator test works with: the API, Redis, and the kubelet."""

    api: Api
    redis_url: str
    kubelet: Kubelet
    kmock: Emulator


# -- Redis -------------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def redis_backend(url: str, workflow: str) -> AsyncIterator[RedisBackend]:
    """A backend of the Workflow resource ``workflow`` in the test namespace, as its workers use it."""
    client = Redis.from_url(url, decode_responses=True)
    try:
        yield RedisBackend(client, workflow, namespace=NAMESPACE)
    finally:
        await client.aclose()


NO_PERSISTENCE = ["--save", "", "--appendonly", "no"]
DURABLE = ["--save", "", "--appendonly", "yes", "--appendfsync", "always"]
"""redis-server arguments: a throwaway Redis, and one whose data survives a restart."""


# -- the operator --------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def operator(
    emulator: kmock.KubernetesEmulator, *, timeout: float = 60.0, entry: Path = ENTRY
) -> AsyncIterator[KopfRunner]:
    """The real operator, running until the block ends; its watches are open when the block starts."""
    args = ["run", "--standalone", "-A", "--verbose", str(entry)]
    runner = KopfRunner(args, registry=kopf.OperatorRegistry(), timeout=timeout)
    before = len(list(emulator))
    runner.__enter__()
    try:
        watched = {emulator.resource(r) for r in (WORKFLOWS, RUNS, DEPLOYMENTS)}

        def watching() -> bool:
            seen = {r.resource for r in list(emulator)[before:] if r.params.get("watch") == "true"}
            return watched <= seen

        await eventually(watching, timeout=30, what="the operator's watches")
        yield runner
    finally:
        await asyncio.to_thread(runner.__exit__, None, None, None)
    assert runner.exception is None or isinstance(runner.exception, SystemExit), runner.output


# -- the kubelet ---------------------------------------------------------------------------------


class Pod:
    """One worker process standing for one pod."""

    def __init__(self, name: str, process: subprocess.Popen[bytes], log: Path) -> None:
        self.name = name
        self.process = process
        self.log = log

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, *, timeout: float = 15.0) -> None:
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class Kubelet:
    """Keeps ``spec.replicas`` worker processes per worker Deployment, and reports their readiness."""

    def __init__(self, api: Api, directory: Path) -> None:
        self.api = api
        self.directory = directory
        self.pods: dict[str, list[Pod]] = {}
        self.reported: dict[str, tuple[int, int]] = {}
        self.started = 0
        self._task: asyncio.Task[None] | None = None

    def __enter__(self) -> Kubelet:
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="kubelet")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
        for pods in self.pods.values():
            for pod in pods:
                pod.stop(timeout=5)

    async def stop(self) -> None:
        """Stop the loop (awaiting it) and every process."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await asyncio.to_thread(self.__exit__, None, None, None)

    def count(self, deployment: str) -> int:
        return sum(pod.alive() for pod in self.pods.get(deployment, []))

    def logs(self) -> str:
        return "\n".join(
            f"--- {pod.name}\n{pod.log.read_text(errors='replace')[-3000:]}"
            for pods in self.pods.values()
            for pod in pods
            if pod.log.exists()
        )

    async def _loop(self) -> None:
        while True:
            for deployment in self.api.items(DEPLOYMENTS):
                await self._sync(deployment)
            await asyncio.sleep(0.1)

    async def _sync(self, deployment: dict[str, Any]) -> None:
        name = deployment["metadata"]["name"]
        wanted = deployment.get("spec", {}).get("replicas")
        wanted = 1 if wanted is None else int(wanted)
        pods = self.pods.setdefault(name, [])
        pods[:] = [pod for pod in pods if pod.alive()]
        while len(pods) < wanted:
            pods.append(self._start(deployment))
        while len(pods) > wanted:
            pod = pods.pop()
            await asyncio.to_thread(pod.stop)
        report = (len(pods), sum(1 for pod in pods if pod.alive()))
        if self.reported.get(name) != report:
            self.reported[name] = report
            status = {"replicas": report[0], "readyReplicas": report[1], "availableReplicas": report[1]}
            await self.api.patch(DEPLOYMENTS, name, {"status": status}, subresource="status")

    def _env(self, container: dict[str, Any]) -> dict[str, str]:
        env: dict[str, str] = {}
        for var in container.get("env", []):
            if "value" in var:
                env[var["name"]] = var["value"]
                continue
            ref = var.get("valueFrom", {}).get("secretKeyRef")
            secret = self.api.get(SECRETS, ref["name"]) if ref else None
            data = (secret or {}).get("data") or {}
            if ref and data.get(ref["key"]):
                env[var["name"]] = base64.b64decode(data[ref["key"]]).decode()
        return env

    def _start(self, deployment: dict[str, Any]) -> Pod:
        name = deployment["metadata"]["name"]
        suffix = "".join(random.choices("bcdfghjklmnpqrstvwxz2456789", k=5))
        pod_name = f"{name}-5d8f7c9b4-{suffix}"
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        env = self._env(container)
        assert container["args"][0] == "worker", container["args"]
        command = [
            sys.executable, "-m", "floxide_worker", container["args"][1],
            "--redis", env.get("FLOXIDE_REDIS_URL", ""), "--namespace", env.get("FLOXIDE_NAMESPACE", ""),
            "--http-port", "0", "--drain-seconds", "2",
        ]  # fmt: skip
        process_env = {**os.environ, **env, "HOSTNAME": pod_name, "PYTHONUNBUFFERED": "1"}
        process_env["FLOXIDE_WORKER_HTTP_PORT"] = "0"
        process_env["FLOXIDE_LOG_FORMAT"] = "text"
        self.started += 1
        log = self.directory / f"{pod_name}.log"
        with open(log, "wb") as out:
            process = subprocess.Popen(
                command, cwd=ROOT, env=process_env, stdout=out, stderr=subprocess.STDOUT
            )
        return Pod(pod_name, process, log)
