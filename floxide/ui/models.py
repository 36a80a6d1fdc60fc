"""What the dashboard's JSON API returns (the OpenAPI document is generated from these models).

A run is addressed by ``(namespace, workflow, run id)``: run ids are unique per workflow,
and one dashboard may show several namespaces of a Redis.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

from floxide.distributed.models import ErrorRecord, ItemStatus, RunStatus, WorkerStatus
from floxide.run_view import NodeView, RunView
from floxide.steplog import LogEntry

__all__ = [
    "Action",
    "ActionResult",
    "ErrorText",
    "ItemView",
    "NodeDetail",
    "RunDetail",
    "RunList",
    "RunSummary",
    "WorkerList",
    "WorkerView",
]

ERROR_PREVIEW = 160
"""Characters of a run's error shown in the runs list (the run's page shows all of it)."""


class Action(StrEnum):
    """What a person may do to a run (when the dashboard allows actions)."""

    PAUSE = "pause"
    RESUME = "resume"
    CANCEL = "cancel"
    RETRY = "retry"


class RunSummary(BaseModel):
    """One run in the runs list."""

    namespace: str
    workflow: str
    run_id: str
    status: RunStatus
    items_done: int
    items_total: int
    percent: float = Field(description="Items done of items known so far, 0-100.")
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration: float | None = Field(None, description="Seconds from start to end (or to now).")
    error: str | None = Field(None, description=f"The run's error, cut to {ERROR_PREVIEW} characters.")


class RunList(BaseModel):
    """A page of runs, newest first, and the choices of the filters."""

    runs: list[RunSummary]
    page: int = Field(description="Page number, from 1.")
    per_page: int
    more: bool = Field(description="Whether a next page has runs.")
    namespaces: list[str] = Field(description="Namespaces this dashboard shows.")
    workflows: list[str] = Field(description="Workflows of the chosen namespace(s).")


class RunDetail(BaseModel):
    """A run: its graph's nodes with counts and states, its input, output and context."""

    namespace: str
    view: RunView
    input: Any = Field(None, description="The input the run was started with (if kept).")
    input_kept: bool = Field(description="False when the input was too large to keep, or not recorded.")
    input_note: str = ""
    outputs: list[Any] = Field(default_factory=list, description="Every terminal output, in order.")
    context: dict[str, Any] | None = Field(None, description="The run's context as stored.")
    actions: list[Action] = Field(description="Actions this run allows now (empty when read-only).")


class ItemView(BaseModel):
    """A work item of a node: its status and attempts."""

    item_id: str
    status: ItemStatus
    attempt: int
    updated_at: datetime


class ErrorText(ErrorRecord):
    """A failure of one item of the node, with its traceback."""


class NodeDetail(BaseModel):
    """A node of a run: its counts, latest items, errors (newest first) and logged lines."""

    namespace: str
    workflow: str
    run_id: str
    node: NodeView
    items: list[ItemView] = Field(description="The node's latest items, newest first.")
    item_counts: dict[str, int] = Field(description="The node's items by status.")
    errors: list[ErrorText] = Field(description="The node's recorded failures, newest first.")
    logs: list[LogEntry] = Field(
        default_factory=list, description="The latest lines the node's steps logged (ctx.log), oldest first."
    )


class WorkerView(BaseModel):
    """A live worker."""

    namespace: str
    worker_id: str
    workflow: str
    status: WorkerStatus
    current: list[str] = Field(description="'run_id/item_id' of the steps it runs now.")
    concurrency: int
    processed: int = Field(description="Steps it finished.")
    failed: int = Field(description="Steps that failed.")
    heartbeat_age: float = Field(description="Seconds since its last heartbeat.")
    started_at: datetime
    last_heartbeat: datetime


class WorkerList(BaseModel):
    """The live workers of the shown namespaces."""

    workers: list[WorkerView]


class ActionResult(BaseModel):
    """What an action did: the run's status after it."""

    namespace: str
    workflow: str
    run_id: str
    action: Action
    status: RunStatus
