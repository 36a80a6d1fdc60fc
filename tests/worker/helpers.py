"""Helpers of the worker-process tests: ports, polling, HTTP, child processes, the CLI."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
FLOWS = str(HERE / "flows.py")


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (never 6379)."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port != 6379:
            return port


def wait_until(
    check: Callable[[], Any], *, timeout: float = 15.0, every: float = 0.05, what: str = ""
) -> Any:
    """Poll ``check`` until it returns something truthy; fail the test after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what or check}")
        time.sleep(every)


def http_get(port: int, path: str) -> tuple[int, str]:
    """``(status, body)`` of ``GET http://127.0.0.1:port/path`` (``(0, error)`` if unreachable)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError as exc:
        return 0, str(exc)


def child_env(redis_url: str, **more: str) -> dict[str, str]:
    """The environment of a child process: this one without ``FLOXIDE_*``, plus ``more``.

    Children run in the repository root with ``-m`` (so ``examples`` and ``tests`` import);
    the root must not go on ``PYTHONPATH``, where ``operator/`` would shadow the standard
    library's module.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOXIDE_")}
    env["FLOXIDE_REDIS_URL"] = redis_url
    env.update(more)
    return env


class Proc:
    """A child process with its output in files."""

    def __init__(self, args: list[str], *, env: dict[str, str], directory: Path, name: str) -> None:
        self.args = args
        self.out = directory / f"{name}.out"
        self.err = directory / f"{name}.err"
        with self.out.open("wb") as out, self.err.open("wb") as err:
            self.popen = subprocess.Popen(
                args, env=env, cwd=ROOT, stdout=out, stderr=err, stdin=subprocess.DEVNULL
            )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def stderr(self) -> str:
        return self.err.read_text(errors="replace")

    def stdout(self) -> str:
        return self.out.read_text(errors="replace")

    def json_lines(self) -> list[dict[str, Any]]:
        """The stderr lines that are JSON objects (the json log format)."""
        found = []
        for line in self.stderr().splitlines():
            if line.startswith("{"):
                found.append(json.loads(line))
        return found

    def terminate(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)

    def wait(self, timeout: float = 30.0) -> int:
        """The exit status; a process still running after ``timeout`` s is asked for its stacks."""
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.send_signal(signal.SIGUSR1)
            time.sleep(1.0)
            raise

    def stop(self) -> None:
        self.terminate()
        try:
            self.popen.wait(30)
        except subprocess.TimeoutExpired:
            self.popen.send_signal(signal.SIGUSR1)  # a worker logs its tasks' stacks
            time.sleep(1.0)
            self.popen.kill()
            self.popen.wait()


def worker_args(target: str, *extra: str) -> list[str]:
    """``-m floxide_worker TARGET extra...``."""
    return ["-m", "floxide_worker", target, *extra]


def floxide(*args: str, env: dict[str, str], timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """Run ``floxide args...`` (as ``python -m floxide.cli``) and return its result."""
    return subprocess.run(
        [sys.executable, "-m", "floxide.cli", *args],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
    )  # fmt: skip
