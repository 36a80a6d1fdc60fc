"""The Lua scripts (one ``.lua`` file each, with its KEYS/ARGV contract in a header)."""

from __future__ import annotations

from functools import cache
from importlib import resources

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

__all__ = ["Scripts"]


@cache
def _source(name: str) -> str:
    return resources.files("floxide.redis").joinpath(f"{name}.lua").read_text(encoding="utf-8")


class Scripts:
    """The scripts registered on one client (EVALSHA, falling back to EVAL once per script)."""

    def __init__(self, client: Redis) -> None:
        self.start: AsyncScript = client.register_script(_source("start"))
        self.step_input: AsyncScript = client.register_script(_source("step_input"))
        self.commit: AsyncScript = client.register_script(_source("commit"))
        self.retry: AsyncScript = client.register_script(_source("retry"))
        self.fail: AsyncScript = client.register_script(_source("fail"))
        self.aside: AsyncScript = client.register_script(_source("aside"))
        self.promote: AsyncScript = client.register_script(_source("promote"))
        self.lease: AsyncScript = client.register_script(_source("lease"))
        self.reclaim: AsyncScript = client.register_script(_source("reclaim"))
        self.reclaimed: AsyncScript = client.register_script(_source("reclaimed"))
        self.status: AsyncScript = client.register_script(_source("status"))
        self.seed_context: AsyncScript = client.register_script(_source("seed_context"))
        self.queue_run: AsyncScript = client.register_script(_source("queue_run"))
        self.admit: AsyncScript = client.register_script(_source("admit"))
