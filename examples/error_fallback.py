"""A fallback edge: ``fail`` always raises, ``on_failure`` sends its input to ``recovery``.

Output: "recovered". Without the fallback the run would fail with ``NodeFailed``.
"""

from __future__ import annotations

import asyncio

from floxide import Workflow, node, on_failure


@node
async def fail(_: None) -> str:
    raise RuntimeError("this node always fails")


@node
async def recovery(_: None) -> str:
    return "recovered"


workflow: Workflow[None, str] = Workflow("error-fallback", start=fail, edges=[on_failure(fail, recovery)])


def main() -> None:
    print(asyncio.run(workflow.run(None)))


if __name__ == "__main__":
    main()
