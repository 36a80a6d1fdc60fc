"""Step logs: what a node logs through ``ctx.log`` (and, opted in, what it prints), kept per work item.

Inside a node::

    @node
    async def charge(ctx: WorkflowCtx[Any], order: Order) -> Receipt:
        ctx.log.info("charging %s for %d cents", order.id, order.cents)

``ctx.log`` is a :class:`logging.LoggerAdapter` (:class:`StepLogger`): each record goes to
Python's logging as usual (logger ``floxide.steps.<node>``, with ``run``, ``node``, ``item``
and ``attempt`` as ``extra``, the fields the worker's own lines carry) and, when a
:class:`StepLogSink` is active, becomes a :class:`LogEntry` of the step (at INFO and above,
or lower if that logger is set lower). What is active is a context variable, so every step
started within it is seen:

* local runs: ``with collect_step_logs() as logs: await workflow.run(...)``, then
  ``logs.entries(run_id, node=...)`` (a bounded memory, :class:`MemoryStepLogs`);
* distributed workers: a :class:`StepLogShipper` that writes batches to the run's log
  stream in Redis a few times a second (:mod:`floxide.redis.steplogs`; ``floxide logs RUN``).

Printing is captured only when asked (:func:`capture_prints`: ``sys.stdout`` is replaced by
a router that sends a step's lines to its log, and everything else through), because
replacing ``sys.stdout`` is a process-wide act.

Everything is bounded: a message is cut at ``max_bytes`` (UTF-8), a step keeps at most
``max_per_step`` entries (then one entry saying how many were dropped), a shipper holds at
most ``max_pending`` entries while Redis is slow, and the Redis stream is capped per run.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import io
import logging
import sys
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol, TextIO

from pydantic import BaseModel, Field

if TYPE_CHECKING:
    from floxide.context import WorkflowCtx

__all__ = [
    "MAX_BYTES",
    "MAX_PER_STEP",
    "LogEntry",
    "MemoryStepLogs",
    "StepLogShipper",
    "StepLogSink",
    "StepLogger",
    "capture_prints",
    "collect_step_logs",
    "enter_step",
    "leave_step",
    "show_step_logs",
    "sink",
]

MAX_BYTES = 4096
"""A step log message is cut at this many bytes (UTF-8)."""

MAX_PER_STEP = 1000
"""A step (one attempt of one item) keeps at most this many log entries."""

log = logging.getLogger(__name__)


class LogEntry(BaseModel):
    """One line a step logged (or printed)."""

    run_id: str
    item_id: str
    node: str
    attempt: int = 1
    level: str = Field("INFO", description="INFO, WARNING, ... or PRINT for a printed line.")
    message: str
    time: datetime = Field(default_factory=lambda: datetime.now(UTC))
    source: Literal["log", "print"] = "log"


class StepLogSink(Protocol):
    """Where step log entries go; ``add`` is called from the step and must not block."""

    def add(self, entry: LogEntry) -> None: ...


_sink: contextvars.ContextVar[StepLogSink | None] = contextvars.ContextVar(
    "floxide_step_log_sink", default=None
)
_step: contextvars.ContextVar[WorkflowCtx[Any] | None] = contextvars.ContextVar("floxide_step", default=None)
_counts: contextvars.ContextVar[dict[str, int] | None] = contextvars.ContextVar(
    "floxide_step_counts", default=None
)
_capturing = 0


def sink() -> StepLogSink | None:
    """The sink steps started now log to (``None``: only Python's logging)."""
    return _sink.get()


@contextlib.contextmanager
def use_sink(target: StepLogSink | None) -> Iterator[None]:
    """Make ``target`` the sink of every step started within the block."""
    token = _sink.set(target)
    try:
        yield
    finally:
        _sink.reset(token)


def enter_step(ctx: WorkflowCtx[Any]) -> contextvars.Token[WorkflowCtx[Any] | None] | None:
    """Mark ``ctx``'s step as the one running in this task (only while prints are captured)."""
    return _step.set(ctx) if _capturing else None


def leave_step(token: contextvars.Token[WorkflowCtx[Any] | None] | None) -> None:
    """Undo :func:`enter_step`."""
    if token is not None:
        _step.reset(token)


def _cut(text: str, limit: int) -> str:
    data = text.encode()
    if len(data) <= limit:
        return text
    return data[:limit].decode(errors="ignore") + f"… ({len(data) - limit} more bytes dropped)"


def record(
    ctx: WorkflowCtx[Any], level: str, message: str, *, source: Literal["log", "print"] = "log"
) -> None:
    """Give the active sink an entry of ``ctx``'s step (bounded, see the module docstring)."""
    target = _sink.get()
    if target is None:
        return
    key = f"{ctx.run_id}\x1f{ctx.item_id}\x1f{ctx.attempt}"
    counts = _counts.get()
    if counts is None:
        counts = {}
        _counts.set(counts)
    seen = counts.get(key, 0) + 1
    counts[key] = seen
    if len(counts) > 10_000:  # forget old steps; a long-lived task must not grow without end
        counts.clear()
        counts[key] = seen
    if seen > MAX_PER_STEP + 1:
        return
    if seen == MAX_PER_STEP + 1:
        level, message, source = "WARNING", f"more than {MAX_PER_STEP} log lines: the rest are dropped", "log"
    try:
        target.add(
            LogEntry(
                run_id=ctx.run_id,
                item_id=ctx.item_id,
                node=ctx.node,
                attempt=ctx.attempt,
                level=level,
                message=_cut(message, MAX_BYTES),
                source=source,
            )
        )
    except Exception:  # a step's log is never a reason for the step to fail
        log.debug("step log entry dropped", exc_info=True)


class StepLogger(logging.LoggerAdapter[logging.Logger]):
    """``ctx.log``: a logger of the step; records also go to the active step log sink."""

    def __init__(self, ctx: WorkflowCtx[Any]) -> None:
        super().__init__(logging.getLogger(f"floxide.steps.{ctx.node or 'step'}"), {})
        self.ctx = ctx

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        ctx = self.ctx
        fields = {"run": ctx.run_id, "node": ctx.node, "item": ctx.item_id, "attempt": ctx.attempt}
        kwargs["extra"] = {**fields, **(kwargs.get("extra") or {})}
        return msg, kwargs

    def log(self, level: int, msg: Any, *args: Any, **kwargs: Any) -> None:
        if _sink.get() is not None and level >= min(logging.INFO, self.logger.getEffectiveLevel()):
            try:
                text = str(msg) % args if args else str(msg)
            except Exception:
                text = f"{msg} {args}"
            if kwargs.get("exc_info"):
                text += "\n" + _traceback(kwargs["exc_info"])
            record(self.ctx, logging.getLevelName(level), text)
        super().log(level, msg, *args, **kwargs)


def _traceback(exc_info: Any) -> str:
    import traceback

    if isinstance(exc_info, BaseException):
        return "".join(traceback.format_exception(exc_info)).rstrip()
    if exc_info is True:
        return traceback.format_exc().rstrip()
    return "".join(traceback.format_exception(*exc_info)).rstrip()


@contextlib.contextmanager
def show_step_logs() -> Iterator[None]:
    """Print what steps log through ``ctx.log`` (INFO and above) on stderr: ``node[item]: message``.

    For ``floxide run``: only when the program has not set up logging itself (the root logger
    has no handler); otherwise its handlers show the records as it chose.
    """
    if logging.getLogger().handlers:
        yield
        return
    handler = logging.StreamHandler(sys.stderr)  # sys.stderr now: a live progress view's, if any
    handler.setFormatter(logging.Formatter("%(node)s[%(item)s]: %(message)s"))
    logger = logging.getLogger("floxide.steps")
    level = logger.level
    logger.addHandler(handler)
    if logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


# -- local runs: in memory --------------------------------------------------------------------------


class MemoryStepLogs:
    """Step log entries in memory, at most ``max_entries`` per run (the oldest go first)."""

    def __init__(self, max_entries: int = 10_000) -> None:
        self.max_entries = max_entries
        self._runs: dict[str, deque[LogEntry]] = {}

    def add(self, entry: LogEntry) -> None:
        self._runs.setdefault(entry.run_id, deque(maxlen=self.max_entries)).append(entry)

    def entries(self, run_id: str | None = None, *, node: str | None = None) -> list[LogEntry]:
        """A run's entries (every run's without ``run_id``), oldest first; only ``node``'s if given."""
        runs = [self._runs.get(run_id, deque())] if run_id is not None else list(self._runs.values())
        return [e for entries in runs for e in entries if node is None or e.node == node]


@contextlib.contextmanager
def collect_step_logs(target: MemoryStepLogs | None = None) -> Iterator[MemoryStepLogs]:
    """Keep the step logs of every run started within the block in memory (returned)."""
    logs = target if target is not None else MemoryStepLogs()
    with use_sink(logs):
        yield logs


# -- workers: shipped in batches ------------------------------------------------------------------------


class StepLogShipper:
    """Collects entries from the steps and writes them in batches (``write``: to Redis, say).

    Holds at most ``max_pending`` entries; beyond, the oldest are dropped and counted in
    ``dropped``. A failed write is logged and its batch dropped: step logs are best effort.
    """

    def __init__(
        self, write: Callable[[list[LogEntry]], Awaitable[None]], *, max_pending: int = 10_000
    ) -> None:
        self.write = write
        self._pending: deque[LogEntry] = deque(maxlen=max_pending)
        self.dropped = 0
        self._wake = asyncio.Event()

    def add(self, entry: LogEntry) -> None:
        if len(self._pending) == self._pending.maxlen:
            self.dropped += 1
        self._pending.append(entry)

    async def flush(self) -> None:
        """Write what is pending now."""
        while self._pending:
            batch = [self._pending.popleft() for _ in range(min(len(self._pending), 500))]
            try:
                await self.write(batch)
            except Exception as exc:
                log.warning("could not write %d step log entries: %s", len(batch), exc)
                return

    async def run(self, every: float = 0.2) -> None:
        """Flush every ``every`` seconds until cancelled (then once more)."""
        try:
            while True:
                await asyncio.sleep(every)
                await self.flush()
        finally:
            with contextlib.suppress(Exception):
                await asyncio.shield(self.flush())


# -- printed lines (opt-in) ------------------------------------------------------------------------------


class _PrintRouter(io.TextIOBase):
    """``sys.stdout`` while prints are captured: a step's lines to its log, the rest through."""

    def __init__(self, through: TextIO) -> None:
        self.through = through
        self._partial: dict[int, str] = {}

    def write(self, text: str) -> int:
        ctx = _step.get()
        if ctx is None or _sink.get() is None:
            return self.through.write(text)
        key = id(ctx)
        buffered = self._partial.pop(key, "") + text
        *lines, rest = buffered.split("\n")
        for line in lines:
            record(ctx, "PRINT", line, source="print")
        if rest:
            self._partial[key] = rest[-MAX_BYTES:]
        return len(text)

    def flush(self) -> None:
        self.through.flush()

    def isatty(self) -> bool:
        return self.through.isatty()

    def fileno(self) -> int:
        return self.through.fileno()


@contextlib.contextmanager
def capture_prints() -> Iterator[None]:
    """Within the block, what a step prints to ``sys.stdout`` goes to its step log instead."""
    global _capturing
    previous = sys.stdout
    router = _PrintRouter(previous)
    sys.stdout = router
    _capturing += 1
    try:
        yield
    finally:
        _capturing -= 1
        if sys.stdout is router:
            sys.stdout = previous
