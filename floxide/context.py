"""The run's context as nodes see it: shared state plus run services.

``WorkflowCtx[C]`` carries the run's shared state (``store``: a pydantic model, or ``None``
for workflows without state) and the services of the run: cancellation, the deadline, and
the identity of the current run, node, work item and attempt (use ``item_id`` to make side
effects idempotent: a distributed step may run more than once, its commit happens once).

Each step gets its own copy of ``store``. What the step changes is merged back into the
run's context per field, as the field's :mod:`floxide.merge` strategy says, so concurrent
branches never lose or double-count an update.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from floxide.errors import Cancelled
from floxide.steplog import StepLogger

__all__ = ["CancelToken", "Context", "WorkflowCtx"]

Context = BaseModel
"""A workflow's shared state is a pydantic model (the Rust ``Context`` trait's counterpart)."""

C = TypeVar("C")


class CancelToken:
    """A cancellation signal shared by every step of a run."""

    __slots__ = ("_callbacks", "_event", "reason")

    def __init__(self) -> None:
        self._event: asyncio.Event | None = None
        self._callbacks: list[Callable[[], None]] = []
        self.reason: str | None = None

    @property
    def is_set(self) -> bool:
        """Whether cancellation was requested."""
        return self.reason is not None

    def cancel(self, reason: str = "workflow cancelled") -> None:
        """Request cancellation; running steps are interrupted."""
        if self.reason is not None:
            return
        self.reason = reason
        if self._event is not None:
            self._event.set()
        for callback in self._callbacks:
            callback()
        self._callbacks.clear()

    def on_cancel(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback`` on cancellation (at once if already cancelled); returns an unsubscriber."""
        if self.is_set:
            callback()
            return lambda: None
        self._callbacks.append(callback)

        def unsubscribe() -> None:
            if callback in self._callbacks:
                self._callbacks.remove(callback)

        return unsubscribe

    async def wait(self) -> None:
        """Wait until cancellation is requested."""
        if self._event is None:
            self._event = asyncio.Event()
            if self.is_set:
                self._event.set()
        await self._event.wait()


class WorkflowCtx(Generic[C]):
    """The context a run (and each of its steps) works with.

    Create one to run a workflow with initial state, a deadline or external cancellation::

        ctx = WorkflowCtx(Counters(), timeout=30)
        output = await workflow.run(5, ctx=ctx)
        ctx.store  # the run's final context (the Counters() given is not modified)

    When the run ends (also when it fails), ``ctx.store`` is the run's context as of its last
    committed step: the steps' changes merged field by field (see :mod:`floxide.merge`).

    Inside a node, ``ctx.store`` is this step's copy of the state, ``ctx.run_id``,
    ``ctx.node``, ``ctx.item_id`` and ``ctx.attempt`` say where the step stands,
    ``ctx.is_cancelled()``/``await ctx.sleep(s)`` cooperate with cancellation, and
    ``ctx.log`` is the step's logger: what it logs is kept per item (``floxide logs RUN``;
    see :mod:`floxide.steplog`).
    """

    __slots__ = ("attempt", "cancel_token", "deadline", "item_id", "node", "run_id", "store", "timeout")

    def __init__(
        self,
        store: C = None,  # type: ignore[assignment]
        *,
        timeout: float | None = None,
        cancel_token: CancelToken | None = None,
    ) -> None:
        self.store: C = store
        self.cancel_token = cancel_token or CancelToken()
        self.timeout = timeout
        self.deadline: float | None = None if timeout is None else time.monotonic() + timeout
        self.run_id = ""
        self.node = ""
        self.item_id = ""
        self.attempt = 1

    def for_step(self, store: Any, *, run_id: str, node: str, item_id: str, attempt: int) -> WorkflowCtx[C]:
        """A copy for one step: its own ``store``, the run's cancellation and deadline."""
        step: WorkflowCtx[C] = WorkflowCtx.__new__(WorkflowCtx)
        step.store = store
        step.cancel_token = self.cancel_token
        step.deadline = self.deadline
        step.timeout = self.timeout
        step.run_id = run_id
        step.node = node
        step.item_id = item_id
        step.attempt = attempt
        return step

    @property
    def log(self) -> StepLogger:
        """The step's logger (a :class:`logging.LoggerAdapter`): its lines are kept with the item."""
        return StepLogger(self)

    def cancel(self, reason: str = "workflow cancelled") -> None:
        """Cancel the run: in-flight steps are interrupted and the run ends with ``Cancelled``."""
        self.cancel_token.cancel(reason)

    def is_cancelled(self) -> bool:
        """Whether the run was cancelled."""
        return self.cancel_token.is_set

    def raise_if_cancelled(self) -> None:
        """Raise :class:`Cancelled` if the run was cancelled."""
        if self.cancel_token.reason is not None:
            raise Cancelled(self.cancel_token.reason)

    async def cancelled(self) -> None:
        """Wait until the run is cancelled."""
        await self.cancel_token.wait()

    def remaining(self) -> float | None:
        """Seconds left before the run's deadline, or ``None`` without a deadline."""
        return None if self.deadline is None else self.deadline - time.monotonic()

    async def sleep(self, seconds: float) -> None:
        """Sleep, but raise :class:`Cancelled` as soon as the run is cancelled."""
        self.raise_if_cancelled()
        waiter = asyncio.ensure_future(self.cancel_token.wait())
        try:
            await asyncio.wait({waiter}, timeout=seconds)
        finally:
            waiter.cancel()
        self.raise_if_cancelled()
