"""Fixtures of the in-memory distributed tests: the marks directory nodes write to."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.distributed.flows import MARKS_ENV


@pytest.fixture
def marks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The directory nodes of :mod:`tests.distributed.flows` write their marks to."""
    directory = tmp_path / "marks"
    directory.mkdir()
    monkeypatch.setenv(MARKS_ENV, str(directory))
    return directory
