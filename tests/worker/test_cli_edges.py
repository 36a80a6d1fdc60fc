"""Edges of the distributed commands and the worker process: subprocesses and a private Redis.

Cases:
* two workers on one machine: the second one's taken HTTP port is one line naming the port,
  the flag and the variable, exit status 2 (the first one goes on); the README's two
  workers have a port each;
* ``floxide run --workers N`` needs ``--redis`` or ``FLOXIDE_REDIS_URL`` (usage, exit 2);
  ``--workers 0`` is refused without a live worker of the workflow, and uses the live ones;
* ``floxide resume RUN`` of a completed run prints its recorded output (exit 0), as ``floxide
  run`` with its id does;
* ``floxide submit --wait`` says on stderr when no live worker serves the workflow, and when
  one comes; ``--timeout`` gives up (exit 1) while the run goes on;
* a malformed ``--redis`` URL or a bad ``--run-id``: exit status 2 (usage), one line;
* without the ``redis`` extra (``redis`` made unimportable), every command that needs it says
  to install ``floxide[redis]`` in one line, exit status 2;
* what the README says workers log: at INFO no line per committed item, but one per failure;
  at DEBUG one per item.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
import redis as sync_redis

from floxide.cli import main
from floxide.redis.keys import KeySpace
from tests.worker.helpers import (
    FLOWS,
    ROOT,
    Proc,
    child_env,
    floxide,
    free_port,
    http_get,
    wait_until,
    worker_args,
)

pytestmark = [pytest.mark.redis, pytest.mark.slow]

COUNTDOWN = "examples.countdown:workflow"
GATE = FLOWS + ":gate"


@pytest.fixture
def namespace() -> str:
    return f"e{uuid.uuid4().hex[:8]}"


def one_line(proc: subprocess.CompletedProcess[str] | Proc) -> str:
    text = proc.stderr() if isinstance(proc, Proc) else proc.stderr
    lines = text.splitlines()
    assert len(lines) == 1, text
    assert lines[0].startswith("error: "), text
    return lines[0]


def run_status(client: sync_redis.Redis, namespace: str, run: str, workflow: str = "countdown") -> str | None:
    return client.hget(KeySpace(namespace, workflow).run(run).info, "status")  # type: ignore[return-value]


# -- the HTTP port ----------------------------------------------------------------------------


def test_a_second_worker_on_a_taken_port_is_one_line(
    spawn: Callable[..., Proc], redis_url: str, namespace: str
) -> None:
    port = free_port()
    env = child_env(redis_url, FLOXIDE_NAMESPACE=namespace)
    first = spawn(*worker_args(COUNTDOWN, "--http-port", str(port)), env=env, name="first")
    wait_until(lambda: http_get(port, "/readyz")[0] == 200, what="the first worker's /readyz")

    second = spawn(*worker_args(COUNTDOWN, "--http-port", str(port)), env=env, name="second")
    assert second.wait(timeout=30) == 2
    assert one_line(second) == (
        f"error: cannot serve /metrics, /healthz and /readyz on 0.0.0.0:{port} (--http-port): the port is "
        "in use (by another worker on this machine?); give each worker on a machine a port of its own "
        "with --http-port or FLOXIDE_WORKER_HTTP_PORT (0: no HTTP server)"
    )
    from_env = spawn(
        *worker_args(COUNTDOWN), env={**env, "FLOXIDE_WORKER_HTTP_PORT": str(port)}, name="from-env"
    )
    assert from_env.wait(timeout=30) == 2
    assert f"0.0.0.0:{port} (FLOXIDE_WORKER_HTTP_PORT): the port is in use" in one_line(from_env)

    assert http_get(port, "/readyz")[0] == 200  # the first one serves on
    first.terminate()
    assert first.wait() == 0


def test_the_readme_gives_each_worker_of_a_machine_a_port() -> None:
    readme = (ROOT / "README.md").read_text()
    block = readme[readme.index("## Distributed runs on Redis") :].split("```sh", 1)[1].split("```", 1)[0]
    workers = [line.split("#")[0].split() for line in block.splitlines() if line.startswith("floxide worker")]
    assert len(workers) >= 2
    ports = [int(w[w.index("--http-port") + 1]) if "--http-port" in w else 9090 for w in workers]
    assert len(set(ports)) == len(ports), f"the README's workers share an HTTP port: {ports}"
    bullet = readme[readme.index("- **Workers**") :].split("\n\n", 1)[0]
    assert "0 for no HTTP server" in bullet and "FLOXIDE_WORKER_HTTP_PORT" in bullet


# -- floxide run --workers --------------------------------------------------------------------


def test_workers_without_redis_is_a_usage_error() -> None:
    env = child_env("unused")
    del env["FLOXIDE_REDIS_URL"]
    proc = floxide(
        "run", "examples/branching.py:workflow", "--input", "42", "--workers", "2", env=env, timeout=20
    )
    assert (proc.returncode, proc.stdout) == (2, "")
    assert one_line(proc) == (
        "error: --workers runs on Redis: give --redis URL (or set FLOXIDE_REDIS_URL), or drop --workers"
    )


def test_workers_zero_needs_live_workers(spawn: Callable[..., Proc], redis_url: str, namespace: str) -> None:
    env = child_env(redis_url, FLOXIDE_NAMESPACE=namespace)
    command = ("run", COUNTDOWN, "--input", '{"steps": 2, "delay": 0}', "--workers", "0")
    refused = floxide(*command, env=env, timeout=30)
    assert refused.returncode == 2
    assert one_line(refused) == (
        f"error: --workers 0 starts no worker, and no live worker serves workflow 'countdown' in namespace "
        f"'{namespace}' (start one with: floxide worker {COUNTDOWN} --namespace {namespace}, or give "
        "--workers 1 or more)"
    )
    spawn(*worker_args(COUNTDOWN, "--http-port", "0"), env=env)
    wait_until(lambda: json.loads(floxide("workers", env=env).stdout), what="a live worker")
    done = floxide(*command, env=env)
    assert (done.returncode, done.stdout) == (0, "2\n"), done.stderr


def test_resuming_a_completed_run_prints_its_output(
    spawn: Callable[..., Proc], redis_url: str, namespace: str
) -> None:
    env = child_env(redis_url, FLOXIDE_NAMESPACE=namespace)
    spawn(*worker_args(COUNTDOWN, "--http-port", "0"), env=env)
    command = ("run", COUNTDOWN, "--input", '{"steps": 2, "delay": 0}', "--workers", "0", "--run-id", "done")
    wait_until(lambda: json.loads(floxide("workers", env=env).stdout), what="a live worker")
    first = floxide(*command, env=env)
    assert (first.returncode, first.stdout) == (0, "2\n"), first.stderr
    again = floxide(*command, env=env)  # 'floxide run' with the same id: the recorded output
    resumed = floxide("resume", "done", env=env)
    assert (again.returncode, again.stdout) == (0, "2\n"), again.stderr
    assert (resumed.returncode, resumed.stdout) == (0, "2\n"), resumed.stderr
    as_json = floxide("resume", "done", "--json", env=env)
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout) == {"run_id": "done", "status": "Completed", "output": 2}
    cancelled = floxide("cancel", "done", env=env)  # other moves of a finished run stay refused
    assert cancelled.returncode == 1
    assert one_line(cancelled) == "error: run 'done' is Completed; it cannot become Cancelled"


# -- floxide submit --wait --------------------------------------------------------------------


def test_submit_wait_says_when_no_worker_serves_the_workflow(
    spawn: Callable[..., Proc], redis_url: str, redis_client: sync_redis.Redis, namespace: str, tmp_path: Path
) -> None:
    env = child_env(redis_url, FLOXIDE_NAMESPACE=namespace)
    nobody = (
        f"floxide: no live worker serves workflow 'countdown' in namespace '{namespace}'; the run waits for "
        f"one (start one with: floxide worker {COUNTDOWN} --namespace {namespace})"
    )
    given_up = floxide(
        "submit", COUNTDOWN, "--input", '{"steps": 1, "delay": 0}', "--run-id", "w-1", "--wait",
        "--timeout", "1.5", env=env,
    )  # fmt: skip
    assert (given_up.returncode, given_up.stdout) == (1, "")
    # progress lines ("floxide: run w-1: 0/1 items ...", every 2 s) may come too on a slow machine
    progress = "floxide: run w-1: "
    assert [line for line in given_up.stderr.splitlines() if not line.startswith(progress)] == [
        "floxide: submitted run w-1",
        nobody,
        "error: waiting for run 'w-1' timed out after 1.5s (the run goes on: floxide status w-1)",
    ]
    waiting = spawn(
        "-m", "floxide.cli", "submit", COUNTDOWN, "--input", '{"steps": 2, "delay": 0}', "--run-id", "w-2",
        "--wait", env=env, name="submit",
    )  # fmt: skip
    wait_until(lambda: nobody in waiting.stderr(), what="submit --wait to say no worker serves the workflow")
    spawn(*worker_args(COUNTDOWN, "--http-port", "0"), env=env, name="worker")
    assert waiting.wait(timeout=30) == 0
    assert waiting.stdout() == "2\n"
    wait_until(lambda: run_status(redis_client, namespace, "w-1") == "Completed", what="the first run")


# -- usage errors -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("redis://localhost:notaport/0", "Port could not be cast to integer value as 'notaport'"),
        ("redis://localhost:99999/0", "Port out of range 0-65535"),
        ("redis://[::1/0", "Invalid IPv6 URL"),
        ("redis://localhost:{port}/zero", "the path of a Redis URL is the database number: redis://host:6379/0"),
        ("redis://local host:{port}/0", "a Redis URL has no spaces"),
        ("unix://", "a unix:// URL names the socket: unix:///path/to/redis.sock"),
        ("redis://localhost:{port}/0?socket_timeout=soon",
         "Invalid value for 'socket_timeout' in connection URL."),
        ("redis://localhost:{port}/0?colour=blue", "unknown option 'colour' in the URL's query"),
    ],
)  # fmt: skip
def test_a_malformed_redis_url_is_a_usage_error(
    url: str, problem: str, capsys: pytest.CaptureFixture[str]
) -> None:
    url = url.format(port=free_port())
    for command in (["runs"], ["status", "r"], ["submit", GATE, "--input", "{}"]):
        assert main([*command, "--redis", url]) == 2, command
        assert capsys.readouterr().err == f"error: bad --redis: {problem} (got {url!r})\n"


def test_a_password_stays_out_of_a_bad_url_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["runs", "--redis", "redis://me:hunter2@localhost:notaport/0"]) == 2
    assert "hunter2" not in capsys.readouterr().err


@pytest.mark.parametrize("run_id", ["a b", "", "x" * 201, "{tag}", "a/b"])
def test_a_bad_run_id_is_a_usage_error(redis_url: str, run_id: str) -> None:
    env = child_env(redis_url, FLOXIDE_NAMESPACE="edges")
    for command in (["submit", COUNTDOWN], ["run", COUNTDOWN, "--redis", redis_url]):
        proc = floxide(*command, "--input", '{"steps": 1, "delay": 0}', "--run-id", run_id, env=env)
        assert proc.returncode == 2, proc.stderr
        assert one_line(proc) == (
            f"error: bad --run-id: a run id is 1-200 letters, digits, '-', '_', '.' or ':' (got {run_id!r})"
        )


# -- without the redis extra ------------------------------------------------------------------

NO_REDIS = """
import runpy, sys

class NoRedis:
    def find_spec(self, name, path=None, target=None):
        if name == "redis" or name.startswith("redis."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, NoRedis())
sys.argv = [sys.argv[1], *sys.argv[2:]]
runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
"""


@pytest.mark.parametrize(
    "command",
    [
        ["floxide.cli", "submit", COUNTDOWN, "--input", "{}"],
        ["floxide.cli", "submit", COUNTDOWN, "--input", "{}", "--wait"],
        ["floxide.cli", "status", "r"],
        ["floxide.cli", "runs"],
        ["floxide.cli", "pause", "r"],
        ["floxide.cli", "resume", "r"],
        ["floxide.cli", "cancel", "r"],
        ["floxide.cli", "retry", "r"],
        ["floxide.cli", "errors", "r"],
        ["floxide.cli", "workers"],
        ["floxide.cli", "run", COUNTDOWN, "--input", "{}", "--redis", "redis://localhost:1/0"],
        ["floxide.cli", "run", COUNTDOWN, "--input", "{}", "--workers", "2"],
        ["floxide.cli", "worker", COUNTDOWN],
        ["floxide_worker", COUNTDOWN],
    ],
    ids=lambda c: "-".join(c[:2]).removeprefix("floxide.cli-"),
)
def test_without_the_redis_extra_commands_say_so(command: list[str]) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", NO_REDIS, *command],
        env=child_env("redis://localhost:1/0"), cwd=ROOT, capture_output=True, text=True, timeout=60,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert one_line(proc) == (
        "error: this command needs the redis extra: pip install 'floxide[redis]' (no module named 'redis')"
    )


def test_without_the_redis_extra_local_commands_work() -> None:
    command = ["floxide.cli", "run", "examples/branching.py:workflow", "--input", "42"]
    proc = subprocess.run(
        [sys.executable, "-c", NO_REDIS, *command],
        env=child_env("redis://localhost:1/0"), cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, '"BigNode: 84"\n', "")


# -- what workers log -------------------------------------------------------------------------


def test_workers_log_what_the_readme_says(spawn: Callable[..., Proc], redis_url: str, tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    bullet = " ".join(readme[readme.index("- **Workers**") :].split("\n\n", 1)[0].split())
    assert re.search(
        r"at the default level INFO one per retry, failure, .*at `--log-level DEBUG` one per item", bullet
    )

    marker = tmp_path / "open"
    marker.write_text("")
    lines = {}
    for level in ("INFO", "DEBUG"):
        env = child_env(redis_url, FLOXIDE_NAMESPACE=f"logs-{level.lower()}-{uuid.uuid4().hex[:6]}")
        worker = spawn(*worker_args(GATE, "--http-port", "0", "--log-format", "json", "--log-level", level),
                       env=env, name=level)  # fmt: skip
        opened = floxide("submit", GATE, "--input", json.dumps({"marker": str(marker)}), "--run-id", "ok",
                         "--wait", env=env)  # fmt: skip
        assert opened.returncode == 0, opened.stderr
        shut = floxide("submit", GATE, "--input", json.dumps({"marker": str(tmp_path / "no")}), "--run-id",
                       "ko", "--wait", env=env)  # fmt: skip
        assert shut.returncode == 1, shut.stderr
        worker.terminate()
        assert worker.wait() == 0
        lines[level] = sorted(
            (line["run"], line["node"], line["result"], line["level"])
            for line in worker.json_lines()
            if "result" in line
        )
    assert lines["INFO"] == [("ko", "check", "failed", "INFO")]
    assert lines["DEBUG"] == [
        ("ko", "check", "failed", "INFO"),
        ("ok", "check", "committed", "DEBUG"),
        ("ok", "open_gate", "committed", "DEBUG"),
    ]
