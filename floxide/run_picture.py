"""Run pictures: a workflow's graph with each node coloured by its state in a run, with its counts.

The picture is of the workflow's nodes, not of the run's items: it has as many boxes at
5,000 items as at 5, so it stays readable (and cheap to lay out) however large a run grows.

* :func:`to_dot` — Graphviz DOT of a :class:`~floxide.run_view.RunView`: fill colour by
  :class:`~floxide.run_view.NodeState` (:data:`COLOURS`), the counts in each box's label
  and tooltip, an SVG ``id`` of ``node-<name>`` per node (what a page attaches clicks to);
* :func:`to_mermaid` — the same as a Mermaid flowchart, with one ``classDef`` per state;
* :func:`render_dot` — lays DOT out with Graphviz's ``dot`` program into SVG or PNG
  (:class:`GraphvizMissing` if ``dot`` is not installed: Debian's ``graphviz`` package);
* :func:`render` — any of the four :class:`PictureFormat` s of a view, as bytes.
"""

from __future__ import annotations

import shutil
import subprocess
from enum import StrEnum

from floxide.errors import FloxideError
from floxide.run_view import EdgeView, NodeState, NodeView, RunView

__all__ = [
    "COLOURS",
    "GraphvizMissing",
    "PictureFormat",
    "counts_text",
    "render",
    "render_dot",
    "to_dot",
    "to_mermaid",
]

COLOURS: dict[NodeState, tuple[str, str]] = {
    NodeState.IDLE: ("#f3f4f6", "#9ca3af"),
    NodeState.QUEUED: ("#fef3c7", "#d97706"),
    NodeState.RUNNING: ("#bfdbfe", "#2563eb"),
    NodeState.DONE: ("#bbf7d0", "#16a34a"),
    NodeState.FAILED: ("#fecaca", "#dc2626"),
    NodeState.CANCELLED: ("#e5e7eb", "#6b7280"),
}
"""Fill and border colour of a node box by state."""


class PictureFormat(StrEnum):
    """What :func:`render` produces."""

    SVG = "svg"
    PNG = "png"
    MERMAID = "mermaid"
    DOT = "dot"


class GraphvizMissing(FloxideError):
    """Graphviz's ``dot`` program is needed (for SVG and PNG) and is not installed."""


def counts_text(node: NodeView, *, separator: str = " · ") -> str:
    """A node's counts in a few words: ``3/5 done · 1 running · 1 failed`` (``not reached``)."""
    if node.state is NodeState.IDLE:
        return "not reached"
    parts = [f"{node.done}/{node.created} done"]
    for word, count in (
        ("running", node.running),
        ("queued", node.queued),
        ("failed", node.failed),
        ("retried", node.retried),
        ("reclaimed", node.reclaimed),
        ("cancelled", node.cancelled),
    ):
        if count:
            parts.append(f"{count} {word}")
    return separator.join(parts)


def _dot_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _terminals(view: RunView) -> set[str]:
    leaving = {e.source for e in view.edges if e.kind != "fallback"}
    return {n.name for n in view.nodes if n.name not in leaving} if view.edges else set()


def _edge_attrs(edge: EdgeView) -> str:
    if edge.kind == "fallback":
        return ' [style="dotted" color="red" label="fallback"]'
    if edge.kind == "join":
        return ' [style="bold" label="join"]'
    if edge.kind == "route" and edge.label:
        return f" [label={_dot_quote(edge.label)}]"
    return ""


def to_dot(view: RunView) -> str:
    """Graphviz DOT of the run's graph: nodes coloured by state, counts in their labels."""
    items = f"{view.items_done}/{view.items_total} items"
    title = f"{view.workflow} · run {view.run_id} · {view.status.value} · {items}"
    lines = [
        f"digraph {_dot_quote(view.workflow)} {{",
        "  rankdir=LR;",
        f"  label={_dot_quote(title)}; labelloc=t; fontname=Helvetica;",
        '  node [shape=box, style="rounded,filled", fontname=Helvetica];',
        "  edge [fontname=Helvetica, arrowhead=vee];",
    ]
    terminals = _terminals(view)
    for node in view.nodes:
        fill, border = COLOURS[node.state]
        attrs = [
            f"label={_dot_quote(node.name + chr(10) + counts_text(node, separator=chr(10)))}",
            f'fillcolor="{fill}"',
            f'color="{border}"',
            f"id={_dot_quote('node-' + node.name)}",
            f"tooltip={_dot_quote(f'{node.name}: {node.state.value}; {counts_text(node)}')}",
        ]
        if node.state is NodeState.CANCELLED:
            attrs.append('style="rounded,filled,dashed"')
        if node.state is NodeState.RUNNING:
            attrs.append("penwidth=2")
        if node.name in terminals:
            attrs.append("peripheries=2")
        lines.append(f"  {_dot_quote(node.name)} [{', '.join(attrs)}];")
    for edge in view.edges:
        lines.append(f"  {_dot_quote(edge.source)} -> {_dot_quote(edge.target)}{_edge_attrs(edge)};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _mermaid_text(text: str) -> str:
    return text.replace('"', "#quot;")


def to_mermaid(view: RunView) -> str:
    """A Mermaid flowchart of the run's graph: a class per state, counts in the labels."""
    ids = {n.name: f"n{i}" for i, n in enumerate(view.nodes)}
    lines = ["flowchart LR"]
    terminals = _terminals(view)
    for node in view.nodes:
        label = _mermaid_text(f"{node.name}<br/>{counts_text(node)}")
        shape = f'(["{label}"])' if node.name in terminals else f'["{label}"]'
        lines.append(f"  {ids[node.name]}{shape}:::{node.state.value}")
    for edge in view.edges:
        if edge.source not in ids or edge.target not in ids:
            continue
        arrow = {
            "fallback": "-. fallback .->",
            "join": "==>|join|",
            "route": f"-->|{_mermaid_text(edge.label)}|" if edge.label else "-->",
        }.get(edge.kind, "-->")
        lines.append(f"  {ids[edge.source]} {arrow} {ids[edge.target]}")
    for state, (fill, border) in COLOURS.items():
        dashed = ",stroke-dasharray: 4 3" if state is NodeState.CANCELLED else ""
        lines.append(f"  classDef {state.value} fill:{fill},stroke:{border}{dashed}")
    return "\n".join(lines) + "\n"


def render_dot(dot: str, fmt: PictureFormat | str, *, timeout: float = 60.0) -> bytes:
    """Lay ``dot`` out with Graphviz into ``svg`` or ``png``."""
    fmt = PictureFormat(fmt)
    if fmt not in (PictureFormat.SVG, PictureFormat.PNG):
        raise ValueError(f"Graphviz renders svg or png here, not {fmt.value}")
    program = shutil.which("dot")
    if program is None:
        raise GraphvizMissing(
            f"drawing {fmt.value} needs Graphviz's 'dot' program (Debian/Ubuntu: apt-get install graphviz; "
            "macOS: brew install graphviz); --format dot or mermaid need nothing"
        )
    try:
        done = subprocess.run(
            [program, f"-T{fmt.value}"], input=dot.encode(), capture_output=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise FloxideError(f"Graphviz took more than {timeout:g}s to lay the graph out") from exc
    if done.returncode != 0:
        reason = " ".join(done.stderr.decode(errors="replace").split()) or f"exit status {done.returncode}"
        raise FloxideError(f"Graphviz could not draw the graph: {reason}")
    return done.stdout


def render(view: RunView, fmt: PictureFormat | str) -> bytes:
    """The run picture of ``view`` in ``fmt`` (svg, png, mermaid or dot), as bytes."""
    fmt = PictureFormat(fmt)
    if fmt is PictureFormat.MERMAID:
        return to_mermaid(view).encode()
    dot = to_dot(view)
    return dot.encode() if fmt is PictureFormat.DOT else render_dot(dot, fmt)
