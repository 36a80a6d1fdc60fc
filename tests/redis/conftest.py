"""Fixtures of the Redis tier: private ``redis-server`` processes and real worker processes.

* ``redis_server`` (session): a private server on a free port (never 6379), bound to
  127.0.0.1, without persistence (``--save "" --appendonly no``), in a temp dir.
  ``redis_url`` flushes it before the test; ``redis`` is an asyncio client on it.
* ``aof_redis``: a server of the test's own with AOF on (``--appendonly yes --appendfsync
  always``) that the test can restart on the same port and dir (``aof_redis.restart()``).
* ``make_backend``: parametrized ``memory`` / ``redis``: a factory of backends, so the same
  store and queue tests check :class:`InMemoryBackend` and :class:`RedisBackend` alike.
* ``workers``: starts real worker processes (``python -m floxide_worker TARGET --redis URL
  --namespace NS --concurrency N --http-port 0 --lease S --drain-seconds D``) and stops them
  at the end (SIGTERM, then SIGKILL after a timeout). A failing test's report shows their logs.
* Without ``redis-server``, these tests are skipped locally but FAIL when ``CI=true``.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import redis as sync_redis
from redis.asyncio import Redis

from floxide.cli import load_workflow
from floxide.distributed import Backend, InMemoryBackend
from floxide.redis import RedisBackend
from floxide.redis.keys import KeySpace

ROOT = Path(__file__).resolve().parents[2]
REDIS_SERVER = shutil.which("redis-server")
IN_CI = os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")
NAMESPACE = "tests"
WORKER_MODULE = "floxide_worker"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.redis)


def require_redis_server() -> str:
    """The path of ``redis-server``; skips the test without it, or fails it in CI."""
    if REDIS_SERVER is None:
        if IN_CI:
            pytest.fail(
                "redis-server is not installed, but CI=true: the Redis tier must run in CI", pytrace=False
            )
        pytest.skip("redis-server is not installed (the Redis tier needs it)")
    return REDIS_SERVER


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (never Redis's default 6379)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port != 6379:
            return port


class RedisServer:
    """A private ``redis-server`` process in ``directory``; restartable on the same port."""

    def __init__(
        self,
        directory: Path,
        *,
        args: Sequence[str] = (),
        password: str | None = None,
        client_options: dict[str, Any] | None = None,
    ) -> None:
        self.executable = require_redis_server()
        self.directory = directory
        self.port = free_port()
        self.args = list(args)
        self.password = password
        self.client_options = client_options or {}
        self.process: subprocess.Popen[bytes] | None = None
        self.log = directory / "redis.log"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def command(self) -> list[str]:
        command = [
            self.executable, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory),
            "--logfile", str(self.log), "--daemonize", "no", *self.args,
        ]  # fmt: skip
        if self.password:
            command += ["--requirepass", self.password]
        return command

    def start(self, *, timeout: float = 10.0) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(self.command(), stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.process.returncode}:\n{self.log_text()}")
            try:
                with self.sync_client() as client:
                    if client.ping():
                        return
            except sync_redis.RedisError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not answer within {timeout}s:\n{self.log_text()}")
            time.sleep(0.02)

    def stop(self, *, timeout: float = 10.0) -> None:
        """Shut the server down (SIGTERM: it writes its AOF and exits), SIGKILL if it hangs."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def restart(self) -> None:
        """Stop, then start again on the same port and directory (its AOF is replayed)."""
        self.stop()
        self.start()

    def sync_client(self) -> sync_redis.Redis:
        return sync_redis.Redis(
            host="127.0.0.1",
            port=self.port,
            password=self.password,
            decode_responses=True,
            socket_timeout=5,
            **self.client_options,
        )

    def flushall(self) -> None:
        with self.sync_client() as client:
            client.flushall()

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else "(no log)"


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """The session's private redis-server, without persistence."""
    server = RedisServer(tmp_path_factory.mktemp("redis"), args=["--save", "", "--appendonly", "no"])
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The session server's URL, flushed for this test."""
    redis_server.flushall()
    return redis_server.url


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    """An asyncio client of the (flushed) session server."""
    client = Redis.from_url(redis_url, decode_responses=True)
    yield client
    await client.aclose()


@pytest.fixture
def aof_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A server of this test's own with AOF on (every write fsynced); restart it at will."""
    server = RedisServer(
        tmp_path / "redis-aof", args=["--save", "", "--appendonly", "yes", "--appendfsync", "always"]
    )
    server.start()
    yield server
    server.stop()


BackendFactory = Callable[..., Backend]


@pytest.fixture(params=["memory", "redis"])
async def make_backend(request: pytest.FixtureRequest) -> AsyncIterator[BackendFactory]:
    """``make_backend(workflow, context_type=..., **redis_options)``: one backend kind per param."""
    kind: str = request.param
    clients: list[Redis] = []
    url = request.getfixturevalue("redis_url") if kind == "redis" else ""

    def make(workflow: str = "wf", *, context_type: Any = None, **options: Any) -> Backend:
        if kind == "memory":
            return InMemoryBackend(workflow, context_type=context_type)
        client = Redis.from_url(url, decode_responses=True)
        clients.append(client)
        return RedisBackend(client, workflow, namespace=NAMESPACE, context_type=context_type, **options)

    make.kind = kind  # type: ignore[attr-defined]
    yield make
    for client in clients:
        await client.aclose()


# -- worker processes ----------------------------------------------------------------------------


class WorkerProcess:
    """One worker process and its log file."""

    def __init__(self, process: subprocess.Popen[bytes], log: Path, command: list[str]) -> None:
        self.process = process
        self.log = log
        self.command = command

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


class Workers:
    """Starts and stops real worker processes; see the module docstring."""

    def __init__(self, directory: Path, default_url: Callable[[], str], marks: Path) -> None:
        self.directory = directory
        self.default_url = default_url
        self.marks = marks
        self.started: list[WorkerProcess] = []
        self.focus: str | None = None
        """Only the logs of workers of this target are reported (a pool shared by tests)."""

    @staticmethod
    def command(
        target: str, *, url: str, namespace: str, concurrency: int, lease: float, drain: float = 5.0
    ) -> list[str]:
        """The worker command line: ``python -m floxide_worker`` (the same as ``floxide worker``)."""
        return [
            sys.executable, "-m", WORKER_MODULE, target, "--redis", url, "--namespace", namespace,
            "--concurrency", str(concurrency), "--http-port", "0", "--lease", f"{lease:g}",
            "--drain-seconds", f"{drain:g}",
        ]  # fmt: skip

    async def start(
        self,
        target: str,
        *,
        count: int = 2,
        concurrency: int = 4,
        lease: float = 2.0,
        drain: float = 5.0,
        url: str | None = None,
        namespace: str = NAMESPACE,
        ready: bool = True,
        timeout: float = 60.0,
        env: dict[str, str] | None = None,
        client: Callable[[], Redis] | None = None,
    ) -> list[WorkerProcess]:
        """Start ``count`` workers of ``target``; with ``ready``, wait for their heartbeats.

        ``env`` adds environment variables; ``client`` makes the client that watches for the
        heartbeats (default: one for ``url``).
        """
        url = url or self.default_url()
        command = self.command(
            target, url=url, namespace=namespace, concurrency=concurrency, lease=lease, drain=drain
        )
        new = [self.spawn(command, env) for _ in range(count)]
        if ready:
            name = load_workflow(target).name
            watcher = client() if client is not None else Redis.from_url(url, decode_responses=True)
            await self.wait_ready(KeySpace(namespace, name), watcher, [w.pid for w in new], timeout=timeout)
        return new

    def spawn(self, command: list[str], extra: dict[str, str] | None = None) -> WorkerProcess:
        """Start one process of ``command`` from the repository root, its output to a log file."""
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "FLOXIDE_TEST_MARKS": str(self.marks), **(extra or {})}
        env.pop("FLOXIDE_REDIS_URL", None)
        log = self.directory / f"worker-{len(self.started) + 1}.log"
        with open(log, "wb") as out:
            process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        worker = WorkerProcess(process, log, command)
        self.started.append(worker)
        return worker

    async def wait_ready(self, keys: KeySpace, client: Redis, pids: list[int], *, timeout: float) -> None:
        """Wait until every process of ``pids`` has a heartbeat (worker ids carry the pid).

        ``client`` is closed afterwards.
        """
        try:
            deadline = time.monotonic() + timeout
            while True:
                ids = await client.hkeys(keys.workers)
                missing = [pid for pid in pids if not any(f"-{pid}-" in worker_id for worker_id in ids)]
                if not missing:
                    return
                dead = [w for w in self.started if w.pid in missing and not w.alive()]
                if dead:
                    raise AssertionError(
                        f"worker exited with {dead[0].process.returncode}:\n{dead[0].log_text()}"
                    )
                if time.monotonic() > deadline:
                    raise AssertionError(
                        f"workers {missing} sent no heartbeat within {timeout}s:\n{self.logs()}"
                    )
                await asyncio.sleep(0.05)
        finally:
            await client.aclose()

    def start_shared(
        self, targets: Sequence[str], *, url: str, count: int = 2, concurrency: int = 4, lease: float = 2.0
    ) -> None:
        """Start ``count`` workers of each target, all at once, and wait for them (for module-scoped pools).

        Synchronous: it waits in an event loop of its own, outside any test's.
        """
        waits = []
        for target in targets:
            command = self.command(target, url=url, namespace=NAMESPACE, concurrency=concurrency, lease=lease)
            pids = [self.spawn(command).pid for _ in range(count)]
            waits.append((KeySpace(NAMESPACE, load_workflow(target).name), pids))

        async def ready() -> None:
            for keys, pids in waits:
                await self.wait_ready(keys, Redis.from_url(url, decode_responses=True), pids, timeout=150)

        asyncio.run(ready())

    def by_pid(self, pid: int) -> WorkerProcess:
        return next(w for w in self.started if w.pid == pid)

    def kill(self, worker: WorkerProcess) -> None:
        """SIGKILL: the worker dies at once, in the middle of whatever it does."""
        worker.process.kill()
        worker.process.wait(10)

    def terminate(self, worker: WorkerProcess, *, timeout: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout`` s; the exit status of a SIGTERM exit, else ``None``."""
        if worker.process.poll() is not None:
            return worker.process.returncode
        worker.process.send_signal(signal.SIGTERM)
        try:
            return worker.process.wait(timeout)
        except subprocess.TimeoutExpired:
            worker.process.kill()
            worker.process.wait()
            return None

    def stop_all(self, *, timeout: float = 10.0) -> None:
        for worker in self.started:
            if worker.alive():
                worker.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for worker in self.started:
            try:
                worker.process.wait(max(deadline - time.monotonic(), 0.01))
            except subprocess.TimeoutExpired:
                worker.process.kill()
                worker.process.wait()

    def logs(self) -> str:
        parts = []
        for n, worker in enumerate(self.started, start=1):
            if self.focus is not None and self.focus not in worker.command:
                continue
            status = "running" if worker.alive() else f"exited {worker.process.returncode}"
            command = re.sub(r"://[^@/]*@", "://***@", " ".join(worker.command[2:]))  # no passwords
            parts.append(f"--- worker {n} (pid {worker.pid}, {status}): {command}\n")
            parts.append(worker.log_text()[-6000:])
        return "".join(parts)


@pytest.fixture
def marks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The directory nodes of :mod:`tests.distributed.flows` write their marks to."""
    directory = tmp_path / "marks"
    directory.mkdir()
    monkeypatch.setenv("FLOXIDE_TEST_MARKS", str(directory))
    return directory


@pytest.fixture(scope="module")
def shared_workers(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workers]:
    """Worker processes for a whole module (start them with :meth:`Workers.start_shared`).

    The server is flushed once, before; the module's tests must not flush it (use
    ``shared_redis``), so each uses run ids of its own.
    """
    redis_server.flushall()
    pool = Workers(
        tmp_path_factory.mktemp("workers"), lambda: redis_server.url, tmp_path_factory.mktemp("marks")
    )
    yield pool
    pool.stop_all(timeout=3)  # idle by now: many processes draining at once only burn CPU


@pytest.fixture
async def shared_redis(redis_server: RedisServer) -> AsyncIterator[Redis]:
    """A client of the session server that does not flush it (for tests on ``shared_workers``)."""
    client = Redis.from_url(redis_server.url, decode_responses=True)
    yield client
    await client.aclose()


@pytest.fixture
def workers(
    request: pytest.FixtureRequest, redis_server: RedisServer, tmp_path: Path, marks: Path
) -> Iterator[Workers]:
    """Real worker processes; all stopped after the test (SIGTERM, then SIGKILL)."""
    directory = tmp_path / "workers"
    directory.mkdir()
    pool = Workers(directory, lambda: redis_server.url, marks)
    yield pool
    pool.stop_all()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[Any]:
    report = yield
    if report.failed:
        for pool in getattr(item, "funcargs", {}).values():
            if isinstance(pool, Workers) and pool.started:
                report.sections.append((f"worker logs ({report.when})", pool.logs()))
    return report
