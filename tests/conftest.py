"""Shared test setup, kept generic for every tier.

* The repository root goes on ``sys.path``, so ``examples`` imports however pytest starts.
* Every async test on its own event loop is checked for leaked asyncio tasks: a task still
  pending 2 s after the test ends fails it (it would otherwise be cancelled silently with the loop).
* Under pytest-xdist (``-n N --dist loadgroup``, as ``scripts/test.sh`` runs), a test file stays
  in one process, and so does each tier that starts a cluster.
"""

from __future__ import annotations

import asyncio
import inspect
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        item.add_marker(pytest.mark.xdist_group(_group(item)))
        if not (isinstance(item, pytest.Function) and inspect.iscoroutinefunction(item.obj)):
            continue
        marker = item.get_closest_marker("asyncio")
        if marker is None or marker.kwargs.get("loop_scope", "function") == "function":
            # first: set up before the test's other fixtures and checked after their teardown, so
            # the tasks a fixture runs (a server's connection handlers) are its own to end
            item.fixturenames.insert(0, "_no_leaked_tasks")  # (tests on a shared loop may keep tasks)


def _group(item: pytest.Item) -> str:
    """The xdist group (``--dist loadgroup``): a test file's tests run in one process, so its
    module fixtures start once; the tiers that start a cluster run in one process each."""
    path = Path(str(item.path)).relative_to(ROOT)
    if path.parts[:2] in (("tests", "cluster"), ("tests", "e2e")):
        return "/".join(path.parts[:2])
    return path.as_posix()


@pytest.fixture
async def _no_leaked_tasks() -> AsyncIterator[None]:
    before = asyncio.all_tasks()
    yield
    deadline = asyncio.get_running_loop().time() + 2.0
    while True:  # let tasks that are being cancelled or closed finish (slower on a loaded machine)
        await asyncio.sleep(0.01)
        leaked = asyncio.all_tasks() - before - {asyncio.current_task()}
        if not leaked or asyncio.get_running_loop().time() > deadline:
            break
    for task in leaked:
        task.cancel()
    if leaked:
        await asyncio.gather(*leaked, return_exceptions=True)
        pytest.fail(f"the test left {len(leaked)} asyncio task(s) running: {sorted(map(repr, leaked))}")
