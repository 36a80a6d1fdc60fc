"""Redis keys: one hash tag per workflow, separate namespaces, expiry of finished runs, trimming.

Cases:
* every key a workflow writes (runs, contexts with list/set/dict fields, joins, retries,
  dead letters, heartbeats, graph) carries the hash tag ``{wf:<namespace>/<workflow>}``
  (found with ``SCAN``), so all of them map to one cluster slot; the only other key is the
  registry of workflows;
* two namespaces with the same workflow and run id never share a key or a run;
* a Completed, a Cancelled and a Failed run's keys all get the TTL, including open join
  inboxes and keys written after a Failed run finished (by steps still in flight: commits,
  retries, parked items; those of a Cancelled run write nothing: see ``test_fencing.py``);
  retrying a Failed run removes the TTL until it finishes again;
* the stream is trimmed of acknowledged entries only, never of pending ones;
* an item handed out more than ``max_deliveries`` times (its step keeps killing workers) is
  dead-lettered and fails the run.
"""

from __future__ import annotations

import asyncio
import fnmatch
import json
from typing import Annotated

import pytest
from pydantic import BaseModel, Field
from redis.asyncio import Redis
from redis.crc import key_slot

from floxide import Merge, NextAll, RetryPolicy, Workflow, WorkflowCtx, edge, join, node
from floxide.distributed import (
    Commit,
    DistributedWorker,
    ErrorRecord,
    RunStatus,
    WorkerHealth,
    process_claim,
    start_run,
)
from floxide.redis import RedisBackend
from floxide.redis.keys import NamespaceKeys, namespace_pattern

pytestmark = pytest.mark.timeout(30)

TTL = 300


class Bag(BaseModel):
    hits: Annotated[int, Merge.sum()] = 0
    log: Annotated[list[str], Merge.append()] = Field(default_factory=list)
    tags: Annotated[set[str], Merge.union()] = Field(default_factory=set)
    seen: Annotated[dict[str, int], Merge.update()] = Field(default_factory=dict)


FAIL_ON = {"index": -1}


@node
async def split3(n: int) -> NextAll[int]:
    return NextAll([n, n + 1, n + 2])


@node
async def branch(ctx: WorkflowCtx[Bag], i: int) -> int:
    if i == FAIL_ON["index"]:
        raise RuntimeError(f"branch {i} fails")
    ctx.store.hits += 1
    ctx.store.log.append(f"b{i}")
    ctx.store.tags.add(f"t{i}")
    ctx.store.seen[str(i)] = i
    return i


@node
async def collect(values: list[int]) -> list[int]:
    return values


bag_flow = Workflow(
    "bag",
    start=split3,
    context=Bag,
    edges=[edge(split3, branch), join(branch, collect)],
    retry={branch: RetryPolicy(max_attempts=1)},
)


def backend_for(client: Redis, *, namespace: str = "tests", **kw: object) -> RedisBackend:
    return RedisBackend(client, "bag", namespace=namespace, context_type=Bag, ttl=TTL, **kw)  # type: ignore[arg-type]


async def run_keys(client: Redis, backend: RedisBackend, run_id: str) -> dict[str, int]:
    """Every key of the run, found by SCAN, with its TTL in seconds (-1: none)."""
    found = {}
    async for key in client.scan_iter(match=f"{backend.run_keys(run_id).base}*", count=1000):
        found[key] = await client.ttl(key)
    return found


async def claim_all(backend: RedisBackend) -> list:  # type: ignore[type-arg]
    return await backend.queue.claim("c", count=100, block=0)


async def finish(backend: RedisBackend, *, limit: int = 50) -> None:
    worker = DistributedWorker(bag_flow, backend, worker_id="w", retry=None)
    for _ in range(limit):
        if await worker.run_once() is None:
            return
    raise AssertionError("the run did not settle")


# -- hash tags and namespaces -------------------------------------------------------------------------


async def test_every_key_of_a_workflow_shares_its_hash_tag(redis: Redis) -> None:
    backend = backend_for(redis)
    FAIL_ON["index"] = -1
    await start_run(bag_flow, backend, 1, run_id="ok")
    await finish(backend)
    FAIL_ON["index"] = 2
    await start_run(bag_flow, backend, 1, run_id="bad")
    await finish(backend)
    retrying = RedisBackend(redis, "bag", namespace="tests", context_type=Bag)
    await start_run(bag_flow, retrying, 1, run_id="later")
    [claim] = await retrying.queue.claim("c", count=1, block=0)
    error = ErrorRecord(run_id="later", item_id="root", node="split3", attempt=1, error_type="E", message="m")
    await retrying.retry_later(claim, delay=60, error=error)
    await backend.liveness.heartbeat(WorkerHealth(worker_id="w", workflow="bag"), ttl=60)
    await backend.publish_graph(bag_flow.describe())
    assert (await backend.runs.get("ok")).status is RunStatus.COMPLETED  # type: ignore[union-attr]
    assert (await backend.runs.get("bad")).status is RunStatus.FAILED  # type: ignore[union-attr]

    keys = [key async for key in redis.scan_iter(count=1000)]
    shared = NamespaceKeys("tests")
    tagged = [k for k in keys if k not in (shared.workflows, shared.run_index)]
    # one each per namespace, single-key commands only
    assert set(keys) - set(tagged) == {shared.workflows, shared.run_index}
    assert all(fnmatch.fnmatchcase(k, namespace_pattern("tests")) for k in keys)  # one ACL pattern
    assert await redis.smembers(shared.workflows) == {"bag"}
    tags = {key[key.index("{") + 1 : key.index("}")] for key in tagged}
    assert tags == {"wf:tests/bag"}
    assert len({key_slot(k.encode()) for k in tagged}) == 1
    kinds = {k.split("}:", 1)[1].split(":")[0] for k in tagged}
    assert {"stream", "delayed", "dead", "runs", "workers", "heartbeats", "graph", "run"} <= kinds
    run_parts = {k.split(":run:", 1)[1].split(":", 1)[-1] for k in tagged if ":run:ok:" in k}
    expected = {"ctx", "ctx:list:log", "ctx:set:tags", "ctx:map:seen", "done", "items", "outputs", "metrics"}
    assert expected <= run_parts


async def test_namespaces_never_collide(redis: Redis) -> None:
    FAIL_ON["index"] = -1
    one, two = backend_for(redis, namespace="one"), backend_for(redis, namespace="two")
    await start_run(bag_flow, one, 1, run_id="same")
    await start_run(bag_flow, two, 10, run_id="same")
    await finish(one)
    assert (await one.runs.get("same")).output == [1, 2, 3]  # type: ignore[union-attr]
    assert (await two.runs.get("same")).status is RunStatus.PENDING  # type: ignore[union-attr]
    await finish(two)
    assert (await two.runs.get("same")).output == [10, 11, 12]  # type: ignore[union-attr]
    assert (await one.contexts.get("same"))["log"] == ["b1", "b2", "b3"]  # type: ignore[index]
    tags = {k[k.index("{") + 1 : k.index("}")] async for k in redis.scan_iter(match="*{*")}
    assert tags == {"wf:one/bag", "wf:two/bag", "wf:one/", "wf:two/"}  # the workflows', the namespaces'


# -- expiry ------------------------------------------------------------------------------------------


def assert_all_expire(keys: dict[str, int]) -> None:
    assert keys, "the run has no keys"
    lasting = sorted(k for k, ttl in keys.items() if not 0 < ttl <= TTL)
    assert not lasting, f"keys without the run's TTL: {lasting}"


async def test_a_completed_runs_keys_expire(redis: Redis) -> None:
    backend = backend_for(redis)
    FAIL_ON["index"] = -1
    await start_run(bag_flow, backend, 1, run_id="r")
    await finish(backend)
    assert (await backend.runs.get("r")).status is RunStatus.COMPLETED  # type: ignore[union-attr]
    keys = await run_keys(redis, backend, "r")
    assert any(":ctx:list:" in k for k in keys) and any(":ctx:map:" in k for k in keys)
    assert_all_expire(keys)


async def test_a_failed_runs_keys_expire_even_when_its_running_steps_write_later(redis: Redis) -> None:
    backend = backend_for(redis)
    await start_run(bag_flow, backend, 1, run_id="r")
    [claim] = await claim_all(backend)
    assert await process_claim(bag_flow, backend, claim) == "committed"
    first, second, _ = await claim_all(backend)  # three branches in flight
    for claim in (first, second):
        await backend.step_input(claim)
    assert await backend.set_status("r", RunStatus.FAILED, reason="failed meanwhile") is RunStatus.FAILED
    # the in-flight steps end: one commits (creating the log list and the join's inbox)...
    append = {"field": "log", "kind": "append", "value": ["late"]}
    commit = Commit(item=first.item, changes=[append], arrivals=[("collect", 1)])
    assert await backend.commit(first, commit) == "ok"
    # ...the other one asks for a retry (creating the error list)
    error = ErrorRecord(
        run_id="r", item_id=second.item.item_id, node="branch", attempt=1, error_type="E", message="m"
    )
    await backend.retry_later(second, delay=60, error=error)
    keys = await run_keys(redis, backend, "r")
    assert any(k.endswith(":ctx:list:log") for k in keys) and any(k.endswith(":errors") for k in keys)
    assert any(":inbox:" in k for k in keys)
    assert_all_expire(keys)


async def test_a_failed_runs_keys_expire_even_when_written_later(redis: Redis) -> None:
    backend = backend_for(redis)
    FAIL_ON["index"] = 1
    await start_run(bag_flow, backend, 1, run_id="r")
    [claim] = await claim_all(backend)
    assert await process_claim(bag_flow, backend, claim) == "committed"
    claims = {c.item.payload: c for c in await claim_all(backend)}
    assert await process_claim(bag_flow, backend, claims[2]) == "committed"  # arrives at the join
    assert await process_claim(bag_flow, backend, claims[1]) == "failed"  # fails the run
    assert await process_claim(bag_flow, backend, claims[3]) == "parked"  # was in flight meanwhile
    assert (await backend.runs.get("r")).status is RunStatus.FAILED  # type: ignore[union-attr]
    assert_all_expire(await run_keys(redis, backend, "r"))


async def test_a_retried_run_keeps_its_keys_until_it_finishes_again(redis: Redis) -> None:
    backend = backend_for(redis)
    FAIL_ON["index"] = 1
    await start_run(bag_flow, backend, 1, run_id="r")
    await finish(backend)
    assert (await backend.runs.get("r")).status is RunStatus.FAILED  # type: ignore[union-attr]
    FAIL_ON["index"] = -1
    assert await backend.set_status("r", RunStatus.RUNNING) is RunStatus.RUNNING
    keys = await run_keys(redis, backend, "r")
    assert keys and all(ttl == -1 for ttl in keys.values()), keys
    await finish(backend)
    info = await backend.runs.get("r")
    assert info is not None and (info.status, info.output) == (RunStatus.COMPLETED, [1, 2, 3])
    assert_all_expire(await run_keys(redis, backend, "r"))


# -- trimming and poison items ---------------------------------------------------------------------


async def test_trim_removes_only_acknowledged_entries(redis: Redis) -> None:
    backend = backend_for(redis)
    FAIL_ON["index"] = -1
    await start_run(bag_flow, backend, 1, run_id="a")
    await finish(backend)
    assert await redis.xlen(backend.keys.stream) == 5  # split3, 3 x branch, collect
    await start_run(bag_flow, backend, 1, run_id="b")
    [held] = await claim_all(backend)  # claimed, not acknowledged
    await start_run(bag_flow, backend, 1, run_id="c")  # not delivered yet
    c_root = (await redis.xrevrange(backend.keys.stream, count=1))[0][0]
    assert await backend.trim() == 5
    assert [e[0] for e in await redis.xrange(backend.keys.stream)] == [held.delivery, c_root]
    assert await backend.queue.backlog() == (1, 1)  # still right after trimming
    assert [i.run_id for i in await backend.queue.pending("b") + await backend.queue.pending("c")] == [
        "b",
        "c",
    ]
    assert await process_claim(bag_flow, backend, held) == "committed"
    await finish(backend)
    last = (await redis.xrevrange(backend.keys.stream, count=1))[0][0]
    assert await backend.trim() >= 9  # b's and c's five entries each, but maybe the last delivered one
    assert [e[0] for e in await redis.xrange(backend.keys.stream)] in ([], [last])
    assert (await backend.runs.get("b")).output == [1, 2, 3]  # type: ignore[union-attr]


async def test_an_item_that_keeps_killing_workers_is_dead_lettered(redis: Redis) -> None:
    backend = backend_for(redis, max_deliveries=2)
    await start_run(bag_flow, backend, 1, run_id="r")
    [claim] = await backend.queue.claim("w1", count=1, block=0)  # w1 dies
    await asyncio.sleep(0.03)
    [claim] = await backend.queue.reclaim("w2", min_idle=0.02, count=1)  # w2 dies
    assert claim.deliveries == 2
    await asyncio.sleep(0.03)
    assert await backend.queue.reclaim("w3", min_idle=0.02, count=1) == []  # the third is not handed out
    info = await backend.runs.get("r")
    assert info is not None and info.status is RunStatus.FAILED
    assert info.error is not None and "WorkerLost" in info.error and "handed out 3 times" in info.error
    [(_, dead)] = await redis.xrange(backend.keys.dead)
    assert json.loads(dead["item"])["node"] == "split3"
    assert await backend.queue.backlog() == (0, 0)
