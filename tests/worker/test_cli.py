"""The distributed ``floxide`` commands end to end: subprocesses, real workers, a private Redis.

Two worker processes (``countdown`` and ``gate``) serve the module's namespace.

Cases:
* ``submit --wait`` prints the output; ``submit`` prints the run id; bad input is refused
  locally (exit 2);
* ``status`` (progress, times, output, per-node counts) and ``runs`` (filters);
* ``pause`` holds a run, ``resume`` continues it; ``cancel`` (and ``--no-interrupt``) ends
  it, and cancelling it again is refused (exit 1);
* a failed run: ``submit --wait`` exits 1, ``errors`` lists the failure, ``resume`` points
  to ``retry``, and ``retry`` completes it once the cause is fixed;
* ``workers`` lists the live workers;
* unknown runs (exit 2), ``--workflow``, a run missing from the run index, a run id two
  workflows share, an unreachable Redis (exit 1, no password shown), a bad URL (exit 2);
* ``floxide run --redis --workers 2``: output, exit status, and the workers are gone after.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis as sync_redis

from floxide.redis.keys import KeySpace, NamespaceKeys
from tests.worker.helpers import FLOWS, Proc, child_env, floxide, free_port, wait_until, worker_args

pytestmark = [pytest.mark.redis, pytest.mark.slow]

COUNTDOWN = "examples.countdown:workflow"
GATE = FLOWS + ":gate"
NAMESPACE = "cli"


@pytest.fixture(scope="module")
def env(redis_url: str) -> dict[str, str]:
    return child_env(redis_url, FLOXIDE_NAMESPACE=NAMESPACE)


@pytest.fixture(scope="module")
def workers(env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Proc]]:
    directory = tmp_path_factory.mktemp("cli-workers")
    started = [
        Proc(
            [sys.executable, *worker_args(target, "--http-port", "0")],
            env=env,
            directory=directory,
            name=name,
        )
        for name, target in (("countdown", COUNTDOWN), ("gate", GATE))
    ]
    yield started
    for proc in started:
        proc.stop()


@pytest.fixture
def cli(env: dict[str, str], workers: list[Proc]) -> Any:
    """``cli(*args)``: run ``floxide`` with the module's environment."""

    def run(*args: str, **more: str) -> Any:
        return floxide(*args, env={**env, **more})

    return run


def status(cli: Any, run: str) -> dict[str, Any]:
    result = cli("status", run)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def stored(redis_client: sync_redis.Redis, run: str, workflow: str = "countdown") -> dict[str, str]:
    """The run's record straight from Redis (cheap to poll)."""
    return redis_client.hgetall(KeySpace(NAMESPACE, workflow).run(run).info)  # type: ignore[return-value]


def wait_for_status(
    cli: Any, redis_client: sync_redis.Redis, run: str, wanted: str, workflow: str = "countdown"
) -> dict[str, Any]:
    """Poll Redis until the run is ``wanted``; then its ``floxide status``."""
    wait_until(
        lambda: stored(redis_client, run, workflow).get("status") == wanted,
        timeout=30,
        what=f"{run} to be {wanted}",
    )
    return status(cli, run)


def test_submit_wait_and_bad_input(cli: Any) -> None:
    done = cli("submit", COUNTDOWN, "--input", '{"steps": 2, "delay": 0}', "--wait", "--timeout", "30")
    assert (done.returncode, done.stdout) == (0, "2\n"), done.stderr
    assert done.stderr.startswith("floxide: submitted run ")
    bad = cli("submit", COUNTDOWN, "--input", '{"steps": -1}')
    assert bad.returncode == 2
    assert bad.stderr.startswith("error: bad --input: input of node 'tick'") and "steps" in bad.stderr


def test_submit_then_status_and_runs(cli: Any, redis_client: sync_redis.Redis) -> None:
    submitted = cli("submit", COUNTDOWN, "--input", '{"steps": 2, "delay": 0}', "--run-id", "s-1")
    assert (submitted.returncode, submitted.stdout) == (0, "s-1\n"), submitted.stderr
    info = wait_for_status(cli, redis_client, "s-1", "Completed")
    assert (info["namespace"], info["workflow"], info["progress"], info["output"]) == (
        NAMESPACE,
        "countdown",
        "2/2",
        2,
    )
    assert info["started_at"] and info["finished_at"] and info["error"] is None
    assert {k: info["nodes"]["tick"][k] for k in ("created", "completed", "failed", "pending")} == {
        "created": 2, "completed": 2, "failed": 0, "pending": 0,
    }  # fmt: skip
    completed = json.loads(cli("runs", "--status", "completed").stdout)
    assert "s-1" in [r["run_id"] for r in completed]
    assert all(r["status"] == "Completed" for r in completed)
    assert "s-1" not in [r["run_id"] for r in json.loads(cli("runs", "--workflow", "gate").stdout)]
    assert cli("runs", "--status", "Bogus").returncode == 2


def test_pause_and_resume(cli: Any, redis_client: sync_redis.Redis) -> None:
    assert (
        cli("submit", COUNTDOWN, "--input", '{"steps": 50, "delay": 0.1}', "--run-id", "p-1").returncode == 0
    )
    wait_until(lambda: int(stored(redis_client, "p-1").get("items_done", 0)) >= 2, what="some progress")
    paused = cli("pause", "p-1")
    assert paused.returncode == 0, paused.stderr
    assert json.loads(paused.stdout) == {"run_id": "p-1", "status": "Paused"}
    time.sleep(0.5)  # an in-flight step may still commit
    held = status(cli, "p-1")
    time.sleep(1.0)
    assert stored(redis_client, "p-1")["items_done"] == str(held["items_done"])
    assert held["items_done"] < 50 and held["status"] == "Paused"
    resumed = cli("resume", "p-1")
    assert (resumed.returncode, json.loads(resumed.stdout)["status"]) == (0, "Running")
    assert wait_for_status(cli, redis_client, "p-1", "Completed")["output"] == 50


def test_cancel(cli: Any, redis_client: sync_redis.Redis) -> None:
    for run in ("c-1", "c-2"):
        assert (
            cli("submit", COUNTDOWN, "--input", '{"steps": 100, "delay": 0.1}', "--run-id", run).returncode
            == 0
        )
    wait_until(lambda: stored(redis_client, "c-1").get("status") == "Running", what="c-1 to run")
    cancelled = cli("cancel", "c-1")
    assert (cancelled.returncode, json.loads(cancelled.stdout)["status"]) == (0, "Cancelled")
    gentle = cli("cancel", "c-2", "--no-interrupt")
    assert (gentle.returncode, json.loads(gentle.stdout)["status"]) == (0, "Cancelled")
    assert cli("cancel", "c-1").returncode == 0  # cancelling twice changes nothing
    assert cli("submit", COUNTDOWN, "--input", '{"steps": 1}', "--run-id", "c-3", "--wait").returncode == 0
    finished = cli("cancel", "c-3")
    assert (finished.returncode, finished.stderr) == (
        1,
        "error: run 'c-3' is Completed; it cannot become Cancelled\n",
    )
    assert status(cli, "c-1")["progress"] != "100/100"


def test_errors_and_retry_of_a_failed_run(cli: Any, redis_client: sync_redis.Redis, tmp_path: Path) -> None:
    marker = tmp_path / "key"
    failed = cli("submit", GATE, "--input", json.dumps({"marker": str(marker)}), "--run-id", "g-1", "--wait")
    assert failed.returncode == 1
    assert failed.stderr.splitlines()[-1] == (
        "error: run g-1 failed: node 'check' failed: PermanentError: key is missing"
    )
    errors = json.loads(cli("errors", "g-1").stdout)
    assert [(e["node"], e["item_id"], e["error_type"], e["message"], e["permanent"]) for e in errors] == [
        ("check", "root", "PermanentError", "key is missing", True)
    ]
    assert "raise PermanentError" in errors[0]["traceback"]
    resumed = cli("resume", "g-1")
    assert resumed.returncode == 1 and "use 'floxide retry g-1'" in resumed.stderr
    marker.write_text("")
    retried = cli("retry", "g-1")
    assert (retried.returncode, json.loads(retried.stdout)["status"]) == (0, "Running"), retried.stderr
    info = wait_for_status(cli, redis_client, "g-1", "Completed", "gate")
    assert (info["output"], info["error"]) == ("open: key", None)
    again = cli("retry", "g-1")
    assert again.returncode == 1 and "only a Failed run can be retried" in again.stderr


def test_workers(cli: Any) -> None:
    listed = wait_until(
        lambda: len(found := json.loads(cli("workers").stdout)) == 2 and found, what="2 workers"
    )
    assert sorted(w["workflow"] for w in listed) == ["countdown", "gate"]
    assert all(w["status"] in ("Idle", "Busy") and w["concurrency"] == 4 for w in listed)
    only = json.loads(cli("workers", "--workflow", "gate").stdout)
    assert [w["workflow"] for w in only] == ["gate"]


def test_finding_runs(cli: Any, redis_client: sync_redis.Redis) -> None:
    unknown = cli("status", "nope")
    assert (unknown.returncode, unknown.stderr) == (
        2, "error: run 'nope' does not exist in namespace 'cli' (or has expired)\n",
    )  # fmt: skip
    assert (
        cli(
            "submit", COUNTDOWN, "--input", '{"steps": 1, "delay": 0}', "--run-id", "f-1", "--wait"
        ).returncode
        == 0
    )
    wrong = cli("status", "f-1", "--workflow", "gate")
    assert wrong.returncode == 2 and "does not exist in workflow 'gate'" in wrong.stderr
    index = NamespaceKeys(NAMESPACE).run_index
    redis_client.hdel(index, "f-1")
    assert status(cli, "f-1")["workflow"] == "countdown"  # found without the index
    assert redis_client.hget(index, "f-1") == "countdown"  # and the index repaired
    marker = Path(__file__)  # exists: the gate opens
    assert (
        cli(
            "submit", GATE, "--input", json.dumps({"marker": str(marker)}), "--run-id", "f-1", "--wait"
        ).returncode
        == 0
    )
    redis_client.hdel(index, "f-1")
    shared = cli("status", "f-1")
    assert (shared.returncode, shared.stderr) == (
        1, "error: run 'f-1' exists in several workflows (countdown, gate); choose one with --workflow\n",
    )  # fmt: skip
    chosen = cli("status", "f-1", "--workflow", "gate")
    assert json.loads(chosen.stdout)["output"] == "open: test_cli.py"


def test_redis_problems(cli: Any) -> None:
    port = free_port()
    down = cli("status", "x", "--redis", f"redis://user:hunter2@127.0.0.1:{port}/0")
    assert down.returncode == 1
    assert down.stderr.startswith(f"error: cannot reach Redis at redis://user:***@127.0.0.1:{port}/0: ")
    assert "hunter2" not in down.stderr
    assert len(down.stderr.splitlines()) == 1
    bad = cli("runs", "--redis", "localhost:6379")
    assert (bad.returncode, bad.stderr) == (
        2,
        "error: bad --redis: a Redis URL starts with redis://, rediss:// (TLS), unix://, redis+cluster:// "
        "or redis+sentinel:// (rediss+... for TLS) (got 'localhost:6379')\n",
    )


def test_run_on_local_worker_processes(redis_url: str, tmp_path: Path) -> None:
    env = child_env(redis_url, FLOXIDE_NAMESPACE="cli-run")
    done = floxide(
        "run",
        COUNTDOWN,
        "--redis",
        redis_url,
        "--workers",
        "2",
        "--input",
        '{"steps": 6, "delay": 0}',
        env=env,
    )
    assert (done.returncode, done.stdout) == (0, "6\n"), done.stderr
    assert json.loads(floxide("workers", env=env).stdout) == []
    failed = floxide(
        "run", GATE, "--redis", redis_url, "--input", json.dumps({"marker": str(tmp_path / "no")}), env=env
    )
    assert failed.returncode == 1
    assert failed.stderr.splitlines()[-1].endswith(
        "failed: node 'check' failed: PermanentError: no is missing"
    )
    both = floxide(
        "run", COUNTDOWN, "--redis", redis_url, "--checkpoint", str(tmp_path), "--input", "{}", env=env
    )
    assert both.returncode == 2 and "--checkpoint is for local runs" in both.stderr
