"""The commands that look at runs: ``status``, ``runs`` (both with ``--watch``), ``errors``, ``workers``.

::

    floxide status RUN                  # the run, its progress and ETA, every node in graph order
    floxide status RUN --watch          # the same, live, until the run ends
    floxide runs --watch                # the runs table, live (Ctrl-C ends it)
    floxide runs -o wide                # full ids;  -o json: the data
    floxide errors RUN -o json          # with the tracebacks
    floxide workers

They read what every other command reads (:mod:`floxide.run_view`, the run's stores) and
show it with :mod:`floxide.cli_views`: rich tables sized to the terminal, or JSON (``-o
json``, ``--json``, or stdout not a terminal). With ``-o json``, ``--watch`` prints one JSON
line each time what it shows changes. ``status --watch`` exits when the run ends: 0 if it
completed, 1 if it failed or was cancelled.

These commands replace the ones of the same names in :mod:`floxide.cli_distributed`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console, RenderableType
from rich.live import Live

from floxide import cli_views as views
from floxide.cli_limits import flow_details
from floxide.cli_options import (
    IntervalOpt,
    JsonOpt,
    NamespaceOpt,
    OutputOpt,
    RedisOpt,
    RunArg,
    Verbose,
    WatchOpt,
    WideOpt,
    WorkflowOpt,
)
from floxide.cli_runlimit import run_queue_details
from floxide.cli_session import connect, run_command, settings_or_exit
from floxide.cli_views import OutputFormat
from floxide.distributed.models import RunInfo, RunStatus
from floxide.errors import NotStarted
from floxide.run_view import RunView, read_run_view

if TYPE_CHECKING:
    from floxide.redis import RedisBackend

__all__ = ["errors", "register", "runs", "status", "workers"]

async def _watch(
    fmt: OutputFormat,
    look: Callable[[], Awaitable[tuple[Any, Callable[[bool], RenderableType | str], bool]]],
    *,
    interval: float,
    key: Callable[[Any], Any] = lambda data: data,
) -> Any:
    """Redraw ``look()``'s ``(data, render, last)`` every ``interval`` s until ``last`` (or Ctrl-C).

    JSON: a line each time ``key(data)`` changes. Returns the last data.
    """
    data, render, last = await look()
    if last:  # one look: no live view
        views.show(data, fmt, render)
        return data
    console = Console(highlight=False)
    with contextlib.ExitStack() as stack:
        live = None
        if fmt is not OutputFormat.JSON:
            live = stack.enter_context(Live(console=console, auto_refresh=False))
        seen: Any = object()
        try:
            while True:
                if live is not None:
                    live.update(render(fmt is OutputFormat.WIDE), refresh=True)
                elif key(data) != seen:
                    seen = key(data)
                    views.show(data, fmt, render)
                if last:
                    break
                await asyncio.sleep(interval)
                data, render, last = await look()
        except asyncio.CancelledError:  # Ctrl-C: the normal end of a watch
            pass
    if live is not None and not console.is_terminal:
        console.line()  # off a terminal, Live prints its last view without ending the line
    return data


# -- status ---------------------------------------------------------------------------------------


def _moving(data: dict[str, Any]) -> dict[str, Any]:
    """What a JSON watch compares: the data without the clock (elapsed, ETA)."""
    return {k: v for k, v in data.items() if k not in ("elapsed_seconds", "eta_seconds")}


async def _read(
    backend: RedisBackend, run: str, ns: str, graph: dict[str, Any] | None
) -> tuple[RunView, dict[str, Any]]:
    """The run's view, and what the run limit adds (its place in line when it waits Queued)."""
    info = await backend.runs.get(run)
    view = None if info is None else await read_run_view(backend, run, namespace=ns, graph=graph, info=info)
    if info is None or view is None:
        raise NotStarted(f"run '{run}' does not exist in workflow '{backend.workflow}' (or has expired)")
    return view, {**await run_queue_details(backend, info), **await flow_details(backend, info)}


def status(
    run: RunArg,
    watch: WatchOpt = False,
    interval: IntervalOpt = 1.0,
    output: OutputOpt = None,
    wide: WideOpt = False,
    workflow: WorkflowOpt = None,
    redis: RedisOpt = None,
    namespace: NamespaceOpt = None,
    as_json: JsonOpt = False,
    verbose: Verbose = False,
) -> None:
    """Show a run: status, progress and ETA, times, output or error, every node in graph order."""
    settings, ns = settings_or_exit(redis, namespace, verbose)
    fmt = views.pick_format(output, as_json=as_json, wide=wide)

    async def go() -> str | None:
        async with connect(settings, ns) as session:
            backend = await session.locate(run, workflow)
            graph = await backend.graph()

            async def look() -> tuple[Any, Callable[[bool], RenderableType | str], bool]:
                view, queue = await _read(backend, run, ns, graph)
                extra = {k.replace("_", " "): v for k, v in queue.items()}
                render: Callable[[bool], RenderableType] = lambda w: views.status_view(view, w, extra=extra)  # noqa: E731
                return {**views.status_data(view), **queue}, render, view.status.finished or not watch

            data = await _watch(fmt, look, interval=interval, key=_moving)
            return None if data is None else str(data["status"])

    last = run_command(go(), verbose=verbose)
    if watch and last in (RunStatus.FAILED.value, RunStatus.CANCELLED.value):
        raise typer.Exit(1)


# -- runs -----------------------------------------------------------------------------------------


def runs(
    status: Annotated[
        RunStatus | None,
        typer.Option("--status", "-s", case_sensitive=False, help="Only runs in this status."),
    ] = None,
    workflow: Annotated[
        str | None, typer.Option("--workflow", "-w", help="Only this workflow's runs.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many runs, newest first.")] = 100,
    watch: WatchOpt = False,
    interval: IntervalOpt = 2.0,
    output: OutputOpt = None,
    wide: WideOpt = False,
    redis: RedisOpt = None,
    namespace: NamespaceOpt = None,
    as_json: JsonOpt = False,
    verbose: Verbose = False,
) -> None:
    """List runs of the namespace, newest first (--watch: live, until Ctrl-C)."""
    settings, ns = settings_or_exit(redis, namespace, verbose)
    fmt = views.pick_format(output, as_json=as_json, wide=wide)

    async def go() -> None:
        async with connect(settings, ns) as session:

            async def look() -> tuple[Any, Callable[[bool], RenderableType | str], bool]:
                found: list[RunInfo] = []
                for name in await session.workflows(workflow):
                    found += await session.backend(name).runs.list(status, limit=limit)
                infos = sorted(found, key=lambda i: i.created_at, reverse=True)[:limit]
                return views.run_rows(infos), lambda w: views.runs_table(infos, w), not watch

            await _watch(fmt, look, interval=interval)

    run_command(go(), verbose=verbose)


# -- errors and workers ---------------------------------------------------------------------------


def errors(
    run: RunArg,
    output: OutputOpt = None,
    wide: WideOpt = False,
    workflow: WorkflowOpt = None,
    redis: RedisOpt = None,
    namespace: NamespaceOpt = None,
    as_json: JsonOpt = False,
    verbose: Verbose = False,
) -> None:
    """List a run's failures, oldest first (JSON includes the tracebacks)."""
    settings, ns = settings_or_exit(redis, namespace, verbose)

    async def go() -> list[dict[str, Any]]:
        async with connect(settings, ns) as session:
            backend = await session.locate(run, workflow)
            return [e.model_dump(mode="json") for e in await backend.errors.list(run)]

    records = run_command(go(), verbose=verbose)
    fmt = views.pick_format(output, as_json=as_json, wide=wide)
    views.show(records, fmt, lambda w: views.errors_table(records, w, run=run))


def workers(
    workflow: Annotated[
        str | None, typer.Option("--workflow", "-w", help="Only this workflow's workers.")
    ] = None,
    output: OutputOpt = None,
    wide: WideOpt = False,
    redis: RedisOpt = None,
    namespace: NamespaceOpt = None,
    as_json: JsonOpt = False,
    verbose: Verbose = False,
) -> None:
    """List the live workers of the namespace (those with a recent heartbeat)."""
    settings, ns = settings_or_exit(redis, namespace, verbose)

    async def go() -> list[dict[str, Any]]:
        async with connect(settings, ns) as session:
            found = []
            for name in await session.workflows(workflow):
                found += [h.model_dump(mode="json") for h in await session.backend(name).liveness.list()]
            return found

    found = run_command(go(), verbose=verbose)
    fmt = views.pick_format(output, as_json=as_json, wide=wide)
    views.show(found, fmt, lambda w: views.workers_table(found, w))


def register(app: typer.Typer) -> None:
    """Add the commands to ``app``, replacing those of :mod:`floxide.cli_distributed` of the same names."""
    mine = (status, runs, errors, workers)
    names = {c.__name__ for c in mine}
    app.registered_commands = [
        c for c in app.registered_commands if (c.name or getattr(c.callback, "__name__", "")) not in names
    ]
    for command in mine:
        app.command(command.__name__)(command)
