"""Structured logs: every line about a work item carries its run, node and item.

The worker loop logs one line per work-item transition with ``run``, ``node``, ``item``,
``result`` and ``seconds`` as record attributes (``extra=``): at INFO the unusual ones (a
retry, a failure, a cancellation, a reclaim, a release), at DEBUG the routine ones (an item
committed, a duplicate, an item parked or dropped), so that ``--log-level DEBUG`` shows
every item and the default INFO stays quiet at thousands of items a second.

Lines logged *inside* a step — the engine's and the node's own — get ``run``, ``node`` and
``item`` from a context variable that :class:`StepContext` sets when the step's task claims
its item (each step runs in its own task, so the variable never leaks to another step).
Every line also carries the worker's id.

``json`` prints one JSON object per line (with ``python-json-logger`` when it is
installed, else a small formatter of ours); ``text`` prints::

    2024-05-01 12:00:00,123 INFO floxide.distributed.worker [run=4f1c node=tick item=root] committed in 0.101s
"""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from floxide.distributed.execution import StepResult
from floxide.distributed.models import Claim
from floxide.distributed.worker import WorkerHooks

__all__ = ["FIELDS", "JsonFormatter", "StepContext", "TextFormatter", "WorkerFilter", "configure"]

FIELDS = ("run", "node", "item", "result", "seconds", "attempt")
"""The record attributes that describe a work item, in the order text lines show them."""

_PREFIX = ("run", "node", "item")

_step: ContextVar[tuple[str, str, str] | None] = ContextVar("floxide_step", default=None)


class StepContext(WorkerHooks):
    """Marks the step's task with its run, node and item (for :class:`WorkerFilter`)."""

    def on_claim(self, claim: Claim) -> None:
        item = claim.item
        _step.set((item.run_id, item.node, item.item_id))

    def on_result(self, claim: Claim, result: StepResult, seconds: float) -> None:
        _step.set(None)


class WorkerFilter(logging.Filter):
    """Adds ``worker`` and, inside a step, ``run``/``node``/``item`` to every record."""

    def __init__(self, worker_id: str) -> None:
        super().__init__()
        self.worker_id = worker_id

    def filter(self, record: logging.LogRecord) -> bool:
        record.worker = self.worker_id
        step = _step.get()
        if step is not None:
            for name, value in zip(_PREFIX, step, strict=True):
                if not hasattr(record, name):
                    setattr(record, name, value)
        return True


class TextFormatter(logging.Formatter):
    """``time LEVEL logger [run=.. node=.. item=..] message``, then the traceback, if any."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(where)s%(message)s")

    def format(self, record: logging.LogRecord) -> str:
        parts = [f"{name}={getattr(record, name)}" for name in _PREFIX if hasattr(record, name)]
        record.where = f"[{' '.join(parts)}] " if parts else ""
        return super().format(record)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the work-item fields, worker, error."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in (*FIELDS, "worker"):
            if hasattr(record, name):
                data[name] = getattr(record, name)
        if record.exc_info:
            data["error"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str, ensure_ascii=False)


def json_formatter() -> logging.Formatter:
    """python-json-logger's formatter when it is installed, else :class:`JsonFormatter`."""
    try:
        from pythonjsonlogger.json import JsonFormatter as Library
    except ImportError:
        return JsonFormatter()
    return Library(
        "%(levelname)s %(name)s %(message)s",
        rename_fields={"levelname": "level", "name": "logger", "exc_info": "error"},
        timestamp="time",
    )


def configure(*, format: str, level: int, worker_id: str, stream: Any = None) -> logging.Handler:
    """Send every log record to ``stream`` (stderr) as ``format`` (``json`` or ``text``) from ``level`` up.

    Replaces the root logger's handlers; returns the new handler.
    """
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(json_formatter() if format == "json" else TextFormatter())
    handler.addFilter(WorkerFilter(worker_id))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    return handler
