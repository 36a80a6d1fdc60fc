"""What the distributed commands share to show runs: JSON text, times and spans, a run's row.

The views of ``status``, ``runs``, ``errors`` and ``workers`` are in :mod:`floxide.cli_views`.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic_core import to_jsonable_python

from floxide.distributed.models import RunInfo

__all__ = ["ago", "duration", "json_text", "run_row", "span"]


def json_text(value: Any) -> str:
    return json.dumps(to_jsonable_python(value, fallback=repr), ensure_ascii=False)


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
