"""The operator's Prometheus metrics and the endpoint that serves them.

Each operator instance has its own registry (no process-global state, so several operators in
one process, as in tests, never clash). Labels are few and bounded: a phase, a resource kind.

* ``floxide_operator_runs{phase}``: WorkflowRuns by phase (gauge);
* ``floxide_operator_reconcile_seconds{resource}``: time of one reconciliation (histogram);
* ``floxide_operator_reconcile_errors_total{resource}``: reconciliations that failed;
* ``floxide_operator_status_patches_total{resource}``: status patches sent.
"""

from __future__ import annotations

import time
from collections import Counter as Tally
from collections.abc import Iterator
from contextlib import contextmanager

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from .models import Phase

__all__ = ["OperatorMetrics"]


class OperatorMetrics:
    """The metrics of one operator, and an HTTP server for ``/metrics``."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.runs = Gauge(
            "floxide_operator_runs", "WorkflowRuns by phase.", ["phase"], registry=self.registry
        )
        self.reconcile_seconds = Histogram(
            "floxide_operator_reconcile_seconds",
            "Time of one reconciliation of a resource (seconds).",
            ["resource"],
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
            registry=self.registry,
        )
        self.reconcile_errors = Counter(
            "floxide_operator_reconcile_errors_total",
            "Reconciliations that failed (they are retried).",
            ["resource"],
            registry=self.registry,
        )
        self.status_patches = Counter(
            "floxide_operator_status_patches_total",
            "Status patches sent to the Kubernetes API.",
            ["resource"],
            registry=self.registry,
        )
        self.queued_runs = Gauge(
            "floxide_operator_queued_runs",
            "Runs of a Workflow waiting for a slot under its spec.maxActiveRuns.",
            ["namespace", "workflow"],
            registry=self.registry,
        )
        self.schedule_runs = Counter(
            "floxide_operator_schedule_runs_total",
            "Fire times of WorkflowSchedules, by result: started, skipped (missed, late, forbidden or "
            "suspended), replaced (active runs cancelled by Replace).",
            ["result"],
            registry=self.registry,
        )
        self._phases: dict[str, Phase] = {}
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    @contextmanager
    def reconciling(self, resource: str) -> Iterator[None]:
        """Time a reconciliation of ``resource`` ("workflow" or "workflowrun") and count its failure."""
        started = time.perf_counter()
        try:
            yield
        except Exception:
            self.reconcile_errors.labels(resource).inc()
            raise
        finally:
            self.reconcile_seconds.labels(resource).observe(time.perf_counter() - started)

    def run_phase(self, uid: str, phase: Phase | None) -> None:
        """Record the phase of run ``uid`` (``None``: the run is gone)."""
        if phase is None:
            self._phases.pop(uid, None)
        else:
            self._phases[uid] = phase
        counts = Tally(self._phases.values())
        for each in Phase:
            self.runs.labels(each.value).set(counts.get(each, 0))

    async def serve(self, port: int, host: str = "0.0.0.0") -> int:
        """Serve ``/metrics`` on ``port`` (0: a free one); returns the port."""
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        self.port = int(sockets[0].getsockname()[1]) if sockets else port
        return self.port

    async def _metrics(self, request: web.Request) -> web.Response:
        body = generate_latest(self.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def close(self) -> None:
        """Stop serving."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
