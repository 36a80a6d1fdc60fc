"""The run index: which workflow a run id belongs to, so commands need only the run id.

Every key of a run lives under its workflow's hash tag (:mod:`floxide.redis.keys`), so a
run id alone does not say where the run is. ``RedisBackend.start_run`` records each run in
its namespace's hash :attr:`~floxide.redis.keys.NamespaceKeys.run_index`, field the run id,
value the workflow's name (run ids are unique per workflow; each namespace has its own index,
under its own key prefix). ``floxide status RUN`` and its siblings look runs up here.

The index is a hint, never the truth:

* it is written after the run is created (a separate command, not inside ``start.lua``:
  a Redis Cluster script may only touch one hash slot), so a run can miss from it;
* runs expire, their entries do not: :meth:`RunIndex.prune` drops entries whose run is gone
  (each worker prunes its own workflow's entries, a batch at a time);
* two workflows of one namespace may both have a run with the same id.

:meth:`RunIndex.locate` therefore checks the run still exists and otherwise probes every
workflow of the namespace (:attr:`~floxide.redis.keys.NamespaceKeys.workflows`), repairing the index.
"""

from __future__ import annotations

from redis.exceptions import RedisError, ResponseError

from floxide.errors import FloxideError, NotStarted
from floxide.redis.clients import Client
from floxide.redis.keys import KeySpace, NamespaceKeys

__all__ = ["REFUSED", "UNAVAILABLE", "AmbiguousRun", "RedisUnavailable", "RunIndex", "record_run"]


UNAVAILABLE: tuple[type[Exception], ...] = (RedisError, OSError)
"""What a Redis command raises when Redis cannot be reached or refuses it (for code outside
this package, which does not import ``redis``: ``except UNAVAILABLE``)."""

REFUSED: tuple[type[Exception], ...] = (ResponseError,)
"""What a Redis command raises when Redis answered with an error (an unknown command, no
permission): retrying the same command will not help."""


class RedisUnavailable(FloxideError):
    """Redis could not be reached (or refused the command); the message says where and why."""


class AmbiguousRun(FloxideError):
    """Several workflows of the namespace have a run with this id: name the workflow."""


async def record_run(client: Client, keys: KeySpace, run_id: str) -> None:
    """Remember that ``run_id`` is a run of ``keys``' workflow (called by ``start_run``)."""
    await client.hset(keys.shared.run_index, run_id, keys.workflow)


class RunIndex:
    """Look runs and workflows up across one namespace of a Redis."""

    def __init__(self, client: Client, namespace: str) -> None:
        self.client = client
        self.namespace = namespace
        self.keys = NamespaceKeys(namespace)
        self._cursor = 0

    async def ping(self, where: str) -> None:
        """Check Redis answers; :class:`RedisUnavailable` naming ``where`` if it does not."""
        try:
            await self.client.ping()
        except UNAVAILABLE as exc:
            raise RedisUnavailable(f"cannot reach Redis at {where}: {_reason(exc)}") from exc

    async def workflows(self) -> list[str]:
        """The names of the namespace's workflows (those a worker or a run registered)."""
        return sorted(str(m) for m in await self.client.smembers(self.keys.workflows))

    async def locate(self, run_id: str) -> str:
        """The workflow of ``run_id``.

        :class:`NotStarted` if no workflow of the namespace has it, :class:`AmbiguousRun` if several do.
        """
        index, field = self.keys.run_index, run_id
        hinted = await self.client.hget(index, field)
        if hinted and await self.client.exists(KeySpace(self.namespace, str(hinted)).run(run_id).info):
            return str(hinted)
        names = await self.workflows()
        async with self.client.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.exists(KeySpace(self.namespace, name).run(run_id).info)
            found = [name for name, exists in zip(names, await pipe.execute(), strict=True) if exists]
        if not found:
            if hinted:
                await self.client.hdel(index, field)
            where = f" in namespace '{self.namespace}'"
            raise NotStarted(f"run '{run_id}' does not exist{where} (or has expired)")
        if len(found) > 1:
            raise AmbiguousRun(
                f"run '{run_id}' exists in several workflows ({', '.join(found)}); choose one with --workflow"
            )
        await self.client.hset(index, field, found[0])
        return found[0]

    async def prune(self, workflow: str, *, batch: int = 500) -> int:
        """Drop up to a batch of ``workflow``'s entries whose run has expired; returns how many.

        Call it periodically: each call scans the next ``batch`` entries of the namespace.
        """
        cursor, entries = await self.client.hscan(self.keys.run_index, self._cursor, count=batch)
        self._cursor = int(cursor)
        assert isinstance(entries, dict)
        mine = [str(field) for field, name in entries.items() if name == workflow]
        if not mine:
            return 0
        keys = KeySpace(self.namespace, workflow)
        async with self.client.pipeline(transaction=False) as pipe:
            for field in mine:
                pipe.exists(keys.run(field).info)
            alive = await pipe.execute()
        gone = [field for field, exists in zip(mine, alive, strict=True) if not exists]
        if gone:
            await self.client.hdel(self.keys.run_index, *gone)
        return len(gone)


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__
