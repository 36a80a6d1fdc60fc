"""Server-sent events: what a page or an API client watches, pushed when it changes.

Each subject is re-read every ``refresh`` seconds, once for everyone watching it (a
:class:`~floxide.ui.hub.Hub`), and a stream sends an event only when what it would send
differs from the last one: an idle page costs no traffic, and a hundred people watching one
run cost what one does. FastAPI sends a keep-alive comment every 15 s; a closed browser tab ends the
stream.

* :func:`changes` — the loop every stream is made of;
* :data:`router` — the JSON streams of the API: ``/api/events/runs`` (event ``runs``: a
  :class:`~floxide.ui.models.RunList`), ``/api/events/runs/{namespace}/{workflow}/{run_id}``
  (event ``run``: a :class:`~floxide.run_view.RunView`) and ``/api/events/workers``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.sse import EventSourceResponse, ServerSentEvent

from floxide.distributed.models import RunStatus
from floxide.errors import NotStarted
from floxide.ui.data import Dashboard
from floxide.ui.hub import Hub

__all__ = ["changes", "router"]

router = APIRouter(prefix="/api/events", tags=["events"])

Produce = Callable[[], Awaitable[list[tuple[str, str]]]]
"""Returns ``(event name, data)`` pairs; each is sent when its data changed since last time."""


async def changes(request: Request, produce: Produce) -> AsyncIterator[ServerSentEvent]:
    """Events from ``produce`` whenever their data changes (read through the application's hub).

    Everyone watching the same stream (path and query) shares one reader
    (:class:`~floxide.ui.hub.Hub`). While Redis is away: an ``error`` event (then
    ``recovered``); the subject gone (a run expired or deleted): a ``gone`` event, and the
    stream ends.
    """
    hub: Hub[list[tuple[str, str]]] = request.app.state.hub
    unavailable = _unavailable()
    last: dict[str, str] = {}
    seen = 0
    async with hub.watch(str(request.url), produce) as topic:
        while True:
            seen, result = await topic.next(seen)
            if isinstance(result, NotStarted):  # the run expired or was deleted: say so and end
                yield ServerSentEvent(event="gone", raw_data=str(result))
                return
            if isinstance(result, unavailable):
                message = " ".join(str(result).split()) or type(result).__name__
                if last.get("error") != message:
                    last["error"] = message
                    yield ServerSentEvent(event="error", raw_data=f"Redis is unavailable: {message}")
                continue
            if isinstance(result, Exception):
                raise result
            if last.pop("error", None) is not None:
                yield ServerSentEvent(event="recovered", raw_data="")
            for name, data in result:
                if last.get(name) != data:
                    last[name] = data
                    yield ServerSentEvent(event=name, raw_data=data)


def dashboard(request: Request) -> Dashboard:
    board: Dashboard = request.app.state.dashboard
    return board


def _unavailable() -> tuple[type[Exception], ...]:
    from floxide.redis.index import UNAVAILABLE

    return (*UNAVAILABLE, TimeoutError)


@router.get("/runs", response_class=EventSourceResponse, summary="Watch the runs list")
async def watch_runs(
    request: Request,
    namespace: Annotated[str | None, Query(description="Only this namespace.")] = None,
    workflow: Annotated[str | None, Query(description="Only this workflow.")] = None,
    status: Annotated[RunStatus | None, Query(description="Only runs in this status.")] = None,
    page: Annotated[int, Query(ge=1)] = 1,
    per_page: Annotated[int, Query(ge=1, le=500)] = 50,
) -> AsyncIterator[ServerSentEvent]:
    """Event ``runs`` (a RunList, as ``GET /api/runs`` returns it) each time the page changes."""
    board = dashboard(request)

    async def produce() -> list[tuple[str, str]]:
        found = await board.runs(
            namespace=namespace, workflow=workflow, status=status, page=page, per_page=per_page
        )
        return [("runs", found.model_dump_json())]

    async for event in changes(request, produce):
        yield event


@router.get(
    "/runs/{namespace}/{workflow}/{run_id}", response_class=EventSourceResponse, summary="Watch a run"
)
async def watch_run(
    request: Request, namespace: str, workflow: str, run_id: str
) -> AsyncIterator[ServerSentEvent]:
    """Event ``run`` (a RunView: status, progress, every node's counts and state) each time it changes."""
    board = dashboard(request)

    async def produce() -> list[tuple[str, str]]:
        view = await board.view(namespace, workflow, run_id)
        return [("run", view.model_dump_json(exclude={"elapsed", "eta"}))]

    async for event in changes(request, produce):
        yield event


@router.get("/workers", response_class=EventSourceResponse, summary="Watch the workers")
async def watch_workers(
    request: Request,
    namespace: Annotated[str | None, Query(description="Only this namespace.")] = None,
    workflow: Annotated[str | None, Query(description="Only this workflow's workers.")] = None,
) -> AsyncIterator[ServerSentEvent]:
    """Event ``workers`` (a WorkerList) each time a worker comes, goes or moves on."""
    board = dashboard(request)

    async def produce() -> list[tuple[str, str]]:
        found = await board.workers(namespace=namespace, workflow=workflow)
        return [
            (
                "workers",
                found.model_dump_json(exclude={"workers": {"__all__": {"heartbeat_age", "last_heartbeat"}}}),
            )
        ]

    async for event in changes(request, produce):
        yield event
