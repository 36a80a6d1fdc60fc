"""Worker pools in this process, on one :class:`InMemoryBackend` (the Redis tier's counterpart).

``running(workflow, backend, count=2)`` runs ``count`` :class:`DistributedWorker` loops as
tasks and stops them (draining) when the block ends, so no task outlives the test. Their
timings are short (lease, control interval, blocking claim) to keep the tests fast.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from floxide import RetryPolicy, Workflow
from floxide.distributed import DistributedOrchestrator, DistributedWorker, InMemoryBackend

T = TypeVar("T")

FAST_RETRY = RetryPolicy(max_attempts=3, initial_backoff=0.01, max_backoff=0.05)
"""The default policy of in-process workers: as the processes' (3 attempts), but quick."""


def memory_orchestrator(workflow: Workflow[Any, Any]) -> DistributedOrchestrator:
    return DistributedOrchestrator(
        workflow, InMemoryBackend(workflow.name, context_type=workflow.context_type)
    )


@asynccontextmanager
async def running(
    workflow: Workflow[Any, Any],
    backend: Any,
    *,
    count: int = 2,
    concurrency: int = 4,
    lease: float = 1.0,
    drain: float = 1.0,
    retry: RetryPolicy | None = FAST_RETRY,
) -> AsyncIterator[list[DistributedWorker]]:
    """``count`` workers running ``workflow`` until the block ends."""
    workers = [
        DistributedWorker(
            workflow,
            backend,
            worker_id=f"worker-{n}",
            concurrency=concurrency,
            retry=retry,
            lease=lease,
            heartbeat_interval=0.2,
            block=0.05,
            control_interval=0.05,
            drain_grace=drain,
        )
        for n in range(count)
    ]
    tasks = [asyncio.create_task(w.run(), name=w.worker_id) for w in workers]
    try:
        yield workers
    finally:
        for worker in workers:
            worker.stop()
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 10)
    for task in tasks:
        if task.exception() is not None:
            raise AssertionError(f"{task.get_name()} crashed") from task.exception()


async def eventually(check: Callable[[], Awaitable[T]], *, timeout: float, what: str) -> T:
    """Poll ``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.01)


async def until(check: Callable[[], T], *, timeout: float, what: str) -> T:
    """Like :func:`eventually`, for a check that needs no awaiting (marks files, counters)."""

    async def checked() -> T:
        return check()

    return await eventually(checked, timeout=timeout, what=what)
