"""Structured logs of the worker process.

Cases:
* ``json``: one JSON object per line with time, level, logger, message, the work item's
  fields and the worker id; tracebacks go in ``error``; both formatters (python-json-logger's
  and ours) do this;
* ``text``: a ``[run=.. node=.. item=..]`` prefix;
* inside a step (after :class:`StepContext` saw the claim), any logger's lines carry run,
  node and item, and never leak into another step's task.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator

import pytest
from floxide_worker import logs

from floxide.distributed.models import Claim
from floxide.workitem import WorkItem


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def claim(run: str, node: str, item: str) -> Claim:
    return Claim(item=WorkItem(run_id=run, item_id=item, node=node, payload=None), delivery="1-0")


@pytest.mark.usefixtures("restore_logging")
@pytest.mark.parametrize("library", [True, False], ids=["python-json-logger", "builtin"])
def test_json_lines_carry_the_work_item(library: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    if not library:
        monkeypatch.setattr(logs, "json_formatter", logs.JsonFormatter)
    stream = io.StringIO()
    logs.configure(format="json", level=logging.INFO, worker_id="w-1", stream=stream)
    log = logging.getLogger("floxide.distributed.worker")
    fields = {
        "run": "r1",
        "node": "tick",
        "item": "root",
        "attempt": 1,
        "result": "committed",
        "seconds": 0.25,
    }
    log.info("%s in %.3fs", "committed", 0.25, extra=fields)
    log.debug("not shown")
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        log.exception("step crashed", extra={"run": "r1", "node": "tick"})
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert len(lines) == 2
    first, second = lines
    assert first["message"] == "committed in 0.250s"
    assert {k: first[k] for k in fields} == fields
    assert (first["level"], first["logger"], first["worker"]) == ("INFO", "floxide.distributed.worker", "w-1")
    assert first["time"].startswith("20") and "T" in first["time"]
    assert (second["level"], second["run"], second["node"]) == ("ERROR", "r1", "tick")
    assert "RuntimeError: boom" in second["error"]


@pytest.mark.usefixtures("restore_logging")
def test_text_lines_have_a_run_node_item_prefix() -> None:
    stream = io.StringIO()
    logs.configure(format="text", level=logging.INFO, worker_id="w-1", stream=stream)
    logging.getLogger("floxide.distributed.worker").info(
        "committed in 0.250s", extra={"run": "r1", "node": "tick", "item": "root", "result": "committed"}
    )
    logging.getLogger("x").warning("no run here")
    first, second = stream.getvalue().splitlines()
    assert first.endswith(" INFO floxide.distributed.worker [run=r1 node=tick item=root] committed in 0.250s")
    assert second.endswith(" WARNING x no run here")


@pytest.mark.usefixtures("restore_logging")
async def test_lines_logged_inside_a_step_carry_its_run_and_node() -> None:
    stream = io.StringIO()
    logs.configure(format="json", level=logging.INFO, worker_id="w-1", stream=stream)
    hooks = logs.StepContext()
    node_log = logging.getLogger("user.node")

    async def step(run: str, node: str, item: str) -> None:
        c = claim(run, node, item)
        hooks.on_claim(c)
        await asyncio.sleep(0.01)  # the other step runs meanwhile
        node_log.info("working on %s", item)
        hooks.on_result(c, "committed", 0.01)
        node_log.info("after the step")

    await asyncio.gather(
        asyncio.create_task(step("r1", "a", "i1")), asyncio.create_task(step("r2", "b", "i2"))
    )
    node_log.info("outside")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    inside = {
        line["item"]: (line["run"], line["node"]) for line in lines if line["message"].startswith("working")
    }
    assert inside == {"i1": ("r1", "a"), "i2": ("r2", "b")}
    assert all("run" not in line for line in lines if not line["message"].startswith("working"))
