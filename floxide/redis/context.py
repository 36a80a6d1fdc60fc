"""A run's context in Redis: one hash of JSON fields, plus one key per list, set or dict field.

Deltas become native Redis operations (HINCRBY for sums, RPUSH for appends, SADD for
unions, HSET/HDEL for dict updates), so concurrent commits never lose or double-count an
update. Custom merges are compare-and-set: the commit carries the stored value the merge
was computed on and is refused if it changed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from floxide.merge import Merge, apply_json, strategies
from floxide.redis.keys import RunKeys

__all__ = ["ContextLayout", "flatten_ops"]

_SEPARATE = {"append": "list", "union": "set", "update": "map"}


def _json(value: Any, *, canonical: bool = False) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=canonical, ensure_ascii=False)


@dataclass(frozen=True)
class ContextLayout:
    """How one context model is laid out in Redis."""

    model: type[BaseModel] | None

    @property
    def rules(self) -> dict[str, Merge]:
        return {} if self.model is None else strategies(self.model)

    def separate_keys(self, keys: RunKeys) -> list[tuple[str, str, str]]:
        """``(field, kind, key)`` of every field kept in a key of its own."""
        return [
            (field, _SEPARATE[rule.kind], keys.ctx_field(_SEPARATE[rule.kind], field))
            for field, rule in self.rules.items()
            if rule.kind in _SEPARATE
        ]

    def read_commands(self, keys: RunKeys) -> list[tuple[str, ...]]:
        """The commands that read the whole context (run them in one pipeline)."""
        commands: list[tuple[str, ...]] = [("HGETALL", keys.ctx)]
        for _, kind, key in self.separate_keys(keys):
            commands.append(
                {"list": ("LRANGE", key, "0", "-1"), "set": ("SMEMBERS", key), "map": ("HGETALL", key)}[kind]
            )
        return commands

    def assemble(self, keys: RunKeys, replies: list[Any]) -> dict[str, Any] | None:
        """The context's JSON form from the replies of :meth:`read_commands`."""
        if self.model is None:
            return None
        data = {field: json.loads(raw) for field, raw in (replies[0] or {}).items()}
        for (field, kind, _), reply in zip(self.separate_keys(keys), replies[1:], strict=True):
            if kind == "map":
                data[field] = {k: json.loads(v) for k, v in (reply or {}).items()}
            else:
                data[field] = [json.loads(v) for v in (reply or [])]
        return data

    def seed_ops(self, context: dict[str, Any] | None) -> list[tuple[str, str, str | None, list[str]]]:
        """Ops that store a whole context (for a new run)."""
        if context is None:
            return []
        ops: list[tuple[str, str, str | None, list[str]]] = []
        rules = self.rules
        for field, value in context.items():
            kind = rules[field].kind if field in rules else "replace"
            if kind == "append":
                ops.append(("append", field, "list", [_json(v) for v in value]))
            elif kind == "union":
                ops.append(("union", field, "set", [_json(v, canonical=True) for v in value]))
            elif kind == "update":
                ops.append(
                    ("update", field, "map", [x for k, v in value.items() for x in (str(k), _json(v))])
                )
            else:
                ops.append(("set", field, None, [_json(value)]))
        return [op for op in ops if op[3] or op[0] == "set"]

    def delta_ops(
        self, changes: Iterable[dict[str, Any]], current: dict[str, str | None]
    ) -> list[tuple[str, str, str | None, list[str]]]:
        """Ops applying step deltas; ``current`` holds the stored JSON of custom-merged fields."""
        ops: list[tuple[str, str, str | None, list[str]]] = []
        assert self.model is not None
        for change in changes:
            field, kind, value = change["field"], change["kind"], change["value"]
            if kind == "sum":
                integral = isinstance(value, int) and not isinstance(value, bool)
                ops.append(
                    (
                        "incr" if integral else "incrf",
                        field,
                        None,
                        [repr(value) if not integral else str(value)],
                    )
                )
            elif kind in ("max", "min"):
                ops.append((kind, field, None, [_json(value)]))
            elif kind == "append":
                ops.append(("append", field, "list", [_json(v) for v in value]))
            elif kind == "union":
                ops.append(("union", field, "set", [_json(v, canonical=True) for v in value]))
            elif kind == "update":
                pairs = [x for k, v in value["set"].items() for x in (str(k), _json(v))]
                if pairs:
                    ops.append(("update", field, "map", pairs))
                if value["delete"]:
                    ops.append(("delete", field, "map", [str(k) for k in value["delete"]]))
            elif kind == "custom":
                stored = current.get(field)
                merged = apply_json(
                    self.model, {field: None if stored is None else json.loads(stored)}, [change]
                )
                ops.append(("cas", field, None, [stored or "", _json(merged[field])]))
            else:
                ops.append(("set", field, None, [_json(value)]))
        return ops

    def custom_fields(self, changes: Iterable[dict[str, Any]]) -> list[str]:
        """The fields of ``changes`` merged by a custom function (read before committing)."""
        return [c["field"] for c in changes if c["kind"] == "custom"]


def flatten_ops(
    ops: list[tuple[str, str, str | None, list[str]]],
    keys: RunKeys,
    key_base: int,
    known: list[str] | None = None,
) -> tuple[list[str], list[str]]:
    """``(extra KEYS, ARGV)`` for ops: separate keys (``known`` first) are numbered from ``key_base`` + 1."""
    extra: list[str] = list(known or [])
    argv: list[str] = [str(len(ops))]
    for kind, field, separate, values in ops:
        index = 0
        if separate is not None:
            key = keys.ctx_field(separate, field)
            if key not in extra:
                extra.append(key)
            index = key_base + extra.index(key) + 1
        argv += [kind, field, str(index), str(len(values)), *values]
    return extra, argv
