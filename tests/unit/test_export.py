"""Graph export: DOT, Mermaid and the graph description workers publish.

Cases:
* DOT of a small graph, exactly: header, terminal nodes double-bordered, edges in order;
* DOT styles: fallback dotted red, route arms labelled with their variant, joins bold;
* Mermaid: terminal nodes rounded, the same edge kinds with their arrows and labels;
* ``describe()``: nodes with types, edges with kinds and labels, start node, input schema.
"""

from __future__ import annotations

from dataclasses import dataclass

from floxide import Workflow, edge, join, node, on_failure, route, when


@dataclass(frozen=True)
class Left:
    value: int


@dataclass(frozen=True)
class Right:
    value: int


@node
async def start(x: int) -> Left | Right:
    return Left(x) if x < 0 else Right(x)


@node
async def left(x: int) -> int:
    return x


@node
async def right(x: int) -> int:
    return x


@node
async def rescue(x: int) -> int:
    return 0


@node
async def gather(values: list[int]) -> int:
    return sum(values)


workflow: Workflow[int, int] = Workflow(
    "export",
    start=start,
    edges=[
        route(start, when(Left, left, payload="value"), when(Right, left, right, payload="value")),
        on_failure(start, rescue),
        join([left, right], gather),
    ],
)


def test_dot_of_a_sequence() -> None:
    simple: Workflow[int, int] = Workflow("simple", start=left, edges=[edge(left, right)])
    assert simple.to_dot() == (
        'digraph "simple" {\n'
        "  rankdir=LR;\n"
        '  node [shape=box, style="rounded,filled", fillcolor=lightgray, fontname=Helvetica];\n'
        "  edge [fontname=Helvetica, arrowhead=vee];\n"
        '  "left";\n'
        '  "right" [peripheries=2];\n'
        '  "left" -> "right";\n'
        "}\n"
    )


def test_dot_edge_styles() -> None:
    lines = workflow.to_dot().splitlines()
    assert '  "start" -> "left" [label="Left"];' in lines
    assert '  "start" -> "right" [label="Right"];' in lines
    assert '  "start" -> "rescue" [style="dotted" color="red" label="fallback"];' in lines
    assert '  "left" -> "gather" [style="bold" label="join"];' in lines
    assert '  "gather" [peripheries=2];' in lines
    assert '  "rescue" [peripheries=2];' in lines


def test_mermaid() -> None:
    assert workflow.to_mermaid() == (
        "flowchart LR\n"
        '  n0["start"]\n'
        '  n1["left"]\n'
        '  n2["right"]\n'
        '  n3(["rescue"])\n'
        '  n4(["gather"])\n'
        "  n0 -->|Left| n1\n"
        "  n0 -->|Right| n1\n"
        "  n0 -->|Right| n2\n"
        "  n0 -. fallback .-> n3\n"
        "  n1 ==>|join| n4\n"
        "  n2 ==>|join| n4\n"
    )


def test_describe() -> None:
    described = workflow.describe()
    assert described["name"] == "export"
    assert described["startNode"] == "start"
    assert described["inputSchema"] == {"type": "integer"}
    assert {"name": "gather", "input": "list[int]", "output": "int"} in described["nodes"]
    assert {"from": "start", "to": "right", "kind": "route", "label": "Right"} in described["edges"]
    assert {"from": "start", "to": "rescue", "kind": "fallback"} in described["edges"]
    assert {"from": "right", "to": "gather", "kind": "join"} in described["edges"]
