"""The dashboard's JSON API over HTTP (httpx), on a real ``floxide ui``, real workers, a private Redis.

Cases:
* runs list: workflow, status, progress, short error; filters by status, workflow and
  namespace; pages (``more``, no run on two pages);
* a failed fan-out run: nodes in graph order with counts and states, input kept, the
  failing node's errors with their traceback, its items with attempts and the lines its steps
  logged; a completed run's output; unknown runs and nodes are 404 with a reason;
* the picture: SVG with an element per node (``node-<name>``) in its state's colour;
* actions as ``floxide pause|resume|cancel|retry`` do them: pause, resume, cancel without
  interrupting, a refused action (409), retry of a failed run; a read-only dashboard
  refuses every action (403) and the run goes on, and so does one sent by another site's page;
* server-sent events: a run's stream sends its progress as it moves, up to Completed;
* workers: each live worker with workflow, heartbeat age, steps done;
* OpenAPI document at ``/openapi.json``;
* size: a 5,000-item run and a 201-node workflow answer quickly, the answers do not grow with items.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any
from xml.etree import ElementTree

import httpx
import pytest

from floxide.run_picture import COLOURS
from floxide.run_view import NodeState
from tests.ui.conftest import BATCH, COUNTDOWN, NAMESPACE, WIDE, Dashboard
from tests.worker.helpers import wait_until

pytestmark = [pytest.mark.redis, pytest.mark.slow]

SVG = "{http://www.w3.org/2000/svg}"


def finished(client: httpx.Client, workflow: str, run_id: str, *, timeout: float = 60) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        detail = client.get(f"/api/runs/{NAMESPACE}/{workflow}/{run_id}").json()
        return detail if detail["view"]["status"] in ("Completed", "Failed", "Cancelled") else None

    return wait_until(done, timeout=timeout, every=0.2, what=f"run {run_id} to finish")  # type: ignore[no-any-return]


def svg_nodes(svg: str) -> dict[str, str]:
    """``{id: fill}`` of the node boxes of a Graphviz SVG."""
    root = ElementTree.fromstring(svg.encode())
    found = {}
    for group in root.iter(f"{SVG}g"):
        if group.get("class") == "node":
            shape = next(e for e in group.iter() if e.tag in (f"{SVG}path", f"{SVG}polygon"))
            found[str(group.get("id"))] = str(shape.get("fill"))
    return found


def status_of(client: httpx.Client, workflow: str, run_id: str) -> str:
    return str(client.get(f"/api/runs/{NAMESPACE}/{workflow}/{run_id}").json()["view"]["status"])


def test_failed_run_shows_nodes_errors_and_items(dashboard: Dashboard, submit: Callable[..., str]) -> None:
    value = {"count": 12, "delay": 0.02, "bad": [7]}
    run_id = submit(BATCH, value)
    with dashboard.client() as client:
        detail = finished(client, "batch", run_id)
        view = detail["view"]
        assert view["status"] == "Failed"
        assert "piece 7 is bad" in view["error"]
        assert [n["name"] for n in view["nodes"]] == ["spread", "work", "total"]
        nodes = {n["name"]: n for n in view["nodes"]}
        assert nodes["spread"]["state"] == "done" and nodes["spread"]["done"] == 1
        assert nodes["work"]["state"] == "failed" and nodes["work"]["failed"] == 1
        assert nodes["work"]["created"] == 12
        assert nodes["total"]["state"] == "idle"
        assert detail["input_kept"] and detail["input"] == value
        assert detail["actions"] == ["retry", "cancel"]

        node = client.get(f"/api/runs/{NAMESPACE}/batch/{run_id}/nodes/work").json()
        assert [e["attempt"] for e in node["errors"]] == [3, 2, 1]  # the workers' 3 attempts, newest first
        error = node["errors"][0]
        assert error["error_type"] == "ValueError" and error["message"] == "piece 7 is bad"
        assert "Traceback" in error["traceback"] and "ValueError: piece 7 is bad" in error["traceback"]
        assert error["permanent"] and {e["item_id"] for e in node["errors"]} == {error["item_id"]}
        assert node["item_counts"].get("Failed") == 1
        items = {i["item_id"]: i for i in node["items"]}
        assert len(items) == 12 and items[error["item_id"]]["attempt"] == 3

        def logged() -> list[dict[str, Any]] | None:  # workers ship step logs a few times a second
            lines = client.get(f"/api/runs/{NAMESPACE}/batch/{run_id}/nodes/work").json()["logs"]
            return lines if len(lines) == 14 else None

        lines = wait_until(logged, what="the 14 lines work logged")
        seven = [
            (line["attempt"], line["item_id"]) for line in lines if line["message"] == "working on piece 7"
        ]
        assert seven == [(1, error["item_id"]), (2, error["item_id"]), (3, error["item_id"])]
        assert all(line["node"] == "work" and line["level"] == "INFO" for line in lines)

        runs = client.get("/api/runs", params={"status": "Failed", "workflow": "batch"}).json()
        line = next(r for r in runs["runs"] if r["run_id"] == run_id)
        assert line["namespace"] == NAMESPACE and line["status"] == "Failed"
        assert "piece 7 is bad" in line["error"] and len(line["error"]) <= 160
        assert 0 < line["percent"] < 100 and line["items_total"] >= 13


def test_completed_run_output_and_picture(dashboard: Dashboard, submit: Callable[..., str]) -> None:
    run_id = submit(BATCH, {"count": 5})
    with dashboard.client() as client:
        detail = finished(client, "batch", run_id)
        assert detail["view"]["status"] == "Completed"
        assert detail["view"]["output"] == 10 and detail["outputs"] == [10]
        assert detail["view"]["percent"] == 100.0
        assert detail["actions"] == []
        assert all(n["state"] == "done" for n in detail["view"]["nodes"])

        picture = client.get(f"/api/runs/{NAMESPACE}/batch/{run_id}/picture.svg")
        assert picture.status_code == 200 and picture.headers["content-type"].startswith("image/svg+xml")
        nodes = svg_nodes(picture.text)
        assert set(nodes) == {"node-spread", "node-work", "node-total"}
        assert all(fill == COLOURS[NodeState.DONE][0] for fill in nodes.values())


def test_unknown_runs_and_nodes_are_404(dashboard: Dashboard) -> None:
    with dashboard.client() as client:
        missing = client.get(f"/api/runs/{NAMESPACE}/batch/no-such-run")
        assert missing.status_code == 404 and "no-such-run" in missing.json()["detail"]
        other = client.get("/api/runs/elsewhere/batch/no-such-run")
        assert other.status_code == 404 and "elsewhere" in other.json()["detail"]


def test_filters_and_pages(dashboard: Dashboard, submit: Callable[..., str]) -> None:
    ids = [submit(BATCH, {"count": 1}) for _ in range(3)]
    with dashboard.client() as client:
        for run_id in ids:
            finished(client, "batch", run_id)
        listed = client.get("/api/runs", params={"workflow": "batch", "status": "Completed"}).json()
        assert {r["workflow"] for r in listed["runs"]} == {"batch"}
        assert {r["status"] for r in listed["runs"]} == {"Completed"}
        assert set(ids) <= {r["run_id"] for r in listed["runs"]}
        assert NAMESPACE in listed["namespaces"] and "batch" in listed["workflows"]
        newest = [r["created_at"] for r in listed["runs"]]
        assert newest == sorted(newest, reverse=True)

        first = client.get("/api/runs", params={"workflow": "batch", "per_page": 2}).json()
        second = client.get("/api/runs", params={"workflow": "batch", "per_page": 2, "page": 2}).json()
        assert first["more"] and len(first["runs"]) == 2 and second["runs"]
        assert not {r["run_id"] for r in first["runs"]} & {r["run_id"] for r in second["runs"]}
        assert client.get("/api/runs", params={"namespace": "elsewhere"}).json()["runs"] == []
        bad = client.get("/api/runs", params={"status": "Sleeping"})
        assert bad.status_code == 422 and "status" in bad.text


def test_actions_pause_resume_cancel_retry(
    dashboard: Dashboard, readonly: Dashboard, submit: Callable[..., str], env: dict[str, str]
) -> None:
    run_id = submit(COUNTDOWN, {"steps": 1000, "delay": 0.05})
    base = f"/api/runs/{NAMESPACE}/countdown/{run_id}"
    with dashboard.client() as client, readonly.client() as viewer:
        wait_until(lambda: status_of(client, "countdown", run_id) == "Running", what="the run to start")
        refused = viewer.post(base + "/pause")
        assert refused.status_code == 403 and "read-only" in refused.json()["detail"]
        assert viewer.get(base).json()["actions"] == []

        forged = client.post(base + "/pause", headers={"Origin": "http://evil.example"})
        assert forged.status_code == 403 and "another site" in forged.json()["detail"]
        assert status_of(client, "countdown", run_id) == "Running"

        paused = client.post(base + "/pause", headers={"Origin": dashboard.url})  # the page's own
        assert paused.status_code == 200 and paused.json()["status"] == "Paused"
        time.sleep(0.5)  # a step that was running finishes; then nothing moves
        held = client.get(base).json()["view"]["items_done"]
        time.sleep(1.0)
        assert client.get(base).json()["view"]["items_done"] == held
        assert client.get(base).json()["actions"] == ["resume", "cancel"]

        assert client.post(base + "/resume").json()["status"] == "Running"
        wait_until(lambda: client.get(base).json()["view"]["items_done"] > held + 2, what="the run to move")

        cancelled = client.post(base + "/cancel", params={"interrupt": "false"})
        assert cancelled.json() == {
            "namespace": NAMESPACE, "workflow": "countdown", "run_id": run_id, "action": "cancel",
            "status": "Cancelled",
        }  # fmt: skip
        assert client.post(base + "/cancel").json()["status"] == "Cancelled"  # as floxide cancel: idempotent
        refused = client.post(base + "/pause")
        assert (
            refused.status_code == 409 and "is Cancelled; it cannot become Paused" in refused.json()["detail"]
        )
        assert client.post(base + "/sleep").status_code == 422

    failed = submit(BATCH, {"count": 3, "bad": [1]})
    with dashboard.client() as client:
        assert finished(client, "batch", failed)["view"]["status"] == "Failed"
        retried = client.post(f"/api/runs/{NAMESPACE}/batch/{failed}/retry")
        assert retried.status_code == 200 and retried.json()["status"] == "Running"
        assert finished(client, "batch", failed)["view"]["status"] == "Failed"  # the piece is still bad
        node = client.get(f"/api/runs/{NAMESPACE}/batch/{failed}/nodes/work").json()
        assert [e["attempt"] for e in node["errors"]] == [3, 2, 1, 3, 2, 1]  # before and after the retry


def test_run_events_follow_the_run(dashboard: Dashboard, submit: Callable[..., str]) -> None:
    run_id = submit(COUNTDOWN, {"steps": 40, "delay": 0.2})
    seen: list[dict[str, Any]] = []
    with (
        httpx.Client(base_url=dashboard.url, timeout=60) as client,
        client.stream("GET", f"/api/events/runs/{NAMESPACE}/countdown/{run_id}") as stream,
    ):
        assert stream.headers["content-type"].startswith("text/event-stream")
        event = ""
        for line in stream.iter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: ") and event == "run":
                seen.append(json.loads(line[6:]))
                if seen[-1]["status"] == "Completed":
                    break
    done = [v["items_done"] for v in seen]
    assert len(seen) >= 3 and done == sorted(done) and len(set(done)) >= 3
    assert seen[-1]["status"] == "Completed" and seen[-1]["output"] == 40


def test_workers(dashboard: Dashboard) -> None:
    with dashboard.client() as client:
        workers = client.get("/api/workers").json()["workers"]
        assert {w["workflow"] for w in workers} >= {"batch", "wide", "countdown"}
        for w in workers:
            assert w["namespace"] == NAMESPACE and 0 <= w["heartbeat_age"] < 15
            assert w["concurrency"] == 4 and w["status"] in ("Idle", "Busy")
        only = client.get("/api/workers", params={"workflow": "wide"}).json()["workers"]
        assert [w["workflow"] for w in only] == ["wide"]


def test_openapi_document(dashboard: Dashboard) -> None:
    with dashboard.client() as client:
        document = client.get("/openapi.json").json()
    paths = document["paths"]
    for path in (
        "/api/runs",
        "/api/runs/{namespace}/{workflow}/{run_id}",
        "/api/runs/{namespace}/{workflow}/{run_id}/nodes/{node}",
        "/api/runs/{namespace}/{workflow}/{run_id}/picture.svg",
        "/api/runs/{namespace}/{workflow}/{run_id}/{action}",
        "/api/workers",
        "/api/events/runs",
    ):
        assert path in paths, path
    assert "post" in paths["/api/runs/{namespace}/{workflow}/{run_id}/{action}"]
    assert {"RunList", "RunDetail", "NodeDetail", "WorkerList", "ActionResult"} <= set(
        document["components"]["schemas"]
    )


@pytest.mark.timeout(600)  # 5,000 items through 4 steps at a time, on a loaded machine
def test_large_runs_stay_quick(dashboard: Dashboard, submit: Callable[..., str]) -> None:
    big = submit(BATCH, {"count": 5000})
    wide = submit(WIDE, 1)
    with dashboard.client() as client:
        detail = finished(client, "batch", big, timeout=300)
        assert detail["view"]["status"] == "Completed" and detail["view"]["items_done"] == 5002
        timings = {}
        for name, path in (
            ("run", f"/api/runs/{NAMESPACE}/batch/{big}"),
            ("node", f"/api/runs/{NAMESPACE}/batch/{big}/nodes/work"),
            ("page", f"/runs/{NAMESPACE}/batch/{big}"),
        ):
            started = time.monotonic()
            answer = client.get(path)
            timings[name] = time.monotonic() - started
            assert answer.status_code == 200
            assert len(answer.content) < 200_000, (name, len(answer.content))
        node = client.get(f"/api/runs/{NAMESPACE}/batch/{big}/nodes/work").json()
        assert len(node["items"]) == 50 and node["item_counts"] == {"Completed": 5000}

        view = finished(client, "wide", wide)["view"]
        assert len(view["nodes"]) == 201 and view["status"] == "Completed"
        started = time.monotonic()
        svg = client.get(f"/api/runs/{NAMESPACE}/wide/{wide}/picture.svg").text
        timings["picture of 201 nodes"] = time.monotonic() - started
        assert len(svg_nodes(svg)) == 201
        print("timings (s):", {k: round(v, 3) for k, v in timings.items()})
        assert max(timings.values()) < 10
