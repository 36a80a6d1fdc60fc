"""Node limits on Redis: a semaphore per concurrency limit, a token bucket per rate limit.

Every key is under the workflow's hash tag (:meth:`~floxide.redis.keys.KeySpace.limit`), so the
scripts stay legal on Redis Cluster. The protocol (see the scripts' headers):

* ``limit_acquire.lua`` checks every limit of the step first and takes a slot and a token of
  each only if all let it through. A slot is a member of a sorted set scored by its lease
  expiry (Redis' clock); expired members are dropped on every acquire: a dead worker's slots
  come back when its lease runs out. Refused, the item is acknowledged and set aside in the
  workflow's ``throttled`` set, due again when the earliest slot expires or its rate token is
  due (waiting items get successive due times, so they do not all wake at once); workers
  promote due items into the stream with the delayed retries. Its node's ``throttled`` count
  goes up; no attempt is used and no error is recorded.
* ``limit_release.lua`` removes the step's slots once its outcome is committed, and makes the
  longest-waiting item of each limit due at once.
* ``limit_extend.lua`` renews the slots of running steps with their worker's leases.

A step runs at most once per slot at a time, except when its worker stalls past its lease
while still running (the item is then reclaimed by another worker, as for any lease).
"""

from __future__ import annotations

import builtins
import json
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

from floxide.distributed.limits import Held, LimitUsage, Permit, describe, token_of
from floxide.distributed.models import Claim
from floxide.limits import ConcurrencyLimit
from floxide.redis.keys import GROUP
from floxide.redis.scripts import _source

if TYPE_CHECKING:
    from floxide.redis.backend import RedisBackend

__all__ = ["RedisLimiter"]

_KIND = {"concurrency": "c", "rate": "r"}


class RedisLimiter:
    """:class:`~floxide.distributed.limits.Limiter` of one workflow on Redis."""

    def __init__(self, backend: RedisBackend) -> None:
        self._b = backend
        client = backend.client
        self._acquire = client.register_script(_source("limit_acquire"))
        self._release = client.register_script(_source("limit_release"))
        self._extend = client.register_script(_source("limit_extend"))
        self._promote = client.register_script(_source("limit_promote"))
        self._mine: dict[str, Permit] = {}

    def _keys(self, held: Held) -> tuple[str, str]:
        kind = _KIND[held.kind]
        first, second = ("slots", "waiting") if kind == "c" else ("bucket", "queue")
        return self._b.keys.limit(kind, held.ident, first), self._b.keys.limit(kind, held.ident, second)

    async def acquire(self, claim: Claim, held: Sequence[Held], *, lease: float) -> Permit:
        b, item, token = self._b, claim.item, token_of(claim)
        queue = b.classes.of(claim.priority).keys  # the stream and throttled set of the claim's class
        run = b.run_keys(item.run_id)
        keys = [queue.stream, queue.throttled, run.info, run.items, run.metrics, run.done]
        keys += [b.keys.limit_stats, b.keys.node_limits]
        args: list[Any] = [
            GROUP, claim.delivery, token, item.model_dump_json(), int(lease * 1000),
            item.item_id, item.node, item.attempt, len(held),
        ]  # fmt: skip
        for h in held:
            keys += self._keys(h)
            limit = h.limit
            if isinstance(limit, ConcurrencyLimit):
                args += ["c", h.ident, limit.max, ""]
            else:
                args += ["r", h.ident, repr(limit.per_second), limit.burst]
            args.append(json.dumps({"limit": describe(limit), "kind": h.kind}))
        reply = cast(list[Any], await self._acquire(keys=keys, args=args))
        result = str(reply[0])
        if result == "ok":
            permit = Permit("ok", token, list(held))
            self._mine[token] = permit
            return permit
        if result == "throttled":
            return Permit(result, token, wait=int(reply[1]) / 1000, blocked_by=str(reply[2]))
        return Permit(result, token)

    async def release(self, permit: Permit) -> None:
        self._mine.pop(permit.token, None)
        slots = [key for h in permit.held if h.kind == "concurrency" for key in self._keys(h)]
        if slots:  # a waiting item may be of any priority class
            sets = [b.keys.throttled for b in await self._b.classes.each()]
            await self._release(keys=[*sets, *slots], args=[permit.token, len(sets)])

    async def extend(self, lease: float) -> None:
        keys: list[str] = []
        tokens: list[str] = []
        for permit in list(self._mine.values()):
            for h in permit.held:
                if h.kind == "concurrency":
                    keys.append(self._keys(h)[0])
                    tokens.append(permit.token)
        if keys:
            await self._extend(keys=keys, args=[int(lease * 1000), *tokens])

    async def usage(self) -> builtins.list[LimitUsage]:
        b = self._b
        now_ms = int(time.time() * 1000)
        day = 24 * 3600 * 1000
        idle = cast(list[str], await b.client.zrangebyscore(b.keys.node_limits, "-inf", now_ms - day))
        if idle:  # limits (keys of keyed limits) unused for a day: forget them and their counters
            fields = [f"{name}:{part}" for name in idle for part in ("def", "granted", "throttled")]
            await b.client.hdel(b.keys.limit_stats, *fields)
            await b.client.zrem(b.keys.node_limits, *idle)
        names = cast(list[str], await b.client.zrevrange(b.keys.node_limits, 0, 199))
        stats = cast(dict[str, str], await b.client.hgetall(b.keys.limit_stats))
        async with b.client.pipeline(transaction=False) as pipe:
            for name in names:
                kind, _, ident = name.partition(":")
                if kind == "c":
                    pipe.zcount(b.keys.limit(kind, ident, "slots"), now_ms, "+inf")
                    pipe.zcard(b.keys.limit(kind, ident, "waiting"))
                else:
                    pipe.exists(b.keys.limit(kind, ident, "bucket"))
                    pipe.zcount(b.keys.limit(kind, ident, "queue"), now_ms, "+inf")
            replies = await pipe.execute()
        found = []
        for index, name in enumerate(names):
            kind, _, ident = name.partition(":")
            definition = json.loads(stats.get(f"{name}:def") or "{}")
            found.append(
                LimitUsage(
                    kind="concurrency" if kind == "c" else "rate",
                    ident=ident,
                    limit=str(definition.get("limit", "?")),
                    in_use=int(replies[2 * index]) if kind == "c" else 0,
                    waiting=int(replies[2 * index + 1]),
                    throttled=int(stats.get(f"{name}:throttled", 0)),
                    granted=int(stats.get(f"{name}:granted", 0)),
                )
            )
        return sorted(found, key=lambda u: (u.ident, u.kind))

    async def throttled(self) -> int:
        return sum([int(await self._b.client.zcard(b.keys.throttled)) for b in await self._b.classes.each()])

    async def promote(self) -> int:
        """Move throttled items that are due into the stream (``limit_promote.lua``)."""
        moved = 0
        for b in await self._b.classes.each():  # each priority class's own
            moved += int(await self._promote(keys=[b.keys.throttled, b.keys.stream], args=[500]))
        return moved
