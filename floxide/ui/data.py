"""The dashboard's reads and actions on Redis: the stores and actions the ``floxide`` commands use.

* runs: :class:`~floxide.redis.overview.Overview` (a page over every workflow of the shown
  namespaces), a run: :func:`floxide.run_view.build_run_view` (the view ``floxide status``
  shows) from the stores, its picture: :func:`floxide.run_picture.to_dot` laid out by
  :func:`~floxide.run_picture.render_dot` (Graphviz, off the event loop, kept while the
  run's picture does not change);
* workers: each workflow's liveness store (as ``floxide workers``);
* actions: :func:`floxide.cli_distributed.control` (as ``floxide pause|resume|cancel|retry``).

Which namespaces are shown: those given, or (none given) every namespace with a registered
workflow, found by a key scan at most every :data:`DISCOVERY_SECONDS`.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from floxide.distributed.models import ItemStatus, RunStatus, WorkItemState
from floxide.errors import NotStarted
from floxide.run_picture import PictureFormat, render_dot, to_dot
from floxide.run_view import RunView, build_run_view
from floxide.ui.models import (
    ERROR_PREVIEW,
    Action,
    ActionResult,
    ErrorText,
    ItemView,
    NodeDetail,
    RunDetail,
    RunList,
    RunSummary,
    WorkerList,
    WorkerView,
)

if TYPE_CHECKING:
    from floxide.redis import RedisBackend
    from floxide.redis.clients import Client
    from floxide.redis.overview import Overview, RunEntry

__all__ = ["DISCOVERY_SECONDS", "Dashboard", "UnknownRun", "allowed_actions"]

DISCOVERY_SECONDS = 30.0
"""How long a scan's list of namespaces is used before the next scan."""

LOG_LINES_READ = 2000
"""The run's latest step log lines a node panel looks through for the node's own."""

GRAPH_SECONDS = 10.0
"""How long a workflow's published graph is used before it is read again (workers republish it)."""

_PICTURES = 64
"""Run pictures kept (by their DOT text): a page's live updates draw only what changed."""


class UnknownRun(NotStarted):
    """No such run (or node) in the shown namespaces: the API answers 404."""


def allowed_actions(status: RunStatus) -> list[Action]:
    """The actions a run in ``status`` allows (what ``floxide pause`` and its siblings accept)."""
    if status in (RunStatus.PENDING, RunStatus.RUNNING):
        return [Action.PAUSE, Action.CANCEL]
    if status is RunStatus.PAUSED:
        return [Action.RESUME, Action.CANCEL]
    if status is RunStatus.FAILED:
        return [Action.RETRY, Action.CANCEL]
    return []


def summary(entry: RunEntry, now: datetime | None = None) -> RunSummary:
    """The runs-list line of a run."""
    info = entry.info
    duration = None
    if info.started_at is not None:
        duration = round(
            ((info.finished_at or now or datetime.now(UTC)) - info.started_at).total_seconds(), 3
        )
    total = info.items_total
    percent = (
        100.0 if info.status is RunStatus.COMPLETED else (100.0 * info.items_done / total if total else 0.0)
    )
    error = info.error
    if error and len(error) > ERROR_PREVIEW:
        error = error[: ERROR_PREVIEW - 1] + "…"
    return RunSummary(
        namespace=entry.namespace,
        workflow=info.workflow,
        run_id=info.run_id,
        status=info.status,
        items_done=info.items_done,
        items_total=total,
        percent=round(min(percent, 100.0), 2),
        created_at=info.created_at,
        started_at=info.started_at,
        finished_at=info.finished_at,
        duration=duration,
        error=error,
    )


class Dashboard:
    """Everything the pages and the API read or do, on one Redis client."""

    def __init__(
        self, client: Client, *, namespaces: Sequence[str] = (), allow_actions: bool = False
    ) -> None:
        from floxide.redis.overview import Overview

        self.client = client
        self.fixed_namespaces = list(namespaces)
        self.allow_actions = allow_actions
        self.overview: Overview = Overview(client)
        self._found: tuple[float, list[str]] | None = None
        self._pictures: OrderedDict[str, str] = OrderedDict()
        self._graphs: dict[str, tuple[float, dict[str, Any] | None]] = {}

    # -- where to look ----------------------------------------------------------------------------

    async def namespaces(self) -> list[str]:
        """The namespaces shown: those given, else every one found (re-scanned now and then)."""
        if self.fixed_namespaces:
            return self.fixed_namespaces
        now = time.monotonic()
        if self._found is None or now - self._found[0] > DISCOVERY_SECONDS:
            self._found = (now, await self.overview.namespaces())
        return self._found[1]

    def backend(self, namespace: str, workflow: str) -> RedisBackend:
        from floxide.redis import RedisBackend

        return RedisBackend(self.client, workflow, namespace=namespace)

    async def _shown(self, namespace: str) -> None:
        if namespace not in await self.namespaces():
            raise UnknownRun(f"namespace '{namespace}' is not shown by this dashboard")

    # -- runs ---------------------------------------------------------------------------------------

    async def runs(
        self,
        *,
        namespace: str | None = None,
        workflow: str | None = None,
        status: RunStatus | None = None,
        page: int = 1,
        per_page: int = 50,
    ) -> RunList:
        """A page of runs, newest first, filtered by namespace, workflow and status."""
        shown = await self.namespaces()
        chosen = [namespace] if namespace else shown
        if namespace and namespace not in shown:
            chosen = []
        pairs = await self.overview.workflows(chosen)
        names = sorted({wf for _, wf in pairs})
        if workflow:
            pairs = [(ns, wf) for ns, wf in pairs if wf == workflow]
        found = await self.overview.run_page(
            pairs, status=status, offset=(page - 1) * per_page, limit=per_page
        )
        now = datetime.now(UTC)
        return RunList(
            runs=[summary(entry, now) for entry in found.runs],
            page=page,
            per_page=per_page,
            more=found.more,
            namespaces=shown,
            workflows=names,
        )

    async def view(self, namespace: str, workflow: str, run_id: str) -> RunView:
        """The run's nodes (in graph order) with their counts and states (:mod:`floxide.run_view`'s rules).

        What runs comes from the workers' heartbeats: the items of this run they held at their
        last heartbeat (at most a heartbeat old; a finished item's slot has most likely been
        taken by the next item of its node), not from the run's item states, so a live page
        reads as much at 5,000 items as at 5. Items waiting for a retry show as queued.
        """
        await self._shown(namespace)
        backend = self.backend(namespace, workflow)
        info = await backend.runs.get(run_id)
        if info is None:
            raise UnknownRun(
                f"run '{run_id}' of workflow '{workflow}' does not exist in namespace '{namespace}' "
                "(or has expired)"
            )
        metrics = await backend.metrics.get(run_id)
        items: list[WorkItemState] = []
        if not info.status.finished:
            prefix = f"{run_id}/"
            held = [
                ref[len(prefix) :]
                for health in await backend.liveness.list()
                for ref in health.in_flight
                if ref.startswith(prefix)
            ]
            states = await self.overview.item_states(namespace, workflow, run_id, held)
            items = [state.model_copy(update={"status": ItemStatus.RUNNING}) for state in states]
        return build_run_view(
            info=info, metrics=metrics, graph=await self._graph(backend), items=items, namespace=namespace
        )

    async def _graph(self, backend: RedisBackend) -> dict[str, Any] | None:
        """The workflow's published graph, read at most every :data:`GRAPH_SECONDS`."""
        key = f"{backend.keys.namespace}/{backend.workflow}"
        now = time.monotonic()
        cached = self._graphs.get(key)
        if cached is None or now - cached[0] > GRAPH_SECONDS:
            cached = (now, await backend.graph())
            self._graphs[key] = cached
        return cached[1]

    async def run(self, namespace: str, workflow: str, run_id: str) -> RunDetail:
        """The run with its input, outputs and context."""
        view = await self.view(namespace, workflow, run_id)
        kept, value = await self.overview.input(namespace, workflow, run_id)
        outputs = await self.backend(namespace, workflow).runs.outputs(run_id)
        context = await self.overview.context(namespace, workflow, run_id)
        return RunDetail(
            namespace=namespace,
            view=view,
            input=value if kept else None,
            input_kept=kept,
            input_note="" if kept else str(value),
            outputs=outputs,
            context=context,
            actions=allowed_actions(view.status) if self.allow_actions else [],
        )

    async def node(
        self, namespace: str, workflow: str, run_id: str, node: str, *, limit: int = 50
    ) -> NodeDetail:
        """A node of the run: counts, latest items, errors with tracebacks (newest first), logged lines."""
        view = await self.view(namespace, workflow, run_id)
        found = view.node(node)
        if found is None:
            raise UnknownRun(f"workflow '{workflow}' has no node '{node}'")
        states, counts = await self.overview.items(namespace, workflow, run_id, node, limit=limit)
        from floxide.redis.steplogs import StepLogs

        backend = self.backend(namespace, workflow)
        errors = [e for e in await backend.errors.list(run_id) if e.node == node]
        logs, _ = await StepLogs(backend).tail(run_id, node=node, count=LOG_LINES_READ)
        return NodeDetail(
            namespace=namespace,
            workflow=workflow,
            run_id=run_id,
            node=found,
            items=[
                ItemView(item_id=s.item_id, status=s.status, attempt=s.attempt, updated_at=s.updated_at)
                for s in states
            ],
            item_counts=counts,
            errors=[ErrorText.model_validate(e.model_dump()) for e in reversed(errors)][:limit],
            logs=logs[-limit:],
        )

    async def picture(self, view: RunView) -> str:
        """The run's picture as SVG text (:class:`GraphvizMissing` without Graphviz)."""
        dot = to_dot(view)
        cached = self._pictures.get(dot)
        if cached is not None:
            self._pictures.move_to_end(dot)
            return cached
        svg = (await asyncio.to_thread(render_dot, dot, PictureFormat.SVG)).decode()
        self._pictures[dot] = svg
        while len(self._pictures) > _PICTURES:
            self._pictures.popitem(last=False)
        return svg

    # -- workers ------------------------------------------------------------------------------------

    async def workers(self, *, namespace: str | None = None, workflow: str | None = None) -> WorkerList:
        """The live workers (recent heartbeat) of the shown namespaces."""
        chosen = [namespace] if namespace else await self.namespaces()
        pairs = [
            (ns, wf) for ns, wf in await self.overview.workflows(chosen) if not workflow or wf == workflow
        ]
        now = datetime.now(UTC)
        found = []
        for ns, wf in pairs:
            for h in await self.backend(ns, wf).liveness.list():
                found.append(
                    WorkerView(
                        namespace=ns,
                        worker_id=h.worker_id,
                        workflow=h.workflow,
                        status=h.status,
                        current=list(h.in_flight),
                        concurrency=h.concurrency,
                        processed=h.processed,
                        failed=h.errors,
                        heartbeat_age=round(max((now - h.last_heartbeat).total_seconds(), 0.0), 3),
                        started_at=h.started_at,
                        last_heartbeat=h.last_heartbeat,
                    )
                )
        return WorkerList(workers=found)

    # -- actions ------------------------------------------------------------------------------------

    async def act(
        self, namespace: str, workflow: str, run_id: str, action: Action, *, interrupt: bool = True
    ) -> ActionResult:
        """Pause, resume, cancel or retry the run, as the ``floxide`` command of that name does."""
        from floxide.cli_distributed import control  # what floxide pause|resume|cancel|retry do

        if not self.allow_actions:
            raise PermissionError("this dashboard is read-only (start it with --allow-actions)")
        await self._shown(namespace)
        status = await control(self.backend(namespace, workflow), run_id, action.value, interrupt=interrupt)
        return ActionResult(
            namespace=namespace, workflow=workflow, run_id=run_id, action=action, status=status
        )
