"""``floxide limits``: the node limits of a workflow across its workers, and run priorities.

::

    floxide limits billing            # every concurrency and rate limit: slots in use, waiting, throttled
    floxide limits billing --json

WORKFLOW is the name the workers serve the workflow under (``--serve-as``; on Kubernetes the
Workflow resource). The limits are declared in the workflow's code (``Workflow(limits=...)``,
:mod:`floxide.limits`); this shows their state in Redis (:mod:`floxide.redis.limits`): the
slots held now, the items set aside waiting for a slot or a token, and how many steps each
limit let through or throttled so far. ``floxide status`` of a run shows its priority and how
often its items were throttled.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer
from rich.table import Table

from floxide import cli_views as views
from floxide.cli_options import JsonOpt, NamespaceOpt, OutputOpt, RedisOpt, Verbose, WorkflowArg
from floxide.cli_session import connect, run_command, settings_or_exit
from floxide.distributed.models import RunInfo

if TYPE_CHECKING:
    from floxide.redis import RedisBackend

__all__ = ["flow_details", "register"]


async def flow_details(backend: RedisBackend, info: RunInfo) -> dict[str, Any]:
    """What ``floxide status`` adds: the run's priority and how often its items were throttled."""
    metrics = await backend.metrics.get(info.run_id)
    details: dict[str, Any] = {"priority": info.priority}
    throttled = sum(node.throttled for node in metrics.nodes.values())
    if throttled:
        details["throttled"] = throttled
    return details


def limits(
    workflow: WorkflowArg,
    output: OutputOpt = None,
    redis: RedisOpt = None,
    namespace: NamespaceOpt = None,
    as_json: JsonOpt = False,
    verbose: Verbose = False,
) -> None:
    """Show a workflow's node limits: slots in use, items waiting (throttled), totals so far."""
    settings, ns = settings_or_exit(redis, namespace, verbose)

    async def go() -> dict[str, Any]:
        async with connect(settings, ns) as session:
            backend = session.backend(workflow)
            usage = await backend.limits.usage()
            return {
                "workflow": workflow,
                "throttled_now": await backend.limits.throttled(),
                "limits": [u.model_dump() for u in usage],
            }

    data = run_command(go(), verbose=verbose)

    def render() -> Table | str:
        if not data["limits"]:
            return f"{workflow}: no node limit used yet"
        table = Table(title=f"{workflow}: {data['throttled_now']} item(s) waiting for a limit")
        for column in ("LIMIT", "KIND", "MAX", "IN USE", "WAITING", "GRANTED", "THROTTLED"):
            table.add_column(column, justify="right" if column not in ("LIMIT", "KIND", "MAX") else "left")
        for u in data["limits"]:
            in_use = str(u["in_use"]) if u["kind"] == "concurrency" else "-"
            table.add_row(
                u["ident"],
                u["kind"],
                u["limit"],
                in_use,
                str(u["waiting"]),
                str(u["granted"]),
                str(u["throttled"]),
            )
        return table

    views.show(data, views.pick_format(output, as_json=as_json), lambda wide: render())


def register(app: typer.Typer) -> None:
    """Add ``floxide limits`` to ``app`` (see :data:`floxide.cli.EXTENSIONS`)."""
    app.command("limits")(limits)
