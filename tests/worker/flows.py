"""Workflows the worker-process tests run (loaded by worker processes as ``tests/worker/flows.py:<name>``).

* ``gate``: ``check`` fails for good (``PermanentError``) unless the file named by the input
  exists, then ``open_gate`` answers ``"open: <file name>"``. A Failed run is retried after
  the test creates the file. ``check`` logs a line of its own (it must carry run and node).
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from pydantic import BaseModel

from floxide import PermanentError, Workflow, edge, node

log = logging.getLogger("tests.worker.flows")


class Gate(BaseModel):
    marker: str


@node
async def check(gate: Gate) -> str:
    log.warning("looking for %s", gate.marker)
    if not await asyncio.to_thread(Path(gate.marker).exists):
        raise PermanentError(f"{Path(gate.marker).name} is missing")
    return Path(gate.marker).name


@node
async def open_gate(name: str) -> str:
    return f"open: {name}"


gate: Workflow[Gate, str] = Workflow("gate", start=check, edges=[edge(check, open_gate)])
