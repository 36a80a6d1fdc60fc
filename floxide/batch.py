"""``BatchNode``: run a node over every element of a list, concurrently, keeping order."""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import Field, InstanceOf

from floxide.context import WorkflowCtx
from floxide.node import Node
from floxide.transition import Abort, Hold, Next, NextAll

__all__ = ["BatchNode"]


class BatchNode(Node[list[Any], list[Any]]):
    """Runs ``inner`` on each input element, at most ``batch_size`` at once.

    The output lists the results in input order: ``Next(v)`` contributes ``v``,
    ``NextAll(vs)`` contributes every ``v``, ``Hold`` contributes nothing. The first failure
    (``Abort`` or an exception) cancels the rest and fails the step. Each element's step
    sees the same context copy.
    """

    inner: InstanceOf[Node[Any, Any]]
    batch_size: int = Field(8, ge=1)

    async def process(self, ctx: WorkflowCtx[Any], input: list[Any]) -> Next[list[Any]]:
        invoke = self.inner.invoker()
        gate = asyncio.Semaphore(self.batch_size)

        async def one(value: Any) -> list[Any]:
            async with gate:
                result = await invoke(ctx, value)
            if isinstance(result, Abort):
                raise result.exception()
            if isinstance(result, Hold):
                return []
            if isinstance(result, NextAll):
                return list(result.values)
            return [result.value if isinstance(result, Next) else result]

        try:
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(one(value)) for value in input]
        except ExceptionGroup as failed:  # fail with the first error itself, so policies see its type
            raise failed.exceptions[0] from None
        return Next([value for task in tasks for value in task.result()])

    @property
    def name(self) -> str:
        return self._name or f"{self.inner.name}_batch"

    @property
    def input_type(self) -> Any:
        return list[self.inner.input_type]  # type: ignore[name-defined]

    @property
    def output_type(self) -> Any:
        return list[self.inner.output_type]  # type: ignore[name-defined]
