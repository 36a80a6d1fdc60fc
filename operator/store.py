"""The operator's only door to Redis: run records, backlogs, graphs, run control and cleanup.

Everything here goes through :class:`floxide.redis.RedisBackend`, with the keys the workers use:
``{wf:<Kubernetes namespace>/<Workflow resource name>}`` (the operator tells the workers that
name), so each Workflow resource has a queue of its own, whatever code it runs.

Every Redis or socket error leaves this module as :class:`RedisUnavailable`, whose message says
which Redis and why: the handlers report it in a condition and try again on their next tick.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Any

from pydantic import SecretStr

from floxide.distributed.execution import seed_run
from floxide.distributed.models import RunInfo, RunMetrics, RunStatus, WorkerHealth
from floxide.errors import NotStarted
from floxide.redis import RedisBackend, RedisSettings
from floxide.redis.index import UNAVAILABLE, AmbiguousRun, RedisUnavailable, RunIndex
from floxide.redis.keys import KeySpace

__all__ = [
    "Connection",
    "RedisUnavailable",
    "Redises",
    "WorkflowStore",
]


@dataclass(frozen=True)
class Connection:
    """Where a Redis is: its URL, password and ACL user (``None``: the URL's own, if any)."""

    url: str
    password: str | None = None
    username: str | None = None

    def where(self) -> str:
        """The URL without credentials, for messages."""
        return re.sub(r"//[^@/]*@", "//", self.url)


@contextlib.asynccontextmanager
async def _guard(connection: Connection) -> AsyncIterator[None]:
    try:
        yield
    except UNAVAILABLE as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise RedisUnavailable(f"Redis at {connection.where()}: {reason}") from exc


class Redises:
    """One client per Redis the operator talks to: its own, and those Workflows name in secrets."""

    def __init__(self, default: RedisSettings, *, ttl: float) -> None:
        self.settings = default
        self.default = Connection(
            default.url,
            default.password.get_secret_value() if default.password else None,
            username=default.username,
        )
        self.ttl = ttl
        self._clients: dict[Connection, Any] = {}  # redis.asyncio.Redis, from RedisSettings.client()
        self._stores: dict[tuple[Connection, str, str], WorkflowStore] = {}

    def client(self, connection: Connection | None = None) -> Any:
        """The client of ``connection`` (default: the operator's own Redis)."""
        connection = connection or self.default
        client = self._clients.get(connection)
        if client is None:
            password = None if connection.password is None else SecretStr(connection.password)
            update = {"url": connection.url, "password": password, "username": connection.username}
            settings = self.settings.model_copy(update=update)
            client = self._clients[connection] = settings.client()
        return client

    def store(self, connection: Connection | None, *, namespace: str, workflow: str) -> WorkflowStore:
        """The store of one workflow (``workflow`` is the name in the code) in one namespace."""
        connection = connection or self.default
        key = (connection, namespace, workflow)
        store = self._stores.get(key)
        if store is None:
            backend = RedisBackend(self.client(connection), workflow, namespace=namespace, ttl=self.ttl)
            store = self._stores[key] = WorkflowStore(backend, connection)
        return store

    async def ping(self, connection: Connection | None = None) -> None:
        """Check that Redis answers; :class:`RedisUnavailable` if not."""
        connection = connection or self.default
        async with _guard(connection):
            await self.client(connection).ping()

    async def everywhere(self, *command: str) -> list[Any]:
        """An admin command (``ACL SETUSER ...``) on every server of the operator's own Redis; the
        replies, one per server. Redis keeps ACLs per server: a Redis Cluster does not spread them.

        Redis errors are raised as they come (:data:`~floxide.redis.index.UNAVAILABLE`), so that
        callers tell a refusal (:data:`~floxide.redis.index.REFUSED`) from an outage.
        """
        client = self.client()
        if hasattr(client, "get_nodes"):  # redis-py's cluster client
            replies = await client.execute_command(*command, target_nodes="all")
            return list(replies.values()) if isinstance(replies, dict) else [replies]
        return [await client.execute_command(*command)]

    async def locate(
        self, connection: Connection | None, *, namespace: str, run_id: str
    ) -> WorkflowStore | None:
        """The store of the workflow holding ``run_id``; None if no workflow (or several) has it."""
        connection = connection or self.default
        async with _guard(connection):
            try:
                workflow = await RunIndex(self.client(connection), namespace).locate(run_id)
            except (NotStarted, AmbiguousRun):
                return None
        return self.store(connection, namespace=namespace, workflow=workflow)

    async def close(self) -> None:
        """Close every client."""
        for client in self._clients.values():
            with contextlib.suppress(Exception):
                await client.aclose()
        self._clients.clear()
        self._stores.clear()


class WorkflowStore:
    """The Redis side of one workflow in one namespace, as the operator sees it."""

    def __init__(self, backend: RedisBackend, connection: Connection) -> None:
        self.backend = backend
        self.connection = connection

    @property
    def keys(self) -> KeySpace:
        return self.backend.keys

    async def graph(self) -> dict[str, Any] | None:
        """The graph the workers published: nodes, edges, startNode, inputSchema, name."""
        async with _guard(self.connection):
            return await self.backend.graph()

    async def limits(self) -> tuple[int, int]:
        """Node-limit slots held now (all limits and keys), and work items waiting for a limit."""
        async with _guard(self.connection):
            usage = await self.backend.limits.usage()
            return sum(u.in_use for u in usage), await self.backend.limits.throttled()

    async def backlog(self) -> int:
        """Work items waiting, retrying or being worked on (lag plus pending)."""
        async with _guard(self.connection):
            lag, pending = await self.backend.queue.backlog()
        return lag + pending

    async def workers(self) -> list[WorkerHealth]:
        """Workers with a live heartbeat."""
        async with _guard(self.connection):
            return await self.backend.liveness.list()

    async def apply_run_limit(self, limit: int | None) -> int:
        """Make Redis hold the Workflow's ``spec.maxActiveRuns`` (``None``: no limit) and start the
        queued runs it allows (:mod:`floxide.redis.runqueue`); how many runs still wait."""
        async with _guard(self.connection):
            queue = self.backend.run_queue
            if await queue.limit() != limit:
                await queue.set_limit(limit)
            else:
                await queue.admit()
            return await queue.waiting()

    async def seed(
        self,
        run_id: str,
        *,
        start_node: str,
        payload: Any,
        deadline_seconds: float | None,
        max_payload_bytes: int | None = None,
        priority: str = "normal",
    ) -> None:
        """Queue the run's first work item; idempotent per run id (a second call changes nothing).

        A payload over ``max_payload_bytes`` raises :class:`~floxide.errors.PayloadTooLarge`."""
        async with _guard(self.connection):
            await seed_run(
                self.backend,
                start_node=start_node,
                payload=payload,
                run_id=run_id,
                deadline_seconds=deadline_seconds,
                max_payload_bytes=max_payload_bytes,
                priority=priority,
            )

    async def read(self, run_id: str) -> tuple[RunInfo | None, RunMetrics]:
        """The run's record (``None`` if it does not exist) and its metrics."""
        async with _guard(self.connection):
            info = await self.backend.runs.get(run_id)
            metrics = await self.backend.metrics.get(run_id) if info is not None else RunMetrics()
        return info, metrics

    async def move(
        self, run_id: str, status: RunStatus, *, reason: str | None = None, interrupt: bool = False
    ) -> RunStatus | None:
        """Move the run to ``status`` if that is a legal move; the status it is in afterwards."""
        async with _guard(self.connection):
            return await self.backend.set_status(run_id, status, reason=reason, interrupt=interrupt)

    def output_key(self, run_id: str) -> str:
        """The list whose first entry is the run's output (JSON)."""
        return self.backend.run_keys(run_id).outputs

    async def delete(self, run_id: str) -> int:
        """Stop the run (running steps are cancelled) and delete its keys; how many were deleted."""
        async with _guard(self.connection):
            await self.backend.set_status(run_id, RunStatus.CANCELLED, reason="deleted", interrupt=True)
            keys = await self.backend.all_run_keys(run_id)
            client = self.backend.client
            async with client.pipeline(transaction=False) as pipe:
                for chunk in _chunks(keys, 100):
                    pipe.delete(*chunk)
                pipe.zrem(self.keys.runs, run_id)
                replies = await pipe.execute()
        return sum(int(reply) for reply in replies[:-1])


def _chunks(items: list[str], size: int) -> Iterable[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
