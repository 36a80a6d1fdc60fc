"""Run priorities: three classes, and the weighted order workers take them in.

A run is ``high``, ``normal`` (the default) or ``low`` priority, fixed when it is submitted;
every item of the run has its run's class. Workers take items class by class with a smooth
weighted round robin over the claims they make (:class:`ClassOrder`): of every 10 claims
made while all three classes have items waiting, 6 start with ``high``, 3 with ``normal``
and 1 with ``low``; a claim starting with an empty class goes on to the next class in
priority order. So a high-priority run's items are taken first, and a low-priority run
still gets about one claim in ten while higher classes are busy: it never starves.

On Redis each class has a stream of its own (``stream``, ``stream:high``, ``stream:low``);
see :mod:`floxide.redis.priority`. The in-memory backend records a run's priority but hands
out items in the order they were queued; local runs (``workflow.run``) have no priority.
"""

from __future__ import annotations

from typing import Literal

__all__ = ["PRIORITIES", "WEIGHTS", "ClassOrder", "Priority", "check_priority"]

Priority = Literal["high", "normal", "low"]
"""A run's priority class."""

PRIORITIES: tuple[Priority, ...] = ("high", "normal", "low")
"""The classes, highest first."""

WEIGHTS: dict[Priority, int] = {"high": 6, "normal": 3, "low": 1}
"""The share of claims that start with each class while every class has items waiting."""


def check_priority(value: object) -> Priority:
    """``value`` as a priority class; a ``ValueError`` says what is allowed."""
    for known in PRIORITIES:
        if value == known:
            return known
    raise ValueError(f"priority must be one of {', '.join(PRIORITIES)}; got {value!r}")


def rank(priority: str) -> int:
    """0 for ``high``, 1 for ``normal``, 2 for ``low`` (unknown classes rank as ``normal``)."""
    return next((n for n, known in enumerate(PRIORITIES) if known == priority), 1)


class ClassOrder:
    """The order to try the classes in, claim after claim (a smooth weighted round robin)."""

    def __init__(self, weights: dict[Priority, int] | None = None) -> None:
        self.weights = dict(weights or WEIGHTS)
        self._current: dict[Priority, int] = dict.fromkeys(self.weights, 0)

    def next(self, classes: tuple[Priority, ...] = PRIORITIES) -> list[Priority]:
        """The classes of ``classes`` for the next claim: the one whose turn it is first, then the
        others highest first."""
        chosen = [c for c in PRIORITIES if c in classes]
        if len(chosen) <= 1:
            return chosen
        total = sum(self.weights[c] for c in chosen)
        for c in chosen:
            self._current[c] += self.weights[c]
        first = max(chosen, key=lambda c: (self._current[c], -rank(c)))
        self._current[first] -= total
        return [first, *(c for c in chosen if c != first)]
