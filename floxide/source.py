"""``Source``: drive one run per value received on a channel (Floxide's ``source()``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from floxide.context import WorkflowCtx

if TYPE_CHECKING:
    from floxide.workflow import Workflow

__all__ = ["Sender", "Source", "source"]

T = TypeVar("T")
_CLOSED = object()


class Sender(Generic[T]):
    """The sending end: ``await send(value)``, then ``await close()`` when done."""

    def __init__(self, queue: asyncio.Queue[Any]) -> None:
        self._queue = queue
        self._closed = False

    async def send(self, value: T) -> None:
        """Send a value (waits while the channel is full)."""
        if self._closed:
            raise RuntimeError("cannot send on a closed source")
        await self._queue.put(value)

    async def close(self) -> None:
        """Close the channel; the source finishes after the values already sent."""
        if not self._closed:
            self._closed = True
            await self._queue.put(_CLOSED)


class Source(Generic[T]):
    """The receiving end: runs a workflow for each value, one after another."""

    def __init__(self, queue: asyncio.Queue[Any]) -> None:
        self._queue = queue

    async def outputs(
        self, workflow: Workflow[T, Any], *, ctx: WorkflowCtx[Any] | None = None
    ) -> AsyncIterator[Any]:
        """Yield each run's output until the channel is closed. A failing run raises."""
        while (value := await self._queue.get()) is not _CLOSED:
            yield await workflow.run(value, ctx=ctx)

    async def run(self, workflow: Workflow[T, Any], *, ctx: WorkflowCtx[Any] | None = None) -> int:
        """Run the workflow for every value until the channel closes; returns the run count."""
        count = 0
        async for _ in self.outputs(workflow, ctx=ctx):
            count += 1
        return count


def source(capacity: int = 0) -> tuple[Sender[Any], Source[Any]]:
    """A channel of ``capacity`` values (0: unbounded) and the source reading it."""
    queue: asyncio.Queue[Any] = asyncio.Queue(capacity)
    return Sender(queue), Source(queue)
