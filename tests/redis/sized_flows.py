"""A workflow whose values grow on demand, for the payload size limit (``FLOXIDE_MAX_PAYLOAD_BYTES``).

``sized``: ``grow(Sized) -> finish(Sized) -> str``. ``Sized.where`` says which value is made
``size`` bytes large: ``child`` (the input ``grow`` sends to ``finish``), ``context`` (the
context field ``notes``, written by ``grow``) or ``output`` (the run's output, from ``finish``);
``none`` makes nothing large. ``grow`` also adds 1 to the summed context field ``steps``, so a
refused step shows that none of its changes were written. Worker processes load it as
``tests.redis.sized_flows:sized``.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field

from floxide import Merge, Workflow, WorkflowCtx, edge, node


class Notes(BaseModel):
    notes: str = ""
    steps: Annotated[int, Merge.sum()] = 0


class Sized(BaseModel):
    size: int = Field(0, ge=0)
    where: Literal["none", "child", "context", "output"] = "none"
    pad: str = ""


@node
async def grow(ctx: WorkflowCtx[Notes], job: Sized) -> Sized:
    ctx.store.steps += 1
    if job.where == "context":
        ctx.store.notes = "n" * job.size
    if job.where == "child":
        return job.model_copy(update={"pad": "c" * job.size})
    return job


@node
async def finish(job: Sized) -> str:
    return "o" * job.size if job.where == "output" else "done"


sized: Workflow[Sized, str] = Workflow("sized", start=grow, context=Notes, edges=[edge(grow, finish)])
