"""The run view and run pictures, read from the stores on Redis and in memory alike.

Steps are driven one at a time in this process, so every state in between can be looked at.

Cases:
* graph order: breadth-first from the start node, every node listed, unknown ones last;
* a fresh fan-out run: every node listed in graph order, the unreached ones ``idle``; after
  the spread step the branches are queued, one claimed branch is running (from the item
  states), progress counts items done of items known, the ETA appears once something is done;
* a cancelled run shows nothing pending or queued: its unfinished items are ``cancelled``;
* a completed run is 100 % with every node done and an ETA of 0;
* pictures: DOT colours each node by state with its counts and an SVG id; Mermaid has a class
  per state; Graphviz lays the DOT out into SVG and PNG.
"""

from __future__ import annotations

import shutil
from typing import Any

import pytest

from floxide.distributed import DistributedWorker, RunStatus, start_run
from floxide.run_picture import COLOURS, PictureFormat, counts_text, render, to_dot, to_mermaid
from floxide.run_view import NodeState, graph_order, read_run_view
from tests.distributed.flows import fanout
from tests.redis.conftest import BackendFactory

pytestmark = pytest.mark.timeout(60)


def test_graph_order_is_breadth_first_with_every_node() -> None:
    graph: dict[str, Any] = {
        "startNode": "a",
        "nodes": [{"name": n} for n in ("z", "d", "c", "b", "a", "lonely")],
        "edges": [
            {"from": "a", "to": "c"},
            {"from": "a", "to": "b"},
            {"from": "b", "to": "d"},
            {"from": "c", "to": "d"},
            {"from": "d", "to": "a"},
            {"from": "d", "to": "z"},
        ],
    }
    assert graph_order(graph, ["old", "a"]) == ["a", "c", "b", "d", "z", "lonely", "old"]
    assert graph_order(None, ["b", "a"]) == ["a", "b"]


async def test_view_follows_a_fan_out_run(make_backend: BackendFactory) -> None:
    backend = make_backend("fanout", context_type=fanout.context_type)
    graph = fanout.describe()
    await start_run(fanout, backend, {"count": 3}, run_id="r")
    view = await read_run_view(backend, "r", graph=graph)
    assert view is not None
    assert [n.name for n in view.nodes] == ["spread", "work", "gather"]
    assert [n.state for n in view.nodes] == [NodeState.QUEUED, NodeState.IDLE, NodeState.IDLE]
    assert view.nodes[0].queued == 1 and view.eta is None and view.percent == 0.0

    worker = DistributedWorker(fanout, backend, worker_id="w1")
    assert await worker.run_once() == "committed"  # spread: three branches of work
    claims = await backend.queue.claim("w2", count=1, block=0)
    assert len(claims) == 1
    await backend.step_input(claims[0])  # the item is Running now
    view = await read_run_view(backend, "r", graph=graph)
    assert view is not None
    work = view.node("work")
    assert work is not None
    assert (work.state, work.created, work.running, work.queued, work.done) == (NodeState.RUNNING, 3, 1, 2, 0)
    assert view.node("gather") is not None and view.node("gather").state is NodeState.IDLE  # type: ignore[union-attr]
    assert (view.items_done, view.items_total, view.percent) == (1, 4, 25.0)
    assert view.eta is not None and view.eta >= 0
    assert view.item_states

    assert await backend.set_status("r", RunStatus.CANCELLED, reason="cancelled") is RunStatus.CANCELLED
    view = await read_run_view(backend, "r", graph=graph)
    assert view is not None
    work = view.node("work")
    assert work is not None
    assert (work.state, work.queued, work.running, work.cancelled) == (NodeState.CANCELLED, 0, 0, 3)
    assert view.status is RunStatus.CANCELLED and view.eta is None
    assert "3 cancelled" in counts_text(work)


async def test_view_of_a_completed_run_and_its_pictures(make_backend: BackendFactory) -> None:
    backend = make_backend("fanout", context_type=fanout.context_type)
    await start_run(fanout, backend, {"count": 2}, run_id="done")
    worker = DistributedWorker(fanout, backend, worker_id="w1")
    while await worker.run_once() is not None:
        pass
    await backend.publish_graph(fanout.describe())
    view = await read_run_view(backend, "done")  # the graph the workers published
    assert view is not None
    assert view.status is RunStatus.COMPLETED and view.percent == 100.0 and view.eta == 0.0
    assert [(n.name, n.state, n.done) for n in view.nodes] == [
        ("spread", NodeState.DONE, 1),
        ("work", NodeState.DONE, 2),
        ("gather", NodeState.DONE, 1),
    ]
    assert await read_run_view(backend, "nope") is None

    dot = to_dot(view)
    fill, border = COLOURS[NodeState.DONE]
    assert f'"work" [label="work\\n2/2 done", fillcolor="{fill}", color="{border}", id="node-work"' in dot
    assert '"spread" -> "work";' in dot and '"work" -> "gather" [style="bold" label="join"];' in dot
    mermaid = to_mermaid(view)
    assert 'n1["work<br/>2/2 done"]:::done' in mermaid
    assert "classDef failed fill:" in mermaid and "n1 ==>|join| n2" in mermaid
    assert render(view, PictureFormat.DOT).decode() == dot
    if shutil.which("dot") is None:
        pytest.fail("Graphviz's dot is not installed (scripts/test.sh installs it)")
    svg = render(view, "svg").decode()
    assert svg.lstrip().startswith("<?xml") and "2/2 done" in svg
    assert 'id="node&#45;work"' in svg  # the element id node-work, '-' written as an entity
    assert render(view, "png").startswith(b"\x89PNG")
