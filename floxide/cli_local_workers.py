"""``floxide run TARGET --redis URL --workers N``: one run on worker processes started for it."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from typing import Any

from floxide.cli import CliError, ProgressReporter
from floxide.cli_distributed import (
    connect,
    fail_command,
    input_or_exit,
    load_or_exit,
    print_outcome,
    run_command,
    settings_or_exit,
)
from floxide.distributed.models import RunInfo
from floxide.runner import Progress

__all__ = ["run_distributed"]


def run_distributed(
    *,
    target: str,
    input: str | None,
    run_id: str | None,
    redis: str | None,
    workers: int | None,
    all_outputs: bool = False,
    verbose: bool = False,
) -> None:
    """``floxide run TARGET --redis URL --workers N``: run on N local worker processes, print the output.

    The workers are ``python -m floxide_worker TARGET`` (no HTTP server), stopped with
    SIGTERM once the run is over; they join any other worker of the workflow in the namespace.
    """
    workflow = load_or_exit(target, verbose)
    settings, ns = settings_or_exit(redis, None, verbose)
    count = 1 if workers is None else workers
    if count < 0:
        fail_command(CliError(f"bad --workers: must be 0 or more (got {count})"), code=2, verbose=verbose)
    value = input_or_exit(workflow, input, verbose)
    reporter = ProgressReporter(workflow.name)
    started: list[str] = []

    async def go() -> tuple[RunInfo, list[Any]]:
        from floxide.distributed.orchestrator import DistributedOrchestrator

        async with connect(settings, ns) as session:
            backend = session.backend(workflow.name, context_type=workflow.context_type)
            orchestrator = DistributedOrchestrator(workflow, backend)
            processes = _spawn_workers(target, settings.url, ns, count, verbose=verbose)
            try:
                started.append(await orchestrator.start_run(value, run_id=run_id))
                while True:
                    info = await orchestrator.run(started[0])
                    reporter.update(Progress(info.items_done, info.items_total - info.items_done, 0))
                    if info.status.finished:
                        return info, await orchestrator.outputs(started[0])
                    if processes and all(p.poll() is not None for p in processes):
                        codes = sorted({p.returncode for p in processes})
                        raise CliError(
                            f"the worker processes exited (status {codes}) before the run finished", code=1
                        )
                    await asyncio.sleep(0.1)
            finally:
                await asyncio.get_running_loop().run_in_executor(None, _stop_workers, processes)

    with reporter:
        info, outputs = run_command(go(), verbose=verbose, started=started)
    print_outcome(info, all_outputs=all_outputs, outputs=outputs)


def _spawn_workers(
    target: str, url: str, namespace: str, count: int, *, verbose: bool
) -> list[subprocess.Popen[bytes]]:
    env = {**os.environ, "FLOXIDE_REDIS_URL": url, "FLOXIDE_NAMESPACE": namespace}  # no password on argv
    command = [
        sys.executable,
        "-m",
        "floxide_worker",
        target,
        "--http-port",
        "0",
        "--log-level",
        "INFO" if verbose else "WARNING",
    ]
    # What the workers print goes to stderr: stdout carries only the run's JSON output.
    return [
        subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stdout=sys.stderr.fileno())
        for _ in range(count)
    ]


def _stop_workers(processes: list[subprocess.Popen[bytes]], grace: float = 30.0) -> None:
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for process in processes:
        try:
            process.wait(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
