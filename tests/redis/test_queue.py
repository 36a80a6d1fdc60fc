"""The work queue, on Redis Streams and in memory alike (each test runs once per backend).

Cases:
* claim: an empty queue blocks for ``block`` seconds, then gives nothing; an item enqueued
  during the block is handed out at once; ``count`` bounds a claim; two consumers never get
  the same item;
* reclaim: an item is not reclaimed while its lease runs, and is reclaimed (by another
  consumer, delivery count 2) once it has been idle longer than the lease;
* extend: renewing the lease keeps an item from being reclaimed, however long the step;
  a consumer cannot renew an item it no longer owns;
* release: a released item is reclaimable at once;
* pending: the run's uncommitted items, queued, claimed, delayed, parked or failed; none once
  the run completed; other runs' items never show;
* backlog: ``(lag, pending)`` counts undelivered (and delayed) items and delivered ones not
  yet acknowledged.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from floxide import RetryPolicy, Workflow, edge, node
from floxide.distributed import ErrorRecord, RunStatus, process_claim, start_run
from tests.redis.conftest import BackendFactory

pytestmark = pytest.mark.timeout(30)


@node
async def first(n: int) -> int:
    return n + 1


@node
async def second(n: int) -> int:
    return n * 2


chain = Workflow("chain", start=first, edges=[edge(first, second)])


@node
async def flaky(n: int) -> int:
    raise ValueError("flaky")


failing = Workflow("failing", start=flaky, retry={flaky: RetryPolicy(max_attempts=2, initial_backoff=30)})


async def test_an_empty_queue_blocks_then_gives_nothing(make_backend: BackendFactory) -> None:
    backend = make_backend("chain")
    started = time.monotonic()
    assert await backend.queue.claim("c", count=1, block=0.3) == []
    assert 0.25 <= time.monotonic() - started < 3
    started = time.monotonic()
    assert await backend.queue.claim("c", count=1, block=0) == []
    assert time.monotonic() - started < 0.25


async def test_a_blocked_claim_gets_a_new_item_at_once(make_backend: BackendFactory) -> None:
    backend = make_backend("chain")
    await backend.queue.claim("c", count=1, block=0)  # (creates the consumer group)
    started = time.monotonic()
    waiting = asyncio.ensure_future(backend.queue.claim("c", count=1, block=5))
    await asyncio.sleep(0.1)
    # another connection, as another process would have (the in-memory one is shared)
    other = make_backend("chain") if make_backend.kind == "redis" else backend  # type: ignore[attr-defined]
    await start_run(chain, other, 1, run_id="r")
    claims = await asyncio.wait_for(waiting, 4)
    assert time.monotonic() - started < 2.5
    assert [(c.item.run_id, c.item.node, c.item.payload) for c in claims] == [("r", "first", 1)]


async def test_count_bounds_a_claim_and_consumers_share_nothing(make_backend: BackendFactory) -> None:
    backend = make_backend("chain")
    for n in range(5):
        await start_run(chain, backend, n, run_id=f"r{n}")
    one = await backend.queue.claim("c1", count=2, block=0)
    two = await backend.queue.claim("c2", count=10, block=0.1)
    assert (len(one), len(two)) == (2, 3)
    assert sorted(c.item.run_id for c in one + two) == [f"r{n}" for n in range(5)]
    assert [c.item.run_id for c in one] == ["r0", "r1"]  # in order
    assert len({c.delivery for c in one + two}) == 5
    assert await backend.queue.claim("c3", count=10, block=0.1) == []


async def test_reclaim_after_the_lease_expires(make_backend: BackendFactory) -> None:
    backend = make_backend("chain")
    await start_run(chain, backend, 1, run_id="r")
    [claim] = await backend.queue.claim("dead", count=1, block=0)
    assert claim.deliveries == 1
    assert await backend.queue.reclaim("alive", min_idle=0.4, count=5) == []
    await asyncio.sleep(0.45)
    [again] = await backend.queue.reclaim("alive", min_idle=0.4, count=5)
    assert (again.item, again.delivery, again.deliveries) == (claim.item, claim.delivery, 2)
    assert await backend.queue.reclaim("third", min_idle=0.4, count=5) == []  # now alive's, freshly
    assert await process_claim(chain, backend, again) == "committed"
    info = await backend.runs.get("r")
    assert info is not None and info.items_done == 1


async def test_extending_the_lease_keeps_the_item(make_backend: BackendFactory) -> None:
    backend = make_backend("chain")
    await start_run(chain, backend, 1, run_id="r")
    [claim] = await backend.queue.claim("slow", count=1, block=0)
    for _ in range(8):  # a step of 0.8 s with a 0.3 s lease, renewed every 0.1 s
        await asyncio.sleep(0.1)
        await backend.queue.extend("slow", [claim])
        assert await backend.queue.reclaim("other", min_idle=0.3, count=5) == []
    await asyncio.sleep(0.35)  # no renewal: the lease runs out
    [taken] = await backend.queue.reclaim("other", min_idle=0.3, count=5)
    assert taken.delivery == claim.delivery
    await backend.queue.extend("slow", [claim])  # not slow's any more: no effect
    await asyncio.sleep(0.35)
    [back] = await backend.queue.reclaim("slow", min_idle=0.3, count=5)
    assert back.delivery == claim.delivery and back.deliveries == 3


async def test_a_released_item_is_reclaimable_at_once(make_backend: BackendFactory) -> None:
    backend = make_backend("chain")
    await start_run(chain, backend, 1, run_id="r")
    [claim] = await backend.queue.claim("draining", count=1, block=0)
    await backend.queue.release("someone-else", [claim])  # not theirs: no effect
    assert await backend.queue.reclaim("other", min_idle=30, count=5) == []
    await backend.queue.release("draining", [claim])
    [taken] = await backend.queue.reclaim("other", min_idle=30, count=5)
    assert taken.item == claim.item
    assert await process_claim(chain, backend, taken) == "committed"


async def test_pending_items_of_a_run(make_backend: BackendFactory) -> None:
    backend = make_backend("chain")
    await start_run(chain, backend, 1, run_id="r")
    await start_run(chain, backend, 5, run_id="other")
    [root] = await backend.queue.pending("r")
    assert (root.node, root.payload, root.item_id) == ("first", 1, "root")

    claims = await backend.queue.claim("c", count=2, block=0)
    assert [i.node for i in await backend.queue.pending("r")] == ["first"]  # claimed: still pending
    mine = next(c for c in claims if c.item.run_id == "r")
    assert await process_claim(chain, backend, mine) == "committed"
    [child] = await backend.queue.pending("r")
    assert (child.node, child.payload) == ("second", 2)

    assert await backend.set_status("r", RunStatus.PAUSED) is RunStatus.PAUSED
    [claim] = [c for c in await backend.queue.claim("c", count=1, block=0) if c.item.run_id == "r"]
    assert await process_claim(chain, backend, claim) == "parked"
    assert [i.node for i in await backend.queue.pending("r")] == ["second"]  # parked
    assert await backend.set_status("r", RunStatus.RUNNING) is RunStatus.RUNNING
    [claim] = await backend.queue.claim("c", count=1, block=0)
    assert await process_claim(chain, backend, claim) == "committed"
    assert await backend.queue.pending("r") == []
    assert [i.run_id for i in await backend.queue.pending("other")] == ["other"]


async def test_delayed_and_failed_items_are_pending(make_backend: BackendFactory) -> None:
    backend = make_backend("failing")
    await start_run(failing, backend, 1, run_id="r")
    [claim] = await backend.queue.claim("c", count=1, block=0)
    assert await process_claim(failing, backend, claim, retry=None) == "retrying"
    [delayed] = await backend.queue.pending("r")
    assert (delayed.item_id, delayed.attempt) == ("root", 2)
    error = ErrorRecord(run_id="r", item_id="root", node="flaky", attempt=2, error_type="E", message="m")
    await backend.retry_later(claim, delay=30, error=error)  # (a second, stale report changes nothing)
    [delayed] = await backend.queue.pending("r")

    await start_run(failing, backend, 1, run_id="f")
    [claim] = await backend.queue.claim("c", count=1, block=0)
    await backend.fail(claim, error.model_copy(update={"run_id": "f", "permanent": True}))
    [failed] = await backend.queue.pending("f")
    assert (failed.item_id, failed.attempt) == ("root", 1)


async def test_backlog_counts_lag_and_pending(make_backend: BackendFactory) -> None:
    backend = make_backend("chain")
    assert await backend.queue.backlog() == (0, 0)
    for n in range(3):
        await start_run(chain, backend, n, run_id=f"r{n}")
    assert await backend.queue.backlog() == (3, 0)
    claims = await backend.queue.claim("c", count=2, block=0)
    assert await backend.queue.backlog() == (1, 2)
    assert await process_claim(chain, backend, claims[0]) == "committed"  # acknowledged, 1 successor
    assert await backend.queue.backlog() == (2, 1)
    error = ErrorRecord(run_id="r1", item_id="root", node="first", attempt=1, error_type="E", message="m")
    await backend.retry_later(claims[1], delay=60, error=error)
    assert await backend.queue.backlog() == (3, 0)  # the delayed retry is waiting work too
