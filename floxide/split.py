"""``SplitNode``: turn one input into many work items with a plain function."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, get_args

from floxide.context import WorkflowCtx
from floxide.node import Node
from floxide.transition import NextAll
from floxide.typecheck import type_hints

__all__ = ["SplitNode"]


class SplitNode(Node[Any, Any]):
    """Fans out ``splitter(input)``: one work item per element (``NextAll``)."""

    splitter: Callable[[Any], Iterable[Any]]

    async def process(self, ctx: WorkflowCtx[Any], input: Any) -> NextAll[Any]:
        return NextAll(list(self.splitter(input)))

    @property
    def name(self) -> str:
        return self._name or getattr(self.splitter, "__name__", "split").replace("<lambda>", "split")

    @property
    def input_type(self) -> Any:
        hints = type_hints(self.splitter)
        params = [k for k in hints if k != "return"]
        return hints[params[0]] if params else Any

    @property
    def output_type(self) -> Any:
        args = get_args(type_hints(self.splitter).get("return", Any))
        return args[0] if args else Any
