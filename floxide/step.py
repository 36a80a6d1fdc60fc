"""One step: run a node on one work item and say what follows (shared by every runner).

:func:`execute` never touches shared state. It returns an :class:`Outcome` — successors,
join arrivals, run outputs, the context delta, or a failure/retry decision — that the
caller commits: the local runner in memory, a distributed store atomically in Redis.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from floxide.context import WorkflowCtx
from floxide.errors import Cancelled, FloxideError, NodeFailed, NodeTimeout, Timeout
from floxide.graph import Failure, Graph, NodeSpec
from floxide.merge import FieldChange, diff
from floxide.steplog import enter_step, leave_step
from floxide.transition import Abort, Hold, Next, NextAll

__all__ = ["Emit", "Outcome", "RoutingError", "execute", "failure_of"]


class RoutingError(FloxideError):
    """A node's output matched none of its route's cases."""


@dataclass(slots=True)
class Emit:
    """A value sent to ``node``; ``join`` marks an arrival at a join instead of a new item."""

    node: str
    value: Any
    join: bool = False


@dataclass(slots=True)
class Outcome:
    """What a step produced. ``status`` is ``done``, ``retry`` or ``failed``.

    ``fan_out`` says the emits open a new fan-out frame (``NextAll``, or several targets).
    """

    status: str
    emits: list[Emit] = field(default_factory=list)
    outputs: list[Any] = field(default_factory=list)
    changes: list[FieldChange] = field(default_factory=list)
    fan_out: bool = False
    error: BaseException | None = None
    retry_delay: float = 0.0


async def execute(
    graph: Graph, spec: NodeSpec, ctx: WorkflowCtx[Any], value: Any, *, default_retry: Any = None
) -> Outcome:
    """Run ``spec``'s node with ``ctx`` (a step context) on ``value``.

    ``default_retry`` is the policy for nodes without one of their own (distributed workers
    retry by default; local runs do not).
    """
    before = ctx.store
    if before is not None:
        ctx.store = before.model_copy(deep=True)
    step = enter_step(ctx)  # what the node prints goes to its step log (if prints are captured)
    try:
        if spec.timeout is None:
            result = await spec.invoke(ctx, value)
        else:
            try:
                async with asyncio.timeout(spec.timeout):
                    result = await spec.invoke(ctx, value)
            except TimeoutError as exc:
                raise Timeout(spec.timeout, scope=_node_scope(spec.name)) from exc
        if result.__class__ is Abort:
            raise result.exception()
        outcome = _route(graph, spec, result)
        if before is not None and ctx.store is not before:
            outcome.changes = diff(before, ctx.store)
        return outcome
    except Cancelled:
        raise
    except Exception as exc:
        return _failed(spec, ctx, value, exc, spec.retry or default_retry)
    finally:
        leave_step(step)


def _route(graph: Graph, spec: NodeSpec, result: Any) -> Outcome:
    cls = result.__class__
    if cls is Hold:
        return Outcome("done")
    if cls is NextAll:
        values: Sequence[Any] = result.values
        fan_out = True
    else:
        values = (result.value,) if cls is Next else (result,)
        fan_out = False
    outcome = Outcome("done")
    emits = outcome.emits
    joins = spec.join_targets
    if spec.cases:
        for value in values:
            for case, targets in spec.cases:
                if case.matches(value):
                    payload = case.extract(value)
                    if not targets:
                        outcome.outputs.append(payload)
                    for target in targets:
                        emits.append(Emit(target, payload, target in joins))
                    break
            else:
                raise RoutingError(f"no route case of node '{spec.name}' matches {value!r}")
    elif spec.targets:
        for value in values:
            for target in spec.targets:
                emits.append(Emit(target, value, target in joins))
    else:
        outcome.outputs.extend(values)
    if not fan_out and len(emits) > 1:
        fan_out = sum(1 for e in emits if not e.join) > 1
    outcome.fan_out = fan_out
    return outcome


def _failed(spec: NodeSpec, ctx: WorkflowCtx[Any], value: Any, error: Exception, policy: Any) -> Outcome:
    if policy is not None and policy.should_retry(error, ctx.attempt):
        return Outcome("retry", error=error, retry_delay=policy.delay(ctx.attempt, error))
    if not spec.fallbacks:
        return Outcome("failed", error=error)
    failure = failure_of(spec, value, error, ctx.attempt)
    emits = [Emit(t, failure if t in spec.wants_failure else value) for t in spec.fallbacks]
    return Outcome("done", emits=emits, fan_out=len(emits) > 1, error=error)


def failure_of(spec: NodeSpec, value: Any, error: BaseException, attempts: int) -> Failure[Any]:
    """The :class:`Failure` a fallback node receives."""
    return Failure[Any](
        input=value, node=spec.name, error_type=type(error).__name__, error=str(error), attempts=attempts
    )


def node_failed(spec_name: str, error: BaseException, attempts: int) -> NodeFailed:
    """The run-level error for a node failure nothing handled.

    :class:`NodeTimeout` (a ``NodeFailed`` and a ``Timeout``) when the node exceeded its own
    time limit — the :class:`Timeout` :func:`execute` raises for it —, else ``NodeFailed``.
    """
    failed: NodeFailed
    if type(error) is Timeout and error.scope == _node_scope(spec_name):
        failed = NodeTimeout(spec_name, error.seconds, attempts=attempts)
    else:
        failed = NodeFailed(spec_name, type(error).__name__, str(error), attempts=attempts)
    failed.__cause__ = error
    return failed


def _node_scope(name: str) -> str:
    """The ``scope`` of the :class:`Timeout` for node ``name``'s own time limit."""
    return f"node '{name}'"
