"""A single node that is both the start and the terminal node: 7 -> 21.

The smallest workflow: no edges, no context. The node's return value is the run's output.
"""

from __future__ import annotations

import asyncio

from floxide import Workflow, node


@node
async def triple(x: int) -> int:
    return x * 3


workflow: Workflow[int, int] = Workflow("terminal-node", start=triple)


def main() -> None:
    print(asyncio.run(workflow.run(7)))


if __name__ == "__main__":
    main()
