"""The operator's settings and how ``floxide operator`` hands them to kopf.

Cases:
- defaults, and every documented variable read from the environment (Redis, logging and the
  run TTL under the names the workers read too);
- the run interval may not exceed one second (status must show completion within two);
- cluster-wide without FLOXIDE_OPERATOR_NAMESPACE, one namespace with it; the liveness endpoint;
- the startup handler's kopf settings: the chart's peering object (standalone without a name),
  the finalizer, and a diff-base storage that leaves spec.input out of the annotation;
- the operator's own namespace: the setting, else the ServiceAccount mount, else 'default'.
"""

from __future__ import annotations

import os
from pathlib import Path

import kopf
import pytest
from floxide_operator import cli, handlers, settings
from floxide_operator.settings import OperatorSettings
from pydantic import ValidationError


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    shared = ("FLOXIDE_REDIS_URL", "FLOXIDE_REDIS_PASSWORD", "FLOXIDE_LOG_FORMAT", "FLOXIDE_LOG_LEVEL")
    for name in (*shared, "FLOXIDE_QUEUE_RUN_TTL_SECONDS"):
        monkeypatch.delenv(name, raising=False)
    for name in [name for name in os.environ if name.startswith("FLOXIDE_OPERATOR_")]:
        monkeypatch.delenv(name)


def test_defaults() -> None:
    ours = OperatorSettings.from_environment()
    assert (ours.namespace, ours.peering_name, ours.redis_secret, ours.worker_service_account) == (
        "",
        "",
        "",
        "",
    )
    assert ours.metrics_port == 9090
    assert ours.liveness_endpoint == "http://0.0.0.0:8080/healthz"
    assert (ours.run_interval, ours.status_min_interval) == (1.0, 1.0)
    assert (ours.log_format, ours.log_level) == ("json", "INFO")
    assert ours.redis_ttl == 7 * 24 * 3600


def test_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    environment = {
        "FLOXIDE_REDIS_URL": "rediss://redis.example:6380/1",
        "FLOXIDE_REDIS_PASSWORD": "secret",
        "FLOXIDE_OPERATOR_NAMESPACE": "team-a",
        "FLOXIDE_OPERATOR_REDIS_SECRET": "floxide-redis-connection",
        "FLOXIDE_OPERATOR_WORKER_SERVICE_ACCOUNT": "floxide-worker",
        "FLOXIDE_OPERATOR_PEERING_NAME": "floxide",
        "FLOXIDE_OPERATOR_METRICS_PORT": "9191",
        "FLOXIDE_OPERATOR_RUN_INTERVAL": "0.5",
        "FLOXIDE_OPERATOR_WORKFLOW_INTERVAL": "3",
        "FLOXIDE_LOG_FORMAT": "text",
        "FLOXIDE_LOG_LEVEL": "debug",
        "FLOXIDE_QUEUE_RUN_TTL_SECONDS": "3600",
    }
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    ours = OperatorSettings.from_environment()
    assert ours.redis.url == "rediss://redis.example:6380/1"
    assert ours.redis.password is not None and ours.redis.password.get_secret_value() == "secret"
    assert (ours.namespace, ours.redis_secret, ours.worker_service_account) == (
        "team-a",
        "floxide-redis-connection",
        "floxide-worker",
    )
    assert (ours.peering_name, ours.metrics_port) == ("floxide", 9191)
    assert (ours.run_interval, ours.workflow_interval) == (0.5, 3.0)
    assert (ours.log_format, ours.log_level) == ("text", "DEBUG")
    assert ours.redis_ttl == 3600.0  # the workers' retention, under their variable


def test_run_interval_is_at_most_a_second(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOXIDE_OPERATOR_RUN_INTERVAL", "2")
    with pytest.raises(ValidationError, match="run_interval"):
        OperatorSettings.from_environment()


def test_kopf_options() -> None:
    assert cli.kopf_options(OperatorSettings()) == {
        "clusterwide": True,
        "namespaces": [],
        "liveness_endpoint": "http://0.0.0.0:8080/healthz",
    }
    one = cli.kopf_options(OperatorSettings(namespace="team-a", liveness_endpoint=""))
    assert one == {"clusterwide": False, "namespaces": ["team-a"], "liveness_endpoint": None}


def test_kopf_settings_with_a_peering_name() -> None:
    kopf_settings = kopf.OperatorSettings()
    handlers.configure_kopf(kopf_settings, OperatorSettings(peering_name="floxide"))
    assert (kopf_settings.peering.name, kopf_settings.peering.mandatory) == ("floxide", True)
    assert kopf_settings.peering.standalone is False
    assert kopf_settings.persistence.finalizer == "floxide.io/finalizer"
    storage = kopf_settings.persistence.diffbase_storage
    assert isinstance(storage, handlers.NoDiffBase)  # no last-handled copy: no write for it
    body = kopf.Body({"metadata": {"name": "r"}, "spec": {"workflow": "wf", "input": {"big": "x" * 1000}}})
    patch = kopf.Patch()
    storage.store(body=body, patch=patch, essence=storage.build(body=body))
    assert not patch and storage.fetch(body=body) is None


def test_kopf_settings_standalone_without_a_peering_name() -> None:
    kopf_settings = kopf.OperatorSettings()
    handlers.configure_kopf(kopf_settings, OperatorSettings())
    assert kopf_settings.peering.standalone is True
    assert kopf_settings.background.cancellation_polling <= 1  # a deletion waits on a busy timer tick


def test_own_namespace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mount = tmp_path / "namespace"
    monkeypatch.setattr(settings, "SERVICE_ACCOUNT_NAMESPACE", mount)
    assert OperatorSettings().own_namespace() == "default"
    mount.write_text("floxide-system\n")
    assert OperatorSettings().own_namespace() == "floxide-system"
    assert OperatorSettings(pod_namespace="elsewhere").own_namespace() == "elsewhere"
