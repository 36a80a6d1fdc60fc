"""The Redis implementations of every distributed protocol: Streams queue, stores, Lua scripts.

This is the only package that talks to Redis. ``RedisBackend`` is the entry point::

    backend = RedisBackend(RedisSettings().client(block=1.0), workflow.name,
                           context_type=workflow.context_type)
"""

from floxide.redis.backend import RedisBackend
from floxide.redis.checkpoint import RedisCheckpointStore
from floxide.redis.keys import GROUP, KeySpace
from floxide.redis.settings import RedisSettings

__all__ = ["GROUP", "KeySpace", "RedisBackend", "RedisCheckpointStore", "RedisSettings"]
