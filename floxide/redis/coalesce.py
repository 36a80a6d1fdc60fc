"""``Coalesced``: single requests made in the same turn of the event loop sent as one batch.

A worker's steps that a commit's reply wakes together each read their run's state next
(``step_input``). Each alone, that is one round trip per step, and the steps drift apart;
coalesced, it is one round trip for all of them (and each run's context read once), and they
go on to commit together. A request waits for nothing but the turn it was made in: the batch
is sent once the tasks ready in that turn have run.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

__all__ = ["Coalesced"]

T = TypeVar("T")
R = TypeVar("R")


class Coalesced(Generic[T, R]):
    """Calls ``batch`` once for the requests of one turn of the event loop, in their order."""

    def __init__(self, batch: Callable[[list[T]], Awaitable[Sequence[R]]]) -> None:
        self._batch = batch
        self._waiting: list[tuple[T, asyncio.Future[R]]] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None  # the loop of the waiting requests
        self._sending: set[asyncio.Task[None]] = set()

    def __call__(self, request: T) -> asyncio.Future[R]:
        """The answer to ``request``; cancelling it leaves the others' batch alone."""
        loop = asyncio.get_running_loop()
        if self._waiting is None or self._loop is not loop:  # (a loop closed before its turn ended)
            self._waiting, self._loop = [], loop
            loop.call_soon(self._send, self._waiting)  # after the tasks already ready: they join
        future: asyncio.Future[R] = loop.create_future()
        self._waiting.append((request, future))
        return future

    def _send(self, waiting: list[tuple[T, asyncio.Future[R]]]) -> None:
        if self._waiting is waiting:
            self._waiting = None
        task = asyncio.ensure_future(self._answer(waiting))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _answer(self, waiting: list[tuple[T, asyncio.Future[R]]]) -> None:
        try:
            answers = await self._batch([request for request, _ in waiting])
        except asyncio.CancelledError:
            for _, future in waiting:
                future.cancel()
            raise
        except Exception as exc:
            for _, future in waiting:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), answer in zip(waiting, answers, strict=True):
            if not future.done():
                future.set_result(answer)
