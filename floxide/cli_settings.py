"""The settings of the command line: environment variables overridden by flags, bad values named.

Shared by the ``floxide`` commands and the worker process.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from floxide.cli import CliError

if TYPE_CHECKING:
    from floxide.redis import RedisSettings

__all__ = ["NamespaceSettings", "load_settings", "namespace_setting", "redis_settings", "safe_url"]

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


def redis_settings(url: str | None) -> RedisSettings:
    """The Redis settings: ``--redis`` over ``FLOXIDE_REDIS_URL`` over the default."""
    from floxide.redis import RedisSettings

    settings = load_settings(RedisSettings, {"url": ("--redis", url)})
    source = "--redis" if url is not None else "FLOXIDE_REDIS_URL"
    if not settings.url.startswith(("redis://", "rediss://", "unix://")):
        raise CliError(
            f"bad {source}: a Redis URL starts with redis://, rediss:// (TLS) or unix:// "
            f"(got {settings.url!r})"
        )
    return settings


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
