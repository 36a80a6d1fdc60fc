"""A ``Source``: one run per value received on a channel.

A producer sends 0..9, one every ``interval`` seconds (200 ms by default), then closes the
channel. Each value runs ``doubler -> printer``, one run after another, so the outputs are
0, 2, 4, ..., 18 in order.
"""

from __future__ import annotations

import asyncio

from floxide import Sender, Workflow, edge, node, source


@node
async def doubler(x: int) -> int:
    return x * 2


@node
async def printer(x: int) -> int:
    print(f"tick -> {x}")
    return x


workflow: Workflow[int, int] = Workflow("timer-source", start=doubler, edges=[edge(doubler, printer)])


async def produce(sender: Sender[int], *, count: int, interval: float) -> None:
    for value in range(count):
        await sender.send(value)
        await asyncio.sleep(interval)
    await sender.close()


async def run(*, count: int = 10, interval: float = 0.2) -> list[int]:
    """Feed ``count`` values through the workflow; returns the outputs in order."""
    sender, values = source()
    async with asyncio.TaskGroup() as group:
        group.create_task(produce(sender, count=count, interval=interval))
        outputs = [output async for output in values.outputs(workflow)]
    return outputs


def main() -> None:
    print(asyncio.run(run()))


if __name__ == "__main__":
    main()
