"""A retry policy declared in the workflow: ``retry={flaky: policy}`` -> "success".

Linear backoff from 50 ms, 3 attempts. The engine re-queues the failed work item after the
wait (in distributed runs, durably), and the node sees the attempt number in ``ctx.attempt``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from floxide import BackoffStrategy, Node, RetryPolicy, Workflow, WorkflowCtx


class FlakyNode(Node[None, str]):
    """Fails its first ``max_failures`` attempts."""

    max_failures: int = 1

    async def process(self, ctx: WorkflowCtx[Any], input: None) -> str:
        if ctx.attempt <= self.max_failures:
            print(f"attempt {ctx.attempt}: failing")
            raise ConnectionError(f"transient failure on attempt {ctx.attempt}")
        print(f"attempt {ctx.attempt}: ok")
        return "success"


flaky = FlakyNode(max_failures=1).named("flaky")
policy = RetryPolicy(max_attempts=3, initial_backoff=0.05, max_backoff=1.0, strategy=BackoffStrategy.LINEAR)
workflow: Workflow[None, str] = Workflow("retry-declared", start=flaky, retry={flaky: policy})


def main() -> None:
    print(asyncio.run(workflow.run(None)))


if __name__ == "__main__":
    main()
