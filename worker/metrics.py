"""Prometheus metrics of the worker process, kept by a :class:`~floxide.distributed.WorkerHooks`.

=================================  =========  ======================  ========================================
name                               type       labels                  meaning
=================================  =========  ======================  ========================================
``floxide_work_items_total``       counter    workflow, node, result  items this worker finished, by result
``floxide_step_duration_seconds``  histogram  workflow, node          seconds from claim to result (steps run)
``floxide_steps_in_progress``      gauge      workflow                steps running now
``floxide_retries_total``          counter    workflow, node          failed attempts scheduled for a retry
``floxide_dead_lettered_total``    counter    workflow, node          items that failed for good
``floxide_reclaimed_total``        counter    workflow, node          items taken over from a silent worker
``floxide_queue_lag``              gauge      workflow                items not yet delivered, retries waiting
``floxide_queue_pending``          gauge      workflow                items delivered, not yet acknowledged
``floxide_throttled_total``        counter    workflow, node          set aside by a node limit (no failure)
``floxide_throttled_items``        gauge      workflow                waiting for a node limit's slot or token
``floxide_limit_slots_in_use``     gauge      workflow, limit         concurrency slots held now (all keys)
``floxide_limit_waiting``          gauge      workflow, limit, kind   waiting for the limit now (all keys)
=================================  =========  ======================  ========================================

``result`` is ``committed``, ``duplicate``, ``retrying``, ``failed``, ``parked``,
``dropped``, ``cancelled``, ``throttled`` or ``released`` (given back unfinished or unstarted by a draining
worker). ``floxide_reclaimed_total`` counts crashes seen by this worker: items whose worker
went silent mid-step (lease expired), not items a draining worker handed back. Labels stay
few and bounded: never a run id or an item id, and a keyed limit is one ``limit`` (its name,
summed over its keys). The metrics live in a registry of their own
(no global state); the process collector adds the usual ``process_*`` metrics.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Iterator, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from floxide.distributed.execution import StepResult
from floxide.distributed.limits import LimitUsage
from floxide.distributed.models import Claim
from floxide.distributed.worker import WorkerHooks

__all__ = ["BUCKETS", "PrometheusHooks", "StepCounts"]

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
"""Step duration buckets (seconds): from milliseconds to an hour."""

_RAN = frozenset({"committed", "duplicate", "retrying", "failed", "cancelled"})

_BOUNDS: list[str] = [floatToGoString(b) for b in (*BUCKETS, math.inf)]  # type: ignore[no-untyped-call]
"""The ``le`` labels of the duration buckets, as ``prometheus_client`` writes them."""

_BY_RESULT = {
    "retrying": ("floxide_retries_total", "Attempts scheduled for a retry."),
    "failed": ("floxide_dead_lettered_total", "Items that failed for good."),
    "throttled": ("floxide_throttled_total", "Items set aside by a node limit."),
}
"""Counters that count one result of ``floxide_work_items_total`` on their own."""


class StepCounts(Collector):
    """The per-step metrics, kept as plain numbers and turned into metric families when scraped.

    A step's result costs a dict update and a bucket search, not the locked counters and
    histogram of ``prometheus_client`` (a few microseconds per step, on the hot path).
    """

    def __init__(self, workflow: str) -> None:
        self.workflow = workflow
        self.results: dict[tuple[str, str], int] = {}
        self.durations: dict[str, list[float]] = {}
        """Per node: the count of each bucket of :data:`BUCKETS`, then ``+Inf``, then the sum."""

    def record(self, node: str, result: StepResult, seconds: float) -> None:
        key = (node, result)
        self.results[key] = self.results.get(key, 0) + 1
        if result in _RAN:
            counts = self.durations.get(node)
            if counts is None:
                counts = self.durations[node] = [0.0] * (len(BUCKETS) + 2)
            counts[bisect_left(BUCKETS, seconds)] += 1
            counts[-1] += seconds

    def collect(self) -> Iterator[Metric]:
        items = CounterMetricFamily(
            "floxide_work_items_total",
            "Work items finished by this worker.",
            labels=["workflow", "node", "result"],
        )
        by_result = {
            result: CounterMetricFamily(name, text, labels=["workflow", "node"])
            for result, (name, text) in _BY_RESULT.items()
        }
        for (node, result), count in sorted(self.results.items()):
            items.add_metric([self.workflow, node, result], count)
            if result in by_result:
                by_result[result].add_metric([self.workflow, node], count)
        duration = HistogramMetricFamily(
            "floxide_step_duration_seconds", "Seconds from claim to result.", labels=["workflow", "node"]
        )
        for node, counts in sorted(self.durations.items()):
            cumulative, total = [], 0.0
            for bound, in_bucket in zip(_BOUNDS, counts[:-1], strict=True):
                total += in_bucket
                cumulative.append((bound, total))
            duration.add_metric([self.workflow, node], cumulative, sum_value=counts[-1])
        yield items
        yield duration
        yield from by_result.values()

    def describe(self) -> Iterator[Metric]:
        return self.collect()


class PrometheusHooks(WorkerHooks):
    """Counts the worker's items for ``workflow`` in :attr:`registry`."""

    def __init__(self, workflow: str, *, registry: CollectorRegistry | None = None) -> None:
        self.workflow = workflow
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry
        self.steps = StepCounts(workflow)
        r.register(self.steps)
        self.in_progress = Gauge("floxide_steps_in_progress", "Steps running now.", ["workflow"], registry=r)
        self.reclaimed = Counter(
            "floxide_reclaimed_total",
            "Items taken over from a worker that went silent mid-step (its lease expired).",
            ["workflow", "node"],
            registry=r,
        )
        self.lag = Gauge(
            "floxide_queue_lag", "Items not yet delivered (and delayed retries).", ["workflow"], registry=r
        )
        self.pending = Gauge(
            "floxide_queue_pending", "Items delivered, not yet acknowledged.", ["workflow"], registry=r
        )
        self.throttled_now = Gauge(
            "floxide_throttled_items", "Items waiting for a limit's slot or token.", ["workflow"], registry=r
        )
        self.slots = Gauge(
            "floxide_limit_slots_in_use", "Concurrency slots held now.", ["workflow", "limit"], registry=r
        )
        self.waiting = Gauge(
            "floxide_limit_waiting",
            "Items waiting for the limit now.",
            ["workflow", "limit", "kind"],
            registry=r,
        )
        self.queued_runs = Gauge(
            "floxide_queued_runs", "Runs waiting for a slot under the run limit.", ["workflow"], registry=r
        )
        self.limited_runs = Gauge(
            "floxide_limited_runs_active", "Runs holding a run-limit slot.", ["workflow"], registry=r
        )
        ProcessCollector(registry=r)
        self._running: set[str] = set()
        self.in_progress.labels(workflow).set_function(lambda: len(self._running))

    def on_claim(self, claim: Claim) -> None:
        self._running.add(claim.delivery)

    def on_result(self, claim: Claim, result: StepResult, seconds: float) -> None:
        self._running.discard(claim.delivery)
        self.steps.record(claim.item.node, result, seconds)

    def on_reclaim(self, claim: Claim) -> None:
        self.reclaimed.labels(self.workflow, claim.item.node).inc()

    def on_backlog(self, lag: int, pending: int) -> None:
        self.lag.labels(self.workflow).set(lag)
        self.pending.labels(self.workflow).set(pending)

    def on_limits(self, usage: Sequence[LimitUsage], throttled: int) -> None:
        self.throttled_now.labels(self.workflow).set(throttled)
        slots: dict[str, int] = {}
        waiting: dict[tuple[str, str], int] = {}
        for u in usage:
            name = u.ident.partition("=")[0].partition("#")[0]  # a keyed limit's keys summed
            if u.kind == "concurrency":
                slots[name] = slots.get(name, 0) + u.in_use
            waiting[(name, u.kind)] = waiting.get((name, u.kind), 0) + u.waiting
        for name, count in slots.items():
            self.slots.labels(self.workflow, name).set(count)
        for (name, kind), count in waiting.items():
            self.waiting.labels(self.workflow, name, kind).set(count)

    def on_run_queue(self, limit: int | None, active: int, queued: int) -> None:
        self.queued_runs.labels(self.workflow).set(queued)
        self.limited_runs.labels(self.workflow).set(active if limit is not None else 0)

    def exposition(self) -> bytes:
        """The metrics in the Prometheus text format."""
        return generate_latest(self.registry)
