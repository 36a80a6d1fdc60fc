"""Reconciling a Workflow: its Redis Secret, its worker Deployment, its scale, its status.

One timer per Workflow does it all, level-triggered, so that creating, changing, resuming after a
restart and repairing (a deleted Deployment comes back) are the same code path:

1. mirror the workers' Redis connection into the Workflow's namespace (unless ``spec.redis``):
   the namespace's own Redis user, or the operator's connection (:mod:`.tenancy`);
2. create the worker Deployment, or patch its pod template when the spec or the Redis connection
   changed (a hash of the connection is in the template, so new values roll the pods);
3. read the graph the workers published and the backlog, under the Workflow resource's own name
   (the operator tells the workers that name: ``FLOXIDE_WORKER_SERVE_AS``);
4. size the Deployment from the backlog (:mod:`.scaling`), or apply ``spec.replicas``
   (``scaling.mode: External``);
5. project it all into ``status``, patched only on change and at most once per interval.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import kopf
from pydantic import ValidationError

from . import deployment as manifests
from . import models, tenancy, tombstones
from .kube import KubeError
from .models import Phase
from .projection import Coalescer, condition, merge_conditions
from .redis_users import RedisUserRefused
from .runtime import DeploymentView, Runtime
from .scaling import ScaleState, desired_workers
from .store import Connection, RedisUnavailable, WorkflowStore
from .tls import worker_ca

__all__ = ["WorkflowMemory", "reconcile_workflow"]

log = logging.getLogger(__name__)

SECRET_REFRESH_SECONDS = 60.0
"""How long a Workflow's own Redis Secret (``spec.redis``) is cached."""

GRAPH_SECONDS = 10.0
"""How often a known graph is read again."""

MIRROR_SECONDS = 300.0
"""How often the operator's Redis Secret is copied to a Workflow's namespace again (repairs edits)."""

IN_PROGRESS = frozenset({Phase.PENDING, Phase.RUNNING, Phase.SUSPENDED})
"""Phases of runs that are not over."""


@dataclass
class WorkflowMemory:
    """What the operator remembers about one Workflow between ticks (in memory)."""

    coalescer: Coalescer
    scale: ScaleState = field(default_factory=ScaleState)
    mirrored: float = float("-inf")
    mirrored_as: Connection | None = None
    connection: Connection | None = None
    connection_read: float = float("-inf")
    connection_for: str | None = None
    graph: dict[str, Any] | None = None
    graph_read: float = float("-inf")
    created_replicas: int | None = None
    last_error: str | None = None


def _memory(rt: Runtime, memo: Any, status: dict[str, Any]) -> WorkflowMemory:
    memory: WorkflowMemory | None = memo.get("workflow")
    if memory is None:
        memory = memo["workflow"] = WorkflowMemory(
            coalescer=rt.coalescer(status, volatile=frozenset({"backlog", "slotsInUse", "throttledItems"}))
        )
    return memory


async def _connection(
    rt: Runtime, memory: WorkflowMemory, spec: models.WorkflowSpec, namespace: str, now: float
) -> Connection:
    """The Redis of the Workflow: its own Secret's (``spec.redis``), else the operator's."""
    redises = rt.require_redis()
    if spec.redis is None:
        return redises.default
    ref = spec.redis.secret_ref
    fresh = now - memory.connection_read < SECRET_REFRESH_SECONDS and memory.connection_for == ref.name
    if memory.connection is not None and fresh:
        return memory.connection
    data = await rt.require_kube().secret_data(namespace, ref.name)
    if data is None or ref.url_key not in data:
        raise KubeError(f"Secret {namespace}/{ref.name} has no key '{ref.url_key}' (spec.redis.secretRef)")
    memory.connection = Connection(data[ref.url_key], data.get(ref.password_key) or None)
    memory.connection_read, memory.connection_for = now, ref.name
    return memory.connection


async def _mirror_secret(rt: Runtime, body: Any, name: str, namespace: str, mirrored: Connection) -> None:
    """Copy the workers' Redis connection into the Workflow's namespace, owned by the Workflow."""
    secret = manifests.mirrored_secret(
        workflow=name,
        namespace=namespace,
        url=mirrored.url,
        password=mirrored.password,
        username=mirrored.username,
    )
    kopf.adopt(secret, owner=body)
    await rt.require_kube().apply_secret(secret)


def _desired_deployment(
    rt: Runtime,
    spec: models.WorkflowSpec,
    *,
    name: str,
    namespace: str,
    replicas: int | None,
    workers_connection: Connection,
) -> dict[str, Any]:
    return manifests.worker_deployment(
        spec,
        workflow=name,
        namespace=namespace,
        replicas=replicas,
        service_account=rt.settings.worker_service_account,
        drain_seconds=rt.settings.worker_drain_seconds,
        max_payload_bytes=rt.settings.max_payload_bytes,
        redis_ca=worker_ca(rt.settings.redis) if spec.redis is None else None,
        connection_hash=manifests.connection_hash(
            workers_connection.url, workers_connection.password, workers_connection.username
        ),
    )


async def _ensure_deployment(
    rt: Runtime,
    memory: WorkflowMemory,
    body: Any,
    spec: models.WorkflowSpec,
    *,
    name: str,
    namespace: str,
    initial: int | None,
    workers_connection: Connection,
) -> DeploymentView | None:
    """Create the Deployment or bring its template up to date; the view of it (None if just created)."""
    kube = rt.require_kube()
    dname = manifests.deployment_name(name)
    seen = rt.deployments.get((namespace, dname))
    desired = _desired_deployment(
        rt, spec, name=name, namespace=namespace, replicas=initial, workers_connection=workers_connection
    )
    kopf.adopt(desired, owner=body)
    wanted_hash = desired["metadata"]["annotations"][manifests.TEMPLATE_HASH_ANNOTATION]
    if seen is None:
        if await kube.create_deployment(desired):
            memory.created_replicas = initial
            kopf.info(body, reason="DeploymentCreated", message=f"Created worker Deployment {dname}")
            return None
        return None  # it exists; the watch has not told us yet
    if seen.template_hash != wanted_hash:
        patch = {
            "metadata": {
                "annotations": desired["metadata"]["annotations"],
                "labels": desired["metadata"]["labels"],
            },
            "spec": {"template": desired["spec"]["template"]},
        }
        await kube.patch_deployment(namespace, dname, patch)
        kopf.info(body, reason="DeploymentUpdated", message=f"Updated the pod template of {dname}")
    return seen


async def _graph(store: WorkflowStore, memory: WorkflowMemory, now: float) -> dict[str, Any] | None:
    if memory.graph is None or now - memory.graph_read >= GRAPH_SECONDS:
        memory.graph = await store.graph()
        memory.graph_read = now
    return memory.graph


def graph_model(graph: dict[str, Any] | None) -> models.WorkflowGraph | None:
    """The published graph as the status model; None if absent or not understood."""
    if graph is None:
        return None
    try:
        return models.WorkflowGraph.model_validate(graph)
    except ValidationError as exc:
        log.warning("the published graph does not fit the Workflow status: %s", exc)
        return None


def _ready_condition(
    *, view: DeploymentView | None, desired: int, redis_error: str | None, generation: int | None
) -> models.Condition:
    if redis_error is not None:
        return condition("Ready", False, "RedisUnavailable", redis_error, generation=generation)
    if view is None:
        return condition(
            "Ready", False, "DeploymentPending", "creating the worker Deployment", generation=generation
        )
    if desired == 0:
        return condition("Ready", True, "ScaledToZero", "no work: no worker runs", generation=generation)
    message = f"{view.ready}/{desired} workers ready"
    if view.ready >= desired:
        return condition("Ready", True, "WorkersReady", message, generation=generation)
    return condition("Ready", False, "WorkersStarting", message, generation=generation)


@dataclass
class RedisView:
    """What one tick read from Redis about a Workflow (the backlog is None when unknown)."""

    backlog: int | None = None
    graph: dict[str, Any] | None = None
    error: str | None = None
    queued: int | None = None
    limits: tuple[int, int] | None = None  # node-limit slots in use, items throttled


async def _read_redis(
    rt: Runtime,
    memory: WorkflowMemory,
    connection: Connection,
    *,
    name: str,
    namespace: str,
    now: float,
    max_active_runs: int | None = None,
) -> RedisView:
    """The backlog and graph; also applies ``spec.maxActiveRuns`` (and counts the queued runs)."""
    try:
        store = rt.require_redis().store(connection, namespace=namespace, workflow=name)
        queued = await store.apply_run_limit(max_active_runs)
        rt.metrics.queued_runs.labels(namespace, name).set(queued)
        backlog, graph = await store.backlog(), await _graph(store, memory, now)
        return RedisView(backlog=backlog, graph=graph, queued=queued, limits=await store.limits())
    except RedisUnavailable as exc:
        return RedisView(error=str(exc))


def _runs(rt: Runtime, namespace: str, name: str) -> tuple[int, int]:
    """The Workflow's runs in progress, and those of them waiting to be seeded (load for the scaler)."""
    active = [run for run in rt.runs_of(namespace, name) if run.phase is None or run.phase in IN_PROGRESS]
    return len(active), sum(1 for run in active if not run.seeded)


def _size(
    spec: models.WorkflowSpec, memory: WorkflowMemory, *, current: int, load: int | None, now: float
) -> int | None:
    """The worker count to apply; None to leave the Deployment's count alone (External, no replicas)."""
    if spec.scaling.mode is models.ScalingMode.EXTERNAL:
        return spec.replicas
    return desired_workers(spec.scaling, load=load, current=current, state=memory.scale, now=now)


async def reconcile_workflow(
    rt: Runtime,
    *,
    body: Any,
    spec: Any,
    status: Any,
    name: str,
    namespace: str,
    meta: Any,
    patch: kopf.Patch,
    memo: Any,
) -> None:
    """One reconciliation of a Workflow (the timer's body); never raises for expected failures."""
    with rt.metrics.reconciling("workflow"):
        now = time.monotonic()
        generation = meta.get("generation")
        memory = _memory(rt, memo, dict(status))
        try:
            parsed = models.WorkflowSpec.model_validate(dict(spec))
        except ValidationError as exc:
            ready = condition("Ready", False, "InvalidSpec", str(exc), generation=generation)
            _patch_status(
                rt, memory, patch, {**memory.coalescer.sent, "conditions": [ready.to_body()]}, now=now
            )
            return
        try:
            connection = await _connection(rt, memory, parsed, namespace, now)
            workers = connection
            if parsed.redis is None:
                workers = await tenancy.workers_connection(rt, namespace, now=now)
                if now - memory.mirrored >= MIRROR_SECONDS or workers != memory.mirrored_as:
                    await _mirror_secret(rt, body, name, namespace, workers)
                    memory.mirrored, memory.mirrored_as = now, workers
        except (KubeError, RedisUserRefused) as exc:
            _report(rt, body, memory, "SecretFailed", str(exc))
            ready = condition("Ready", False, "SecretUnavailable", str(exc), generation=generation)
            _patch_status(
                rt, memory, patch, {**memory.coalescer.sent, "conditions": [ready.to_body()]}, now=now
            )
            return
        if parsed.redis is None:
            rt.connections.pop((namespace, name), None)
        else:
            rt.connections[(namespace, name)] = connection

        redis = await _read_redis(
            rt,
            memory,
            connection,
            name=name,
            namespace=namespace,
            now=now,
            max_active_runs=parsed.max_active_runs,
        )
        if redis.error is None:  # runs deleted while Redis was away
            store = rt.require_redis().store(connection, namespace=namespace, workflow=name)
            await tombstones.clear(store, meta.get("annotations"), patch)
        active, waiting = _runs(rt, namespace, name)
        dname = manifests.deployment_name(name)
        view = rt.deployments.get((namespace, dname))
        current = view.spec_replicas if view is not None else memory.created_replicas
        load = None if redis.backlog is None else redis.backlog + waiting
        wanted = _size(parsed, memory, current=current or 0, load=load, now=now)
        try:
            view = await _ensure_deployment(
                rt,
                memory,
                body,
                parsed,
                name=name,
                namespace=namespace,
                initial=wanted,
                workers_connection=workers,
            )
            if view is not None and wanted is not None and view.spec_replicas != wanted:
                await rt.require_kube().patch_deployment(namespace, dname, {"spec": {"replicas": wanted}})
                log.info("Workflow %s/%s: %s -> %s workers", namespace, name, view.spec_replicas, wanted)
                view.spec_replicas = wanted
        except KubeError as exc:
            _report(rt, body, memory, "DeploymentFailed", str(exc))

        desired = wanted if wanted is not None else (current or 0)
        ready_workers = view.ready if view is not None else 0
        redis_condition = condition(
            "RedisAvailable",
            redis.error is None,
            "Connected" if redis.error is None else "ConnectionFailed",
            redis.error or f"{connection.where()} answers",
            generation=generation,
        )
        ready = _ready_condition(view=view, desired=desired, redis_error=redis.error, generation=generation)
        new = models.WorkflowStatus(
            conditions=merge_conditions(memory.coalescer.sent.get("conditions"), [ready, redis_condition]),
            observed_generation=generation,
            replicas=view.replicas if view is not None else 0,
            selector=manifests.selector_string(name),
            desired_workers=desired,
            ready_workers=ready_workers,
            ready=f"{ready_workers}/{desired}",
            active_runs=active,
            queued_runs=redis.queued,
            backlog=redis.backlog,
            slots_in_use=redis.limits[0] if redis.limits else None,
            throttled_items=redis.limits[1] if redis.limits else None,
            graph=graph_model(redis.graph),
        ).to_body()
        for kept in ("backlog", "graph"):  # while Redis is away, the last known values stay
            if kept not in new and kept in memory.coalescer.sent:
                new[kept] = memory.coalescer.sent[kept]
        _patch_status(rt, memory, patch, new, now=now)


def _patch_status(
    rt: Runtime, memory: WorkflowMemory, patch: kopf.Patch, status: dict[str, Any], *, now: float
) -> None:
    changes = memory.coalescer.due(status, now=now)
    if changes:
        patch.status.update(changes)
        memory.coalescer.mark_sent(status, now=now)
        rt.metrics.status_patches.labels("workflow").inc()


def _report(rt: Runtime, body: Any, memory: WorkflowMemory, reason: str, message: str) -> None:
    """Count the failure; log it and post a warning Event once per distinct message."""
    rt.metrics.reconcile_errors.labels("workflow").inc()
    if memory.last_error != message:
        memory.last_error = message
        log.warning("%s: %s", reason, message)
        kopf.warn(body, reason=reason, message=message)
