"""The worker process, for real: ``python -m floxide_worker`` against a private Redis.

Cases:
* it runs on uvloop, publishes the graph, answers /healthz and /readyz, counts items in
  /metrics, logs one JSON line per work item with run and node (the node's own lines too), and
  exits 0 on SIGTERM, removing its heartbeat;
* SIGTERM in the middle of a step shorter than the drain time: the step finishes and
  commits, /readyz turns 503 meanwhile, the process exits 0;
* SIGTERM with a step longer than the drain time: the step is cancelled and released,
  the process exits 0, and another worker finishes the item;
* without Redis the process waits (alive, not ready) instead of crashing, and still stops
  cleanly on SIGTERM.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
import redis as sync_redis

from floxide.redis.keys import KeySpace
from tests.worker.helpers import FLOWS, Proc, child_env, floxide, free_port, http_get, wait_until, worker_args

pytestmark = [pytest.mark.redis, pytest.mark.slow]

COUNTDOWN = "examples.countdown:workflow"


@pytest.fixture
def namespace() -> str:
    return f"t{uuid.uuid4().hex[:8]}"


def run_info(client: sync_redis.Redis, namespace: str, workflow: str, run_id: str) -> dict[str, str]:
    return client.hgetall(KeySpace(namespace, workflow).run(run_id).info)  # type: ignore[return-value]


def metric(port: int, name: str, **labels: str) -> float | None:
    status, body = http_get(port, "/metrics")
    assert status == 200
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in body.splitlines():
        if line.startswith(f"{name}{{{wanted}}} "):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_probes_metrics_graph_and_json_logs(
    spawn: Callable[..., Proc], redis_url: str, redis_client: sync_redis.Redis, namespace: str
) -> None:
    port = free_port()
    env = child_env(redis_url, FLOXIDE_NAMESPACE=namespace)
    worker = spawn(
        *worker_args(
            FLOWS + ":gate", "--http-port", str(port), "--log-format", "json", "--log-level", "DEBUG"
        ),
        env=env,
    )
    wait_until(lambda: http_get(port, "/healthz")[0] == 200, what="/healthz")
    wait_until(lambda: http_get(port, "/readyz") == (200, "ok\n"), what="/readyz")
    graph = json.loads(redis_client.get(KeySpace(namespace, "gate").graph) or "null")
    assert graph["startNode"] == "check"
    assert [n["name"] for n in graph["nodes"]] == ["check", "open_gate"]

    marker = Path(worker.out).with_name("marker")
    marker.write_text("")
    done = floxide("submit", FLOWS + ":gate", "--input", json.dumps({"marker": str(marker)}),
                   "--run-id", "r-1", "--wait", env=env)  # fmt: skip
    assert (done.returncode, done.stdout) == (0, '"open: marker"\n'), done.stderr
    assert metric(port, "floxide_work_items_total", workflow="gate", node="check", result="committed") == 1
    assert (
        metric(port, "floxide_work_items_total", workflow="gate", node="open_gate", result="committed") == 1
    )
    assert metric(port, "floxide_step_duration_seconds_count", workflow="gate", node="check") == 1
    assert metric(port, "floxide_steps_in_progress", workflow="gate") == 0

    worker.terminate()
    assert worker.wait() == 0
    lines = worker.json_lines()
    transitions = [line for line in lines if line.get("result") == "committed"]
    assert (transitions[0]["run"], transitions[0]["node"], transitions[0]["item"]) == ("r-1", "check", "root")
    assert {t["node"] for t in transitions} == {"check", "open_gate"}
    assert all(isinstance(t["seconds"], float) and t["worker"] for t in transitions)
    own = [line for line in lines if line["logger"] == "tests.worker.flows"]
    assert [(o["run"], o["node"], o["message"]) for o in own] == [("r-1", "check", f"looking for {marker}")]
    assert not redis_client.hkeys(KeySpace(namespace, "gate").workers)
    [started] = [line["message"] for line in lines if "concurrency" in line["message"]]
    assert started.endswith("event loop uvloop")  # the redis extra brings uvloop (not on Windows)


def test_sigterm_lets_a_running_step_finish(
    spawn: Callable[..., Proc], redis_url: str, redis_client: sync_redis.Redis, namespace: str
) -> None:
    port = free_port()
    env = child_env(redis_url, FLOXIDE_NAMESPACE=namespace)
    worker = spawn(
        *worker_args(COUNTDOWN, "--http-port", str(port), "--drain-seconds", "10", "--log-level", "DEBUG"),
        env=env,
    )
    wait_until(lambda: http_get(port, "/readyz")[0] == 200, what="/readyz")
    submitted = floxide(
        "submit", COUNTDOWN, "--input", '{"steps": 1, "delay": 2}', "--run-id", "long", env=env
    )
    assert submitted.returncode == 0, submitted.stderr
    wait_until(lambda: run_info(redis_client, namespace, "countdown", "long").get("status") == "Running")
    worker.terminate()
    wait_until(lambda: http_get(port, "/readyz") == (503, "draining\n"), what="/readyz to say draining")
    assert worker.wait(timeout=15) == 0
    info = run_info(redis_client, namespace, "countdown", "long")
    assert (info["status"], info["output"]) == ("Completed", "1")
    assert "committed in 2.0" in worker.stderr()


def test_sigterm_releases_a_step_longer_than_the_grace(
    spawn: Callable[..., Proc], redis_url: str, redis_client: sync_redis.Redis, namespace: str
) -> None:
    env = child_env(redis_url, FLOXIDE_NAMESPACE=namespace, FLOXIDE_WORKER_HTTP_PORT="0")
    first = spawn(*worker_args(COUNTDOWN, "--drain-seconds", "0.3"), env=env, name="first")
    submitted = floxide(
        "submit", COUNTDOWN, "--input", '{"steps": 1, "delay": 3}', "--run-id", "longer", env=env
    )
    assert submitted.returncode == 0, submitted.stderr
    wait_until(lambda: run_info(redis_client, namespace, "countdown", "longer").get("status") == "Running")
    first.terminate()
    assert first.wait(timeout=10) == 0
    assert "[run=longer node=tick item=root] released unfinished for other workers" in first.stderr()
    assert run_info(redis_client, namespace, "countdown", "longer")["status"] == "Running"
    second = spawn(*worker_args(COUNTDOWN, "--lease", "1"), env=env, name="second")
    wait_until(
        lambda: run_info(redis_client, namespace, "countdown", "longer").get("status") == "Completed",
        timeout=20,
        what="the second worker to finish the run",
    )
    assert run_info(redis_client, namespace, "countdown", "longer")["output"] == "1"
    second.terminate()
    assert second.wait() == 0
    assert "[run=longer node=tick item=root] reclaimed from a silent worker" in second.stderr()


def test_without_redis_the_worker_waits_alive_but_not_ready(spawn: Callable[..., Proc]) -> None:
    port = free_port()
    worker = spawn(
        *worker_args(COUNTDOWN, "--http-port", str(port)), env=child_env(f"redis://127.0.0.1:{free_port()}/0")
    )
    wait_until(lambda: http_get(port, "/healthz")[0] == 200, what="/healthz")
    status, reason = http_get(port, "/readyz")
    assert status == 503 and "Redis" in reason
    wait_until(lambda: "does not answer" in worker.stderr(), what="the worker to log the outage")
    worker.terminate()
    assert worker.wait(timeout=10) == 0
