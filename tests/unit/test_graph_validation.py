"""Graph validation when a workflow is defined, with the exact messages.

Cases:
* missing start node; a start that is not a node;
* unknown node named in ``retry`` or ``timeouts`` (by name, or a node object not in the graph);
* unreachable nodes (all listed, sorted);
* type mismatches naming both nodes and both types: sequence, route arm with payload,
  join (which sends a list), fallback (which sends the input), ``Failure[...]`` fallback;
* compatible types pass: subclasses, int to float, Optional and unions, Any, type variables;
* two different nodes with one name; a node with both ``route`` and other success edges;
  two ``on_failure`` declarations; a route without cases;
* no terminal node;
* things that are not nodes or edges; bad names, concurrency, timeouts; context models;
* node functions need one or two positional parameters.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import pytest
from pydantic import BaseModel

from floxide import (
    Failure,
    GraphError,
    Node,
    RetryPolicy,
    Workflow,
    WorkflowCtx,
    edge,
    join,
    node,
    on_failure,
    otherwise,
    route,
    when,
)


@node
async def a(x: int) -> int:
    return x


@node
async def b(x: int) -> int:
    return x


@node
async def text(x: str) -> str:
    return x


def message(**kwargs: Any) -> str:
    with pytest.raises(GraphError) as info:
        Workflow("w", **kwargs)
    return str(info.value)


def test_missing_start() -> None:
    assert message(start=None) == "workflow 'w' has no start node"
    assert message(start=42) == "workflow 'w': start must be a node, not int"


def test_unknown_nodes_in_retry_and_timeouts() -> None:
    policy = RetryPolicy()
    assert (
        message(start=a, edges=[edge(a, b)], retry={"c": policy})
        == "workflow 'w': retry names unknown node 'c'"
    )
    assert (
        message(start=a, edges=[edge(a, b)], timeouts={"c": 1.0})
        == "workflow 'w': timeouts names unknown node 'c'"
    )
    stranger = b.named("a")  # named like a node of the graph, but another object
    assert message(start=a, retry={stranger: policy}) == "workflow 'w': retry names unknown node 'a'"
    assert message(start=a, timeouts={a: 0}) == "workflow 'w': timeout of node 'a' must be positive"


def test_unreachable_nodes() -> None:
    c = b.named("c")
    assert message(start=a, edges=[edge(c, b)]) == (
        "workflow 'w': node(s) 'b', 'c' cannot be reached from the start node 'a'"
    )


def test_sequence_type_mismatch() -> None:
    assert message(start=a, edges=[edge(a, text)]) == (
        "workflow 'w': edge 'a' -> 'text': 'a' sends int but 'text' takes str"
    )


class Big(BaseModel):
    value: int


def test_route_type_mismatch() -> None:
    @node
    async def classify(x: int) -> Big:
        return Big(value=x)

    assert message(start=classify, edges=[route(classify, when(Big, text, payload="value"))]) == (
        "workflow 'w': edge 'classify' -> 'text': 'classify' sends int but 'text' takes str"
    )
    assert message(start=classify, edges=[route(classify, when(Big, a))]) == (
        "workflow 'w': edge 'classify' -> 'a': 'classify' sends Big but 'a' takes int"
    )


def test_join_type_mismatch() -> None:
    assert (
        message(start=a, edges=[join(a, b)])
        == "workflow 'w': edge 'a' -> 'b': 'a' sends list[int] but 'b' takes int"
    )


def test_fallback_type_mismatch() -> None:
    assert message(start=a, edges=[on_failure(a, text)]) == (
        "workflow 'w': fallback 'a' -> 'text': 'a' sends int but 'text' takes str"
    )

    @node
    async def wants_text_failure(f: Failure[str]) -> str:
        return f.error

    assert message(start=a, edges=[on_failure(a, wants_text_failure)]) == (
        "workflow 'w': fallback 'a' -> 'wants_text_failure': 'a' sends int but 'wants_text_failure' takes "
        "Failure[str]"
    )


class Animal(BaseModel):
    name: str


class Dog(Animal):
    pass


T = TypeVar("T")


def test_compatible_types_pass() -> None:
    @node
    async def dog(x: int) -> Dog:
        return Dog(name=str(x))

    @node
    async def animal(x: Animal) -> float:
        return 1.0

    @node
    async def number(x: float) -> int | None:
        return None

    @node
    async def maybe(x: int | None) -> Any:
        return x

    @node
    async def anything(x: T) -> T:
        return x

    Workflow(
        "ok",
        start=dog,
        edges=[edge(dog, animal), edge(animal, number), edge(number, maybe), edge(maybe, anything)],
    )
    Workflow("ok", start=a, edges=[edge(a, number)])


def test_duplicate_names() -> None:
    assert message(start=a, edges=[edge(a, b.named("a"))]) == (
        "workflow 'w': two different nodes are named 'a'; rename one with .named()"
    )


def test_conflicting_edge_declarations() -> None:
    assert message(start=a, edges=[edge(a, b), route(a, otherwise(b))]) == (
        "workflow 'w': node 'a' has both route() and other success edges"
    )
    assert message(start=a, edges=[route(a, otherwise(b)), edge(a, b)]) == (
        "workflow 'w': node 'a' has both route() and other success edges"
    )
    assert message(start=a, edges=[on_failure(a, b), on_failure(a, b)]) == (
        "workflow 'w': node 'a' has two on_failure() declarations"
    )
    with pytest.raises(GraphError, match="route from 'a' needs at least one case"):
        route(a)


def test_no_terminal() -> None:
    assert message(start=a, edges=[edge(a, b), edge(b, a)]) == (
        "workflow 'w' has no terminal node: every node has successors"
    )
    Workflow("loop-with-exit", start=a, edges=[route(a, when(lambda x: x < 3, a), otherwise())])


def test_not_nodes_or_edges() -> None:
    async def plain(x: int) -> int:
        return x

    assert message(start=a, edges=[edge(a, plain)]) == (  # type: ignore[arg-type]
        f"workflow 'w': {plain!r} is not a node (decorate functions with @node)"
    )
    assert message(start=a, edges=[(a, b)]) == (
        "workflow 'w': edges must be made with edge(), route(), on_failure() or join()"
    )


def test_workflow_settings() -> None:
    Workflow("one-node_workflow.v2", start=a)
    with pytest.raises(GraphError, match="workflow name 'two words' must be letters"):
        Workflow("two words", start=a)
    with pytest.raises(GraphError, match="concurrency must be at least 1, got 0"):
        Workflow("w", start=a, concurrency=0)
    with pytest.raises(GraphError, match="timeout must be positive, got -1"):
        Workflow("w", start=a, timeout=-1)
    with pytest.raises(GraphError, match="context must be a pydantic model class"):
        Workflow("w", start=a, context=dict)  # type: ignore[arg-type]


def test_node_function_signatures() -> None:
    with pytest.raises(
        TypeError, match="node function 'three' must take \\(input\\) or \\(ctx, input\\), not 3"
    ):

        @node
        async def three(ctx: WorkflowCtx[Any], x: int, y: int) -> int:
            return x


def test_node_subclass_types() -> None:
    class Scale(Node[int, float]):
        factor: float = 2.0

        async def process(self, ctx: WorkflowCtx[Any], value: int) -> float:
            return value * self.factor

    scale = Scale()
    assert (scale.name, scale.input_type, scale.output_type) == ("scale", int, float)
    assert message(start=scale, edges=[edge(scale, a)]) == (
        "workflow 'w': edge 'scale' -> 'a': 'scale' sends float but 'a' takes int"
    )
    Workflow("ok", start=a, edges=[edge(a, scale)])


@node
async def call_it(fn: Callable[[], int]) -> int:
    return fn()


def test_an_input_without_a_json_schema_is_refused_at_definition() -> None:
    """An empty schema would let any input through the operator's check: refuse the workflow."""
    with pytest.raises(GraphError, match=r"no JSON schema for the input of start node 'call_it'"):
        Workflow("callables", start=call_it)
