"""Comparing distributed runs with local runs of the same workflow and input.

A distributed run matches a local one when it has the same terminal outputs (as a multiset:
parallel branches may finish in any order, and the run's output is the first one
committed), the same final context, and a clean ledger (every item committed, nothing
failed). An input that fails locally must fail the distributed run with the same node error.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from pydantic_core import to_jsonable_python

from floxide import NodeFailed, Workflow
from floxide.distributed import DistributedOrchestrator, RunStatus


def canonical(values: list[Any]) -> list[str]:
    return sorted(json.dumps(v, sort_keys=True) for v in values)


async def local_result(workflow: Workflow[Any, Any], value: Any) -> tuple[Any, Any, Any] | NodeFailed:
    """``(output, outputs, context)`` of a local run (JSON), or the run's error."""
    try:
        result = await workflow.execute(workflow.validate_input(value))
    except NodeFailed as exc:
        return exc
    return to_jsonable_python(result.output), to_jsonable_python(result.outputs), result.context


async def assert_runs_like_local(
    orchestrator: DistributedOrchestrator, inputs: list[Any], *, name: str, timeout: float = 60
) -> None:
    """Run every input distributed (all at once) and compare each run with a local run."""
    workflow = orchestrator.workflow
    run_ids = [await orchestrator.start_run(value) for value in inputs]
    expected = [await local_result(workflow, value) for value in inputs]
    infos = await asyncio.gather(*(orchestrator.wait_for_completion(r, timeout=timeout) for r in run_ids))
    for value, run_id, info, local in zip(inputs, run_ids, infos, expected, strict=True):
        where = f"{name}({value!r})"
        if isinstance(local, NodeFailed):
            assert info.status is RunStatus.FAILED, where
            assert info.error is not None and str(local.__cause__) in info.error, (where, info.error, local)
            continue
        output, outputs, context = local
        assert info.status is RunStatus.COMPLETED, (where, info.error)
        distributed = await orchestrator.outputs(run_id)
        assert canonical(distributed) == canonical(outputs), where
        assert info.output in distributed, where
        if len(outputs) == 1:
            assert info.output == output, where
        assert await orchestrator.context(run_id) == context, where
        metrics = await orchestrator.metrics(run_id)
        assert metrics.failed == 0 and metrics.completed == info.items_done == info.items_total, where
