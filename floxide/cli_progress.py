"""Progress of a run while a command waits for it: a live bar on a terminal, a line now and then elsewhere.

``floxide run`` (local, and with ``--workers``) feeds a :class:`ProgressReporter` with the
run's counts after every step: steps done, queued and running. The total is what is known
so far (done + queued + running: a fan-out adds items as it goes, so it can grow), the
percentage is done of that total, and the ETA is the time the remaining steps take at the
rate so far. :func:`progress_text` says it in one line, :func:`eta_text` the ETA alone.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from types import TracebackType
from typing import Any

from rich.console import Console, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from floxide.distributed.protocols import RunInfoStore
from floxide.runner import Progress

__all__ = ["ProgressReporter", "eta_seconds", "eta_text", "follow_run", "progress_text"]


def eta_seconds(done: int, total: int, elapsed: float) -> float | None:
    """Seconds the ``total - done`` remaining steps take at the rate so far (``None``: unknown yet)."""
    if done <= 0 or elapsed <= 0 or total < done:
        return None
    return (total - done) * elapsed / done


def eta_text(seconds: float | None) -> str:
    """``ETA 12s`` / ``ETA 3m05s`` / ``ETA ?``."""
    if seconds is None:
        return "ETA ?"
    seconds = max(seconds, 0.0)
    if seconds < 60:
        return f"ETA {seconds:.0f}s"
    if seconds < 3600:
        return f"ETA {int(seconds // 60)}m{int(seconds % 60):02d}s"
    return f"ETA {int(seconds // 3600)}h{int(seconds % 3600 // 60):02d}m"


def progress_text(label: str, progress: Progress, elapsed: float, unit: str = "steps") -> str:
    """``label: 5/8 steps (62%), 2 queued, 1 running, ETA 3s (4.1s)``; for ``items``, no queued/running."""
    p = progress
    total = p.done + p.queued + p.running
    percent = 100 * p.done // total if total else 0
    eta = eta_text(eta_seconds(p.done, total, elapsed))
    counts = f"{p.done}/{total} {unit} ({percent}%)"
    if unit == "steps":  # a local run knows what is queued and what runs; a distributed one, what is left
        counts += f", {p.queued} queued, {p.running} running"
    return f"{label}: {counts}, {eta} ({elapsed:.1f}s)"


class ProgressReporter:
    """Shows a run's progress on stderr while it runs longer than ``delay`` seconds.

    On a terminal: a live progress bar with the counts, percentage and ETA (rich).
    Elsewhere: a plain line every ``interval`` seconds. Short runs show nothing. Feed it
    with :meth:`update` (a run's progress callback); a background thread does the drawing,
    so slow steps still show time passing.
    """

    def __init__(
        self,
        label: str,
        *,
        stream: Any = None,
        tty: bool | None = None,
        delay: float | None = None,
        interval: float = 2.0,
        unit: str = "steps",
    ) -> None:
        self.label = label
        self.unit = unit
        self.stream = stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.delay = delay if delay is not None else (0.5 if self.tty else interval)
        self.interval = interval
        self.progress = Progress(0, 0, 0)
        self._started = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._draw, name="floxide-progress", daemon=True)

    def update(self, progress: Progress) -> None:
        """Record the latest counts (called after every step)."""
        self.progress = progress

    def line(self) -> str:
        """The current status as text."""
        return progress_text(self.label, self.progress, time.monotonic() - self._started, self.unit)

    def __rich__(self) -> RenderableType:
        p = self.progress
        total = p.done + p.queued + p.running
        grid = Table.grid(padding=(0, 1))
        grid.add_row(
            Text(self.label, style="bold", no_wrap=True, overflow="ellipsis"),
            ProgressBar(total=max(total, 1), completed=p.done if total else 0, width=30),
            Text(self.line().partition(": ")[2]),
        )
        return grid

    def __enter__(self) -> ProgressReporter:
        self._started = time.monotonic()
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join()

    def _draw(self) -> None:
        if self._stop.wait(self.delay):
            return
        if self.tty:
            console = Console(file=self.stream, force_terminal=True)
            with Live(self, console=console, refresh_per_second=4, transient=False):
                self._stop.wait()
            return
        while True:
            self.stream.write(f"floxide: {self.line()}\n")
            self.stream.flush()
            if self._stop.wait(self.interval):
                return


async def follow_run(runs: RunInfoStore, run_id: str, *, label: str, every: float = 0.25) -> None:
    """Show a distributed run's progress (items done of items known) on stderr until cancelled.

    ``floxide submit --wait`` runs it while it waits; a failed look (Redis away) is skipped.
    """
    with ProgressReporter(label, unit="items") as reporter:
        while True:
            try:
                info = await runs.get(run_id)
            except Exception:  # the command waiting for the run reports Redis errors itself
                info = None
            if info is not None:
                reporter.update(Progress(info.items_done, max(info.items_total - info.items_done, 0), 0))
            await asyncio.sleep(every)
