"""The worker process: one :class:`~floxide.distributed.DistributedWorker`, its endpoints, its duties.

Start-up ("spawn"): build the Redis client and backend, start the HTTP server (the probes
answer from the first second: alive, not ready), then wait for Redis — retrying with
backoff, never crashing on an outage — and publish the workflow's graph.

Then "supervise": the worker loop, a Redis pinger (readiness) and maintenance (trim the
work stream, prune the run index) run side by side. The process stops on the first of:

* SIGTERM or SIGINT: stop claiming, give in-flight steps ``drain_seconds`` to finish,
  cancel and release the rest for other workers; exit status 0;
* the worker loop crashing, or a duty ending (a bug): drain the same way; exit status 1.

A second signal while draining changes nothing: the drain is already bounded. SIGUSR1
logs the stack of every asyncio task (where is a stuck worker waiting?).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import signal
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from floxide_worker.logs import StepContext
from floxide_worker.metrics import PrometheusHooks
from floxide_worker.probes import Probes, start_server
from floxide_worker.settings import Settings

from floxide.cli_settings import safe_url
from floxide.distributed.worker import DistributedWorker, raise_if_cancelled, worker_identity
from floxide.redis import RedisBackend
from floxide.redis.index import UNAVAILABLE, RunIndex
from floxide.redis.steplogs import StepLogs
from floxide.steplog import StepLogShipper, capture_prints, use_sink

if TYPE_CHECKING:
    from aiohttp import web

    from floxide.workflow import Workflow

__all__ = ["BLOCK", "WorkerProcess"]

log = logging.getLogger(__name__)

BLOCK = 1.0
"""Seconds a claim waits for new items (the client's socket timeout is longer by as much)."""

PING_SECONDS = 2.0
"""Seconds between the pings that keep readiness fresh (``/readyz`` wants one within 10 s)."""

PING_ERRORS: tuple[type[Exception], ...] = (*UNAVAILABLE, TimeoutError)


class WorkerProcess:
    """Runs ``workflow``'s worker as configured by ``settings``; :meth:`run` returns the exit status.

    ``handle_signals=False`` leaves SIGTERM/SIGINT alone (to embed the worker); call
    :meth:`stop` instead.
    """

    def __init__(
        self,
        workflow: Workflow[Any, Any],
        settings: Settings,
        *,
        worker_id: str | None = None,
        handle_signals: bool = True,
    ) -> None:
        self.workflow = workflow
        self.settings = settings
        self.worker_id = worker_id or worker_identity()
        self.handle_signals = handle_signals
        self.probes = Probes()
        self.name = settings.worker.served_name(workflow.name)
        """The name the workflow is served under in Redis."""
        self.metrics = PrometheusHooks(self.name)
        self.worker: DistributedWorker | None = None
        self._stopping = asyncio.Event()
        self._signals = 0

    def stop(self) -> None:
        """Drain and exit: stop claiming, let in-flight steps finish within the drain time."""
        self.probes.draining = True
        self._stopping.set()
        if self.worker is not None:
            self.worker.stop()

    def _on_signal(self, number: int) -> None:
        name = signal.Signals(number).name
        self._signals += 1
        if self._signals > 1:
            log.warning("%s again: already draining (at most %gs)", name, self.settings.worker.drain_seconds)
            return
        log.info("%s: draining (in-flight steps get %gs)", name, self.settings.worker.drain_seconds)
        self.stop()

    async def run(self) -> int:
        """Work until stopped; 0 after a clean drain, 1 if the worker or a duty failed.

        The HTTP server starts first: a port it cannot listen on raises
        :class:`~floxide_worker.probes.ServeError` before anything else started.
        """
        s = self.settings
        server: web.AppRunner | None = None
        if s.worker.http_port:
            server = await start_server(
                self.probes, self.metrics.exposition, host=s.worker.http_host, port=s.worker.http_port
            )
        try:
            return await self._run()
        finally:
            if server is not None:
                await server.cleanup()

    async def _run(self) -> int:
        s = self.settings
        client = s.redis.client(block=BLOCK)
        backend = RedisBackend(
            client,
            self.name,
            namespace=s.namespace,
            context_type=self.workflow.context_type,
            ttl=s.queue.run_ttl_seconds,
            max_deliveries=s.queue.max_deliveries,
            wait_replicas=s.redis.topology().wait_replicas,
            wait_timeout_ms=s.redis.topology().wait_timeout_ms,
        )
        self.worker = DistributedWorker(
            self.workflow,
            backend,
            worker_id=self.worker_id,
            concurrency=s.worker.concurrency,
            lease=s.worker.lease_seconds,
            heartbeat_interval=s.worker.heartbeat_seconds,
            block=BLOCK,
            drain_grace=s.worker.drain_seconds,
            hooks=[StepContext(), self.metrics],
            max_payload_bytes=s.payloads.max_payload_bytes,
        )
        if self._stopping.is_set():
            self.worker.stop()
        loop = asyncio.get_running_loop()
        handled: tuple[signal.Signals, ...] = ()
        if self.handle_signals:
            handled = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1)
            loop.add_signal_handler(signal.SIGTERM, self._on_signal, signal.SIGTERM)
            loop.add_signal_handler(signal.SIGINT, self._on_signal, signal.SIGINT)
            loop.add_signal_handler(signal.SIGUSR1, _dump_tasks)
        try:
            log.info(
                "worker %s of workflow '%s' (namespace '%s'): concurrency %d, Redis %s, HTTP port %s, "
                "event loop %s",
                self.worker_id, self.name, s.namespace, s.worker.concurrency, safe_url(s.redis.url),
                s.worker.http_port or "off", type(loop).__module__.partition(".")[0],
            )  # fmt: skip
            if not await self._connect(backend):
                return 0
            return await self._supervise(backend, RunIndex(client, s.namespace))
        finally:
            for number in handled:
                loop.remove_signal_handler(number)
            await client.aclose()
            log.info("worker %s stopped", self.worker_id)

    async def _connect(self, backend: RedisBackend) -> bool:
        """Wait for Redis and publish the graph; ``False`` if stopped meanwhile."""
        delay = 0.5
        while not self._stopping.is_set():
            try:
                await backend.client.ping()
                self.probes.pong()
                await backend.publish_graph(self.workflow.describe())
            except UNAVAILABLE as exc:
                log.warning(
                    "Redis at %s does not answer (%s); retrying in %.1fs", safe_url(self.settings.redis.url),
                    exc, delay,
                )  # fmt: skip
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), delay)
                delay = min(delay * 2, 30.0)
                continue
            self.probes.started = True
            return True
        return False

    async def _supervise(self, backend: RedisBackend, index: RunIndex) -> int:
        assert self.worker is not None
        shipper = StepLogShipper(StepLogs(backend).write)  # what nodes log (ctx.log): floxide logs RUN
        prints = contextlib.ExitStack()
        if self.settings.logging.capture_prints:
            prints.enter_context(capture_prints())
        with use_sink(shipper):  # the steps (tasks the worker starts) inherit the sink
            work = asyncio.create_task(self.worker.run(), name="worker")
        duties = [
            asyncio.create_task(_guard("redis-ping", self._ping, backend), name="redis-ping"),
            asyncio.create_task(_guard("maintenance", self._maintain, backend, index), name="maintenance"),
            asyncio.create_task(shipper.run(), name="step-logs"),
        ]
        self.probes.tasks = [work, *duties]
        try:
            await asyncio.wait([work, *duties], return_when=asyncio.FIRST_COMPLETED)
            code = 0
            if not work.done():
                log.error("a duty of the worker ended; draining and exiting")
                code = 1
                self.stop()
                await asyncio.wait([work])
            if not work.cancelled() and work.exception() is not None:
                log.error("the worker failed", exc_info=work.exception())
                code = 1
            return code
        finally:
            for task in (work, *duties):
                task.cancel()
            _, stuck = await asyncio.wait([work, *duties], timeout=5.0)
            for task in stuck:
                log.error("task %s did not stop within 5s", task.get_name())
            prints.close()

    async def _ping(self, backend: RedisBackend) -> None:
        answering = True
        while True:
            try:
                await asyncio.wait_for(backend.client.ping(), PING_SECONDS)
            except PING_ERRORS as exc:
                if answering:
                    log.warning("Redis does not answer: %s", exc or type(exc).__name__)
                answering = False
            else:
                self.probes.pong()
                if not answering:
                    log.info("Redis answers again")
                answering = True
            raise_if_cancelled()
            await asyncio.sleep(PING_SECONDS)

    async def _maintain(self, backend: RedisBackend, index: RunIndex) -> None:
        every = self.settings.worker.trim_seconds
        while True:
            await asyncio.sleep(every)
            try:
                trimmed = await backend.trim()
                pruned = await index.prune(self.name)
            except UNAVAILABLE as exc:
                log.warning("trimming the work stream failed (next try in %gs): %s", every, exc)
            else:
                if trimmed or pruned:
                    log.debug("trimmed %d stream entries, pruned %d run index entries", trimmed, pruned)
            raise_if_cancelled()


def _dump_tasks() -> None:
    """SIGUSR1: log the stack of every asyncio task (to see where a stuck worker waits)."""
    for task in asyncio.all_tasks():
        stream = io.StringIO()
        task.print_stack(file=stream)
        log.warning("task %s:\n%s", task.get_name(), stream.getvalue().rstrip())


async def _guard(name: str, function: Callable[..., Awaitable[None]], *args: Any) -> None:
    """Run a duty that should never end; log it if it does (kopf's ``aiotasks.guard``)."""
    try:
        await function(*args)
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("duty %s crashed", name)
        raise
    log.error("duty %s ended unexpectedly", name)
