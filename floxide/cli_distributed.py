"""The distributed ``floxide`` commands: submit runs to Redis workers, watch and steer them.

::

    floxide submit examples.countdown:workflow --input '{"steps": 20}' --wait
    floxide status RUN          floxide runs --status Failed     floxide workers
    floxide pause RUN           floxide resume RUN               floxide cancel RUN
    floxide retry RUN           floxide errors RUN
    floxide run examples.countdown:workflow --input '{"steps": 20}' --redis redis://localhost:6379 --workers 2

Every command takes ``--redis URL`` (else ``FLOXIDE_REDIS_URL``; ``FLOXIDE_REDIS_PASSWORD``
and the TLS settings of :class:`floxide.redis.RedisSettings` apply) and ``--namespace NS``
(else ``FLOXIDE_NAMESPACE``, default ``default``). Commands that take only a RUN find its
workflow in the run index (:mod:`floxide.redis.index`); ``--workflow NAME`` says it instead.

``submit --wait`` says on stderr when no live worker serves the workflow (and gives up after
``--timeout`` seconds, if given; the run goes on).

On a terminal, results are rich tables; otherwise (or with ``--json``) they are JSON on
stdout. Errors are one line on stderr (``--verbose`` adds the traceback); the exit status is
2 for bad usage (a malformed ``--redis`` URL or ``--run-id``, the ``redis`` extra missing),
input, target or an unknown run, 1 for a failed run or an operation refused. What the
commands share (settings, the session on Redis, errors) is in :mod:`floxide.cli_session`;
``status``, ``runs``, ``errors`` and ``workers`` are in :mod:`floxide.cli_runs`.

Redis code is imported when a command runs, not when the ``floxide`` command starts.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from floxide import cli as local
from floxide import cli_views as views
from floxide.cli import CliError
from floxide.cli_options import JsonOpt, NamespaceOpt, RedisOpt, RunArg, Verbose, WorkflowOpt
from floxide.cli_progress import follow_run
from floxide.cli_session import (
    Session,
    connect,
    fail_command,
    in_background,
    input_or_exit,
    limit_or_exit,
    load_or_exit,
    print_outcome,
    run_command,
    run_id_or_exit,
    settings_or_exit,
    warn_without_workers,
    worker_hint,
)
from floxide.cli_views import short_id
from floxide.distributed.models import RunInfo, RunStatus
from floxide.distributed.priority import PRIORITIES
from floxide.errors import AlreadyCompleted, FloxideError, NotStarted
from floxide.errors import Timeout as RunTimeout

if TYPE_CHECKING:
    from floxide.redis import RedisBackend

__all__ = [
    "Session",
    "connect",
    "control",
    "fail_command",
    "input_or_exit",
    "load_or_exit",
    "print_outcome",
    "register",
    "run_command",
    "settings_or_exit",
]

# -- commands ---------------------------------------------------------------------------------



def submit(
    target: Annotated[str, typer.Argument(help="path/to/file.py:attr or package.module:attr (a Workflow).")],
    input: Annotated[
        str | None, typer.Option("--input", "-i", help="The input as JSON, @file.json or @-.")
    ] = None,
    run_id: Annotated[str | None, typer.Option("--run-id", help="The run's id (default: a new one).")] = None,
    idempotency_key: Annotated[
        str | None,
        typer.Option(
            "--idempotency-key",
            help="Submit at most once under this key: a repeated submit prints the first run's id "
            "(remembered for the retention time).",
            show_default=False,
        ),
    ] = None,
    priority: Annotated[
        str,
        typer.Option(
            "--priority",
            help="high, normal or low: workers take a higher class's items first (low still moves).",
        ),
    ] = "normal",
    wait: Annotated[
        bool, typer.Option("--wait", help="Wait for the run (progress on stderr); print its output as JSON.")
    ] = False,
    timeout: Annotated[
        float | None,
        typer.Option("--timeout", min=0, help="With --wait: give up waiting after this many seconds."),
    ] = None,
    serve_as: Annotated[
        str | None,
        typer.Option(
            "--serve-as",
            help="The name its workers serve the workflow under (on Kubernetes: the Workflow resource's "
            "name); default: the workflow's own name.",
            show_default=False,
        ),
    ] = None,
    redis: RedisOpt = None,
    namespace: NamespaceOpt = None,
    verbose: Verbose = False,
) -> None:
    """Start a run for the workers of its workflow; print its id (with --wait: its output)."""
    workflow = load_or_exit(target, verbose)
    settings, ns = settings_or_exit(redis, namespace, verbose)
    limit = limit_or_exit(verbose)
    value = input_or_exit(workflow, input, verbose, limit=limit)
    run_id = run_id_or_exit(run_id, verbose)
    if priority not in PRIORITIES:
        fail_command(CliError(f"--priority must be one of {', '.join(PRIORITIES)}, not {priority!r}"), code=2,
                     verbose=verbose)  # fmt: skip

    started: list[str] = []

    async def go() -> RunInfo | None:
        from floxide.distributed.orchestrator import DistributedOrchestrator

        async with connect(settings, ns) as session:
            backend = session.backend(serve_as or workflow.name, context_type=workflow.context_type)
            orchestrator = DistributedOrchestrator(workflow, backend, max_payload_bytes=limit)
            key = idempotency_key
            started.append(
                await orchestrator.start_run(value, run_id=run_id, idempotency_key=key, priority=priority)
            )
            if not wait:
                return None
            sys.stderr.write(f"floxide: submitted run {started[0]}\n")
            hint = worker_hint(target, ns, serve_as)
            try:
                progress = follow_run(backend.runs, started[0], label=f"run {short_id(started[0])}")
                async with in_background(warn_without_workers(backend, ns, hint)), in_background(progress):
                    return await orchestrator.wait_for_completion(started[0], timeout=timeout)
            except RunTimeout as exc:
                raise CliError(f"{exc} (the run goes on: floxide status {started[0]})", code=1) from exc

    info = run_command(go(), verbose=verbose, started=started)
    if info is None:
        sys.stdout.write(f"{started[0]}\n")
        return
    print_outcome(info, all_outputs=False, outputs=[])


async def control(backend: RedisBackend, run_id: str, action: str, *, interrupt: bool = True) -> RunStatus:
    """Pause, resume, cancel or retry a run, with the orchestrator's rules (also the dashboard's actions)."""
    info = await backend.runs.get(run_id)
    if info is None:
        raise NotStarted(f"run '{run_id}' does not exist (or has expired)")
    if action == "resume" and info.status is RunStatus.FAILED:
        raise FloxideError(
            f"run '{run_id}' failed; use 'floxide retry {run_id}' to run it again from where it failed"
        )
    if action == "retry" and info.status is not RunStatus.FAILED:
        raise FloxideError(f"run '{run_id}' is {info.status.value}; only a Failed run can be retried")
    target = {
        "pause": RunStatus.PAUSED,
        "resume": RunStatus.RUNNING,
        "retry": RunStatus.RUNNING,
        "cancel": RunStatus.CANCELLED,
    }[action]
    extra: dict[str, Any] = {"reason": "cancelled", "interrupt": interrupt} if action == "cancel" else {}
    current = await backend.set_status(run_id, target, **extra)
    if current is None:
        raise NotStarted(f"run '{run_id}' does not exist (or has expired)")
    if current is not target:
        raise AlreadyCompleted(f"run '{run_id}' is {current.value}; it cannot become {target.value}")
    return current


def _steer(
    action: str,
    run: str,
    workflow: str | None,
    redis: str | None,
    namespace: str | None,
    *,
    as_json: bool,
    verbose: bool,
    interrupt: bool = True,
) -> None:
    settings, ns = settings_or_exit(redis, namespace, verbose)

    async def go() -> tuple[RunStatus, RunInfo | None]:
        async with connect(settings, ns) as session:
            backend = await session.locate(run, workflow)
            try:
                return await control(backend, run, action, interrupt=interrupt), None
            except AlreadyCompleted:  # resuming a completed run: as 'floxide run' with its id
                info = await backend.runs.get(run) if action == "resume" else None
                if info is None or info.status is not RunStatus.COMPLETED:
                    raise
                return info.status, info

    now, done = run_command(go(), verbose=verbose)
    if done is not None and not as_json:  # the recorded output (as 'floxide run' prints it), status 0
        print_outcome(done, all_outputs=False, outputs=[])
        return
    shown: dict[str, Any] = {"run_id": run, "status": now.value}
    if done is not None:
        shown["output"] = done.output
    views.show(shown, views.pick_format(None, as_json=as_json), lambda wide: f"run {run}: {now.value}")


def pause(
    run: RunArg,
    workflow: WorkflowOpt = None,
    redis: RedisOpt = None,
    namespace: NamespaceOpt = None,
    as_json: JsonOpt = False,
    verbose: Verbose = False,
) -> None:
    """Hold a run: its items wait unprocessed until resume (running steps finish)."""
    _steer("pause", run, workflow, redis, namespace, as_json=as_json, verbose=verbose)


def resume(
    run: Annotated[
        str,
        typer.Argument(metavar="RUN", help="The run's id (with --checkpoint: the TARGET of a local run)."),
    ],
    checkpoint: Annotated[
        Path | None,
        typer.Option(
            "--checkpoint", help="A local run: the directory it was checkpointed in (needs --run-id)."
        ),
    ] = None,
    run_id: Annotated[str | None, typer.Option("--run-id", help="A local run: the id of the run.")] = None,
    workflow: WorkflowOpt = None,
    redis: RedisOpt = None,
    namespace: NamespaceOpt = None,
    as_json: JsonOpt = False,
    verbose: Verbose = False,
) -> None:
    """Continue a paused run (or, with --checkpoint, a checkpointed local run: TARGET --run-id ID)."""
    if checkpoint is not None or run_id is not None:
        if checkpoint is None or run_id is None:
            fail_command(
                CliError("a local run is resumed with both --checkpoint and --run-id"),
                code=2,
                verbose=verbose,
            )
        local.resume(target=run, checkpoint=checkpoint, run_id=run_id, verbose=verbose)
        return
    _steer("resume", run, workflow, redis, namespace, as_json=as_json, verbose=verbose)


def cancel(
    run: RunArg,
    no_interrupt: Annotated[
        bool, typer.Option("--no-interrupt", help="Let running steps finish (their results are dropped).")
    ] = False,
    workflow: WorkflowOpt = None,
    redis: RedisOpt = None,
    namespace: NamespaceOpt = None,
    as_json: JsonOpt = False,
    verbose: Verbose = False,
) -> None:
    """Cancel a run: its queued items are dropped and its running steps cancelled."""
    _steer(
        "cancel",
        run,
        workflow,
        redis,
        namespace,
        as_json=as_json,
        verbose=verbose,
        interrupt=not no_interrupt,
    )


def retry(
    run: RunArg,
    workflow: WorkflowOpt = None,
    redis: RedisOpt = None,
    namespace: NamespaceOpt = None,
    as_json: JsonOpt = False,
    verbose: Verbose = False,
) -> None:
    """Run a Failed run again from where it failed (its failed items are queued again)."""
    _steer("retry", run, workflow, redis, namespace, as_json=as_json, verbose=verbose)


def register(app: typer.Typer) -> None:
    """Add the distributed commands to ``app`` (see :data:`floxide.cli.EXTENSIONS`).

    ``resume`` replaces the local command of that name: it resumes a distributed run by
    id, and still a checkpointed local run when given ``--checkpoint`` (calling it).
    """
    app.registered_commands = [
        c for c in app.registered_commands if (c.name or getattr(c.callback, "__name__", "")) != "resume"
    ]
    for command in (submit, pause, resume, cancel, retry):
        app.command(command.__name__)(command)
