"""Checkpoints: a durable run fails, resumes from its last committed step, and stays done.

``counter`` loops on itself (``Continue(n)``) until ``n`` reaches 5 (``Done(n)``, a
terminal arm). It fails once, at 2. ``run_with_checkpoint`` saves after every step, so:

1. the first run fails at 2 (the failed item stays in the checkpoint);
2. ``resume`` runs 2 -> 3 -> 4 -> 5 and returns 5;
3. ``resume`` again raises ``AlreadyCompleted`` (``run_with_checkpoint`` returns the
   recorded 5 without running anything).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from pydantic import PrivateAttr

from floxide import (
    AlreadyCompleted,
    InMemoryCheckpointStore,
    Node,
    NodeFailed,
    Workflow,
    WorkflowCtx,
    route,
    when,
)


@dataclass(frozen=True)
class Continue:
    n: int


@dataclass(frozen=True)
class Done:
    n: int


class CounterNode(Node[int, Continue | Done]):
    """Counts up to ``max``; fails the first time it sees ``fail_at``."""

    max: int = 5
    fail_at: int | None = 2
    _failed: bool = PrivateAttr(default=False)

    async def process(self, ctx: WorkflowCtx[Any], n: int) -> Continue | Done:
        if n == self.fail_at and not self._failed:
            self._failed = True
            raise RuntimeError(f"test error at {n}")
        return Continue(n + 1) if n + 1 < self.max else Done(n + 1)


def make_workflow(*, fail_at: int | None = 2) -> Workflow[int, int]:
    """A fresh workflow (the failure happens once per counter instance)."""
    counter = CounterNode(fail_at=fail_at).named("counter")
    return Workflow(
        "checkpoint",
        start=counter,
        edges=[route(counter, when(Continue, counter, payload="n"), when(Done, payload="n"))],
    )


workflow = make_workflow()


async def demo() -> None:
    store = InMemoryCheckpointStore()
    try:
        await workflow.run_with_checkpoint(0, store=store, run_id="job1")
    except NodeFailed as exc:
        print(f"first run: {exc}")
    print(f"resume: {await workflow.resume(store=store, run_id='job1')}")
    try:
        await workflow.resume(store=store, run_id="job1")
    except AlreadyCompleted as exc:
        print(f"resume again: {exc}")
    print(f"run_with_checkpoint again: {await workflow.run_with_checkpoint(0, store=store, run_id='job1')}")


def main() -> None:
    asyncio.run(demo())


if __name__ == "__main__":
    main()
