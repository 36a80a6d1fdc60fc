"""A clock the schedule tests move, shared with the operator they run (see ``clock_entry.py``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


class Clock:
    """The time the operator plans schedules at; the test sets :attr:`now`."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


CLOCK = Clock()
