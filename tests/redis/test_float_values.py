"""NaN and infinities travel as they are: a run's input, its successors' payloads, join
arrivals, its context and its output keep them, on Redis and in memory alike (JSON with
``NaN``/``Infinity`` as Python's ``json`` writes them), as a local run does."""

from __future__ import annotations

import math
from typing import Annotated

import pytest
from pydantic import BaseModel

from floxide import Merge, NextAll, Workflow, WorkflowCtx, edge, join, node
from floxide.distributed import DistributedOrchestrator, RunStatus
from tests.distributed.inprocess import running
from tests.redis.conftest import BackendFactory

pytestmark = pytest.mark.timeout(30)

ODD = [math.nan, math.inf, -math.inf, 1.5]


def spelled(values: list[float]) -> list[str]:
    """``values`` as comparable text (NaN is not equal to itself)."""
    return sorted(repr(v) for v in values)


class Seen(BaseModel):
    last: Annotated[float, Merge.replace()] = 0.0


@node
async def spread(ctx: WorkflowCtx[Seen], first: float) -> NextAll[float]:
    assert math.isinf(first) and first < 0, first  # the run's input, as given
    ctx.store.last = math.nan
    return NextAll([first, *ODD])


@node
async def echo(x: float) -> float:
    return x


@node
async def gather(ctx: WorkflowCtx[Seen], values: list[float]) -> dict[str, object]:
    assert math.isnan(ctx.store.last), ctx.store.last  # the context, as the split left it
    return {"values": values, "scale": math.inf}


odd: Workflow[float, dict[str, object]] = Workflow(
    "odd-floats", start=spread, edges=[edge(spread, echo), join(echo, gather)], context=Seen
)


async def test_nan_and_infinities_reach_every_step_and_the_output(make_backend: BackendFactory) -> None:
    backend = make_backend(odd.name, context_type=Seen)
    orchestrator = DistributedOrchestrator(odd, backend)
    local = await odd.execute(odd.validate_input(-math.inf))
    async with running(odd, backend):
        run_id = await orchestrator.start_run(-math.inf)
        info = await orchestrator.wait_for_completion(run_id, timeout=20)
    assert info.status is RunStatus.COMPLETED, info.error
    output = info.output
    assert isinstance(output, dict) and math.isinf(output["scale"])
    assert spelled(output["values"]) == spelled([-math.inf, *ODD]) == spelled(local.output["values"])
    [stored] = await orchestrator.outputs(run_id)
    assert spelled(stored["values"]) == spelled(output["values"])
    context = await orchestrator.context(run_id)
    assert isinstance(context, Seen) and math.isnan(context.last)
