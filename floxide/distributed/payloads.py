"""How large one value of a distributed run may be: a run's input, a node's output, a context field.

Every value a distributed run stores (in Redis, one stream entry or one hash field each) is
measured as the JSON it is stored as, in UTF-8 bytes. A value over the limit is refused before
anything of it is written:

* a run's input (and a seeded context's fields) when the run is started: ``seed_run``
  raises :class:`~floxide.errors.PayloadTooLarge`, the command line exits with status 2, the
  operator fails the WorkflowRun with the reason ``InputTooLarge``;
* a step's outputs, successor inputs, join arrivals and changed context fields when the step
  ends: the step fails permanently (a node failure naming the node, the value, its size and the
  limit), its commit is never applied, and the run's other data stays as it was.

The limit is one setting, ``FLOXIDE_MAX_PAYLOAD_BYTES`` (default 1 MiB), read at each process's
entry point: the command line, the worker and the operator (which hands its own to the workers
it starts). Large data belongs outside the run: pass a reference (an object-store key, a URL).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field
from pydantic_core import to_json
from pydantic_settings import BaseSettings, SettingsConfigDict

from floxide.distributed.protocols import Commit
from floxide.errors import PayloadTooLarge

__all__ = [
    "DEFAULT_MAX_PAYLOAD_BYTES",
    "PayloadSettings",
    "check_commit",
    "check_payload",
    "payload_size",
]

DEFAULT_MAX_PAYLOAD_BYTES = 1024 * 1024
"""1 MiB: far above what a step's input or output usually is, far below Redis' 512 MB values."""

ENV_VAR = "FLOXIDE_MAX_PAYLOAD_BYTES"


class PayloadSettings(BaseSettings):
    """Size limits of distributed runs. Environment: ``FLOXIDE_MAX_PAYLOAD_BYTES``."""

    model_config = SettingsConfigDict(env_prefix="FLOXIDE_", extra="ignore")

    max_payload_bytes: int = Field(
        DEFAULT_MAX_PAYLOAD_BYTES,
        ge=1024,
        description="Largest run input, node output or context field a distributed run stores "
        "(bytes of its JSON).",
    )


def payload_size(value: Any) -> int:
    """The size of ``value`` as stored: its compact JSON, in UTF-8 bytes."""
    return len(to_json(value))


def _refusal(what: str, size: int, limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"{what} is {size:,} bytes, over the limit of {limit:,} bytes ({ENV_VAR}); "
        "pass large data by reference (an object-store key, a URL)",
        size=size,
        limit=limit,
    )


def check_payload(value: Any, *, what: str, limit: int | None) -> None:
    """Raise :class:`PayloadTooLarge` when ``value`` is over ``limit`` bytes (``None``: no limit)."""
    if limit is None:
        return
    size = payload_size(value)
    if size > limit:
        raise _refusal(what, size, limit)


def check_commit(commit: Commit, *, context: BaseModel | None, limit: int | None) -> None:
    """Raise :class:`PayloadTooLarge` naming the first value of a step's commit over ``limit``.

    ``context`` is the context as the step left it: each field the step changed is measured
    whole (an appended list with what it held before), as the run will store it.
    """
    if limit is None:
        return
    node = commit.item.node
    for value in commit.outputs:
        _check(value, limit, "the output of node '{}'", node)
    for child in commit.children:
        _check(child.payload, limit, "the input node '{}' sends to '{}'", node, child.node)
    for target, value in commit.arrivals:
        _check(value, limit, "the input node '{}' sends to the join '{}'", node, target)
    changed = dict.fromkeys(str(change["field"]) for change in commit.changes)
    for name in changed:
        value = getattr(context, name) if context is not None and name in type(context).model_fields else None
        if value is None:
            value = next(c["value"] for c in commit.changes if c["field"] == name)
        _check(value, limit, "context field '{}' after node '{}'", name, node)


def _check(value: Any, limit: int, what: str, *names: str) -> None:
    """Raise :class:`PayloadTooLarge` if ``value`` is over ``limit``; ``what`` (a format of
    ``names``) says which value it is, and is only formatted then."""
    size = payload_size(value)
    if size > limit:
        raise _refusal(what.format(*names), size, limit)
