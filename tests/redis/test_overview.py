"""The dashboard's reads across workflows (:mod:`floxide.redis.overview`) on a real Redis.

Cases:
* namespaces are found by a key scan; workflows are listed per namespace;
* pages of runs over several workflows are newest first, without gaps or repeats, across the
  200-run batches the reads are made in, with and without a status filter; a run whose record
  expired (still in the run index) is left out; ``more`` says whether a next page has runs;
* a run's context is read without its model (plain, list, set and dict fields), its input is
  what it started with, a large input is noted, not kept;
* a node's latest item states, newest first, with counts by status.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Annotated

import pytest
from pydantic import BaseModel, Field
from redis.asyncio import Redis

from floxide import Merge, Workflow, WorkflowCtx, node
from floxide.distributed.models import RunStatus
from floxide.redis import RedisBackend
from floxide.redis.keys import KeySpace, NamespaceKeys
from floxide.redis.overview import INPUT_LIMIT, Overview

pytestmark = pytest.mark.redis

STATUSES = [RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.RUNNING]
START = datetime(2026, 1, 1, tzinfo=UTC)


async def _fake_runs(
    redis: Redis, namespace: str, workflow: str, count: int, *, every: int
) -> list[tuple[datetime, str, str, str, RunStatus]]:
    """``count`` run records of ``workflow``, one every ``every`` s: ``(created, ns, wf, id, status)``."""
    keys = KeySpace(namespace, workflow)
    made = []
    async with redis.pipeline(transaction=False) as pipe:
        pipe.sadd(NamespaceKeys(namespace).workflows, workflow)
        for i in range(count):
            created = START + timedelta(seconds=i * every)
            run_id = f"{workflow}-{i:04d}"
            status = STATUSES[i % 3]
            pipe.zadd(keys.runs, {run_id: created.timestamp() * 1000})
            pipe.hset(keys.run(run_id).info, mapping={
                "run_id": run_id, "workflow": workflow, "status": status.value,
                "created_at": created.isoformat(), "items_total": 3, "items_done": 1, "has_output": "0",
            })  # fmt: skip
            made.append((created, namespace, workflow, run_id, status))
        await pipe.execute()
    return made


async def test_pages_over_workflows(redis: Redis) -> None:
    made = await _fake_runs(redis, "ov", "alpha", 330, every=3)
    made += await _fake_runs(redis, "ov", "beta", 250, every=4)
    await _fake_runs(redis, "other", "gamma", 5, every=1)
    gone = ("ov", "alpha", "alpha-0100")
    await redis.delete(KeySpace("ov", "alpha").run("alpha-0100").info)  # expired, still indexed
    made = [m for m in made if m[1:4] != gone]
    overview = Overview(redis)

    assert await overview.namespaces() == ["other", "ov"]
    pairs = await overview.workflows(["ov"])
    assert pairs == [("ov", "alpha"), ("ov", "beta")]

    newest = sorted(made, key=lambda m: (-m[0].timestamp(), m[1], m[2], m[3]))  # ties: alpha first
    for status in (None, RunStatus.FAILED):
        expected = [m[3] for m in newest if status is None or m[4] is status]
        for limit in (7, 50, 199):
            seen: list[str] = []
            offset = 0
            while True:
                page = await overview.run_page(pairs, status=status, offset=offset, limit=limit)
                seen += [entry.info.run_id for entry in page.runs]
                assert all(entry.namespace == "ov" for entry in page.runs)
                if not page.more:
                    break
                assert len(page.runs) >= limit - 1  # without a filter, an expired run leaves a gap
                offset += limit
            assert seen == expected, (status, limit)
    empty = await overview.run_page(pairs, offset=10_000, limit=10)
    assert empty.runs == [] and not empty.more


class Ctx(BaseModel):
    total: Annotated[int, Merge.sum()] = 0
    seen: Annotated[list[str], Merge.append()] = Field(default_factory=list)
    tags: Annotated[list[str], Merge.union()] = Field(default_factory=list)
    by_key: Annotated[dict[str, int], Merge.update()] = Field(default_factory=dict)


@node
async def only(ctx: WorkflowCtx[Ctx], text: str) -> str:
    return text


FLOW: Workflow[str, str] = Workflow("ctxflow", start=only, context=Ctx)


async def test_context_input_and_items(redis: Redis) -> None:
    backend = RedisBackend(redis, "ctxflow", namespace="ov", context_type=Ctx)
    context = Ctx(total=3, seen=["a", "b"], tags=["y", "x"], by_key={"k": 1})
    run_id = await FLOW.start_distributed(backend, "hello", context=context)
    overview = Overview(redis)
    stored = await overview.context("ov", "ctxflow", run_id)
    assert stored == {"total": 3, "seen": ["a", "b"], "tags": ["x", "y"], "by_key": {"k": 1}}
    assert await overview.input("ov", "ctxflow", run_id) == (True, "hello")

    big = "x" * (INPUT_LIMIT + 10)
    large = await FLOW.start_distributed(backend, big)
    kept, note = await overview.input("ov", "ctxflow", large)
    assert not kept and f"{INPUT_LIMIT + 12} characters" in note

    states, counts = await overview.items("ov", "ctxflow", run_id, "only")
    assert [s.node for s in states] == ["only"] and counts == {"Queued": 1}
    assert await overview.items("ov", "ctxflow", run_id, "nothing") == ([], {})
    assert json.loads(await redis.hget(KeySpace("ov", "ctxflow").run(run_id).info, "input")) == "hello"
