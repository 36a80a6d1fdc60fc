"""``DistributedOrchestrator``: start, watch and steer distributed runs of one workflow."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from floxide.distributed.execution import start_run
from floxide.distributed.models import (
    ErrorRecord,
    RunInfo,
    RunMetrics,
    RunStatus,
    WorkerHealth,
    WorkItemState,
    utcnow,
)
from floxide.distributed.payloads import DEFAULT_MAX_PAYLOAD_BYTES
from floxide.distributed.protocols import Backend
from floxide.errors import AlreadyCompleted, FloxideError, NotStarted
from floxide.errors import Timeout as RunTimeout
from floxide.workitem import WorkItem

if TYPE_CHECKING:
    from floxide.workflow import Workflow

__all__ = ["DistributedOrchestrator"]


class DistributedOrchestrator:
    """Controls runs of ``workflow`` stored in ``backend``; workers do the work."""

    def __init__(
        self,
        workflow: Workflow[Any, Any],
        backend: Backend,
        *,
        max_payload_bytes: int | None = DEFAULT_MAX_PAYLOAD_BYTES,
    ) -> None:
        self.workflow = workflow
        self.backend = backend
        self.max_payload_bytes = max_payload_bytes
        """Largest input (bytes of JSON) :meth:`start_run` accepts; ``None``: no limit."""

    async def start_run(
        self,
        input: Any,
        *,
        run_id: str | None = None,
        context: Any = None,
        deadline_seconds: float | None = None,
        idempotency_key: str | None = None,
        priority: str = "normal",
    ) -> str:
        """Seed a run and return its id (idempotent for a given ``run_id``, and for a given
        ``idempotency_key``: a retried call returns the first run's id). ``priority``: ``high``,
        ``normal`` or ``low``; workers take a higher class's items first
        (:mod:`floxide.distributed.priority`)."""
        return await start_run(
            self.workflow,
            self.backend,
            input,
            run_id=run_id,
            context=context,
            deadline_seconds=deadline_seconds,
            max_payload_bytes=self.max_payload_bytes,
            idempotency_key=idempotency_key,
            priority=priority,
        )

    async def status(self, run_id: str) -> RunStatus:
        """The run's status; :class:`NotStarted` for an unknown run."""
        return (await self.run(run_id)).status

    async def run(self, run_id: str) -> RunInfo:
        """The run's record; :class:`NotStarted` for an unknown run."""
        info = await self.backend.runs.get(run_id)
        if info is None:
            raise NotStarted(f"run '{run_id}' does not exist (or has expired)")
        return info

    async def list_runs(self, status: RunStatus | None = None, *, limit: int = 1000) -> list[RunInfo]:
        """Runs, newest first."""
        return await self.backend.runs.list(status, limit=limit)

    async def pause(self, run_id: str) -> RunStatus:
        """Hold the run's items unprocessed until :meth:`resume`."""
        return await self._move(run_id, RunStatus.PAUSED)

    async def resume(self, run_id: str) -> RunStatus:
        """Continue a paused run."""
        info = await self.run(run_id)
        if info.status is RunStatus.FAILED:
            raise FloxideError(f"run '{run_id}' failed; use retry() to run it again from where it failed")
        return await self._move(run_id, RunStatus.RUNNING)

    async def retry(self, run_id: str, *, deadline_seconds: float | None = None) -> RunStatus:
        """Run a failed run again from where it failed: its failed and parked items are re-queued.

        The run's old deadline is cleared; ``deadline_seconds`` gives it a new one from now.
        """
        info = await self.run(run_id)
        if info.status is not RunStatus.FAILED:
            raise FloxideError(f"run '{run_id}' is {info.status.value}; only a Failed run can be retried")
        deadline = None if deadline_seconds is None else utcnow() + timedelta(seconds=deadline_seconds)
        return await self._move(run_id, RunStatus.RUNNING, deadline=deadline)

    async def cancel(self, run_id: str, *, interrupt: bool = True) -> RunStatus:
        """Cancel the run: its queued items are dropped; ``interrupt`` also cancels running steps."""
        return await self._move(run_id, RunStatus.CANCELLED, reason="cancelled", interrupt=interrupt)

    async def _move(self, run_id: str, status: RunStatus, **kw: Any) -> RunStatus:
        current = await self.backend.set_status(run_id, status, **kw)
        if current is None:
            raise NotStarted(f"run '{run_id}' does not exist (or has expired)")
        if current is not status:
            raise AlreadyCompleted(f"run '{run_id}' is {current.value}; it cannot become {status.value}")
        return current

    async def wait_for_completion(
        self, run_id: str, *, timeout: float | None = None, poll: float = 0.05
    ) -> RunInfo:
        """Wait until the run is Completed, Failed or Cancelled; :class:`Timeout` after ``timeout`` s."""
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = poll
        while True:
            info = await self.run(run_id)
            if info.status.finished:
                return info
            if deadline is not None and time.monotonic() >= deadline:
                raise RunTimeout(timeout or 0.0, scope=f"waiting for run '{run_id}'")
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 1.0)

    async def output(self, run_id: str) -> Any:
        """The run's first terminal output, typed as the workflow's output where possible."""
        info = await self.run(run_id)
        if not info.has_output:
            raise FloxideError(f"run '{run_id}' has no output ({info.status.value})")
        return info.output

    async def outputs(self, run_id: str) -> list[Any]:
        """Every terminal output of the run (JSON), in commit order."""
        return await self.backend.runs.outputs(run_id)

    async def metrics(self, run_id: str) -> RunMetrics:
        """Per-run and per-node counts and durations."""
        return await self.backend.metrics.get(run_id)

    async def errors(self, run_id: str) -> list[ErrorRecord]:
        """Every recorded failure of the run's items."""
        return await self.backend.errors.list(run_id)

    async def liveness(self) -> list[WorkerHealth]:
        """The workers with a live heartbeat."""
        return await self.backend.liveness.list()

    async def context(self, run_id: str) -> Any:
        """The run's current context (a model instance, or ``None`` without a context type)."""
        await self.run(run_id)
        return self.workflow.load_context(await self.backend.contexts.get(run_id))

    async def pending_work(self, run_id: str) -> list[WorkItem]:
        """The run's items not yet committed."""
        return await self.backend.queue.pending(run_id)

    async def list_work_items(self, run_id: str) -> list[WorkItemState]:
        """The state of every item of the run."""
        return await self.backend.items.list(run_id)
