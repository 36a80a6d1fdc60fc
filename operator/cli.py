"""``floxide operator``: run the Kubernetes operator.

Registered on the ``floxide`` command (:data:`floxide.cli.EXTENSIONS`) when the ``[operator]``
extra is installed. It reads :class:`~.settings.OperatorSettings` from the environment once,
configures logging, registers the handlers on a fresh registry and runs kopf until SIGTERM:
cluster-wide, or in ``FLOXIDE_OPERATOR_NAMESPACE`` only, with kopf's liveness endpoint
(``/healthz``) and the operator's ``/metrics``.

kopf and the operator's modules are imported when the command runs, not when ``floxide`` starts.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from .settings import OperatorSettings

__all__ = ["configure_logging", "kopf_options", "register", "run"]


def configure_logging(settings: OperatorSettings) -> None:
    """Structured (JSON) or text logs at ``FLOXIDE_LOG_LEVEL``.

    kopf's per-object lines below WARNING ("Timer ... succeeded", once per run per second) and the
    lines of every liveness probe are shown only at DEBUG.
    """
    import kopf

    log_format = kopf.LogFormat.JSON if settings.log_format == "json" else kopf.LogFormat.FULL
    kopf.configure(debug=settings.log_level == "DEBUG", log_format=log_format, log_prefix=True)
    level = logging.getLevelName(settings.log_level)
    logging.getLogger().setLevel(level if isinstance(level, int) else logging.INFO)
    if settings.log_level != "DEBUG":  # lines per object per second, and per probe of the kubelet
        for name in ("kopf.objects", "kopf.activities.probe", "aiohttp.access"):
            logging.getLogger(name).setLevel(logging.WARNING)


def kopf_options(settings: OperatorSettings) -> dict[str, Any]:
    """The arguments of ``kopf.run`` that follow from the settings."""
    return {
        "clusterwide": not settings.namespace,
        "namespaces": [settings.namespace] if settings.namespace else [],
        "liveness_endpoint": settings.liveness_endpoint or None,
    }


def run() -> None:
    """Run the operator until it is stopped (SIGINT, SIGTERM)."""
    import kopf

    from . import handlers
    from .settings import OperatorSettings

    settings = OperatorSettings.from_environment()
    configure_logging(settings)
    registry = kopf.OperatorRegistry()
    handlers.register(registry, settings)
    kopf.run(registry=registry, **kopf_options(settings))


def register(app: typer.Typer) -> None:
    """Add ``floxide operator`` to the ``floxide`` command."""

    @app.command("operator")
    def operator() -> None:
        """Run the Kubernetes operator: Workflows get worker pods, WorkflowRuns get run.

        Settings come from the environment (FLOXIDE_REDIS_URL, FLOXIDE_OPERATOR_NAMESPACE,
        FLOXIDE_OPERATOR_PEERING_NAME, ...; see docs/operations.md).
        """
        run()
