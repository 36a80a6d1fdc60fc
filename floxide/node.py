"""Nodes: the steps of a workflow.

Two ways to write one, with Floxide's meaning (typed input in, a ``Transition`` out):

* a decorated function (the ``node!`` macro's counterpart)::

      @node
      async def double(x: int) -> int:                 # or (ctx: WorkflowCtx[C], x: int)
          return x * 2

* a ``Node`` subclass, for nodes with configuration fields (validated by pydantic)::

      class Multiply(Node[int, int]):
          factor: int = 2

          async def process(self, ctx: WorkflowCtx[Any], x: int) -> Transition[int]:
              return Next(x * self.factor)

Input and output types are read from the annotations; the workflow checks at definition
that each edge's output type can feed the next node's input type. A node's name (the
function's name, or the class name in snake_case; change it with ``.named()``) identifies
it in the graph, in work items and in metrics.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Callable
from functools import cached_property
from typing import Any, Generic, Self, TypeVar, overload

from pydantic import BaseModel, ConfigDict, PrivateAttr

from floxide.context import WorkflowCtx
from floxide.typecheck import output_type_of, substitute, type_hints

__all__ = ["FunctionNode", "Node", "node"]

I = TypeVar("I")  # noqa: E741
O = TypeVar("O")  # noqa: E741

Invoke = Callable[[WorkflowCtx[Any], Any], Awaitable[Any] | Any]


class Node(BaseModel, Generic[I, O]):
    """One step of a workflow. Subclass it and implement :meth:`process`."""

    model_config = ConfigDict(arbitrary_types_allowed=True, ignored_types=(cached_property,))

    _name: str | None = PrivateAttr(default=None)

    async def process(self, ctx: WorkflowCtx[Any], input: I) -> Any:
        """Do the step's work; return a ``Transition`` or a plain value (meaning ``Next``)."""
        raise NotImplementedError(f"{type(self).__name__} must implement process()")

    @property
    def name(self) -> str:
        """The node's name in its workflow."""
        return self._name or _snake_case(type(self).__name__)

    def named(self, name: str) -> Self:
        """A copy of this node under another name (to use one node class twice in a graph)."""
        copy = self.model_copy()
        copy._name = name
        return copy

    @property
    def input_type(self) -> Any:
        """The type of the values this node accepts."""
        return substitute(_input_hint(type(self).process, skip=3), _type_arguments(type(self)))

    @property
    def output_type(self) -> Any:
        """The type of the values this node sends on."""
        return output_type_of(self.return_hint)

    @property
    def return_hint(self) -> Any:
        """The annotated return type of the node's step (``NextAll[...]`` marks a fan-out)."""
        return substitute(type_hints(type(self).process).get("return", Any), _type_arguments(type(self)))

    def invoker(self) -> Invoke:
        """The callable the engine awaits for each work item: ``(ctx, input)``."""
        return self.process

    def __eq__(self, other: object) -> bool:
        return self is other

    def __hash__(self) -> int:
        return id(self)

    def __repr__(self) -> str:
        return f"<node {self.name!r}>"


class FunctionNode(Node[Any, Any]):
    """A node made from a function by :func:`node`."""

    function: Callable[..., Any]
    takes_ctx: bool

    async def process(self, ctx: WorkflowCtx[Any], input: Any) -> Any:
        result = self.function(ctx, input) if self.takes_ctx else self.function(input)
        return await result if inspect.isawaitable(result) else result

    @property
    def name(self) -> str:
        return self._name or self.function.__name__

    @property
    def input_type(self) -> Any:
        return _input_hint(self.function, skip=2 if self.takes_ctx else 1)

    @property
    def return_hint(self) -> Any:
        return type_hints(self.function).get("return", Any)

    def invoker(self) -> Invoke:
        function = self.function
        if inspect.iscoroutinefunction(function):
            return function if self.takes_ctx else _drop_ctx(function)
        return self.process


def _drop_ctx(function: Callable[[Any], Any]) -> Invoke:
    def invoke(ctx: WorkflowCtx[Any], value: Any) -> Any:
        return function(value)

    return invoke


@overload
def node(function: Callable[..., Any], /) -> FunctionNode: ...
@overload
def node(*, name: str | None = None) -> Callable[[Callable[..., Any]], FunctionNode]: ...
def node(
    function: Callable[..., Any] | None = None, /, *, name: str | None = None
) -> FunctionNode | Callable[[Callable[..., Any]], FunctionNode]:
    """Make a node from a function taking ``(input)`` or ``(ctx, input)``; async or not."""

    def make(fn: Callable[..., Any]) -> FunctionNode:
        params = [
            p
            for p in inspect.signature(fn).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
        if len(params) not in (1, 2):
            raise TypeError(
                f"node function '{fn.__name__}' must take (input) or (ctx, input), "
                f"not {len(params)} positional parameters"
            )
        made = FunctionNode(function=fn, takes_ctx=len(params) == 2)
        if name:
            made._name = name
        return made

    return make(function) if function is not None else make


def _type_arguments(cls: type) -> dict[Any, Any]:
    """The type arguments of a parametrized generic node class (``BarNode[str]``: ``{S: str}``)."""
    mapping: dict[Any, Any] = {}
    for klass in reversed(cls.__mro__):
        meta = getattr(klass, "__pydantic_generic_metadata__", None)
        if not meta or meta.get("origin") is None or not meta.get("args"):
            continue
        parameters = meta["origin"].__pydantic_generic_metadata__.get("parameters", ())
        mapping.update(zip(parameters, meta["args"], strict=False))
    return mapping


def _input_hint(function: Callable[..., Any], *, skip: int) -> Any:
    params = list(inspect.signature(function).parameters)
    if len(params) < skip:
        return Any
    return type_hints(function).get(params[skip - 1], Any)


def _snake_case(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower().removesuffix("_node") or name.lower()
