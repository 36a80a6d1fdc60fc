"""Connecting with ``RedisSettings``: a password, and TLS (``rediss://``).

Cases:
* a server started with ``--requirepass``: the settings' password connects; no password
  and a wrong one are refused at once (not retried); a password in the URL works, and the
  ``password`` field overrides it; ``FLOXIDE_REDIS_URL``/``FLOXIDE_REDIS_PASSWORD`` are read
  and the password never shows in the settings' repr; a worker process given the password in its
  ``--redis`` URL runs a workflow to completion;
* the client's options: the socket timeout exceeds the longest blocking read, ``rediss://``
  uses a TLS connection with the CA file, ``tls_insecure`` skips verification; a client
  outlives a restart of the server (its dropped connection is re-opened);
* a real TLS server (``--tls-port``, a self-signed certificate made here with
  ``cryptography``): ``rediss://`` with the CA connects, ``tls_insecure`` connects, an
  unverified certificate is refused at once (not retried); a worker process reaches it
  with ``FLOXIDE_REDIS_TLS_CA_FILE`` and completes a run. (Skipped, even in CI, if this
  ``redis-server`` was built without TLS: a TLS server is optional.)
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis
from redis.asyncio.connection import SSLConnection
from redis.exceptions import AuthenticationError
from redis.exceptions import ConnectionError as RedisConnectionError

from floxide.distributed import DistributedOrchestrator
from floxide.redis import RedisBackend, RedisSettings
from tests.distributed import flows
from tests.redis.conftest import RedisServer, Workers
from tests.redis.tls import tls_redis_server

pytestmark = pytest.mark.timeout(60)

PASSWORD = "s3cret-pass"


@pytest.fixture
def password_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(
        tmp_path / "redis-auth", args=["--save", "", "--appendonly", "no"], password=PASSWORD
    )
    server.start()
    yield server
    server.stop()


async def ping(settings: RedisSettings) -> bool:
    client = settings.client()
    try:
        return bool(await client.ping())
    finally:
        await client.aclose()


async def run_fanout(client: Redis, count: int) -> dict[str, object]:
    backend = RedisBackend(client, "fanout", namespace="tests", context_type=flows.Tally)
    orchestrator = DistributedOrchestrator(flows.fanout, backend)
    run_id = await orchestrator.start_run(flows.Job(count=count))
    info = await orchestrator.wait_for_completion(run_id, timeout=30)
    assert info.output is not None
    return dict(info.output)


# -- password ----------------------------------------------------------------------------------


async def test_a_password_protected_server(
    password_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = password_server.url
    assert await ping(RedisSettings(url=url, password=PASSWORD))
    started = time.monotonic()
    with pytest.raises(AuthenticationError):
        await ping(RedisSettings(url=url))
    with pytest.raises(AuthenticationError):
        await ping(RedisSettings(url=url, password="wrong"))
    assert time.monotonic() - started < 1.0  # a refused login is not retried
    in_url = f"redis://:{PASSWORD}@127.0.0.1:{password_server.port}/0"
    assert await ping(RedisSettings(url=in_url))
    assert await ping(
        RedisSettings(url=f"redis://:wrong@127.0.0.1:{password_server.port}/0", password=PASSWORD)
    )

    monkeypatch.setenv("FLOXIDE_REDIS_URL", url)
    monkeypatch.setenv("FLOXIDE_REDIS_PASSWORD", PASSWORD)
    settings = RedisSettings()
    assert settings.url == url and PASSWORD not in repr(settings)
    assert await ping(settings)


async def test_a_worker_process_with_a_password(password_server: RedisServer, workers: Workers) -> None:
    url = f"redis://:{PASSWORD}@127.0.0.1:{password_server.port}/0"
    await workers.start("tests.distributed.flows:fanout", count=1, url=url)
    client = RedisSettings(url=url).client()
    try:
        assert await run_fanout(client, 3) == {"values": [0, 1, 2], "total": 3}
    finally:
        await client.aclose()
    assert all(PASSWORD not in worker.log_text() for worker in workers.started)
    assert PASSWORD not in workers.logs()


# -- client options ------------------------------------------------------------------------------


async def test_client_options() -> None:
    plain = RedisSettings(url="redis://example.invalid:6390/2", socket_timeout=3, connect_timeout=2).client(
        block=1.5
    )
    tls = RedisSettings(url="rediss://example.invalid:6390/0", tls_ca_file="/etc/ca.pem").client()
    insecure = RedisSettings(url="rediss://example.invalid:6390/0", tls_insecure=True).client()
    try:
        options = plain.connection_pool.connection_kwargs
        assert options["socket_timeout"] == 4.5 and options["socket_connect_timeout"] == 2
        assert options["db"] == 2 and plain.connection_pool.connection_class is not SSLConnection
        assert tls.connection_pool.connection_class is SSLConnection
        assert tls.connection_pool.connection_kwargs["ssl_ca_certs"] == "/etc/ca.pem"
        assert insecure.connection_pool.connection_kwargs["ssl_cert_reqs"] == "none"
    finally:
        for client in (plain, tls, insecure):
            await client.aclose()


async def test_more_callers_than_connections_wait_for_one(redis_url: str) -> None:
    """500 concurrent commands (an operator's run timers under load) through 5 connections: all
    succeed; redis-py's default pool fails those past its size with "Too many connections"."""
    client = RedisSettings(url=redis_url, max_connections=5).client()
    try:

        async def bump() -> None:
            await client.incr("callers")
            await asyncio.sleep(0)

        await asyncio.gather(*(bump() for _ in range(500)))
        assert await client.get("callers") == "500"
        pool = client.connection_pool
        assert len(pool._in_use_connections) + len(pool._available_connections) <= 5  # type: ignore[attr-defined]
    finally:
        await client.aclose()


async def test_a_client_outlives_a_server_restart(aof_redis: RedisServer) -> None:
    client = RedisSettings(url=aof_redis.url).client()
    try:
        await client.set("kept", "1")
        await asyncio.to_thread(aof_redis.stop)

        async def start_later() -> None:
            await asyncio.sleep(0.3)
            await asyncio.to_thread(aof_redis.start)

        restarting = asyncio.ensure_future(start_later())
        try:  # sent while the server is down: the connection is re-opened, the command re-sent
            assert await client.get("kept") == "1"
        finally:
            await restarting
        options = client.connection_pool.connection_kwargs
        assert options["retry"].get_retries() == 4 and not options["retry_on_timeout"]
    finally:
        await client.aclose()


# -- a real TLS server ---------------------------------------------------------------------------------


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[RedisServer, Path]]:
    with tls_redis_server(tmp_path) as started:
        yield started


async def test_rediss_urls_against_a_tls_server(tls_server: tuple[RedisServer, Path]) -> None:
    server, cert = tls_server
    url = f"rediss://127.0.0.1:{server.port}/0"
    assert await ping(RedisSettings(url=url, tls_ca_file=str(cert)))
    assert await ping(RedisSettings(url=f"rediss://localhost:{server.port}/0", tls_ca_file=str(cert)))
    assert await ping(RedisSettings(url=url, tls_insecure=True))
    started = time.monotonic()
    with pytest.raises(RedisConnectionError, match="certificate verify failed"):
        await ping(RedisSettings(url=url, connect_timeout=2))
    assert time.monotonic() - started < 1.0  # an untrusted certificate is not retried


async def test_a_worker_process_over_tls(tls_server: tuple[RedisServer, Path], workers: Workers) -> None:
    server, cert = tls_server
    settings = RedisSettings(url=f"rediss://127.0.0.1:{server.port}/0", tls_ca_file=str(cert))
    await workers.start(
        "tests.distributed.flows:fanout",
        count=1,
        url=settings.url,
        env={"FLOXIDE_REDIS_TLS_CA_FILE": str(cert)},
        client=settings.client,
    )
    client = settings.client()
    try:
        assert await run_fanout(client, 4) == {"values": [0, 1, 2, 3], "total": 4}
    finally:
        await client.aclose()
