"""What the workers of a namespace connect to Redis as: the namespace's own user, or the operator's.

With ``FLOXIDE_OPERATOR_REDIS_ACL`` on, :func:`workers_connection` is the Redis URL (without any
credentials in it) plus the namespace's ACL user and password (:mod:`.redis_users`); off, it is
the operator's own connection, as the operator's Redis Secret gives it (the chart's behaviour for
a Redis without ACLs). The Workflow reconciler mirrors it into the Workflow's Secret and hashes it
into the pod template, so a new password rolls the workers.

Deleting users: when the last Workflow of a namespace is gone (:func:`workflow_deleted`), and, for
namespaces whose last Workflow went while the operator was down, a sweep every
:data:`SWEEP_SECONDS` (the first one :data:`SWEEP_DELAY` after the start, once kopf has listed
every Workflow).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time

from floxide.redis.index import UNAVAILABLE

from .kube import KubeError
from .redis_users import NamespaceUsers
from .runtime import Runtime
from .store import Connection

__all__ = ["SWEEP_DELAY", "SWEEP_SECONDS", "start", "stop", "workers_connection", "workflow_deleted"]

log = logging.getLogger(__name__)

SWEEP_DELAY = 120.0
"""Seconds after the start before the first sweep (kopf has listed every Workflow by then)."""

SWEEP_SECONDS = 300.0
"""Seconds between two sweeps for users of namespaces without Workflows."""


def start(rt: Runtime) -> None:
    """Create the namespace users' keeper and start the sweep (no-op without ACLs)."""
    if not rt.settings.redis_acl:
        return
    rt.users = NamespaceUsers(
        admin=lambda *command: rt.require_redis().everywhere(*command),
        kube=rt.require_kube,
        own_namespace=rt.settings.own_namespace(),
        check_interval=rt.settings.redis_acl_check_interval,
        rotation_grace=rt.settings.redis_acl_rotation_grace,
    )
    rt.users_sweep = asyncio.create_task(_sweep_forever(rt), name="redis-users-sweep")


async def stop(rt: Runtime) -> None:
    """Stop the sweep."""
    task, rt.users_sweep = rt.users_sweep, None
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _without_credentials(url: str) -> str:
    return re.sub(r"//[^@/]*@", "//", url)


async def workers_connection(rt: Runtime, namespace: str, *, now: float | None = None) -> Connection:
    """The Redis connection of the workers of ``namespace`` (Workflows without ``spec.redis``).

    Raises :class:`~.kube.KubeError` when the namespace user's Secret cannot be read or written.
    """
    own = rt.require_redis().default
    secret = rt.operator_secret or {}
    url = secret.get("redis-url") or own.url
    if rt.users is None:
        password = secret.get("redis-password") or own.password
        return Connection(url, password, username=secret.get("redis-username") or own.username)
    user = await rt.users.user(namespace, now=now)
    return Connection(_without_credentials(url), user.password, username=user.name)


def _served(rt: Runtime) -> set[str]:
    """The namespaces that have a Workflow now."""
    return {namespace for namespace, _ in rt.workflows}


async def workflow_deleted(rt: Runtime, namespace: str) -> None:
    """A Workflow of ``namespace`` is gone: delete the namespace's user if it was the last one."""
    if rt.users is None or namespace in _served(rt):
        return
    try:
        await rt.users.remove(namespace)
    except KubeError as exc:
        log.warning("cannot delete the Secret of namespace %s's Redis user yet: %s", namespace, exc)
    except UNAVAILABLE as exc:
        log.warning("cannot delete the Redis user of namespace %s yet (the sweep will): %s", namespace, exc)


async def sweep(rt: Runtime) -> list[str]:
    """Delete the users (and Secrets) of namespaces without Workflows; the namespaces swept."""
    if rt.users is None:
        return []
    mine = rt.settings.namespace
    orphans = [ns for ns in await rt.users.orphans(_served(rt)) if not mine or ns == mine]
    for namespace in orphans:
        await rt.users.remove(namespace)
    return orphans


async def _sweep_forever(rt: Runtime) -> None:
    await asyncio.sleep(SWEEP_DELAY)
    while True:
        started = time.monotonic()
        try:
            await sweep(rt)
        except (KubeError, RuntimeError) as exc:
            log.warning("sweeping the Redis users of namespaces without Workflows failed: %s", exc)
        except UNAVAILABLE as exc:
            log.warning("sweeping the Redis users of namespaces without Workflows failed: %s", exc)
        await asyncio.sleep(max(SWEEP_SECONDS - (time.monotonic() - started), 1.0))
