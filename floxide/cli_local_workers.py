"""``floxide run TARGET --redis URL --workers N``: one run on worker processes started for it."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any

from floxide.cli import CliError, ProgressReporter
from floxide.cli_session import (
    connect,
    fail_command,
    in_background,
    input_or_exit,
    limit_or_exit,
    live_workers,
    load_or_exit,
    print_outcome,
    run_command,
    run_id_or_exit,
    settings_or_exit,
    warn_without_workers,
    worker_hint,
)
from floxide.distributed.models import RunInfo
from floxide.runner import Progress

if TYPE_CHECKING:
    from floxide.distributed.orchestrator import DistributedOrchestrator

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

    The Redis URL is ``--redis`` or else ``FLOXIDE_REDIS_URL``: one of them is needed (without
    them, ``floxide run`` runs in its own process). The workers are ``python -m floxide_worker
    TARGET`` (no HTTP server), stopped with SIGTERM once the run is over; they join any other
    worker of the workflow in the namespace. ``--workers 0`` starts none: the run is left to
    the workers already serving the workflow, and refused (exit status 2) if there are none.
    """
    if redis is None and not os.environ.get("FLOXIDE_REDIS_URL"):
        message = "--workers runs on Redis: give --redis URL (or set FLOXIDE_REDIS_URL), or drop --workers"
        fail_command(CliError(message), code=2, verbose=verbose)
    count = 1 if workers is None else workers
    if count < 0:
        fail_command(CliError(f"bad --workers: must be 0 or more (got {count})"), code=2, verbose=verbose)
    workflow = load_or_exit(target, verbose)
    settings, ns = settings_or_exit(redis, None, verbose)
    limit = limit_or_exit(verbose)
    value = input_or_exit(workflow, input, verbose, limit=limit)
    run_id = run_id_or_exit(run_id, verbose)
    reporter = ProgressReporter(workflow.name, unit="items")
    started: list[str] = []

    async def go() -> tuple[RunInfo, list[Any]]:
        from floxide.distributed.orchestrator import DistributedOrchestrator

        async with connect(settings, ns) as session:
            backend = session.backend(workflow.name, context_type=workflow.context_type)
            orchestrator = DistributedOrchestrator(workflow, backend, max_payload_bytes=limit)
            hint = worker_hint(target, ns)
            if count == 0 and not await live_workers(backend):
                raise CliError(
                    f"--workers 0 starts no worker, and no live worker serves workflow '{workflow.name}' "
                    f"in namespace '{ns}' ({hint}, or give --workers 1 or more)"
                )
            processes = _spawn_workers(target, settings.url, ns, count, verbose=verbose)
            try:
                async with in_background(warn_without_workers(backend, ns, hint) if count == 0 else _idle()):
                    return await _follow(orchestrator, started, value, run_id, processes, reporter)
            finally:
                await asyncio.get_running_loop().run_in_executor(None, _stop_workers, processes)

    with reporter:
        info, outputs = run_command(go(), verbose=verbose, started=started)
    print_outcome(info, all_outputs=all_outputs, outputs=outputs)


async def _idle() -> None:
    """Nothing to watch: the run has workers of its own."""


async def _follow(
    orchestrator: DistributedOrchestrator,
    started: list[str],
    value: Any,
    run_id: str | None,
    processes: list[subprocess.Popen[bytes]],
    reporter: ProgressReporter,
) -> tuple[RunInfo, list[Any]]:
    """Start the run (its id goes to ``started``) and follow it to its end: its record and outputs."""
    started.append(await orchestrator.start_run(value, run_id=run_id))
    while True:
        info = await orchestrator.run(started[0])
        reporter.update(Progress(info.items_done, info.items_total - info.items_done, 0))
        if info.status.finished:
            return info, await orchestrator.outputs(started[0])
        if processes and all(p.poll() is not None for p in processes):
            codes = sorted({p.returncode for p in processes})
            raise CliError(f"the worker processes exited (status {codes}) before the run finished", code=1)
        await asyncio.sleep(0.1)


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
