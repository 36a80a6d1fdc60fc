"""The operator load benchmark still runs: a few runs through benchmarks/operator_load.py.

Cases:
- ``python benchmarks/operator_load.py --runs 3`` exits 0, prints every figure and meets its
  targets (every run Succeeded, no two status patches of a run under a second apart).
"""

from __future__ import annotations

import subprocess
import sys

from tests.operator.kopfharness import ROOT


def test_benchmark_smoke() -> None:
    result = subprocess.run(
        [sys.executable, "benchmarks/operator_load.py", "--runs", "3", "--timeout", "120"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for label in ("all Succeeded after", "status patches per run", "shortest gap", "operator CPU time"):
        assert label in result.stdout
    assert "target met" in result.stdout
