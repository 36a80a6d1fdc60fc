"""The workflows of ``redis_throughput.py``, importable by worker processes.

* ``fanout``: ``split`` turns ``n`` into ``NextAll(range(n))``, one ``noop`` item per value,
  and ``collect`` joins all of them (it receives the list of the ``noop`` outputs).
* ``chain``: one no-op ``step`` that routes back to itself while its output is positive:
  input ``n`` runs ``n`` steps, one work item each, and the run's output is ``0``.

Targets: ``benchmarks.redis_workflows:fanout`` and ``benchmarks.redis_workflows:chain``
(from the repository root).
"""

from __future__ import annotations

from floxide import NextAll, Workflow, edge, join, node, otherwise, route, when


@node
async def split(n: int) -> NextAll[int]:
    return NextAll(list(range(n)))


@node
async def noop(i: int) -> int:
    return i


@node
async def collect(values: list[int]) -> int:
    return len(values)


@node
async def step(n: int) -> int:
    return n - 1


fanout: Workflow[int, int] = Workflow(
    "bench-fanout", start=split, edges=[edge(split, noop), join(noop, collect)]
)

chain: Workflow[int, int] = Workflow(
    "bench-chain", start=step, edges=[route(step, when(lambda n: n > 0, step), otherwise())]
)
