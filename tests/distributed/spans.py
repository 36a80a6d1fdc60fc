"""Spans as the tracing tests read them, from the SDK's in-memory exporter or from OTLP, and the
checks of a traced ``fanout`` run (``spread -> work x count -> join gather``, see
:mod:`tests.distributed.flows`).

* :func:`memory_spans`: floxide's spans go to an :class:`InMemorySpanExporter` while the block
  lasts (through :func:`floxide.tracing.set_tracer_provider`, leaving OpenTelemetry's global
  provider alone).
* :func:`check_fanout_trace`: one trace id; ``spread``'s parent is the ``start_run`` span, each
  ``work``'s is ``spread``'s, ``gather``'s is the ``work`` whose commit closed the fan-out (the
  item id the join's id names); every step once, outcome ``ok``; one ``commit`` span per step,
  a child of its step's span.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from floxide import tracing


@dataclass(frozen=True)
class Record:
    """One span: ids in hex (``parent_id`` ``None`` for a root), attributes as plain values."""

    name: str
    trace_id: str
    span_id: str
    parent_id: str | None
    attributes: dict[str, Any]
    status: str = "UNSET"
    events: tuple[str, ...] = ()


def from_sdk(spans: Iterable[ReadableSpan]) -> list[Record]:
    records = []
    for span in spans:
        assert span.context is not None
        records.append(
            Record(
                name=span.name,
                trace_id=f"{span.context.trace_id:032x}",
                span_id=f"{span.context.span_id:016x}",
                parent_id=None if span.parent is None else f"{span.parent.span_id:016x}",
                attributes=dict(span.attributes or {}),
                status=span.status.status_code.name,
                events=tuple(event.name for event in span.events),
            )
        )
    return records


@contextmanager
def memory_spans() -> Iterator[InMemorySpanExporter]:
    """floxide traces to the exporter this yields while the block lasts."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.set_tracer_provider(provider)
    try:
        yield exporter
    finally:
        tracing.set_tracer_provider(None)
        provider.shutdown()


def steps(records: Sequence[Record], node: str | None = None) -> list[Record]:
    """The step spans (of ``node``)."""
    return [
        r
        for r in records
        if r.name.startswith("step ") and (node is None or r.attributes["floxide.node"] == node)
    ]


def check_fanout_trace(records: Sequence[Record], root: Record, count: int) -> None:
    """Check a ``fanout`` run of ``count`` branches seeded under ``root`` (see the module docstring)."""
    run_id = root.attributes["floxide.run_id"]
    assert root.name == "start_run fanout" and root.parent_id is None
    assert {r.trace_id for r in records} == {root.trace_id}, "one trace for the whole run"
    every = steps(records)
    assert sorted(r.attributes["floxide.node"] for r in every) == sorted(
        ["spread", "gather"] + ["work"] * count
    )
    items = [r.attributes["floxide.item_id"] for r in every]
    assert len(set(items)) == len(items), f"a step was traced twice: {items}"
    for step in every:
        assert step.attributes["floxide.run_id"] == run_id
        assert step.attributes["floxide.workflow"] == "fanout"
        assert step.attributes["floxide.attempt"] == 1
        assert step.attributes["floxide.outcome"] == "ok", step
        assert step.attributes["floxide.worker_id"]
    (spread,) = steps(records, "spread")
    assert spread.parent_id == root.span_id
    assert spread.attributes["floxide.item_id"] == "root"
    work = {r.attributes["floxide.item_id"]: r for r in steps(records, "work")}
    assert all(w.parent_id == spread.span_id for w in work.values())
    (gather,) = steps(records, "gather")
    prefix, closer, node = gather.attributes["floxide.item_id"].split(":")
    assert (prefix, node) == ("j", "gather") and closer in work
    assert gather.parent_id == work[closer].span_id, "a join's parent is the step that closed its fan-out"
    commits = [r for r in records if r.name.startswith("commit ")]
    by_parent = {c.parent_id: c for c in commits}
    assert len(commits) == len(every) == len(by_parent)
    for step in every:
        commit = by_parent[step.span_id]
        assert commit.name == f"commit {step.attributes['floxide.node']}"
        assert commit.attributes["floxide.commit.result"] == "ok"
