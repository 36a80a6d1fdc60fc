"""The work item: one node's input waiting to run, as it is saved and sent between processes."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["WorkItem"]


class WorkItem(BaseModel):
    """A unit of work: run ``node`` on ``payload`` (JSON) for run ``run_id``.

    ``item_id`` is unique within the run and stable across retries and re-deliveries, so
    nodes can key idempotent side effects on it; ``attempt`` counts from 1; ``scope`` is the
    item's fan-out frames (see :mod:`floxide.frames`); ``trace`` is the trace context of the
    span that made the item (W3C ``traceparent`` headers, see :mod:`floxide.tracing`), ``None``
    when tracing is off.
    """

    # NaN and infinities stay what they are (as Python's json writes them), not null
    model_config = ConfigDict(frozen=True, ser_json_inf_nan="constants")

    run_id: str
    item_id: str
    node: str
    attempt: int = Field(1, ge=1)
    scope: tuple[tuple[str, int], ...] = ()
    trace: dict[str, str] | None = None
    payload: Any = None  # last in the JSON: scripts read the fields before it by pattern
