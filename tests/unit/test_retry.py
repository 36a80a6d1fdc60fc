"""Retry policies: backoff arithmetic, which errors are retried, and retries in runs.

Cases:
* Floxide's values: linear 100 ms (max 1 s) waits 100, 300, 1000 ms after attempts 1, 3, 20;
  exponential 50 ms (max 400 ms) waits 50, 100, 200, 400, 400 ms; constant stays constant;
* a huge attempt number stays at the cap (no overflow);
* jitter takes a random share off the wait, within ``[(1 - jitter) * wait, wait]``;
* ``RetryableError(delay=...)`` overrides the backoff (capped at ``max_backoff``);
* ``PermanentError`` and ``never_retry`` types are never retried; ``retry_on`` and
  ``retry_when`` filter; the last attempt is never followed by another; a run timeout
  and cancellation are not retried;
* a policy declared in the workflow re-runs the item (``ctx.attempt`` counts), waits
  between attempts, and ``NodeFailed`` reports the attempts;
* ``with_retry`` retries inside one step, also on ``Abort``; its waits end on cancellation;
* an initial backoff above the cap is refused.
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from floxide import (
    Abort,
    BackoffStrategy,
    Cancelled,
    NodeFailed,
    PermanentError,
    RetryableError,
    RetryPolicy,
    Timeout,
    Transition,
    Workflow,
    WorkflowCtx,
    node,
    with_retry,
)

LINEAR = BackoffStrategy.LINEAR
EXPONENTIAL = BackoffStrategy.EXPONENTIAL


def test_linear_backoff() -> None:
    policy = RetryPolicy(max_attempts=30, initial_backoff=0.1, max_backoff=1.0, strategy=LINEAR)
    assert [policy.backoff(n) for n in (1, 3, 20)] == pytest.approx([0.1, 0.3, 1.0])


def test_exponential_backoff() -> None:
    policy = RetryPolicy(max_attempts=10, initial_backoff=0.05, max_backoff=0.4, strategy=EXPONENTIAL)
    assert [policy.backoff(n) for n in range(1, 6)] == pytest.approx([0.05, 0.1, 0.2, 0.4, 0.4])
    assert policy.backoff(10**9) == 0.4


def test_constant_backoff() -> None:
    policy = RetryPolicy(initial_backoff=0.2, max_backoff=1, strategy=BackoffStrategy.CONSTANT)
    assert {policy.backoff(n) for n in range(1, 10)} == {0.2}


def test_without_jitter_the_delay_is_the_backoff() -> None:
    policy = RetryPolicy(initial_backoff=0.05, max_backoff=1, strategy=LINEAR)
    assert policy.delay(2) == policy.backoff(2) == pytest.approx(0.1)


@given(
    attempt=st.integers(1, 100),
    jitter=st.floats(0.0, 1.0),
    initial=st.floats(0.0, 5.0),
    seed=st.integers(0, 2**32),
)
def test_jitter_bounds(attempt: int, jitter: float, initial: float, seed: int) -> None:
    policy = RetryPolicy(initial_backoff=initial, max_backoff=10.0, jitter=jitter)
    wait = policy.backoff(attempt)
    delay = policy.delay(attempt, rng=random.Random(seed))
    assert (1 - jitter) * wait - 1e-9 <= delay <= wait <= 10.0


def test_jitter_is_random() -> None:
    policy = RetryPolicy(initial_backoff=1.0, max_backoff=1.0, jitter=0.5)
    rng = random.Random(7)
    delays = {policy.delay(1, rng=rng) for _ in range(50)}
    assert len(delays) == 50
    assert min(delays) >= 0.5
    assert max(delays) <= 1.0


def test_retryable_error_delay_overrides_the_backoff() -> None:
    policy = RetryPolicy(initial_backoff=5.0, max_backoff=10.0)
    assert policy.delay(1, RetryableError("busy", delay=0.25)) == 0.25
    assert policy.delay(1, RetryableError("busy", delay=60)) == 10.0
    assert policy.delay(1, RetryableError("busy")) == 5.0


def test_which_errors_are_retried() -> None:
    policy = RetryPolicy(max_attempts=3)
    assert policy.should_retry(ValueError(), 1)
    assert policy.should_retry(ValueError(), 2)
    assert not policy.should_retry(ValueError(), 3)  # that was the last attempt
    assert not policy.should_retry(PermanentError(), 1)
    assert not policy.should_retry(Cancelled(), 1)
    assert not policy.should_retry(Timeout(1.0, scope="run"), 1)
    assert policy.should_retry(Timeout(1.0, scope="node 'x'"), 1)
    assert not RetryPolicy(max_attempts=1).should_retry(ValueError(), 1)

    only_io = RetryPolicy(retry_on=(OSError,), never_retry=(PermanentError, FileNotFoundError))
    assert only_io.should_retry(ConnectionError(), 1)
    assert not only_io.should_retry(ValueError(), 1)
    assert not only_io.should_retry(FileNotFoundError(), 1)

    picky = RetryPolicy(retry_when=lambda e: "again" in str(e))
    assert picky.should_retry(RuntimeError("try again"), 1)
    assert not picky.should_retry(RuntimeError("give up"), 1)


def test_initial_backoff_above_cap_is_refused() -> None:
    with pytest.raises(ValidationError, match="initial_backoff"):
        RetryPolicy(initial_backoff=2, max_backoff=1)


async def test_declared_policy_reruns_the_item() -> None:
    attempts: list[tuple[int, float]] = []
    started = time.monotonic()

    @node
    async def flaky(ctx: WorkflowCtx[Any], x: int) -> int:
        attempts.append((ctx.attempt, time.monotonic() - started))
        if ctx.attempt < 3:
            raise ConnectionError("not yet")
        return x

    policy = RetryPolicy(max_attempts=3, initial_backoff=0.03, max_backoff=1, strategy=LINEAR)
    assert await Workflow("w", start=flaky, retry={flaky: policy}).run(7) == 7
    assert [a for a, _ in attempts] == [1, 2, 3]
    assert attempts[1][1] - attempts[0][1] >= 0.03
    assert attempts[2][1] - attempts[1][1] >= 0.06


async def test_exhausted_retries_report_the_attempts() -> None:
    @node
    async def down(x: int) -> int:
        raise ConnectionError("still down")

    policy = RetryPolicy(max_attempts=3, initial_backoff=0.001, max_backoff=0.001)
    with pytest.raises(NodeFailed) as info:
        await Workflow("w", start=down, retry={down: policy}).run(1)
    assert str(info.value) == "node 'down' failed after 3 attempts: ConnectionError: still down"
    assert info.value.attempts == 3


async def test_retryable_error_delay_in_a_run() -> None:
    @node
    async def busy(ctx: WorkflowCtx[Any], x: int) -> int:
        if ctx.attempt == 1:
            raise RetryableError("busy", delay=0.01)
        return x

    policy = RetryPolicy(max_attempts=2, initial_backoff=30, max_backoff=30)
    started = time.monotonic()
    assert await Workflow("w", start=busy, retry={busy: policy}).run(3) == 3
    assert time.monotonic() - started < 1


async def test_permanent_error_in_a_run_is_not_retried() -> None:
    calls = 0

    @node
    async def refuse(x: int) -> int:
        nonlocal calls
        calls += 1
        raise PermanentError("invalid order")

    with pytest.raises(NodeFailed, match="PermanentError: invalid order"):
        await Workflow("w", start=refuse, retry={refuse: RetryPolicy(max_attempts=5)}).run(1)
    assert calls == 1


async def test_with_retry_retries_within_one_step() -> None:
    calls: list[int] = []

    @node
    async def shaky(ctx: WorkflowCtx[Any], x: int) -> Transition[int]:
        calls.append(ctx.attempt)
        if len(calls) == 1:
            raise OSError("first")
        if len(calls) == 2:
            return Abort("second")
        return x * 2

    wrapped = with_retry(shaky, RetryPolicy(max_attempts=3, initial_backoff=0.001, max_backoff=0.01))
    assert wrapped.name == "shaky"
    result = await Workflow("w", start=wrapped).execute(4)
    assert (result.output, result.steps) == (8, 1)
    assert calls == [1, 1, 1]  # one step: the engine's attempt stays 1


async def test_with_retry_gives_up() -> None:
    @node
    async def never(x: int) -> int:
        raise OSError("never works")

    wrapped = with_retry(never, RetryPolicy(max_attempts=2, initial_backoff=0.001, max_backoff=0.001))
    with pytest.raises(NodeFailed, match="node 'never' failed: OSError: never works"):
        await Workflow("w", start=wrapped).run(1)


async def test_with_retry_wait_ends_on_cancellation() -> None:
    @node
    async def never(x: int) -> int:
        raise OSError("never works")

    wrapped = with_retry(never, RetryPolicy(max_attempts=5, initial_backoff=10, max_backoff=10))
    ctx: WorkflowCtx[None] = WorkflowCtx()
    asyncio.get_running_loop().call_later(0.02, ctx.cancel)
    started = time.monotonic()
    with pytest.raises(Cancelled):
        await Workflow("w", start=wrapped).run(1, ctx=ctx)
    assert time.monotonic() - started < 1
