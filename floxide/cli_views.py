"""How the run commands show what they read: rich views that fit the terminal, or JSON.

* ``-o table`` (the default on a terminal): tables sized to the terminal; identifiers people
  need (node and workflow names, messages) wrap instead of being cut, and long generated
  ids (run, item and worker ids) are shortened from the middle (``vm-1194-8…-3fa2c1``), so
  both ends stay readable;
* ``-o wide``: the same with every id in full;
* ``-o json`` (the default when stdout is not a terminal; ``--json`` says it too): the data.

:func:`status_view` draws a :class:`~floxide.run_view.RunView`: the run's progress bar with
percentage and ETA, then every node of its workflow in graph order with a bar and its
counts (what ``floxide status`` prints, and redraws with ``--watch``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from rich import box
from rich.console import Console, Group, RenderableType
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from floxide.cli_output import ago, duration, json_text, run_row, span
from floxide.cli_progress import eta_text
from floxide.distributed.models import RunInfo
from floxide.run_view import NodeState, RunView

__all__ = [
    "ID_WIDTH",
    "OutputFormat",
    "errors_table",
    "pick_format",
    "run_rows",
    "runs_table",
    "short_id",
    "show",
    "status_data",
    "status_view",
    "workers_table",
]

ID_WIDTH = 20
"""Generated ids longer than this are shortened from the middle in ``-o table``."""

STATE_STYLES: dict[NodeState, str] = {
    NodeState.IDLE: "dim",
    NodeState.QUEUED: "yellow",
    NodeState.RUNNING: "bold blue",
    NodeState.DONE: "green",
    NodeState.FAILED: "bold red",
    NodeState.CANCELLED: "magenta",
}


class OutputFormat(StrEnum):
    """``-o``: how a command prints what it read."""

    TABLE = "table"
    WIDE = "wide"
    JSON = "json"


def pick_format(chosen: OutputFormat | None, *, as_json: bool = False, wide: bool = False) -> OutputFormat:
    """``-o`` if given (``--json`` wins, ``--wide`` widens a table), else a table on a terminal and
    JSON elsewhere."""
    if as_json:
        return OutputFormat.JSON
    if chosen is None:
        chosen = OutputFormat.TABLE if sys.stdout.isatty() else OutputFormat.JSON
    return OutputFormat.WIDE if wide and chosen is OutputFormat.TABLE else chosen


def show(data: Any, fmt: OutputFormat, render: Callable[[bool], RenderableType | str]) -> None:
    """Print ``data`` as one JSON line, or ``render(wide)`` with rich."""
    if fmt is OutputFormat.JSON:
        sys.stdout.write(json_text(data) + "\n")
        sys.stdout.flush()
        return
    Console(highlight=False).print(render(fmt is OutputFormat.WIDE))


def short_id(text: str, wide: bool = False, width: int = ID_WIDTH) -> str:
    """``text`` shortened from the middle to ``width`` characters (unless ``wide``)."""
    if wide or len(text) <= width:
        return text
    tail = (width - 1) // 2
    return f"{text[: width - 1 - tail]}…{text[-tail:]}"


# -- one run -------------------------------------------------------------------------------------


def status_data(view: RunView) -> dict[str, Any]:
    """``floxide status -o json``: the run, its progress and every node in graph order."""
    data: dict[str, Any] = {
        "namespace": view.namespace,
        "run_id": view.run_id,
        "workflow": view.workflow,
        "status": view.status.value,
        "progress": f"{view.items_done}/{view.items_total}",
        "created_at": view.created_at,
        "started_at": view.started_at,
        "finished_at": view.finished_at,
        "error": view.error,
        "items_done": view.items_done,
        "items_total": view.items_total,
        "percent": view.percent,
        "elapsed_seconds": view.elapsed,
        "eta_seconds": view.eta,
    }
    if view.has_output:
        data["output"] = view.output
    data["retries"] = view.retries
    data["reclaimed"] = view.reclaimed  # items taken over after their worker went silent (crashes)
    data["nodes"] = {
        n.name: {
            "state": n.state.value,
            "created": n.created,
            "completed": n.done,
            "running": n.running,
            "queued": n.queued,
            "waiting_retry": n.waiting_retry,
            "failed": n.failed,
            "cancelled": n.cancelled,
            "retries": n.retried,
            "reclaimed": n.reclaimed,
            "pending": n.running + n.queued,
            "seconds": n.seconds,
        }
        for n in view.nodes
    }
    return data


def _bar(done: int, total: int, width: int = 24) -> ProgressBar:
    return ProgressBar(total=max(total, 1), completed=done if total else 0, width=width)


def _moment(label: str, moment: datetime | None, extra: str = "") -> str:
    return f"{label:<10}{moment:%Y-%m-%d %H:%M:%S}{extra}" if moment else f"{label:<10}-"


def status_view(
    view: RunView, wide: bool = False, *, extra: dict[str, Any] | None = None, width: int | None = None
) -> RenderableType:
    """A run as a rich renderable: its record, its progress bar and ETA, a bar per node in graph order."""
    style = {"Completed": "green", "Failed": "bold red", "Cancelled": "magenta", "Running": "blue"}
    title = Text.assemble(("run ", "bold"), (view.run_id, "bold"), f" ({view.workflow})  ")
    title.append(view.status.value, style=style.get(view.status.value, "yellow"))
    width = width or Console().width
    progress = Table.grid(padding=(0, 1))
    eta = "" if view.status.finished else f", {eta_text(view.eta)}"
    took = f", elapsed {span_seconds(view.elapsed)}" if view.elapsed is not None else ""
    progress.add_row(
        Text("progress"),
        _bar(view.items_done, view.items_total, width=max(10, min(40, width - 16))),
        Text(f"{view.percent:.0f}%"),
    )
    progress.add_row(Text(""), Text(f"{view.items_done}/{view.items_total} items{eta}{took}"), Text(""))
    now = datetime.now(UTC)
    lines = [
        _moment("created:", view.created_at, f" ({ago(view.created_at, now)} ago)"),
        _moment("started:", view.started_at),
        _moment("finished:", view.finished_at),
    ]
    for key, value in (extra or {}).items():
        lines.append(f"{key + ':':<10}{value}")
    if view.has_output:
        lines.append(f"{'output:':<10}{json_text(view.output)}")
    if view.error:
        lines.append(f"{'error:':<10}{view.error}")
    return Group(title, progress, Text("\n".join(lines)), Text(""), nodes_table(view, wide, width=width))


@dataclass(frozen=True)
class Column:
    """A column of a :func:`fitted` table."""

    head: str
    drop: int = 0
    """0: always shown; else left out when the table does not fit, highest first."""
    fold: bool = False
    """Wraps (names, messages) rather than keeping its width; needs at most ``fold_width``."""
    right: bool = False
    size: int = 0
    """A fixed width (for bars); 0: measured from the cells."""


def fitted(width: int, columns: list[Column], rows: list[list[Any]], *, fold_width: int = 16) -> Table:
    """A table of ``rows`` within ``width`` columns: no cell is cut.

    Columns that do not fit are left out (by ``drop``); folding columns wrap; the others
    keep the width of their longest cell.
    """
    sizes = []
    for i, c in enumerate(columns):
        size = c.size or max([len(c.head), *(len(str(r[i])) for r in rows)])
        sizes.append(min(size, max(fold_width, len(c.head))) if c.fold else size)
    kept = list(range(len(columns)))
    for i in sorted(kept, key=lambda i: -columns[i].drop):
        if sum(sizes[k] + 3 for k in kept) - 1 <= width or columns[i].drop == 0:
            break
        kept.remove(i)
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for k in kept:
        c = columns[k]
        table.add_column(
            c.head,
            justify="right" if c.right else "left",
            no_wrap=not c.fold,
            overflow="fold" if c.fold else "ellipsis",
            min_width=sizes[k],
        )
    for row in rows:
        table.add_row(*(row[k] for k in kept))
    return table


def nodes_table(view: RunView, wide: bool = False, *, width: int | None = None) -> Table:
    """Every node in graph order: a bar and counts; columns that do not fit are left out, none cut."""
    width = width or Console().width
    bar = 12 if width < 120 else 20
    columns = [
        Column("NODE", fold=True),
        Column("PROGRESS", drop=2, size=bar),
        Column("DONE", right=True),
        Column("RUNNING", right=True),
        Column("QUEUED", right=True),
        Column("FAILED", right=True),
        Column("RETRIED", drop=3, right=True),
        Column("RECLAIMED", drop=4, right=True),
        Column("STATE"),
    ]
    rows: list[list[Any]] = []
    for n in view.nodes:
        queued = f"{n.queued}" + (f" ({n.waiting_retry} retry)" if n.waiting_retry and wide else "")
        state = n.state.value + (f" {n.cancelled}" if n.cancelled else "")
        rows.append([
            n.name, _bar(n.finished, n.created, width=bar), f"{n.done}/{n.created}", str(n.running), queued,
            str(n.failed), str(n.retried), str(n.reclaimed), Text(state, style=STATE_STYLES[n.state]),
        ])  # fmt: skip
    return fitted(width, columns, rows, fold_width=32)


def span_seconds(seconds: float | None) -> str:
    return "-" if seconds is None else span(timedelta(seconds=seconds))


# -- listings --------------------------------------------------------------------------------------


def run_rows(infos: list[RunInfo]) -> list[dict[str, Any]]:
    """``floxide runs -o json``."""
    rows = []
    for info in infos:
        row = run_row(info)
        row["items_done"], row["items_total"] = info.items_done, info.items_total
        rows.append(row)
    return rows


def runs_table(infos: list[RunInfo], wide: bool = False, *, width: int | None = None) -> RenderableType:
    """The runs as a table that fits the terminal."""
    if not infos:
        return "no runs"
    now = datetime.now(UTC)
    rows = []
    for i in infos:
        percent = 100 * i.items_done // i.items_total if i.items_total else 0
        message = i.error or ""
        rows.append([
            short_id(i.run_id, wide), i.workflow, i.status.value,
            f"{i.items_done}/{i.items_total} {percent}%", ago(i.created_at, now), duration(i),
            message if wide else message[:200],
        ])  # fmt: skip
    columns = [
        Column("RUN"),
        Column("WORKFLOW", fold=True),
        Column("STATUS"),
        Column("PROGRESS"),
        Column("AGE", drop=2, right=True),
        Column("DURATION", drop=3, right=True),
        Column("MESSAGE", fold=True, drop=1),
    ]
    return fitted(width or Console().width, columns, rows)


def errors_table(
    records: list[dict[str, Any]], wide: bool = False, *, run: str = "", width: int | None = None
) -> RenderableType:
    """A run's failures as a table (``-o json`` has the tracebacks)."""
    if not records:
        return f"run {run} has no errors"
    rows = [
        [
            str(r["timestamp"])[11:19], r["node"], short_id(r["item_id"], wide), str(r["attempt"]),
            f"{r['error_type']}: {r['message']}", "yes" if r["permanent"] else "",
        ]
        for r in records
    ]  # fmt: skip
    columns = [
        Column("TIME", drop=2),
        Column("NODE", fold=True),
        Column("ITEM", fold=wide),
        Column("ATTEMPT", right=True, drop=1),
        Column("ERROR", fold=True),
        Column("FINAL", drop=3),
    ]
    return fitted(width or Console().width, columns, rows, fold_width=20)


def workers_table(
    found: list[dict[str, Any]], wide: bool = False, *, width: int | None = None
) -> RenderableType:
    """The live workers as a table."""
    if not found:
        return "no live workers"
    now = datetime.now(UTC)
    rows = [
        [
            short_id(h["worker_id"], wide, width=24), h["workflow"], h["status"],
            f"{len(h['in_flight'])}/{h['concurrency']}", str(h["processed"]), str(h["errors"]),
            ago(datetime.fromisoformat(h["started_at"]), now),
            f"{ago(datetime.fromisoformat(h['last_heartbeat']), now)} ago",
        ]
        for h in found
    ]  # fmt: skip
    columns = [
        Column("WORKER", fold=wide),
        Column("WORKFLOW", fold=True),
        Column("STATUS"),
        Column("IN FLIGHT", right=True),
        Column("PROCESSED", right=True, drop=2),
        Column("ERRORS", right=True, drop=1),
        Column("UP", right=True, drop=4),
        Column("SEEN", right=True, drop=3),
    ]
    return fitted(width or Console().width, columns, rows, fold_width=20)
