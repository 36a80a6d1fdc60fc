"""The operator's settings, read from the environment once, when the process starts.

Every field is documented with its unit; the defaults are what a production install wants. The
intervals exist as settings so that tests can run the same operator with short ones.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from floxide.distributed.payloads import DEFAULT_MAX_PAYLOAD_BYTES, PayloadSettings
from floxide.redis import RedisSettings

__all__ = ["SERVICE_ACCOUNT_NAMESPACE", "OperatorSettings"]

SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
"""Where a pod finds its own namespace (mounted with the ServiceAccount token)."""


class OperatorSettings(BaseSettings):
    """How ``floxide operator`` runs. Environment: ``FLOXIDE_OPERATOR_*`` (Redis: ``FLOXIDE_REDIS_*``;
    logging: ``FLOXIDE_LOG_FORMAT``, ``FLOXIDE_LOG_LEVEL``)."""

    model_config = SettingsConfigDict(env_prefix="FLOXIDE_OPERATOR_", extra="ignore")

    # -- what to serve -------------------------------------------------------------------------
    namespace: str = Field(
        "", description="The one namespace whose Workflows the operator serves; empty serves all."
    )
    pod_namespace: str = Field(
        "",
        description=(
            "Namespace of the operator itself, where FLOXIDE_OPERATOR_REDIS_SECRET lives; empty reads it "
            "from the pod's ServiceAccount mount, else 'default'."
        ),
    )
    redis_secret: str = Field(
        "",
        description=(
            "Secret in the operator's namespace with the keys redis-url and redis-password, mirrored into "
            "each Workflow's namespace for its workers; empty mirrors the operator's own Redis settings."
        ),
    )
    redis_acl: bool = Field(
        False,
        description=(
            "Give the workers of each namespace a Redis ACL user of their own (Redis 7+), allowed only that "
            "namespace's keys and the commands workers send, instead of the operator's password."
        ),
    )
    redis_acl_check_interval: float = Field(
        10.0,
        gt=0,
        description="How often each namespace's Redis user is set again, e.g. after a Redis "
        "restart without its data (seconds).",
    )
    redis_acl_rotation_grace: float = Field(
        600.0,
        ge=0,
        description="How long a namespace's previous Redis password stays valid after a rotation (seconds).",
    )
    worker_service_account: str = Field(
        "", description="ServiceAccount of worker pods, unless a Workflow names its own; empty: the default."
    )
    worker_drain_seconds: int = Field(
        25, ge=0, description="How long a stopping worker may finish its steps (seconds)."
    )

    # -- process -------------------------------------------------------------------------------
    peering_name: str = Field(
        "", description="Name of the kopf peering object to join; empty runs standalone (one replica only)."
    )
    create_peering: bool = Field(
        False,
        description=(
            "Create the peering object at start when it is missing (a KopfPeering in the served "
            "namespace, else a ClusterKopfPeering)."
        ),
    )
    metrics_port: int = Field(9090, ge=0, le=65535, description="Port of /metrics (0: any free port).")
    liveness_endpoint: str = Field(
        "http://0.0.0.0:8080/healthz", description="kopf's liveness endpoint (URL); empty disables it."
    )

    # -- timing --------------------------------------------------------------------------------
    run_interval: float = Field(
        1.0, gt=0, le=1.0, description="How often each active WorkflowRun is compared with Redis (seconds)."
    )
    workflow_interval: float = Field(
        1.0, gt=0, description="How often each Workflow is reconciled and scaled (seconds)."
    )
    schedule_interval: float = Field(
        1.0, gt=0, le=60, description="How often each WorkflowSchedule looks for due fire times (seconds)."
    )
    status_min_interval: float = Field(
        1.0, ge=0, description="Least time between two status patches of one resource (seconds)."
    )
    status_refresh_interval: float = Field(
        10.0,
        ge=0,
        description=(
            "Least time between patches that only refresh running counters: a run's duration, a "
            "Workflow's backlog (seconds)."
        ),
    )
    redis_ttl: float = Field(
        7 * 24 * 3600.0,
        gt=0,
        description=(
            "How long a run's data stays in Redis once the operator ends it (cancel, deadline); read "
            "from FLOXIDE_QUEUE_RUN_TTL_SECONDS, the workers' setting (seconds)."
        ),
    )

    max_payload_bytes: int = Field(
        DEFAULT_MAX_PAYLOAD_BYTES,
        ge=1024,
        description=(
            "Largest run input (bytes of its JSON) a WorkflowRun may have; handed to the workers as "
            "their limit on node outputs and context fields. Read from FLOXIDE_MAX_PAYLOAD_BYTES."
        ),
    )

    redis: RedisSettings = Field(default_factory=RedisSettings, description="The operator's own Redis.")
    log_format: Literal["json", "text"] = Field("json", description="FLOXIDE_LOG_FORMAT: json or text.")
    log_level: str = Field("INFO", description="FLOXIDE_LOG_LEVEL: DEBUG, INFO, WARNING or ERROR.")

    @field_validator("log_level")
    @classmethod
    def _upper(cls, value: str) -> str:
        return value.upper()

    @classmethod
    def from_environment(cls) -> OperatorSettings:
        """The settings from ``FLOXIDE_OPERATOR_*``, ``FLOXIDE_REDIS_*``, ``FLOXIDE_LOG_*``,
        ``FLOXIDE_QUEUE_RUN_TTL_SECONDS`` and ``FLOXIDE_MAX_PAYLOAD_BYTES``."""
        logging = _LogSettings()
        queue = _QueueSettings()
        return cls(
            redis=RedisSettings(),
            log_format=logging.format,
            log_level=logging.level,
            redis_ttl=queue.run_ttl_seconds,
            max_payload_bytes=PayloadSettings().max_payload_bytes,
        )

    def own_namespace(self) -> str:
        """The operator's namespace: the setting, else the pod's ServiceAccount mount, else 'default'."""
        if self.pod_namespace:
            return self.pod_namespace
        try:
            return SERVICE_ACCOUNT_NAMESPACE.read_text(encoding="utf-8").strip() or "default"
        except OSError:
            return "default"


class _LogSettings(BaseSettings):
    """``FLOXIDE_LOG_FORMAT`` and ``FLOXIDE_LOG_LEVEL``, shared with the workers."""

    model_config = SettingsConfigDict(env_prefix="FLOXIDE_LOG_", extra="ignore")

    format: Literal["json", "text"] = "json"
    level: str = "INFO"


class _QueueSettings(BaseSettings):
    """``FLOXIDE_QUEUE_RUN_TTL_SECONDS``, shared with the workers."""

    model_config = SettingsConfigDict(env_prefix="FLOXIDE_QUEUE_", extra="ignore")

    run_ttl_seconds: float = Field(7 * 24 * 3600.0, gt=0)
