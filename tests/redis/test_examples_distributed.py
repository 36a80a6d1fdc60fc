"""Every example workflow run distributed (two worker processes) gives what a local run gives.

For each example, two ``python -m floxide_worker examples.<name>:workflow`` processes (all
started together, once for the module) run the inputs of ``flows.EXAMPLE_CASES``, all at
once, and each run is compared with ``Workflow.execute`` of the same input in this process
(:func:`tests.distributed.parity.assert_runs_like_local`): the terminal outputs (as a
multiset: parallel branches may finish in any order; the run's output is one of them, the
first one committed), the final context, and a clean ledger (every item committed, nothing
failed). An input that fails locally fails the distributed run with the same node error.

Distributed workers retry nodes without a policy of their own (``DEFAULT_RETRY``), so the
fallback cases (error_fallback, orders' FailPayment, dot_export's -1) reach their fallback
after two retries; the outcome is the same.

Not run here: ``cancellation``, ``timeout``, ``checkpoint`` and ``timer_source`` demonstrate
local-run features; their distributed counterparts (cancel, deadline, durable state) have
tests of their own in ``test_faults.py``.
"""

from __future__ import annotations

import importlib
from typing import Any

import pytest
from redis.asyncio import Redis

from floxide import Workflow
from floxide.distributed import DistributedOrchestrator
from floxide.redis import RedisBackend
from tests.distributed.flows import EXAMPLE_CASES as CASES
from tests.distributed.parity import assert_runs_like_local
from tests.redis.conftest import NAMESPACE, RedisServer, Workers

pytestmark = [pytest.mark.timeout(180)]  # (the first test also waits for 32 processes to start)


@pytest.fixture(scope="module")
def example_workers(shared_workers: Workers, redis_server: RedisServer) -> Workers:
    """Two worker processes per example, started together once for the module (start-up is the slow part)."""
    shared_workers.start_shared([f"examples.{name}:workflow" for name in CASES], url=redis_server.url)
    return shared_workers


@pytest.mark.parametrize("name", sorted(CASES))
async def test_an_example_runs_the_same_distributed(
    name: str, example_workers: Workers, shared_redis: Redis
) -> None:
    example_workers.focus = f"examples.{name}:workflow"
    workflow: Workflow[Any, Any] = importlib.import_module(f"examples.{name}").workflow
    backend = RedisBackend(
        shared_redis, workflow.name, namespace=NAMESPACE, context_type=workflow.context_type
    )
    await assert_runs_like_local(DistributedOrchestrator(workflow, backend), CASES[name], name=name)
