"""The run index: finding a run's workflow by its id, and keeping the index bounded.

Cases:
* ``start_run`` records ``namespace/run -> workflow``; ``locate`` answers from it;
* a run missing from the index is found by probing the namespace's workflows, and the
  index is repaired; two namespaces never see each other's runs;
* ``prune`` drops a workflow's entries whose run has expired, and only those.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from examples.branching import workflow as branching
from examples.countdown import workflow as countdown
from floxide.distributed import start_run
from floxide.errors import NotStarted
from floxide.redis import RedisBackend
from floxide.redis.index import RunIndex
from floxide.redis.keys import NamespaceKeys

pytestmark = pytest.mark.redis

INDEX_A = NamespaceKeys("idx-a").run_index
INDEX_P = NamespaceKeys("idx-p").run_index


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url, decode_responses=True)
    await client.delete(INDEX_A, INDEX_P)
    yield client
    await client.aclose()


async def test_locate_and_repair(client: Redis) -> None:
    ours = RedisBackend(client, "countdown", namespace="idx-a")
    theirs = RedisBackend(client, "countdown", namespace="idx-b")
    await start_run(countdown, ours, {"steps": 1}, run_id="r1")  # type: ignore[arg-type]
    assert await client.hget(INDEX_A, "r1") == "countdown"
    index = RunIndex(client, "idx-a")
    assert await index.locate("r1") == "countdown"
    await client.hdel(INDEX_A, "r1")
    assert await index.locate("r1") == "countdown"
    assert await client.hget(INDEX_A, "r1") == "countdown"
    with pytest.raises(NotStarted, match="run 'r1' does not exist in namespace 'idx-b'"):
        await RunIndex(client, "idx-b").locate("r1")
    assert theirs.keys.namespace == "idx-b"


async def test_prune_drops_only_expired_runs_of_its_workflow(client: Redis) -> None:
    count = RedisBackend(client, "countdown", namespace="idx-p")
    branch = RedisBackend(client, "branching", namespace="idx-p")
    for run_id in ("a", "b", "c"):
        await start_run(countdown, count, {"steps": 1}, run_id=run_id)  # type: ignore[arg-type]
    await start_run(branching, branch, 5, run_id="x")  # type: ignore[arg-type]
    await client.delete(count.keys.run("a").info, count.keys.run("c").info)  # expired
    await client.delete(branch.keys.run("x").info)  # expired too, but another workflow's
    index = RunIndex(client, "idx-p")
    removed = 0
    for _ in range(5):  # HSCAN may need a few calls
        removed += await index.prune("countdown")
    assert removed == 2
    assert sorted(await client.hkeys(INDEX_P)) == ["b", "x"]
    with pytest.raises(NotStarted):
        await index.locate("x")
    assert await client.hkeys(INDEX_P) == ["b"]
