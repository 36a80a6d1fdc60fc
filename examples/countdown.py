"""A chain of ``steps`` steps, each sleeping ``delay`` seconds; the output is the steps done.

Input: ``{"steps": 3, "delay": 0.1}``. ``tick`` loops on itself, one work item per step,
until ``done`` reaches ``steps``. Sleeps use ``ctx.sleep`` so cancellation interrupts them.
Long countdowns are handy to watch progress, or to stop a worker in the middle of a run.
"""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import BaseModel, Field

from floxide import Workflow, WorkflowCtx, node, otherwise, route, when


class Countdown(BaseModel):
    steps: int = Field(ge=0, description="Steps to run.")
    delay: float = Field(0.1, ge=0, description="Seconds each step sleeps.")
    done: int = Field(0, ge=0, description="Steps done so far.")


@node
async def tick(ctx: WorkflowCtx[Any], countdown: Countdown) -> Countdown:
    if countdown.done >= countdown.steps:
        return countdown
    await ctx.sleep(countdown.delay)
    return countdown.model_copy(update={"done": countdown.done + 1})


def unfinished(countdown: Countdown) -> bool:
    return countdown.done < countdown.steps


workflow: Workflow[Countdown, int] = Workflow(
    "countdown", start=tick, edges=[route(tick, when(unfinished, tick), otherwise(payload="done"))]
)


def main() -> None:
    print(asyncio.run(workflow.run(Countdown(steps=5, delay=0.1))))


if __name__ == "__main__":
    main()
