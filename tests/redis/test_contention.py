"""Many branches over several worker processes: merges and joins stay exact under contention.

Two worker processes of each workflow (8 concurrent steps each) run:

* 1,000 parallel branches each adding 1 to a ``Merge.sum()`` field: the context holds
  exactly 1,000, every branch committed once, the join sees all 1,000 values in order;
* a join over 500 branches fires exactly once (the join node's item is created and
  completed once) with the 500 values in branch order; a fan-out of no branch joins too,
  with no value;
* 300 branches each incrementing one of five counters of a dict merged by a custom
  function (compare-and-set in Redis, retried on conflict): every counter is exactly 60.
"""

from __future__ import annotations

from typing import Any

import pytest
from redis.asyncio import Redis

from floxide import Workflow
from floxide.distributed import DistributedOrchestrator, RunStatus
from floxide.redis import RedisBackend
from tests.distributed import flows
from tests.redis.conftest import NAMESPACE, RedisServer, Workers

pytestmark = [pytest.mark.timeout(180)]


@pytest.fixture(scope="module")
def contention_workers(shared_workers: Workers, redis_server: RedisServer) -> Workers:
    targets = ["tests.distributed.flows:fanout", "tests.distributed.flows:tally"]
    shared_workers.start_shared(targets, url=redis_server.url, concurrency=8)
    return shared_workers


def orchestrator(redis: Redis, workflow: Workflow[Any, Any]) -> DistributedOrchestrator:
    backend = RedisBackend(redis, workflow.name, namespace=NAMESPACE, context_type=workflow.context_type)
    return DistributedOrchestrator(workflow, backend)


async def test_a_thousand_branches_sum_exactly(contention_workers: Workers, shared_redis: Redis) -> None:
    fanout = orchestrator(shared_redis, flows.fanout)
    run_id = await fanout.start_run(flows.Job(count=1000))
    info = await fanout.wait_for_completion(run_id, timeout=120)
    assert info.status is RunStatus.COMPLETED, info.error
    assert info.output == {"values": list(range(1000)), "total": 1000}
    assert (await fanout.context(run_id)).total == 1000
    metrics = await fanout.metrics(run_id)
    assert (metrics.nodes["work"].created, metrics.nodes["work"].completed) == (1000, 1000)
    assert (metrics.failed, metrics.retries) == (0, 0)
    assert info.items_done == info.items_total == 1002


async def test_a_join_over_500_branches_fires_once(contention_workers: Workers, shared_redis: Redis) -> None:
    fanout = orchestrator(shared_redis, flows.fanout)
    run_id = await fanout.start_run(flows.Job(count=500))
    info = await fanout.wait_for_completion(run_id, timeout=120)
    assert info.status is RunStatus.COMPLETED, info.error
    metrics = await fanout.metrics(run_id)
    assert (metrics.nodes["gather"].created, metrics.nodes["gather"].completed) == (1, 1)
    assert await fanout.outputs(run_id) == [{"values": list(range(500)), "total": 500}]
    [join_item] = [s for s in await fanout.list_work_items(run_id) if s.node == "gather"]
    assert join_item.item_id.startswith("j:")


async def test_an_empty_fan_out_still_joins(contention_workers: Workers, shared_redis: Redis) -> None:
    fanout = orchestrator(shared_redis, flows.fanout)
    run_id = await fanout.start_run(flows.Job(count=0))
    info = await fanout.wait_for_completion(run_id, timeout=60)
    assert (info.status, info.output) == (RunStatus.COMPLETED, {"values": [], "total": 0})
    assert (await fanout.metrics(run_id)).nodes["gather"].completed == 1


async def test_a_custom_merge_under_contention(contention_workers: Workers, shared_redis: Redis) -> None:
    tally = orchestrator(shared_redis, flows.tally)
    run_id = await tally.start_run(300)
    info = await tally.wait_for_completion(run_id, timeout=120)
    assert info.status is RunStatus.COMPLETED, info.error
    expected = {str(k): 60 for k in range(5)}
    assert info.output == expected
    assert (await tally.context(run_id)).counts == expected
    metrics = await tally.metrics(run_id)
    assert (metrics.nodes["count"].completed, metrics.failed) == (300, 0)
