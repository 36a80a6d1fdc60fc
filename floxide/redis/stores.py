"""The read-only stores of :class:`~floxide.redis.backend.RedisBackend`: contexts, runs, metrics,
errors, worker liveness and item states (what ``floxide status`` and its siblings read).

Every write of run data goes through the backend's Lua scripts; only worker heartbeats are
written here (they belong to no run).
"""

from __future__ import annotations

import builtins
import json
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from floxide.distributed.models import (
    ErrorRecord,
    NodeMetrics,
    RunInfo,
    RunMetrics,
    RunStatus,
    WorkerHealth,
    WorkItemState,
)

if TYPE_CHECKING:
    from floxide.redis.backend import RedisBackend

__all__ = ["Contexts", "Errors", "Items", "Liveness", "Metrics", "Runs"]


class Contexts:
    def __init__(self, backend: RedisBackend) -> None:
        self._b = backend

    async def get(self, run_id: str) -> dict[str, Any] | None:
        b = self._b
        keys = b.run_keys(run_id)
        if b.layout.model is None:
            return None
        async with b.client.pipeline(transaction=False) as pipe:
            pipe.hget(keys.info, "ctx_ready")
            for command in b.layout.read_commands(keys):
                pipe.execute_command(*command)
            replies = await pipe.execute()
        if replies[0] != "1":  # an unknown (or expired) run, or one whose context is not seeded yet
            return None
        return b.layout.assemble(keys, replies[1:])


class Runs:
    def __init__(self, backend: RedisBackend) -> None:
        self._b = backend

    async def get(self, run_id: str) -> RunInfo | None:
        data = cast(dict[str, str], await self._b.client.hgetall(self._b.run_keys(run_id).info))
        return _run_info(data) if data else None

    async def list(self, status: RunStatus | None = None, *, limit: int = 1000) -> list[RunInfo]:
        b = self._b
        ids = cast(list[str], await b.client.zrevrange(b.keys.runs, 0, -1))
        found: list[RunInfo] = []
        gone: list[str] = []
        for start in range(0, len(ids), 200):
            chunk = ids[start : start + 200]
            async with b.client.pipeline(transaction=False) as pipe:
                for run_id in chunk:
                    pipe.hgetall(b.run_keys(run_id).info)
                replies = await pipe.execute()
            for run_id, data in zip(chunk, replies, strict=True):
                if not data:
                    gone.append(run_id)
                    continue
                info = _run_info(data)
                if status is None or info.status is status:
                    found.append(info)
            if len(found) >= limit:
                break
        if gone:
            await b.client.zrem(b.keys.runs, *gone)
        return found[:limit]

    async def outputs(self, run_id: str) -> builtins.list[Any]:
        raws = await self._b.client.lrange(self._b.run_keys(run_id).outputs, 0, -1)
        return [json.loads(raw) for raw in raws]


def _moment(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _run_info(data: dict[str, str]) -> RunInfo:
    has_output = data.get("has_output") == "1"
    return RunInfo(
        run_id=data["run_id"],
        workflow=data["workflow"],
        status=RunStatus(data["status"]),
        created_at=datetime.fromisoformat(data["created_at"]),
        started_at=_moment(data.get("started_at")),
        finished_at=_moment(data.get("finished_at")),
        deadline=_moment(data.get("deadline")),
        output=json.loads(data["output"]) if has_output and "output" in data else None,
        has_output=has_output,
        error=data.get("error") or None,
        items_total=int(data.get("items_total", 0)),
        items_done=int(data.get("items_done", 0)),
        interrupt=data.get("interrupt") == "1",
        priority=data.get("priority") or "normal",
    )


class Metrics:
    def __init__(self, backend: RedisBackend) -> None:
        self._b = backend

    async def get(self, run_id: str) -> RunMetrics:
        raw = cast(dict[str, str], await self._b.client.hgetall(self._b.run_keys(run_id).metrics))
        nodes: dict[str, NodeMetrics] = {}
        for key, value in raw.items():
            node, _, counter = key.rpartition(":")
            metrics = nodes.setdefault(node, NodeMetrics())
            setattr(metrics, counter, float(value) if counter == "seconds" else int(value))
        return RunMetrics.of_nodes(nodes)


class Errors:
    def __init__(self, backend: RedisBackend) -> None:
        self._b = backend

    async def list(self, run_id: str) -> list[ErrorRecord]:
        raws = await self._b.client.lrange(self._b.run_keys(run_id).errors, 0, -1)
        return [ErrorRecord.model_validate_json(raw) for raw in raws]


class Liveness:
    def __init__(self, backend: RedisBackend) -> None:
        self._b = backend

    async def heartbeat(self, health: WorkerHealth, *, ttl: float) -> None:
        b = self._b
        async with b.client.pipeline(transaction=True) as pipe:
            pipe.hset(b.keys.workers, health.worker_id, health.model_dump_json())
            pipe.zadd(b.keys.heartbeats, {health.worker_id: time.time() + ttl})
            await pipe.execute()

    async def list(self) -> list[WorkerHealth]:
        b = self._b
        now = time.time()
        expired = await b.client.zrangebyscore(b.keys.heartbeats, "-inf", now)
        if expired:
            async with b.client.pipeline(transaction=True) as pipe:
                pipe.zrem(b.keys.heartbeats, *expired)
                pipe.hdel(b.keys.workers, *expired)
                await pipe.execute()
        raws = await b.client.hvals(b.keys.workers)
        return sorted((WorkerHealth.model_validate_json(r) for r in raws), key=lambda h: h.worker_id)

    async def remove(self, worker_id: str) -> None:
        b = self._b
        async with b.client.pipeline(transaction=True) as pipe:
            pipe.zrem(b.keys.heartbeats, worker_id)
            pipe.hdel(b.keys.workers, worker_id)
            await pipe.execute()


class Items:
    def __init__(self, backend: RedisBackend) -> None:
        self._b = backend

    async def get(self, run_id: str, item_id: str) -> WorkItemState | None:
        raw = await self._b.client.hget(self._b.run_keys(run_id).items, item_id)
        return None if raw is None else WorkItemState.model_validate_json(raw)

    async def list(self, run_id: str) -> list[WorkItemState]:
        raws = await self._b.client.hvals(self._b.run_keys(run_id).items)
        return [WorkItemState.model_validate_json(raw) for raw in raws]
