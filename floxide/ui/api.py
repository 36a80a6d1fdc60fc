"""The dashboard's JSON API, ``/api/...`` (documented at ``/openapi.json`` and ``/docs``).

Reads answer 404 for an unknown run or node, 503 while Redis is unavailable. Actions
(``POST .../{action}``) answer 403 when the dashboard is read-only (started without
``--allow-actions``) or when a browser sends them from another site's page (cross-site
request forgery: its ``Origin`` header names another host), 409 when the run's status refuses
the action (as the ``floxide`` command of that name would refuse it).
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Query, Request, Response

from floxide.distributed.models import RunStatus
from floxide.ui.data import Dashboard
from floxide.ui.models import Action, ActionResult, NodeDetail, RunDetail, RunList, WorkerList

__all__ = ["router"]

router = APIRouter(prefix="/api", tags=["api"])


def dashboard(request: Request) -> Dashboard:
    board: Dashboard = request.app.state.dashboard
    return board


@router.get("/namespaces", summary="Namespaces shown")
async def namespaces(request: Request) -> list[str]:
    """The namespaces this dashboard shows (given with --namespace, or every one found in Redis)."""
    return await dashboard(request).namespaces()


@router.get("/runs", summary="List runs")
async def runs(
    request: Request,
    namespace: Annotated[str | None, Query(description="Only this namespace.")] = None,
    workflow: Annotated[str | None, Query(description="Only this workflow.")] = None,
    status: Annotated[RunStatus | None, Query(description="Only runs in this status.")] = None,
    page: Annotated[int, Query(ge=1, description="Page number, from 1.")] = 1,
    per_page: Annotated[int, Query(ge=1, le=500, description="Runs per page.")] = 50,
) -> RunList:
    """Runs, newest first: workflow, status, progress, times and a short error."""
    return await dashboard(request).runs(
        namespace=namespace, workflow=workflow, status=status, page=page, per_page=per_page
    )


@router.get("/runs/{namespace}/{workflow}/{run_id}", summary="Get a run")
async def run(request: Request, namespace: str, workflow: str, run_id: str) -> RunDetail:
    """The run: every node of its graph in graph order with counts and state, input, outputs, context."""
    return await dashboard(request).run(namespace, workflow, run_id)


@router.get("/runs/{namespace}/{workflow}/{run_id}/nodes/{node}", summary="Get a node of a run")
async def node(
    request: Request,
    namespace: str,
    workflow: str,
    run_id: str,
    node: str,
    limit: Annotated[int, Query(ge=1, le=1000, description="Items and errors at most.")] = 50,
) -> NodeDetail:
    """A node of the run: counts, its latest items with attempts, its errors with tracebacks."""
    return await dashboard(request).node(namespace, workflow, run_id, node, limit=limit)


@router.get(
    "/runs/{namespace}/{workflow}/{run_id}/picture.svg",
    summary="Picture of a run",
    response_class=Response,
    responses={200: {"content": {"image/svg+xml": {}}}, 503: {"description": "Graphviz is not installed"}},
)
async def picture(request: Request, namespace: str, workflow: str, run_id: str) -> Response:
    """The workflow's graph as SVG, each node coloured by its state in the run, with its counts."""
    board = dashboard(request)
    svg = await board.picture(await board.view(namespace, workflow, run_id))
    return Response(svg, media_type="image/svg+xml")


@router.post("/runs/{namespace}/{workflow}/{run_id}/{action}", summary="Pause, resume, cancel or retry a run")
async def act(
    request: Request,
    namespace: str,
    workflow: str,
    run_id: str,
    action: Action,
    interrupt: Annotated[
        bool,
        Query(description="cancel: also interrupt running steps (false: let them finish, drop results)."),
    ] = True,
) -> ActionResult:
    """What ``floxide pause|resume|cancel|retry RUN`` does; only when the dashboard allows actions.

    A browser's request from another site's page (its ``Origin`` is not this server) is refused.
    """
    origin = request.headers.get("origin")
    if origin is not None and urlsplit(origin).netloc != request.headers.get("host"):
        raise PermissionError(f"refused an action requested by a page of another site ({origin})")
    return await dashboard(request).act(namespace, workflow, run_id, action, interrupt=interrupt)


@router.get("/workers", summary="List live workers")
async def workers(
    request: Request,
    namespace: Annotated[str | None, Query(description="Only this namespace.")] = None,
    workflow: Annotated[str | None, Query(description="Only this workflow's workers.")] = None,
) -> WorkerList:
    """Live workers: workflow, current items, heartbeat age, steps done and failed."""
    return await dashboard(request).workers(namespace=namespace, workflow=workflow)
