"""The Redis tier on three topologies: one server, a 3-primary Redis Cluster, and Sentinel.

Cases:

* every key of a workflow hashes to one cluster slot, and workflows of several namespaces
  spread over the cluster's primaries;
* URLs and settings give the right topology; bad ones are refused saying what is wrong;
* on each topology (``deployment``: ``standalone``, ``cluster``, ``sentinel``), real worker
  processes serve six workflows of two namespaces at once: a fan-out with a join and a sum
  merge (one of its two workers SIGKILLed mid-run: every item still counted exactly once), a
  custom merge under contention (compare-and-set), retries through the delayed queue, and three
  examples compared with local runs; a run paused, resumed and cancelled (its running
  steps interrupted); ``floxide status`` reads a run through the same URL, and the operator's
  store seeds, locates and deletes a run;
* ``wait_replicas``: each commit is followed by ``WAIT`` on the primary that holds its keys;
  with too few replicas (the cluster has none) the WAIT times out and the commits stand;
* Sentinel failover (:func:`test_sentinel_failover_mid_run`): SIGKILL of the primary in the
  middle of a run, with and without ``wait_replicas``; the run completes with every item
  counted once, and the test reports what the failover cost (items done again, acknowledged
  commits lost). The figures in docs/operations.md come from it (``pytest -s`` prints them).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib
import inspect
import json
import re
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, Protocol

import pytest
from redis.crc import key_slot

from floxide import Workflow
from floxide.distributed import DistributedOrchestrator
from floxide.distributed.models import RunStatus
from floxide.redis import RedisBackend, RedisSettings
from floxide.redis.keys import KeySpace
from tests.distributed import flows
from tests.distributed.flows import read_marks
from tests.distributed.parity import assert_runs_like_local
from tests.redis.conftest import RedisServer, Workers
from tests.redis.topologies import ClusterServers, SentinelServers
from tests.worker.helpers import child_env, floxide

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

FANOUT = "tests.distributed.flows:fanout"
TALLY = "tests.distributed.flows:tally"
FRAGILE = "tests.distributed.flows:fragile"
EXAMPLES = ("orders", "nested", "batch")
"""Examples compared with local runs on each topology: routing with fallbacks and failures, a
sub-workflow (nested frames), a batch."""


class Deployment(Protocol):
    @property
    def url(self) -> str: ...

    def flushall(self) -> None: ...


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterServers]:
    """A 3-primary Redis Cluster on loopback for the session."""
    servers = ClusterServers(tmp_path_factory.mktemp("cluster"))
    try:
        servers.start()
        yield servers
    finally:
        servers.stop()


@pytest.fixture(scope="session")
def redis_sentinel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SentinelServers]:
    """A primary, a replica and three sentinels on loopback for the session (never failed over)."""
    servers = SentinelServers(tmp_path_factory.mktemp("sentinel"))
    try:
        servers.start()
        yield servers
    finally:
        servers.stop()


@pytest.fixture(params=["standalone", "cluster", "sentinel"])
def deployment(request: pytest.FixtureRequest) -> Deployment:
    """One topology, flushed for the test."""
    fixture = {"standalone": "redis_server", "cluster": "redis_cluster", "sentinel": "redis_sentinel"}
    servers: Deployment = request.getfixturevalue(fixture[request.param])
    servers.flushall()
    return servers


@pytest.fixture
async def clients() -> AsyncIterator[list[Any]]:
    """Clients a test made (closed after it)."""
    made: list[Any] = []
    yield made
    for client in made:
        await client.aclose()


def orchestrator(client: Any, workflow: Workflow[Any, Any], namespace: str) -> DistributedOrchestrator:
    backend = RedisBackend(client, workflow.name, namespace=namespace, context_type=workflow.context_type)
    return DistributedOrchestrator(workflow, backend)


async def eventually(check: Any, *, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.05)


# -- keys and settings ---------------------------------------------------------------------------


def _named_keys(keys: object) -> list[str]:
    """Every key an object of :mod:`floxide.redis.keys` names through a property."""
    found = []
    for name, attribute in inspect.getmembers(type(keys)):
        if isinstance(attribute, (property, functools.cached_property)):
            value = getattr(keys, name)
            if isinstance(value, str) and value.startswith("fx:"):
                found.append(value)
    return found


def test_the_keys_of_a_workflow_share_one_slot() -> None:
    slots = set()
    for namespace, workflow in [("a", "fanout"), ("a", "tally"), ("b", "fanout"), ("b", "orders")]:
        keys = KeySpace(namespace, workflow)
        run = keys.run("r-1")
        names = [
            *_named_keys(keys),
            *_named_keys(run),
            run.inbox(""),
            run.inbox("f1"),
            run.ctx_field("list", "x"),
        ]
        assert len(names) > 25
        assert len({key_slot(name.encode()) for name in names}) == 1, (namespace, workflow)
        slots.add(key_slot(names[0].encode()))
    assert len(slots) == 4  # (different workflows land on different slots)


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"url": "redis://h:6379/2"}, ("standalone", (), "", 2)),
        ({"url": "redis+cluster://a:7000,b"}, ("cluster", (("a", 7000), ("b", 6379)), "", 0)),
        ({"url": "rediss+sentinel://:pw@s1,s2:5000/mymaster/3"},
         ("sentinel", (("s1", 26379), ("s2", 5000)), "mymaster", 3)),
        ({"url": "redis://h:7000", "mode": "cluster"}, ("cluster", (("h", 7000),), "", 0)),
        ({"url": "redis://:pw@x/1", "mode": "sentinel", "sentinels": "s1:1,s2:2", "master_name": "m"},
         ("sentinel", (("s1", 1), ("s2", 2)), "m", 1)),
    ],
)  # fmt: skip
def test_urls_and_settings_give_the_topology(settings: dict[str, Any], expected: tuple[Any, ...]) -> None:
    top = RedisSettings(**settings).topology()
    assert (top.mode, top.hosts, top.master_name, top.db) == expected


def test_the_replica_wait_comes_from_the_settings_over_the_url() -> None:
    url = "redis+sentinel://s1/m/0?wait_replicas=1&wait_timeout_ms=250&sentinel_password=sp"
    top = RedisSettings(url=url).topology()
    assert (top.wait_replicas, top.wait_timeout_ms, top.sentinel_password) == (1, 250, "sp")
    assert RedisSettings(url=url, wait_replicas=2).topology().wait_replicas == 2
    assert RedisSettings(url="redis://h/0").topology().wait_replicas == 0


async def test_credentials_and_tls_reach_the_right_connections() -> None:
    sentinel = RedisSettings(url="redis+sentinel://u:pw@s1,s2:5/m/3?sentinel_password=sp").client()
    pool = sentinel.connection_pool
    primary = pool.connection_kwargs
    assert (primary["username"], primary["password"], primary["db"]) == ("u", "pw", 3)
    sentinels = [s.connection_pool.connection_kwargs for s in pool.sentinel_manager.sentinels]
    assert [(k["host"], k["port"], k["password"]) for k in sentinels] == [
        ("s1", 26379, "sp"),
        ("s2", 5, "sp"),
    ]
    await sentinel.aclose()
    cluster = RedisSettings(url="rediss+cluster://u:pw@n1:7000", password="over").client()
    options = cluster.get_connection_kwargs()
    assert (options["username"], options["password"]) == ("u", "over")  # the password setting wins
    assert options["connection_class"].__name__ == "SSLConnection"
    await cluster.aclose()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (
            "redis+sentinel://s1:26379",
            "a Sentinel URL names the primary: redis+sentinel://host:26379/mymaster/0",
        ),
        ("redis+cluster://a/1", "a Redis Cluster has database 0 only (got 1)"),
        ("redis+cluster://a?timeout=1", "unknown option(s) timeout in a cluster URL's query"),
        ("redis+cluster://a:99999", "bad host:port 'a:99999'"),
        ("redis://h/0?wait_replicas=x", "wait_replicas in the URL's query is a whole number >= 0 (got 'x')"),
        ("http://h", "a Redis URL starts with redis://"),
    ],
)
def test_bad_topologies_say_what_is_wrong(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        RedisSettings(url=url).topology()


# -- the workflows on each topology --------------------------------------------------------------


async def test_workflows_of_two_namespaces_run_exactly_once(
    deployment: Deployment, workers: Workers, marks: Path, clients: list[Any], tmp_path: Path
) -> None:
    url = deployment.url

    def client() -> Any:
        made = RedisSettings(url=url).client()
        clients.append(made)
        return made

    if isinstance(deployment, ClusterServers):  # the workflows live on more than one primary
        owners = {deployment.slot_owner(KeySpace(ns, wf).tag) for ns, wf in [("topo-a", "fanout"),
                  ("topo-b", "tally"), ("topo-a", "fragile"), ("topo-b", "orders")]}  # fmt: skip
        assert len(owners) >= 2, owners
    async with asyncio.TaskGroup() as group:  # (all at once: start-up is the slow part)
        fanout_start = group.create_task(
            workers.start(FANOUT, count=2, concurrency=4, url=url, namespace="topo-a", client=client)
        )
        group.create_task(
            workers.start(TALLY, count=1, concurrency=8, url=url, namespace="topo-b", client=client)
        )
        group.create_task(workers.start(FRAGILE, count=1, url=url, namespace="topo-a", client=client))
        for name in EXAMPLES:
            target = f"examples.{name}:workflow"
            group.create_task(workers.start(target, count=1, url=url, namespace="topo-b", client=client))
    fanout_workers = fanout_start.result()
    redis = client()
    fanout = orchestrator(redis, flows.fanout, "topo-a")
    tally = orchestrator(redis, flows.tally, "topo-b")
    fragile = orchestrator(redis, flows.fragile, "topo-a")

    fan_run = await fanout.start_run(flows.Job(count=24, seconds=0.3))
    tally_run = await tally.start_run(40)
    fragile_run = await fragile.start_run(2)
    examples = [importlib.import_module(f"examples.{name}").workflow for name in EXAMPLES]
    checking_examples = asyncio.gather(
        *(
            assert_runs_like_local(orchestrator(redis, w, "topo-b"), flows.EXAMPLE_CASES[n], name=n)
            for n, w in zip(EXAMPLES, examples, strict=True)
        )
    )
    try:
        await _check_the_runs(
            fanout, tally, fragile, (fan_run, tally_run, fragile_run), workers, marks, fanout_workers
        )
        await checking_examples
    finally:
        checking_examples.cancel()
        with contextlib.suppress(BaseException):
            await checking_examples
    shown = floxide("status", fan_run, "--namespace", "topo-a", env=child_env(url))
    assert shown.returncode == 0, shown.stderr
    assert "Completed" in shown.stdout


async def _check_the_runs(
    fanout: DistributedOrchestrator,
    tally: DistributedOrchestrator,
    fragile: DistributedOrchestrator,
    runs: tuple[str, str, str],
    workers: Workers,
    marks: Path,
    fanout_workers: list[Any],
) -> None:
    fan_run, tally_run, fragile_run = runs
    await eventually(lambda: read_marks(marks, fragile_run, "attempt-1"), timeout=60, what="a first attempt")
    flows.switch_on(marks)  # fragile fails once, then succeeds at its retry
    # a SIGKILL in the middle of the fan-out: its items are reclaimed, each counted once
    await eventually(lambda: len(read_marks(marks, fan_run, "end")) >= 4, timeout=60, what="fan-out steps")
    workers.kill(fanout_workers[0])

    info = await fanout.wait_for_completion(fan_run, timeout=120)
    assert info.status is RunStatus.COMPLETED, info.error
    assert info.output == {"values": list(range(24)), "total": 24}
    assert (await fanout.context(fan_run)).total == 24
    assert len({m.item_id for m in read_marks(marks, fan_run, "end")}) == 24
    info = await tally.wait_for_completion(tally_run, timeout=60)
    assert info.status is RunStatus.COMPLETED, info.error
    assert info.output == {str(k): 8 for k in range(5)}
    info = await fragile.wait_for_completion(fragile_run, timeout=60)
    assert info.status is RunStatus.COMPLETED and info.output == "fixed 3", info.error
    assert (await fragile.metrics(fragile_run)).nodes["attempt"].retries >= 1

    # steering: pause (items parked), resume, cancel (running steps interrupted), lists, pending work
    slow = await fanout.start_run(flows.Job(count=4, seconds=30))
    await eventually(lambda: read_marks(marks, slow, "start"), timeout=30, what="a slow step")
    assert await fanout.pause(slow) is RunStatus.PAUSED
    assert await fanout.resume(slow) is RunStatus.RUNNING
    assert {i.run_id for i in await fanout.pending_work(slow)} == {slow}
    assert await fanout.cancel(slow) is RunStatus.CANCELLED
    info = await fanout.wait_for_completion(slow, timeout=30)
    assert info.status is RunStatus.CANCELLED
    await eventually(lambda: read_marks(marks, slow, "interrupted"), timeout=30, what="an interrupted step")
    assert {r.run_id for r in await fanout.list_runs()} == {fan_run, slow}
    assert fanout_workers[1].pid in {int(h.worker_id.split("-")[1]) for h in await fanout.liveness()}


@pytest.mark.parametrize("kind", ["cluster", "sentinel"])
async def test_the_cli_reaches_them_through_settings_too(
    kind: str, request: pytest.FixtureRequest, clients: list[Any]
) -> None:
    """``FLOXIDE_REDIS_MODE`` (with ``..._MASTER_NAME``) over a plain ``redis://`` URL, as a chart's
    environment would set them; a bad topology is a one-line usage error."""
    servers = request.getfixturevalue(f"redis_{kind}")
    servers.flushall()
    client = RedisSettings(url=servers.url).client()
    clients.append(client)
    await orchestrator(client, flows.fanout, "topo-cli").start_run(flows.Job(count=1), run_id="via-env")
    first = (servers.nodes[0] if kind == "cluster" else servers.sentinels[0]).port
    env = child_env(
        f"redis://127.0.0.1:{first}/0", FLOXIDE_REDIS_MODE=kind, FLOXIDE_REDIS_MASTER_NAME="mymaster"
    )
    shown = floxide("status", "via-env", "--namespace", "topo-cli", env=env)
    assert shown.returncode == 0, shown.stderr
    assert "Pending" in shown.stdout
    wrong = {
        "cluster": f"redis+cluster://127.0.0.1:{first}/9",
        "sentinel": f"redis+sentinel://127.0.0.1:{first}",
    }
    bad = floxide("status", "via-env", "--redis", wrong[kind], env=child_env(""))
    expected = {
        "cluster": "error: bad --redis: a Redis Cluster has database 0 only (got 9)",
        "sentinel": "error: bad --redis: a Sentinel URL names the primary: redis+sentinel://host:26379/mymaster/0",
    }[kind]
    assert bad.returncode == 2 and len(bad.stderr.splitlines()) == 1, bad.stderr
    assert bad.stderr.startswith(expected), bad.stderr


async def test_the_operator_seeds_and_finds_runs(deployment: Deployment) -> None:
    from floxide_operator.store import Redises

    redises = Redises(RedisSettings(url=deployment.url), ttl=60)
    try:
        store = redises.store(None, namespace="topo-op", workflow="fanout")
        await store.seed("op-run", start_node="spread", payload={"count": 1}, deadline_seconds=None)
        info, _ = await store.read("op-run")
        assert info is not None and info.status is RunStatus.PENDING
        found = await redises.locate(None, namespace="topo-op", run_id="op-run")
        assert found is not None and found.keys == KeySpace("topo-op", "fanout")
        assert await store.delete("op-run") > 0
    finally:
        await redises.close()


def wait_calls(servers: list[RedisServer]) -> int:
    total = 0
    for server in servers:
        with server.sync_client() as client:
            stats = client.info("commandstats")
        total += int(stats.get("cmdstat_wait", {}).get("calls", 0))
    return total


@pytest.mark.parametrize("kind", ["sentinel", "cluster"])
async def test_commits_wait_for_replicas(
    kind: str, request: pytest.FixtureRequest, workers: Workers, marks: Path, clients: list[Any]
) -> None:
    servers = request.getfixturevalue(f"redis_{kind}")
    servers.flushall()
    nodes = [servers.primary, servers.replica] if kind == "sentinel" else servers.nodes
    before = wait_calls(nodes)
    # the Sentinel set-up has one replica; the cluster none, so there every WAIT runs out
    timeout = 100 if kind == "cluster" else 5000  # (a loaded machine may take a while to replicate)
    url = f"{servers.url}?wait_replicas=1&wait_timeout_ms={timeout}"

    def client() -> Any:
        made = RedisSettings(url=servers.url).client()
        clients.append(made)
        return made

    [worker] = await workers.start(
        FANOUT, count=1, concurrency=4, url=url, namespace="topo-wait", client=client
    )
    fanout = orchestrator(client(), flows.fanout, "topo-wait")
    run_id = await fanout.start_run(flows.Job(count=6))
    info = await fanout.wait_for_completion(run_id, timeout=60)
    assert info.status is RunStatus.COMPLETED and info.output == {"values": list(range(6)), "total": 6}
    waits = wait_calls(nodes) - before
    assert waits >= 3, waits  # (group commit may commit several steps in one call)
    short = f"replica(s) within {timeout} ms" in worker.log_text()
    assert short is (kind == "cluster"), worker.log_text()[-2000:]


# -- Sentinel failover -----------------------------------------------------------------------------


def committed_ok(log: str) -> Counter[str]:
    """How often each item's commit was acknowledged as applied (``committed``), from DEBUG JSON logs."""
    counts: Counter[str] = Counter()
    for line in log.splitlines():
        if not line.startswith("{"):
            continue
        record = json.loads(line)
        if record.get("result") == "committed" and record.get("item"):
            counts[record["item"]] += 1
    return counts


@pytest.mark.parametrize(
    ("wait_replicas", "lagging"),
    [(0, False), (0, True), (1, True)],
    ids=["no-wait", "no-wait-lagging-replica", "wait-1-lagging-replica"],
)
async def test_sentinel_failover_mid_run(
    wait_replicas: int, lagging: bool, tmp_path: Path, workers: Workers, marks: Path, clients: list[Any]
) -> None:
    """A SIGKILL of the primary after a third of the items; with ``lagging``, the replica was cut
    off for the second before, so the primary acknowledged commits it never got.

    Without WAIT those commits are lost although the workers were told they succeeded; with
    ``wait_replicas=1`` (and a WAIT timeout longer than the lag) none of them was acknowledged,
    so none is lost: the steps are done again. Either way the run completes, every item
    counted once.
    """
    servers = SentinelServers(tmp_path / "sentinel")
    try:
        servers.start()
        lost, redone = await _failover_run(servers, wait_replicas, lagging, workers, marks, clients)
        assert redone >= lost  # every lost commit's step was done again
    finally:
        servers.resume_replica()
        workers.stop_all(timeout=5)
        servers.stop()
    if lagging and not wait_replicas:
        assert lost > 0  # asynchronous replication: the primary acknowledged what the replica never got
    if wait_replicas:
        assert lost == 0


async def _failover_run(
    servers: SentinelServers,
    wait_replicas: int,
    lagging: bool,
    workers: Workers,
    marks: Path,
    clients: list[Any],
) -> tuple[int, int]:
    def client() -> Any:
        made = RedisSettings(url=servers.url).client()
        clients.append(made)
        return made

    count = 120
    # (the WAIT timeout outlasts the lag; after the failover no replica is left, so each commit
    # waits it out: the run's end is slower with WAIT)
    url = f"{servers.url}?wait_replicas={wait_replicas}&wait_timeout_ms=4000"
    started = await workers.start(
        FANOUT, count=2, concurrency=8, url=url, namespace="failover", lease=3.0, client=client,
        env={"FLOXIDE_LOG_LEVEL": "DEBUG", "FLOXIDE_LOG_FORMAT": "json"},
    )  # fmt: skip
    fanout = orchestrator(client(), flows.fanout, "failover")
    run_id = await fanout.start_run(flows.Job(count=count, seconds=0.3))
    third = lambda: len(read_marks(marks, run_id, "end")) >= count // 3  # noqa: E731
    await eventually(third, timeout=60, what="a third of the items done")
    if lagging:
        servers.pause_replica()
        await asyncio.sleep(1.0)  # the workers go on committing, on the primary alone
    servers.kill_primary()
    servers.resume_replica()
    killed_at = time.monotonic()
    failover = servers.wait_failover()

    info = await fanout.wait_for_completion(run_id, timeout=150)
    took = time.monotonic() - killed_at
    assert info.status is RunStatus.COMPLETED, info.error
    assert info.output == {"values": list(range(count)), "total": count}
    assert (await fanout.context(run_id)).total == count  # each item counted once in the surviving data
    ends = Counter(m.item_id for m in read_marks(marks, run_id, "end"))
    assert len(ends) == count
    redone = sum(1 for n in ends.values() if n > 1)
    oks: Counter[str] = Counter()
    for worker in started:
        oks += committed_ok(worker.log_text())
    lost = sum(1 for n in oks.values() if n > 1)  # acknowledged as committed, yet committed again
    print(
        f"\nSentinel failover, wait_replicas={wait_replicas}, lagging replica {lagging}: {count} items, "
        f"primary SIGKILLed after "
        f"{count // 3}+ done; failover {failover:.1f}s, run finished {took:.1f}s after the kill; "
        f"items done again {redone}, acknowledged commits lost {lost}"
    )
    return lost, redone


async def test_node_limits_and_priorities_on_a_cluster(
    redis_cluster: ClusterServers, workers: Workers, marks: Path, clients: list[Any]
) -> None:
    """Node limits and run priorities on the Redis Cluster (their scripts touch several keys, all
    under the workflow's hash tag): a low and a high run of a limited node complete, the limit of
    3 at once held across two workers, the priorities recorded."""
    from tests.redis import limit_flows

    redis_cluster.flushall()
    url = redis_cluster.url

    def client() -> Any:
        made = RedisSettings(url=url).client()
        clients.append(made)
        return made

    target = "tests.redis.limit_flows:limited"
    await workers.start(target, count=2, concurrency=4, url=url, namespace="topo-l", client=client)
    limited = orchestrator(client(), limit_flows.limited, "topo-l")
    low = await limited.start_run(limit_flows.Batch(count=12, hold=0.1), priority="low")
    high = await limited.start_run(limit_flows.Batch(count=6, hold=0.1), priority="high")
    deadline = time.monotonic() + 60
    while not all([(await limited.status(run)).finished for run in (low, high)]):
        assert time.monotonic() < deadline, "the runs did not finish"
        await asyncio.sleep(0.1)
    assert {await limited.status(low), await limited.status(high)} == {RunStatus.COMPLETED}
    assert limit_flows.peak(limit_flows.read_probes(marks, "call")) == {"all": 3}
    assert [(await limited.run(run)).priority for run in (low, high)] == ["low", "high"]
    throttled = sum([(await limited.metrics(run)).nodes["call"].throttled for run in (low, high)])
    assert throttled > 0
