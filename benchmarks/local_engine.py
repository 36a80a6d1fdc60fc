"""Local engine throughput, side by side with a plain loop awaiting the same node functions.

Workloads, on the in-memory default (``Workflow.execute``, no checkpoints):

* a linear chain of 100,000 distinct nodes (one step each);
* a 10,000-way fan-out (``NextAll``) whose branches are joined (``join``) into one sum.

Each runs with two node functions: ``instant`` returns at once (the baseline is then the
bare cost of an ``await``, about 0.1 us) and ``yielding`` awaits ``asyncio.sleep(0)``
once, the least a node doing real I/O does. The baseline awaits the
same functions in a plain ``for`` loop. Times are the best of ``--repeat`` runs.

Targets: at least 100,000 steps/s on the chain, and the engine taking at most 10 times as
long as the plain loop.

    python benchmarks/local_engine.py             # the full sizes
    python benchmarks/local_engine.py --quick     # small sizes, a smoke run
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from floxide import NextAll, Workflow, edge, join, node

CHAIN_TARGET = 100_000  # steps per second
OVERHEAD_TARGET = 10.0  # engine time / plain loop time

NodeFn = Callable[[int], Awaitable[int]]


async def instant(x: int) -> int:
    return x + 1


async def yielding(x: int) -> int:
    await asyncio.sleep(0)
    return x + 1


async def spread(n: int) -> NextAll[int]:
    return NextAll(list(range(n)))


async def total(values: list[int]) -> int:
    return sum(values)


@dataclass(frozen=True)
class Result:
    workload: str
    steps: int
    engine: float  # seconds
    baseline: float  # seconds

    @property
    def ratio(self) -> float:
        return self.engine / self.baseline


def chain_workflow(fn: NodeFn, length: int) -> Workflow[int, int]:
    base = node(fn)
    nodes = [base.named(f"step{i}") for i in range(length)]
    return Workflow("chain", start=nodes[0], edges=[edge(a, b) for a, b in pairwise(nodes)])


def fan_out_workflow(fn: NodeFn) -> Workflow[int, int]:
    split, work, merge = node(spread), node(fn).named("work"), node(total)
    return Workflow("fan-out", start=split, edges=[edge(split, work), join(work, merge)])


async def best_time(repeat: int, run: Callable[[], Awaitable[Any]], expected: Any) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        result = await run()
        best = min(best, time.perf_counter() - started)
        assert result == expected, f"wrong result {result!r}, expected {expected!r}"
    return best


async def bench_chain(fn: NodeFn, length: int, repeat: int) -> Result:
    workflow = chain_workflow(fn, length)

    async def engine() -> int:
        return (await workflow.execute(0)).output  # type: ignore[no-any-return]

    async def plain() -> int:
        x = 0
        for _ in range(length):
            x = await fn(x)
        return x

    return Result(
        f"chain, {fn.__name__}",
        length,
        await best_time(repeat, engine, length),
        await best_time(repeat, plain, length),
    )


async def bench_fan_out(fn: NodeFn, width: int, repeat: int) -> Result:
    workflow = fan_out_workflow(fn)
    expected = sum(range(1, width + 1))

    async def engine() -> int:
        return (await workflow.execute(width)).output  # type: ignore[no-any-return]

    async def plain() -> int:
        items = (await spread(width)).values
        return await total([await fn(i) for i in items])

    return Result(
        f"fan-out + join, {fn.__name__}",
        width + 2,
        await best_time(repeat, engine, expected),
        await best_time(repeat, plain, expected),
    )


def report(results: list[Result], *, chain_length: int, width: int) -> None:
    print(
        f"Floxide local engine, Python {platform.python_version()} ({platform.machine()}), in-memory default"
    )
    print(f"chain: {chain_length:,} nodes; fan-out: {width:,} branches joined; best of the repeats\n")
    header = f"{'workload':<28}{'steps':>9}{'engine steps/s':>17}{'plain loop steps/s':>21}{'ratio':>8}"
    print(header)
    print("-" * len(header))
    for r in results:
        rates = f"{r.steps / r.engine:>17,.0f}{r.steps / r.baseline:>21,.0f}"
        print(f"{r.workload:<28}{r.steps:>9,}{rates}{r.ratio:>7.1f}x")
    print("\ntargets")
    for r in results:
        checks = []
        if r.workload.startswith("chain"):
            rate = r.steps / r.engine
            checks.append((rate >= CHAIN_TARGET, f"{rate:,.0f} steps/s (target >= {CHAIN_TARGET:,})"))
        checks.append(
            (r.ratio <= OVERHEAD_TARGET, f"overhead {r.ratio:.1f}x (target <= {OVERHEAD_TARGET:g}x)")
        )
        verdict = "met" if all(ok for ok, _ in checks) else "NOT met"
        print(f"  {r.workload:<28}{verdict:<9}{'; '.join(text for _, text in checks)}")


async def run(chain_length: int, width: int, repeat: int) -> list[Result]:
    results = []
    for fn in (instant, yielding):
        results.append(await bench_chain(fn, chain_length, repeat))
    for fn in (instant, yielding):
        results.append(await bench_fan_out(fn, width, repeat))
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--chain", type=int, default=100_000, help="nodes in the linear chain")
    parser.add_argument("--fan-out", type=int, default=10_000, help="branches of the fan-out")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement (the best counts)")
    parser.add_argument("--quick", action="store_true", help="small sizes, one run: a smoke test")
    args = parser.parse_args(argv)
    if args.quick:
        args.chain, args.fan_out, args.repeat = 2_000, 500, 1
    results = asyncio.run(run(args.chain, args.fan_out, args.repeat))
    report(results, chain_length=args.chain, width=args.fan_out)


if __name__ == "__main__":
    main()
