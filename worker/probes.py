"""The worker's HTTP endpoints (aiohttp): ``/metrics``, ``/healthz`` and ``/readyz``.

* ``/healthz`` (liveness): the event loop answers (this handler runs on it) and the
  worker's supervised tasks are alive. Redis is not consulted: an outage of Redis must not
  make Kubernetes restart every worker.
* ``/readyz`` (readiness): Redis answered a PING within the last :attr:`Probes.ready_window`
  seconds, the workflow's graph is published, and the worker is not draining.
* ``/metrics``: the Prometheus text format.

Each answers ``200`` or ``503`` with a short plain-text reason. A port the server cannot
listen on (another worker on the same machine has it, say) is a :class:`ServeError`.
"""

from __future__ import annotations

import asyncio
import errno
import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

__all__ = ["Probes", "ServeError", "start_server"]


class ServeError(Exception):
    """The HTTP server cannot listen on ``host:port``; ``reason`` says why.

    ``port_refused``: the port is taken (or privileged), rather than the host unusable.
    """

    def __init__(self, host: str, port: int, reason: str, *, port_refused: bool = False) -> None:
        super().__init__(f"cannot listen on {host}:{port}: {reason}")
        self.host = host
        self.port = port
        self.reason = reason
        self.port_refused = port_refused


class Probes:
    """What the probes report; the worker process keeps it up to date."""

    def __init__(self, *, ready_window: float = 10.0) -> None:
        self.ready_window = ready_window
        self.started = False
        self.draining = False
        self.last_pong: float | None = None
        self.tasks: list[asyncio.Task[object]] = []

    def pong(self) -> None:
        """Redis answered a PING just now."""
        self.last_pong = time.monotonic()

    def alive(self) -> tuple[bool, str]:
        """Liveness: ``(ok, reason)``."""
        dead = [task.get_name() for task in self.tasks if task.done()]
        if dead and not self.draining:
            return False, f"task(s) ended: {', '.join(dead)}"
        return True, "ok"

    def ready(self) -> tuple[bool, str]:
        """Readiness: ``(ok, reason)``."""
        if self.draining:
            return False, "draining"
        if self.last_pong is None or time.monotonic() - self.last_pong > self.ready_window:
            return False, f"Redis has not answered for more than {self.ready_window:g}s"
        if not self.started:
            return False, "starting"
        return True, "ok"


def _probe(check: Callable[[], tuple[bool, str]]) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handler(request: web.Request) -> web.Response:
        ok, reason = check()
        return web.Response(status=200 if ok else 503, text=reason + "\n")

    return handler


async def start_server(
    probes: Probes, metrics: Callable[[], bytes], *, host: str, port: int
) -> web.AppRunner:
    """Serve the endpoints on ``host:port``; stop with ``await runner.cleanup()``."""

    async def serve_metrics(request: web.Request) -> web.Response:
        return web.Response(body=metrics(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/healthz", _probe(probes.alive))
    app.router.add_get("/readyz", _probe(probes.ready))
    app.router.add_get("/metrics", serve_metrics)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError as exc:
        await runner.cleanup()
        refused = exc.errno in (errno.EADDRINUSE, errno.EACCES)
        raise ServeError(host, port, _reason(exc), port_refused=refused) from exc
    except BaseException:
        await runner.cleanup()
        raise
    return runner


def _reason(exc: OSError) -> str:
    if exc.errno == errno.EADDRINUSE:
        return "the port is in use (by another worker on this machine?)"
    if exc.errno == errno.EACCES:
        return "permission denied (ports below 1024 need privileges)"
    text = " ".join(str(exc).split())
    return text.rpartition("): ")[2] or type(exc).__name__
