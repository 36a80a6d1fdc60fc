"""``CompositeNode``: a whole workflow used as one node of another."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from floxide.context import WorkflowCtx
from floxide.node import Node
from floxide.transition import Next

if TYPE_CHECKING:
    from floxide.workflow import Workflow

__all__ = ["CompositeNode"]


class CompositeNode(Node[Any, Any]):
    """Runs ``workflow`` to completion inside one step; its first output is this node's output.

    The inner run shares the outer run's cancellation and deadline. When both workflows
    have the same context type, the inner run starts from this step's context and its
    changes become this step's changes (merged like any step's).
    """

    workflow: Any

    async def process(self, ctx: WorkflowCtx[Any], input: Any) -> Next[Any]:
        inner: Workflow[Any, Any] = self.workflow
        shares_context = inner.context_type is not None and isinstance(ctx.store, inner.context_type)
        store = ctx.store if shares_context else inner.new_context()
        inner_ctx = WorkflowCtx(store, cancel_token=ctx.cancel_token)
        inner_ctx.deadline, inner_ctx.timeout = ctx.deadline, ctx.timeout
        result = await inner.execute(input, ctx=inner_ctx, run_id=f"{ctx.run_id}/{ctx.item_id}")
        if shares_context:
            ctx.store = result.context
        return Next(result.output)

    @property
    def name(self) -> str:
        return self._name or self.workflow.name.replace("-", "_")

    @property
    def input_type(self) -> Any:
        return self.workflow.input_type

    @property
    def output_type(self) -> Any:
        specs = self.workflow.graph.nodes.values()
        outputs = {s.output_type for s in specs if s.is_terminal}
        return outputs.pop() if len(outputs) == 1 else Any
