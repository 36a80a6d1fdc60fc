"""How the CLI shows runs, end to end: real worker processes, a private Redis, the ``floxide`` command.

Rich output is read at a fixed terminal width (``COLUMNS``) with ``-o table`` (stdout is not a
terminal here); ``-o json`` is parsed.

Cases:
* ``status``: every node in graph order, the never reached one listed as ``idle``; a Failed
  run's node ``failed``; ``-o json`` nodes in the same order with states and counts; at 80
  columns no node name is cut;
* a Cancelled fan-out: nothing pending or queued, its dropped branches ``cancelled``;
* ``status --watch -o json``: a JSON line per change until the run ends, exit 0 (1 for a
  failed run); ``--watch -o table``: the final view, 100 %;
* ``runs``: a long run id shortened from the middle at 80 columns (both ends kept), in full
  with ``--wide``; ``-o json`` parsed; ``runs --watch -o json`` prints and ends on Ctrl-C;
* ``errors`` and ``workers`` with ``-o table`` and ``-o json``;
* ``graph --run``: DOT with the run's colours and counts (graph from TARGET, and the one the
  workers published), SVG and PNG files, Mermaid classes;
* progress: ``submit --wait`` and local ``floxide run`` print total, percentage and ETA
  off a terminal.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from floxide.run_picture import COLOURS
from floxide.run_view import NodeState
from tests.worker.helpers import FLOWS, ROOT, Proc, child_env, floxide, wait_until, worker_args

pytestmark = [pytest.mark.redis, pytest.mark.slow, pytest.mark.timeout(240)]

GATE = FLOWS + ":gate"
FANOUT = "tests.distributed.flows:fanout"
NAMESPACE = "views"
LONG_ID = "nightly-import-2026-12-03-a4f1c2d9e8b7-batch-0042"


@pytest.fixture(scope="module")
def env(redis_url: str) -> dict[str, str]:
    return child_env(redis_url, FLOXIDE_NAMESPACE=NAMESPACE, COLUMNS="80")


@pytest.fixture(scope="module")
def workers(env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Proc]]:
    directory = tmp_path_factory.mktemp("views-workers")
    started = [
        Proc([sys.executable, *worker_args(target, "--http-port", "0", "--concurrency", "4")],
             env=env, directory=directory, name=name)
        for name, target in (("gate", GATE), ("fanout", FANOUT))
    ]  # fmt: skip
    yield started
    for proc in started:
        proc.stop()


@pytest.fixture
def cli(env: dict[str, str], workers: list[Proc]) -> Any:
    def run(*args: str, **more: str) -> subprocess.CompletedProcess[str]:
        return floxide(*args, env={**env, **more})

    return run


def as_json(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def ended(cli: Any, run: str) -> dict[str, Any]:
    return wait_until(  # type: ignore[no-any-return]
        lambda: (
            (d := as_json(cli("status", run, "-o", "json")))["status"] in ("Completed", "Failed", "Cancelled")
            and d
        ),
        timeout=60,
        what=f"run {run} to end",
    )


def test_status_lists_every_node_in_graph_order(cli: Any, tmp_path: Path) -> None:
    run = "gate-missing"
    submitted = cli(
        "submit", GATE, "--input", json.dumps({"marker": str(tmp_path / "nope")}), "--run-id", run
    )
    assert submitted.returncode == 0, submitted.stderr
    data = ended(cli, run)
    assert data["status"] == "Failed"
    assert list(data["nodes"]) == ["check", "open_gate"]
    assert data["nodes"]["check"] | {"seconds": 0} == {
        "state": "failed", "created": 1, "completed": 0, "running": 0, "queued": 0, "waiting_retry": 0,
        "failed": 1, "cancelled": 0, "retries": 0, "reclaimed": 0, "pending": 0, "seconds": 0,
    }  # fmt: skip
    assert data["nodes"]["open_gate"]["state"] == "idle" and data["nodes"]["open_gate"]["created"] == 0

    table = cli("status", run, "-o", "table")
    assert table.returncode == 0, table.stderr
    text = table.stdout
    assert f"run {run} (gate)  Failed" in text and "0/1 items" in text and " 0%" in text
    assert text.index("check ") < text.index("open_gate ")
    assert "idle" in text.splitlines()[-1] and "open_gate" in text.splitlines()[-1]
    assert all(len(line) <= 80 for line in text.splitlines())
    assert "is missing" in text  # the error

    watch = cli("status", run, "--watch", "-o", "json")
    assert watch.returncode == 1 and json.loads(watch.stdout.splitlines()[-1])["status"] == "Failed"

    errors = cli("errors", run, "-o", "table")
    assert errors.returncode == 0 and "PermanentError: nope is missing" in errors.stdout
    assert "check" in errors.stdout and "yes" in errors.stdout
    assert as_json(cli("errors", run, "-o", "json"))[0]["traceback"]

    dot = cli("graph", GATE, "--run", run, "--format", "dot")
    assert dot.returncode == 0, dot.stderr
    fill, _ = COLOURS[NodeState.FAILED]
    idle, _ = COLOURS[NodeState.IDLE]
    assert f'"check" [label="check\\n0/1 done\\n1 failed", fillcolor="{fill}"' in dot.stdout
    assert f'"open_gate" [label="open_gate\\nnot reached", fillcolor="{idle}"' in dot.stdout
    mermaid = cli("graph", "--run", run, "--format", "mermaid")  # the graph the workers published
    assert mermaid.returncode == 0, mermaid.stderr
    assert 'n0["check<br/>0/1 done · 1 failed"]:::failed' in mermaid.stdout
    assert 'n1(["open_gate<br/>not reached"]):::idle' in mermaid.stdout
    svg, png = tmp_path / "run.svg", tmp_path / "run.png"
    assert cli("graph", GATE, "--run", run, "--format", "svg", "-o", str(svg)).returncode == 0
    assert svg.read_text().lstrip().startswith("<?xml") and "1 failed" in svg.read_text()
    made = cli("graph", "--run", run, "--format", "png", "-o", str(png))
    assert made.returncode == 0 and png.read_bytes().startswith(b"\x89PNG"), made.stderr
    unknown = cli("graph", "--run", "nope", "--format", "dot")
    assert unknown.returncode == 2 and "run 'nope' does not exist" in unknown.stderr


def test_watch_a_fan_out_to_its_end(cli: Any, env: dict[str, str]) -> None:
    run = "fan-watch"
    # The run waits Queued behind a long one (a run limit of 1) until the watch has seen it:
    # the watch starts before the run does, however slow the machine.
    assert cli("run-limit", "fanout", "1").returncode == 0
    try:
        blocker = "fan-watch-blocker"
        long = '{"count": 1, "seconds": 60}'
        assert cli("submit", FANOUT, "--input", long, "--run-id", blocker).returncode == 0
        assert cli("submit", FANOUT, "--input", '{"count": 8, "seconds": 2}', "--run-id", run).returncode == 0
        watch = subprocess.Popen(
            [sys.executable, "-m", "floxide.cli", "status", run, "--watch", "--interval=0.2", "-o", "json"],
            env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert watch.stdout is not None
        first = json.loads(watch.stdout.readline())
        assert first["status"] == "Queued"
        assert cli("cancel", blocker).returncode == 0
        rest, stderr = watch.communicate(timeout=120)
    finally:
        cli("run-limit", "fanout", "--unlimited")
    assert watch.returncode == 0, stderr
    lines = [first, *(json.loads(line) for line in rest.splitlines())]
    assert len(lines) >= 2 and lines[-1]["status"] == "Completed" and lines[-1]["percent"] == 100.0
    assert all(list(line["nodes"])[: len(line["nodes"])] == ["spread", "work", "gather"] for line in lines)
    assert lines[-1]["nodes"]["work"]["completed"] == 8

    table = cli("status", run, "--watch", "-o", "table", COLUMNS="100")
    assert table.returncode == 0, table.stderr
    text = table.stdout
    assert "Completed" in text and "10/10 items" in text and "100%" in text
    assert text.index("spread") < text.index("work ") < text.index("gather")
    assert "8/8" in text and "RECLAIMED" in text


def test_cancelled_run_shows_nothing_pending(cli: Any) -> None:
    run = "fan-cancel"
    # steps long enough that the run is still going when the cancel comes, however slow the machine
    assert cli("submit", FANOUT, "--input", '{"count": 12, "seconds": 60}', "--run-id", run).returncode == 0
    wait_until(lambda: as_json(cli("status", run, "-o", "json"))["nodes"].get("work", {}).get("running"),
               timeout=30, what="a branch running")  # fmt: skip
    assert cli("cancel", run).returncode == 0
    data = as_json(cli("status", run, "-o", "json"))
    work = data["nodes"]["work"]
    assert data["status"] == "Cancelled"
    assert (work["pending"], work["queued"], work["running"], work["state"]) == (0, 0, 0, "cancelled")
    assert work["cancelled"] == 12 - work["completed"] - work["failed"] > 0
    assert data["nodes"]["gather"]["state"] == "idle"
    table = cli("status", run, "-o", "table").stdout
    assert f"cancelled {work['cancelled']}" in table


def test_runs_and_workers_fit_the_terminal(cli: Any, env: dict[str, str]) -> None:
    assert cli("submit", FANOUT, "--input", '{"count": 1}', "--run-id", LONG_ID, "--wait").returncode == 0
    table = cli("runs", "-o", "table").stdout
    row = next(line for line in table.splitlines() if line.startswith(LONG_ID[:8]))
    assert LONG_ID not in table and "…" in row and row.split()[0].endswith(LONG_ID[-9:])
    assert "fanout" in row and "Completed" in row and "3/3 100%" in row
    assert all(len(line) <= 80 for line in table.splitlines())
    wide = cli("runs", "--wide", "-o", "table").stdout
    assert LONG_ID in wide
    assert LONG_ID in [r["run_id"] for r in as_json(cli("runs", "-o", "json"))]

    workers = cli("workers", "-o", "table").stdout
    assert "fanout" in workers and "gate" in workers and "WORKER" in workers
    assert all(len(line) <= 80 for line in workers.splitlines())
    assert {w["workflow"] for w in as_json(cli("workers", "-o", "json"))} == {"fanout", "gate"}

    watcher = subprocess.Popen(
        [sys.executable, "-m", "floxide.cli", "runs", "--watch", "--interval", "0.2", "-o", "json"],
        env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert watcher.stdout is not None
        first = json.loads(watcher.stdout.readline())
        assert LONG_ID in [r["run_id"] for r in first]
    finally:
        watcher.send_signal(signal.SIGINT)
        _, err = watcher.communicate(timeout=30)
    assert watcher.returncode == 0, err


def test_progress_off_a_terminal(cli: Any, env: dict[str, str]) -> None:
    waited = cli("submit", FANOUT, "--input", '{"count": 6, "seconds": 1.5}', "--wait")
    assert waited.returncode == 0, waited.stderr
    lines = [line for line in waited.stderr.splitlines() if " items (" in line]
    assert lines and "ETA" in lines[-1], waited.stderr
    assert lines[0].startswith("floxide: run ") and "/" in lines[0].split(": ")[2]

    local = floxide(
        "run", "examples/countdown.py:workflow", "--input", '{"steps": 30, "delay": 0.1}', env=env
    )
    assert local.returncode == 0, local.stderr
    shown = [line for line in local.stderr.splitlines() if line.startswith("floxide: countdown: ")]
    assert shown and "steps (" in shown[0] and "%)" in shown[0] and "ETA " in shown[0], local.stderr
