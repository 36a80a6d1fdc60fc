"""Shared test setup, kept generic for every tier.

* The repository root goes on ``sys.path``, so ``examples`` imports however pytest starts.
* Every async test on its own event loop is checked for leaked asyncio tasks: a task still
  pending 2 s after the test ends fails it (it would otherwise be cancelled silently with the loop).
* Under pytest-xdist (``-n N``, as ``scripts/test.sh`` runs), a test file stays in one process,
  and so does each tier that starts a cluster (:func:`pytest_xdist_make_scheduler`).
* A process's last test also tears down the session's fixtures (a control plane, a Redis
  Cluster) that other files started: that teardown gets a budget of its own
  (:data:`SESSION_TEARDOWN_BUDGET`), not what is left of the last test's timeout.
* Hypothesis runs without its per-example deadline: the property tests check results, and an
  example that is slow because the machine is loaded is not a failure.
"""

from __future__ import annotations

import asyncio
import inspect
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings
from pytest_timeout import _get_item_settings

settings.register_profile("floxide", deadline=None)
settings.load_profile("floxide")

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if not (isinstance(item, pytest.Function) and inspect.iscoroutinefunction(item.obj)):
            continue
        marker = item.get_closest_marker("asyncio")
        if marker is None or marker.kwargs.get("loop_scope", "function") == "function":
            # first: set up before the test's other fixtures and checked after their teardown, so
            # the tasks a fixture runs (a server's connection handlers) are its own to end
            item.fixturenames.insert(0, "_no_leaked_tasks")  # (tests on a shared loop may keep tasks)


SESSION_TEARDOWN_BUDGET = 180.0
"""Seconds for the teardown of a process's last test, which finalises every session fixture."""


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Any:
    """The last test's teardown gets :data:`SESSION_TEARDOWN_BUDGET` from pytest-timeout."""
    if nextitem is not None:
        yield
        return
    timing = _get_item_settings(item)
    if timing.timeout and not timing.func_only:  # re-arm pytest-timeout's timer for this teardown
        hooks = item.config.pluginmanager.hook
        hooks.pytest_timeout_cancel_timer(item=item)
        budget = max(timing.timeout, SESSION_TEARDOWN_BUDGET)
        hooks.pytest_timeout_set_timer(item=item, settings=timing._replace(timeout=budget))
    yield


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Under pytest-xdist, a test file's tests run in one process (its module fixtures start
    once), and so do all the tests of a tier that starts a cluster (one control plane)."""
    from xdist.scheduler import LoadScopeScheduling

    class ByFile(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.partition("::")[0]
            parts = path.split("/")
            return "/".join(parts[:2]) if parts[:2] in (["tests", "cluster"], ["tests", "e2e"]) else path

    return ByFile(config, log)


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
