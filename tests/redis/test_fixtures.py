"""The tier's own fixtures: private servers, and never a silent skip in CI.

Cases:
* without ``redis-server`` a test is skipped locally, and fails when ``CI=true``;
* free ports are never Redis's default 6379;
* the session server listens on 127.0.0.1 only, without persistence, and is flushed per test;
* the AOF server fsyncs every write and keeps its data (and its port) across a restart.
"""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis

import tests.redis.conftest as harness
from tests.redis.conftest import RedisServer

pytestmark = pytest.mark.timeout(30)


def test_no_redis_server_skips_locally_but_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(harness, "REDIS_SERVER", None)
    monkeypatch.setattr(harness, "IN_CI", False)
    with pytest.raises(pytest.skip.Exception):
        harness.require_redis_server()
    monkeypatch.setattr(harness, "IN_CI", True)
    with pytest.raises(pytest.fail.Exception, match="CI=true"):
        harness.require_redis_server()


def test_free_ports_are_never_the_default() -> None:
    ports = {harness.free_port() for _ in range(50)}
    assert 6379 not in ports and all(1024 < p < 65536 for p in ports)


async def test_the_session_server_is_private_and_flushed(redis: Redis, redis_server: RedisServer) -> None:
    config = await redis.config_get("*")
    assert (config["bind"], config["save"], config["appendonly"]) == ("127.0.0.1", "", "no")
    assert int(config["port"]) == redis_server.port != 6379
    assert await redis.dbsize() == 0
    await redis.set("left-over", "1")  # the next test that takes ``redis`` finds it gone


async def test_the_aof_server_keeps_its_data_across_a_restart(aof_redis: RedisServer) -> None:
    client = Redis.from_url(aof_redis.url, decode_responses=True)
    try:
        config = await client.config_get("append*")
        assert (config["appendonly"], config["appendfsync"]) == ("yes", "always")
        await client.set("kept", "yes")
        port = aof_redis.port
        await client.aclose()
        await asyncio.to_thread(aof_redis.restart)
        client = Redis.from_url(aof_redis.url, decode_responses=True)
        assert aof_redis.port == port and await client.get("kept") == "yes"
    finally:
        await client.aclose()
