"""The work queue of :class:`~floxide.redis.backend.RedisBackend`: one Stream per workflow.

Items are claimed with ``XREADGROUP`` (group :data:`~floxide.redis.keys.GROUP`), leased
while their step runs (``lease.lua``), reclaimed once idle past the lease (``reclaim.lua``:
a dead worker's, counted in the run by ``reclaimed.lua``; or one a draining worker released,
which is no crash), and dead-lettered after ``max_deliveries`` hand-outs. The backend's
scripts acknowledge them (commit, retry, failure, parking).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from floxide.distributed.models import Claim, ErrorRecord, reclaim_error
from floxide.redis.keys import GROUP
from floxide.redis.priority import each_class
from floxide.workitem import WorkItem

if TYPE_CHECKING:
    from floxide.redis.backend import RedisBackend

__all__ = ["RELEASED_IDLE", "StreamQueue", "stream_id"]

RELEASED_IDLE = 10**12
"""The idle time (ms, some 31 years) a released entry is given: reclaimable at once, and told
from an entry lost in a crash (idle for the lease, or minutes) by ``reclaim.lua``."""


def _claims(entries: list[Any], priority: str = "normal") -> list[Claim]:
    """Claims from raw stream entries (entries deleted meanwhile come without fields)."""
    return [
        Claim(item=WorkItem.model_validate_json(fields["item"]), delivery=delivery, priority=priority)
        for delivery, fields in entries
        if fields
    ]


def stream_id(value: str) -> tuple[int, int]:
    ms, _, seq = value.partition("-")
    return int(ms), int(seq or 0)


class StreamQueue:
    def __init__(self, backend: RedisBackend) -> None:
        self._b = backend

    async def claim(self, consumer: str, *, count: int, block: float) -> list[Claim]:
        b = self._b
        by_priority = await b.classes.claim(consumer, count=count, block=block)  # floxide.redis.priority
        if by_priority is not None:
            return by_priority
        await b.ensure_group()
        try:
            reply = await b.client.xreadgroup(
                GROUP,
                consumer,
                {b.keys.stream: ">"},
                count=count,
                block=int(block * 1000) if block > 0 else None,
            )
        except ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            b._group_ready = False
            return []
        if not reply:
            return []
        return _claims(cast(list[Any], reply)[0][1], b.keys.priority)

    async def reclaim(self, consumer: str, *, min_idle: float, count: int) -> list[Claim]:
        b = self._b
        if b.classes.main is b:  # the other priority classes' streams too
            live: list[Claim] = []
            for other in await b.classes.each():
                if len(live) < count:
                    queue = self if other is b else other.queue
                    live += await queue._reclaim(consumer, min_idle=min_idle, count=count - len(live))
            return live
        return await self._reclaim(consumer, min_idle=min_idle, count=count)

    async def _reclaim(self, consumer: str, *, min_idle: float, count: int) -> list[Claim]:
        b = self._b
        await b.ensure_group()
        reply = await b.scripts.reclaim(
            keys=[b.keys.stream],
            args=[GROUP, consumer, int(min_idle * 1000), b._reclaim_cursor, count, RELEASED_IDLE // 10],
        )
        b._reclaim_cursor = reply[0]
        live = []
        for delivery, raw, deliveries, owner, released, idle in reply[1:]:
            item = WorkItem.model_validate_json(raw)
            claim = Claim(item=item, delivery=delivery, deliveries=deliveries, priority=b.keys.priority)
            if released != "1":  # lost by a worker that went silent: the run counts it
                claim.reclaimed, claim.lost_by = True, owner or None
                await self._count_reclaim(claim, idle / 1000)
            if claim.deliveries > b.max_deliveries:
                await b.fail(claim, _crash_record(claim, b.max_deliveries))
            else:
                live.append(claim)
        return live

    async def _count_reclaim(self, claim: Claim, silent_for: float) -> None:
        """``reclaimed.lua``: the node's ``reclaimed`` count and an error, in the run (fenced).

        Not atomic with the reclaim: a worker that dies in between leaves the item to be
        reclaimed (and counted) again once its own lease runs out.
        """
        b, item = self._b, claim.item
        keys = b.run_keys(item.run_id)
        await b.scripts.reclaimed(
            keys=[keys.info, keys.done, keys.metrics, keys.errors],
            args=[item.item_id, item.node, reclaim_error(claim, silent_for).model_dump_json(), b.errors_kept],
        )

    async def extend(self, consumer: str, claims: Sequence[Claim]) -> None:
        await self._lease(consumer, claims, idle=0)

    async def release(self, consumer: str, claims: Sequence[Claim]) -> None:
        await self._lease(consumer, claims, idle=RELEASED_IDLE)

    async def _lease(self, consumer: str, claims: Sequence[Claim], *, idle: int) -> None:
        if any(c.priority != self._b.keys.priority for c in claims):  # in their classes' streams
            for other, group in each_class(self._b, claims):
                await other.queue._lease(consumer, group, idle=idle)
            return
        if claims:
            b = self._b
            await b.scripts.lease(
                keys=[b.keys.stream], args=[GROUP, consumer, idle, *(c.delivery for c in claims)]
            )

    async def pending(self, run_id: str) -> list[WorkItem]:
        b = self._b
        keys = b.run_keys(run_id)
        raws: list[str] = []
        for other in await b.classes.each():
            for _, fields in await _unacknowledged(b.client, other.keys.stream):
                raws.append(fields["item"])
            raws += cast(list[str], await b.client.zrange(other.keys.delayed, 0, -1))
            raws += cast(list[str], await b.client.zrange(other.keys.throttled, 0, -1))
        raws += cast(list[str], await b.client.lrange(keys.parked, 0, -1))
        raws += cast(dict[str, str], await b.client.hgetall(keys.failed)).values()
        done = await b.client.smembers(keys.done)
        items = [WorkItem.model_validate_json(raw) for raw in raws]
        return [i for i in items if i.run_id == run_id and i.item_id not in done]

    async def backlog(self) -> tuple[int, int]:
        """Summed over the priority classes in use."""
        lag = pending = 0
        for other in await self._b.classes.each():
            more = await other.queue._backlog()
            lag, pending = lag + more[0], pending + more[1]
        return lag, pending

    async def _backlog(self) -> tuple[int, int]:
        b = self._b
        try:
            groups = await b.client.xinfo_groups(b.keys.stream)
        except ResponseError:
            return 0, 0
        group = next((g for g in groups if g["name"] == GROUP), None)
        if group is None:
            return 0, 0
        delayed = await b.client.zcard(b.keys.delayed)
        lag = group.get("lag")
        if lag is None:
            lag = await b.client.xlen(b.keys.stream)
        return int(lag) + int(delayed), int(group["pending"])


async def _unacknowledged(client: Redis, key: str) -> list[tuple[str, dict[str, str]]]:
    """The stream's entries not acknowledged yet: claimed ones (in the group's pending list),
    then those not delivered yet. Acknowledged entries stay in the stream until it is trimmed."""
    try:
        groups: list[dict[str, Any]] = await client.xinfo_groups(key)
    except ResponseError:  # no stream yet
        return []
    group = next((g for g in groups if g["name"] == GROUP), None)
    last = str(group["last-delivered-id"]) if group is not None else "0-0"
    entries: list[tuple[str, dict[str, str]]] = []
    start = "-"
    while group is not None and int(group["pending"]):
        batch = cast(
            list[dict[str, Any]], await client.xpending_range(key, GROUP, min=start, max=last, count=1000)
        )
        async with client.pipeline(transaction=False) as pipe:
            for detail in batch:
                pipe.xrange(key, min=detail["message_id"], max=detail["message_id"])
            for reply in await pipe.execute():
                entries += reply
        if len(batch) < 1000:
            break
        start = f"({batch[-1]['message_id']}"
    async for entry in _scan_stream(client, key, start=f"({last}"):
        entries.append(entry)
    return entries


async def _scan_stream(client: Redis, key: str, *, start: str = "-") -> Any:
    while True:
        batch = cast(
            list[tuple[str, dict[str, str]]], await client.xrange(key, min=start, max="+", count=1000)
        )
        for entry in batch:
            yield entry
        if len(batch) < 1000:
            return
        ms, seq = stream_id(batch[-1][0])
        start = f"{ms}-{seq + 1}"


def _crash_record(claim: Claim, limit: int) -> ErrorRecord:
    item = claim.item
    return ErrorRecord(
        run_id=item.run_id,
        item_id=item.item_id,
        node=item.node,
        attempt=item.attempt,
        error_type="WorkerLost",
        message=f"handed out {claim.deliveries} times (limit {limit}): its step keeps killing workers",
        permanent=True,
    )
