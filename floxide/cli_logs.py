"""``floxide logs RUN``: what a run's steps logged (``ctx.log``) and, if the workers capture it, printed.

::

    floxide logs RUN                    # every kept line, oldest first
    floxide logs RUN --node charge      # one node's lines
    floxide logs RUN --follow           # and new ones as they come, until the run ends (or Ctrl-C)
    floxide logs RUN --tail 50 -o json  # the last 50, one JSON object per line

A line reads ``12:00:01.250 INFO    charge  a1b2…#2  charging order 7``: time (UTC), level
(``PRINT`` for a printed line), node, item (shortened; ``--wide`` in full) and attempt, then
the message. The lines are kept in the run's log stream in Redis (:mod:`floxide.redis.steplogs`:
about the last 10,000 per run, each at most 4 KiB) and expire with the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated

import typer

from floxide.cli_options import NamespaceOpt, RedisOpt, RunArg, Verbose, WorkflowOpt
from floxide.cli_session import connect, run_command, settings_or_exit
from floxide.cli_views import OutputFormat, short_id
from floxide.distributed.protocols import RunInfoStore
from floxide.steplog import LogEntry

if TYPE_CHECKING:
    from floxide.redis.steplogs import StepLogs

__all__ = ["line", "logs", "register"]


def line(entry: LogEntry, *, wide: bool = False) -> str:
    """One entry as text (continuation lines of a multi-line message indented)."""
    moment = entry.time.strftime("%H:%M:%S.%f")[:-3]
    item = short_id(entry.item_id, wide, width=16)
    head = f"{moment} {entry.level:<7} {entry.node}  {item}#{entry.attempt}  "
    return head + entry.message.replace("\n", "\n" + " " * 4)


def logs(
    run: RunArg,
    node: Annotated[str | None, typer.Option("--node", help="Only this node's lines.")] = None,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new lines until the run ends (or Ctrl-C).")
    ] = False,
    tail: Annotated[
        int | None, typer.Option("--tail", min=1, help="Only the last N lines (then --follow goes on).")
    ] = None,
    output: Annotated[
        OutputFormat | None,
        typer.Option("--output", "-o", case_sensitive=False, help="table (text lines, the default) or json."),
    ] = None,
    wide: Annotated[bool, typer.Option("--wide", help="Item ids in full.")] = False,
    workflow: WorkflowOpt = None,
    redis: RedisOpt = None,
    namespace: NamespaceOpt = None,
    verbose: Verbose = False,
) -> None:
    """Print what a run's steps logged (ctx.log) and, if captured, printed; oldest first."""
    settings, ns = settings_or_exit(redis, namespace, verbose)
    as_json = output is OutputFormat.JSON
    wide = wide or output is OutputFormat.WIDE

    def show(entries: list[LogEntry]) -> None:
        for entry in entries:
            sys.stdout.write((entry.model_dump_json() if as_json else line(entry, wide=wide)) + "\n")
        sys.stdout.flush()

    async def go() -> None:
        from floxide.redis.steplogs import StepLogs

        async with connect(settings, ns) as session:
            backend = await session.locate(run, workflow)
            store = StepLogs(backend)
            if tail is not None:
                entries, last = await store.tail(run, node=node, count=tail)
                show(entries)
            else:
                last = "-"
                while True:  # a page at a time, until a page brings nothing new
                    entries, after = await store.read(run, node=node, after=last)
                    show(entries)
                    if after == last:
                        break
                    last = after
                last = last if last != "-" else "0-0"
            if follow:
                with contextlib.suppress(asyncio.CancelledError):  # Ctrl-C: the normal end of --follow
                    await _follow(store, backend.runs, run, node=node, after=last, show=show)

    run_command(go(), verbose=verbose)


async def _follow(
    store: StepLogs,
    runs: RunInfoStore,
    run: str,
    *,
    node: str | None,
    after: str,
    show: Callable[[list[LogEntry]], None],
) -> None:
    """New entries until the run has ended and a second passed without any (the last lines
    of its steps are written by the workers a moment after they end)."""
    quiet = 0
    while True:
        entries, after = await store.follow(run, after=after, node=node, block=1.0)
        show(entries)
        info = await runs.get(run)
        quiet = 0 if entries else quiet + 1
        if (info is None or info.status.finished) and quiet >= 2:
            return


def register(app: typer.Typer) -> None:
    """Add ``logs`` to ``app`` (see :data:`floxide.cli.EXTENSIONS`)."""
    app.command("logs")(logs)
