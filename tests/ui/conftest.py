"""Fixtures of the dashboard tests: a private redis-server, real workers, a real ``floxide ui``.

* ``redis_url``, ``spawn`` (from tests/worker): the private server and child processes;
* ``env``: the children's environment, namespace ``ui``;
* ``workers`` (module): worker processes serving ``tests/ui/flows.py:batch``,
  ``tests/ui/flows.py:wide`` and ``examples.countdown:workflow``;
* ``dashboard`` (module): ``floxide ui --allow-actions`` on a free port, answering ``/healthz``;
  ``readonly`` (module): the same without ``--allow-actions``;
* ``submit(target, input)``: starts a run with ``floxide submit`` and returns its id.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.worker.conftest import pytest_runtest_makereport, redis_url  # noqa: F401 - fixtures and hook
from tests.worker.helpers import ROOT, Proc, child_env, floxide, free_port, wait_until, worker_args

NAMESPACE = "ui"
FLOWS = str(Path(__file__).resolve().parent / "flows.py")
BATCH = FLOWS + ":batch"
WIDE = FLOWS + ":wide"
COUNTDOWN = "examples.countdown:workflow"


@dataclass
class Dashboard:
    """A running ``floxide ui``: its base URL and process."""

    url: str
    proc: Proc

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30)


@pytest.fixture(scope="module")
def env(redis_url: str) -> dict[str, str]:  # noqa: F811 - the fixture imported above
    return child_env(redis_url, FLOXIDE_NAMESPACE=NAMESPACE)


@pytest.fixture(scope="module")
def workers(env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Proc]]:
    directory = tmp_path_factory.mktemp("ui-workers")
    started = [
        Proc([sys.executable, *worker_args(target, "--http-port", "0", "--concurrency", "4")],
             env=env, directory=directory, name=name)
        for name, target in (("batch", BATCH), ("wide", WIDE), ("countdown", COUNTDOWN))
    ]  # fmt: skip
    yield started
    for proc in started:
        proc.stop()


def _start_ui(env: dict[str, str], directory: Path, *flags: str) -> Iterator[Dashboard]:
    port = free_port()
    proc = Proc([sys.executable, "-m", "floxide.cli", "ui", "--port", str(port), "--refresh", "0.3", *flags],
                env=env, directory=directory, name="ui")  # fmt: skip
    board = Dashboard(f"http://127.0.0.1:{port}", proc)

    def healthy() -> bool:
        assert proc.popen.poll() is None, f"floxide ui exited: {proc.stderr()}"
        try:
            return httpx.get(board.url + "/healthz", timeout=2).text == "ok"
        except httpx.HTTPError:
            return False

    wait_until(healthy, timeout=30, what="floxide ui to answer")
    yield board
    proc.stop()
    if proc.popen.returncode not in (0, -15):
        sys.stderr.write(proc.stderr()[-4000:])


@pytest.fixture(scope="module")
def dashboard(
    env: dict[str, str], workers: list[Proc], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Dashboard]:
    yield from _start_ui(env, tmp_path_factory.mktemp("ui"), "--allow-actions")


@pytest.fixture(scope="module")
def readonly(
    env: dict[str, str], workers: list[Proc], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Dashboard]:
    yield from _start_ui(env, tmp_path_factory.mktemp("ui-readonly"))


@pytest.fixture
def submit(env: dict[str, str]) -> Callable[..., str]:
    def start(target: str, value: object, *, serve_as: str | None = None) -> str:
        extra = ["--serve-as", serve_as] if serve_as else []
        done = floxide("submit", target, "--input", json.dumps(value), *extra, env=env)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    return start


__all__ = ["BATCH", "COUNTDOWN", "NAMESPACE", "ROOT", "WIDE", "Dashboard"]
