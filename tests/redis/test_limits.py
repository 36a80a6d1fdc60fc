"""Node limits across real worker processes on a real redis-server.

Limited nodes of :mod:`tests.redis.limit_flows` log the start and end of each step; the peak
is rebuilt from those lines, counted from inside the node code.

Cases:
* a concurrency limit of 3 over 4 workers of 4 steps each (16 could run): never more than 3
  at once, all 40 jobs complete, items waited as ``throttled`` (no failure, no retry), and
  ``limits.usage()`` shows the limit, its granted steps and no slot left in use;
* a worker SIGKILLed while holding slots: its slots come back with its lease, the run
  completes, and never more than the limit ran at once (its cut steps end at the kill);
* a keyed limit (2 per customer, 3 customers): at most 2 at once per customer, and more
  than 2 at once overall (keys do not share slots); a key unused for a day is forgotten;
* a rate limit of 10/s with bursts of 3: in any window of 1 s at most 3 + 10 starts; the
  throttled items are no failures, and the unlimited sibling node finishes first;
* in memory (in-process workers on one InMemoryBackend) the same limits hold;
* the CLI: ``submit --priority high --wait``, then ``status --json`` shows the priority and the
  run's throttled items, ``limits --json`` the limit's state; a bad ``--priority`` exits 2.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from floxide import Workflow
from floxide.distributed import DistributedOrchestrator, InMemoryBackend, RunStatus
from floxide.redis import RedisBackend
from tests.distributed.inprocess import running
from tests.redis import limit_flows
from tests.redis.conftest import NAMESPACE, ROOT, RedisServer, Workers
from tests.redis.limit_flows import Batch, busiest_window, peak, read_probes

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


def orchestrator_for(redis: Redis, workflow: Workflow[Any, Any]) -> DistributedOrchestrator:
    backend = RedisBackend(redis, workflow.name, namespace=NAMESPACE, context_type=workflow.context_type)
    return DistributedOrchestrator(workflow, backend)


async def finished(orch: DistributedOrchestrator, run_id: str, *, timeout: float) -> RunStatus:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = await orch.status(run_id)
        if status.finished:
            return status
        await asyncio.sleep(0.1)
    raise AssertionError(f"run {run_id} did not finish within {timeout}s")


async def test_a_concurrency_limit_holds_across_many_workers(
    redis: Redis, workers: Workers, marks: Path
) -> None:
    await workers.start("tests.redis.limit_flows:limited", count=4, concurrency=4)
    orch = orchestrator_for(redis, limit_flows.limited)
    run_id = await orch.start_run(Batch(count=40, hold=0.15))
    assert await finished(orch, run_id, timeout=90) is RunStatus.COMPLETED
    probes = read_probes(marks, "call")
    assert len({p.n for p in probes if p.event == "end"}) == 40
    assert peak(probes) == {"all": 3}
    assert len({p.pid for p in probes}) > 1, "the steps ran on several workers"
    metrics = (await orch.metrics(run_id)).nodes["call"]
    assert metrics.completed == 40 and metrics.failed == 0 and metrics.retries == 0
    assert metrics.throttled > 0, "with 16 worker slots for 3 limit slots, items waited"
    assert not await orch.errors(run_id)
    usage = await orch.backend.limits.usage()
    [call] = [u for u in usage if u.ident == "call"]
    assert (call.kind, call.limit, call.in_use, call.granted) == ("concurrency", "3", 0, 40)
    assert call.throttled == metrics.throttled
    assert await orch.backend.limits.throttled() == 0


async def test_a_killed_worker_gives_its_slots_back_with_its_lease(
    redis: Redis, workers: Workers, marks: Path
) -> None:
    pool = await workers.start("tests.redis.limit_flows:limited", count=3, concurrency=3, lease=2.0)
    orch = orchestrator_for(redis, limit_flows.limited)
    run_id = await orch.start_run(Batch(count=12, hold=1.0))
    victim = None
    deadline = time.monotonic() + 30
    while victim is None and time.monotonic() < deadline:  # a worker running limited steps
        running_now = [p for p in read_probes(marks, "call") if p.event == "start"]
        ended = {(p.pid, p.n) for p in read_probes(marks, "call") if p.event == "end"}
        holders = {p.pid for p in running_now if (p.pid, p.n) not in ended}
        victim = next((w for w in pool if w.pid in holders), None)
        await asyncio.sleep(0.05)
    assert victim is not None
    workers.kill(victim)
    killed_at = time.time()
    assert await finished(orch, run_id, timeout=90) is RunStatus.COMPLETED
    probes = read_probes(marks, "call")
    assert peak(probes, closed_at={victim.pid: killed_at}) == {"all": 3}
    cut = [p for p in probes if p.pid == victim.pid and p.event == "start"]
    cut_ids = {p.n for p in cut} - {p.n for p in probes if p.pid == victim.pid and p.event == "end"}
    assert cut_ids, "the killed worker held slots"
    again = [p for p in probes if p.n in cut_ids and p.pid != victim.pid and p.event == "start"]
    assert again and min(p.at for p in again) >= killed_at, "its steps ran again elsewhere, after the kill"
    assert (await orch.metrics(run_id)).nodes["call"].completed == 12
    usage = {u.ident: u for u in await orch.backend.limits.usage()}
    assert usage["call"].in_use == 0


async def test_a_keyed_limit_holds_per_key(redis: Redis, workers: Workers, marks: Path) -> None:
    await workers.start("tests.redis.limit_flows:keyed", count=3, concurrency=4)
    orch = orchestrator_for(redis, limit_flows.keyed)
    run_id = await orch.start_run(Batch(count=36, hold=0.2, customers=3))
    assert await finished(orch, run_id, timeout=90) is RunStatus.COMPLETED
    probes = read_probes(marks, "per_customer")
    assert peak(probes) == {"c0": 2, "c1": 2, "c2": 2}
    overall = peak([p.__class__(p.event, p.at, "all", p.pid, p.n) for p in probes])
    assert overall["all"] > 2, "customers do not share their slots"
    usage = {u.ident for u in await orch.backend.limits.usage()}
    assert {"per_customer=c0", "per_customer=c1", "per_customer=c2"} <= usage
    keys = orch.backend.keys  # type: ignore[attr-defined]
    await redis.zadd(keys.node_limits, {"c:per_customer=c0": 1})  # unused for a day: forgotten
    assert "per_customer=c0" not in {u.ident for u in await orch.backend.limits.usage()}
    assert not [f for f in await redis.hkeys(keys.limit_stats) if f.startswith("c:per_customer=c0:")]


async def test_a_rate_limit_holds_and_throttled_items_block_nothing(
    redis: Redis, workers: Workers, marks: Path
) -> None:
    await workers.start("tests.redis.limit_flows:rated", count=3, concurrency=4)
    orch = orchestrator_for(redis, limit_flows.rated)
    run_id = await orch.start_run(Batch(count=40, hold=0.0))
    assert await finished(orch, run_id, timeout=90) is RunStatus.COMPLETED
    api = read_probes(marks, "api")
    starts = sorted(p.at for p in api if p.event == "start")
    assert len(starts) == 40
    for window in (0.5, 1.0, 2.0):
        assert busiest_window(api, window) <= 3 + 10 * window, window
    print(f"rate: busiest 1s {busiest_window(api, 1.0)} starts, 40 in {starts[-1] - starts[0]:.2f}s")
    assert starts[-1] - starts[0] >= (40 - 3) / 10 - 0.3, "40 starts at 10/s after a burst of 3"
    free = [p.at for p in read_probes(marks, "free") if p.event == "end"]
    assert len(free) == 40 and max(free) < starts[-1] - 1.0, "the unlimited node went on meanwhile"
    metrics = await orch.metrics(run_id)
    assert metrics.nodes["api"].throttled > 0
    assert metrics.failed == 0 and metrics.retries == 0 and not await orch.errors(run_id)


@pytest.mark.parametrize("flow", ["limited", "keyed", "rated"])
async def test_limits_hold_in_memory(flow: str, marks: Path) -> None:
    workflow = getattr(limit_flows, flow)
    backend = InMemoryBackend(workflow.name)
    orch = DistributedOrchestrator(workflow, backend)
    async with running(workflow, backend, count=3, concurrency=4):
        run_id = await orch.start_run(Batch(count=24, hold=0.05 if flow != "rated" else 0.0))
        assert await finished(orch, run_id, timeout=60) is RunStatus.COMPLETED
    if flow == "limited":
        assert peak(read_probes(marks, "call")) == {"all": 3}
    elif flow == "keyed":
        assert peak(read_probes(marks, "per_customer")) == {"c0": 2, "c1": 2, "c2": 2}
    else:
        assert busiest_window(read_probes(marks, "api"), 1.0) <= 13
    node = {"limited": "call", "keyed": "per_customer", "rated": "api"}[flow]
    assert (await orch.metrics(run_id)).nodes[node].throttled > 0
    assert (await orch.metrics(run_id)).failed == 0


def floxide(*args: str, url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FLOXIDE_REDIS_URL": url, "FLOXIDE_NAMESPACE": NAMESPACE}
    return subprocess.run(
        [sys.executable, "-m", "floxide.cli", *args],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip


async def test_the_cli_shows_limits_priority_and_throttled_items(
    redis: Redis, redis_server: RedisServer, workers: Workers, marks: Path
) -> None:
    await workers.start("tests.redis.limit_flows:limited", count=2, concurrency=4)
    target = "tests.redis.limit_flows:limited"
    submitted = floxide("submit", target, "-i", '{"count": 12, "hold": 0.1}', "--priority", "high",
                        "--wait", url=redis_server.url)  # fmt: skip
    assert submitted.returncode == 0, submitted.stderr
    run_id = submitted.stderr.split("submitted run ")[1].split()[0]
    status = json.loads(floxide("status", run_id, "--json", url=redis_server.url).stdout)
    assert status["priority"] == "high" and status["throttled"] > 0 and status["status"] == "Completed"
    shown = json.loads(floxide("limits", "limited", "-o", "json", url=redis_server.url).stdout)
    [call] = shown["limits"]
    expected = {"ident": "call", "kind": "concurrency", "limit": "3", "in_use": 0, "granted": 12}
    assert {k: call[k] for k in expected} == expected
    assert call["throttled"] == status["throttled"] and shown["throttled_now"] == 0
    bad = floxide("submit", target, "-i", '{"count": 1}', "--priority", "urgent", url=redis_server.url)
    assert bad.returncode == 2 and "--priority must be one of high, normal, low, not 'urgent'" in bad.stderr
