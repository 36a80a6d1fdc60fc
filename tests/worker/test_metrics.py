"""Prometheus metrics of the worker, as a ``WorkerHooks``.

Cases:
* every result counts in ``floxide_work_items_total{workflow,node,result}``; steps that ran
  are timed; retries and dead letters have their own counters;
* the in-progress gauge follows claims and results;
* the backlog gauges follow ``on_backlog``;
* no run or item id ever becomes a label;
* throttled items have their counter; the limit gauges sum a keyed limit over its keys;
* the step durations (plain numbers until scraped) bucket exactly as a ``prometheus_client``
  Histogram does.
"""

from __future__ import annotations

from floxide_worker.metrics import BUCKETS, PrometheusHooks
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from floxide.distributed.models import Claim
from floxide.workitem import WorkItem


def claim(node: str, n: int) -> Claim:
    return Claim(
        item=WorkItem(run_id=f"run-{n}", item_id=f"item-{n}", node=node, payload=None), delivery=f"{n}-0"
    )


def samples(hooks: PrometheusHooks) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(hooks.exposition().decode()):
        for sample in family.samples:
            if sample.name.startswith("floxide_"):
                found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_results_durations_retries_and_dead_letters() -> None:
    hooks = PrometheusHooks("orders")
    for n, (node, result, seconds) in enumerate(
        [("charge", "committed", 0.2), ("charge", "committed", 0.4), ("charge", "retrying", 0.1),
         ("ship", "failed", 1.5), ("ship", "parked", 0.0)]
    ):  # fmt: skip
        c = claim(node, n)
        hooks.on_claim(c)
        hooks.on_result(c, result, seconds)
    got = samples(hooks)
    wf = ("workflow", "orders")
    assert got[("floxide_work_items_total", (("node", "charge"), ("result", "committed"), wf))] == 2
    assert got[("floxide_work_items_total", (("node", "charge"), ("result", "retrying"), wf))] == 1
    assert got[("floxide_work_items_total", (("node", "ship"), ("result", "failed"), wf))] == 1
    assert got[("floxide_step_duration_seconds_count", (("node", "charge"), wf))] == 3
    assert abs(got[("floxide_step_duration_seconds_sum", (("node", "charge"), wf))] - 0.7) < 1e-9
    assert got[("floxide_step_duration_seconds_count", (("node", "ship"), wf))] == 1  # parked: not run
    assert got[("floxide_retries_total", (("node", "charge"), wf))] == 1
    assert got[("floxide_dead_lettered_total", (("node", "ship"), wf))] == 1
    labels = {value for _, pairs in got for _, value in pairs}
    assert not any(value.startswith(("run-", "item-")) for value in labels)


def test_in_progress_and_backlog_gauges() -> None:
    hooks = PrometheusHooks("orders")
    first, second = claim("charge", 1), claim("charge", 2)
    hooks.on_claim(first)
    hooks.on_claim(second)
    hooks.on_backlog(7, 3)
    got = samples(hooks)
    assert got[("floxide_steps_in_progress", (("workflow", "orders"),))] == 2
    assert got[("floxide_queue_lag", (("workflow", "orders"),))] == 7
    assert got[("floxide_queue_pending", (("workflow", "orders"),))] == 3
    hooks.on_result(first, "committed", 0.1)
    assert samples(hooks)[("floxide_steps_in_progress", (("workflow", "orders"),))] == 1


def test_throttled_items_and_limit_gauges() -> None:
    from floxide.distributed.limits import LimitUsage

    hooks = PrometheusHooks("billing")
    for n in range(3):
        c = claim("charge", n)
        hooks.on_claim(c)
        hooks.on_result(c, "throttled", 0.001)
    hooks.on_limits(
        [
            LimitUsage(kind="concurrency", ident="charge=acme", limit="2", in_use=2, waiting=3),
            LimitUsage(kind="concurrency", ident="charge=globex", limit="2", in_use=1, waiting=0),
            LimitUsage(kind="rate", ident="api", limit="5/s burst 1", waiting=4),
        ],
        7,
    )
    got = samples(hooks)
    wf = ("workflow", "billing")
    assert got[("floxide_throttled_total", (("node", "charge"), wf))] == 3
    assert got[("floxide_work_items_total", (("node", "charge"), ("result", "throttled"), wf))] == 3
    assert ("floxide_step_duration_seconds_count", (("node", "charge"), wf)) not in got  # not run
    assert got[("floxide_throttled_items", (wf,))] == 7
    assert got[("floxide_limit_slots_in_use", (("limit", "charge"), wf))] == 3  # summed: no key label
    assert got[("floxide_limit_waiting", (("kind", "concurrency"), ("limit", "charge"), wf))] == 3
    assert got[("floxide_limit_waiting", (("kind", "rate"), ("limit", "api"), wf))] == 4


def test_step_durations_bucket_as_prometheus_client_does() -> None:
    """The per-step metrics are plain numbers turned into families when scraped; their buckets,
    count and sum are those of a ``prometheus_client`` Histogram fed the same durations."""
    durations = [0.0, 0.005, 0.0051, 0.3, 1.0, 7.0, 3600.0, 4000.0]
    hooks = PrometheusHooks("orders")
    registry = CollectorRegistry()
    reference = Histogram("reference", "", ["workflow", "node"], buckets=BUCKETS, registry=registry)
    for n, seconds in enumerate(durations):
        c = claim("charge", n)
        hooks.on_claim(c)
        hooks.on_result(c, "committed", seconds)
        reference.labels("orders", "charge").observe(seconds)
    ours = "floxide_step_duration_seconds"
    got = {(n.removeprefix(ours), labels): v for (n, labels), v in samples(hooks).items() if ours in n}
    expected = {
        (sample.name.removeprefix("reference"), tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(generate_latest(registry).decode())
        for sample in family.samples
        if not sample.name.endswith("_created")
    }
    assert got == expected
    assert got[("_count", (("node", "charge"), ("workflow", "orders")))] == len(durations)
