"""How the distributed commands show runs: rich tables on a terminal, JSON otherwise."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic_core import to_jsonable_python
from rich.console import Console, RenderableType
from rich.table import Table

from floxide.distributed.models import RunInfo, RunMetrics

__all__ = ["ago", "duration", "emit", "json_text", "run_row", "span", "status_data", "status_view"]


def json_text(value: Any) -> str:
    return json.dumps(to_jsonable_python(value, fallback=repr), ensure_ascii=False)


def emit(data: Any, *, as_json: bool, render: Callable[[], RenderableType | str]) -> None:
    """JSON when asked or when stdout is not a terminal; else ``render()`` with rich."""
    if as_json or not sys.stdout.isatty():
        sys.stdout.write(json_text(data) + "\n")
        return
    Console(highlight=False).print(render())


def ago(moment: datetime | None, now: datetime | None = None) -> str:
    if moment is None:
        return "-"
    return span((now or datetime.now(UTC)) - moment)


def span(delta: timedelta) -> str:
    seconds = max(delta.total_seconds(), 0.0)
    if seconds < 60:
        return f"{seconds:.1f}s"
    if seconds < 3600:
        return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"
    if seconds < 86400:
        return f"{int(seconds // 3600)}h{int(seconds % 3600 // 60):02d}m"
    return f"{int(seconds // 86400)}d{int(seconds % 86400 // 3600):02d}h"


def duration(info: RunInfo) -> str:
    if info.started_at is None:
        return "-"
    return span((info.finished_at or datetime.now(UTC)) - info.started_at)


def run_row(info: RunInfo) -> dict[str, Any]:
    return {
        "run_id": info.run_id,
        "workflow": info.workflow,
        "status": info.status.value,
        "progress": f"{info.items_done}/{info.items_total}",
        "created_at": info.created_at,
        "started_at": info.started_at,
        "finished_at": info.finished_at,
        "error": info.error,
    }


def status_data(namespace: str, info: RunInfo, metrics: RunMetrics) -> dict[str, Any]:
    data = {"namespace": namespace, **run_row(info)}
    data["items_done"], data["items_total"] = info.items_done, info.items_total
    if info.has_output:
        data["output"] = info.output
    data["retries"] = metrics.retries
    data["reclaimed"] = metrics.reclaimed  # items taken over after their worker went silent (crashes)
    data["nodes"] = {
        name: {**m.model_dump(), "pending": m.pending, "seconds": round(m.seconds, 6)}
        for name, m in sorted(metrics.nodes.items())
    }
    return data


def status_view(data: dict[str, Any], info: RunInfo) -> RenderableType:
    table = Table(title=f"run {info.run_id} ({info.workflow})", title_justify="left", show_edge=False)
    for column in ("NODE", "CREATED", "DONE", "FAILED", "RETRIES", "RECLAIMED", "PENDING", "SECONDS"):
        table.add_column(column, justify="left" if column == "NODE" else "right")
    for name, m in data["nodes"].items():
        table.add_row(
            name,
            *(str(m[k]) for k in ("created", "completed", "failed", "retries", "reclaimed", "pending")),
            f"{m['seconds']:.3f}",
        )
    lines = [
        f"status:   {info.status.value}",
        f"progress: {data['progress']} items",
        f"created:  {info.created_at:%Y-%m-%d %H:%M:%S} ({ago(info.created_at)} ago)",
        f"started:  {info.started_at:%Y-%m-%d %H:%M:%S}" if info.started_at else "started:  -",
        f"finished: {info.finished_at:%Y-%m-%d %H:%M:%S} (took {duration(info)})"
        if info.finished_at
        else "finished: -",
    ]
    if data.get("max_active_runs") is not None:
        place = f"#{data['queue_position']} in line; " if data.get("queue_position") else ""
        lines.append(f"runs:     {place}{data['active_runs']}/{data['max_active_runs']} active")
    if info.has_output:
        lines.append(f"output:   {json_text(info.output)}")
    if info.error:
        lines.append(f"error:    {info.error}")
    grid = Table.grid()
    grid.add_row("\n".join(lines))
    grid.add_row("")
    grid.add_row(table)
    return grid
