"""Run limits of a workflow: at most N active runs; the others wait ``Queued``, in order.

A workflow's limit is one field of its ``limits`` hash (``max_active_runs``), set by
``floxide limit`` or, on Kubernetes, by the operator from the Workflow's
``spec.maxActiveRuns``. Without it, runs start at once (``start.lua``), as always.

With a limit, a new run is created ``Queued`` (``queue_run.lua``): its record, context and
first item are stored, and its id joins the ``queued`` sorted set, scored by a counter so
that runs start in submission order. ``admit.lua`` starts queued runs while fewer than the
limit are active; the ``active`` set holds the runs it started, and a run leaves it (freeing
its slot) once it is Completed, Failed or Cancelled, or gone. Admission happens

* right after a submission (the run starts at once if a slot is free and no run is ahead);
* in every worker, four times a second while runs wait (:meth:`RedisBackend.promote_due`
  says how many wait; it looks at least once a second), so a slot freed by a finished run
  is taken within a fraction of a second;
* on each tick of the operator's Workflow timer, and of ``floxide schedule``.

Admitters may run at once anywhere: the script checks that the active set and the head of
the queue are what its caller read (every key it touches is passed in ``KEYS``, so the
script stays legal on Redis Cluster), and the caller reads again if not. The limit is never
exceeded, since only this script moves a run from Queued to Pending, and only while fewer
than the limit are active.

A queued run can be cancelled (it leaves the queue without a slot) or fail by its deadline,
which counts from its submission. Runs started before a limit was set do not count against
it; a Failed run retried later does not wait for a slot.
"""

from __future__ import annotations

import asyncio
import random
from typing import TYPE_CHECKING, Any, cast

from floxide.distributed.models import RunInfo
from floxide.errors import FloxideError
from floxide.redis.index import record_run
from floxide.workitem import WorkItem

if TYPE_CHECKING:
    from floxide.redis.backend import RedisBackend

__all__ = ["RunQueue", "RunQueueState"]

_RETRIES = 50
_CANDIDATES_BEYOND_LIMIT = 10
"""Queued runs looked at beyond the free slots (cancelled ones at the head are skipped)."""
_UNLIMITED_BATCH = 100


class RunQueueState:
    """What ``floxide status`` shows of a workflow's run limit."""

    def __init__(self, *, limit: int | None, active: int, queued: int) -> None:
        self.limit = limit
        self.active = active
        self.queued = queued

    def as_dict(self) -> dict[str, Any]:
        return {"max_active_runs": self.limit, "active_runs": self.active, "queued_runs": self.queued}


class RunQueue:
    """The run limit and the queue of waiting runs of one workflow (see the module docstring)."""

    def __init__(self, backend: RedisBackend) -> None:
        self._b = backend

    async def limit(self) -> int | None:
        """The workflow's ``max_active_runs``, or ``None`` when its runs are not limited."""
        raw = await self._b.client.hget(self._b.keys.limits, "max_active_runs")
        return None if raw is None else int(raw)

    async def set_limit(self, limit: int | None) -> None:
        """Set (or with ``None`` remove) the limit; queued runs start at once if it allows."""
        if limit is not None and limit < 1:
            raise FloxideError(f"max_active_runs must be at least 1, got {limit}")
        keys = self._b.keys
        if limit is None:
            await self._b.client.hdel(keys.limits, "max_active_runs")
        else:
            await self._b.client.hset(keys.limits, "max_active_runs", str(limit))
        await self.admit()

    async def submit(
        self, run: RunInfo, item: WorkItem, context: dict[str, Any] | None, *, stream: str | None = None
    ) -> bool:
        """Create ``run`` Queued (once per run id), then admit what the limit allows. ``stream``:
        where its first item goes when it starts (its priority class's; default the normal one)."""
        b = self._b
        keys = b.run_keys(run.run_id)
        argv = [
            run.run_id,
            b.workflow,
            item.item_id,
            item.node,
            item.model_dump_json(),
            str(int(run.created_at.timestamp() * 1000)),
            run.created_at.isoformat(),
            run.deadline.isoformat() if run.deadline else "",
            stream or b.keys.stream,
        ]
        async with b.client.pipeline(transaction=True) as pipe:
            await b.scripts.queue_run(
                keys=[keys.info, b.keys.queued, b.keys.queue_seq, b.keys.runs], args=argv, client=pipe
            )
            if run.priority != "normal":
                pipe.hsetnx(keys.info, "priority", run.priority)
            if context is not None:
                await b._seed_context(keys, context, client=pipe)
            created = (await pipe.execute())[0]
        await record_run(b.client, b.keys, run.run_id)
        await self.admit()
        return bool(created)

    async def admit(self) -> list[str]:
        """Start queued runs while the limit allows; the ids of the runs started now."""
        b = self._b
        keys = b.keys
        for _ in range(_RETRIES):
            async with b.client.pipeline(transaction=False) as pipe:
                pipe.zcard(keys.queued)
                pipe.smembers(keys.active)
                pipe.hget(keys.limits, "max_active_runs")
                waiting, members, raw = await pipe.execute()
            if not waiting:
                return []
            active = sorted(cast(set[str], members))
            limit = None if raw is None else int(raw)
            count = _UNLIMITED_BATCH if limit is None else max(limit, 1) + _CANDIDATES_BEYOND_LIMIT
            candidates = cast(list[str], await b.client.zrange(keys.queued, 0, count - 1))
            run_keys = [b.run_keys(run_id) for run_id in candidates]
            async with b.client.pipeline(transaction=False) as pipe:
                for k in run_keys:
                    pipe.hget(k.info, "first_stream")
                streams = [s or keys.stream for s in await pipe.execute()]
            script_keys = [
                keys.queued,
                keys.active,
                keys.limits,
                keys.stream,
                *(b.run_keys(run_id).info for run_id in active),
                *(
                    key
                    for k, stream in zip(run_keys, streams, strict=True)
                    for key in (k.info, k.frames, k.items, k.metrics, stream)
                ),
            ]
            reply = await b.scripts.admit(
                keys=script_keys, args=[len(active), len(candidates), *active, *candidates]
            )
            if reply != "retry" and reply != b"retry":
                return [r.decode() if isinstance(r, bytes) else str(r) for r in reply]
            await asyncio.sleep(random.uniform(0, 0.005))
        return []  # others are admitting right now; the next call (a worker's, a second from now) goes on

    async def state(self) -> RunQueueState:
        """The limit, and how many runs hold a slot or wait (finished runs may still be counted as
        active until the next admission prunes them)."""
        keys = self._b.keys
        async with self._b.client.pipeline(transaction=False) as pipe:
            pipe.hget(keys.limits, "max_active_runs")
            pipe.smembers(keys.active)
            pipe.zcard(keys.queued)
            raw, members, waiting = await pipe.execute()
        active = 0
        if members:
            async with self._b.client.pipeline(transaction=False) as pipe:
                for run_id in members:
                    pipe.hget(self._b.run_keys(run_id).info, "status")
                statuses = await pipe.execute()
            active = sum(1 for s in statuses if s in ("Pending", "Running", "Paused"))
        return RunQueueState(limit=None if raw is None else int(raw), active=active, queued=int(waiting))

    async def waiting(self) -> int:
        """How many runs wait in the queue."""
        return int(await self._b.client.zcard(self._b.keys.queued))

    async def position(self, run_id: str) -> int | None:
        """The run's place in the queue (1 is next), or ``None`` when it is not waiting."""
        rank = cast(int | None, await self._b.client.zrank(self._b.keys.queued, run_id))
        return None if rank is None else rank + 1
