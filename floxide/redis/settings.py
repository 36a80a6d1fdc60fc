"""Connecting to Redis: URL, password and TLS, read once at the process entry point."""

from __future__ import annotations

import ssl
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict
from redis.asyncio.retry import Retry
from redis.backoff import EqualJitterBackoff
from redis.exceptions import AuthenticationError
from redis.exceptions import ConnectionError as RedisDisconnected

from floxide.redis.clients import Client, Mode, Topology, build_client, topology

__all__ = ["RedisSettings"]

T = TypeVar("T")


class RedisSettings(BaseSettings):
    """How to reach Redis. Environment: ``FLOXIDE_REDIS_URL``, ``FLOXIDE_REDIS_PASSWORD``, ...

    ``rediss://`` URLs use TLS; ``tls_ca_file`` (a file) or ``tls_ca_data`` (the PEM text itself, as
    the operator hands it to workers) verifies the server with a private CA.
    """

    model_config = SettingsConfigDict(env_prefix="FLOXIDE_REDIS_", extra="ignore")

    url: str = Field("redis://localhost:6379/0", description="redis:// or rediss:// (TLS) URL.")
    password: SecretStr | None = Field(None, description="Overrides a password in the URL.")
    username: str | None = Field(
        None, description="ACL user (Redis 6+), over a user in the URL; unset: the URL's, else 'default'."
    )
    tls_ca_file: str | None = Field(None, description="CA bundle to verify a TLS server with.")
    tls_ca_data: str | None = Field(
        None, description="CA certificates (PEM text) to verify a TLS server with, besides tls_ca_file."
    )
    tls_insecure: bool = Field(False, description="Skip TLS certificate verification (testing only).")
    socket_timeout: float = Field(
        10.0, gt=0, description="Seconds a command may take (blocking reads excluded)."
    )
    connect_timeout: float = Field(5.0, gt=0, description="Seconds to establish a connection.")
    max_connections: int = Field(
        100,
        ge=1,
        description="Connections one process keeps open at most; beyond them, commands wait for a free "
        "one (up to socket_timeout) instead of failing.",
    )

    mode: Mode | None = Field(
        None,
        description="standalone, cluster (Redis Cluster) or sentinel (a Sentinel-managed primary); "
        "unset: from the URL's scheme (redis+cluster://, redis+sentinel://).",
    )
    sentinels: str = Field(
        "", description="Sentinels as host:port,host:port (mode sentinel); unset: the URL's hosts."
    )
    master_name: str = Field("", description="The primary's name at the sentinels; unset: the URL's path.")
    sentinel_password: SecretStr | None = Field(None, description="Password of the sentinels themselves.")
    wait_replicas: int | None = Field(
        None,
        ge=0,
        description="Replicas that must acknowledge each commit (WAIT) before it returns; unset: the URL's "
        "wait_replicas option, else 0. See docs/operations.md for what it does not guarantee.",
    )
    wait_timeout_ms: int | None = Field(
        None, ge=0, description="Longest wait for those replicas (milliseconds); unset: the URL's, else 1000."
    )

    def client(self, *, block: float = 0.0) -> Client:
        """A client; ``block`` is the longest blocking read it will do (kept below the socket timeout)."""
        options: dict[str, object] = {
            "socket_timeout": self.socket_timeout + block,
            "socket_connect_timeout": self.connect_timeout,
            "health_check_interval": 15,
            "retry_on_timeout": False,
            "retry": _Reconnect(
                EqualJitterBackoff(cap=2.0, base=0.1), 4, supported_errors=(RedisDisconnected,)
            ),
            "decode_responses": True,
            "max_connections": self.max_connections,
            "timeout": self.socket_timeout + block,
        }
        url = self.url
        if self.password is not None:
            options["password"] = self.password.get_secret_value()
            url = _without_password(url)  # redis-py lets a password in the URL win over the option
        if self.username:
            options["username"] = self.username
            url = _without_user(url)
        if self.url.startswith("rediss"):  # rediss://, rediss+cluster://, rediss+sentinel://
            if self.tls_ca_file:
                options["ssl_ca_certs"] = self.tls_ca_file
            if self.tls_ca_data:
                options["ssl_ca_data"] = self.tls_ca_data
            if self.tls_insecure:
                options["ssl_cert_reqs"] = "none"
        return build_client(self, url, options)

    def topology(self) -> Topology:
        """Where Redis is (one server, a cluster, Sentinel) and the commits' replica wait;
        :class:`ValueError` saying what is wrong with the URL or settings."""
        return topology(self)


def _without_password(url: str) -> str:
    """``url`` with no password in it (a user name stays)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username}@{host}" if parts.username else host))


def _without_user(url: str) -> str:
    """``url`` with no user name in it (a password stays)."""
    parts = urlsplit(url)
    if parts.username is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f":{parts.password}@{host}" if parts.password else host))


class _Reconnect(Retry):
    """Re-opens a connection Redis dropped or refused (a restart, a failover) and sends the
    command again, 4 times within 1.5-3 s (``Redis.from_url`` alone never retries).

    Not retried: timeouts (a command may have run; blocking reads stay bounded), a refused
    login and an untrusted certificate (they would fail the same way, only later).
    """

    async def call_with_retry(
        self,
        do: Callable[[], Awaitable[T]],
        fail: Callable[..., Any],
        is_retryable: Callable[[Exception], bool] | None = None,
        with_failure_count: bool = False,
    ) -> T:
        def retryable(error: Exception) -> bool:
            return _transient(error) and (is_retryable is None or is_retryable(error))

        return await super().call_with_retry(do, fail, retryable, with_failure_count)


def _transient(error: Exception) -> bool:
    cause = error.__cause__ or error.__context__
    return not isinstance(error, AuthenticationError) and not isinstance(cause, ssl.SSLError)
