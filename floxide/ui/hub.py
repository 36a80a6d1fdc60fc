"""One reader per watched subject, shared by everyone watching it.

A live page asks for the same subject (the runs list with some filters, a run) every
``refresh`` seconds. Without sharing, ten people watching one run mean ten sets of Redis
reads a second; with a :class:`Hub`, a subject has one :class:`Topic`: one task reads it every
``refresh`` seconds while anyone watches, every watcher gets the latest result, and the task
stops when the last watcher leaves. The work is then independent of the number of viewers, as
it is of the run's size.

A read that fails is a result too (the exception): each watcher decides what to make of it
(an event saying Redis is away, or the end of its stream).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Generic, TypeVar

__all__ = ["Hub", "Topic"]

T = TypeVar("T")


class Topic(Generic[T]):
    """The latest result of one subject, re-read every ``refresh`` seconds by one task."""

    def __init__(self, read: Callable[[], Awaitable[T]], refresh: float) -> None:
        self._read = read
        self._refresh = refresh
        self.result: T | Exception | None = None
        self.version = 0
        self.watchers = 0
        self._changed = asyncio.Condition()
        self._task = asyncio.create_task(self._run(), name="floxide-ui-topic")

    async def _run(self) -> None:
        while True:
            try:
                result: T | Exception = await self._read()
            except Exception as exc:  # a failed read is what the watchers see next
                result = exc
            async with self._changed:
                self.result, self.version = result, self.version + 1
                self._changed.notify_all()
            await asyncio.sleep(self._refresh)

    async def next(self, seen: int) -> tuple[int, T | Exception]:
        """The first result newer than version ``seen``: ``(its version, the result)``."""
        async with self._changed:
            await self._changed.wait_for(lambda: self.version > seen)
            assert self.result is not None
            return self.version, self.result

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


class Hub(Generic[T]):
    """The topics being watched, by key (the stream's path and query)."""

    def __init__(self, refresh: float) -> None:
        self.refresh = refresh
        self._topics: dict[str, Topic[T]] = {}

    @contextlib.asynccontextmanager
    async def watch(self, key: str, read: Callable[[], Awaitable[T]]) -> AsyncIterator[Topic[T]]:
        """The topic of ``key`` (started with ``read`` if nobody watches it yet), while the block runs."""
        topic = self._topics.get(key)
        if topic is None:
            topic = self._topics[key] = Topic(read, self.refresh)
        topic.watchers += 1
        try:
            yield topic
        finally:
            topic.watchers -= 1
            if topic.watchers == 0 and self._topics.get(key) is topic:
                del self._topics[key]
                await topic.close()

    def __len__(self) -> int:
        return len(self._topics)

    async def close(self) -> None:
        """Stop every topic (the application is stopping)."""
        topics, self._topics = list(self._topics.values()), {}
        for topic in topics:
            await topic.close()
