"""``floxide graph``: a workflow's graph, or a run's picture (its nodes coloured by state, with counts).

::

    floxide graph examples/orders.py:workflow                     # DOT on stdout
    floxide graph examples/orders.py:workflow --format mermaid
    floxide graph examples/orders.py:workflow --run RUN --format svg -o run.svg
    floxide graph --run RUN --format png -o run.png               # the graph the workers published

With ``--run`` the run is read from Redis (``--redis``/``FLOXIDE_REDIS_URL``, ``--namespace``)
like ``floxide status`` reads it (:mod:`floxide.run_view`) and drawn by
:mod:`floxide.run_picture`, the renderer the dashboard uses. SVG and PNG need Graphviz's
``dot`` program; DOT and Mermaid need nothing. PNG goes to ``-o FILE`` (not to a terminal).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from floxide.cli import CliError, load_workflow
from floxide.cli_session import connect, fail_command, run_command, settings_or_exit
from floxide.errors import FloxideError, NotStarted
from floxide.run_picture import PictureFormat, render, render_dot
from floxide.run_view import RunView, read_run_view

__all__ = ["graph", "register"]


def graph(
    target: Annotated[
        str | None,
        typer.Argument(
            help="path/to/file.py:attr or package.module:attr (a Workflow); with --run it may be left out: "
            "the graph its workers published is drawn.",
            show_default=False,
        ),
    ] = None,
    format: Annotated[
        PictureFormat, typer.Option("--format", "-f", case_sensitive=False, help="Output format.")
    ] = PictureFormat.DOT,
    run: Annotated[
        str | None, typer.Option("--run", help="Draw this run's node states and counts (read from Redis).")
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to this file (default: stdout).")
    ] = None,
    workflow: Annotated[
        str | None,
        typer.Option(
            "--workflow", "-w", help="With --run: the run's workflow (default: looked up from the run id)."
        ),
    ] = None,
    redis: Annotated[
        str | None,
        typer.Option("--redis", help="With --run: Redis URL (env FLOXIDE_REDIS_URL).", show_default=False),
    ] = None,
    namespace: Annotated[
        str | None,
        typer.Option(
            "--namespace", "-n", help="With --run: key namespace (env FLOXIDE_NAMESPACE).", show_default=False
        ),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show tracebacks of errors.")] = False,
) -> None:
    """Print a workflow's graph (DOT, Mermaid, SVG or PNG); with --run, coloured by the run's node states."""
    if target is None and run is None:
        fail_command(CliError("give a TARGET (a workflow), or --run RUN (or both)"), code=2, verbose=verbose)
    if format is PictureFormat.PNG and out is None and sys.stdout.isatty():
        fail_command(CliError("--format png writes binary: give -o FILE"), code=2, verbose=verbose)
    loaded = None
    if target is not None:
        try:
            loaded = load_workflow(target)
        except CliError as exc:
            fail_command(exc, code=exc.code, verbose=verbose)
    try:
        if run is None:
            assert loaded is not None
            if format is PictureFormat.MERMAID:
                data = loaded.to_mermaid().encode()
            elif format is PictureFormat.DOT:
                data = loaded.to_dot().encode()
            else:
                data = render_dot(loaded.to_dot(), format)
        else:
            graph_data = None if loaded is None else loaded.describe()
            view = _read_view(run, graph_data, workflow, redis, namespace, verbose)
            data = render(view, format)
    except FloxideError as exc:
        fail_command(exc, code=1, verbose=verbose)
    _write(data, out, verbose)


def _read_view(
    run: str,
    graph: dict[str, Any] | None,
    workflow: str | None,
    redis: str | None,
    namespace: str | None,
    verbose: bool,
) -> RunView:
    settings, ns = settings_or_exit(redis, namespace, verbose)

    async def go() -> RunView:
        async with connect(settings, ns) as session:
            backend = await session.locate(run, workflow)
            view = await read_run_view(backend, run, namespace=ns, graph=graph)
            if view is None:
                raise NotStarted(
                    f"run '{run}' does not exist in workflow '{backend.workflow}' (or has expired)"
                )
            return view

    return run_command(go(), verbose=verbose)


def _write(data: bytes, out: Path | None, verbose: bool) -> None:
    if out is None:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return
    try:
        out.write_bytes(data)
    except OSError as exc:
        fail_command(CliError(f"cannot write {out}: {exc.strerror or exc}"), code=2, verbose=verbose)
    sys.stderr.write(f"floxide: wrote {out} ({len(data)} bytes)\n")


def register(app: typer.Typer) -> None:
    """Add ``graph`` to ``app`` (see :data:`floxide.cli.EXTENSIONS`)."""
    app.command("graph")(graph)
