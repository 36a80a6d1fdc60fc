"""The CA that verifies a ``rediss://`` Redis, handed from the operator to the workers it starts.

The operator reads its own CA bundle from ``FLOXIDE_REDIS_TLS_CA_FILE`` (the chart mounts the
``ca.crt`` of the bundled Redis' certificate Secret there). Workers run in other namespaces, where
that Secret does not exist; a CA certificate is public, so the operator writes its text into the
worker pods' environment (``FLOXIDE_REDIS_TLS_CA_DATA``). A renewed CA changes the pod template, and
the Deployment rolls its pods onto it.
"""

from __future__ import annotations

import logging
import os

from floxide.redis import RedisSettings

__all__ = ["worker_ca"]

log = logging.getLogger(__name__)

_read: dict[str, tuple[int, str | None]] = {}
"""path -> (modification time in ns, its text): the file is read again only when it changes."""


def worker_ca(settings: RedisSettings) -> str | None:
    """The CA text for workers of the operator's own Redis: ``None`` unless it speaks TLS with a CA file."""
    path = settings.tls_ca_file
    if not path or not settings.url.startswith("rediss"):
        return settings.tls_ca_data if settings.url.startswith("rediss") else None
    try:
        stamp = os.stat(path).st_mtime_ns
    except OSError as exc:
        log.warning("cannot read the Redis CA file %s for the workers: %s", path, exc)
        return _read.get(path, (0, None))[1]
    cached = _read.get(path)
    if cached is None or cached[0] != stamp:
        with open(path, encoding="utf-8") as handle:
            cached = _read[path] = (stamp, handle.read())
    return cached[1]
