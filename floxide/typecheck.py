"""Type introspection for graph validation: can a node's output feed another node's input?

The check is deliberately permissive where Python typing cannot decide (``Any``, type
variables, protocols, forward references): a definition is refused only when the types
certainly do not fit.
"""

from __future__ import annotations

import enum
import types
import typing
from collections.abc import Callable
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from floxide.transition import Abort, Hold, Next, NextAll

__all__ = ["concrete", "describe", "fans_out", "is_assignable", "output_type_of", "substitute", "type_hints"]

_UNIONS = (Union, types.UnionType)
_NUMERIC_WIDENING = {float: (int,), complex: (int, float)}


def type_hints(fn: Callable[..., Any]) -> dict[str, Any]:
    """Resolved annotations of ``fn``; unresolvable ones come back as ``Any``."""
    try:
        return typing.get_type_hints(fn, include_extras=True)  # keep Annotated constraints
    except Exception:
        raw = getattr(fn, "__annotations__", {})
        return {name: (Any if isinstance(hint, str) else hint) for name, hint in raw.items()}


def substitute(tp: Any, mapping: dict[Any, Any]) -> Any:
    """``tp`` with its type variables replaced as ``mapping`` says (``list[T]`` -> ``list[int]``)."""
    if isinstance(tp, typing.TypeVar):
        return mapping.get(tp, tp)
    parameters = getattr(tp, "__parameters__", ())
    if not parameters or not hasattr(tp, "__getitem__"):
        return tp
    try:
        return tp[tuple(mapping.get(p, p) for p in parameters)]
    except TypeError:
        return tp


def concrete(tp: Any) -> Any:
    """``tp`` with any type variable left open read as ``Any`` (what validation can use)."""
    if isinstance(tp, typing.TypeVar):
        return Any
    return substitute(tp, dict.fromkeys(getattr(tp, "__parameters__", ()), Any))


def fans_out(return_hint: Any) -> bool:
    """Whether a return annotation says the node may emit ``NextAll``."""
    if return_hint is NextAll or get_origin(return_hint) is NextAll:
        return True
    return get_origin(return_hint) in _UNIONS and any(fans_out(arg) for arg in get_args(return_hint))


def output_type_of(return_hint: Any) -> Any:
    """The type of the values a node sends on, from its return annotation.

    ``Transition[int]``, ``Next[int]``, ``NextAll[int]`` and plain ``int`` all give ``int``;
    ``Hold``/``Abort`` members are ignored.
    """
    if return_hint is None or return_hint is type(None):
        return type(None)
    if get_origin(return_hint) in _UNIONS:
        members = [output_type_of(arg) for arg in get_args(return_hint) if arg not in (Hold, Abort)]
        members = [m for m in members if m is not _NOTHING]
        if not members:
            return Any
        return members[0] if len(members) == 1 else Union[tuple(members)]  # noqa: UP007
    if return_hint in (Hold, Abort):
        return _NOTHING
    origin = get_origin(return_hint)
    if origin in (Next, NextAll):
        args = get_args(return_hint)
        return args[0] if args else Any
    if return_hint in (Next, NextAll):
        return Any
    return return_hint


class _Nothing:
    """Marker for a return type that sends nothing on (``Hold``/``Abort`` only)."""


_NOTHING: Any = _Nothing


def is_assignable(source: Any, target: Any) -> bool:
    """True unless a value of type ``source`` can certainly not be passed as ``target``."""
    source, target = _strip_annotated(source), _strip_annotated(target)
    if _is_open(source) or _is_open(target) or source is _NOTHING:
        return True
    if get_origin(source) in _UNIONS:
        return all(is_assignable(arg, target) for arg in get_args(source))
    if get_origin(target) in _UNIONS:
        return any(is_assignable(source, arg) for arg in get_args(target))
    if get_origin(source) is Literal:
        return all(_value_fits(value, target) for value in get_args(source))
    if get_origin(target) is Literal:
        return False
    src_origin, tgt_origin = get_origin(source) or source, get_origin(target) or target
    if not (isinstance(src_origin, type) and isinstance(tgt_origin, type)):
        return True
    if not _class_fits(src_origin, tgt_origin):
        return False
    src_args, tgt_args = get_args(source), get_args(target)
    if not src_args or not tgt_args or len(src_args) != len(tgt_args) or Ellipsis in tgt_args:
        return True
    return all(is_assignable(s, t) for s, t in zip(src_args, tgt_args, strict=True))


def describe(tp: Any) -> str:
    """A short, readable name for a type (``list[int]``, ``Order``, ``int | None``)."""
    tp = _strip_annotated(tp)
    if tp is Any:
        return "Any"
    if tp is type(None):
        return "None"
    if isinstance(tp, type) and not get_args(tp):
        return tp.__qualname__
    return repr(tp).replace("typing.", "")


def _strip_annotated(tp: Any) -> Any:
    return get_args(tp)[0] if get_origin(tp) is Annotated else tp


def _is_open(tp: Any) -> bool:
    if tp is Any or tp is object or isinstance(tp, (typing.TypeVar, str, typing.ForwardRef)):
        return True
    return bool(getattr(tp, "_is_protocol", False))


def _class_fits(source: type, target: type) -> bool:
    try:
        if issubclass(source, target):
            return True
    except TypeError:
        return True
    return source in _NUMERIC_WIDENING.get(target, ())


def _value_fits(value: Any, target: Any) -> bool:
    if get_origin(target) is Literal:
        return value in get_args(target)
    if isinstance(value, enum.Enum) or isinstance(target, type):
        return is_assignable(type(value), target)
    return True
