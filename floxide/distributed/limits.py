"""Node limits in distributed runs: the :class:`Limiter` protocol and its in-memory implementation.

A worker asks the backend's limiter for a :class:`Permit` before it runs a step of a node with
limits (:mod:`floxide.limits`). Granted, the step runs and the permit's slots are released
after its outcome is committed. Refused, the item is *throttled*: in the same atomic operation
it is acknowledged and set aside until a slot frees (a release wakes the longest-waiting item)
or a rate token is due, then it goes back to the queue. A throttled item is no failure (no
attempt is used, no error recorded) and its worker goes on with other items at once.

Slots are held for the lease of the worker holding them and renewed with its leases
(:meth:`Limiter.extend`): the slots of a worker that died come back when its lease expires.
"""

from __future__ import annotations

import builtins
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from pydantic import BaseModel, Field

from floxide.distributed.models import Claim, ItemStatus
from floxide.limits import ConcurrencyLimit, Limit, RateLimit, limit_keys

if TYPE_CHECKING:
    from floxide.distributed.memory import InMemoryBackend

__all__ = ["Held", "LimitUsage", "Limiter", "MemoryLimiter", "Permit", "held_limits"]


@dataclass(frozen=True, slots=True)
class Held:
    """One limit as applied to one item: the limit and the identity of its slots or bucket."""

    limit: Limit
    ident: str

    @property
    def kind(self) -> Literal["concurrency", "rate"]:
        return "concurrency" if isinstance(self.limit, ConcurrencyLimit) else "rate"


def held_limits(node: str, limits: Sequence[Limit], value: Any) -> list[Held]:
    """The limits a step of ``node`` on ``value`` must pass (key functions applied)."""
    return [Held(limit, limit_keys(limit, node, value)) for limit in limits]


@dataclass(slots=True)
class Permit:
    """The answer to :meth:`Limiter.acquire`.

    ``result``: ``ok`` (the step may run; release the permit afterwards), ``throttled`` (the
    item was set aside; ``wait`` seconds at most before it is back, ``blocked_by`` names the
    limit), or ``gone``/``cancelled`` (its run is gone or Cancelled: only acknowledged).
    """

    result: str
    token: str = ""
    held: list[Held] = field(default_factory=list)
    wait: float = 0.0
    blocked_by: str = ""

    @property
    def granted(self) -> bool:
        return self.result == "ok"


class LimitUsage(BaseModel):
    """One limit's state across the workflow's workers (what ``floxide limits`` shows)."""

    kind: Literal["concurrency", "rate"]
    ident: str = Field(description="The limit's scope, with the key value for keyed limits ('charge=acme').")
    limit: str = Field(description="'3' for a concurrency limit, '5/s burst 10' for a rate limit.")
    in_use: int = Field(0, description="Slots held now (concurrency limits).")
    waiting: int = Field(0, description="Items set aside waiting for this limit now.")
    throttled: int = Field(0, description="Items throttled by this limit so far.")
    granted: int = Field(0, description="Steps let through by this limit so far.")


class Limiter(Protocol):
    """The slots and buckets of one workflow's node limits, shared by all its workers."""

    async def acquire(self, claim: Claim, held: Sequence[Held], *, lease: float) -> Permit:
        """Take a slot of every concurrency limit and a token of every rate limit, or none.

        Refused, the claimed item is acknowledged and set aside (throttled) atomically.
        """

    async def release(self, permit: Permit) -> None:
        """Give back ``permit``'s slots (and wake an item waiting for one)."""

    async def extend(self, lease: float) -> None:
        """Renew every slot held in this process for another ``lease`` seconds."""

    async def usage(self) -> builtins.list[LimitUsage]:
        """Every limit used lately, with its slots in use and throttled items."""

    async def throttled(self) -> int:
        """Items set aside now, waiting for a slot or a token."""

    async def promote(self) -> int:
        """Put throttled items that are due back into the queue; how many."""


def token_of(claim: Claim) -> str:
    """The holder identity of a claimed item's slots: its run and item (one per item)."""
    return f"{claim.item.run_id}/{claim.item.item_id}"


def describe(limit: Limit) -> str:
    if isinstance(limit, ConcurrencyLimit):
        return str(limit.max)
    return f"{limit.per_second:g}/s burst {limit.burst}"


class _Slots:
    def __init__(self) -> None:
        self.holders: dict[str, float] = {}
        self.waiting: dict[str, str] = {}  # raw item -> token, oldest first


class _Tokens:
    def __init__(self, limit: RateLimit) -> None:
        self.tokens, self.stamp = float(limit.burst), time.monotonic()
        self.queue: dict[str, float] = {}  # token -> due (monotonic)


class MemoryLimiter:
    """:class:`Limiter` over an :class:`~floxide.distributed.memory.InMemoryBackend` (one process)."""

    def __init__(self, backend: InMemoryBackend) -> None:
        self._b = backend
        self._slots: dict[str, _Slots] = {}
        self._buckets: dict[str, _Tokens] = {}
        self._stats: dict[tuple[str, str], tuple[Limit, list[int]]] = {}
        self._mine: dict[str, Permit] = {}
        self._aside: set[str] = set()

    async def acquire(self, claim: Claim, held: Sequence[Held], *, lease: float) -> Permit:
        now, token = time.monotonic(), token_of(claim)
        waits: list[tuple[float, Held]] = []
        for h in held:
            self._stats.setdefault((h.kind, h.ident), (h.limit, [0, 0]))
            if isinstance(h.limit, ConcurrencyLimit):
                slots = self._slots.setdefault(h.ident, _Slots())
                slots.holders = {t: e for t, e in slots.holders.items() if e > now}
                if token not in slots.holders and len(slots.holders) >= h.limit.max:
                    waits.append((min(slots.holders.values()) - now, h))
            else:
                bucket = self._refill(h.ident, h.limit, now)
                bucket.queue.pop(token, None)
                if bucket.tokens < 1:
                    ahead = sum(1 for due in bucket.queue.values() if due >= now)
                    waits.append(((ahead + 1 - bucket.tokens) / h.limit.per_second, h))
        if waits:
            return self._throttle(claim, token, waits, now)
        for h in held:
            self._stats[(h.kind, h.ident)][1][0] += 1
            if isinstance(h.limit, ConcurrencyLimit):
                slots = self._slots[h.ident]
                slots.holders[token] = now + lease
                slots.waiting = {r: t for r, t in slots.waiting.items() if t != token}
            else:
                self._buckets[h.ident].tokens -= 1
        permit = Permit("ok", token, list(held))
        self._mine[token] = permit
        return permit

    def _refill(self, ident: str, limit: RateLimit, now: float) -> _Tokens:
        bucket = self._buckets.setdefault(ident, _Tokens(limit))
        bucket.tokens = min(float(limit.burst), bucket.tokens + (now - bucket.stamp) * limit.per_second)
        bucket.stamp = now
        bucket.queue = {t: due for t, due in bucket.queue.items() if due > now - 1.0}
        return bucket

    def _throttle(self, claim: Claim, token: str, waits: list[tuple[float, Held]], now: float) -> Permit:
        wait, blocking = max(waits, key=lambda w: w[0])
        wait = max(wait, 0.001)
        result = self._b._fence(claim)
        if isinstance(result, str) and result != "duplicate":
            return Permit(result, token)
        raw = claim.item.model_dump_json()
        for _, h in waits:
            self._stats[(h.kind, h.ident)][1][1] += 1
            if isinstance(h.limit, ConcurrencyLimit):
                self._slots[h.ident].waiting.setdefault(raw, token)
            else:
                self._buckets[h.ident].queue[token] = now + wait
        if not isinstance(result, str):
            result.mark(claim.item, ItemStatus.THROTTLED)
            result.node(claim.item.node).throttled += 1
        self._b._delayed = [entry for entry in self._b._delayed if entry[1] != raw]
        self._b._delayed.append((time.time() + wait, raw))
        self._aside.add(raw)
        return Permit("throttled", token, wait=wait, blocked_by=f"{blocking.kind} {blocking.ident}")

    async def release(self, permit: Permit) -> None:
        self._mine.pop(permit.token, None)
        for h in permit.held:
            slots = self._slots.get(h.ident)
            if slots is None or slots.holders.pop(permit.token, None) is None:
                continue
            for raw in list(slots.waiting):  # wake the longest-waiting item
                del slots.waiting[raw]
                if self._wake(raw):
                    break

    def _wake(self, raw: str) -> bool:
        """Make a throttled item due now (if it is still set aside)."""
        delayed = self._b._delayed
        for index, (_, waiting) in enumerate(delayed):
            if waiting == raw:
                delayed[index] = (time.time(), raw)
                return True
        return False

    async def extend(self, lease: float) -> None:
        until = time.monotonic() + lease
        for permit in self._mine.values():
            for h in permit.held:
                slots = self._slots.get(h.ident)
                if slots is not None and permit.token in slots.holders:
                    slots.holders[permit.token] = until

    async def usage(self) -> builtins.list[LimitUsage]:
        now = time.monotonic()
        found = []
        for (kind, ident), (limit, (granted, throttled)) in sorted(self._stats.items()):
            slots = self._slots.get(ident) if kind == "concurrency" else None
            bucket = self._buckets.get(ident) if kind == "rate" else None
            found.append(
                LimitUsage(
                    kind="concurrency" if kind == "concurrency" else "rate",
                    ident=ident,
                    limit=describe(limit),
                    in_use=sum(1 for e in slots.holders.values() if e > now) if slots else 0,
                    waiting=len(slots.waiting)
                    if slots
                    else sum(1 for d in bucket.queue.values() if d >= now)
                    if bucket
                    else 0,
                    throttled=throttled,
                    granted=granted,
                )
            )
        return found

    async def promote(self) -> int:
        return 0  # throttled items wait with the delayed retries: promote_due moves them

    async def throttled(self) -> int:
        waiting = {raw for _, raw in self._b._delayed}
        self._aside &= waiting
        return len(self._aside)
