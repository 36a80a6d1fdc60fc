"""The worker process's settings, in groups, each read from its own environment prefix.

Read once, at the process entry point (:func:`load`): command-line flags win over
environment variables, which win over the defaults below. A bad value stops the process
with one line naming the flag or the variable.

==========================  ================================  ==========
group / field               environment                       default
==========================  ================================  ==========
redis.url                   ``FLOXIDE_REDIS_URL``             ``redis://localhost:6379/0``
redis.password              ``FLOXIDE_REDIS_PASSWORD``        (none)
redis.username              ``FLOXIDE_REDIS_USERNAME``        (none: ``default``)
namespace                   ``FLOXIDE_NAMESPACE``             ``default``
worker.concurrency          ``FLOXIDE_WORKER_CONCURRENCY``    4
worker.http_port            ``FLOXIDE_WORKER_HTTP_PORT``      9090 (0: no HTTP server)
worker.lease_seconds        ``FLOXIDE_WORKER_LEASE_SECONDS``  30
worker.drain_seconds        ``FLOXIDE_WORKER_DRAIN_SECONDS``  25
worker.serve_as             ``FLOXIDE_WORKER_SERVE_AS``       the workflow's name
queue.run_ttl_seconds       ``FLOXIDE_QUEUE_RUN_TTL_SECONDS`` 604800 (7 days)
payloads.max_payload_bytes  ``FLOXIDE_MAX_PAYLOAD_BYTES``     1048576 (1 MiB)
logging.format              ``FLOXIDE_LOG_FORMAT``            ``text``
logging.level               ``FLOXIDE_LOG_LEVEL``             ``INFO``
logging.capture_prints      ``FLOXIDE_LOG_CAPTURE_PRINTS``    false
==========================  ================================  ==========

(and the less common fields of each group, documented on the fields themselves).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from floxide.cli_settings import load_settings, namespace_setting, redis_settings
from floxide.distributed.payloads import PayloadSettings
from floxide.redis import RedisSettings

__all__ = ["LogSettings", "QueueSettings", "Settings", "WorkerOptions", "load"]


class WorkerOptions(BaseSettings):
    """How the process works. Environment: ``FLOXIDE_WORKER_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="FLOXIDE_WORKER_", extra="ignore")

    concurrency: int = Field(4, ge=1, le=10_000, description="Steps this process runs at once.")
    http_port: int = Field(
        9090, ge=0, le=65_535, description="TCP port of /metrics, /healthz and /readyz; 0: no HTTP server."
    )
    http_host: str = Field("0.0.0.0", description="Address the HTTP server listens on.")
    lease_seconds: float = Field(
        30.0,
        gt=0,
        le=86_400,
        description="Seconds a claimed item stays this worker's without renewal (renewed every third of it); "
        "items of a dead worker are reclaimed after this long.",
    )
    drain_seconds: float = Field(
        25.0,
        ge=0,
        le=86_400,
        description="Seconds in-flight steps get to finish after SIGTERM before they are cancelled and "
        "released; keep it below the pod's terminationGracePeriodSeconds.",
    )
    heartbeat_seconds: float = Field(
        5.0, gt=0, le=3600, description="Seconds between heartbeats; a worker is gone after three missed."
    )
    trim_seconds: float = Field(
        60.0, gt=0, description="Seconds between trims of the work stream (and prunes of the run index)."
    )
    serve_as: str = Field(
        "",
        max_length=253,
        description="Name the workflow is served under in Redis (its keys are {wf:<namespace>/<name>}); "
        "empty: the workflow's own name. The operator sets it to the Workflow resource's name, so that "
        "each Workflow resource has a queue of its own, whatever code it runs.",
    )

    def served_name(self, workflow: str) -> str:
        """The name the workflow named ``workflow`` in its code is served under."""
        return self.serve_as or workflow


class QueueSettings(BaseSettings):
    """Retention and delivery limits of the workflow's queue. Environment: ``FLOXIDE_QUEUE_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="FLOXIDE_QUEUE_", extra="ignore")

    run_ttl_seconds: float = Field(
        7 * 24 * 3600.0, gt=0, description="Seconds a finished run's data is kept in Redis."
    )
    max_deliveries: int = Field(
        5, ge=1, description="Times an item may be handed out (its worker dying) before it is dead-lettered."
    )


class LogSettings(BaseSettings):
    """Log output. Environment: ``FLOXIDE_LOG_FORMAT``, ``FLOXIDE_LOG_LEVEL``,
    ``FLOXIDE_LOG_CAPTURE_PRINTS``."""

    model_config = SettingsConfigDict(env_prefix="FLOXIDE_LOG_", extra="ignore")

    format: Literal["text", "json"] = Field(
        "text", description="'json': one JSON object per line; 'text': human-readable lines."
    )
    level: str = Field("INFO", description="DEBUG, INFO, WARNING, ERROR or CRITICAL.")
    capture_prints: bool = Field(
        False,
        description="Keep what nodes print (stdout) in their step logs ('floxide logs RUN') instead of "
        "the worker's stdout; what they log through ctx.log is always kept.",
    )

    @field_validator("format", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    @field_validator("level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.upper()
        if level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            raise ValueError("must be DEBUG, INFO, WARNING, ERROR or CRITICAL")
        return level

    @property
    def level_number(self) -> int:
        """The level as a :mod:`logging` number."""
        return int(logging.getLevelNamesMapping()[self.level])


@dataclass(frozen=True)
class Settings:
    """Every setting of the worker process, by group."""

    redis: RedisSettings
    namespace: str
    worker: WorkerOptions
    queue: QueueSettings
    logging: LogSettings
    payloads: PayloadSettings = field(default_factory=PayloadSettings.model_construct)


def load(
    *,
    redis: str | None = None,
    namespace: str | None = None,
    concurrency: int | None = None,
    http_port: int | None = None,
    lease: float | None = None,
    drain_seconds: float | None = None,
    serve_as: str | None = None,
    log_format: str | None = None,
    log_level: str | None = None,
) -> Settings:
    """The settings: each flag given (not ``None``) over its environment variable over its default.

    Raises :class:`floxide.cli.CliError` naming the flag or variable of a bad value.
    """
    return Settings(
        redis=redis_settings(redis),
        namespace=namespace_setting(namespace),
        worker=load_settings(
            WorkerOptions,
            {
                "concurrency": ("--concurrency", concurrency),
                "http_port": ("--http-port", http_port),
                "lease_seconds": ("--lease", lease),
                "drain_seconds": ("--drain-seconds", drain_seconds),
                "serve_as": ("--serve-as", serve_as),
            },
        ),
        queue=load_settings(QueueSettings, {}),
        logging=load_settings(
            LogSettings, {"format": ("--log-format", log_format), "level": ("--log-level", log_level)}
        ),
        payloads=load_settings(PayloadSettings, {}),
    )
