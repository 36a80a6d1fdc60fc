"""Fan-out frames and joins: when has every branch of a fan-out finished?

A step that fans out (``NextAll``, or several targets) opens a *frame*; its successors
carry the frame in their ``scope`` (a tuple of ``(frame_id, index)``, outermost first; the
run itself is the root frame ``""``). A frame counts its live units: items whose innermost
frame it is, plus child frames still open. Values sent along a ``join`` edge are not
queued but collected in the frame's inbox. When a frame's count drops to zero it closes:
each join with collected values fires one item, with the values in branch order, in the
enclosing scope. The root frame closing with nothing to fire ends the run.

This module is the in-memory bookkeeping; the Redis commit script applies the same rules
atomically. Frame ids are derived from the item that opened them, so replaying a commit
cannot open a second frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Arrival", "Fired", "FrameTable", "Scope"]

Scope = tuple[tuple[str, int], ...]
ROOT = ""


@dataclass(frozen=True, slots=True)
class Fired:
    """A join that fired: ``node`` receives ``values`` in ``scope``; ``item_id`` is its new item's id."""

    node: str
    values: list[Any]
    scope: Scope
    item_id: str


@dataclass(frozen=True, slots=True)
class Arrival:
    """A value reaching join ``node`` from the branch at ``index`` of a frame."""

    node: str
    value: Any


@dataclass(slots=True)
class FrameTable:
    """Live counts, parents and join inboxes of a run's open frames."""

    live: dict[str, int] = field(default_factory=lambda: {ROOT: 0})
    parents: dict[str, Scope] = field(default_factory=dict)
    inbox: dict[str, dict[str, list[tuple[int, str, Any]]]] = field(default_factory=dict)
    joins: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def seed(self, count: int = 1) -> None:
        """Count the run's first items in the root frame."""
        self.live[ROOT] = self.live.get(ROOT, 0) + count

    def commit(
        self,
        item_id: str | int,
        scope: Scope,
        children: int,
        arrivals: list[Arrival],
        fan_out: bool,
        joins: tuple[str, ...] = (),
    ) -> tuple[str | None, list[Fired], bool]:
        """Account for a finished item that produced ``children`` items and ``arrivals``.

        Returns the frame the step opened (its children's scopes are ``scope`` plus
        ``(frame, i)``; ``None``: they keep ``scope``), the joins that fired, and whether
        the run has no live work left. ``joins`` are the joins that close an opened frame:
        they fire even if nothing reached them (with ``[]``).
        """
        frame = scope[-1][0] if scope else ROOT
        if not fan_out and not arrivals:
            live = self.live[frame] + children - 1
            self.live[frame] = live
            if live:
                return None, [], False
            return None, self._close(frame, item_id), self.live.get(ROOT, 0) == 0
        index = scope[-1][1] if scope else 0
        opened: str | None = None
        closing: list[str] = []
        if fan_out:
            opened = f"f:{item_id}"
            self.parents[opened] = scope
            if joins:
                self.joins[opened] = joins
            self.live[opened] = children
            self.live[frame] += 1
            for position, arrival in enumerate(arrivals):
                self._collect(opened, arrival, position, item_id)
            if children == 0:
                closing.append(opened)
        else:
            self.live[frame] += children
            for arrival in arrivals:
                self._collect(frame, arrival, index, item_id)
        self.live[frame] -= 1
        fired: list[Fired] = []
        for opened_frame in closing:
            fired += self._close(opened_frame, item_id)
        if self.live.get(frame, 1) == 0:
            fired += self._close(frame, item_id)
        return opened, fired, self.live.get(ROOT, 0) == 0

    def _collect(self, frame: str, arrival: Arrival, index: int, item_id: str | int) -> None:
        box = self.inbox.setdefault(frame, {}).setdefault(arrival.node, [])
        box.append((index, str(item_id), arrival.value))

    def _close(self, frame: str, item_id: str | int) -> list[Fired]:
        fired: list[Fired] = []
        while True:
            box = self.inbox.pop(frame, {})
            parent_scope = self.parents.pop(frame, ())
            names = sorted(set(box) | set(self.joins.pop(frame, ())))
            for node in names:
                values = [value for _, _, value in sorted(box.get(node, []), key=lambda e: (e[0], e[1]))]
                fired.append(Fired(node, values, parent_scope, f"j:{item_id}:{node}"))
            if frame == ROOT:
                self.live[ROOT] = len(names)
                return fired
            del self.live[frame]
            parent = parent_scope[-1][0] if parent_scope else ROOT
            self.live[parent] += len(names) - 1
            if self.live[parent] != 0:
                return fired
            frame = parent

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready snapshot (for checkpoints)."""
        return {
            "live": self.live,
            "parents": {k: [list(p) for p in v] for k, v in self.parents.items()},
            "inbox": {
                f: {n: [list(e) for e in entries] for n, entries in b.items()} for f, b in self.inbox.items()
            },
            "joins": {f: list(names) for f, names in self.joins.items()},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FrameTable:
        """Rebuild a table saved with :meth:`to_json`."""
        return cls(
            live={k: int(v) for k, v in data["live"].items()},
            parents={k: tuple((f, int(i)) for f, i in v) for k, v in data["parents"].items()},
            inbox={
                f: {n: [(int(i), str(item), value) for i, item, value in entries] for n, entries in b.items()}
                for f, b in data["inbox"].items()
            },
            joins={f: tuple(names) for f, names in data.get("joins", {}).items()},
        )
