"""Tracing with OpenTelemetry, optional (the ``otel`` extra): whether it is on, and floxide's tracer.

One trace per run, across every process that touches it. The trace context (W3C
``traceparent``, through OpenTelemetry's propagation API, so ``OTEL_PROPAGATORS`` applies) is
carried in each work item (:attr:`floxide.workitem.WorkItem.trace`):

* ``start_run <workflow>`` (kind PRODUCER): seeding a run (``start_run``, the CLI, the operator,
  the scheduler); a child of the caller's current span if there is one. The run's first item
  carries it.
* ``step <node>`` (kind CONSUMER): one delivery of one work item on a worker, from the claim to
  its outcome. Its parent is the span of the step that made the item (the ``start_run`` span for
  the first item). A retry, a re-delivery or a reclaim of an item has the same parent as the
  first attempt. A join's item (the step that runs once all branches arrived) has one parent:
  the step whose commit closed its fan-out (the last arrival, whose item id the join's item id
  names); the other arrivals are not linked (their span contexts are not kept with the
  arrivals). Attributes: ``floxide.workflow``, ``floxide.run_id``, ``floxide.node``,
  ``floxide.item_id``, ``floxide.attempt``, ``floxide.deliveries``, ``floxide.worker_id``, and
  ``floxide.outcome``: ``ok``, ``retried``, ``failed``, ``cancelled``, ``duplicate``,
  ``parked``, ``dropped``, ``throttled``, ``released`` or ``crashed`` (the status is ERROR for
  ``retried``, ``failed`` and ``crashed``, with the node's exception recorded).
* ``commit <node>``: the step's atomic commit, a child of its step span; attribute
  ``floxide.commit.result`` (``ok``, ``duplicate``, ``cancelled``, ``gone``).
* Local runs (``Workflow.run``/``execute``): ``run <workflow>`` with one ``step <node>`` child
  per step (outcome ``ok``, ``retried``, ``failed`` or ``cancelled``).

Spans a node makes itself (an instrumented HTTP client, say) are children of its step span.

Tracing is on when the extra is installed and configured: an ``OTEL_TRACES_EXPORTER`` other than
``none``, ``OTEL_EXPORTER_OTLP_ENDPOINT``, ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` or
``OTEL_CONFIG_FILE`` in the environment (the SDK is then set up from the standard ``OTEL_*``
variables, once per process, unless a tracer provider is set already), or a tracer provider set
in-process (OpenTelemetry's global one, or :func:`set_tracer_provider`). ``OTEL_SDK_DISABLED=true``
turns it off. The check is made when a worker is built and once per run (local runs, seeding);
with tracing off, a step costs a few ``is None`` tests and OpenTelemetry is not even imported.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from floxide.otel import TracerProvider, Tracing

__all__ = ["TRIGGERS", "set_tracer_provider", "tracing"]

log = logging.getLogger(__name__)

TRIGGERS = (
    "OTEL_TRACES_EXPORTER",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_CONFIG_FILE",
)
"""Environment variables that turn tracing on (any of them set, and not ``OTEL_TRACES_EXPORTER=none``)."""

_provider: TracerProvider | None = None
_configured: bool | None = None  # set up from the environment: yes, no, not looked at yet


def set_tracer_provider(provider: TracerProvider | None) -> None:
    """Trace with ``provider`` instead of OpenTelemetry's global one (``None``: the global one again).

    For embedding and tests; workers and runs built afterwards use it.
    """
    global _provider
    _provider = provider


def tracing() -> Tracing | None:
    """floxide's tracer, or ``None`` when tracing is off (see the module docstring)."""
    global _configured
    if _provider is not None:
        from floxide.otel import Tracing

        return Tracing(_provider)
    if _configured is None:
        _configured = _from_environment()
    if _configured or ("opentelemetry.trace" in sys.modules and _has_sdk() and _provider_set()):
        from floxide.otel import Tracing

        return Tracing()
    return None


def _from_environment() -> bool:
    """Whether the ``OTEL_*`` variables ask for traces; if so, set up the SDK (once per process)."""
    env = os.environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporters = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporters == "none" or not any(env.get(name, "").strip() for name in TRIGGERS):
        return False
    if importlib.util.find_spec("opentelemetry") is None or not _has_sdk():
        log.warning(
            "OpenTelemetry is configured (%s) but its SDK is not installed: tracing is off; "
            "install the extra: pip install 'floxide[otel]'",
            ", ".join(name for name in TRIGGERS if env.get(name)),
        )
        return False
    from floxide.otel import configure_from_environment

    return configure_from_environment()


@functools.cache
def _has_sdk() -> bool:
    """Whether the extra is installed (OpenTelemetry's API alone comes with other packages too)."""
    return importlib.util.find_spec("opentelemetry.sdk") is not None


def _provider_set() -> bool:
    from floxide.otel import provider_set

    return provider_set()
