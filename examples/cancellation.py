"""Cancellation from outside: a 2 s node is cancelled after 0.5 s -> ``Cancelled``.

``ctx.cancel()`` interrupts the running node at once; nodes can also check
``ctx.is_cancelled()`` or sleep with ``await ctx.sleep(...)``, which wakes on cancellation.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from floxide import Cancelled, Node, Workflow, WorkflowCtx


class SlowNode(Node[None, str]):
    seconds: float = 2.0

    async def process(self, ctx: WorkflowCtx[Any], input: None) -> str:
        await asyncio.sleep(self.seconds)
        return "finished"


workflow: Workflow[None, str] = Workflow("cancellation", start=SlowNode().named("slow"))


async def run_and_cancel(after: float = 0.5) -> bool:
    """Run the workflow, cancel it after ``after`` seconds; ``True`` if it ended ``Cancelled``."""
    ctx: WorkflowCtx[None] = WorkflowCtx()
    asyncio.get_running_loop().call_later(after, ctx.cancel)
    try:
        await workflow.run(None, ctx=ctx)
    except Cancelled:
        return True
    return False


def main() -> None:
    started = time.monotonic()
    cancelled = asyncio.run(run_and_cancel())
    print(f"cancelled: {cancelled} after {time.monotonic() - started:.2f}s")


if __name__ == "__main__":
    main()
