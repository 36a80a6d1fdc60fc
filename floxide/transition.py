"""What a node returns: where its work goes next.

``Next(value)`` sends one value to the node's successors, ``NextAll(values)`` fans out one
work item per value, ``Hold()`` ends this branch without output, and ``Abort(error)`` fails
the step (a fallback edge may catch it). A node may also return a plain value, which means
``Next(value)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar, Union

__all__ = ["Abort", "Hold", "Next", "NextAll", "Transition"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Next(Generic[T]):
    """Send ``value`` to every successor of the node."""

    value: T


@dataclass(frozen=True, slots=True)
class NextAll(Generic[T]):
    """Fan out: one work item per value, for every successor of the node."""

    values: Sequence[T]


@dataclass(frozen=True, slots=True)
class Hold:
    """End this branch without output (nothing is sent on)."""


@dataclass(frozen=True, slots=True)
class Abort:
    """Fail the step with ``error`` (an exception, or a message)."""

    error: BaseException | str

    def exception(self) -> BaseException:
        """The failure as an exception."""
        if isinstance(self.error, BaseException):
            return self.error
        return AbortError(self.error)


class AbortError(Exception):
    """The exception behind ``Abort("message")``."""


Transition = Union[Next[T], NextAll[T], Hold, Abort]  # noqa: UP007 (a generic alias needs Union)
