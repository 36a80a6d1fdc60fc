"""Flow control on nodes: concurrency limits and rate limits, written once as data.

Attach them to nodes in the workflow definition, as retry policies and timeouts are::

    Workflow(
        "billing",
        start=charge,
        limits={
            charge: [
                ConcurrencyLimit(max=3, key=lambda order: order.customer),  # per customer
                RateLimit(per_second=5, burst=5),                           # the payment API's quota
            ]
        },
    )

* :class:`ConcurrencyLimit`: at most ``max`` steps of the node at once. Distributed, this is
  a semaphore in Redis shared by every worker; a slot is held for the lease of the step's
  worker, so a worker that dies holding slots gives them back when its lease expires.
* :class:`RateLimit`: at most ``per_second`` starts per second, with bursts of up to
  ``burst`` (a token bucket; in any window of ``w`` seconds at most ``burst + per_second * w``
  steps start). Distributed, the bucket lives in Redis and uses Redis' clock.
* ``key``: a function of the node's input; the limit then holds per value of the key (at most
  ``max`` at once per customer, say). ``name``: limits with the same name are shared by every
  node that declares them (two nodes calling one API); by default each node has its own.

An item that cannot start now is not a failure and does not block a worker: in a distributed
run it is handed back to the queue ("throttled") and comes back when a slot frees or a token
is due; other nodes' items go on meanwhile. In a local run the step waits for its turn.
Limits hold across the runs of a workflow (all runs share the node's slots and bucket).
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import time
import weakref
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from floxide.errors import FloxideError, GraphError

if TYPE_CHECKING:
    from floxide.graph import Graph
    from floxide.node import Node

__all__ = [
    "ConcurrencyLimit",
    "Limit",
    "LocalLimits",
    "RateLimit",
    "attach_limits",
    "limit_keys",
]

T = TypeVar("T")


class _Limit(BaseModel):
    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    key: Callable[[Any], Any] | None = Field(
        None, description="A function of the node's input: the limit holds per value it returns."
    )
    name: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9_.-]{1,100}$",
        description="Limits with one name are shared by every node declaring them (default: the node's own).",
    )

    def scope(self, node: str) -> str:
        """The name the limit is kept under: its own name, or the node's."""
        return self.name or node


class ConcurrencyLimit(_Limit):
    """At most ``max`` steps at once (per value of ``key``, if given)."""

    max: int = Field(ge=1, description="Steps running at once.")

    def describe(self) -> str:
        return f"concurrency {self.max}" + (" per key" if self.key else "")


class RateLimit(_Limit):
    """At most ``per_second`` step starts per second, bursts of up to ``burst`` (a token bucket)."""

    per_second: float = Field(gt=0, description="Tokens added per second (steps started per second).")
    burst: int = Field(1, ge=1, description="The bucket's size: starts allowed at once after a quiet spell.")

    @model_validator(mode="after")
    def _finite(self) -> RateLimit:
        if not math.isfinite(self.per_second):
            raise ValueError("per_second must be a finite number")
        return self

    def describe(self) -> str:
        return f"rate {self.per_second:g}/s burst {self.burst}" + (" per key" if self.key else "")


Limit = ConcurrencyLimit | RateLimit
"""A flow-control limit on a node."""


def attach_limits(
    workflow: str, graph: Graph, limits: Mapping[Node[Any, Any] | str, Limit | Sequence[Limit]]
) -> None:
    """Attach ``limits`` to the graph's node specs; a :class:`GraphError` names what is wrong."""
    from floxide.graph import _known

    shared: dict[tuple[str, str], Limit] = {}
    for target, declared in limits.items():
        node = _known(workflow, graph.nodes, target, "limits")
        single = isinstance(declared, ConcurrencyLimit | RateLimit) or not isinstance(declared, Sequence)
        items = (declared,) if single else tuple(declared)
        for limit in items:
            if not isinstance(limit, ConcurrencyLimit | RateLimit):
                raise GraphError(
                    f"workflow '{workflow}': limits of node '{node}' must be ConcurrencyLimit or RateLimit, "
                    f"not {type(limit).__name__}"
                )
            kind = type(limit).__name__
            if any(type(other) is type(limit) for other in graph.nodes[node].limits):
                raise GraphError(f"workflow '{workflow}': node '{node}' has more than one {kind}")
            if limit.name is not None:
                seen = shared.setdefault((kind, limit.name), limit)
                if seen.model_dump(exclude={"key"}) != limit.model_dump(exclude={"key"}):
                    raise GraphError(
                        f"workflow '{workflow}': {kind} '{limit.name}' is declared twice with different "
                        f"settings ({seen.describe()} and {limit.describe()})"
                    )
            graph.nodes[node].limits = (*graph.nodes[node].limits, limit)


def limit_keys(limit: Limit, node: str, value: Any) -> str:
    """The identity of the slots or bucket ``value`` uses: the scope, and the key's value if any.

    A key value becomes part of a Redis key name: it is kept readable when short and safe,
    else replaced by a digest (so a key value can never break out of its key name).
    """
    scope = limit.scope(node)
    if limit.key is None:
        return scope
    try:
        raw = str(limit.key(value))
    except Exception as exc:
        raise FloxideError(f"the limit key of node '{node}' failed on its input: {exc!r}") from exc
    if len(raw) <= 64 and all(c.isalnum() or c in "-_.@" for c in raw):
        return f"{scope}={raw}"
    return f"{scope}#{hashlib.blake2b(raw.encode(), digest_size=12).hexdigest()}"


class _Bucket:
    """A token bucket for one local process."""

    def __init__(self, limit: RateLimit) -> None:
        self.rate, self.capacity = limit.per_second, float(limit.burst)
        self.tokens, self.stamp = self.capacity, time.monotonic()

    def reserve(self) -> float:
        """Take a token now or in the future: how long to wait for it (seconds)."""
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        self.tokens -= 1
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate


class LocalLimits:
    """The limits of one workflow in one event loop (local runs): semaphores and buckets.

    A step waits for its slot and its token before it starts; the waits are shared by every
    local run of the workflow in this event loop.
    """

    _per_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[int, LocalLimits]] = (
        weakref.WeakKeyDictionary()
    )

    def __init__(self) -> None:
        self._slots: dict[str, asyncio.Semaphore] = {}
        self._buckets: dict[str, _Bucket] = {}

    @classmethod
    def of(cls, owner: object) -> LocalLimits:
        """The limits of ``owner`` (a workflow) in the running event loop."""
        table = cls._per_loop.setdefault(asyncio.get_running_loop(), {})
        return table.setdefault(id(owner), cls())

    async def run(
        self, node: str, limits: Sequence[Limit], value: Any, step: Callable[[], Awaitable[T]]
    ) -> T:
        """Run ``step()`` once every limit lets it start, holding its slots meanwhile."""
        async with AsyncExitStack() as stack:
            for limit in limits:
                ident = limit_keys(limit, node, value)
                if isinstance(limit, ConcurrencyLimit):
                    slots = self._slots.setdefault(ident, asyncio.Semaphore(limit.max))
                    await stack.enter_async_context(slots)
            for limit in limits:
                if isinstance(limit, RateLimit):
                    ident = limit_keys(limit, node, value)
                    wait = self._buckets.setdefault(ident, _Bucket(limit)).reserve()
                    if wait > 0:
                        await asyncio.sleep(wait)
            return await step()
