"""Retry policies, written once as data, and the ``RetryNode`` wrapper.

``RetryPolicy`` says how often a failing node runs (``max_attempts`` counts the first try),
how long to wait between attempts (constant, linear or exponential backoff, capped at
``max_backoff``, with random jitter) and which errors are retried. Attach it to a node in
a workflow definition (``Workflow(..., retry={node: policy})``: locally the engine waits,
distributed the item goes to a durable delayed queue), or wrap a node with
:func:`with_retry` to retry inside one step.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, InstanceOf, model_validator

from floxide.context import WorkflowCtx
from floxide.errors import Cancelled, PermanentError, RetryableError, Timeout
from floxide.node import Node
from floxide.transition import Abort

__all__ = ["BackoffStrategy", "RetryNode", "RetryPolicy", "with_retry"]


class BackoffStrategy(StrEnum):
    """How the wait grows from one attempt to the next."""

    CONSTANT = "constant"
    LINEAR = "linear"
    EXPONENTIAL = "exponential"


class RetryPolicy(BaseModel):
    """When and how a failed node is tried again. Durations are in seconds."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    max_attempts: int = Field(3, ge=1, description="Attempts in all, the first one included.")
    initial_backoff: float = Field(0.1, ge=0, description="Wait before the 2nd attempt, in seconds.")
    max_backoff: float = Field(30.0, ge=0, description="Upper bound of any wait, in seconds.")
    strategy: BackoffStrategy = BackoffStrategy.EXPONENTIAL
    jitter: float = Field(
        0.0, ge=0, le=1, description="Random share taken off each wait: 0.2 waits 80-100% of it."
    )
    retry_on: tuple[type[BaseException], ...] = Field(
        (Exception,), description="Only these exception types are retried."
    )
    never_retry: tuple[type[BaseException], ...] = Field(
        (PermanentError,), description="These are never retried, even if listed in retry_on."
    )
    retry_when: Callable[[BaseException], bool] | None = Field(
        None, description="An extra predicate an error must satisfy to be retried."
    )

    @model_validator(mode="after")
    def _bounds(self) -> RetryPolicy:
        if self.initial_backoff > self.max_backoff:
            raise ValueError(
                f"initial_backoff ({self.initial_backoff}s) must not exceed max_backoff ({self.max_backoff}s)"
            )
        return self

    def backoff(self, attempt: int) -> float:
        """The wait after failed attempt number ``attempt`` (1-based), before jitter."""
        n = max(attempt, 1)
        if self.strategy is BackoffStrategy.CONSTANT:
            base = self.initial_backoff
        elif self.strategy is BackoffStrategy.LINEAR:
            base = self.initial_backoff * n
        else:
            base = self.initial_backoff * 2.0 ** min(n - 1, 62)
        return min(base, self.max_backoff)

    def delay(
        self, attempt: int, error: BaseException | None = None, *, rng: random.Random | None = None
    ) -> float:
        """The wait to use: the error's own ``RetryableError.delay``, else the jittered backoff."""
        if isinstance(error, RetryableError) and error.delay is not None:
            return min(error.delay, self.max_backoff)
        base = self.backoff(attempt)
        if self.jitter == 0:
            return base
        return base * (1.0 - self.jitter * (rng or random).random())

    def should_retry(self, error: BaseException, attempt: int) -> bool:
        """Whether to try again after ``error`` ended attempt number ``attempt``."""
        if attempt >= self.max_attempts:
            return False
        if isinstance(error, Cancelled) or (isinstance(error, Timeout) and error.scope == "run"):
            return False
        if isinstance(error, self.never_retry) or not isinstance(error, self.retry_on):
            return False
        return self.retry_when is None or self.retry_when(error)


class RetryNode(Node[Any, Any]):
    """Runs ``inner`` again within the same step until it succeeds or the policy gives up."""

    inner: InstanceOf[Node[Any, Any]]
    policy: RetryPolicy

    async def process(self, ctx: WorkflowCtx[Any], input: Any) -> Any:
        invoke = self.inner.invoker()
        attempt = 1
        while True:
            try:
                result = invoke(ctx, input)
                result = await result if hasattr(result, "__await__") else result
                if not isinstance(result, Abort):
                    return result
                error = result.exception()
            except Exception as exc:
                error = exc
            if not self.policy.should_retry(error, attempt):
                raise error
            await ctx.sleep(self.policy.delay(attempt, error))
            attempt += 1

    @property
    def name(self) -> str:
        return self._name or self.inner.name

    @property
    def input_type(self) -> Any:
        return self.inner.input_type

    @property
    def output_type(self) -> Any:
        return self.inner.output_type

    @property
    def return_hint(self) -> Any:
        return self.inner.return_hint


def with_retry(node: Node[Any, Any], policy: RetryPolicy) -> RetryNode:
    """Wrap ``node`` so that each step retries it under ``policy``."""
    return RetryNode(inner=node, policy=policy)
