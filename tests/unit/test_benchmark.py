"""The local benchmark script stays runnable.

Cases:
* ``benchmarks/local_engine.py --quick`` runs every workload, checks each result, and
  prints a row per workload and a verdict per target.
"""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "local_engine.py"


def test_quick_benchmark(capsys: pytest.CaptureFixture[str]) -> None:
    module = runpy.run_path(str(SCRIPT))
    module["main"](["--quick"])
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith(("chain,", "fan-out +"))]
    assert len(rows) == 4
    targets = out.splitlines()[out.splitlines().index("targets") + 1 :]
    assert len(targets) == 4
    assert all(" met " in line or " NOT met " in line for line in targets)
    assert "(target >= 100,000)" in targets[0]
