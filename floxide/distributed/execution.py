"""Seeding a distributed run and executing one claimed work item: the steps every worker shares.

``start_run`` creates the run record and enqueues the start item, once per run id.
``process_claim`` takes the node's limits (or throttles the item); ``run_claim`` checks the
run (paused or failed runs park the item, cancelled or finished runs drop it, an expired
deadline fails the run), runs the node with the engine's
:func:`floxide.step.execute`, and hands the outcome to the backend: an atomic commit, a
durable delayed retry, or a permanent failure. Node code runs at least once per item; its
effects on the run are committed exactly once, and not at all if the run was cancelled or
deleted while the node ran (the backend's fence, :data:`~floxide.distributed.protocols.FENCED`:
the item is then ``dropped``).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import time
import traceback
import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from pydantic_core import to_jsonable_python

from floxide.context import CancelToken, WorkflowCtx
from floxide.distributed.limits import held_limits
from floxide.distributed.models import Claim, ErrorRecord, RunInfo, RunStatus
from floxide.distributed.payloads import DEFAULT_MAX_PAYLOAD_BYTES, check_commit, check_payload
from floxide.distributed.priority import check_priority
from floxide.distributed.protocols import FENCED, Backend, Commit, Handoff, StepInput, Successor
from floxide.errors import FloxideError, InputError, PayloadTooLarge
from floxide.retry import RetryPolicy
from floxide.step import Outcome, execute
from floxide.tracing import tracing
from floxide.workitem import WorkItem

if TYPE_CHECKING:
    from floxide.otel import StepTrace
    from floxide.workflow import Workflow

__all__ = [
    "ROOT_ITEM",
    "StepResult",
    "child_id",
    "plan_commit",
    "process_claim",
    "run_claim",
    "seed_run",
    "start_run",
]

ROOT_ITEM = "root"

log = logging.getLogger(__name__)

StepResult = str
"""What happened to a claimed item: ``committed``, ``duplicate``, ``retrying``, ``failed``,
``parked``, ``dropped``, ``cancelled`` or ``throttled`` (set aside by a node limit)."""


async def start_run(
    workflow: Workflow[Any, Any],
    backend: Backend,
    input: Any,
    *,
    run_id: str | None = None,
    context: Any = None,
    deadline_seconds: float | None = None,
    max_payload_bytes: int | None = DEFAULT_MAX_PAYLOAD_BYTES,
    idempotency_key: str | None = None,
    priority: str = "normal",
) -> str:
    """Seed a run: validate ``input``, store the context and the first item. Idempotent per run id,
    and per ``idempotency_key`` (a second submission under a key returns the first run's id).
    ``priority``: ``high``, ``normal`` or ``low`` (:mod:`floxide.distributed.priority`).

    An input or context field over ``max_payload_bytes`` (``None``: no limit) raises
    :class:`~floxide.errors.PayloadTooLarge` and stores nothing.
    """
    value = workflow.validate_input(input)
    store = context if context is not None else workflow.new_context()
    seconds = deadline_seconds if deadline_seconds is not None else workflow.timeout
    return await seed_run(
        backend,
        start_node=workflow.start_node,
        payload=to_jsonable_python(value),
        run_id=run_id,
        context=workflow.dump_context(store),
        deadline_seconds=seconds,
        max_payload_bytes=max_payload_bytes,
        idempotency_key=idempotency_key,
        priority=priority,
    )


async def seed_run(
    backend: Backend,
    *,
    start_node: str,
    payload: Any,
    run_id: str | None = None,
    context: dict[str, Any] | None = None,
    deadline_seconds: float | None = None,
    max_payload_bytes: int | None = DEFAULT_MAX_PAYLOAD_BYTES,
    idempotency_key: str | None = None,
    priority: str = "normal",
) -> str:
    """Seed a run without the workflow's code (the operator does this): ``payload`` is JSON.

    The first worker validates the payload as the start node's input (a mismatch fails the
    run, naming the field) and, with ``context=None``, stores the context model's defaults.
    Idempotent per run id. A payload or context field over ``max_payload_bytes`` raises
    :class:`~floxide.errors.PayloadTooLarge` before anything is stored.

    With ``idempotency_key``, the key is bound to the run id first (atomically): a later
    submission under the key seeds again (harmlessly: idempotent per run id) and returns the
    run id bound to it, so a retried submission never starts a second run, even when the
    first one was interrupted between binding the key and seeding.
    """
    check_priority(priority)
    check_payload(payload, what="the run's input", limit=max_payload_bytes)
    for name, field in (context or {}).items():
        check_payload(field, what=f"context field '{name}'", limit=max_payload_bytes)
    run_id = run_id or uuid.uuid4().hex
    if idempotency_key is not None:
        run_id = await backend.claim_idempotency_key(idempotency_key, run_id)
    info = RunInfo(
        run_id=run_id,
        workflow=backend.workflow,
        deadline=None
        if deadline_seconds is None
        else datetime.now(UTC) + timedelta(seconds=deadline_seconds),
        priority=priority,
    )
    tracer = tracing()
    spanned = contextlib.nullcontext(None) if tracer is None else tracer.start_run(backend.workflow, run_id)
    with spanned as trace:
        item = WorkItem(run_id=run_id, item_id=ROOT_ITEM, node=start_node, payload=payload, trace=trace)
        await backend.start_run(info, item, context)
    return run_id


def child_id(parent: str, index: int) -> str:
    """The id of a step's ``index``-th successor: stable, so a re-run step makes the same ids."""
    return _child_id(_child_ids(parent), index)


def _child_ids(parent: str) -> hashlib.blake2b:
    """The hash of ``parent``'s prefix, to be copied for each of its children's ids."""
    return hashlib.blake2b(f"{parent}/".encode(), digest_size=10)


def _child_id(prefix: hashlib.blake2b, index: int) -> str:
    hashed = prefix.copy()
    hashed.update(str(index).encode())
    return hashed.hexdigest()


def plan_commit(
    item: WorkItem,
    outcome: Outcome,
    seconds: float,
    *,
    frame_joins: tuple[str, ...] = (),
    trace: dict[str, str] | None = None,
) -> Commit:
    """The commit of a successful step: successors (ids by :func:`child_id`), the frame they
    open, arrivals, outputs; the successors (and the joins the commit fires) carry ``trace``,
    the step span's context."""
    opened = f"f:{item.item_id}" if outcome.fan_out else None
    commit = Commit(
        item=item,
        seconds=seconds,
        changes=[c.to_json() for c in outcome.changes],
        trace=trace,
        opened=opened,
        frame_joins=frame_joins if opened else (),
        outputs=[to_jsonable_python(value) for value in outcome.outputs],
    )
    ids = _child_ids(item.item_id)  # hashed once for all the children
    children, arrivals = commit.children, commit.arrivals
    for emit in outcome.emits:
        if emit.join:
            arrivals.append((emit.node, to_jsonable_python(emit.value)))
            continue
        index = len(children)
        payload = to_jsonable_python(emit.value)
        children.append(Successor(_child_id(ids, index), emit.node, payload, index if opened else None))
    return commit


async def process_claim(
    workflow: Workflow[Any, Any], backend: Backend, claim: Claim, *, lease: float = 30.0, **options: Any
) -> StepResult:
    """Run one claimed item to its outcome and hand that to the backend (see :func:`run_claim`
    for the ``options``).

    A node with limits (:mod:`floxide.limits`) first takes its slots and tokens from
    ``backend.limits``, holding the slots for ``lease`` seconds (the worker renews them with
    its leases), and gives them back once the outcome is handed over. Refused, the item is
    ``throttled``: set aside without using an attempt, back when a slot or a token is free.
    """
    spec = workflow.graph.nodes.get(claim.item.node)
    if spec is None or not spec.limits:
        return await run_claim(workflow, backend, claim, **options)
    try:
        value = workflow.load_input(claim.item.node, claim.item.payload)
        held = held_limits(claim.item.node, spec.limits, value)
    except InputError:  # the step fails the item, naming the field
        return await run_claim(workflow, backend, claim, **options)
    except FloxideError as exc:  # the limit's key function failed on this input
        error = _record(claim.item, exc, permanent=True)
        return _unless_fenced(claim, await backend.fail(claim, error), "failed")
    permit = await backend.limits.acquire(claim, held, lease=lease)
    if permit.result != "ok":
        log.debug("throttled for %.3fs by %s", permit.wait, permit.blocked_by, extra=_fields(claim))
        done = "duplicate" if permit.result == "duplicate" else "throttled"
        return _unless_fenced(claim, permit.result, done)
    try:
        return await run_claim(workflow, backend, claim, **options)
    finally:
        await backend.limits.release(permit)


async def run_claim(
    workflow: Workflow[Any, Any],
    backend: Backend,
    claim: Claim,
    *,
    retry: RetryPolicy | None = None,
    cancel_token: CancelToken | None = None,
    state: StepInput | None = None,
    handoff: Handoff | None = None,
    max_payload_bytes: int | None = DEFAULT_MAX_PAYLOAD_BYTES,
    trace: StepTrace | None = None,
) -> StepResult:
    """Run one claimed item to its outcome and hand that to the backend, limits aside.

    ``state`` is the item's run status and context if the caller read it already; with
    ``handoff``, a successful commit also claims the next item (see :class:`Handoff`).
    ``trace``: the step's span (:mod:`floxide.tracing`), ``None`` when tracing is off.
    A step whose outputs, successor inputs or changed context fields are over
    ``max_payload_bytes`` fails permanently (:class:`~floxide.errors.PayloadTooLarge`):
    none of its commit is written.
    """
    item = claim.item
    if state is None:
        state = await backend.step_input(claim)
    if state.status is None or state.status in (RunStatus.CANCELLED, RunStatus.COMPLETED):
        await backend.set_aside(claim, keep=False)
        return "dropped"
    if state.status in (RunStatus.PAUSED, RunStatus.FAILED):
        return _unless_fenced(claim, await backend.set_aside(claim, keep=True), "parked")
    if state.deadline is not None and time.time() >= state.deadline:
        await backend.set_status(item.run_id, RunStatus.FAILED, reason="run exceeded its deadline")
        return _unless_fenced(claim, await backend.set_aside(claim, keep=True), "parked")
    spec = workflow.graph.nodes.get(item.node)
    if spec is None:
        error = _record(item, FloxideError(f"workflow has no node '{item.node}'"), permanent=True)
        return _unless_fenced(claim, await backend.fail(claim, error), "failed")
    try:
        value = workflow.load_input(item.node, item.payload)
        context = workflow.load_context(state.context)
    except Exception as exc:
        # InputError, or a type no validator can be built for: the same on every delivery, so
        # the item fails now, with its error (a crash would only be re-delivered, then lost)
        error = _record(item, exc, permanent=True)
        return _unless_fenced(claim, await backend.fail(claim, error), "failed")
    ctx: WorkflowCtx[Any] = WorkflowCtx(context, cancel_token=cancel_token)
    if state.deadline is not None:
        ctx.deadline = time.monotonic() + (state.deadline - time.time())
    step_ctx = ctx.for_step(
        context, run_id=item.run_id, node=item.node, item_id=item.item_id, attempt=item.attempt
    )
    started = time.perf_counter()
    outcome = await execute(workflow.graph, spec, step_ctx, value, default_retry=retry)
    seconds = time.perf_counter() - started
    if trace is not None and outcome.error is not None:
        trace.error(outcome.error, failed=outcome.status != "done")
    if outcome.status == "retry":
        assert outcome.error is not None
        error = _record(item, outcome.error)
        return _unless_fenced(
            claim, await backend.retry_later(claim, delay=outcome.retry_delay, error=error), "retrying"
        )
    if outcome.status == "failed":
        assert outcome.error is not None
        error = _record(item, outcome.error, permanent=True)
        return _unless_fenced(claim, await backend.fail(claim, error), "failed")
    carried = None if trace is None else trace.carrier()
    plan = plan_commit(item, outcome, seconds, frame_joins=spec.frame_joins, trace=carried)
    try:
        check_commit(plan, context=step_ctx.store, limit=max_payload_bytes)
    except PayloadTooLarge as exc:
        error = _record(item, exc, permanent=True)
        return _unless_fenced(claim, await backend.fail(claim, error), "failed")
    if trace is None:
        result = await backend.commit(claim, plan, handoff=handoff)
    else:
        result = await trace.commit(item.node, backend.commit(claim, plan, handoff=handoff))
    return _unless_fenced(claim, result, "committed" if result == "ok" else result)


def _unless_fenced(claim: Claim, result: str, done: StepResult) -> StepResult:
    """``done``, or ``dropped`` if the backend fenced the item off: its run was cancelled or
    deleted (or expired) meanwhile, so the item was only acknowledged."""
    if result not in FENCED:
        return done
    item = claim.item
    log.debug(
        "run %s is %s: the outcome of item %s (%s) is dropped", item.run_id, result, item.item_id, item.node
    )
    return "dropped"


def _record(item: WorkItem, error: BaseException, *, permanent: bool = False) -> ErrorRecord:
    return ErrorRecord(
        run_id=item.run_id,
        item_id=item.item_id,
        node=item.node,
        attempt=item.attempt,
        error_type=type(error).__name__,
        message=str(error)[:2000],
        traceback="".join(traceback.format_exception(error))[-8000:],
        permanent=permanent,
    )


def _fields(claim: Claim) -> dict[str, Any]:
    item = claim.item
    return {"run": item.run_id, "node": item.node, "item": item.item_id, "attempt": item.attempt}
