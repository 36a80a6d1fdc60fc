"""``RedisBackend``: every distributed protocol on Redis Streams and Lua.

The claim protocol (see the scripts' headers for the exact contracts):

* One Stream per workflow, read by the consumer group ``floxide-workers`` with
  ``XREADGROUP ... BLOCK`` (no polling). A claimed entry stays in the group's pending list
  until the step's commit acknowledges it, in the same script that applies the step.
* A worker renews the lease of long steps (``lease.lua``); entries idle longer than the
  lease belong to a dead worker and are reclaimed (``reclaim.lua``), which the run counts
  (``reclaimed.lua``: a ``reclaimed`` metric and an error); entries a draining worker
  released are reclaimable at once and count as no crash. An entry handed out more than
  ``max_deliveries`` times (a step that kills its worker) is dead-lettered.
* ``commit.lua`` applies a step atomically: idempotency marker, context deltas, metrics,
  outputs, fan-out frames and joins, successors, run completion, acknowledgement. A
  re-delivered item that is already committed is only acknowledged. The steps a worker
  finishes together go in one call (:mod:`floxide.redis.commits`, the group commit).
* A cancel with interrupt is appended to the workflow's control stream (``status.lua``);
  workers read it with ``XREAD BLOCK`` (:meth:`RedisBackend.interrupts`) and stop the run's
  running steps at once.
* The fence: a step whose run is gone (deleted, or expired) or Cancelled writes nothing when
  it ends (commit, retry, failure, parking, context seeding): its entry is only acknowledged
  and the script returns ``gone`` or ``cancelled`` (:data:`~floxide.distributed.protocols.FENCED`).
* Retries wait in a sorted set scored by due time and are promoted back into the stream
  (``promote.lua``): they survive any worker crash.
* The stream is trimmed (``XTRIM MINID``) only below the oldest entry not yet acknowledged.

Round trips per step: the claim (``XREADGROUP``, shared by up to ``count`` items), one
pipeline reading the run's status and context, and the commit script, shared by the steps
committed together; the commit also claims the worker's next items (the hand-off), and for
a workflow without a context tells their run's status, so a step usually costs one round
trip or a share of one.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, cast

from pydantic import BaseModel
from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError, ResponseError

from floxide.distributed.models import Claim, ErrorRecord, RunInfo, RunStatus
from floxide.distributed.priority import PRIORITIES
from floxide.distributed.protocols import Commit, Handoff, Promoted, StepInput
from floxide.errors import FloxideError
from floxide.redis.clients import Client, for_cluster
from floxide.redis.coalesce import Coalesced
from floxide.redis.commits import GroupCommit
from floxide.redis.context import ContextLayout, flatten_ops
from floxide.redis.index import record_run
from floxide.redis.keys import GROUP, KeySpace, RunKeys
from floxide.redis.limits import RedisLimiter
from floxide.redis.priority import CLASS_REFRESH, Classes, by_class
from floxide.redis.queue import StreamQueue, stream_id
from floxide.redis.replicas import WaitingScript
from floxide.redis.runqueue import RunQueue
from floxide.redis.scripts import Scripts
from floxide.redis.stores import Contexts, Errors, Items, Liveness, Metrics, Runs
from floxide.workitem import WorkItem

__all__ = ["RedisBackend"]

_ADMIT_INTERVAL = 0.25
"""Seconds between two admissions of queued runs by one worker (see ``promote_due``)."""


def _iso(moment: datetime | None = None) -> str:
    return (moment or datetime.now(UTC)).isoformat()


def _item_json(item: WorkItem) -> str:
    return item.model_dump_json()


class RedisBackend:
    """All stores of one workflow in Redis.

    ``namespace`` separates tenants (the Kubernetes namespace, or a local prefix); ``ttl`` is
    how long a finished run's data is kept (seconds); ``max_deliveries`` bounds how often
    one item may be handed out before it is dead-lettered; ``wait_replicas`` replicas (within
    ``wait_timeout_ms``) must acknowledge each commit (:mod:`floxide.redis.replicas`).
    """

    def __init__(
        self,
        client: Client,
        workflow: str,
        *,
        namespace: str = "default",
        context_type: type[BaseModel] | None = None,
        ttl: float = 7 * 24 * 3600,
        max_deliveries: int = 5,
        errors_kept: int = 200,
        dead_letters_kept: int = 10_000,
        wait_replicas: int = 0,
        wait_timeout_ms: int = 1000,
    ) -> None:
        # A RedisCluster has the same command methods; typed as one client kind for the stores.
        self.client = cast(Redis, client)
        self.workflow = workflow
        self.keys = KeySpace(namespace, workflow)
        self.layout = ContextLayout(context_type)
        self.ttl = int(ttl)
        self.max_deliveries = max_deliveries
        self.errors_kept = errors_kept
        self.dead_letters_kept = dead_letters_kept
        self.scripts = Scripts(self.client)
        for_cluster(self.scripts, client)  # scripts queued on a cluster's pipelines
        if wait_replicas:  # each commit waits for replicas (floxide.redis.replicas)
            for name in ("commit", "retry", "fail", "aside"):
                script = WaitingScript(
                    getattr(self.scripts, name), client, replicas=wait_replicas, timeout_ms=wait_timeout_ms
                )
                setattr(self.scripts, name, script)
        self._group = GroupCommit(self)
        self._step_input = Coalesced(self.step_inputs)
        self._group_ready = False
        self._reclaim_cursor = "-"
        self.queue = StreamQueue(self)
        self.contexts = Contexts(self)
        self.runs = Runs(self)
        self.metrics = Metrics(self)
        self.errors = Errors(self)
        self.liveness = Liveness(self)
        self.items = Items(self)
        self.limits = RedisLimiter(self)
        self.classes = Classes(self)  # run priorities: the other classes' queues (floxide.redis.priority)
        self.run_queue = RunQueue(self)
        self._admitted_at = 0.0
        classes = [dataclasses.replace(self.keys, priority=c) for c in PRIORITIES]
        self._promote_keys = [
            self.keys.queued,
            self.keys.priorities,
            *(key for c in classes for key in (c.delayed, c.stream)),
        ]

    # -- helpers ------------------------------------------------------------------------------

    def run_keys(self, run_id: str) -> RunKeys:
        return self.keys.run(run_id)

    async def all_run_keys(self, run_id: str) -> list[str]:
        """Every key of the run: its list/set/dict context keys are recorded in the run hash,
        the join inboxes are those of its open frames (a frame opened by a commit running
        meanwhile is missed here: a commit of a finished run expires what it writes, one of a
        Cancelled or deleted run writes nothing)."""
        keys = self.run_keys(run_id)
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.hget(keys.info, "ctx_keys")
            pipe.hkeys(keys.frames)
            recorded, frames = await pipe.execute()
        inboxes = [keys.inbox(frame) for frame in frames]
        return [*keys.fixed(), *(json.loads(recorded) if recorded else []), *inboxes]

    def _context_keys(self, keys: RunKeys) -> str:
        return json.dumps([key for _, _, key in self.layout.separate_keys(keys)])

    async def ensure_group(self) -> None:
        """Create the stream and its consumer group if missing (idempotent)."""
        if self._group_ready:
            return
        try:
            await self.client.xgroup_create(self.keys.stream, GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        await self.client.sadd(self.keys.shared.workflows, self.workflow)
        self._group_ready = True

    # -- atomic operations ----------------------------------------------------------------------

    async def start_run(self, run: RunInfo, item: WorkItem, context: dict[str, Any] | None) -> bool:
        _check_id(run.run_id)
        if run.priority != self.keys.priority:  # the run's class has a queue of its own
            await self.classes.record(run.priority)
            return await self.classes.of(run.priority).start_run(run, item, context)
        await self.ensure_group()
        if await self.run_queue.limit() is not None:  # it waits Queued for a slot (floxide.redis.runqueue)
            return await self.run_queue.submit(run, item, context, stream=self.keys.stream)
        keys = self.run_keys(run.run_id)
        fixed = [keys.info, self.keys.stream, keys.frames, keys.items, keys.metrics, self.keys.runs]
        argv = [
            run.run_id,
            self.workflow,
            item.item_id,
            item.node,
            _item_json(item),
            str(int(run.created_at.timestamp() * 1000)),
            _iso(run.created_at),
            _iso(run.deadline) if run.deadline else "",
        ]
        async with self.client.pipeline(transaction=True) as pipe:
            await self.scripts.start(keys=fixed, args=argv, client=pipe)
            pipe.hsetnx(keys.info, *_input_field(item))  # what the dashboard shows as the run's input
            if run.priority != "normal":
                pipe.hsetnx(keys.info, "priority", run.priority)
            if context is not None:
                await self._seed_context(keys, context, client=pipe)
            created = (await pipe.execute())[0]
        await record_run(self.client, self.keys, run.run_id)
        return bool(created)

    async def step_input(self, claim: Claim) -> StepInput:
        """The run state of one claim; those asked for in the same turn are read together."""
        return await self._step_input(claim)

    async def step_inputs(self, claims: Sequence[Claim]) -> list[StepInput]:
        """One round trip for a batch of claims: each run's status, and each run's context once."""
        runs = dict.fromkeys(claim.item.run_id for claim in claims) if self.layout.model else {}
        reads = {run: self.layout.read_commands(self.run_keys(run)) for run in runs}
        script = self.scripts.step_input
        now = _iso()
        for attempt in range(2):
            async with self.client.pipeline(transaction=False) as pipe:
                for claim in claims:
                    item, keys = claim.item, self.run_keys(claim.item.run_id)
                    args = (item.item_id, item.node, item.attempt, now)
                    pipe.execute_command("EVALSHA", script.sha, 3, keys.info, keys.items, keys.done, *args)
                for commands in reads.values():
                    for command in commands:
                        pipe.execute_command(*command)
                replies = await pipe.execute(raise_on_error=False)
            if not any(isinstance(r, NoScriptError) for r in replies[: len(claims)]) or attempt:
                break
            await self.client.script_load(script.script)
        contexts: dict[str, dict[str, Any] | None] = {}
        position = len(claims)
        for run, commands in reads.items():
            end = position + len(commands)
            contexts[run] = self.layout.assemble(self.run_keys(run), replies[position:end])
            position = end
        inputs = []
        for claim, reply in zip(claims, replies, strict=False):
            if isinstance(reply, Exception):
                raise reply
            status, deadline, interrupt, ready = reply
            run_id = claim.item.run_id
            if not status:
                inputs.append(StepInput(None, None))
                continue
            if self.layout.model is not None and ready != "1":
                await self._seed_context(self.run_keys(run_id), self.layout.model().model_dump(mode="json"))
                contexts[run_id] = await self.contexts.get(run_id)
            moment = datetime.fromisoformat(deadline).timestamp() if deadline else None
            inputs.append(StepInput(RunStatus(status), contexts.get(run_id), moment, interrupt == "1"))
        return inputs

    async def _seed_context(self, keys: RunKeys, context: dict[str, Any], *, client: Any = None) -> None:
        """Store a run's initial context unless it has one already (``seed_context.lua``)."""
        extra, ops = flatten_ops(self.layout.seed_ops(context), keys, 2)
        await self.scripts.seed_context(
            keys=[keys.info, keys.ctx, *extra], args=[self._context_keys(keys), *ops], client=client
        )

    @by_class
    async def commit(self, claim: Claim, commit: Commit, *, handoff: Handoff | None = None) -> str:
        """Commit a finished step, grouped with the steps finishing meanwhile (``commits.py``)."""
        return await self._group.commit(claim, commit, handoff)

    @by_class
    async def retry_later(self, claim: Claim, *, delay: float, error: ErrorRecord) -> str:
        item = claim.item
        keys = self.run_keys(item.run_id)
        following = item.model_copy(update={"attempt": item.attempt + 1})
        return await _outcome(
            self.scripts.retry,
            keys=[
                self.keys.stream,
                self.keys.delayed,
                keys.items,
                keys.metrics,
                keys.errors,
                keys.done,
                keys.info,
            ],
            args=[
                GROUP,
                claim.delivery,
                int((time.time() + delay) * 1000),
                _item_json(following),
                item.item_id,
                item.node,
                following.attempt,
                error.model_dump_json(),
                self.errors_kept,
            ],
        )

    @by_class
    async def fail(self, claim: Claim, error: ErrorRecord) -> str:
        item = claim.item
        keys = self.run_keys(item.run_id)
        reset = item.model_copy(update={"attempt": 1})
        message = f"node '{error.node}' failed: {error.error_type}: {error.message}"
        return await _outcome(
            self.scripts.fail,
            keys=[
                self.keys.stream,
                keys.info,
                keys.items,
                keys.metrics,
                keys.errors,
                keys.failed,
                self.keys.dead,
                keys.done,
                *await self.all_run_keys(item.run_id),
            ],
            args=[
                GROUP,
                claim.delivery,
                item.item_id,
                item.node,
                item.attempt,
                _item_json(reset),
                error.model_dump_json(),
                message[:2000],
                _iso(),
                self.errors_kept,
                self.ttl,
                self.dead_letters_kept,
                item.run_id,
            ],
        )

    @by_class
    async def set_aside(self, claim: Claim, *, keep: bool) -> str:
        item = claim.item
        keys = self.run_keys(item.run_id)
        return await _outcome(
            self.scripts.aside,
            keys=[self.keys.stream, keys.parked, keys.items, keys.done, keys.info],
            args=[
                GROUP,
                claim.delivery,
                item.item_id,
                item.node,
                item.attempt,
                _item_json(item),
                "1" if keep else "0",
            ],
        )

    async def promote_due(self) -> Promoted:
        """Move due retries of every priority class into their streams (``promote.lua``, one
        round trip); while runs wait for a run-limit slot, also start those the limit now
        allows (:mod:`floxide.redis.runqueue`), and look again within ``_ADMIT_INTERVAL``.
        Once runs of several priority classes were submitted, their backlogs are read too,
        every ``CLASS_REFRESH`` seconds (:mod:`floxide.redis.priority`)."""
        moved, wait_ms, queued, priorities = await self.scripts.promote(
            keys=self._promote_keys, args=[int(time.time() * 1000), 500]
        )
        wake_in = None if int(wait_ms) < 0 else int(wait_ms) / 1000
        if len(await self.classes.refresh(priorities)) > 1:  # their backlogs decide the hand-offs
            wake_in = min(wake_in, CLASS_REFRESH) if wake_in is not None else CLASS_REFRESH
        if int(queued):
            now = time.monotonic()
            if now - self._admitted_at >= _ADMIT_INTERVAL:
                self._admitted_at = now
                await self.run_queue.admit()
            wake_in = _ADMIT_INTERVAL if wake_in is None else min(wake_in, _ADMIT_INTERVAL)
        return Promoted(int(moved), wake_in)

    async def claim_idempotency_key(self, key: str, run_id: str) -> str:
        """Remember ``run_id`` under ``key`` unless a run was submitted under it already; the
        run id that owns the key. Atomic (``SET NX``); the key expires with the retention
        (``ttl``), counted from the first submission."""
        _check_idempotency_key(key)
        name = self.keys.idempotency(key)
        if await self.client.set(name, run_id, nx=True, ex=max(self.ttl, 1)):
            return run_id
        owner = await self.client.get(name)
        return run_id if owner is None else str(owner)

    async def set_status(
        self,
        run_id: str,
        status: RunStatus,
        *,
        reason: str | None = None,
        interrupt: bool = False,
        deadline: datetime | None = None,
    ) -> RunStatus | None:
        keys = self.run_keys(run_id)
        queue = await self.classes.of_run(run_id)  # resumed items go back to the run's class
        result = await self.scripts.status(
            keys=[
                keys.info,
                queue.keys.stream,
                keys.parked,
                keys.failed,
                keys.items,
                keys.metrics,
                self.keys.control,
                *await self.all_run_keys(run_id),
            ],
            args=[
                status.value,
                reason or "",
                "1" if interrupt else "0",
                _iso(),
                self.ttl,
                _iso(deadline) if deadline else "",
            ],
        )
        return None if not result else RunStatus(result)

    async def interrupts(self, after: str | None, *, block: float) -> tuple[str, list[str]]:
        """The runs cancelled with ``interrupt`` since ``after``, from the control stream that
        ``status.lua`` appends to (``XREAD BLOCK``: a worker hears of a cancel at once)."""
        if after is None:
            last = await self.client.xrevrange(self.keys.control, count=1)
            return (str(last[0][0]) if last else "0-0"), []
        block_ms = max(int(block * 1000), 1)
        reply = await self.client.xread({self.keys.control: after}, count=100, block=block_ms)
        if not reply:
            return after, []
        entries = cast(list[Any], reply)[0][1]
        return str(entries[-1][0]), [str(fields.get("run", "")) for _, fields in entries]

    async def publish_graph(self, graph: dict[str, Any]) -> None:
        await self.ensure_group()
        await self.client.set(self.keys.graph, json.dumps(graph))

    async def graph(self) -> dict[str, Any] | None:
        raw = await self.client.get(self.keys.graph)
        return None if raw is None else dict(json.loads(raw))

    async def trim(self) -> int:
        """Delete stream entries every consumer has acknowledged (the stream of every priority
        class in use); returns how many were deleted."""
        if self.classes.main is self:
            return sum([await queue._trim() for queue in await self.classes.each()])
        return await self._trim()

    async def _trim(self) -> int:
        groups = await self.client.xinfo_groups(self.keys.stream)
        group = next((g for g in groups if g["name"] == GROUP), None)
        if group is None:
            return 0
        floor = group["last-delivered-id"]
        summary = await self.client.xpending(self.keys.stream, GROUP)
        if summary["pending"]:
            floor = min(floor, summary["min"], key=stream_id)
        return int(await self.client.xtrim(self.keys.stream, minid=floor, approximate=False))


async def _outcome(script: AsyncScript, *, keys: list[Any], args: list[Any]) -> str:
    """The result of a script that may be fenced: ``gone`` or ``cancelled`` (see ``FENCED``)."""
    return str(await script(keys=keys, args=args))


def _input_field(item: WorkItem) -> tuple[str, str]:
    """The run record's field for its input: the JSON if short enough, else its size."""
    from floxide.redis.overview import INPUT_LIMIT

    text = json.dumps(item.payload, separators=(",", ":"), ensure_ascii=False)
    return ("input", text) if len(text) <= INPUT_LIMIT else ("input_size", str(len(text)))


def _check_idempotency_key(key: str) -> None:
    if not key or len(key) > 200 or not key.isprintable() or any(c.isspace() for c in key):
        raise FloxideError(f"idempotency key {key!r:.60} must be 1-200 printable characters without spaces")


def _check_id(run_id: str) -> None:
    if not run_id or not all(c.isalnum() or c in "-_.:" for c in run_id) or len(run_id) > 200:
        raise FloxideError(f"run id {run_id!r} must be 1-200 letters, digits, '-', '_', '.' or ':'")
