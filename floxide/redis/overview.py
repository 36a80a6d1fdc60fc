"""Reads across workflows and namespaces for the dashboard (``floxide ui``).

The stores of :class:`~floxide.redis.backend.RedisBackend` read one workflow of one
namespace and know the run's context type. A dashboard serves every namespace of a Redis
and has no workflow code loaded, so it needs a few reads of its own; all are read-only and
none grows with a run's size except :meth:`Overview.items` (one run's item states, read when
a person opens a node):

* :meth:`Overview.workflows`: every ``(namespace, workflow)`` registered in this Redis;
* :meth:`Overview.run_page`: one page of runs, newest first, over chosen workflows, with an
  optional status filter (ids come from each workflow's run index, records are read only
  for the page, statuses a batch at a time when filtering);
* :meth:`Overview.context`: a run's context as stored, without its model;
* :meth:`Overview.input`: the input a run was started with (kept in the run's record);
* :meth:`Overview.items`: the latest item states of one node of a run;
* :meth:`Overview.item_states`: the states of given items of a run (those workers hold).
"""

from __future__ import annotations

import heapq
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from floxide.distributed.models import RunInfo, RunStatus, WorkItemState
from floxide.redis.clients import Client
from floxide.redis.keys import KeySpace, NamespaceKeys
from floxide.redis.stores import _run_info as run_info  # the record's one parser

__all__ = ["INPUT_LIMIT", "Overview", "RunEntry", "RunPage"]

INPUT_LIMIT = 64 * 1024
"""Characters of a run's input JSON kept in its record (longer inputs are noted, not kept)."""

_BATCH = 200


@dataclass(frozen=True)
class RunEntry:
    """A run and where it lives."""

    namespace: str
    info: RunInfo


@dataclass(frozen=True)
class RunPage:
    """One page of runs, and whether more follow it."""

    runs: list[RunEntry]
    more: bool


class Overview:
    """Read-only views of a whole Redis for the dashboard."""

    def __init__(self, client: Client) -> None:
        self.client = client

    async def namespaces(self) -> list[str]:
        """Every namespace with a registered workflow (a SCAN over the key space: call it seldom)."""
        prefix, _, suffix = NamespaceKeys("\0").workflows.partition("\0")
        found: set[str] = set()
        async for key in self.client.scan_iter(match=NamespaceKeys("*").workflows, count=1000):
            name = str(key)
            if name.startswith(prefix) and name.endswith(suffix):
                found.add(name[len(prefix) : len(name) - len(suffix)])
        return sorted(found)

    async def workflows(self, namespaces: Sequence[str]) -> list[tuple[str, str]]:
        """Every registered ``(namespace, workflow)`` of ``namespaces``, sorted."""
        async with self.client.pipeline(transaction=False) as pipe:
            for ns in namespaces:
                pipe.smembers(NamespaceKeys(ns).workflows)
            replies = await pipe.execute()
        return sorted(
            (ns, str(wf)) for ns, members in zip(namespaces, replies, strict=True) for wf in members
        )

    async def run_page(
        self,
        workflows: Sequence[tuple[str, str]],
        *,
        status: RunStatus | None = None,
        offset: int = 0,
        limit: int = 50,
    ) -> RunPage:
        """Runs ``offset .. offset + limit`` of ``workflows``, newest first (ties by namespace, workflow, id).

        Without a status filter a page is the runs at those places of the run indexes: only
        their records are read (a run that expired since is left out, so a page may come
        short). With one, records are read from the newest on, a batch at a time, until the
        page is full.
        """
        async with self.client.pipeline(transaction=False) as pipe:
            for ns, wf in workflows:
                pipe.zrevrange(KeySpace(ns, wf).runs, 0, -1, withscores=True)
            replies = await pipe.execute()
        ordered = sorted(
            (-float(score), ns, wf, str(run_id))
            for (ns, wf), reply in zip(workflows, replies, strict=True)
            for run_id, score in reply
        )
        if status is None:
            runs = await self._read(ordered[offset : offset + limit], None)
            return RunPage(runs=runs, more=len(ordered) > offset + limit)
        found: list[RunEntry] = []
        for start in range(0, len(ordered), _BATCH):
            found += await self._read(ordered[start : start + _BATCH], status)
            if len(found) > offset + limit:
                break
        return RunPage(runs=found[offset : offset + limit], more=len(found) > offset + limit)

    async def _read(
        self, chunk: list[tuple[float, str, str, str]], status: RunStatus | None
    ) -> list[RunEntry]:
        async with self.client.pipeline(transaction=False) as pipe:
            for _, ns, wf, run_id in chunk:
                pipe.hgetall(KeySpace(ns, wf).run(run_id).info)
            replies = await pipe.execute()
        entries = []
        for (_, ns, _, _), data in zip(chunk, replies, strict=True):
            if not data:
                continue  # expired: the workers' pruning drops it from the index
            info = run_info(data)
            if status is None or info.status is status:
                entries.append(RunEntry(ns, info))
        return entries

    async def context(self, namespace: str, workflow: str, run_id: str) -> dict[str, Any] | None:
        """The run's context as stored (``None`` before it is seeded, or for a workflow without one)."""
        keys = KeySpace(namespace, workflow).run(run_id)
        ready, recorded = await self.client.hmget(keys.info, ["ctx_ready", "ctx_keys"])
        if ready != "1":
            return None
        separate = [str(k) for k in json.loads(recorded)] if recorded else []
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.hgetall(keys.ctx)
            for key in separate:
                kind = key.rsplit(":", 2)[-2]
                if kind == "list":
                    pipe.lrange(key, 0, -1)
                elif kind == "set":
                    pipe.smembers(key)
                else:
                    pipe.hgetall(key)
            replies = await pipe.execute()
        data: dict[str, Any] = {field: json.loads(raw) for field, raw in (replies[0] or {}).items()}
        for key, reply in zip(separate, replies[1:], strict=True):
            field = key.rsplit(":", 1)[-1]
            if isinstance(reply, dict):
                data[field] = {k: json.loads(v) for k, v in reply.items()}
            elif isinstance(reply, list):
                data[field] = [json.loads(v) for v in reply]
            else:  # a set: in a stable order
                data[field] = [json.loads(v) for v in sorted(reply)]
        return data

    async def input(self, namespace: str, workflow: str, run_id: str) -> tuple[bool, Any]:
        """``(kept, input)``: the run's input, or ``(False, note)`` if it was too large or not recorded."""
        keys = KeySpace(namespace, workflow).run(run_id)
        raw, size = await self.client.hmget(keys.info, ["input", "input_size"])
        if raw is not None:
            return True, json.loads(raw)
        if size is not None:
            return False, f"not kept: {size!s} characters of JSON (more than {INPUT_LIMIT})"
        return False, "not recorded"

    async def item_states(
        self, namespace: str, workflow: str, run_id: str, item_ids: Sequence[str]
    ) -> list[WorkItemState]:
        """The states of these items of the run (those it has)."""
        if not item_ids:
            return []
        raws = await self.client.hmget(KeySpace(namespace, workflow).run(run_id).items, list(item_ids))
        return [WorkItemState.model_validate_json(raw) for raw in raws if raw is not None]

    async def items(
        self, namespace: str, workflow: str, run_id: str, node: str, *, limit: int = 50
    ) -> tuple[list[WorkItemState], dict[str, int]]:
        """The node's ``limit`` latest item states, and how many of its items are in each status."""
        keys = KeySpace(namespace, workflow).run(run_id)
        states: list[WorkItemState] = []
        counts: dict[str, int] = {}
        cursor = 0
        marker = f'"node":{json.dumps(node)}' if node.isascii() else ""  # skips most JSON unparsed
        while True:
            cursor, chunk = await self.client.hscan(keys.items, cursor, count=1000)
            for raw in cast(dict[str, str], chunk).values():
                if marker not in raw:
                    continue
                state = WorkItemState.model_validate_json(raw)
                if state.node != node:
                    continue
                counts[state.status.value] = counts.get(state.status.value, 0) + 1
                states.append(state)
            if int(cursor) == 0:
                break
        latest = heapq.nlargest(limit, states, key=lambda s: (s.updated_at, s.item_id))
        return latest, counts
