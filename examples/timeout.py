"""A run deadline: a 2 s node under a 0.5 s run timeout -> ``Timeout``.

The deadline covers the whole run (Floxide's applies per node). Set it per run with
``WorkflowCtx(timeout=...)`` or for every run with ``Workflow(..., timeout=...)``; per-node
limits are ``Workflow(..., timeouts={node: seconds})``.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from floxide import Node, Timeout, Workflow, WorkflowCtx


class SlowNode(Node[None, str]):
    seconds: float = 2.0

    async def process(self, ctx: WorkflowCtx[Any], input: None) -> str:
        await asyncio.sleep(self.seconds)
        return "finished"


workflow: Workflow[None, str] = Workflow("timeout", start=SlowNode().named("slow"))


async def run_with_deadline(seconds: float = 0.5) -> bool:
    """Run the workflow with a deadline; ``True`` if it ended with ``Timeout``."""
    try:
        await workflow.run(None, ctx=WorkflowCtx(timeout=seconds))
    except Timeout as exc:
        print(f"error: {exc}")
        return True
    return False


def main() -> None:
    started = time.monotonic()
    timed_out = asyncio.run(run_with_deadline())
    print(f"timed out: {timed_out} after {time.monotonic() - started:.2f}s")


if __name__ == "__main__":
    main()
