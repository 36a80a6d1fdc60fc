"""Waiting for replicas: a write script followed by ``WAIT numreplicas timeout``.

Redis replicates asynchronously: a primary acknowledges a commit before any replica has it,
and a failover to a replica that missed it loses the commit, although the worker was told it
succeeded. With ``wait_replicas`` N (:class:`~floxide.redis.clients.Topology`), each commit
script is sent together with ``WAIT N timeout_ms`` in one pipeline, on one connection (WAIT
counts the replicas that acknowledged that connection's writes) to the primary holding the
script's keys (on a cluster, the primary of their slot).

What it gives and what not (docs/operations.md has the measured numbers):

* the step's commit returns once N replicas acknowledged it, or after the timeout: the commit
  stands either way (it is never rolled back), a shortfall is counted and logged;
* it narrows the window in which a failover loses acknowledged commits, it does not close it:
  Sentinel may promote a replica that is not among the N, and WAIT does not make Redis
  strongly consistent. A lost commit is no lost work: the item is still pending and is done
  again (node code runs at least once; state transitions stay exactly-once per surviving copy).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from typing import Any

from redis.asyncio import RedisCluster
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError
from redis.typing import EncodableT, KeyT

from floxide.redis.clients import Client

__all__ = ["WaitingScript"]

log = logging.getLogger(__name__)

_LOG_EVERY = 10.0
"""Seconds between two warnings about replicas that did not acknowledge in time."""


class WaitingScript(AsyncScript):
    """``script``, then ``WAIT replicas timeout_ms`` on the same connection (see the module docstring).

    Called with ``client`` (a pipeline or transaction of the caller), it is the wrapped script:
    the caller's pipeline is not ours to extend.
    """

    def __init__(self, script: AsyncScript, client: Client, *, replicas: int, timeout_ms: int) -> None:
        super().__init__(client, script.script)
        self.inner = script
        self.client = client
        self.replicas = replicas
        self.timeout_ms = timeout_ms
        self.calls = 0
        self.shortfalls = 0
        """Calls whose commit fewer than ``replicas`` replicas acknowledged within the timeout."""
        self._warned_at = 0.0

    async def __call__(
        self,
        keys: Sequence[KeyT] | None = None,
        args: Iterable[EncodableT] | None = None,
        client: Any = None,
    ) -> Any:
        if client is not None:
            return await self.inner(keys, args, client)
        keys, args = list(keys or []), list(args or [])
        for attempt in range(2):
            async with self.client.pipeline(transaction=False) as pipe:
                pipe.execute_command("EVALSHA", self.sha, len(keys), *keys, *args)  # (cluster too)
                if isinstance(self.client, RedisCluster):
                    await self.client.initialize()
                    node = self.client.get_node_from_key(str(keys[0]))
                    pipe.execute_command("WAIT", self.replicas, self.timeout_ms, target_nodes=node)
                else:
                    pipe.execute_command("WAIT", self.replicas, self.timeout_ms)
                reply, acknowledged = await pipe.execute(raise_on_error=False)
            if isinstance(reply, NoScriptError) and not attempt:  # a new primary (failover), a flushed cache
                self.sha = await self.client.script_load(self.script)
                continue
            break
        for result in (reply, acknowledged):
            if isinstance(result, Exception):
                raise result
        self.calls += 1
        if int(acknowledged) < self.replicas:
            self.shortfalls += 1
            now = time.monotonic()
            if now - self._warned_at >= _LOG_EVERY:
                self._warned_at = now
                log.warning(
                    "a commit was acknowledged by %d of %d replica(s) within %d ms (%d of %d commits "
                    "so far); it stands, but a failover now could lose it",
                    int(acknowledged), self.replicas, self.timeout_ms, self.shortfalls, self.calls,
                )  # fmt: skip
        return reply
