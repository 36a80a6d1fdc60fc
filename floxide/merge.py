"""How concurrent branches merge their changes to the run's context.

Every field of a context model has a strategy, declared with ``Annotated``::

    class Totals(BaseModel):
        seen: Annotated[int, Merge.sum()] = 0
        best: Annotated[float, Merge.max()] = 0.0
        log: Annotated[list[str], Merge.append()] = []
        tags: Annotated[set[str], Merge.union()] = set()
        status: str = "new"                      # Merge.replace(), the default

A step works on its own copy of the context. When it commits, the engine computes, per
field, the *delta* between the copy before and after the step (:func:`diff`) and applies
that delta to the current context (:func:`apply`). Deltas, not whole copies, are merged, so
1,000 branches that each add 1 to a summed field give exactly 1,000, in one process or
across workers. Laws (tested): an unchanged field has no delta; applying a step's delta to
the state it started from gives the state it ended with; the deltas of ``sum``, ``max``,
``min``, ``union`` and of ``update`` on distinct keys commute.
"""

from __future__ import annotations

import math
import types
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any, ClassVar, Literal, get_args, get_origin

from pydantic import BaseModel
from pydantic_core import to_jsonable_python

from floxide.errors import GraphError, MergeError

__all__ = ["FieldChange", "Merge", "apply", "apply_json", "diff", "strategies"]

Kind = Literal["replace", "sum", "max", "min", "append", "union", "update", "fixed", "custom"]

CustomMerge = Callable[[Any, Any, Any], Any]
"""``(current, before, after) -> merged``: a three-way merge of one field."""


@dataclass(frozen=True, slots=True)
class Merge:
    """A field's merge strategy. Build one with the class methods, e.g. ``Merge.sum()``."""

    kind: Kind
    function: CustomMerge | None = None

    NUMERIC: ClassVar[frozenset[str]] = frozenset({"sum", "max", "min"})

    @classmethod
    def replace(cls) -> Merge:
        """Last writer wins: the changed value replaces the current one (the default)."""
        return cls("replace")

    @classmethod
    def sum(cls) -> Merge:
        """Numbers: each step's increment (after minus before) is added."""
        return cls("sum")

    @classmethod
    def max(cls) -> Merge:
        """Numbers: the largest value written wins."""
        return cls("max")

    @classmethod
    def min(cls) -> Merge:
        """Numbers: the smallest value written wins."""
        return cls("min")

    @classmethod
    def append(cls) -> Merge:
        """Lists: items a step appends are appended; steps may only append."""
        return cls("append")

    @classmethod
    def union(cls) -> Merge:
        """Sets (or lists of distinct items): items a step adds are added; nothing is removed."""
        return cls("union")

    @classmethod
    def update(cls) -> Merge:
        """Dicts: keys a step sets are set, keys it deletes are deleted; other keys are kept."""
        return cls("update")

    @classmethod
    def fixed(cls) -> Merge:
        """Per-run configuration: set when the run starts; a step that changes it fails."""
        return cls("fixed")

    @classmethod
    def custom(cls, function: CustomMerge) -> Merge:
        """A three-way merge ``function(current, before, after) -> merged``."""
        return cls("custom", function)


@dataclass(frozen=True, slots=True)
class FieldChange:
    """The delta of one field: ``value`` depends on the strategy (see :func:`diff`)."""

    field: str
    kind: Kind
    value: Any
    before: Any = None

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready form, for stores that merge outside this process."""
        data = {"field": self.field, "kind": self.kind, "value": to_jsonable_python(self.value)}
        if self.kind == "custom":
            data["before"] = to_jsonable_python(self.before)
        return data


@cache
def strategies(model: type[BaseModel]) -> dict[str, Merge]:
    """Each field's strategy; raises :class:`GraphError` where a strategy cannot fit a field."""
    found: dict[str, Merge] = {}
    for name, info in model.model_fields.items():
        declared = [m for m in info.metadata if isinstance(m, Merge)]
        if len(declared) > 1:
            raise GraphError(
                f"context field '{model.__name__}.{name}' declares {len(declared)} merge strategies"
            )
        strategy = declared[0] if declared else Merge.replace()
        _check_fits(model, name, info.annotation, strategy)
        found[name] = strategy
    return found


def _check_fits(model: type[BaseModel], name: str, annotation: Any, strategy: Merge) -> None:
    base = _strip_optional(annotation)
    origin = get_origin(base) or base
    expected: tuple[type, ...] | None = {
        "sum": (int, float),
        "max": (int, float),
        "min": (int, float),
        "append": (list,),
        "union": (set, frozenset, list),
        "update": (dict,),
    }.get(strategy.kind)
    if expected is None or not isinstance(origin, type):
        return
    if not issubclass(origin, expected) or origin is bool:
        names = " or ".join(t.__name__ for t in expected)
        raise GraphError(
            f"context field '{model.__name__}.{name}' uses Merge.{strategy.kind}(), "
            f"which needs a {names} field, not {getattr(origin, '__name__', origin)}"
        )


def _strip_optional(annotation: Any) -> Any:
    if get_origin(annotation) in (types.UnionType,) or str(get_origin(annotation)) == "typing.Union":
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def diff(before: BaseModel, after: BaseModel) -> list[FieldChange]:
    """What a step changed: one :class:`FieldChange` per changed field."""
    changes: list[FieldChange] = []
    model = type(before)
    for name, strategy in strategies(model).items():
        old, new = getattr(before, name), getattr(after, name)
        if old == new and type(old) is type(new):
            continue
        changes.append(_delta(model, name, strategy, old, new))
    return changes


def _delta(model: type[BaseModel], name: str, strategy: Merge, old: Any, new: Any) -> FieldChange:
    kind = strategy.kind
    where = f"context field '{model.__name__}.{name}'"
    if kind == "sum":
        delta = new - old
        return FieldChange(name, kind, delta)
    if kind == "append":
        if not isinstance(new, list) or not isinstance(old, list) or new[: len(old)] != old:
            raise MergeError(f"{where} uses Merge.append(): a step may only append to it")
        return FieldChange(name, kind, new[len(old) :])
    if kind == "union":
        removed = [item for item in old if item not in new]
        if removed:
            raise MergeError(f"{where} uses Merge.union(): a step may only add to it (removed {removed!r})")
        return FieldChange(name, kind, [item for item in new if item not in old])
    if kind == "update":
        if not isinstance(new, dict):
            raise MergeError(f"{where} uses Merge.update(): it must stay a dict")
        changed = {k: v for k, v in new.items() if k not in old or old[k] != v}
        deleted = [k for k in old if k not in new]
        return FieldChange(name, kind, {"set": changed, "delete": deleted})
    if kind == "fixed":
        raise MergeError(
            f"{where} is Merge.fixed(): it is set when the run starts and steps cannot change it"
        )
    if kind == "custom":
        return FieldChange(name, kind, new, before=old)
    return FieldChange(name, kind, new)


def apply(current: BaseModel, changes: list[FieldChange]) -> BaseModel:
    """A new context: ``current`` with ``changes`` merged in (``current`` is not modified)."""
    if not changes:
        return current
    model = type(current)
    rules = strategies(model)
    values = dict(current.__dict__)
    for change in changes:
        values[change.field] = _merge_value(rules[change.field], values[change.field], change)
    return model.model_construct(_fields_set=current.model_fields_set, **values)


def _merge_value(strategy: Merge, current: Any, change: FieldChange) -> Any:
    kind, value = change.kind, change.value
    if kind == "sum":
        return (current if current is not None else 0) + value
    if kind == "max":
        return value if current is None or _is_nan(current) or value > current else current
    if kind == "min":
        return value if current is None or _is_nan(current) or value < current else current
    if kind == "append":
        return [*(current or []), *value]
    if kind == "union":
        if isinstance(current, (set, frozenset)):
            return type(current)(current | set(value))
        existing = list(current or [])
        return existing + [item for item in value if item not in existing]
    if kind == "update":
        merged = {k: v for k, v in (current or {}).items() if k not in value["delete"]}
        merged.update(value["set"])
        return merged
    if kind == "custom":
        assert strategy.function is not None
        return strategy.function(current, change.before, value)
    return value


def apply_json(
    model: type[BaseModel], current: dict[str, Any], changes: list[dict[str, Any]]
) -> dict[str, Any]:
    """Like :func:`apply`, on the JSON form of a context (used by out-of-process stores).

    ``custom`` merges run on validated values, so the user's function sees real types.
    """
    rules = strategies(model)
    merged = dict(current)
    for raw in changes:
        name, kind = raw["field"], raw["kind"]
        strategy = rules[name]
        if kind == "custom":
            field_type = model.model_fields[name].annotation
            typed = _validate_field(model, name, field_type, merged.get(name))
            before = _validate_field(model, name, field_type, raw.get("before"))
            after = _validate_field(model, name, field_type, raw["value"])
            merged[name] = to_jsonable_python(strategy.function(typed, before, after))  # type: ignore[misc]
            continue
        value = raw["value"]
        if kind == "union":
            existing = list(merged.get(name) or [])
            merged[name] = existing + [item for item in value if item not in existing]
        else:
            merged[name] = _merge_value(strategy, merged.get(name), FieldChange(name, kind, value))
    return merged


def _validate_field(model: type[BaseModel], name: str, annotation: Any, value: Any) -> Any:
    from pydantic import TypeAdapter

    return TypeAdapter(annotation).validate_python(value)


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)
