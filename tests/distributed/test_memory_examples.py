"""Every example workflow run distributed on the in-memory backend gives what a local run gives.

Cases:
* every example module has inputs in ``flows.EXAMPLE_CASES``, except ``LOCAL_ONLY``
  (local-run features: cancellation, timeout, checkpoint, timer_source);
* two in-process :class:`DistributedWorker` loops sharing one :class:`InMemoryBackend` run
  each example's inputs, compared with ``Workflow.execute`` by
  :func:`tests.distributed.parity.assert_runs_like_local`: outputs, context, clean ledger;
  an input that fails locally fails the distributed run with the same node error. The same
  cases run on Redis with worker processes in ``tests/redis/test_examples_distributed.py``.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

import pytest

import examples
from floxide import Workflow
from tests.distributed.flows import EXAMPLE_CASES
from tests.distributed.inprocess import memory_orchestrator, running
from tests.distributed.parity import assert_runs_like_local

pytestmark = pytest.mark.timeout(30)

LOCAL_ONLY = {"cancellation", "timeout", "checkpoint", "timer_source"}
"""Examples of local-run features; their distributed counterparts have tests of their own."""


def test_every_example_has_distributed_cases() -> None:
    modules = {m.name for m in pkgutil.iter_modules(examples.__path__) if not m.ispkg}
    assert modules - LOCAL_ONLY == set(EXAMPLE_CASES)


@pytest.mark.parametrize("name", sorted(EXAMPLE_CASES))
async def test_an_example_runs_the_same_in_memory(name: str) -> None:
    workflow: Workflow[Any, Any] = importlib.import_module(f"examples.{name}").workflow
    orchestrator = memory_orchestrator(workflow)
    async with running(workflow, orchestrator.backend, count=2):
        await assert_runs_like_local(orchestrator, EXAMPLE_CASES[name], name=name, timeout=20)
