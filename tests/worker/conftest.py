"""Fixtures of the worker-process tests: a private ``redis-server`` and real processes.

* ``redis_url`` (session): a private server on a free port (never 6379), bound to
  127.0.0.1, without persistence, in a temp dir; stopped at the end of the session.
* ``clean_env``: no ``FLOXIDE_*`` variable leaks in from the caller's environment.
* ``Proc`` / ``spawn``: a subprocess whose stdout and stderr go to files (no pipe to fill),
  stopped at the end of the test (SIGTERM, then SIGKILL); a failing test shows its output.
* ``floxide(...)``: runs the ``floxide`` command in a subprocess and returns the result.

Without ``redis-server``, the tests that need it are skipped locally but fail in CI.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis as sync_redis

from tests.worker.helpers import Proc, child_env, free_port, wait_until

IN_CI = os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    executable = shutil.which("redis-server")
    if executable is None:
        if IN_CI:
            pytest.fail("redis-server is not installed, but CI=true", pytrace=False)
        pytest.skip("redis-server is not installed")
    directory = tmp_path_factory.mktemp("redis")
    port = free_port()
    process = subprocess.Popen(
        [executable, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(directory), "--logfile", str(directory / "redis.log")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    client = sync_redis.Redis(port=port, socket_connect_timeout=1)
    try:
        wait_until(lambda: _pings(client), timeout=10, what="redis-server to start")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        client.close()
        process.terminate()
        process.wait(10)


def _pings(client: sync_redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except sync_redis.RedisError:
        return False


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[sync_redis.Redis]:
    """A synchronous client of the private server (decoded responses)."""
    client = sync_redis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No ``FLOXIDE_*`` setting of the caller's environment reaches the test."""
    for name in list(os.environ):
        if name.startswith("FLOXIDE_"):
            monkeypatch.delenv(name)


@pytest.fixture
def spawn(tmp_path: Path, redis_url: str, request: pytest.FixtureRequest) -> Iterator[Callable[..., Proc]]:
    """``spawn(*args, env=..., name=...)``: start ``python args...``; stopped after the test."""
    started: list[Proc] = []

    def start(*args: str, env: dict[str, str] | None = None, name: str = "proc") -> Proc:
        proc = Proc([sys.executable, *args], env=env or child_env(redis_url), directory=tmp_path,
                    name=f"{name}-{len(started)}")  # fmt: skip
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        for proc in started:
            sys.stderr.write(
                f"--- {' '.join(proc.args)} (exit {proc.popen.returncode})\n{proc.stderr()[-4000:]}\n"
            )


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call":
        item.rep_call = report  # type: ignore[attr-defined]
    return report
