"""``floxide run-limit``: at most N active runs of a workflow; the others wait ``Queued``, in order.

::

    floxide run-limit countdown 2            # at most 2 runs of 'countdown' at once
    floxide run-limit countdown              # show the limit, active and queued runs
    floxide run-limit countdown --unlimited  # remove the limit (queued runs start now)

WORKFLOW is the name the workers serve the workflow under (``--serve-as``, on Kubernetes the
Workflow resource, whose ``spec.maxActiveRuns`` the operator applies instead). The limit is
kept in Redis (:mod:`floxide.redis.runqueue`) and applies to every later submission; a
``floxide status`` of a queued run shows its place in line.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from floxide import cli_views as views
from floxide.cli import CliError
from floxide.cli_options import JsonOpt, NamespaceOpt, OutputOpt, RedisOpt, Verbose, WorkflowArg
from floxide.cli_session import connect, fail_command, run_command, settings_or_exit
from floxide.distributed.models import RunInfo, RunStatus

if TYPE_CHECKING:
    from floxide.redis import RedisBackend

__all__ = ["register", "run_queue_details"]


async def run_queue_details(backend: RedisBackend, info: RunInfo) -> dict[str, Any]:
    """What ``floxide status`` adds about the run limit: the limit, active runs, the run's place."""
    state = await backend.run_queue.state()
    if state.limit is None and info.status is not RunStatus.QUEUED:
        return {}
    details = state.as_dict()
    if info.status is RunStatus.QUEUED:
        details["queue_position"] = await backend.run_queue.position(info.run_id)
    return details


def run_limit(
    workflow: WorkflowArg,
    max_active_runs: Annotated[
        int | None,
        typer.Argument(min=1, help="At most this many active runs (default: show the current limit)."),
    ] = None,
    unlimited: Annotated[bool, typer.Option("--unlimited", help="Remove the limit.")] = False,
    output: OutputOpt = None,
    redis: RedisOpt = None,
    namespace: NamespaceOpt = None,
    as_json: JsonOpt = False,
    verbose: Verbose = False,
) -> None:
    """Limit how many runs of a workflow are active at once; further runs wait Queued, in order."""
    if unlimited and max_active_runs is not None:
        fail_command(CliError("give MAX_ACTIVE_RUNS or --unlimited, not both"), code=2, verbose=verbose)
    settings, ns = settings_or_exit(redis, namespace, verbose)

    async def go() -> dict[str, Any]:
        async with connect(settings, ns) as session:
            queue = session.backend(workflow).run_queue
            if unlimited or max_active_runs is not None:
                await queue.set_limit(None if unlimited else max_active_runs)
            return {"workflow": workflow, **(await queue.state()).as_dict()}

    data = run_command(go(), verbose=verbose)

    def render() -> str:
        limit = data["max_active_runs"]
        shown = "unlimited" if limit is None else f"at most {limit}"
        return f"{workflow}: {shown} active runs; {data['active_runs']} active, {data['queued_runs']} queued"

    views.show(data, views.pick_format(output, as_json=as_json), lambda wide: render())


def register(app: typer.Typer) -> None:
    """Add ``floxide run-limit`` to ``app`` (see :data:`floxide.cli.EXTENSIONS`)."""
    app.command("run-limit")(run_limit)
