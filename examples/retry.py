"""``with_retry``: a node that fails twice succeeds on its 3rd attempt.

The policy allows 5 attempts with exponential backoff from 100 ms (capped at 2 s), so the
waits are 100 ms, then 200 ms. The retries happen inside one step of the run.
"""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import PrivateAttr

from floxide import BackoffStrategy, Node, RetryPolicy, Workflow, WorkflowCtx, with_retry


class FlakyNode(Node[str, str]):
    """Fails the first ``max_failures`` attempts of each run, then succeeds."""

    max_failures: int = 2
    _attempts: dict[str, int] = PrivateAttr(default_factory=dict)

    async def process(self, ctx: WorkflowCtx[Any], input: str) -> str:
        attempt = self._attempts[ctx.run_id] = self._attempts.get(ctx.run_id, 0) + 1
        if attempt <= self.max_failures:
            print(f"attempt {attempt}: failing")
            raise ConnectionError(f"transient failure #{attempt}")
        print(f"attempt {attempt}: ok")
        return f"{input} succeeded on attempt {attempt}"


policy = RetryPolicy(
    max_attempts=5, initial_backoff=0.1, max_backoff=2.0, strategy=BackoffStrategy.EXPONENTIAL
)
flaky = with_retry(FlakyNode(max_failures=2), policy)
workflow: Workflow[str, str] = Workflow("retry", start=flaky)


def main() -> None:
    print(asyncio.run(workflow.run("flaky call")))


if __name__ == "__main__":
    main()
