"""The operator under load: many WorkflowRuns created at once.

Against KMock (the Kubernetes API emulator of the operator tests) with a private redis-server
and real worker processes, started by a stand-in kubelet as the operator scales the worker
Deployment. The operator is the real command, ``floxide operator``, in a process of its own, with
its production intervals (a run's status is compared with Redis every second, and patched at
most once a second).

Figures:

* time from creating the runs to the last one showing ``Succeeded`` in its status;
* status patches per run (mean and most), and the shortest gap between two patches of a run
  (the operator promises at least one second);
* the operator process's CPU time (user + system) over the whole benchmark, and per run.

Targets: every run Succeeded, no two patches of one run less than a second apart.

KMock matches every request against its request log, so the benchmark keeps that log short
(:class:`LeanEmulator`); the emulator then costs a few milliseconds per request.

    python benchmarks/operator_load.py               # 200 runs of the branching example
    python benchmarks/operator_load.py --runs 50     # a quicker look
    python benchmarks/operator_load.py --real        # on a real API server (operator_load_real.py)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # for the operator tests' harness

import kmock  # noqa: E402

from tests.operator.kopfharness import (  # noqa: E402
    DEPLOYMENTS,
    NO_PERSISTENCE,
    RUNS,
    WORKFLOWS,
    Api,
    Emulator,
    Kubelet,
    eventually,
    register_resources,
    run_manifest,
    workflow_manifest,
    write_kubeconfig,
)
from tests.redis.conftest import RedisServer  # noqa: E402

MIN_PATCH_GAP = 1.0  # seconds between two status patches of one run, at least
KEPT_REQUESTS = 10  # requests KMock keeps in its log once the operator watches


class LeanEmulator(Emulator):
    """The tests' emulator with a short request log.

    KMock matches each request against its whole request log, so serving N requests costs
    O(N²): fine for a test, hopeless for thousands of runs. Once the operator's watches are
    open, the log is cut to its last :data:`KEPT_REQUESTS` entries; what the figures need (when
    each run's status was patched) is recorded on the side.
    """

    def start_trimming(self) -> None:
        self.__dict__["trim"] = True

    @property
    def status_patches(self) -> dict[str, list[float]]:
        """Arrival times of the status patches of each WorkflowRun, by name."""
        return self.__dict__.setdefault("_status_patches", defaultdict(list))

    async def _handle(self, request: kmock.Request) -> Any:
        arrival = time.time()
        if (
            request.method == kmock.method.PATCH
            and request.subresource == "status"
            and request.resource == self.resource(RUNS)
        ):
            self.status_patches[str(request.name)].append(arrival)
        try:
            return await super()._handle(request)
        finally:
            if self.__dict__.get("trim") and len(self._requests) > 2 * KEPT_REQUESTS:
                del self._requests[:-KEPT_REQUESTS]
                self.arrivals.clear()


@dataclass(frozen=True)
class Figures:
    runs: int
    workers: int
    seconds: float
    patches: list[int]
    gap: float
    cpu: float

    def lines(self) -> list[str]:
        mean, most = statistics.mean(self.patches), max(self.patches)
        rows = [
            ("runs", f"{self.runs} (branching example, input 42), {self.workers} workers at most"),
            ("all Succeeded after", f"{self.seconds:.1f} s"),
            ("status patches per run", f"{mean:.1f} mean, {most} most"),
            ("shortest gap between patches", f"{self.gap:.2f} s (target: at least {MIN_PATCH_GAP:.0f} s)"),
            ("operator CPU time", f"{self.cpu:.1f} s ({1000 * self.cpu / self.runs:.0f} ms per run)"),
        ]
        return [f"{label:<30}{value}" for label, value in rows]


@contextlib.contextmanager
def operator_process(environment: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``floxide operator`` in a process of its own; its CPU time is measured when it stops."""
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-c", "from floxide.cli import main; raise SystemExit(main(['operator']))"],
            cwd=ROOT,
            env={**os.environ, **environment},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)


def stop_and_measure(process: subprocess.Popen[bytes]) -> float:
    """SIGTERM the operator, wait for it, and return its CPU seconds (user + system)."""
    process.send_signal(signal.SIGTERM)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    return usage.ru_utime + usage.ru_stime


async def benchmark(runs: int, workers: int, timeout: float) -> Figures:
    with tempfile.TemporaryDirectory(prefix="floxide-operator-load-") as scratch:
        directory = Path(scratch)
        redis = RedisServer(directory / "redis", args=NO_PERSISTENCE)
        redis.start()
        try:
            async with LeanEmulator() as emulator, kmock.Server(emulator):
                return await _against(emulator, redis, directory, runs=runs, workers=workers, timeout=timeout)
        finally:
            redis.stop()


async def _against(
    emulator: LeanEmulator, redis: RedisServer, directory: Path, *, runs: int, workers: int, timeout: float
) -> Figures:
    register_resources(emulator)
    api = Api(emulator)
    environment = {
        "KUBECONFIG": str(write_kubeconfig(directory / "kubeconfig", str(emulator.url))),
        "FLOXIDE_REDIS_URL": redis.url,
        "FLOXIDE_OPERATOR_METRICS_PORT": "0",
        "FLOXIDE_OPERATOR_LIVENESS_ENDPOINT": "",
        "FLOXIDE_OPERATOR_PEERING_NAME": "",
        "FLOXIDE_LOG_FORMAT": "text",
        "FLOXIDE_LOG_LEVEL": "WARNING",
    }
    with operator_process(environment, directory / "operator.log") as process:
        watched = {emulator.resource(resource) for resource in (WORKFLOWS, RUNS, DEPLOYMENTS)}
        await eventually(
            lambda: watched <= {r.resource for r in list(emulator) if r.params.get("watch") == "true"},
            timeout=60,
            what="the operator's watches",
        )
        emulator.start_trimming()
        kubelet = Kubelet(api, directory)
        with kubelet:
            scaling = {"maxWorkers": workers, "targetBacklogPerWorker": 10}
            await api.create(WORKFLOWS, workflow_manifest(concurrency=8, scaling=scaling))
            await eventually(lambda: api.get(DEPLOYMENTS, "examples-workers"), what="the worker Deployment")
            started = time.monotonic()
            await asyncio.gather(*(api.create(RUNS, run_manifest(f"load-{i:04}", 42)) for i in range(runs)))

            def succeeded() -> bool:
                phases = [(item.get("status") or {}).get("phase") for item in api.items(RUNS)]
                return phases.count("Succeeded") == runs

            await eventually(succeeded, timeout=timeout, interval=0.1, what=f"{runs} runs Succeeded")
            seconds = time.monotonic() - started
            cpu = await asyncio.to_thread(stop_and_measure, process)  # KMock serves its last requests
            await kubelet.stop()
    times = emulator.status_patches
    gaps = [later - earlier for series in times.values() for earlier, later in pairwise(series)]
    return Figures(
        runs=runs,
        workers=workers,
        seconds=seconds,
        patches=[len(times[f"load-{i:04}"]) for i in range(runs)],
        gap=min(gaps, default=float("nan")),
        cpu=cpu,
    )


def main() -> int:
    if "--real" in sys.argv[1:]:  # the same load on a real API server: benchmarks/operator_load_real.py
        real = [arg for arg in sys.argv[1:] if arg != "--real"]
        script = Path(__file__).with_name("operator_load_real.py")
        return subprocess.call([sys.executable, str(script), *real])
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=200, help="WorkflowRuns created at once (200)")
    parser.add_argument("--workers", type=int, default=4, help="most worker processes (4)")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for the runs (600)")
    args = parser.parse_args()
    figures = asyncio.run(benchmark(args.runs, args.workers, args.timeout))
    python = f"{platform.python_implementation()} {platform.python_version()}"
    print(f"operator load on {python}, {os.cpu_count()} CPUs")
    for line in figures.lines():
        print(f"  {line}")
    ok = figures.gap >= MIN_PATCH_GAP * 0.9 and len(figures.patches) == figures.runs
    print("  target met" if ok else "  TARGET MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
