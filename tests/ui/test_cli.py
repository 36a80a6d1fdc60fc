"""``floxide ui`` on the command line: its options, and its errors as one line with exit status 2.

Cases:
* it says where it listens, read-only or not, and which namespaces; SIGTERM ends it promptly even
  with a live page's event stream open;
* a taken port, a malformed --redis URL and a bad --namespace are one line each, exit status 2;
* --namespace limits what it shows (another namespace's runs are 404);
* with Redis away, the API answers 503 and an event stream sends an `error` event.
"""

from __future__ import annotations

import socket
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.ui.conftest import NAMESPACE
from tests.worker.helpers import Proc, floxide, free_port, wait_until

pytestmark = [pytest.mark.redis, pytest.mark.slow]


def test_serves_and_stops_promptly(env: dict[str, str], tmp_path: Path) -> None:
    port = free_port()
    proc = Proc([sys.executable, "-m", "floxide.cli", "ui", "--port", str(port), "--namespace", "elsewhere"],
                env=env, directory=tmp_path, name="ui")  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: "dashboard on" in proc.stderr(), timeout=30, what="the dashboard to start")
        assert f"dashboard on {url} (read-only; elsewhere)" in proc.stderr()
        wait_until(lambda: _answers(url), timeout=30, what="the dashboard to answer")
        assert httpx.get(url + "/api/namespaces").json() == ["elsewhere"]
        hidden = httpx.get(f"{url}/api/runs/{NAMESPACE}/countdown/any")
        assert (
            hidden.status_code == 404 and f"namespace '{NAMESPACE}' is not shown" in hidden.json()["detail"]
        )
        with httpx.stream("GET", url + "/api/events/runs", timeout=30) as stream:
            assert next(stream.iter_lines()).startswith("event: runs")
            started = time.monotonic()
            proc.terminate()
            assert proc.wait(20) in (0, -15)  # uvicorn re-raises the SIGTERM it handled
        assert time.monotonic() - started < 15
    finally:
        proc.stop()


def _answers(url: str) -> bool:
    try:
        return httpx.get(url + "/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_errors_are_one_line(env: dict[str, str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = floxide("ui", "--port", str(port), env=env)
    assert done.returncode == 2
    assert done.stderr.splitlines()[-1].startswith(f"error: cannot listen on 127.0.0.1:{port}")

    bad_url = floxide("ui", "--redis", "redis://localhost:6379/zero", env=env)
    assert bad_url.returncode == 2 and bad_url.stderr.startswith("error: bad --redis")
    assert len(bad_url.stderr.splitlines()) == 1

    bad_namespace = floxide("ui", "--namespace", "no/slash", env=env)
    assert bad_namespace.returncode == 2 and "--namespace" in bad_namespace.stderr
    assert len(bad_namespace.stderr.splitlines()) == 1


def test_redis_away_is_503_and_an_error_event(env: dict[str, str], tmp_path: Path) -> None:
    port, nowhere = free_port(), free_port()
    away = {**env, "FLOXIDE_REDIS_URL": f"redis://127.0.0.1:{nowhere}/0"}
    proc = Proc([sys.executable, "-m", "floxide.cli", "ui", "--port", str(port), "--namespace", NAMESPACE],
                env=away, directory=tmp_path, name="ui")  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: _answers(url), timeout=30, what="the dashboard to answer")
        answer = httpx.get(url + "/api/runs", timeout=30)
        assert answer.status_code == 503 and answer.json()["detail"].startswith("Redis is unavailable")
        with httpx.stream("GET", url + "/api/events/runs", timeout=30) as stream:
            lines = stream.iter_lines()
            assert next(lines) == "event: error"
            assert next(lines).startswith("data: Redis is unavailable")
    finally:
        proc.stop()
