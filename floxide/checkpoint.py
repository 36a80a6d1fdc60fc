"""Checkpoints: a local run's whole state, saved after every step so it can resume.

A checkpoint holds the context, every work item not yet committed (queued, running or
waiting to retry), the fan-out frames, the outputs so far and the run's status. It is
JSON, so the in-memory store behaves exactly like the durable ones.

Semantics: ``run_with_checkpoint`` saves after each committed step; a crash or a failure
leaves the last committed state, whose items include the one that failed, so ``resume``
runs it again. A completed run is saved with its outputs: running it again returns them
without re-executing anything, and ``resume`` says it is :class:`AlreadyCompleted`.
"""

from __future__ import annotations

import asyncio
import os
import re
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from floxide.errors import CheckpointError
from floxide.workitem import WorkItem

__all__ = ["Checkpoint", "CheckpointStore", "FileCheckpointStore", "InMemoryCheckpointStore", "OutputRecord"]

_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")


class OutputRecord(BaseModel):
    """A run output and the node that produced it."""

    model_config = ConfigDict(ser_json_inf_nan="constants")  # NaN and infinities kept, not null

    node: str
    value: Any


class Checkpoint(BaseModel):
    """The saved state of a local run."""

    model_config = ConfigDict(ser_json_inf_nan="constants")  # NaN and infinities kept, not null

    version: Literal[1] = 1
    workflow: str
    run_id: str
    status: Literal["running", "completed", "failed"] = "running"
    context: dict[str, Any] | None = None
    items: list[WorkItem] = Field(default_factory=list)
    frames: dict[str, Any] = Field(default_factory=dict)
    outputs: list[OutputRecord] = Field(default_factory=list)
    steps: int = 0
    next_id: int = 0
    error: str | None = None
    updated_at: datetime = Field(default_factory=lambda: datetime.now(UTC))


@runtime_checkable
class CheckpointStore(Protocol):
    """Where checkpoints live."""

    async def save(self, run_id: str, checkpoint: Checkpoint) -> None:
        """Store ``checkpoint`` as the latest state of ``run_id``."""

    async def load(self, run_id: str) -> Checkpoint | None:
        """The latest checkpoint of ``run_id``, or ``None``."""


class InMemoryCheckpointStore:
    """Checkpoints in this process's memory (kept as JSON: copies, never shared objects)."""

    def __init__(self) -> None:
        self._data: dict[str, str] = {}

    async def save(self, run_id: str, checkpoint: Checkpoint) -> None:
        self._data[run_id] = checkpoint.model_dump_json()

    async def load(self, run_id: str) -> Checkpoint | None:
        raw = self._data.get(run_id)
        return None if raw is None else Checkpoint.model_validate_json(raw)


class FileCheckpointStore:
    """One JSON file per run in ``directory``, replaced atomically (and fsynced) on each save."""

    def __init__(self, directory: str | os.PathLike[str], *, fsync: bool = True) -> None:
        self.directory = Path(directory)
        self.fsync = fsync

    def path(self, run_id: str) -> Path:
        """The file of ``run_id``."""
        if not _SAFE_ID.match(run_id):
            raise CheckpointError(
                f"run id {run_id!r} is not usable as a file name: use letters, digits, '.', '_' and '-'"
            )
        return self.directory / f"{run_id}.json"

    async def save(self, run_id: str, checkpoint: Checkpoint) -> None:
        await asyncio.to_thread(self._write, self.path(run_id), checkpoint.model_dump_json())

    async def load(self, run_id: str) -> Checkpoint | None:
        path = self.path(run_id)
        try:
            raw = await asyncio.to_thread(path.read_text, encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise CheckpointError(f"cannot read checkpoint {path}: {exc}") from exc
        try:
            return Checkpoint.model_validate_json(raw)
        except ValidationError as exc:
            raise CheckpointError(f"checkpoint {path} is damaged: {exc.errors()[0]['msg']}") from exc

    def _write(self, path: Path, data: str) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(data)
                if self.fsync:
                    handle.flush()
                    os.fsync(handle.fileno())
            os.replace(tmp, path)
            if self.fsync:
                dir_fd = os.open(path.parent, os.O_RDONLY)
                try:
                    os.fsync(dir_fd)
                finally:
                    os.close(dir_fd)
        except OSError as exc:
            raise CheckpointError(f"cannot write checkpoint {path}: {exc}") from exc
