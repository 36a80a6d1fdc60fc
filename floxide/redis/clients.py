"""Building the Redis client: one server, a Redis Cluster, or a primary managed by Sentinel.

:func:`build_client` is the one place a client is made (``RedisSettings.client`` calls it).
The topology comes from the URL, in the style redis-py and the Bitnami/Redis charts use, and
the settings ``mode``, ``sentinels`` and ``master_name`` override it:

* ``redis://host:6379/0``, ``rediss://...`` (TLS), ``unix:///path.sock``: one server;
* ``redis+cluster://host1:6379,host2:6379`` (``rediss+cluster://``): a Redis Cluster
  (:class:`redis.asyncio.RedisCluster`); any reachable nodes will do, the client learns the
  others. Database 0 only;
* ``redis+sentinel://host1:26379,host2:26379/mymaster/0`` (``rediss+sentinel://``): the
  primary that the sentinels name ``mymaster``, database 0 (``Sentinel(...).master_for(...)``);
  it follows a failover. A password in the URL is the primary's; the sentinels get
  ``sentinel_password`` (none by default).

Query options of ours, taken out before redis-py sees the rest: ``wait_replicas`` and
``wait_timeout_ms`` (see :class:`Topology`) and ``sentinel_password``. A standalone URL keeps
redis-py's own query options; cluster and sentinel URLs take only ours.

Every key of a workflow carries one hash tag (:mod:`floxide.redis.keys`), so each script and
transaction touches a single slot, and workflows spread over a cluster's primaries; a
namespace's run index and workflow registry (tag ``{wf:<namespace>/}``) are read and written
one key per command, never in a script with a workflow's keys.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypeAlias
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from redis.asyncio import BlockingConnectionPool, Redis, RedisCluster
from redis.asyncio.cluster import ClusterNode, ClusterPipeline
from redis.asyncio.connection import SSLConnection
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool, SentinelManagedConnection
from redis.commands.core import AsyncScript
from redis.typing import EncodableT, KeyT

if TYPE_CHECKING:
    from floxide.redis.settings import RedisSettings

__all__ = ["MODES", "Client", "ClusterScript", "Mode", "Topology", "build_client", "for_cluster", "topology"]

Client: TypeAlias = Redis | RedisCluster
"""What :func:`build_client` returns: a client of one server (also a Sentinel-managed primary)
or of a cluster. Both have the same command methods."""

Mode = Literal["standalone", "cluster", "sentinel"]
MODES: tuple[Mode, ...] = ("standalone", "cluster", "sentinel")

_SCHEMES: dict[str, tuple[Mode, bool]] = {
    "redis": ("standalone", False),
    "rediss": ("standalone", True),
    "unix": ("standalone", False),
    "redis+cluster": ("cluster", False),
    "rediss+cluster": ("cluster", True),
    "redis+sentinel": ("sentinel", False),
    "rediss+sentinel": ("sentinel", True),
}
_OURS = ("wait_replicas", "wait_timeout_ms", "sentinel_password")
_DEFAULT_PORT: dict[Mode, int] = {"standalone": 6379, "cluster": 6379, "sentinel": 26379}


@dataclass(frozen=True)
class Topology:
    """Where Redis is and how commits wait for replicas, as read from the URL and settings.

    ``wait_replicas``: after each commit, ``WAIT wait_replicas wait_timeout_ms`` on the same
    connection: the commit returns once that many replicas acknowledged it, or after the
    timeout (the commit stands either way; a shortfall is logged). 0 waits for none.
    """

    mode: Mode
    tls: bool
    hosts: tuple[tuple[str, int], ...] = ()
    master_name: str = ""
    db: int = 0
    username: str | None = None
    password: str | None = None
    sentinel_password: str | None = None
    wait_replicas: int = 0
    wait_timeout_ms: int = 1000
    standalone_url: str = ""
    """The URL for redis-py (standalone only), without our query options."""
    options: dict[str, str] = field(default_factory=dict)


def topology(settings: RedisSettings, url: str | None = None) -> Topology:
    """The topology of ``settings`` (``url``: its URL, perhaps without the password).

    Raises :class:`ValueError` saying what is wrong (scheme, hosts, master name, options).
    """
    url = settings.url if url is None else url
    scheme, sep, _ = url.partition("://")
    if not sep or scheme.lower() not in _SCHEMES:
        raise ValueError(
            "a Redis URL starts with redis://, rediss:// (TLS), unix://, redis+cluster:// or "
            "redis+sentinel:// (rediss+... for TLS)"
        )
    if any(c.isspace() for c in url):
        raise ValueError("a Redis URL has no spaces")
    url_mode, tls = _SCHEMES[scheme.lower()]
    mode: Mode = settings.mode or url_mode
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    wait_replicas, wait_timeout, sentinel_password = _our_options(settings, query)
    common: dict[str, Any] = {
        "mode": mode,
        "tls": tls,
        "wait_replicas": wait_replicas,
        "wait_timeout_ms": wait_timeout,
        "sentinel_password": sentinel_password,
    }
    if mode == "standalone" and url_mode != "standalone":
        raise ValueError(f"mode standalone takes a redis:// or rediss:// URL (got a {url_mode} URL)")
    if url_mode == "standalone" and mode == "standalone":
        clean = urlunsplit(parts._replace(query=urlencode(query)))
        database = parts.path.strip("/")
        db = int(database) if database.isdigit() and parts.scheme != "unix" else 0
        return Topology(standalone_url=clean, options=query, db=db, **common)
    if parts.scheme.lower() == "unix":
        raise ValueError(f"a {mode} Redis is reached over TCP, not a unix:// socket")
    userinfo, at, netloc = parts.netloc.rpartition("@")
    username = password = None
    if at:
        user, colon, secret = userinfo.partition(":")
        username, password = (unquote(user) or None), (unquote(secret) if colon else None)
    hosts = _hosts(netloc, _DEFAULT_PORT[mode] if url_mode == mode else 6379)
    if mode == "sentinel" and settings.sentinels:
        hosts = _hosts(settings.sentinels, _DEFAULT_PORT["sentinel"])
    segments = [unquote(s) for s in parts.path.split("/") if s]
    if query:
        raise ValueError(
            f"unknown option(s) {', '.join(sorted(query))} in a {mode} URL's query "
            f"(it takes {', '.join(_OURS)})"
        )
    master = ""
    if mode == "sentinel" and url_mode == "sentinel":
        master = segments.pop(0) if segments else ""
    master = settings.master_name or master
    if len(segments) > 1 or (segments and not segments[0].isdigit()):
        expected = "/<master name>/<db>" if url_mode == "sentinel" else "/<db>"
        raise ValueError(f"the path of a {url_mode} URL is {expected} (got {parts.path!r})")
    db = int(segments[0]) if segments else 0
    if mode == "sentinel" and not master:
        raise ValueError(
            "a Sentinel URL names the primary: redis+sentinel://host:26379/mymaster/0 (or set master_name)"
        )
    if mode == "cluster" and db:
        raise ValueError(f"a Redis Cluster has database 0 only (got {db})")
    return Topology(hosts=hosts, master_name=master, db=db, username=username, password=password, **common)


def _our_options(settings: RedisSettings, query: dict[str, str]) -> tuple[int, int, str | None]:
    """Take our options out of ``query``: the replica wait and the sentinels' password (settings win)."""
    ours = {key: query.pop(key) for key in _OURS if key in query}
    wait_replicas = _number(ours.get("wait_replicas"), "wait_replicas", 0)
    wait_timeout = _number(ours.get("wait_timeout_ms"), "wait_timeout_ms", 1000)
    if settings.wait_replicas is not None:
        wait_replicas = settings.wait_replicas
    if settings.wait_timeout_ms is not None:
        wait_timeout = settings.wait_timeout_ms
    sentinel_password = ours.get("sentinel_password")
    if settings.sentinel_password is not None:
        sentinel_password = settings.sentinel_password.get_secret_value()
    return wait_replicas, wait_timeout, sentinel_password


def _hosts(text: str, default_port: int) -> tuple[tuple[str, int], ...]:
    hosts = []
    for entry in (e.strip() for e in text.split(",")):
        if not entry:
            continue
        if entry.startswith("["):  # [IPv6]:port
            host, _, rest = entry[1:].partition("]")
            port_text = rest.removeprefix(":")
        else:
            host, _, port_text = entry.rpartition(":") if ":" in entry else (entry, "", "")
        port = int(port_text) if port_text.isdigit() else default_port if not port_text else -1
        if not host or not 0 < port < 65536:
            raise ValueError(f"bad host:port {entry!r} in the Redis address list")
        hosts.append((host, port))
    if not hosts:
        raise ValueError("the Redis URL names no host")
    return tuple(hosts)


def _number(text: str | None, name: str, default: int) -> int:
    if text is None:
        return default
    if not text.isdigit():
        raise ValueError(f"{name} in the URL's query is a whole number >= 0 (got {text!r})")
    return int(text)


def build_client(settings: RedisSettings, url: str, options: dict[str, Any]) -> Client:
    """The client of ``settings``: ``url`` and ``options`` are those of one server (redis-py's
    connection and pool options, as :meth:`RedisSettings.client` makes them); a cluster or
    Sentinel client gets those that apply to it."""
    top = topology(settings, url)
    if top.mode == "standalone":
        # Many concurrent callers (an operator's timers, a worker's steps) wait for a free
        # connection; redis-py's default pool would fail them ("Too many connections").
        client = Redis(connection_pool=BlockingConnectionPool.from_url(top.standalone_url, **options))
        client.auto_close_connection_pool = True  # as Redis.from_url does: aclose() closes the pool
        return client
    credentials = {"username": top.username, "password": top.password}
    given = {k: v for k, v in credentials.items() if v is not None and options.get(k) is None}
    options = {**options, **given}
    if top.tls:
        options["ssl"] = True
    if top.mode == "cluster":
        accepted = inspect.signature(RedisCluster.__init__).parameters
        return RedisCluster(
            startup_nodes=[ClusterNode(host, port) for host, port in top.hosts],
            **{k: v for k, v in options.items() if k in accepted},
        )
    sentinel_options = {k: v for k, v in options.items() if k.startswith(("socket_", "ssl"))}
    if top.sentinel_password is not None:
        sentinel_options["password"] = top.sentinel_password
    sentinel = Sentinel(list(top.hosts), sentinel_kwargs=sentinel_options)  # type: ignore[no-untyped-call]
    primary: _SentinelPrimary = sentinel.master_for(
        top.master_name,
        redis_class=_SentinelPrimary,
        connection_pool_class=_BlockingSentinelPool,
        connection_class=_SentinelSSLConnection if top.tls else _SentinelConnection,
        db=top.db,
        **{k: v for k, v in options.items() if k not in ("db", "ssl")},
    )
    return primary


class _BlockingSentinelPool(SentinelConnectionPool, BlockingConnectionPool):
    """A Sentinel pool that waits for a free connection, as the standalone one does."""


class _SentinelConnection(SentinelManagedConnection):
    """A connection to the primary that asks the sentinels where it is each time it (re)connects.

    redis-py's own reconnects a dropped connection to the address it had (``send_command``
    calls ``connect_check_health`` directly, not the Sentinel-aware ``connect``), so after a
    failover it kept knocking at the dead primary.
    """

    async def connect_check_health(self, check_health: bool = True, retry_socket_connect: bool = True) -> Any:
        if not self.is_connected and retry_socket_connect:  # (connect_to passes False: a fresh address)
            self.host, self.port = await self.connection_pool.get_master_address()
        await super().connect_check_health(check_health, retry_socket_connect)


class _SentinelSSLConnection(_SentinelConnection, SSLConnection):
    """:class:`_SentinelConnection` over TLS."""


class _SentinelPrimary(Redis):
    """The client of a Sentinel-managed primary; closing it also closes the sentinel clients."""

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        await super().aclose(True if close_connection_pool is None else close_connection_pool)
        pool = self.connection_pool
        assert isinstance(pool, SentinelConnectionPool)
        await pool.sentinel_manager.aclose()


class ClusterScript(AsyncScript):
    """A script that can also be queued on a cluster pipeline or transaction.

    redis-py refuses ``evalsha()`` and ``Script(client=pipeline)`` on a cluster pipeline (it
    could not load a missing script in the middle), not the raw ``EVALSHA`` command: so the
    script is loaded on every primary (``SCRIPT LOAD``) the first time, then queued raw.
    """

    def __init__(self, client: RedisCluster, script: AsyncScript) -> None:
        super().__init__(client, script.script)
        self.cluster = client
        self._loaded = False

    async def __call__(
        self,
        keys: Sequence[KeyT] | None = None,
        args: Iterable[EncodableT] | None = None,
        client: Any = None,
    ) -> Any:
        if not isinstance(client, ClusterPipeline):
            return await super().__call__(keys, args, client)
        if not self._loaded:
            self.sha = await self.cluster.script_load(self.script)
            self._loaded = True
        keys = list(keys or [])
        return client.execute_command("EVALSHA", self.sha, len(keys), *keys, *(args or []))


def for_cluster(scripts: object, client: Client) -> None:
    """On a cluster client, make every script attribute of ``scripts`` a :class:`ClusterScript`."""
    if isinstance(client, RedisCluster):
        for name, script in list(vars(scripts).items()):
            if isinstance(script, AsyncScript):
                setattr(scripts, name, ClusterScript(client, script))
