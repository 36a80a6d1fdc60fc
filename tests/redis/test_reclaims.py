"""Items reclaimed after a crash are counted: in the run's metrics, its errors, the worker's
Prometheus metrics and ``floxide status``; items a draining worker handed back are not.

Before, an item reclaimed from a dead worker (``XAUTOCLAIM`` once its lease expired) showed
nowhere: ``retries`` stayed 0, so a crash loop was invisible.

Cases (on Redis and in memory unless said otherwise):
* an item whose worker went silent is counted when reclaimed: the claim says so (and by whom
  it was lost), its node's ``reclaimed`` metric and the run's go up, and an error says it was
  reclaimed from that worker after its lease expired; committing it later counts nothing
  more; a second crash counts again;
* an item handed back (released) by a draining worker is no crash: not counted, no error, its
  delivery count unchanged; if the worker that took it over then dies, that one counts;
* the fence: the reclaim of an item whose run is Cancelled or deleted writes nothing;
* hand-backs do not count towards ``max_deliveries`` (Redis): only crashes dead-letter an item;
* a worker counts the crash reclaims it makes in ``floxide_reclaimed_total{workflow,node}``
  (not hand-backs), and ``floxide status`` shows a ``reclaimed`` count per node and in all;
* with real worker processes: a worker SIGKILLed mid-step leaves its items to be reclaimed,
  each counted once with an error naming the dead worker, in the metrics and in
  ``floxide status --json``; a worker SIGTERMed mid-step (its step cut at the drain deadline,
  released) leaves nothing counted.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from floxide_worker.metrics import PrometheusHooks
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis
from rich.console import Console

from floxide.cli_views import status_data, status_view
from floxide.distributed import Backend, DistributedWorker, RunStatus, process_claim, start_run
from floxide.redis import RedisBackend
from floxide.run_view import read_run_view
from tests.distributed import flows
from tests.distributed.flows import Mark, read_marks
from tests.redis.conftest import NAMESPACE, ROOT, BackendFactory, Workers
from tests.redis.test_faults import FANOUT, eventually, orchestrator_for
from tests.redis.test_fencing import delete_run, keys_of
from tests.redis.test_queue import chain

pytestmark = pytest.mark.timeout(60)


async def crashed(backend: Backend, run_id: str, worker: str, *, lease: float = 0.1) -> None:
    """``worker`` claims the run's next item and dies; its lease runs out."""
    [claim] = await backend.queue.claim(worker, count=1, block=0)
    assert claim.item.run_id == run_id
    await asyncio.sleep(lease + 0.05)


async def test_an_item_lost_in_a_crash_is_counted(make_backend: BackendFactory) -> None:
    backend = make_backend("chain")
    await start_run(chain, backend, 1, run_id="r")
    await crashed(backend, "r", "dead-worker")
    [claim] = await backend.queue.reclaim("alive", min_idle=0.1, count=5)
    assert (claim.reclaimed, claim.lost_by, claim.deliveries) == (True, "dead-worker", 2)

    metrics = await backend.metrics.get("r")
    assert (metrics.nodes["first"].reclaimed, metrics.reclaimed, metrics.retries) == (1, 1, 0)
    [error] = await backend.errors.list("r")
    assert (error.item_id, error.node, error.attempt, error.error_type, error.permanent) == (
        "root", "first", 1, "LeaseExpired", False,
    )  # fmt: skip
    assert error.message.startswith("reclaimed from silent worker 'dead-worker' after its lease expired")

    await asyncio.sleep(0.15)  # "alive" dies too
    [again] = await backend.queue.reclaim("third", min_idle=0.1, count=5)
    assert (again.reclaimed, again.lost_by, again.deliveries) == (True, "alive", 3)
    assert await process_claim(chain, backend, again) == "committed"
    metrics = await backend.metrics.get("r")
    assert (metrics.nodes["first"].reclaimed, metrics.nodes["first"].completed, metrics.reclaimed) == (
        2,
        1,
        2,
    )
    assert [e.message.split("'")[1] for e in await backend.errors.list("r")] == ["dead-worker", "alive"]


async def test_a_handed_back_item_is_no_crash(make_backend: BackendFactory) -> None:
    backend = make_backend("chain")
    await start_run(chain, backend, 1, run_id="r")
    [claim] = await backend.queue.claim("draining", count=1, block=0)
    await backend.queue.release("draining", [claim])
    [taken] = await backend.queue.reclaim("other", min_idle=30, count=5)
    assert (taken.delivery, taken.reclaimed, taken.lost_by, taken.deliveries) == (
        claim.delivery,
        False,
        None,
        1,
    )
    assert (await backend.metrics.get("r")).reclaimed == 0
    assert await backend.errors.list("r") == []

    await asyncio.sleep(0.15)  # "other" dies holding it: that is a crash
    [lost] = await backend.queue.reclaim("third", min_idle=0.1, count=5)
    assert (lost.reclaimed, lost.lost_by, lost.deliveries) == (True, "other", 2)
    assert (await backend.metrics.get("r")).nodes["first"].reclaimed == 1
    assert len(await backend.errors.list("r")) == 1


@pytest.mark.parametrize("fate", ["cancelled", "deleted"])
async def test_reclaims_of_fenced_runs_write_nothing(make_backend: BackendFactory, fate: str) -> None:
    backend = make_backend("chain")
    await start_run(chain, backend, 1, run_id="r")
    await crashed(backend, "r", "dead-worker")
    if fate == "cancelled":
        assert await backend.set_status("r", RunStatus.CANCELLED) is RunStatus.CANCELLED
    else:
        await delete_run(backend, "r")
    [claim] = await backend.queue.reclaim("alive", min_idle=0.1, count=5)
    assert claim.reclaimed  # a crash all the same, but its run takes nothing
    if fate == "cancelled":
        assert (await backend.metrics.get("r")).reclaimed == 0
        assert await backend.errors.list("r") == []
    elif isinstance(backend, RedisBackend):
        assert await keys_of(backend, "r") == {}
    else:
        assert "r" not in backend._runs  # type: ignore[attr-defined]
    assert await process_claim(chain, backend, claim) == "dropped"


async def test_hand_backs_do_not_count_towards_dead_lettering(redis: Redis) -> None:
    backend = RedisBackend(redis, "chain", namespace=NAMESPACE, max_deliveries=2)
    await start_run(chain, backend, 1, run_id="r")
    [claim] = await backend.queue.claim("w0", count=1, block=0)
    for n in range(1, 5):  # four rolling restarts: each worker hands the item back as it drains
        await backend.queue.release(f"w{n - 1}", [claim])
        [claim] = await backend.queue.reclaim(f"w{n}", min_idle=30, count=1)
        assert (claim.deliveries, claim.reclaimed) == (1, False)
    await asyncio.sleep(0.15)  # then two crashes: the third hand-out is one too many
    [claim] = await backend.queue.reclaim("w5", min_idle=0.1, count=1)
    assert claim.deliveries == 2
    await asyncio.sleep(0.15)
    assert await backend.queue.reclaim("w6", min_idle=0.1, count=1) == []
    info = await backend.runs.get("r")
    assert info is not None and info.status is RunStatus.FAILED and "handed out 3 times" in (info.error or "")
    assert (await backend.metrics.get("r")).nodes["first"].reclaimed == 2


def prometheus(hooks: PrometheusHooks, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    found = {}
    for family in text_string_to_metric_families(hooks.exposition().decode()):
        for sample in family.samples:
            if sample.name == name:
                found[tuple(sorted(sample.labels.items()))] = sample.value
    return found


async def test_a_worker_counts_crash_reclaims_in_prometheus_and_status(make_backend: BackendFactory) -> None:
    backend = make_backend("chain")
    await start_run(chain, backend, 1, run_id="lost")
    await start_run(chain, backend, 1, run_id="handed")
    await crashed(backend, "lost", "dead-worker", lease=0)
    [back] = await backend.queue.claim("draining", count=1, block=0)
    await backend.queue.release("draining", [back])
    hooks = PrometheusHooks("chain")
    worker = DistributedWorker(
        chain, backend, worker_id="w", lease=0.2, heartbeat_interval=0.1, block=0.05, hooks=[hooks]
    )
    running = asyncio.create_task(worker.run())

    async def finished() -> bool:
        infos = [await backend.runs.get(run) for run in ("lost", "handed")]
        return all(i is not None and i.status is RunStatus.COMPLETED for i in infos)

    try:
        await eventually(finished, timeout=20, what="both runs to complete")
    finally:
        worker.stop()
        await asyncio.wait_for(running, 10)
    assert prometheus(hooks, "floxide_reclaimed_total") == {(("node", "first"), ("workflow", "chain")): 1}
    assert (await backend.metrics.get("handed")).reclaimed == 0

    view = await read_run_view(backend, "lost")
    assert view is not None
    data = status_data(view)
    assert data["reclaimed"] == 1
    assert (data["nodes"]["first"]["reclaimed"], data["nodes"]["second"]["reclaimed"]) == (1, 0)
    console = Console(record=True, width=200)
    console.print(status_view(view, width=200))
    rows = [line.split() for line in console.export_text().splitlines()]
    header, first = [row for row in rows if row[:1] in (["NODE"], ["first"])]
    assert header == [
        "NODE", "PROGRESS", "DONE", "RUNNING", "QUEUED", "FAILED", "RETRIED", "RECLAIMED", "STATE",
    ]  # fmt: skip
    assert first[0] == "first" and first[2:] == ["1/1", "0", "0", "0", "0", "1", "done"]


# -- real worker processes -------------------------------------------------------------------------


def floxide_status(url: str, run_id: str) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOXIDE_")}
    env.update(FLOXIDE_REDIS_URL=url, FLOXIDE_NAMESPACE=NAMESPACE)
    done = subprocess.run(
        [sys.executable, "-m", "floxide.cli", "status", run_id, "--json"],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


@pytest.mark.slow
@pytest.mark.timeout(90)
async def test_a_worker_killed_mid_step_shows_in_the_run(
    redis: Redis, redis_url: str, workers: Workers, marks: Path
) -> None:
    await workers.start(FANOUT, count=2, concurrency=2, lease=2.0)
    fanout = orchestrator_for(redis, flows.fanout)
    run_id = await fanout.start_run(flows.Job(count=4, seconds=2.5))

    async def all_started() -> list[Mark] | None:
        starts = read_marks(marks, run_id, "start")
        return starts if len({m.item_id for m in starts}) == 4 else None

    # killed once every item began, so no item is claimed by the victim but not yet marked
    victim = (await eventually(all_started, timeout=30, what="all four steps to start"))[0].pid
    workers.kill(workers.by_pid(victim))
    ended = {m.item_id for m in read_marks(marks, run_id, "end") if m.pid == victim}
    killed = {m.item_id for m in read_marks(marks, run_id, "start") if m.pid == victim} - ended
    info = await fanout.wait_for_completion(run_id, timeout=60)
    assert info.status is RunStatus.COMPLETED, info.error

    metrics = await fanout.metrics(run_id)
    assert (metrics.nodes["work"].reclaimed, metrics.reclaimed, metrics.retries) == (
        len(killed),
        len(killed),
        0,
    )
    errors = await fanout.errors(run_id)
    assert sorted(e.item_id for e in errors) == sorted(killed)
    for error in errors:
        assert error.error_type == "LeaseExpired" and f"-{victim}-" in error.message, error.message
        assert "after its lease expired" in error.message
    status = await asyncio.to_thread(floxide_status, redis_url, run_id)
    assert status["reclaimed"] == len(killed)
    assert status["nodes"]["work"]["reclaimed"] == len(killed)  # type: ignore[index]


@pytest.mark.slow
@pytest.mark.timeout(90)
async def test_a_worker_stopped_mid_step_counts_no_crash(redis: Redis, workers: Workers, marks: Path) -> None:
    [first] = await workers.start(FANOUT, count=1, concurrency=1, lease=2.0, drain=0.5)
    fanout = orchestrator_for(redis, flows.fanout)
    run_id = await fanout.start_run(flows.Job(count=1, seconds=3.0))

    async def running() -> list[Mark]:
        return read_marks(marks, run_id, "start")

    await eventually(running, timeout=30, what="the step to start")
    assert await asyncio.to_thread(workers.terminate, first, timeout=15) == 0
    assert [m.event for m in read_marks(marks, run_id)] == ["start", "interrupted"]  # cut and released
    started = time.monotonic()
    await workers.start(FANOUT, count=1, concurrency=1, lease=2.0)
    info = await fanout.wait_for_completion(run_id, timeout=60)
    assert info.status is RunStatus.COMPLETED, info.error
    assert time.monotonic() - started < 20
    assert (await fanout.metrics(run_id)).reclaimed == 0
    assert await fanout.errors(run_id) == []
