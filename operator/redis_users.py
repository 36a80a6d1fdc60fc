"""Per-namespace Redis users: the workers of a namespace log in as a Redis ACL user of their own.

The operator holds the admin connection. For every namespace with a Workflow on the operator's
Redis it keeps (with ``FLOXIDE_OPERATOR_REDIS_ACL`` on):

* a Redis ACL user ``floxide-ns-<namespace>``, allowed only the namespace's keys
  (``~fx:{wf:<namespace>/*``, :func:`floxide.redis.keys.namespace_pattern`), the channels of the
  same pattern, and only the commands workers send (:data:`WORKER_COMMANDS`, an allow list);
* its password in a Secret of the operator's namespace, ``floxide-redis-user-<namespace>``, so
  that it survives restarts of the operator and of Redis: the user is set again from it every
  ``redis_acl_check_interval`` seconds (a Redis restarted without persistence has lost it).

The Workflow's mirrored Secret then holds this user and its password, never the admin password.

Rotation: annotate the user's Secret with ``floxide.io/rotate=<a new value>``. The operator
generates a new password, keeps the previous one valid for ``redis_acl_rotation_grace`` seconds
(pods still starting with it keep working while the Deployments roll, their connection hash
having changed), then drops it. Deleting the Secret revokes at once: a new password, the old one
refused from then on. When the last Workflow of a namespace is gone, its user is deleted (Redis
closes its connections) and its Secret removed.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from floxide.errors import FloxideError
from floxide.redis.index import REFUSED, UNAVAILABLE
from floxide.redis.keys import namespace_pattern

from .kube import Kube

__all__ = [
    "ROTATE_ANNOTATION",
    "USER_PREFIX",
    "WORKER_COMMANDS",
    "NamespaceUser",
    "NamespaceUsers",
    "RedisUserRefused",
    "acl_rules",
    "secret_name",
    "username",
]

log = logging.getLogger(__name__)

USER_PREFIX = "floxide-ns-"
"""Redis user names of namespaces: ``floxide-ns-<namespace>``."""

SECRET_PREFIX = "floxide-redis-user-"
"""Secrets (in the operator's namespace) holding each namespace user's password."""

ROTATE_ANNOTATION = "floxide.io/rotate"
"""Set it on a user's Secret to a new value to have its password rotated."""

ROTATED_ANNOTATION = "floxide.io/rotated"
"""The value of :data:`ROTATE_ANNOTATION` the operator last acted on."""

ROTATED_AT_ANNOTATION = "floxide.io/rotated-at"
"""When the password was last rotated (epoch seconds): the previous one is valid until + the grace."""

NAMESPACE_LABEL = "floxide.io/redis-user-namespace"
"""Label on a user's Secret: the namespace it is for."""

WORKER_COMMANDS: tuple[str, ...] = (
    # connection: health checks, a database number in the URL; a Redis Cluster client's slot map
    # and command table
    "ping", "select", "cluster|slots", "cluster|shards", "asking", "command",
    # the Lua scripts (by hash; loaded on NOSCRIPT, checked by pipelines): the commands they call
    # are checked against these same rules
    "evalsha", "script|load", "script|exists",
    # transactions, optimistic locks; waiting for replicas to acknowledge a commit
    "multi", "exec", "discard", "watch", "unwatch", "wait", "time",
    # the work stream and its consumer group
    "xread", "xreadgroup", "xack", "xadd", "xclaim", "xpending", "xrange", "xrevrange", "xlen", "xtrim",
    "xgroup|create", "xinfo|groups",
    # run records, contexts, metrics, liveness, graph, run queue, indexes
    "get", "set", "incr", "exists", "del", "expire", "pexpire", "persist", "ttl",
    "hget", "hmget", "hset", "hsetnx", "hdel", "hgetall", "hkeys", "hvals", "hincrby", "hincrbyfloat",
    "hscan",
    "sadd", "srem", "smembers", "sismember", "smismember", "scard",
    "zadd", "zrem", "zscore", "zcard", "zcount", "zrank", "zrange", "zrangebyscore", "zrevrange",
    "zremrangebyscore", "zpopmin",
    "rpush", "lrange", "ltrim",
)  # fmt: skip
"""The commands a namespace user may send: those the code of workers (and of ``floxide`` commands
run in the namespace) sends, Lua scripts included. tests/redis/test_namespace_users.py runs real
workers as such a user and fails on any refused command: a command new to the code goes here.
Never KEYS, SCAN or RANDOMKEY (Redis does not filter key names by the user's patterns: they would
list every namespace's keys), FLUSH*, CONFIG, ACL, CLIENT, DEBUG, MODULE, MONITOR, SHUTDOWN,
PUBLISH/SUBSCRIBE, or EVAL (only scripts by hash: loading one is allowed, and whatever it calls is
checked like a command of the user's own)."""


class RedisUserRefused(FloxideError):
    """Redis refused to set a namespace's user (no ACLs, or no permission to change them)."""


def username(namespace: str) -> str:
    """The Redis user of ``namespace``."""
    return USER_PREFIX + namespace


def secret_name(namespace: str) -> str:
    """The Secret (in the operator's namespace) of ``namespace``'s user."""
    name = SECRET_PREFIX + namespace
    if len(name) <= 253:
        return name
    return f"{name[:240]}-{hashlib.sha256(namespace.encode()).hexdigest()[:12]}"


@dataclass(frozen=True)
class NamespaceUser:
    """One namespace's Redis user, as its Secret holds it."""

    namespace: str
    password: str
    previous: str | None = None
    """The password before the last rotation, valid until ``rotated_at`` + the grace."""
    rotated_at: float | None = None

    @property
    def name(self) -> str:
        return username(self.namespace)


def acl_rules(user: NamespaceUser) -> list[str]:
    """The ``ACL SETUSER`` rules of ``user``: everything reset first, so applying them twice is
    the same as once, whatever the user was before."""
    pattern = namespace_pattern(user.namespace)
    passwords = [f">{user.password}"] + ([f">{user.previous}"] if user.previous else [])
    commands = [f"+{command}" for command in WORKER_COMMANDS]
    return [
        "reset", "on", *passwords, f"~{pattern}", "resetchannels", f"&{pattern}", "-@all", *commands,
    ]  # fmt: skip


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _new_password() -> str:
    return secrets.token_urlsafe(32)


@dataclass
class _Known:
    user: NamespaceUser
    read: float
    applied: float


class NamespaceUsers:
    """Keeps the namespace users in Redis and their Secrets in the operator's namespace.

    ``admin`` sends a command to every server of the operator's own Redis, with its admin
    connection (:meth:`~.store.Redises.everywhere`); ``kube`` gives the Kubernetes client;
    ``own_namespace`` is where the Secrets live.
    """

    def __init__(
        self,
        *,
        admin: Callable[..., Awaitable[list[Any]]],
        kube: Callable[[], Kube],
        own_namespace: str,
        check_interval: float,
        rotation_grace: float,
    ) -> None:
        self._admin = admin
        self._kube = kube
        self.own_namespace = own_namespace
        self.check_interval = check_interval
        self.secret_interval = 6 * check_interval
        """How often a user's Secret is read again (a rotation request, a deletion, an edit)."""
        self.rotation_grace = rotation_grace
        self._known: dict[str, _Known] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._last_warning = ""

    async def user(self, namespace: str, *, now: float | None = None) -> NamespaceUser:
        """The user of ``namespace``: its Secret read (created, rotated) at most every
        :attr:`secret_interval`, the user set in Redis at most every ``check_interval`` seconds.

        Raises :class:`~.kube.KubeError` (the caller reports and retries), and
        :class:`RedisUserRefused` when Redis answers the user's setting with an error; Redis not
        answering is logged, and the user set again on the next call.
        """
        now = time.monotonic() if now is None else now
        async with self._locks.setdefault(namespace, asyncio.Lock()):
            known = self._known.get(namespace)
            if known is None or now - known.read >= self.secret_interval:
                user = await self._load(namespace)
                if known is None or user != known.user:
                    known = _Known(user, read=now, applied=float("-inf"))
                known.read = now
                self._known[namespace] = known
            if now - known.applied >= self.check_interval:
                try:
                    await self.apply(known.user)
                except REFUSED as exc:
                    raise RedisUserRefused(
                        f"Redis refused to set the user {known.user.name} of namespace {namespace} "
                        f"({' '.join(str(exc).split())}): per-namespace users need Redis 7+ and an "
                        "operator connection allowed ACL SETUSER; otherwise turn them off "
                        "(redis.acl.namespaceUsers=false, FLOXIDE_OPERATOR_REDIS_ACL=false)"
                    ) from exc
                except UNAVAILABLE as exc:  # the user is still right to mirror; set it next time
                    self._warn(f"cannot set the Redis user of namespace {namespace}: {exc}")
                else:
                    known.applied = now
            return known.user

    def _warn(self, message: str) -> None:
        if message != self._last_warning:
            self._last_warning = message
            log.warning("%s", message)

    async def apply(self, user: NamespaceUser) -> None:
        """Set the user in Redis (idempotent: creates it, or brings it back to its rules)."""
        await self._everywhere("ACL SETUSER", user.name, *acl_rules(user))

    async def _everywhere(self, *command: str) -> list[Any]:
        """An ACL command on every server (a replica of a Sentinel-managed primary gets the users
        at the first check after a failover). The replies, one per server."""
        result: list[Any] = await self._admin(*command)
        return result

    async def remove(self, namespace: str) -> None:
        """Delete the namespace's user (Redis closes its connections) and its Secret."""
        async with self._locks.setdefault(namespace, asyncio.Lock()):
            await self._everywhere("ACL DELUSER", username(namespace))
            await self._kube().delete_secret(self.own_namespace, secret_name(namespace))
            self._known.pop(namespace, None)
        log.info("deleted the Redis user of namespace %s and its Secret", namespace)

    async def orphans(self, namespaces: Iterable[str]) -> list[str]:
        """The namespaces that have a user in Redis but are not in ``namespaces``."""
        keep = set(namespaces)
        users = {str(name) for reply in await self._everywhere("ACL USERS") for name in reply}
        found = [name[len(USER_PREFIX) :] for name in users if name.startswith(USER_PREFIX)]
        return sorted(namespace for namespace in found if namespace not in keep)

    # -- the Secret ----------------------------------------------------------------------------

    async def _load(self, namespace: str) -> NamespaceUser:
        kube, name = self._kube(), secret_name(namespace)
        found = await kube.secret_object(self.own_namespace, name)
        if found is None or not found[1].get("password"):
            return await self._create(namespace, replaces=found is not None)
        annotations, data = found
        user = NamespaceUser(
            namespace,
            data["password"],
            previous=data.get("previous-password") or None,
            rotated_at=_float(annotations.get(ROTATED_AT_ANNOTATION)),
        )
        wanted = annotations.get(ROTATE_ANNOTATION)
        if wanted and wanted != annotations.get(ROTATED_ANNOTATION):
            return await self._rotate(user, request=wanted)
        expired = user.rotated_at is None or time.time() >= user.rotated_at + self.rotation_grace
        if user.previous and expired:
            user = NamespaceUser(namespace, user.password)
            await kube.apply_secret(self._body(user, data={"previous-password": None}))
            log.info("the previous Redis password of namespace %s is no longer valid", namespace)
        return user

    async def _create(self, namespace: str, *, replaces: bool) -> NamespaceUser:
        user = NamespaceUser(namespace, _new_password())
        body = self._body(user, data={"username": _b64(user.name), "password": _b64(user.password)})
        await self._kube().apply_secret(body)
        log.info(
            "%s the Redis user %s of namespace %s (Secret %s/%s)",
            "replaced the password of" if replaces else "created", user.name, namespace,
            self.own_namespace, secret_name(namespace),
        )  # fmt: skip
        return user

    async def _rotate(self, user: NamespaceUser, *, request: str) -> NamespaceUser:
        rotated = NamespaceUser(
            user.namespace, _new_password(), previous=user.password, rotated_at=float(int(time.time()))
        )
        body = self._body(
            rotated,
            data={"password": _b64(rotated.password), "previous-password": _b64(user.password)},
            annotations={ROTATED_ANNOTATION: request, ROTATED_AT_ANNOTATION: f"{rotated.rotated_at:.0f}"},
        )
        await self._kube().apply_secret(body)
        log.info(
            "rotated the Redis password of namespace %s; the previous one stays valid for %.0fs",
            user.namespace, self.rotation_grace,
        )  # fmt: skip
        return rotated

    def _body(
        self, user: NamespaceUser, *, data: dict[str, str | None], annotations: dict[str, str] | None = None
    ) -> dict[str, Any]:
        metadata: dict[str, Any] = {
            "name": secret_name(user.namespace),
            "namespace": self.own_namespace,
            "labels": {"app.kubernetes.io/part-of": "floxide", NAMESPACE_LABEL: user.namespace},
        }
        if annotations:
            metadata["annotations"] = annotations
        return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "metadata": metadata, "data": data}


def _float(text: str | None) -> float | None:
    with contextlib.suppress(TypeError, ValueError):
        return float(text)  # type: ignore[arg-type]
    return None
