"""Worker settings: flags win over environment variables, which win over the defaults.

Cases:
* defaults when nothing is set;
* every documented environment variable is read (and case-insensitive choices);
* a flag overrides its variable;
* a bad value names the flag or the variable it came from, with the value;
* the process refuses bad settings and targets with one line and exit status 2.
"""

from __future__ import annotations

import sys

import pytest
from floxide_worker.settings import load

from floxide.cli import CliError
from tests.worker.helpers import child_env, floxide, worker_args

pytestmark = pytest.mark.usefixtures("clean_env")


def test_defaults() -> None:
    s = load()
    assert s.redis.url == "redis://localhost:6379/0"
    assert s.namespace == "default"
    assert (s.worker.concurrency, s.worker.http_port) == (4, 9090)
    assert (s.worker.lease_seconds, s.worker.drain_seconds) == (30.0, 25.0)
    assert (s.logging.format, s.logging.level) == ("text", "INFO")
    assert s.queue.run_ttl_seconds == 7 * 24 * 3600


def test_environment_over_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "FLOXIDE_REDIS_URL": "rediss://cache.example:6380/1",
        "FLOXIDE_REDIS_PASSWORD": "s3cret",
        "FLOXIDE_NAMESPACE": "team-a",
        "FLOXIDE_WORKER_CONCURRENCY": "16",
        "FLOXIDE_WORKER_HTTP_PORT": "0",
        "FLOXIDE_WORKER_LEASE_SECONDS": "12.5",
        "FLOXIDE_WORKER_DRAIN_SECONDS": "5",
        "FLOXIDE_LOG_FORMAT": "JSON",
        "FLOXIDE_LOG_LEVEL": "debug",
        "FLOXIDE_QUEUE_RUN_TTL_SECONDS": "3600",
    }.items():
        monkeypatch.setenv(name, value)
    s = load()
    assert s.redis.url == "rediss://cache.example:6380/1"
    assert s.redis.password is not None and s.redis.password.get_secret_value() == "s3cret"
    assert s.namespace == "team-a"
    assert (s.worker.concurrency, s.worker.http_port) == (16, 0)
    assert (s.worker.lease_seconds, s.worker.drain_seconds) == (12.5, 5.0)
    assert (s.logging.format, s.logging.level, s.logging.level_number) == ("json", "DEBUG", 10)
    assert s.queue.run_ttl_seconds == 3600


def test_flags_over_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOXIDE_REDIS_URL", "redis://from-env:6379/0")
    monkeypatch.setenv("FLOXIDE_NAMESPACE", "from-env")
    monkeypatch.setenv("FLOXIDE_WORKER_CONCURRENCY", "16")
    monkeypatch.setenv("FLOXIDE_WORKER_DRAIN_SECONDS", "5")
    monkeypatch.setenv("FLOXIDE_LOG_FORMAT", "json")
    s = load(
        redis="redis://from-flag:6379/2", namespace="from-flag", concurrency=2, http_port=9191,
        lease=3, drain_seconds=1, log_format="text", log_level="WARNING",
    )  # fmt: skip
    assert s.redis.url == "redis://from-flag:6379/2"
    assert s.namespace == "from-flag"
    assert (s.worker.concurrency, s.worker.http_port, s.worker.lease_seconds, s.worker.drain_seconds) == (
        2, 9191, 3.0, 1.0,
    )  # fmt: skip
    assert (s.logging.format, s.logging.level) == ("text", "WARNING")


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        (
            "FLOXIDE_WORKER_CONCURRENCY",
            "0",
            "bad FLOXIDE_WORKER_CONCURRENCY: Input should be greater than or equal to 1",
        ),
        (
            "FLOXIDE_WORKER_CONCURRENCY",
            "many",
            "bad FLOXIDE_WORKER_CONCURRENCY: Input should be a valid integer",
        ),
        ("FLOXIDE_WORKER_HTTP_PORT", "70000", "bad FLOXIDE_WORKER_HTTP_PORT"),
        ("FLOXIDE_WORKER_LEASE_SECONDS", "0", "bad FLOXIDE_WORKER_LEASE_SECONDS"),
        ("FLOXIDE_WORKER_DRAIN_SECONDS", "-1", "bad FLOXIDE_WORKER_DRAIN_SECONDS"),
        ("FLOXIDE_LOG_FORMAT", "xml", "bad FLOXIDE_LOG_FORMAT: Input should be 'text' or 'json'"),
        ("FLOXIDE_LOG_LEVEL", "LOUD", "bad FLOXIDE_LOG_LEVEL: Value error, must be DEBUG, INFO"),
        ("FLOXIDE_NAMESPACE", "a/b", "bad FLOXIDE_NAMESPACE: String should match pattern"),
        ("FLOXIDE_REDIS_URL", "localhost:6379", "bad FLOXIDE_REDIS_URL: a Redis URL starts with redis://"),
    ],
)
def test_bad_environment_value_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(CliError) as caught:
        load()
    assert str(caught.value).startswith(expected)
    assert repr(value) in str(caught.value)
    assert caught.value.code == 2


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ({"concurrency": 0}, "bad --concurrency: Input should be greater than or equal to 1 (got '0')"),
        ({"http_port": -1}, "bad --http-port"),
        ({"lease": 0.0}, "bad --lease"),
        ({"log_format": "yaml"}, "bad --log-format"),
        ({"namespace": "has space"}, "bad --namespace"),
        ({"redis": "http://x"}, "bad --redis: a Redis URL starts with"),
    ],
)
def test_bad_flag_names_the_flag(
    monkeypatch: pytest.MonkeyPatch, flags: dict[str, object], expected: str
) -> None:
    monkeypatch.setenv("FLOXIDE_WORKER_CONCURRENCY", "3")  # the variable is fine; the flag is not
    with pytest.raises(CliError) as caught:
        load(**flags)  # type: ignore[arg-type]
    assert str(caught.value).startswith(expected)


def test_process_refuses_bad_settings_and_targets() -> None:
    env = child_env("redis://127.0.0.1:1/0", FLOXIDE_WORKER_DRAIN_SECONDS="soon")
    bad_env = floxide("worker", "examples.countdown:workflow", env=env)
    assert bad_env.returncode == 2
    assert bad_env.stderr.splitlines() == [
        "error: bad FLOXIDE_WORKER_DRAIN_SECONDS: Input should be a valid number, "
        "unable to parse string as a number (got 'soon')"
    ]
    import subprocess

    bad_target = subprocess.run(
        [sys.executable, *worker_args("examples.nothing_here:workflow", "--http-port", "0")],
        env=child_env("redis://127.0.0.1:1/0"), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert bad_target.returncode == 2
    assert bad_target.stderr.strip().startswith("error: no module named 'examples.nothing_here'")
    bad_flag = floxide(
        "worker", "examples.countdown:workflow", "--concurrency", "zero", env=child_env("redis://x")
    )
    assert bad_flag.returncode == 2
    assert bad_flag.stderr.startswith("error: ")
