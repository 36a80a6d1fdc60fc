"""``RedisCheckpointStore``: local-run checkpoints kept in Redis (one key per run)."""

from __future__ import annotations

from floxide.checkpoint import Checkpoint
from floxide.redis.clients import Client

__all__ = ["RedisCheckpointStore"]


class RedisCheckpointStore:
    """Saves each checkpoint as JSON under ``<prefix>:checkpoint:<run_id>``; ``ttl`` in seconds."""

    def __init__(self, client: Client, *, prefix: str = "floxide", ttl: float | None = None) -> None:
        self.client = client
        self.prefix = prefix
        self.ttl = None if ttl is None else int(ttl)

    def key(self, run_id: str) -> str:
        """The key of ``run_id``'s checkpoint."""
        return f"{self.prefix}:checkpoint:{run_id}"

    async def save(self, run_id: str, checkpoint: Checkpoint) -> None:
        await self.client.set(self.key(run_id), checkpoint.model_dump_json(), ex=self.ttl)

    async def load(self, run_id: str) -> Checkpoint | None:
        raw = await self.client.get(self.key(run_id))
        return None if raw is None else Checkpoint.model_validate_json(raw)
