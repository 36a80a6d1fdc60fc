"""A run as people look at it: every node of its workflow, in graph order, with its counts and state.

What ``floxide status`` (and ``--watch``), ``floxide graph --run`` and the dashboard show
is one :class:`RunView`, read by :func:`read_run_view` from the stores every other command
reads (a :class:`~floxide.distributed.protocols.Backend`: the run's record, its per-node
metrics, its item states and the graph its workers published) and put together by
:func:`build_run_view`, which reads nothing and is the place the rules live:

* nodes come in graph order (breadth-first from the start node, edges in declaration
  order), and every node is listed, also one the run never reached (state ``idle``);
* ``running`` and ``waiting_retry`` come from the item states, ``queued`` is what remains
  of the node's unfinished items (created - done - failed);
* a finished run has nothing queued or running: a Cancelled (or Failed) run's unfinished
  items are counted as ``cancelled``, not left pending forever;
* the run's progress is items done of items known so far (a fan-out adds items as it
  goes, so the total can grow), with an ETA from the rate since the run started.

Reading the item states is one read of a hash with an entry per item; above
``max_item_states`` items it is skipped (``item_states`` is then false and ``running``
counts are unknown: every unfinished item shows as queued).
"""

from __future__ import annotations

from collections import deque
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

from floxide.distributed.models import ItemStatus, RunInfo, RunMetrics, RunStatus, WorkItemState
from floxide.distributed.protocols import Backend

__all__ = [
    "MAX_ITEM_STATES",
    "EdgeView",
    "NodeState",
    "NodeView",
    "RunView",
    "build_run_view",
    "graph_order",
    "read_run_view",
]

MAX_ITEM_STATES = 50_000
"""Above this many items a run's item states are not read (see the module docstring)."""


class NodeState(StrEnum):
    """What a node of a run is doing, as one word (the colour of its box in a picture)."""

    IDLE = "idle"
    """Not reached (yet): no item of the run went to this node."""
    QUEUED = "queued"
    """Items wait for a worker (or for a retry), none runs."""
    RUNNING = "running"
    """At least one item runs now."""
    DONE = "done"
    """Every item of the node finished successfully."""
    FAILED = "failed"
    """At least one item failed for good."""
    CANCELLED = "cancelled"
    """The run ended (cancelled, or failed elsewhere) with items of this node unfinished."""


class NodeView(BaseModel):
    """One node of a run: its counts and state."""

    name: str
    state: NodeState
    created: int = Field(0, description="Items the run created for this node.")
    done: int = Field(0, description="Items that completed.")
    running: int = Field(0, description="Items running now (0 when item states were not read).")
    queued: int = Field(0, description="Items waiting for a worker, or for a retry (waiting_retry).")
    waiting_retry: int = Field(0, description="Of queued: items waiting for their retry's time.")
    failed: int = Field(0, description="Items that failed for good.")
    cancelled: int = Field(0, description="Items left unfinished when the run ended.")
    retried: int = Field(0, description="Retries of the node's items.")
    reclaimed: int = Field(0, description="Items taken over from a worker that went silent.")
    seconds: float = Field(0.0, description="Seconds the node's completed steps took, summed.")

    @property
    def finished(self) -> int:
        """Items done, failed or cancelled."""
        return self.done + self.failed + self.cancelled

    @property
    def percent(self) -> float:
        """Finished items of created ones, 0-100 (100 for a node without items)."""
        return 100.0 if self.created == 0 else min(100.0, 100.0 * self.finished / self.created)


class EdgeView(BaseModel):
    """One edge of the workflow's graph (as ``Workflow.describe()`` publishes it)."""

    source: str
    target: str
    kind: str = "sequence"
    label: str = ""


class RunView(BaseModel):
    """A run with its graph: what the status views, the run pictures and the dashboard draw."""

    run_id: str
    workflow: str
    namespace: str = ""
    status: RunStatus
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error: str | None = None
    has_output: bool = False
    output: Any = None
    items_done: int = 0
    items_total: int = 0
    percent: float = Field(0.0, description="Items done of items known so far, 0-100.")
    elapsed: float | None = Field(None, description="Seconds since the run started (to its end if it ended).")
    eta: float | None = Field(None, description="Seconds left at the rate so far; None if unknown.")
    retries: int = 0
    reclaimed: int = 0
    item_states: bool = Field(True, description="Whether running counts were read from the item states.")
    start: str = ""
    nodes: list[NodeView] = Field(default_factory=list, description="Every node, in graph order.")
    edges: list[EdgeView] = Field(default_factory=list)

    def node(self, name: str) -> NodeView | None:
        """The node called ``name``, if the workflow has one."""
        return next((n for n in self.nodes if n.name == name), None)


def graph_order(graph: dict[str, Any] | None, also: list[str] | None = None) -> list[str]:
    """The node names of a published graph, breadth-first from its start node.

    ``graph`` is what ``Workflow.describe()`` returns; nodes no edge reaches keep their
    declared order after the others, and names in ``also`` (nodes a run has counts for that
    the graph lacks, say an older version of the workflow) come last, sorted.
    """
    declared = [str(n["name"]) for n in (graph or {}).get("nodes", [])]
    successors: dict[str, list[str]] = {name: [] for name in declared}
    for e in (graph or {}).get("edges", []):
        successors.setdefault(str(e["from"]), []).append(str(e["to"]))
    order: list[str] = []
    seen: set[str] = set()
    start = (graph or {}).get("startNode")
    queue = deque([str(start)] if start else [])
    while queue:
        name = queue.popleft()
        if name in seen:
            continue
        seen.add(name)
        order.append(name)
        queue.extend(n for n in successors.get(name, []) if n not in seen)
    order += [n for n in declared if n not in seen]
    seen.update(order)
    order += sorted(n for n in also or [] if n not in seen)
    return order


def _edges(graph: dict[str, Any] | None) -> list[EdgeView]:
    return [
        EdgeView(source=e["from"], target=e["to"], kind=e.get("kind", "sequence"), label=e.get("label", ""))
        for e in (graph or {}).get("edges", [])
    ]


def _node(
    name: str, info: RunInfo, metrics: RunMetrics, running: dict[str, int], waiting: dict[str, int]
) -> NodeView:
    m = metrics.nodes.get(name)
    if m is None:
        return NodeView(name=name, state=NodeState.IDLE)
    unfinished = m.pending
    run = min(running.get(name, 0), unfinished)
    wait = min(waiting.get(name, 0), unfinished - run)
    view = NodeView(
        name=name,
        state=NodeState.IDLE,
        created=m.created,
        done=m.completed,
        failed=m.failed,
        retried=m.retries,
        reclaimed=m.reclaimed,
        seconds=round(m.seconds, 6),
    )
    if info.status.finished:
        view.cancelled = unfinished
    else:
        view.running, view.waiting_retry, view.queued = run, wait, unfinished - run
    if view.failed:
        view.state = NodeState.FAILED
    elif view.running:
        view.state = NodeState.RUNNING
    elif view.queued:
        view.state = NodeState.QUEUED
    elif view.cancelled:
        view.state = NodeState.CANCELLED
    elif view.created:
        view.state = NodeState.DONE
    return view


def build_run_view(
    *,
    info: RunInfo,
    metrics: RunMetrics,
    graph: dict[str, Any] | None,
    items: list[WorkItemState] | None = None,
    namespace: str = "",
    now: datetime | None = None,
) -> RunView:
    """Put a run's record, metrics, item states (``None``: not read) and graph together."""
    running: dict[str, int] = {}
    waiting: dict[str, int] = {}
    for item in items or []:
        if item.status is ItemStatus.RUNNING:
            running[item.node] = running.get(item.node, 0) + 1
        elif item.status is ItemStatus.WAITING_RETRY:
            waiting[item.node] = waiting.get(item.node, 0) + 1
    names = graph_order(graph, list(metrics.nodes))
    nodes = [_node(name, info, metrics, running, waiting) for name in names]
    now = now or datetime.now(UTC)
    elapsed = eta = None
    if info.started_at is not None:
        elapsed = max(((info.finished_at or now) - info.started_at).total_seconds(), 0.0)
    total, done = max(info.items_total, 0), max(info.items_done, 0)
    if info.status is RunStatus.COMPLETED:
        percent = 100.0
    else:
        percent = 0.0 if total == 0 else min(100.0, 100.0 * done / total)
    if info.status.finished:
        eta = 0.0 if info.status is RunStatus.COMPLETED else None
    elif elapsed and done and total >= done:
        eta = (total - done) * elapsed / done
    return RunView(
        run_id=info.run_id,
        workflow=info.workflow,
        namespace=namespace,
        status=info.status,
        created_at=info.created_at,
        started_at=info.started_at,
        finished_at=info.finished_at,
        error=info.error,
        has_output=info.has_output,
        output=info.output,
        items_done=done,
        items_total=total,
        percent=round(percent, 2),
        elapsed=None if elapsed is None else round(elapsed, 3),
        eta=None if eta is None else round(eta, 3),
        retries=metrics.retries,
        reclaimed=metrics.reclaimed,
        item_states=items is not None,
        start=str((graph or {}).get("startNode") or (names[0] if names else "")),
        nodes=nodes,
        edges=_edges(graph),
    )


async def read_run_view(
    backend: Backend,
    run_id: str,
    *,
    namespace: str = "",
    graph: dict[str, Any] | None = None,
    max_item_states: int = MAX_ITEM_STATES,
    info: RunInfo | None = None,
) -> RunView | None:
    """The :class:`RunView` of ``run_id`` from ``backend``'s stores; ``None`` if there is no such run.

    ``graph`` (a ``Workflow.describe()``) is used when given, else the graph the workflow's
    workers published (without either, the nodes are those with counts, by name). ``info``:
    the run's record if the caller has just read it.
    """
    info = info or await backend.runs.get(run_id)
    if info is None:
        return None
    metrics = await backend.metrics.get(run_id)
    items: list[WorkItemState] | None = []  # a finished run runs nothing
    if not info.status.finished:
        items = await backend.items.list(run_id) if info.items_total <= max_item_states else None
    if graph is None:
        graph = await backend.graph()
    return build_run_view(info=info, metrics=metrics, graph=graph, items=items, namespace=namespace)
