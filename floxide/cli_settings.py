"""The settings of the command line: environment variables overridden by flags, bad values named.

Shared by the ``floxide`` commands and the worker process.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from floxide.cli import CliError

if TYPE_CHECKING:
    from floxide.redis import RedisSettings

__all__ = [
    "REDIS_EXTRA",
    "NamespaceSettings",
    "load_settings",
    "namespace_setting",
    "redis_extra_missing",
    "redis_settings",
    "run_id_setting",
    "safe_url",
]

S = TypeVar("S", bound=BaseSettings)

NAMESPACE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$"


class NamespaceSettings(BaseSettings):
    """Which tenant's keys to use. Environment: ``FLOXIDE_NAMESPACE``."""

    model_config = SettingsConfigDict(env_prefix="FLOXIDE_", extra="ignore")

    namespace: str = Field(
        "default",
        pattern=NAMESPACE_PATTERN,
        description="Redis key namespace: the Kubernetes namespace when run by the operator, "
        "else any name (1-63 letters, digits, '.', '_' or '-').",
    )


def load_settings(model: type[S], flags: Mapping[str, tuple[str, Any]]) -> S:
    """``model`` from the environment, overridden by command-line flags.

    ``flags`` maps a field to ``(flag name, value)``; ``None`` values were not given. A bad
    value becomes a :class:`CliError` naming the flag or the environment variable it came from.
    """
    given = {name: value for name, (_, value) in flags.items() if value is not None}
    try:
        return model(**given)
    except ValidationError as exc:
        error = exc.errors()[0]
        name = str(error["loc"][0]) if error["loc"] else ""
        prefix = str(model.model_config.get("env_prefix") or "")
        if name in given:
            source, value = flags[name][0], given[name]
        else:
            source, value = f"{prefix}{name}".upper(), os.environ.get(f"{prefix}{name}".upper(), "")
        raise CliError(f"bad {source}: {error['msg']} (got {str(value)!r})") from None


REDIS_EXTRA = frozenset({"redis", "hiredis", "aiohttp", "prometheus_client"})
"""The top-level modules the ``redis`` extra installs."""


def redis_extra_missing(exc: ImportError) -> CliError | None:
    """The one-line error for ``exc`` if it says the ``redis`` extra is not installed, else ``None``."""
    name = getattr(exc, "name", None) or ""
    if not isinstance(exc, ModuleNotFoundError) or name.partition(".")[0] not in REDIS_EXTRA:
        return None
    return CliError(
        f"this command needs the redis extra: pip install 'floxide[redis]' (no module named {name!r})"
    )


def redis_settings(url: str | None) -> RedisSettings:
    """The Redis settings: ``--redis`` over ``FLOXIDE_REDIS_URL`` over the default.

    A URL redis-py would refuse, misread or fail on only when connecting is a
    :class:`CliError` (exit status 2) naming its source; so is a missing ``redis`` extra.
    """
    try:
        from floxide.redis import RedisSettings
    except ImportError as exc:
        missing = redis_extra_missing(exc)
        if missing is None:
            raise
        raise missing from None

    settings = load_settings(RedisSettings, {"url": ("--redis", url)})
    source = "--redis" if url is not None else "FLOXIDE_REDIS_URL"
    problem = _url_problem(settings)
    if problem:
        raise CliError(f"bad {source}: {problem} (got {safe_url(settings.url)!r})")
    return settings


def _url_problem(settings: RedisSettings) -> str:
    """What is wrong with ``settings.url`` (``""``: nothing)."""
    url = settings.url
    try:  # the scheme, and a cluster's or Sentinel's hosts, master name and options
        topology = settings.topology()
    except ValueError as exc:
        return str(exc)
    if topology.mode != "standalone":
        return ""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is no number or out of range
    except ValueError as exc:
        return str(exc)
    database = parts.path.strip("/")
    if parts.scheme == "unix" and not parts.path:
        return "a unix:// URL names the socket: unix:///path/to/redis.sock"
    if parts.scheme != "unix" and database and not database.isdigit():
        return "the path of a Redis URL is the database number: redis://host:6379/0"
    try:  # redis-py's own parsing: query options and their values (it connects only when used)
        pool = settings.client().connection_pool  # type: ignore[union-attr]  # (standalone: a Redis)
        pool.connection_class(**pool.connection_kwargs)
    except TypeError as exc:  # an option redis-py does not know
        return f"unknown option {str(exc).rpartition(' argument ')[2]} in the URL's query"
    except ValueError as exc:
        return " ".join(str(exc).split())
    return ""


def run_id_setting(run_id: str | None) -> str | None:
    """``--run-id`` of a run on Redis: 1-200 letters, digits, '-', '_', '.' or ':' (``None``: a new id)."""
    if run_id is not None and (
        not run_id or len(run_id) > 200 or not all(c.isalnum() or c in "-_.:" for c in run_id)
    ):
        raise CliError(
            f"bad --run-id: a run id is 1-200 letters, digits, '-', '_', '.' or ':' (got {run_id!r})"
        )
    return run_id


def namespace_setting(namespace: str | None) -> str:
    """The namespace: ``--namespace`` over ``FLOXIDE_NAMESPACE`` over ``default``."""
    return load_settings(NamespaceSettings, {"namespace": ("--namespace", namespace)}).namespace


def safe_url(url: str) -> str:
    """``url`` without a password."""
    scheme, sep, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not at:
        return url
    user = credentials.partition(":")[0]
    return f"{scheme}{sep}{user + ':***' if user else '***'}@{host}"
