"""Run limits and idempotent submission on Redis, with real worker processes.

* at most N runs of a workflow are active at once (the peak of overlapping steps, measured
  from the steps' own marks, is N), the others wait Queued and start in submission order;
* a queued run shows as Queued with its place in line (``floxide status``, ``floxide runs``);
  cancelling it frees its place without ever starting it;
* removing the limit starts every queued run;
* the limit spans the priority classes, and a queued run starts in its class's stream;
* an idempotency key: concurrent submissions under one key start one run, and each returns
  its id; ``floxide submit --idempotency-key`` twice prints the same id.
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest
from redis.asyncio import Redis

from floxide.distributed import DistributedOrchestrator, RunStatus
from floxide.redis import RedisBackend
from floxide.redis.keys import KeySpace
from tests.redis import napflows
from tests.redis.conftest import NAMESPACE, Workers
from tests.worker.helpers import child_env, floxide, free_port, http_get

pytestmark = [pytest.mark.timeout(180)]

TARGET = "tests.redis.napflows:nap"


def orchestrator(redis: Redis) -> DistributedOrchestrator:
    return DistributedOrchestrator(napflows.nap, RedisBackend(redis, "nap", namespace=NAMESPACE))


async def wait_for(condition: object, timeout: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await condition():  # type: ignore[operator]
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def test_at_most_n_runs_are_active_and_queued_runs_start_in_order(
    redis: Redis, redis_url: str, workers: Workers, marks: Path
) -> None:
    nap = orchestrator(redis)
    await nap.backend.run_queue.set_limit(2)  # type: ignore[attr-defined]
    await workers.start(TARGET, count=2, concurrency=4)
    ids = [await nap.start_run(napflows.Nap(seconds=0.5), run_id=f"r{i:02d}") for i in range(8)]
    statuses = [(await nap.run(run_id)).status for run_id in ids]
    assert statuses[2:] == [RunStatus.QUEUED] * 6  # the first two hold the slots
    for run_id in ids:
        info = await nap.wait_for_completion(run_id, timeout=60)
        assert info.status is RunStatus.COMPLETED, info.error
    spans = napflows.intervals(marks, ids)
    assert len(spans) == 8
    assert napflows.peak(list(spans.values())) == 2  # the limit holds, and is used
    begins = [spans[run_id][0] for run_id in ids]
    assert all(begins[i] < begins[i + 2] for i in range(6)), begins  # in submission order
    state = await nap.backend.run_queue.state()  # type: ignore[attr-defined]
    assert (state.limit, state.queued) == (2, 0)


async def test_a_queued_run_shows_its_place_and_can_be_cancelled(
    redis: Redis, redis_url: str, workers: Workers, marks: Path
) -> None:
    nap = orchestrator(redis)
    env = child_env(redis_url, FLOXIDE_NAMESPACE=NAMESPACE)
    limited = floxide("run-limit", "nap", "1", "--json", env=env)
    assert limited.returncode == 0, limited.stderr
    assert json.loads(limited.stdout)["max_active_runs"] == 1
    await workers.start(TARGET, count=1, concurrency=4)
    first = await nap.start_run(napflows.Nap(seconds=120), run_id="long")  # holds the slot until cancelled
    second = await nap.start_run(napflows.Nap(seconds=0), run_id="second")
    third = await nap.start_run(napflows.Nap(seconds=0), run_id="third")
    shown = floxide("status", third, "--json", env=env)
    assert shown.returncode == 0, shown.stderr
    data = json.loads(shown.stdout)
    assert (data["status"], data["queue_position"], data["max_active_runs"]) == ("Queued", 2, 1)
    listed = json.loads(floxide("runs", "--status", "Queued", "--json", env=env).stdout)
    assert sorted(row["run_id"] for row in listed) == [second, third]
    await nap.cancel(second)
    await asyncio.sleep(1.0)
    assert (await nap.run(third)).status is RunStatus.QUEUED  # the slot is still taken
    await nap.cancel(first)
    info = await nap.wait_for_completion(third, timeout=30)
    assert info.status is RunStatus.COMPLETED  # the slot freed by the cancelled long run
    assert napflows.intervals(marks, [second]) == {}  # the cancelled run never ran
    assert (await nap.run(second)).status is RunStatus.CANCELLED


async def test_removing_the_limit_starts_every_queued_run(redis: Redis, workers: Workers) -> None:
    nap = orchestrator(redis)
    queue = nap.backend.run_queue  # type: ignore[attr-defined]
    await queue.set_limit(1)
    ids = [await nap.start_run(napflows.Nap(seconds=0), run_id=f"u{i}") for i in range(4)]
    assert [(await nap.run(r)).status for r in ids] == [RunStatus.PENDING] + [RunStatus.QUEUED] * 3
    await queue.set_limit(None)
    assert [(await nap.run(r)).status for r in ids] == [RunStatus.PENDING] * 4
    await workers.start(TARGET, count=1, concurrency=4)
    for run_id in ids:
        assert (await nap.wait_for_completion(run_id, timeout=30)).status is RunStatus.COMPLETED


async def test_concurrent_submissions_under_one_key_start_one_run(redis: Redis, redis_url: str) -> None:
    clients = [Redis.from_url(redis_url, decode_responses=True) for _ in range(10)]
    try:
        submitters = [orchestrator(client) for client in clients]
        ids = await asyncio.gather(
            *(s.start_run(napflows.Nap(label=f"try {n}"), idempotency_key="order-42") for n, s in
              enumerate(submitters))
        )  # fmt: skip
    finally:
        for client in clients:
            await client.aclose()
    assert len(set(ids)) == 1
    nap = orchestrator(redis)
    assert [info.run_id for info in await nap.list_runs()] == [ids[0]]
    again = await nap.start_run(napflows.Nap(), idempotency_key="order-42")
    assert again == ids[0]
    other = await nap.start_run(napflows.Nap(), idempotency_key="order-43")
    assert other != ids[0]
    ttl = await redis.ttl(nap.backend.keys.idempotency("order-42"))  # type: ignore[attr-defined]
    assert 0 < ttl <= 7 * 24 * 3600


async def test_submit_with_an_idempotency_key_prints_the_first_run(redis_url: str, redis: Redis) -> None:
    env = child_env(redis_url, FLOXIDE_NAMESPACE=NAMESPACE)
    args = ("submit", TARGET, "--input", '{"seconds": 0}', "--idempotency-key", "nightly-2026-12-03")
    first, second = floxide(*args, env=env), floxide(*args, env=env)
    assert first.returncode == second.returncode == 0, first.stderr + second.stderr
    assert first.stdout == second.stdout
    assert len(await orchestrator(redis).list_runs()) == 1
    bad = floxide("submit", TARGET, "-i", "{}", "--idempotency-key", "has space", env=env)
    assert bad.returncode != 0
    assert "idempotency key" in bad.stderr


async def test_the_limit_spans_priority_classes(redis: Redis, workers: Workers, marks: Path) -> None:
    nap = orchestrator(redis)
    await nap.backend.run_queue.set_limit(1)  # type: ignore[attr-defined]
    await workers.start(TARGET, count=1, concurrency=4)
    ids = [
        await nap.start_run(napflows.Nap(seconds=0.4), run_id=f"p{i}", priority=priority)
        for i, priority in enumerate(["normal", "high", "low", "high"])
    ]
    statuses = [(await nap.run(r)).status for r in ids]
    assert statuses[0] in (RunStatus.PENDING, RunStatus.RUNNING) and statuses[1:] == [RunStatus.QUEUED] * 3
    for run_id in ids:
        info = await nap.wait_for_completion(run_id, timeout=60)
        assert info.status is RunStatus.COMPLETED, info.error
    assert [(await nap.run(r)).priority for r in ids] == ["normal", "high", "low", "high"]
    high_stream = KeySpace(NAMESPACE, "nap", "high").stream  # its first item went to its class's stream
    assert await redis.hget(nap.backend.run_keys("p1").info, "first_stream") == high_stream  # type: ignore[attr-defined]
    spans = napflows.intervals(marks, ids)
    assert napflows.peak(list(spans.values())) == 1
    begins = [spans[run_id][0] for run_id in ids]
    assert begins == sorted(begins)  # admitted in submission order, whatever the class


async def test_workers_export_the_run_queue(redis: Redis, workers: Workers, redis_url: str) -> None:
    nap = orchestrator(redis)
    await nap.backend.run_queue.set_limit(1)  # type: ignore[attr-defined]
    port = free_port()
    command = workers.command(TARGET, url=redis_url, namespace=NAMESPACE, concurrency=2, lease=2.0)
    command[command.index("--http-port") + 1] = str(port)
    workers.spawn(command, {"FLOXIDE_WORKER_HEARTBEAT_SECONDS": "0.3"})
    ids = [await nap.start_run(napflows.Nap(seconds=30), run_id=f"m{i}") for i in range(3)]

    def gauges() -> dict[str, float]:
        try:
            _, text = http_get(port, "/metrics")
        except OSError:
            return {}
        found = re.findall(
            r'^(floxide_(?:queued_runs|limited_runs_active))\{workflow="nap"\} (\S+)$', text, re.M
        )
        return {name: float(value) for name, value in found}

    for _ in range(300):
        if gauges() == {"floxide_queued_runs": 2.0, "floxide_limited_runs_active": 1.0}:
            break
        await asyncio.sleep(0.1)
    assert gauges() == {"floxide_queued_runs": 2.0, "floxide_limited_runs_active": 1.0}
    for run_id in ids:
        await nap.cancel(run_id)
