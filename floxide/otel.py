"""floxide's OpenTelemetry spans (the ``otel`` extra); :mod:`floxide.tracing` says when and which.

Imported only when tracing is on: the engine reaches these spans through :func:`floxide.tracing.tracing`.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Awaitable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.sdk._configuration import _OTelSDKConfigurator
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, TracerProvider
from opentelemetry.util.types import AttributeValue

if TYPE_CHECKING:
    from contextvars import Token

    from floxide.distributed.models import Claim
    from floxide.step import Outcome

__all__ = ["OUTCOMES", "StepTrace", "TracerProvider", "Tracing", "configure_from_environment", "provider_set"]

log = logging.getLogger(__name__)

OUTCOMES = {"committed": "ok", "retrying": "retried"}
"""A worker's step results (:data:`floxide.distributed.execution.StepResult`) named as span
outcomes; the others keep their names."""

_ERRORS = frozenset({"retried", "failed", "crashed"})
_LOCAL = {"done": "ok", "retry": "retried", "failed": "failed"}


def provider_set() -> bool:
    """Whether OpenTelemetry's global tracer provider was set (by the user, or from the environment)."""
    return not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider | trace.NoOpTracerProvider)


def configure_from_environment() -> bool:
    """Set up the SDK from the standard ``OTEL_*`` variables, unless a tracer provider is set already.

    This is the SDK's own environment set-up (the one ``opentelemetry-instrument`` runs):
    exporters from ``OTEL_TRACES_EXPORTER`` (``otlp`` when only an endpoint is given: the
    specification's default), ``OTEL_EXPORTER_OTLP_*``, ``OTEL_SERVICE_NAME``,
    ``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_TRACES_SAMPLER``, ``OTEL_BSP_*``, ``OTEL_CONFIG_FILE``.
    Spans still buffered are exported when the process exits. A set-up that fails is logged
    and leaves tracing off: telemetry never stops a worker.
    """
    if provider_set():
        return True
    if not os.environ.get("OTEL_TRACES_EXPORTER", "").strip():
        # the specification's default, set as opentelemetry-distro sets it: the SDK then picks
        # the OTLP exporter of OTEL_EXPORTER_OTLP_(TRACES_)PROTOCOL (grpc or http/protobuf)
        os.environ["OTEL_TRACES_EXPORTER"] = "otlp"
    try:
        _Configurator().configure()  # type: ignore[no-untyped-call]
    except Exception as exc:
        log.error("tracing is off: setting up OpenTelemetry from the OTEL_* variables failed: %s", exc)
        return False
    return provider_set()


class _Configurator(_OTelSDKConfigurator):
    """The SDK's set-up as a distribution runs it (the SDK asks distributions to subclass it)."""


class Tracing:
    """Makes floxide's spans with ``provider``'s tracer (OpenTelemetry's global provider by default)."""

    def __init__(self, provider: TracerProvider | None = None) -> None:
        self.tracer = trace.get_tracer("floxide", tracer_provider=provider)

    # -- distributed runs --------------------------------------------------------------------------

    @contextmanager
    def start_run(self, workflow: str, run_id: str) -> Iterator[dict[str, str]]:
        """The span of seeding a run; yields the trace context its first item carries."""
        attributes = {"floxide.workflow": workflow, "floxide.run_id": run_id}
        with self.tracer.start_as_current_span(
            f"start_run {workflow}", kind=SpanKind.PRODUCER, attributes=attributes
        ):
            yield carrier()

    def step(self, claim: Claim, workflow: str, worker_id: str) -> StepTrace:
        """Start the span of a claimed item's step (made current until :meth:`StepTrace.end`)."""
        item = claim.item
        parent = propagate.extract(item.trace) if item.trace else otel_context.Context()
        span = self.tracer.start_span(
            f"step {item.node}",
            context=parent,
            kind=SpanKind.CONSUMER,
            attributes={
                "floxide.workflow": workflow,
                "floxide.run_id": item.run_id,
                "floxide.node": item.node,
                "floxide.item_id": item.item_id,
                "floxide.attempt": item.attempt,
                "floxide.deliveries": claim.deliveries,
                "floxide.worker_id": worker_id,
            },
        )
        return StepTrace(self, span, trace.set_span_in_context(span, parent))

    # -- local runs --------------------------------------------------------------------------------

    @contextmanager
    def run(self, workflow: str, run_id: str) -> Iterator[None]:
        """The span of a local run (current while the run lasts: its steps' spans are its children)."""
        attributes = {"floxide.workflow": workflow, "floxide.run_id": run_id}
        with self.tracer.start_as_current_span(f"run {workflow}", attributes=attributes):
            yield

    async def local_step(
        self, step: Awaitable[Outcome], run_id: str, node: str, item_id: str, attempt: int
    ) -> Outcome:
        """Await a local step (:func:`floxide.step.execute`) in its span."""
        attributes: dict[str, AttributeValue] = {
            "floxide.run_id": run_id,
            "floxide.node": node,
            "floxide.item_id": item_id,
            "floxide.attempt": attempt,
        }
        with self.tracer.start_as_current_span(
            f"step {node}", attributes=attributes, record_exception=False, set_status_on_exception=False
        ) as span:
            try:
                outcome = await step
            except BaseException:
                span.set_attribute("floxide.outcome", "cancelled")
                raise
            name = _LOCAL.get(outcome.status, outcome.status)
            span.set_attribute("floxide.outcome", name)
            if outcome.error is not None:
                _record(span, outcome.error, failed=name in _ERRORS)
            return outcome


class StepTrace:
    """The span of one distributed step, current from :meth:`Tracing.step` to :meth:`end`."""

    __slots__ = ("_context", "_errored", "_token", "span", "tracing")

    def __init__(self, tracing: Tracing, span: Span, context: otel_context.Context) -> None:
        self.tracing = tracing
        self.span = span
        self._context = context
        self._token: Token[otel_context.Context] = otel_context.attach(context)
        self._errored = False

    def carrier(self) -> dict[str, str]:
        """The trace context the step's successors carry (its span's)."""
        return carrier(self._context)

    def error(self, error: BaseException, *, failed: bool = True) -> None:
        """Record the node's ``error`` (a failure, or one a fallback edge took)."""
        _record(self.span, error, failed=failed)
        self._errored = self._errored or failed

    async def commit(self, node: str, commit: Awaitable[str]) -> str:
        """Await the step's commit in a ``commit <node>`` span."""
        with self.tracing.tracer.start_as_current_span(f"commit {node}") as span:
            result = await commit
            span.set_attribute("floxide.commit.result", result)
            return result

    def end(self, result: str) -> None:
        """End the span with the step's result (an exception being raised counts as a crash's)."""
        outcome = OUTCOMES.get(result, result)
        self.span.set_attribute("floxide.outcome", outcome)
        if outcome in _ERRORS and not self._errored:
            raised = sys.exc_info()[1]
            if raised is not None and outcome == "crashed":
                _record(self.span, raised, failed=True)
            else:
                self.span.set_status(Status(StatusCode.ERROR, outcome))
        otel_context.detach(self._token)
        self.span.end()


def carrier(context: otel_context.Context | None = None) -> dict[str, str]:
    """A trace context (the current one by default) as W3C headers: ``traceparent``, and
    ``tracestate`` and ``baggage`` if any (the propagators of ``OTEL_PROPAGATORS``)."""
    headers: dict[str, str] = {}
    propagate.inject(headers, context=context)
    return headers


def _record(span: Span, exc: BaseException, *, failed: bool) -> None:
    span.record_exception(exc)
    if failed:
        span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
