"""A WorkflowRun's life: admitted and seeded into Redis once, then steered and watched.

One timer per active run (at most every ``run_interval`` seconds) compares the resource with
Redis and acts, level-triggered, so that an operator restart simply carries on:

* not yet seeded: find the Workflow (Pending while it is missing), wait for its workers to
  publish the graph, read the input (inline or ``spec.inputFrom``), check its size against
  ``FLOXIDE_MAX_PAYLOAD_BYTES`` (Failed, ``InputTooLarge``, naming size and limit) and validate it
  against the graph's ``inputSchema`` (Failed, naming the field, if it does not fit), then seed the run under
  a run id derived from the resource (``<name>-<uid prefix>``). Seeding is idempotent per run
  id, and ``status.seeded`` records it, so a restart never seeds twice;
* seeded: apply ``spec.shutdown`` (Stop: running steps finish; Terminate: they are cancelled),
  ``spec.suspend``, a raised ``spec.retryGeneration`` (a Failed run continues from where it
  failed) and ``activeDeadlineSeconds``; then project the run's record and metrics into status;
* finished with ``ttlSecondsAfterFinished``: delete the run's Redis data and the resource.

Status patches are coalesced (:class:`~.projection.Coalescer`): at most one per
``status_min_interval``; a phase change posts an Event on the resource.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import kopf
from pydantic import ValidationError

from floxide.distributed.models import RunStatus
from floxide.distributed.payloads import check_payload
from floxide.errors import PayloadTooLarge

from . import models, tombstones
from .inputs import InputRefused, input_errors, read_input, spec_errors
from .kube import KubeError
from .models import Phase, ShutdownMode
from .projection import (
    ERROR_LENGTH,
    FINISHED,
    Coalescer,
    RunView,
    condition,
    merge_conditions,
    project_run,
    short,
)
from .runtime import Runtime, phase_in
from .store import RedisUnavailable, WorkflowStore

__all__ = ["RunMemory", "cleanup_run", "needs_timer", "reconcile_run", "run_id_of"]

log = logging.getLogger(__name__)

FAILED_CHECK_SECONDS = 5.0
"""How often a Failed run is read again (it can be retried from outside: ``floxide retry``)."""


class Reject(Exception):
    """The run cannot be seeded (yet): ``phase`` and the Accepted condition say why."""

    def __init__(self, phase: Phase, reason: str, message: str) -> None:
        super().__init__(message)
        self.phase = phase
        self.reason = reason
        self.message = message


@dataclass
class RunMemory:
    """What the operator remembers about one run between ticks (in memory)."""

    coalescer: Coalescer
    phase: Phase | None
    observed_retry: int = 0
    store: WorkflowStore | None = None
    nodes: list[str] = field(default_factory=list)
    checked: float = float("-inf")


def run_id_of(name: str, uid: str | None) -> str:
    """The run's id in Redis: the resource name and a prefix of its uid (unique across re-creations)."""
    suffix = (uid or "").replace("-", "")[:8]
    return f"{name[:180]}-{suffix}" if suffix else name[:190]


def needs_timer(spec: Any, status: Any, **_: Any) -> bool:
    """Whether the run still needs its timer (and so kopf's finalizer).

    Succeeded and Cancelled runs never change again: their timer stops, kopf removes its
    finalizer, and deleting them never waits for the operator (their Redis data expires with
    the run's TTL). Failed runs stay watched: they can be retried.
    """
    phase = phase_in(status)
    if phase in (Phase.SUCCEEDED, Phase.CANCELLED):
        return spec.get("ttlSecondsAfterFinished") is not None
    return True


def _memory(rt: Runtime, memo: Any, status: dict[str, Any]) -> RunMemory:
    memory: RunMemory | None = memo.get("run")
    if memory is None:
        memory = memo["run"] = RunMemory(
            coalescer=rt.coalescer(status, volatile=frozenset({"duration"})),
            phase=phase_in(status),
            observed_retry=int(status.get("observedRetryGeneration") or 0),
        )
    return memory


def _store_for(rt: Runtime, namespace: str, workflow: str) -> WorkflowStore:
    """The store of a Workflow's runs: its workers serve it under the Workflow resource's name."""
    return rt.require_redis().store(
        rt.connection_of(namespace, workflow), namespace=namespace, workflow=workflow
    )


async def _admit(
    rt: Runtime,
    memory: RunMemory,
    spec: models.WorkflowRunSpec,
    *,
    name: str,
    namespace: str,
    uid: str | None,
) -> str:
    """Seed the run; its run id. :class:`Reject` when it cannot be seeded now (or ever)."""
    if (namespace, spec.workflow) not in rt.workflows:
        raise Reject(
            Phase.PENDING,
            "WorkflowNotFound",
            f"Workflow '{spec.workflow}' does not exist in namespace '{namespace}'",
        )
    store = _store_for(rt, namespace, spec.workflow)
    graph = await store.graph()
    if graph is None:
        raise Reject(
            Phase.PENDING, "WaitingForWorkers", f"waiting for a worker of Workflow '{spec.workflow}' to start"
        )
    try:
        value = await read_input(rt.require_kube(), spec, namespace)
    except InputRefused as refused:
        raise Reject(
            Phase.FAILED if refused.final else Phase.PENDING, refused.reason, refused.message
        ) from None
    limit = rt.settings.max_payload_bytes
    try:
        check_payload(value, what="the run's input", limit=limit)
    except PayloadTooLarge as exc:
        raise Reject(Phase.FAILED, "InputTooLarge", str(exc)) from None
    problems = input_errors(graph.get("inputSchema"), value)
    if problems:
        raise Reject(Phase.FAILED, "InvalidInput", "; ".join(problems))
    run_id = run_id_of(name, uid)
    await store.seed(
        run_id,
        start_node=graph["startNode"],
        payload=value,
        deadline_seconds=spec.active_deadline_seconds,
        max_payload_bytes=limit,
        priority=spec.priority,
    )
    if spec.suspend:
        await store.move(run_id, RunStatus.PAUSED)
    memory.store = store
    memory.nodes = [node["name"] for node in graph.get("nodes", [])]
    log.info("WorkflowRun %s/%s: seeded as run %s of '%s'", namespace, name, run_id, store.keys.workflow)
    return run_id


async def _locate(rt: Runtime, namespace: str, workflow: str, run_id: str) -> WorkflowStore | None:
    """The store holding ``run_id``, found through the run index of Redis (the Workflow may be gone)."""
    connection = rt.connection_of(namespace, workflow)
    return await rt.require_redis().locate(connection, namespace=namespace, run_id=run_id)


async def _node_names(store: WorkflowStore) -> list[str]:
    """The names of the graph's nodes, in order (none while no graph is published)."""
    graph = await store.graph()
    return [node["name"] for node in (graph or {}).get("nodes", [])]


async def _steer(
    store: WorkflowStore,
    memory: RunMemory,
    spec: models.WorkflowRunSpec,
    run_id: str,
    status: RunStatus,
    deadline: datetime | None,
) -> bool:
    """Bring the run in Redis in line with its spec; whether anything was done.

    The phase change that follows shows in the status (and posts its Event) on this tick.
    """
    if spec.retry_generation > memory.observed_retry:
        memory.observed_retry = spec.retry_generation
        if status is RunStatus.FAILED:
            await store.move(run_id, RunStatus.RUNNING)
            return True
    if status.finished:
        return False
    if spec.shutdown is not None:
        terminate = spec.shutdown is ShutdownMode.TERMINATE
        reason = f"cancelled by spec.shutdown: {spec.shutdown.value}"
        await store.move(run_id, RunStatus.CANCELLED, reason=reason, interrupt=terminate)
        return True
    if deadline is not None and datetime.now(UTC) >= deadline:
        seconds = spec.active_deadline_seconds
        await store.move(run_id, RunStatus.FAILED, reason=f"run exceeded its active deadline of {seconds}s")
        return True
    if spec.suspend and status in (RunStatus.PENDING, RunStatus.RUNNING):
        await store.move(run_id, RunStatus.PAUSED)
        return True
    if not spec.suspend and status is RunStatus.PAUSED:
        await store.move(run_id, RunStatus.RUNNING)
        return True
    return False


async def _observe(
    rt: Runtime, memory: RunMemory, spec: models.WorkflowRunSpec, previous: dict[str, Any], *, namespace: str
) -> models.WorkflowRunStatus:
    """The seeded run's status from Redis, after steering it by its spec."""
    run_id = previous["runId"]
    if memory.store is None:  # after a restart: the run was seeded by an earlier operator process
        memory.store = await _locate(rt, namespace, spec.workflow, run_id)
        memory.nodes = await _node_names(memory.store) if memory.store is not None else []
    store = memory.store
    info, metrics = await store.read(run_id) if store is not None else (None, None)
    if info is None or metrics is None:
        if phase_in(previous) in FINISHED:
            return models.WorkflowRunStatus.model_validate(previous)
        gone = models.WorkflowRunStatus(
            phase=Phase.FAILED,
            run_id=run_id,
            error=f"run {run_id} is gone from Redis (expired, deleted, or Redis lost its data)",
            finished_at=datetime.now(UTC).replace(microsecond=0),
        )
        return gone
    assert store is not None
    if await _steer(store, memory, spec, run_id, info.status, info.deadline):
        info, metrics = await store.read(run_id)
        if info is None or metrics is None:
            return models.WorkflowRunStatus.model_validate(previous)
    view = RunView(
        run_id=run_id, info=info, metrics=metrics, nodes=memory.nodes, output_key=store.output_key(run_id)
    )
    return project_run(view, now=datetime.now(UTC))


def _completed(phase: Phase | None, message: str, generation: int | None) -> models.Condition:
    if phase in FINISHED:
        assert phase is not None
        return condition("Completed", True, phase.value, message, generation=generation)
    return condition("Completed", False, (phase or Phase.PENDING).value, message, generation=generation)


async def _status(
    rt: Runtime,
    memory: RunMemory,
    spec: models.WorkflowRunSpec,
    previous: dict[str, Any],
    *,
    name: str,
    namespace: str,
    uid: str | None,
    generation: int | None,
) -> tuple[models.WorkflowRunStatus, list[models.Condition]]:
    """The run's new status and the conditions that changed (Accepted, RedisAvailable)."""
    seeded = bool(previous.get("seeded"))
    changed: list[models.Condition] = []
    try:
        if not seeded and phase_in(previous) not in FINISHED:
            if spec.shutdown is not None:
                message = f"cancelled before it started (spec.shutdown: {spec.shutdown.value})"
                raise Reject(Phase.CANCELLED, "Cancelled", message)
            run_id = await _admit(rt, memory, spec, name=name, namespace=namespace, uid=uid)
            previous = {**previous, "runId": run_id, "seeded": True}
            seeded = True
            message = f"queued in Redis as run {run_id}"
            changed.append(condition("Accepted", True, "Seeded", message, generation=generation))
        if seeded:
            new = await _observe(rt, memory, spec, previous, namespace=namespace)
            new.seeded = True
            new.observed_retry_generation = memory.observed_retry
        else:
            new = models.WorkflowRunStatus.model_validate(previous)
        changed.append(condition("RedisAvailable", True, "Connected", "Redis answers", generation=generation))
    except Reject as rejection:
        new = _rejected(rejection.phase, rejection.message)
        changed.append(
            condition("Accepted", False, rejection.reason, rejection.message, generation=generation)
        )
        changed.append(condition("RedisAvailable", True, "Connected", "Redis answers", generation=generation))
    except RedisUnavailable as exc:
        new = models.WorkflowRunStatus.model_validate(previous)
        new.phase = new.phase or Phase.PENDING
        new.message = short(f"Redis unavailable: {exc}")
        changed.append(
            condition("RedisAvailable", False, "ConnectionFailed", str(exc), generation=generation)
        )
    return new, changed


async def reconcile_run(
    rt: Runtime,
    *,
    body: Any,
    spec: Any,
    status: Any,
    name: str,
    namespace: str,
    uid: str | None,
    meta: Any,
    patch: kopf.Patch,
    memo: Any,
) -> None:
    """One tick of a run: admit or observe, patch status (coalesced), post Events, apply the TTL."""
    with rt.metrics.reconciling("workflowrun"):
        previous = dict(status)
        memory = _memory(rt, memo, previous)
        now = time.monotonic()
        generation = meta.get("generation")
        try:
            parsed = models.WorkflowRunSpec.model_validate(dict(spec))
        except ValidationError as exc:
            message = short(spec_errors(exc))
            new = _rejected(Phase.FAILED, message)
            accepted = condition("Accepted", False, "InvalidSpec", message, generation=generation)
            new.conditions = merge_conditions(memory.coalescer.sent.get("conditions"), [accepted])
            _publish(rt, memory, body, patch, new, uid=uid, now=now)
            return
        failed = phase_in(previous) is Phase.FAILED and bool(previous.get("seeded"))
        retrying = parsed.retry_generation > memory.observed_retry
        if failed and not retrying and now - memory.checked < FAILED_CHECK_SECONDS:
            return
        memory.checked = now
        new, changed = await _status(
            rt, memory, parsed, previous, name=name, namespace=namespace, uid=uid, generation=generation
        )
        new.kopf = None
        new.observed_generation = generation
        suspended = new.phase is Phase.SUSPENDED
        changed += [
            _completed(new.phase, new.message or "", generation),
            condition(
                "Suspended",
                suspended,
                "Suspended" if suspended else "NotSuspended",
                f"spec.suspend is {'true' if parsed.suspend else 'false'}",
                generation=generation,
            ),
        ]
        new.conditions = merge_conditions(memory.coalescer.sent.get("conditions"), changed)
        # timed as the patch goes, not as the tick began: reading the run took a varying while,
        # which would let two patches land closer than the interval
        _publish(rt, memory, body, patch, new, uid=uid, now=time.monotonic())
        await _expire(rt, memory, body, parsed, new, shown=phase_in(previous), name=name, namespace=namespace)


def _rejected(phase: Phase, message: str) -> models.WorkflowRunStatus:
    """The status of a run that was not seeded: Pending (for now), or Failed or Cancelled."""
    finished = datetime.now(UTC).replace(microsecond=0) if phase in FINISHED else None
    return models.WorkflowRunStatus(
        phase=phase,
        message=short(message),
        error=short(message, ERROR_LENGTH) if phase is Phase.FAILED else None,
        finished_at=finished,
        seeded=False,
    )


def _publish(
    rt: Runtime,
    memory: RunMemory,
    body: Any,
    patch: kopf.Patch,
    new: models.WorkflowRunStatus,
    *,
    uid: str | None,
    now: float,
) -> None:
    """Patch the status if due; post an Event when the patch shows a new phase; count the phase.

    The status waits for kopf's finalizer: kopf adds it with a patch conditional on the
    resource version, which a status patch landing first would make fail (422) and repeat.
    Events follow the status, so each phase a run is seen in costs one patch and one Event.
    """
    status = new.to_body()
    finalized = models.FINALIZER in (body.get("metadata", {}).get("finalizers") or [])
    changes = memory.coalescer.due(status, now=now) if finalized else None
    if changes:
        patch.status.update(changes)
        memory.coalescer.mark_sent(status, now=now)
        rt.metrics.status_patches.labels("workflowrun").inc()
        if new.phase is not None and new.phase is not memory.phase:
            memory.phase = new.phase
            message = new.error or new.message or new.phase.value
            if new.phase is Phase.FAILED:
                kopf.warn(body, reason=new.phase.value, message=short(message))
            else:
                kopf.info(body, reason=new.phase.value, message=short(message))
    rt.metrics.run_phase(uid or str(id(memory)), memory.phase)


async def _expire(
    rt: Runtime,
    memory: RunMemory,
    body: Any,
    spec: models.WorkflowRunSpec,
    status: models.WorkflowRunStatus,
    *,
    shown: Phase | None,
    name: str,
    namespace: str,
) -> None:
    """Delete a finished run once ``ttlSecondsAfterFinished`` has passed (its Redis data first).

    ``shown`` is the phase the resource showed when this tick began.
    """
    if spec.ttl_seconds_after_finished is None or status.phase not in FINISHED or status.finished_at is None:
        return
    if shown is not status.phase:
        return  # the end of the run shows in the resource before the TTL removes it
    if datetime.now(UTC) < status.finished_at + timedelta(seconds=spec.ttl_seconds_after_finished):
        return
    try:
        if memory.store is not None and status.run_id:
            await memory.store.delete(status.run_id)
    except RedisUnavailable as exc:
        log.warning("WorkflowRun %s/%s: its Redis data stays until it expires: %s", namespace, name, exc)
    try:
        await rt.require_kube().delete_custom(
            group=models.GROUP,
            version=models.VERSION,
            plural=models.WORKFLOW_RUN_PLURAL,
            namespace=namespace,
            name=name,
        )
    except KubeError as exc:
        log.warning("WorkflowRun %s/%s: cannot delete it after its TTL: %s", namespace, name, exc)
        return
    kopf.info(body, reason="Expired", message=f"Deleted {spec.ttl_seconds_after_finished}s after it finished")


async def cleanup_run(rt: Runtime, *, spec: Any, status: Any, name: str, namespace: str, memo: Any) -> None:
    """The deletion handler: stop the run and delete its Redis data.

    Without Redis, the deletion does not wait: a tombstone on the run's Workflow
    (:mod:`.tombstones`) has the data deleted once Redis answers.
    """
    run_id = status.get("runId")
    if not run_id or not status.get("seeded"):
        return
    workflow = str(spec.get("workflow", ""))
    memory = memo.get("run")
    store = memory.store if memory is not None else None
    try:
        if store is None:
            store = await _locate(rt, namespace, workflow, run_id)
        if store is None:
            return  # gone already (expired, or deleted by the TTL)
        deleted = await store.delete(run_id)
    except RedisUnavailable as exc:
        if await tombstones.leave(rt.require_kube(), namespace=namespace, workflow=workflow, run_id=run_id):
            log.warning(
                "WorkflowRun %s/%s: Redis is unavailable (%s); run %s's data is deleted once it answers",
                namespace, name, exc, run_id,
            )  # fmt: skip
        else:
            log.warning(
                "WorkflowRun %s/%s: Redis is unavailable (%s) and Workflow %s is gone: run %s's data stays",
                namespace, name, exc, workflow, run_id,
            )  # fmt: skip
        return
    log.info("WorkflowRun %s/%s: deleted %d Redis keys of run %s", namespace, name, deleted, run_id)
