"""Edges and the validated graph they form.

Edge forms (Floxide's, in Python):

* ``edge(a, b)`` — sequence: ``b`` receives ``a``'s output; ``edge(a, b, c)`` fans out to both.
* ``route(a, when(Big, big), when(Small, small), otherwise(other))`` — conditional routing on
  the output's variant: a class (``isinstance``), an enum member or constant (equality), or a
  predicate; optional ``guard``; ``payload`` picks what the targets receive (an attribute
  name or a function); a case without targets makes the value the run's output.
* ``on_failure(a, f)`` — fallback: when ``a`` fails (after its retries), ``f`` receives
  ``a``'s original input, or a :class:`Failure` with the input and the error if ``f``'s
  input type is ``Failure[...]``.
* ``join(a, j)`` — fan-in: ``j`` receives the list of ``a``'s outputs from every branch of
  the enclosing fan-out, in branch order, once all of them have finished.

A node without success edges is terminal: its output is an output of the run.
The graph is checked when the workflow is defined (see :func:`compile_graph`).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar, get_origin

from pydantic import BaseModel

from floxide.errors import GraphError
from floxide.node import Node
from floxide.typecheck import describe, fans_out, is_assignable, type_hints

__all__ = [
    "Case",
    "Edge",
    "Failure",
    "Graph",
    "NodeSpec",
    "compile_graph",
    "edge",
    "join",
    "on_failure",
    "otherwise",
    "route",
    "when",
]

I = TypeVar("I")  # noqa: E741


class Failure(BaseModel, Generic[I]):
    """What a fallback node receives when its input type is ``Failure[...]``."""

    input: I
    node: str
    error_type: str
    error: str
    attempts: int = 1


@dataclass(frozen=True, slots=True)
class Case:
    """One arm of a :func:`route`."""

    condition: Any
    targets: tuple[Node[Any, Any], ...]
    guard: Callable[[Any], bool] | None = None
    payload: str | Callable[[Any], Any] | None = None
    label: str = ""

    def matches(self, value: Any) -> bool:
        """Whether ``value`` takes this arm."""
        cond = self.condition
        if cond is _OTHERWISE:
            hit = True
        elif isinstance(cond, type):
            hit = isinstance(value, cond)
        elif isinstance(cond, enum.Enum) or not callable(cond):
            hit = value == cond
        else:
            hit = bool(cond(value))
        return hit and (self.guard is None or bool(self.guard(value)))

    def extract(self, value: Any) -> Any:
        """What the arm's targets receive."""
        if self.payload is None:
            return value
        if isinstance(self.payload, str):
            return getattr(value, self.payload)
        return self.payload(value)


_OTHERWISE = object()


@dataclass(frozen=True, slots=True)
class Edge:
    """A declared edge; build it with :func:`edge`, :func:`route`, :func:`on_failure` or :func:`join`."""

    kind: str
    sources: tuple[Node[Any, Any], ...]
    targets: tuple[Node[Any, Any], ...] = ()
    cases: tuple[Case, ...] = ()


def edge(source: Node[Any, Any], *targets: Node[Any, Any]) -> Edge:
    """``source``'s output goes to each of ``targets`` (none: ``source`` is terminal)."""
    return Edge("sequence", (source,), tuple(targets))


def route(source: Node[Any, Any], *cases: Case) -> Edge:
    """``source``'s output goes to the targets of the first matching case."""
    if not cases:
        raise GraphError(f"route from '{source.name}' needs at least one case")
    return Edge("route", (source,), (), tuple(cases))


def when(
    condition: Any,
    *targets: Node[Any, Any],
    guard: Callable[[Any], bool] | None = None,
    payload: str | Callable[[Any], Any] | None = None,
    label: str | None = None,
) -> Case:
    """A routing case: a class, an enum member or constant, or a predicate on the output."""
    return Case(condition, tuple(targets), guard, payload, label or _label(condition))


def otherwise(*targets: Node[Any, Any], payload: str | Callable[[Any], Any] | None = None) -> Case:
    """The case taken when no earlier case matches."""
    return Case(_OTHERWISE, tuple(targets), None, payload, "otherwise")


def on_failure(source: Node[Any, Any], *targets: Node[Any, Any]) -> Edge:
    """When ``source`` fails for good, ``targets`` receive its input (or a :class:`Failure`)."""
    return Edge("fallback", (source,), tuple(targets))


def join(sources: Node[Any, Any] | Sequence[Node[Any, Any]], target: Node[Any, Any]) -> Edge:
    """``target`` receives the list of the sources' outputs of a whole fan-out."""
    many = tuple(sources) if isinstance(sources, Sequence) else (sources,)
    return Edge("join", many, (target,))


def _label(condition: Any) -> str:
    if isinstance(condition, type):
        return condition.__name__
    if isinstance(condition, enum.Enum):
        return condition.name
    if callable(condition):
        return getattr(condition, "__name__", "when").replace("<lambda>", "when")
    return repr(condition)


@dataclass(slots=True)
class NodeSpec:
    """A node as the engine runs it: its edges resolved to names."""

    node: Node[Any, Any]
    name: str
    invoke: Callable[..., Any]
    input_type: Any
    output_type: Any
    targets: tuple[str, ...] = ()
    join_targets: frozenset[str] = frozenset()
    cases: tuple[tuple[Case, tuple[str, ...]], ...] = ()
    fallbacks: tuple[str, ...] = ()
    wants_failure: frozenset[str] = frozenset()
    retry: Any = None
    timeout: float | None = None
    frame_joins: tuple[str, ...] = ()
    limits: tuple[Any, ...] = ()

    @property
    def successors(self) -> tuple[str, ...]:
        """Every node this one's success or failure edges lead to."""
        return (*self.targets, *(t for _, ts in self.cases for t in ts), *self.fallbacks)

    @property
    def is_terminal(self) -> bool:
        """No success edges: the output is an output of the run."""
        return not self.targets and not self.cases


@dataclass(slots=True)
class Graph:
    """The checked graph: node specs by name, the start node, and the declared edges."""

    start: str
    nodes: dict[str, NodeSpec]
    edges: tuple[Edge, ...] = field(default_factory=tuple)


def compile_graph(
    *,
    name: str,
    start: Node[Any, Any] | None,
    edges: Iterable[Edge],
    retry: Mapping[Node[Any, Any] | str, Any],
    timeouts: Mapping[Node[Any, Any] | str, float],
) -> Graph:
    """Resolve and check a definition; every problem is a :class:`GraphError` naming the nodes."""
    if start is None:
        raise GraphError(f"workflow '{name}' has no start node")
    if not isinstance(start, Node):
        raise GraphError(f"workflow '{name}': start must be a node, not {type(start).__name__}")
    declared = tuple(edges)
    nodes = _collect_nodes(name, start, declared)
    specs = {
        n: NodeSpec(node, n, node.invoker(), node.input_type, node.output_type) for n, node in nodes.items()
    }
    for item in declared:
        _attach(name, specs, item)
    _check_reachable(name, start.name, specs)
    for key, policy in retry.items():
        specs[_known(name, specs, key, "retry")].retry = policy
    for key, seconds in timeouts.items():
        if seconds <= 0:
            raise GraphError(f"workflow '{name}': timeout of node '{_key_name(key)}' must be positive")
        specs[_known(name, specs, key, "timeouts")].timeout = seconds
    for spec in specs.values():
        if _opens_frames(spec):
            spec.frame_joins = _frame_joins(specs, spec.name, set())
    if not any(s.is_terminal or any(not t for _, t in s.cases) for s in specs.values()):
        raise GraphError(f"workflow '{name}' has no terminal node: every node has successors")
    return Graph(start.name, specs, declared)


def _collect_nodes(name: str, start: Node[Any, Any], edges: tuple[Edge, ...]) -> dict[str, Node[Any, Any]]:
    nodes: dict[str, Node[Any, Any]] = {}
    everything: list[Node[Any, Any]] = [start]
    for item in edges:
        if not isinstance(item, Edge):
            raise GraphError(
                f"workflow '{name}': edges must be made with edge(), route(), on_failure() or join()"
            )
        everything += [*item.sources, *item.targets, *(t for c in item.cases for t in c.targets)]
    for node in everything:
        if not isinstance(node, Node):
            raise GraphError(f"workflow '{name}': {node!r} is not a node (decorate functions with @node)")
        seen = nodes.setdefault(node.name, node)
        if seen is not node:
            raise GraphError(
                f"workflow '{name}': two different nodes are named '{node.name}'; rename one with .named()"
            )
    return nodes


def _attach(name: str, specs: dict[str, NodeSpec], item: Edge) -> None:
    for source in item.sources:
        spec = specs[source.name]
        if item.kind == "fallback":
            if spec.fallbacks:
                raise GraphError(f"workflow '{name}': node '{spec.name}' has two on_failure() declarations")
            spec.fallbacks = tuple(t.name for t in item.targets)
            spec.wants_failure = frozenset(t.name for t in item.targets if _wants_failure(specs[t.name]))
            for target in item.targets:
                _check_fallback(name, spec, specs[target.name])
        elif item.kind == "route":
            if spec.cases or spec.targets:
                raise GraphError(
                    f"workflow '{name}': node '{spec.name}' has both route() and other success edges"
                )
            spec.cases = tuple((case, tuple(t.name for t in case.targets)) for case in item.cases)
            for case in item.cases:
                for target in case.targets:
                    _check_types(name, spec, specs[target.name], _case_type(spec.output_type, case))
        else:
            if spec.cases:
                raise GraphError(
                    f"workflow '{name}': node '{spec.name}' has both route() and other success edges"
                )
            new = tuple(t.name for t in item.targets if t.name not in spec.targets)
            spec.targets += new
            if item.kind == "join":
                spec.join_targets |= frozenset(new)
            for target in item.targets:
                produced = list[spec.output_type] if item.kind == "join" else spec.output_type  # type: ignore[name-defined]
                _check_types(name, spec, specs[target.name], produced)


def _wants_failure(spec: NodeSpec) -> bool:
    origin = get_origin(spec.input_type) or spec.input_type
    return isinstance(origin, type) and issubclass(origin, Failure)


def _check_fallback(name: str, source: NodeSpec, target: NodeSpec) -> None:
    if _wants_failure(target):
        args = getattr(target.input_type, "__pydantic_generic_metadata__", {}).get("args", ())
        wanted = args[0] if args else Any
        if not is_assignable(source.input_type, wanted):
            _mismatch(name, source, target, source.input_type, target.input_type, "fallback")
        return
    _check_types(name, source, target, source.input_type, what="fallback")


def _check_types(name: str, source: NodeSpec, target: NodeSpec, produced: Any, *, what: str = "edge") -> None:
    if not is_assignable(produced, target.input_type):
        _mismatch(name, source, target, produced, target.input_type, what)


def _mismatch(name: str, source: NodeSpec, target: NodeSpec, produced: Any, wanted: Any, what: str) -> None:
    raise GraphError(
        f"workflow '{name}': {what} '{source.name}' -> '{target.name}': '{source.name}' sends "
        f"{describe(produced)} but '{target.name}' takes {describe(wanted)}"
    )


def _case_type(output_type: Any, case: Case) -> Any:
    variant = case.condition if isinstance(case.condition, type) else output_type
    if case.payload is None:
        return variant
    if isinstance(case.payload, str):
        return type_hints(variant).get(case.payload, Any) if isinstance(variant, type) else Any
    return type_hints(case.payload).get("return", Any)


def _opens_frames(spec: NodeSpec) -> bool:
    """Whether the node's steps can open a fan-out frame (``NextAll``, or several targets)."""
    return fans_out(spec.node.return_hint) or len(spec.targets) > 1 or any(len(t) > 1 for _, t in spec.cases)


def _frame_joins(specs: dict[str, NodeSpec], opener: str, seen: set[str]) -> tuple[str, ...]:
    """The joins that close the fan-out frame a step of ``opener`` opens.

    When the frame ends, each of them fires, with ``[]`` if no branch reached it (an empty
    ``NextAll``, or branches that all ended elsewhere). Found by following the branches'
    edges up to a join; a node that fans out again contributes the joins after its own.
    """
    found: list[str] = []
    todo = [t for t in specs[opener].successors if t not in specs[opener].join_targets]
    found += [t for t in specs[opener].targets if t in specs[opener].join_targets]
    visited: set[str] = set()
    while todo:
        name = todo.pop()
        if name in visited or name in seen:
            continue
        visited.add(name)
        spec = specs[name]
        found += [t for t in spec.targets if t in spec.join_targets]
        plain = [t for t in spec.successors if t not in spec.join_targets]
        if _opens_frames(spec):
            for inner in _frame_joins(specs, name, seen | {opener}):
                todo.extend(t for t in specs[inner].successors if t not in specs[inner].join_targets)
                found += [t for t in specs[inner].targets if t in specs[inner].join_targets]
        else:
            todo.extend(plain)
    return tuple(sorted(set(found)))


def _check_reachable(name: str, start: str, specs: dict[str, NodeSpec]) -> None:
    seen, todo = {start}, [start]
    while todo:
        spec = specs[todo.pop()]
        nexts = [*spec.targets, *spec.fallbacks, *(t for _, ts in spec.cases for t in ts)]
        for target in nexts:
            if target not in seen:
                seen.add(target)
                todo.append(target)
    unreachable = sorted(set(specs) - seen)
    if unreachable:
        listed = ", ".join(f"'{n}'" for n in unreachable)
        raise GraphError(
            f"workflow '{name}': node(s) {listed} cannot be reached from the start node '{start}'"
        )


def _known(name: str, specs: dict[str, NodeSpec], key: Node[Any, Any] | str, what: str) -> str:
    node_name = _key_name(key)
    if node_name not in specs or (isinstance(key, Node) and specs[node_name].node is not key):
        raise GraphError(f"workflow '{name}': {what} names unknown node '{node_name}'")
    return node_name


def _key_name(key: Node[Any, Any] | str) -> str:
    return key if isinstance(key, str) else key.name


def to_dot(name: str, graph: Graph) -> str:
    """Graphviz DOT: fallback edges dotted red, routing edges labelled, joins bold."""
    lines = [
        f'digraph "{name}" {{',
        "  rankdir=LR;",
        '  node [shape=box, style="rounded,filled", fillcolor=lightgray, fontname=Helvetica];',
        "  edge [fontname=Helvetica, arrowhead=vee];",
    ]
    for spec in graph.nodes.values():
        shape = " [peripheries=2]" if spec.is_terminal else ""
        lines.append(f'  "{spec.name}"{shape};')
    for source, target, kind, label in edge_list(graph):
        attrs = {
            "fallback": ' [style="dotted" color="red" label="fallback"]',
            "join": ' [style="bold" label="join"]',
            "route": f' [label="{label}"]',
        }.get(kind, "")
        lines.append(f'  "{source}" -> "{target}"{attrs};')
    lines.append("}")
    return "\n".join(lines) + "\n"


def to_mermaid(graph: Graph) -> str:
    """A Mermaid flowchart of the graph."""
    ids = {n: f"n{i}" for i, n in enumerate(graph.nodes)}
    lines = ["flowchart LR"]
    for n, spec in graph.nodes.items():
        lines.append(f'  {ids[n]}(["{n}"])' if spec.is_terminal else f'  {ids[n]}["{n}"]')
    for source, target, kind, label in edge_list(graph):
        arrow = {
            "fallback": "-. fallback .->",
            "join": "==>|join|",
            "route": f"-->|{label}|",
        }.get(kind, "-->")
        lines.append(f"  {ids[source]} {arrow} {ids[target]}")
    return "\n".join(lines) + "\n"


def edge_list(graph: Graph) -> list[tuple[str, str, str, str]]:
    """Every edge as ``(source, target, kind, label)``, in declaration order."""
    result: list[tuple[str, str, str, str]] = []
    for spec in graph.nodes.values():
        for target in spec.targets:
            result.append((spec.name, target, "join" if target in spec.join_targets else "sequence", ""))
        for case, targets in spec.cases:
            result.extend((spec.name, target, "route", case.label) for target in targets)
        result.extend((spec.name, target, "fallback", "") for target in spec.fallbacks)
    return result
