"""Step logs: what nodes log through ``ctx.log`` (and print, opted in), kept per item.

Cases:
* local runs: ``collect_step_logs`` keeps each step's lines in memory with run, node, item
  and attempt; printed lines only with ``capture_prints`` (and then not on stdout); a line
  is cut at 4 KiB, a step keeps 1,000 lines and one saying the rest were dropped; without
  a sink nothing is kept and the node still runs;
* a real worker process (prints captured) writes them to the run's log stream in Redis,
  under the run's hash tag, expiring with the run; ``floxide logs RUN`` prints them as
  text, ``--node`` filters, ``-o json`` parses, ``--tail`` keeps the last lines;
* the stream is capped per run (``MAXLEN ~``);
* ``floxide logs RUN --follow`` prints lines as a running step logs them and ends by itself
  once the run has ended.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis as sync_redis
from redis.asyncio import Redis

from floxide.redis import RedisBackend
from floxide.redis.steplogs import StepLogs
from floxide.steplog import MAX_PER_STEP, LogEntry, capture_prints, collect_step_logs
from tests.worker.helpers import ROOT, Proc, child_env, floxide, wait_until, worker_args
from tests.worker.logflows import chatty

pytestmark = pytest.mark.timeout(180)

CHATTY = "tests.worker.logflows:chatty"
SLOW = "tests.worker.logflows:slow"
NAMESPACE = "steplogs"


# -- local runs ---------------------------------------------------------------------------------


async def test_local_runs_keep_step_logs_in_memory(capsys: pytest.CaptureFixture[str]) -> None:
    with collect_step_logs() as logs, capture_prints():
        assert await chatty.run(3) == 3
    entries = logs.entries()
    run_id = entries[0].run_id
    assert logs.entries(run_id) == entries and logs.entries("other") == []
    first = next(e for e in entries if e.message == "hello from 0")
    assert (first.node, first.attempt, first.level, first.source) == ("say", 1, "INFO", "log")
    item0 = [e for e in entries if e.item_id == first.item_id]
    assert len(item0) == MAX_PER_STEP + 1
    assert item0[-1].level == "WARNING" and "rest are dropped" in item0[-1].message
    long = next(e for e in item0 if e.message.startswith("xxx"))
    assert len(long.message.encode()) < 4200 and long.message.endswith("(5904 more bytes dropped)")
    warned = next(e for e in item0 if e.message.startswith("caught it"))
    assert warned.level == "WARNING" and "ValueError: bad value" in warned.message
    printed = sorted(e.message for e in entries if e.level == "PRINT")
    assert printed == ["printed 0", "printed 1", "printed 2"]
    assert "printed" not in capsys.readouterr().out  # they went to the step log
    assert [e.message for e in logs.entries(run_id, node="collect")] == ["collected 3"]

    with collect_step_logs() as plain:
        await chatty.run(1)
    assert not [e for e in plain.entries() if e.level == "PRINT"]
    assert "printed 0" in capsys.readouterr().out
    assert await chatty.run(2) == 1  # no sink: the nodes log to Python's logging only


async def test_the_stream_is_capped(redis_url: str) -> None:
    client = Redis.from_url(redis_url, decode_responses=True)
    try:
        backend = RedisBackend(client, "capped", namespace=NAMESPACE)
        store = StepLogs(backend, max_entries=100)
        entries = [LogEntry(run_id="r", item_id="i", node="n", message=f"m{i}") for i in range(2000)]
        for start in range(0, 2000, 500):
            await store.write(entries[start : start + 500])
        key = backend.run_keys("r").logs
        assert 100 <= await client.xlen(key) < 400  # MAXLEN ~ trims whole macro nodes
        assert 0 < await client.ttl(key) <= backend.ttl
        tail, _ = await store.tail("r", count=3)
        assert [e.message for e in tail] == ["m1997", "m1998", "m1999"]
    finally:
        await client.aclose()


# -- on Redis, from worker processes ------------------------------------------------------------


@pytest.fixture(scope="module")
def env(redis_url: str) -> dict[str, str]:
    return child_env(redis_url, FLOXIDE_NAMESPACE=NAMESPACE, FLOXIDE_QUEUE_RUN_TTL_SECONDS="600")


@pytest.fixture(scope="module")
def workers(env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Proc]]:
    directory = tmp_path_factory.mktemp("steplog-workers")
    started = [
        Proc([sys.executable, *worker_args(target, "--http-port", "0")],
             env={**env, "FLOXIDE_LOG_CAPTURE_PRINTS": "1"}, directory=directory, name=name)
        for name, target in (("chatty", CHATTY), ("slow", SLOW))
    ]  # fmt: skip
    yield started
    for proc in started:
        proc.stop()


def logs(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    result = floxide("logs", *args, env=env)
    assert result.returncode == 0, result.stderr
    return result


def test_worker_logs_go_to_the_run(
    env: dict[str, str], workers: list[Proc], redis_client: sync_redis.Redis
) -> None:
    done = floxide("submit", CHATTY, "--input", "3", "--run-id", "chat-1", "--wait", env=env)
    assert (done.returncode, done.stdout.strip()) == (0, "3"), done.stderr
    key = "fx:{wf:steplogs/chatty}:run:chat-1:logs"
    wait_until(lambda: redis_client.xlen(key) >= MAX_PER_STEP + 6, what="the step logs to be written")
    assert 0 < redis_client.ttl(key) <= 600  # expires with the run

    text = logs(env, "chat-1").stdout.splitlines()
    assert any(" INFO    say  " in line and line.endswith("hello from 1") for line in text)
    assert any(" PRINT   say  " in line and line.endswith("printed 2") for line in text)
    assert sum("#1  line " in line for line in text) == MAX_PER_STEP - 4
    assert text[-1].endswith("collected 3") and " collect  " in text[-1]
    assert "    ValueError: bad value" in text  # a traceback's lines, indented
    assert "printed" not in workers[0].stdout()

    only = logs(env, "chat-1", "--node", "collect").stdout.splitlines()
    assert len(only) == 1 and only[0].endswith("collected 3")
    records = [json.loads(line) for line in logs(env, "chat-1", "-o", "json").stdout.splitlines()]
    assert len(records) == MAX_PER_STEP + 1 + 2 * 2 + 1
    assert {r["node"] for r in records} == {"say", "collect"} and all(
        r["run_id"] == "chat-1" for r in records
    )
    assert {r["source"] for r in records} == {"log", "print"}
    last = [json.loads(line) for line in logs(env, "chat-1", "--tail", "2", "-o", "json").stdout.splitlines()]
    assert [r["message"] for r in last][-1] == "collected 3" and len(last) == 2

    unknown = floxide("logs", "nope", env=env)
    assert unknown.returncode == 2 and "run 'nope' does not exist" in unknown.stderr


def test_follow_prints_lines_as_they_come(env: dict[str, str], workers: list[Proc], tmp_path: Path) -> None:
    gate = tmp_path / "gate"  # the step logs "tick 0", then waits for this file
    submitted = floxide("submit", SLOW, "--input", json.dumps(str(gate)), "--run-id", "slow-1", env=env)
    assert submitted.returncode == 0, submitted.stderr
    with subprocess.Popen(
        [sys.executable, "-m", "floxide.cli", "logs", "slow-1", "--follow"],
        env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    ) as follower:  # fmt: skip
        assert follower.stdout is not None and follower.stderr is not None
        first = follower.stdout.readline()  # printed while the step still runs: the gate is shut
        gate.touch()
        rest = follower.stdout.readlines()  # the follower ends by itself once the run ended
        errors = follower.stderr.read()
        assert follower.wait(timeout=30) == 0, errors
    messages = [text.rstrip("\n").rsplit("  ", 1)[-1] for text in (first, *rest)]
    assert messages == [f"tick {i}" for i in range(5)]
