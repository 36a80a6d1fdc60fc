"""The dashboard's HTML pages: server-rendered with Jinja2, kept live by server-sent events.

Each page is rendered whole on the first request; its parts that change (the runs table,
a run's summary, node table and picture, the workers table) come again as HTML fragments
over an event stream (``/events/...``), rendered by the same templates, and the page's
script swaps them in (``static/floxide.js``: an ``EventSource`` and ``fetch``, no framework).

* ``/`` — Runs: filters (namespace, workflow, status), pages of 50, live;
* ``/runs/{namespace}/{workflow}/{run_id}`` — Run: the graph picture, every node with its
  counts (click one: its items, errors with tracebacks, attempts), input, outputs,
  context, and the actions (behind a confirmation) when the dashboard allows them;
* ``/runs/.../nodes/{node}`` — the node panel (a fragment the Run page fetches);
* ``/workers`` — Workers, live.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from fastapi.sse import EventSourceResponse, ServerSentEvent
from fastapi.templating import Jinja2Templates

from floxide.distributed.models import RunStatus
from floxide.errors import FloxideError
from floxide.run_picture import COLOURS, counts_text
from floxide.run_view import RunView
from floxide.ui.data import Dashboard, allowed_actions
from floxide.ui.events import changes, dashboard

__all__ = ["router", "templates"]

TEMPLATES = Path(__file__).resolve().parent / "templates"
JSON_SHOWN = 64 * 1024
"""Characters of an input, output or context shown on a page (the API returns all of it)."""

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=str(TEMPLATES))


def _pretty(value: Any) -> str:
    text = json.dumps(value, indent=2, ensure_ascii=False, default=repr)
    if len(text) > JSON_SHOWN:
        return text[:JSON_SHOWN] + f"\n… ({len(text) - JSON_SHOWN} more characters: see the API)"
    return text


def _span(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    if seconds < 3600:
        return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"
    return f"{int(seconds // 3600)}h{int(seconds % 3600 // 60):02d}m"


def _moment(value: datetime | None) -> str:
    return "-" if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _clock(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%H:%M:%S")


templates.env.filters.update(pretty=_pretty, span=_span, moment=_moment, clock=_clock)
templates.env.globals.update(
    colours={state.value: colour for state, colour in COLOURS.items()},
    counts_text=counts_text,
    statuses=[s.value for s in RunStatus],
)


def _run_url(namespace: str, workflow: str, run_id: str) -> str:
    return f"/runs/{namespace}/{workflow}/{run_id}"


templates.env.globals["run_url"] = _run_url


def _fragment(request: Request, name: str, **context: Any) -> str:
    return templates.get_template(name).render(request=request, **context)


# -- runs -----------------------------------------------------------------------------------------


@router.get("/", response_class=HTMLResponse)
async def runs_page(
    request: Request,
    namespace: Annotated[str | None, Query()] = None,
    workflow: Annotated[str | None, Query()] = None,
    status: Annotated[str | None, Query()] = None,
    page: Annotated[int, Query(ge=1)] = 1,
) -> HTMLResponse:
    board = dashboard(request)
    filters = {"namespace": namespace or None, "workflow": workflow or None, "status": status or None}
    chosen = RunStatus(status) if status else None
    found = await board.runs(
        namespace=filters["namespace"], workflow=filters["workflow"], status=chosen, page=page
    )
    query = {k: v for k, v in filters.items() if v}
    return templates.TemplateResponse(
        request,
        "runs.html",
        {
            "found": found,
            "filters": filters,
            "stream": "/events/runs?" + urlencode({**query, "page": page}),
            "previous": "/?" + urlencode({**query, "page": page - 1}) if page > 1 else None,
            "next": "/?" + urlencode({**query, "page": page + 1}) if found.more else None,
        },
    )


@router.get("/events/runs", response_class=EventSourceResponse)
async def runs_stream(
    request: Request,
    namespace: Annotated[str | None, Query()] = None,
    workflow: Annotated[str | None, Query()] = None,
    status: Annotated[RunStatus | None, Query()] = None,
    page: Annotated[int, Query(ge=1)] = 1,
) -> AsyncIterator[ServerSentEvent]:
    board = dashboard(request)

    async def produce() -> list[tuple[str, str]]:
        found = await board.runs(namespace=namespace, workflow=workflow, status=status, page=page)
        return [("runs", _fragment(request, "_runs_rows.html", found=found))]

    async for event in changes(request, produce):
        yield event


# -- a run ------------------------------------------------------------------------------------------


def _summary_context(board: Dashboard, view: RunView) -> dict[str, Any]:
    return {"view": view, "actions": allowed_actions(view.status) if board.allow_actions else []}


async def _picture(board: Dashboard, view: RunView) -> str:
    try:
        return await board.picture(view)
    except FloxideError as exc:  # Graphviz missing or failing: the node table still shows everything
        return f'<p class="note" id="picture-missing">No picture: {exc}</p>'


@router.get("/runs/{namespace}/{workflow}/{run_id}", response_class=HTMLResponse)
async def run_page(request: Request, namespace: str, workflow: str, run_id: str) -> HTMLResponse:
    board = dashboard(request)
    detail = await board.run(namespace, workflow, run_id)
    base = _run_url(namespace, workflow, run_id)
    return templates.TemplateResponse(
        request,
        "run.html",
        {
            "detail": detail,
            **_summary_context(board, detail.view),
            "picture": await _picture(board, detail.view),
            "stream": f"/events{base}",
            "api": f"/api{base}",
            "base": base,
            "allow_actions": board.allow_actions,
        },
    )


@router.get("/events/runs/{namespace}/{workflow}/{run_id}", response_class=EventSourceResponse)
async def run_stream(
    request: Request, namespace: str, workflow: str, run_id: str
) -> AsyncIterator[ServerSentEvent]:
    board = dashboard(request)

    async def produce() -> list[tuple[str, str]]:
        detail = await board.run(namespace, workflow, run_id)
        view = detail.view
        return [
            ("summary", _fragment(request, "_run_summary.html", **_summary_context(board, view))),
            ("nodes", _fragment(request, "_run_nodes.html", view=view)),
            ("data", _fragment(request, "_run_data.html", detail=detail)),
            ("picture", await _picture(board, view)),
        ]

    async for event in changes(request, produce):
        yield event


@router.get("/runs/{namespace}/{workflow}/{run_id}/nodes/{node}", response_class=HTMLResponse)
async def node_panel(request: Request, namespace: str, workflow: str, run_id: str, node: str) -> HTMLResponse:
    detail = await dashboard(request).node(namespace, workflow, run_id, node)
    return templates.TemplateResponse(request, "_node.html", {"detail": detail})


# -- workers ----------------------------------------------------------------------------------------


@router.get("/workers", response_class=HTMLResponse)
async def workers_page(request: Request) -> HTMLResponse:
    found = await dashboard(request).workers()
    return templates.TemplateResponse(request, "workers.html", {"found": found, "stream": "/events/workers"})


@router.get("/events/workers", response_class=EventSourceResponse)
async def workers_stream(request: Request) -> AsyncIterator[ServerSentEvent]:
    board = dashboard(request)

    async def produce() -> list[tuple[str, str]]:
        found = await board.workers()
        return [("workers", _fragment(request, "_workers_rows.html", found=found))]

    async for event in changes(request, produce):
        yield event
