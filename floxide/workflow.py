"""``Workflow``: a named, checked graph of nodes, and the ways to run it.

::

    workflow = Workflow(
        "orders",
        start=validate,
        context=OrderCtx,
        edges=[
            edge(validate, payment),
            edge(payment, allocate_stock),
            on_failure(payment, payment_failed),
            edge(allocate_stock, notify),
        ],
        retry={allocate_stock: RetryPolicy(max_attempts=3)},
    )
    output = await workflow.run(order)

Runs: :meth:`run` (the first terminal output), :meth:`execute` (every output and the final
context), :meth:`run_with_checkpoint` and :meth:`resume` (durable local runs). Distributed
runs use :meth:`start_distributed` and :meth:`step_distributed` through
:mod:`floxide.distributed`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, TypeAdapter, ValidationError

from floxide.checkpoint import CheckpointStore
from floxide.context import WorkflowCtx
from floxide.distributed.protocols import Backend
from floxide.errors import AlreadyCompleted, GraphError, InputError, NotStarted
from floxide.graph import Edge, Graph, compile_graph, edge_list, to_dot, to_mermaid
from floxide.limits import Limit, attach_limits
from floxide.merge import strategies
from floxide.node import Node
from floxide.retry import RetryPolicy
from floxide.runner import Progress, Runner, RunResult
from floxide.typecheck import concrete, describe

__all__ = ["Workflow"]

I = TypeVar("I")  # noqa: E741
O = TypeVar("O")  # noqa: E741


class Workflow(Generic[I, O]):
    """A named workflow graph, checked when it is defined (see :mod:`floxide.graph`).

    ``context`` is the pydantic model of the run's shared state (``None``: no state).
    ``retry`` and ``timeouts`` (seconds) attach a policy or a time limit to nodes;
    ``timeout`` limits each whole run; ``concurrency`` bounds the steps one local run executes
    at once; ``max_steps`` guards against endless loops; ``limits`` attach concurrency and
    rate limits to nodes (:mod:`floxide.limits`).
    """

    def __init__(
        self,
        name: str,
        *,
        start: Node[I, Any] | None,
        edges: Iterable[Edge] = (),
        context: type[BaseModel] | None = None,
        retry: Mapping[Node[Any, Any] | str, RetryPolicy] | None = None,
        timeouts: Mapping[Node[Any, Any] | str, float] | None = None,
        timeout: float | None = None,
        concurrency: int = 64,
        max_steps: int | None = None,
        limits: Mapping[Node[Any, Any] | str, Limit | Sequence[Limit]] | None = None,
    ) -> None:
        if not name or not name.replace("-", "").replace("_", "").replace(".", "").isalnum():
            raise GraphError(f"workflow name {name!r} must be letters, digits, '-', '_' or '.'")
        if concurrency < 1:
            raise GraphError(f"workflow '{name}': concurrency must be at least 1, got {concurrency}")
        if timeout is not None and timeout <= 0:
            raise GraphError(f"workflow '{name}': timeout must be positive, got {timeout}")
        self.name = name
        self.context_type = context
        if context is not None:
            if not (isinstance(context, type) and issubclass(context, BaseModel)):
                raise GraphError(f"workflow '{name}': context must be a pydantic model class")
            strategies(context)
        self.graph: Graph = compile_graph(
            name=name, start=start, edges=edges, retry=retry or {}, timeouts=timeouts or {}
        )
        attach_limits(name, self.graph, limits or {})
        self.timeout = timeout
        self.concurrency = concurrency
        self.max_steps = max_steps
        self._adapters: dict[str, TypeAdapter[Any]] = {}
        self.input_schema: dict[str, Any] = self._input_schema()
        """The JSON schema of the run's input: what the operator checks a WorkflowRun's input against."""

    # -- types and data at the boundaries --------------------------------------------------

    @property
    def start_node(self) -> str:
        """The name of the start node."""
        return self.graph.start

    @property
    def input_type(self) -> Any:
        """The type of the run's input (the start node's input)."""
        return self.graph.nodes[self.graph.start].input_type

    def _input_schema(self) -> dict[str, Any]:
        """The input's JSON schema; :class:`GraphError` if pydantic cannot write one (an empty
        schema would let any input through the operator's check)."""
        try:
            return TypeAdapter(concrete(self.input_type)).json_schema()
        except Exception as exc:  # pydantic's schema errors have no common base
            raise GraphError(
                f"workflow '{self.name}': no JSON schema for the input of start node '{self.graph.start}' "
                f"({self.input_type!r}): {exc}"
            ) from exc

    def validate_input(self, value: Any) -> I:
        """``value`` (JSON data) as the start node's input; :class:`InputError` names the field."""
        return self.load_input(self.graph.start, value)  # type: ignore[no-any-return]

    def load_input(self, node: str, value: Any, *, python: bool = False) -> Any:
        """``value`` validated as ``node``'s input."""
        adapter = self._adapters.get(node)
        if adapter is None:
            adapter = self._adapters[node] = TypeAdapter(concrete(self.graph.nodes[node].input_type))
        try:
            return adapter.validate_python(value)
        except ValidationError as exc:
            raise InputError(_explain(f"input of node '{node}'", exc)) from None

    def load_context(self, data: dict[str, Any] | None) -> Any:
        """The context model from its JSON form (``None`` without a context type)."""
        if self.context_type is None:
            return None
        try:
            return self.context_type.model_validate(data or {})
        except ValidationError as exc:
            raise InputError(_explain(f"context {self.context_type.__name__}", exc)) from None

    def dump_context(self, context: Any) -> dict[str, Any] | None:
        """The JSON form of a context."""
        return None if context is None else context.model_dump(mode="json")

    def new_context(self) -> Any:
        """A fresh context with the model's defaults."""
        return None if self.context_type is None else self.context_type()

    # -- local runs ---------------------------------------------------------------------------

    async def run(self, input: I, *, ctx: WorkflowCtx[Any] | None = None) -> O:
        """Run locally and return the first terminal output.

        With a caller's ``ctx``, the run starts from ``ctx.store`` and, when it ends,
        ``ctx.store`` is the run's final context (see :meth:`execute`).
        """
        return (await self.execute(input, ctx=ctx)).output  # type: ignore[no-any-return]

    async def execute(
        self,
        input: I,
        *,
        ctx: WorkflowCtx[Any] | None = None,
        run_id: str | None = None,
        on_progress: Callable[[Progress], None] | None = None,
    ) -> RunResult:
        """Run locally; the result has every output and the final context.

        The run starts from ``ctx.store`` (the model's defaults without a ``ctx`` or with
        ``store=None``). The object given is never modified: each step works on its own copy
        and the run merges the steps' changes field by field into a new context. When the run
        ends — completed, failed, cancelled or timed out — the caller's ``ctx.store`` is set to
        the run's context at that point (its last committed step), the same object as
        ``RunResult.context`` on success. A ``ctx`` shared by concurrent runs ends with the
        context of the run that ended last. A node that runs another workflow with its own
        step ``ctx`` thus gets the nested run's changes as its own (merged like any step's).
        """
        prepared = self._prepare(ctx)
        runner = Runner.start(self, prepared, run_id or uuid.uuid4().hex, input, on_progress=on_progress)
        return await _drive(runner, ctx)

    async def run_with_checkpoint(
        self,
        input: I,
        *,
        store: CheckpointStore,
        run_id: str,
        ctx: WorkflowCtx[Any] | None = None,
        on_progress: Callable[[Progress], None] | None = None,
    ) -> O:
        """Run durably: the state is saved after every step under ``run_id``.

        If ``run_id`` already has a checkpoint, the run continues from it and ``input`` is
        ignored; a completed run returns its recorded output.

        A caller's ``ctx`` ends as with :meth:`execute`: ``ctx.store`` is the run's final
        context (for a run that had already completed, its recorded context). A continued
        run starts from its checkpoint's context, not from ``ctx.store`` (see :meth:`resume`).
        """
        existing = await store.load(run_id)
        if existing is not None:
            if existing.status == "completed":
                if ctx is not None:
                    ctx.store = self.load_context(existing.context)
                return self.load_output(existing.outputs[0].node, existing.outputs[0].value)  # type: ignore[no-any-return]
            return await self.resume(store=store, run_id=run_id, ctx=ctx, on_progress=on_progress)
        prepared = self._prepare(ctx)
        runner = Runner.start(self, prepared, run_id, input, store=store, on_progress=on_progress)
        return (await _drive(runner, ctx)).output  # type: ignore[no-any-return]

    async def resume(
        self,
        *,
        store: CheckpointStore,
        run_id: str,
        ctx: WorkflowCtx[Any] | None = None,
        on_progress: Callable[[Progress], None] | None = None,
    ) -> O:
        """Continue a checkpointed run from its last committed step.

        The run continues with its checkpoint's context; a caller's ``ctx`` gives the
        cancellation and deadline, its ``store`` is not used as input. When the run ends,
        ``ctx.store`` is the run's final context, as with :meth:`execute`.
        """
        checkpoint = await store.load(run_id)
        if checkpoint is None:
            raise NotStarted(f"run '{run_id}' has no checkpoint: it was never started with this store")
        if checkpoint.workflow != self.name:
            raise NotStarted(f"run '{run_id}' belongs to workflow '{checkpoint.workflow}', not '{self.name}'")
        if checkpoint.status == "completed":
            raise AlreadyCompleted(f"run '{run_id}' already completed; its output is recorded")
        prepared = self._prepare(ctx, keep_store=False)
        runner = Runner.restore(self, prepared, checkpoint, store=store, on_progress=on_progress)
        return (await _drive(runner, ctx)).output  # type: ignore[no-any-return]

    def load_output(self, node: str, value: Any) -> Any:
        """A recorded output, typed again as ``node``'s output where possible."""
        try:
            return TypeAdapter(concrete(self.graph.nodes[node].output_type)).validate_python(value)
        except (ValidationError, KeyError):
            return value

    def _prepare(self, ctx: WorkflowCtx[Any] | None, *, keep_store: bool = True) -> WorkflowCtx[Any]:
        if ctx is None:
            ctx = WorkflowCtx(self.new_context() if keep_store else None, timeout=self.timeout)
        elif ctx.store is None and keep_store:
            ctx.store = self.new_context()
        if ctx.deadline is None and self.timeout is not None:
            ctx = WorkflowCtx(ctx.store, timeout=self.timeout, cancel_token=ctx.cancel_token)
        if (
            self.context_type is not None
            and ctx.store is not None
            and not isinstance(ctx.store, self.context_type)
        ):
            raise InputError(
                f"workflow '{self.name}' expects a {self.context_type.__name__} context, "
                f"got {type(ctx.store).__name__}"
            )
        return ctx

    # -- distributed runs ----------------------------------------------------------------------

    async def start_distributed(
        self,
        backend: Backend,
        input: I,
        *,
        run_id: str | None = None,
        context: Any = None,
        idempotency_key: str | None = None,
        priority: str = "normal",
    ) -> str:
        """Seed a distributed run in ``backend``; returns the run id. Idempotent per ``run_id``
        and per ``idempotency_key`` (a second call under a key returns the first run's id).
        ``priority``: ``high``, ``normal`` or ``low`` (:mod:`floxide.distributed.priority`)."""
        from floxide.distributed.execution import start_run

        return await start_run(
            self,
            backend,
            input,
            run_id=run_id,
            context=context,
            idempotency_key=idempotency_key,
            priority=priority,
        )

    async def step_distributed(self, backend: Backend, worker_id: str, *, block: float = 0.0) -> str | None:
        """Claim and process one work item from ``backend``; ``None`` when there was none."""
        from floxide.distributed.worker import DistributedWorker

        return await DistributedWorker(self, backend, worker_id=worker_id).run_once(block=block)

    # -- graph export -------------------------------------------------------------------------

    def to_dot(self) -> str:
        """The graph in Graphviz DOT."""
        return to_dot(self.name, self.graph)

    def to_mermaid(self) -> str:
        """The graph as a Mermaid flowchart."""
        return to_mermaid(self.graph)

    def describe(self) -> dict[str, Any]:
        """Nodes, edges, start node and input schema: the graph metadata workers publish."""
        return {
            "name": self.name,
            "startNode": self.graph.start,
            "nodes": [
                {"name": s.name, "input": describe(s.input_type), "output": describe(s.output_type)}
                for s in self.graph.nodes.values()
            ],
            "edges": [
                {"from": a, "to": b, "kind": kind, **({"label": label} if label else {})}
                for a, b, kind, label in edge_list(self.graph)
            ],
            "inputSchema": self.input_schema,
        }

    def __repr__(self) -> str:
        return f"<Workflow {self.name!r}: {len(self.graph.nodes)} nodes, start '{self.graph.start}'>"


async def _drive(runner: Runner, caller: WorkflowCtx[Any] | None) -> RunResult:
    """Run ``runner`` to the end; then the caller's ``ctx.store`` is the run's context."""
    try:
        return await runner.run()
    finally:
        if caller is not None:
            caller.store = runner.context


def _explain(what: str, exc: ValidationError) -> str:
    parts = []
    for error in exc.errors()[:3]:
        location = ".".join(str(p) for p in error["loc"]) or "(root)"
        parts.append(f"{location}: {error['msg']} (got {error.get('input')!r:.80})")
    more = f" (+{exc.error_count() - 3} more)" if exc.error_count() > 3 else ""
    return f"{what}: " + "; ".join(parts) + more
