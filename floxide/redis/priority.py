"""Run priorities on Redis: one stream per priority class, claimed in a weighted order.

Each class has its own work stream, delayed set and throttled set (``stream``,
``stream:high``, ``stream:low``, ... under the workflow's hash tag; the ``normal`` class
keeps the plain names, so a workflow that never uses priorities is unchanged). A run's first
item goes to its class's stream, and every later item of the run follows it there: a commit
enqueues successors in the stream its step came from, retries and throttled items come back
to it, resumed items go back to it.

A :class:`~floxide.redis.backend.RedisBackend` serves one class; its *siblings* (same client,
same stores, other queue keys) serve the others, and the backend hands every operation on a
claim to the sibling of the claim's class. Once a run of another class was submitted (the
``priorities`` set), the workers' claims read the classes in the order of
:class:`~floxide.distributed.priority.ClassOrder`: ``claim_classes.lua`` reads the streams one
after the other in that order without blocking until it has enough entries, and only when
all are empty does the worker block on all of them at once. A commit's hand-off (the next
item claimed in the commit's round trip) reads its own class only, so it is skipped while a
higher class had items waiting at the last claim: a busy low-priority chain does not keep
a worker from high-priority items.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, cast

from redis.exceptions import ResponseError

from floxide.distributed.models import Claim
from floxide.distributed.priority import PRIORITIES, ClassOrder, Priority, check_priority, rank
from floxide.redis.keys import GROUP
from floxide.redis.scripts import _source
from floxide.workitem import WorkItem

if TYPE_CHECKING:
    from floxide.redis.backend import RedisBackend

__all__ = ["CLASS_REFRESH", "Classes", "by_class", "each_class"]

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])

CLASS_REFRESH = 0.25
"""Seconds between two reads of the classes in use (and of their backlogs) by one worker; its
retry promotion reads them that often once several classes are in use."""

_BUSY_FOR = 1.0
"""A class that yielded items within this many seconds counts as busy (for hand-offs)."""


class Classes:
    """The priority classes of one workflow as one backend sees them; shared by its siblings."""

    def __init__(self, backend: RedisBackend) -> None:
        self.main = backend
        self.siblings: dict[str, RedisBackend] = {backend.keys.priority: backend}
        self.order = ClassOrder()
        self._used: tuple[Priority, ...] = ("normal",)
        self._read_at = float("-inf")
        self._busy: dict[str, float] = {}
        self._claim = backend.client.register_script(_source("claim_classes"))

    def of(self, priority: str) -> RedisBackend:
        """The backend serving ``priority``'s queue (created on first use)."""
        found = self.siblings.get(priority)
        if found is None:
            found = self.siblings[priority] = _sibling(self.main, check_priority(priority))
        return found

    async def used(self) -> tuple[Priority, ...]:
        """The classes runs were submitted with (``normal`` always), read every ``CLASS_REFRESH`` s."""
        if time.monotonic() - self._read_at >= CLASS_REFRESH:
            await self.refresh(cast(set[str], await self.main.client.smembers(self.main.keys.priorities)))
        return self._used

    async def refresh(self, members: Iterable[str]) -> tuple[Priority, ...]:
        """Take ``members`` of the ``priorities`` set as the classes in use (the workers' retry
        promotion reads it); with several, read their backlogs as well."""
        now = self._read_at = time.monotonic()
        found = set(members)
        self._used = tuple(c for c in PRIORITIES if c == "normal" or c in found)
        if len(self._used) > 1:
            await self._read_backlogs(now)
        return self._used

    async def _read_backlogs(self, now: float) -> None:
        """Mark the classes with items not yet delivered as busy (a worker in a chain of
        hand-offs makes no claims that would tell it)."""
        async with self.main.client.pipeline(transaction=False) as pipe:
            for c in self._used:
                pipe.xinfo_groups(self.of(c).keys.stream)
            replies = await pipe.execute(raise_on_error=False)
        for c, groups in zip(self._used, replies, strict=True):
            if isinstance(groups, Exception):
                continue
            group = next((g for g in groups if g["name"] == GROUP), None)
            if group is not None and int(group.get("lag") or 0) > 0:
                self._busy[c] = now

    async def record(self, priority: str) -> None:
        """Remember that a run of ``priority`` was submitted (workers then read its stream)."""
        if priority != "normal":
            await self.main.client.sadd(self.main.keys.priorities, priority)
            self._read_at = float("-inf")

    def hand_off_allowed(self, priority: str) -> bool:
        """Whether a commit of ``priority`` may claim the next item of its own class: no higher
        class had items waiting at the last claims."""
        if not self._busy:  # one class in use (or none busy yet): the common case, per commit
            return True
        now = time.monotonic()
        return not any(
            now - self._busy.get(c, float("-inf")) < _BUSY_FOR for c in PRIORITIES[: rank(priority)]
        )

    async def claim(self, consumer: str, *, count: int, block: float) -> list[Claim] | None:
        """Claims over the classes in use, in the weighted order; ``None``: only ``normal`` is in
        use (the caller reads its one stream as usual)."""
        used = await self.used()
        if len(used) == 1:
            return None
        order = self.order.next(used)
        backends = [self.of(c) for c in order]
        for b in backends:
            await b.ensure_group()
        try:
            reply = await self._claim(keys=[b.keys.stream for b in backends], args=[GROUP, consumer, count])
        except ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            for b in backends:
                b._group_ready = False
            return []
        claims = [
            _claim(raw, delivery, order[int(index) - 1]) for index, delivery, raw in cast(list[Any], reply)
        ]
        if not claims and block > 0:
            claims = await self._block(consumer, backends, order, count=count, block=block)
        for c in claims:
            self._busy[c.priority] = time.monotonic()
        return claims

    async def _block(
        self, consumer: str, backends: list[RedisBackend], order: list[Priority], *, count: int, block: float
    ) -> list[Claim]:
        """Wait on every class's stream at once; entries beyond ``count`` are handed back at once."""
        streams: dict[Any, Any] = {b.keys.stream: ">" for b in backends}
        reply = await self.main.client.xreadgroup(
            GROUP, consumer, streams, count=count, block=int(block * 1000)
        )
        if not reply:
            return []
        by_stream: dict[str, str] = {b.keys.stream: c for b, c in zip(backends, order, strict=True)}
        claims = []
        for stream, entries in cast(list[Any], reply):
            priority = by_stream[stream.decode() if isinstance(stream, bytes) else stream]
            claims += [_claim(fields["item"], delivery, priority) for delivery, fields in entries if fields]
        claims.sort(key=lambda c: rank(c.priority))
        extra = claims[count:]
        for priority in {c.priority for c in extra}:
            await self.of(priority).queue.release(consumer, [c for c in extra if c.priority == priority])
        return claims[:count]

    async def of_run(self, run_id: str) -> RedisBackend:
        """The backend of the class of run ``run_id`` (``normal`` for an unknown run)."""
        found = await self.main.client.hget(self.main.run_keys(run_id).info, "priority")
        return self.of(str(found)) if found in PRIORITIES else self.of("normal")

    async def each(self) -> list[RedisBackend]:
        """The backends of every class in use."""
        return [self.of(c) for c in await self.used()]


def _claim(raw: str, delivery: str, priority: str) -> Claim:
    return Claim(item=WorkItem.model_validate_json(raw), delivery=delivery, priority=priority)


def _sibling(backend: RedisBackend, priority: Priority) -> RedisBackend:
    """``backend`` for another class: the same client, scripts and stores, other queue keys."""
    from floxide.redis.commits import GroupCommit
    from floxide.redis.limits import RedisLimiter
    from floxide.redis.queue import StreamQueue

    twin = copy.copy(backend)
    twin.keys = dataclasses.replace(backend.keys, priority=priority)
    twin._group = GroupCommit(twin)
    twin._group_ready = False
    twin._reclaim_cursor = "-"
    twin.queue = StreamQueue(twin)
    twin.limits = RedisLimiter(twin)
    return twin


def by_class(method: F) -> F:
    """Run a backend method on a claim with the backend of the claim's priority class.

    A commit's hand-off is skipped while a higher class is busy (the claim it brings is of
    the class it came from: the commit reads that class's stream).
    """

    @functools.wraps(method)
    async def dispatch(self: RedisBackend, claim: Claim, *args: Any, **kwargs: Any) -> Any:
        target = self if claim.priority == self.keys.priority else self.classes.of(claim.priority)
        handoff = kwargs.get("handoff")
        if handoff is not None and not self.classes.hand_off_allowed(claim.priority):
            kwargs["handoff"] = None
            handoff = None
        return await method(target, claim, *args, **kwargs)

    return cast(F, dispatch)


def each_class(backend: RedisBackend, claims: Sequence[Claim]) -> list[tuple[RedisBackend, list[Claim]]]:
    """``claims`` grouped by the backend of their class."""
    groups: dict[str, list[Claim]] = {}
    for c in claims:
        groups.setdefault(c.priority, []).append(c)
    return [(backend.classes.of(p), found) for p, found in groups.items()]
