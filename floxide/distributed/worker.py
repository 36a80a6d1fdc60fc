"""``DistributedWorker``: claims work items of one workflow and runs up to N of them at once.

Beside the steps, supervised background tasks keep the worker honest: heartbeats (so
``floxide workers`` and the operator see it), lease renewal for long steps, reclaiming
items whose worker died (idle past the lease), promoting retries as they fall due, and
watching the runs of in-flight steps (a cancelled run with ``interrupt`` or an expired
deadline cancels its running steps). ``stop()`` drains: the worker claims nothing more (its
steps' commits hand off no next item), items it claimed but did not start are handed back at
once, in-flight steps get ``grace`` seconds to finish, the rest are cancelled and released for
other workers.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from floxide.context import CancelToken
from floxide.distributed.execution import StepResult, process_claim
from floxide.distributed.limits import LimitUsage
from floxide.distributed.models import Claim, RunStatus, WorkerHealth, WorkerStatus, utcnow
from floxide.distributed.payloads import DEFAULT_MAX_PAYLOAD_BYTES
from floxide.distributed.protocols import Backend, ControlFeed, Handoff, StepInput
from floxide.retry import RetryPolicy
from floxide.tracing import tracing

if TYPE_CHECKING:
    from floxide.workflow import Workflow

__all__ = ["DEFAULT_RETRY", "DistributedWorker", "WorkerHooks", "raise_if_cancelled", "worker_identity"]

log = logging.getLogger(__name__)

_ROUTINE = frozenset({"committed", "duplicate", "parked", "dropped", "throttled"})
"""Step results logged at DEBUG (one line per item); the others are logged at INFO."""

_PROMOTE_IDLE = 1.0
"""Seconds between two looks for due retries when none is known to wait (another worker's)."""

DEFAULT_RETRY = RetryPolicy(max_attempts=3, initial_backoff=1.0, max_backoff=30.0, jitter=0.5)
"""Distributed workers retry nodes without a policy of their own: 3 attempts, 1 s doubling."""


def worker_identity() -> str:
    """A worker id unique across pods and processes: host (pod) name, pid and a random suffix."""
    return f"{os.environ.get('HOSTNAME') or socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class WorkerHooks:
    """Observe the worker loop; override what you need (every method is a no-op).

    Hook failures are logged and never reach the worker loop.
    """

    def on_claim(self, claim: Claim) -> None:
        """A work item was claimed."""

    def on_result(self, claim: Claim, result: StepResult, seconds: float) -> None:
        """A claimed item ended as ``result`` after ``seconds``."""

    def on_backlog(self, lag: int, pending: int) -> None:
        """The queue's backlog was measured."""

    def on_reclaim(self, claim: Claim) -> None:
        """An item was taken over from a worker that went silent holding it (a crash)."""

    def on_limits(self, usage: Sequence[LimitUsage], throttled: int) -> None:
        """The workflow's node limits were read (with each heartbeat, if it has any)."""

    def on_run_queue(self, limit: int | None, active: int, queued: int) -> None:
        """The workflow's run limit was read (with each heartbeat, on backends that have one):
        ``limit`` (``None``: none), the runs holding a slot, and those waiting ``Queued``."""


class DistributedWorker:
    """Runs one workflow's work items from ``backend``; ``concurrency`` steps at once."""

    def __init__(
        self,
        workflow: Workflow[Any, Any],
        backend: Backend,
        *,
        worker_id: str | None = None,
        concurrency: int = 1,
        retry: RetryPolicy | None = DEFAULT_RETRY,
        lease: float = 30.0,
        heartbeat_interval: float = 5.0,
        block: float = 1.0,
        control_interval: float = 0.5,
        drain_grace: float = 25.0,
        hooks: Sequence[WorkerHooks] = (),
        max_payload_bytes: int | None = DEFAULT_MAX_PAYLOAD_BYTES,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        self.workflow = workflow
        self.backend = backend
        self.worker_id = worker_id or worker_identity()
        self.concurrency = concurrency
        self.retry = retry
        self.lease = lease
        self.heartbeat_interval = heartbeat_interval
        self.block = block
        self.control_interval = control_interval
        self.drain_grace = drain_grace
        self.hooks = tuple(hooks)
        self.max_payload_bytes = max_payload_bytes
        self.processed = 0
        self.errors = 0
        self.started_at = utcnow()
        self._inflight: dict[asyncio.Task[StepResult], Claim] = {}
        self._tokens: dict[asyncio.Task[StepResult], CancelToken] = {}
        self._handoffs: dict[asyncio.Task[StepResult], Handoff] = {}
        self._handed_back: set[str] = set()
        self._slot_freed = asyncio.Event()
        self._promoter_nap: asyncio.Future[None] | None = None  # done: the promoter looks again
        self._stopping = asyncio.Event()
        self._limited = any(spec.limits for spec in workflow.graph.nodes.values())
        self._tracing = tracing()  # None: tracing is off (floxide.tracing)
        self._status = WorkerStatus.IDLE

    # -- single steps (Floxide's step_distributed) ------------------------------------------------

    async def run_once(self, *, block: float = 0.0) -> StepResult | None:
        """Claim and process one item; ``None`` when there was nothing to do."""
        await self.backend.promote_due()
        claims = await self.backend.queue.reclaim(self.worker_id, min_idle=self.lease, count=1)
        self._reclaimed(claims)
        if not claims:
            claims = await self.backend.queue.claim(self.worker_id, count=1, block=block)
        if not claims:
            return None
        return await self._process(claims[0], CancelToken(), follow=False)

    # -- the long-running loop --------------------------------------------------------------------

    async def run(self) -> None:
        """Work until :meth:`stop` is called, then drain."""
        await self.backend.publish_graph(self.workflow.describe())
        background = [
            asyncio.create_task(self._every(self.heartbeat_interval, self._heartbeat), name="heartbeat"),
            asyncio.create_task(self._every(self.lease / 3, self._extend_leases), name="leases"),
            asyncio.create_task(self._every(max(self.lease / 2, 0.05), self._reclaim), name="reclaim"),
            asyncio.create_task(self._promoter(), name="retries"),
            asyncio.create_task(self._every(self.control_interval, self._watch_runs), name="control"),
        ]
        if isinstance(self.backend, ControlFeed):
            background.append(asyncio.create_task(self._listen(self.backend), name="interrupts"))
        try:
            await self._heartbeat()
            await self._claim_loop()
        finally:
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            await self.backend.liveness.remove(self.worker_id)

    def stop(self) -> None:
        """Stop claiming; :meth:`run` returns after draining (``drain_grace`` seconds at most).

        From now on the worker takes no new work: the hand-offs of running steps are withdrawn
        (their commits claim nothing), and what a claim, a reclaim or a commit under way still
        brings is handed back at once, unstarted.
        """
        self._stopping.set()
        self._slot_freed.set()
        for handoff in self._handoffs.values():
            handoff.withdrawn = True

    async def drain(self, grace: float) -> None:
        """Wait up to ``grace`` seconds for in-flight steps, then cancel and release the rest."""
        self._status = WorkerStatus.DRAINING
        if self._inflight:
            await asyncio.wait(list(self._inflight), timeout=grace)
        leftover = dict(self._inflight)
        for task in leftover:
            task.cancel()
        if leftover:
            await asyncio.gather(*leftover, return_exceptions=True)
            await self.backend.queue.release(self.worker_id, list(leftover.values()))
            for claim in leftover.values():
                log.info("released unfinished for other workers", extra=_fields(claim, result="released"))

    async def _claim_loop(self) -> None:
        failing = False
        while not self._stopping.is_set():
            while len(self._inflight) >= self.concurrency and not self._stopping.is_set():
                self._slot_freed.clear()
                await self._slot_freed.wait()
            free = self.concurrency - len(self._inflight)
            if free <= 0:
                break
            try:
                claims = await self.backend.queue.claim(self.worker_id, count=free, block=self.block)
            except Exception as exc:
                if not failing:
                    log.exception("claiming work failed; retrying every second")
                else:
                    log.warning("claiming work still fails: %s", exc)
                failing = True
                await asyncio.sleep(1.0)
                continue
            if failing:
                log.info("claiming work again")
                failing = False
            await self._start_all(claims)
        await self.drain(self.drain_grace)

    async def _start_all(self, claims: list[Claim]) -> None:
        """Start steps for ``claims``, reading their runs' status and context in one go."""
        if not claims:
            return
        if self._stopping.is_set():  # a claim under way when the worker was stopped
            await self._hand_back(claims)
            return
        try:
            states: list[StepInput | None] = list(await self.backend.step_inputs(claims))
        except Exception:  # each step then reads its own state
            log.warning("reading the state of %d claimed item(s) failed", len(claims), exc_info=True)
            states = [None] * len(claims)
        if self._stopping.is_set():
            await self._hand_back(claims)
            return
        for claim, state in zip(claims, states, strict=True):
            self._start(claim, state)

    async def _hand_back(self, claims: list[Claim]) -> None:
        """Release ``claims`` unstarted (the worker is stopping): other workers take them at once.

        Their leases are renewed no more, and a cancellation (the drain's deadline) does not
        cut the release short. If the release fails, they are reclaimed once the lease runs out.
        """
        self._handed_back.update(claim.delivery for claim in claims)
        release = asyncio.ensure_future(self.backend.queue.release(self.worker_id, claims))
        try:
            await asyncio.shield(release)
        except asyncio.CancelledError:
            await asyncio.wait([release])
            raise
        except Exception:
            log.warning("handing back %d unstarted item(s) failed", len(claims), exc_info=True)
            return
        for claim in claims:
            log.info("handed back unstarted: the worker is stopping", extra=_fields(claim, result="released"))

    def _start(self, claim: Claim, state: StepInput | None = None) -> None:
        token = CancelToken()
        task = asyncio.create_task(self._process(claim, token, state))
        self._inflight[task] = claim
        self._tokens[task] = token
        self._status = WorkerStatus.BUSY
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[StepResult]) -> None:
        claim = self._inflight.pop(task, None)
        self._tokens.pop(task, None)
        self._handoffs.pop(task, None)
        self._slot_freed.set()
        if not self._inflight:
            self._status = WorkerStatus.IDLE
        if not task.cancelled() and task.exception() is not None:
            self.errors += 1
            extra = _fields(claim, result="crashed") if claim is not None else None
            log.error("step crashed: %s", task.exception(), exc_info=task.exception(), extra=extra)

    async def _process(
        self, claim: Claim, token: CancelToken, state: StepInput | None = None, *, follow: bool = True
    ) -> StepResult:
        """Run ``claim``; then, while each commit hands off a next item, run that one too."""
        task = asyncio.current_task()
        while True:
            handoff = Handoff(self.worker_id) if follow and not self._stopping.is_set() else None
            if handoff is not None and task is not None:
                self._handoffs[task] = handoff  # stop() withdraws it
            result = await self._step(claim, token, state, handoff)
            if handoff is None or handoff.claim is None or task is None:
                return result
            claim, state, token = handoff.claim, handoff.state, CancelToken()
            self._inflight[task], self._tokens[task] = claim, token
            if self._stopping.is_set():  # the commit was under way when the worker was stopped
                await self._hand_back([claim])
                return result

    async def _step(
        self, claim: Claim, token: CancelToken, state: StepInput | None, handoff: Handoff | None
    ) -> StepResult:
        if self._stopping.is_set():  # stopped before the step began
            await self._hand_back([claim])
            return "released"
        for hook in self.hooks:
            _safely(hook.on_claim, claim)
        tracer = self._tracing
        trace = None if tracer is None else tracer.step(claim, self.backend.workflow, self.worker_id)
        started = time.perf_counter()
        result: StepResult = "crashed"
        try:
            if state is None:
                state = await self.backend.step_input(claim)
                if self._stopping.is_set():  # stopped while the state was read: still unstarted
                    await self._hand_back([claim])
                    result = "released"
                    return result
            result = await process_claim(
                self.workflow,
                self.backend,
                claim,
                retry=self.retry,
                cancel_token=token,
                state=state,
                handoff=handoff,
                max_payload_bytes=self.max_payload_bytes,
                lease=self.lease,
                trace=trace,
            )
        except asyncio.CancelledError:
            if not token.is_set:
                result = "released"
                raise
            await self.backend.set_aside(claim, keep=token.reason != "cancelled")
            result = "cancelled"
        finally:
            if trace is not None:
                trace.end(result)
            self.processed += 1
            if result in ("failed", "retrying", "crashed"):
                self.errors += 1
            if result == "retrying" and self._promoter_nap is not None:
                _end_nap(self._promoter_nap)  # the promoter looks at once: it learns when it is due
            seconds = time.perf_counter() - started
            level = logging.DEBUG if result in _ROUTINE else logging.INFO
            if log.isEnabledFor(level):
                log.log(
                    level,
                    "%s in %.3fs",
                    result,
                    seconds,
                    extra=_fields(claim, result=result, seconds=seconds),
                )
            for hook in self.hooks:
                _safely(hook.on_result, claim, result, seconds)
        return result

    # -- background duties -----------------------------------------------------------------------

    async def _every(self, seconds: float, action: Callable[[], Awaitable[None]]) -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                await action()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("background task %s failed", getattr(action, "__name__", action), exc_info=True)
            raise_if_cancelled()

    async def _heartbeat(self) -> None:
        health = WorkerHealth(
            worker_id=self.worker_id,
            workflow=self.backend.workflow,
            status=self._status,
            started_at=self.started_at,
            in_flight=[f"{c.item.run_id}/{c.item.item_id}" for c in self._inflight.values()],
            processed=self.processed,
            errors=self.errors,
            concurrency=self.concurrency,
        )
        await self.backend.liveness.heartbeat(health, ttl=self.heartbeat_interval * 3)
        if self.hooks:
            lag, pending = await self.backend.queue.backlog()
            for hook in self.hooks:
                _safely(hook.on_backlog, lag, pending)
        if self.hooks and self._limited:
            usage, throttled = await self.backend.limits.usage(), await self.backend.limits.throttled()
            for hook in self.hooks:
                _safely(hook.on_limits, usage, throttled)
        run_queue = getattr(self.backend, "run_queue", None)  # Redis: floxide.redis.runqueue
        if self.hooks and run_queue is not None:
            state = await run_queue.state()
            for hook in self.hooks:
                _safely(hook.on_run_queue, state.limit, state.active, state.queued)

    async def _extend_leases(self) -> None:
        held = [c for c in self._inflight.values() if c.delivery not in self._handed_back]
        if held:
            await self.backend.queue.extend(self.worker_id, held)
        if self._limited:  # the node-limit slots of running steps, with their leases
            await self.backend.limits.extend(self.lease)

    async def _reclaim(self) -> None:
        free = self.concurrency - len(self._inflight)
        if free <= 0 or self._stopping.is_set():
            return
        claims = await self.backend.queue.reclaim(self.worker_id, min_idle=self.lease, count=free)
        self._reclaimed(claims)
        await self._start_all(claims)

    def _reclaimed(self, claims: list[Claim]) -> None:
        """Log the items taken over, and tell the hooks about those lost in a crash."""
        for claim in claims:
            if not claim.reclaimed:
                log.info("reclaimed from a silent worker: handed back as it drained, no crash",
                         extra=_fields(claim, result="reclaimed"))  # fmt: skip
                continue
            log.warning(
                "reclaimed from a silent worker (%s): its lease expired mid-step, delivery %d",
                claim.lost_by or "unknown", claim.deliveries, extra=_fields(claim, result="reclaimed"),
            )  # fmt: skip
            for hook in self.hooks:
                _safely(hook.on_reclaim, claim)

    async def _promoter(self) -> None:
        """Promote due retries when the earliest is due (the backend says when), at once after
        a step of this worker asks for a retry, and at least every :data:`_PROMOTE_IDLE` seconds
        for the retries of workers that died; throttled items every 0.1 s."""
        loop = asyncio.get_running_loop()
        while True:
            # set before the look: a retry queued during it ends the nap that follows at once
            nap = self._promoter_nap = loop.create_future()
            wake_in: float | None = _PROMOTE_IDLE
            try:
                wake_in = (await self.backend.promote_due()).wake_in
                if self._limited:
                    await self.backend.limits.promote()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("promoting due retries failed", exc_info=True)
            raise_if_cancelled()
            wait = _PROMOTE_IDLE if wake_in is None else min(wake_in, _PROMOTE_IDLE)
            if self._limited:
                wait = min(wait, 0.1)
            timer = loop.call_later(wait, _end_nap, nap)
            try:
                await nap
            finally:
                timer.cancel()

    async def _listen(self, feed: ControlFeed) -> None:
        """Interrupt the steps of a run as soon as the backend says it was cancelled (the poll
        of :meth:`_watch_runs` remains, for deadlines and for a feed that failed)."""
        position: str | None = None
        while True:
            try:
                position, runs = await feed.interrupts(position, block=self.block)
                if runs:
                    await self._watch_runs(set(runs))
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("reading the interrupts failed; retrying in a second", exc_info=True)
                await asyncio.sleep(1.0)
            raise_if_cancelled()

    async def _watch_runs(self, only: set[str] | None = None) -> None:
        by_run: dict[str, list[asyncio.Task[StepResult]]] = {}
        for task, claim in list(self._inflight.items()):
            if only is None or claim.item.run_id in only:
                by_run.setdefault(claim.item.run_id, []).append(task)
        now = time.time()
        for run_id, tasks in by_run.items():
            info = await self.backend.runs.get(run_id)
            if info is None:
                continue
            reason = None
            if info.status is RunStatus.CANCELLED and info.interrupt:
                reason = "cancelled"
            elif info.deadline is not None and now >= info.deadline.timestamp() and not info.status.finished:
                await self.backend.set_status(run_id, RunStatus.FAILED, reason="run exceeded its deadline")
                reason = "deadline"
            if reason is None:
                continue
            for task in tasks:
                token = self._tokens.get(task)
                held = self._inflight.get(task)
                if held is not None and token is not None and not token.is_set:
                    log.info("interrupting the step: %s", reason, extra=_fields(held, result="interrupted"))
                if token is not None:
                    token.cancel(reason)
                task.cancel()


def _end_nap(nap: asyncio.Future[None]) -> None:
    if not nap.done():
        nap.set_result(None)


def raise_if_cancelled() -> None:
    """Raise ``CancelledError`` if this task was asked to stop but the request got lost.

    redis-py's asyncio client sometimes swallows the cancellation of a command cancelled
    mid-read (seen with redis 8 on Python 3.11): without this check a periodic duty would
    go on for ever, and ``run()`` would never return after a drain.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def _fields(claim: Claim, **more: Any) -> dict[str, Any]:
    """A work item's log record attributes: ``run``, ``node``, ``item``, ``attempt`` and ``more``."""
    item = claim.item
    return {"run": item.run_id, "node": item.node, "item": item.item_id, "attempt": item.attempt, **more}


def _safely(function: Callable[..., None], *args: Any) -> None:
    try:
        function(*args)
    except Exception:
        log.warning("worker hook %s failed", getattr(function, "__qualname__", function), exc_info=True)
