"""Step logs in Redis: one capped stream per run, ``RunKeys.logs``, under the workflow's hash tag.

Each entry is one :class:`~floxide.steplog.LogEntry` (field ``e``, its JSON). Workers write
batches (:class:`~floxide.steplog.StepLogShipper` calling :meth:`StepLogs.write`), each entry
``XADD ... MAXLEN ~ max_entries`` so a run keeps about its last ``max_entries`` lines; the
messages were cut at :data:`floxide.steplog.MAX_BYTES` already.

The stream is one of the run's keys (``RunKeys.fixed``): it expires with the run when the
run ends, is kept while a retried run runs again, and goes when the run is deleted. A write
also sets the stream to expire ``ttl`` seconds later (the run's retention), so lines a step
logs after its run ended (or was deleted) do not stay behind for good.

:meth:`StepLogs.read` pages through the stream; :meth:`StepLogs.follow` waits for new entries
(``XREAD BLOCK``, below the client's socket timeout), which ``floxide logs --follow`` uses.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from floxide.steplog import LogEntry

if TYPE_CHECKING:
    from floxide.redis.backend import RedisBackend

__all__ = ["MAX_ENTRIES", "StepLogs"]

MAX_ENTRIES = 10_000
"""About this many step log entries are kept per run (the oldest are trimmed)."""


class StepLogs:
    """The step logs of ``backend``'s runs."""

    def __init__(self, backend: RedisBackend, *, max_entries: int = MAX_ENTRIES) -> None:
        self._b = backend
        self.max_entries = max_entries

    async def write(self, entries: list[LogEntry]) -> None:
        """Append ``entries`` (of any runs of the workflow) to their runs' streams."""
        if not entries:
            return
        b = self._b
        touched: set[str] = set()
        async with b.client.pipeline(transaction=False) as pipe:
            for entry in entries:
                key = b.run_keys(entry.run_id).logs
                pipe.xadd(key, {"e": entry.model_dump_json()}, maxlen=self.max_entries, approximate=True)
                touched.add(key)
            for key in touched:
                pipe.expire(key, int(b.ttl))
            await pipe.execute()

    async def read(
        self, run_id: str, *, node: str | None = None, after: str = "-", count: int = 1000
    ) -> tuple[list[LogEntry], str]:
        """Up to ``count`` entries after stream id ``after`` (``-``: from the start), only
        ``node``'s if given; and the id to read on from."""
        start = after if after == "-" else f"({after}"
        key = self._b.run_keys(run_id).logs
        raw: list[Any] = list(await self._b.client.xrange(key, min=start, max="+", count=count) or [])
        return _entries(raw, node), (str(raw[-1][0]) if raw else after)

    async def tail(
        self, run_id: str, *, node: str | None = None, count: int = 1000
    ) -> tuple[list[LogEntry], str]:
        """The last ``count`` entries (oldest first), and the id to follow on from."""
        key = self._b.run_keys(run_id).logs
        raw: list[Any] = list(await self._b.client.xrevrange(key, max="+", min="-", count=count) or [])
        raw.reverse()
        return _entries(raw, node), (str(raw[-1][0]) if raw else "0-0")

    async def follow(
        self, run_id: str, *, after: str, node: str | None = None, block: float = 1.0
    ) -> tuple[list[LogEntry], str]:
        """Entries newer than ``after``, waiting up to ``block`` seconds for one."""
        key = self._b.run_keys(run_id).logs
        reply: Any = await self._b.client.xread({key: after}, count=1000, block=max(int(block * 1000), 1))
        raw: list[Any] = [entry for _, entries in reply or [] for entry in entries]
        return _entries(raw, node), (str(raw[-1][0]) if raw else after)


def _entries(raw: list[Any], node: str | None) -> list[LogEntry]:
    found = []
    for _, fields in raw:
        entry = LogEntry.model_validate_json(fields["e"])
        if node is None or entry.node == node:
            found.append(entry)
    return found
