"""The options the distributed ``floxide`` commands share, declared once (Typer ``Annotated`` aliases).

A command takes ``redis: RedisOpt = None, namespace: NamespaceOpt = None, output: OutputOpt = None``
and so on; help texts and option names stay the same across commands.
"""

from __future__ import annotations

from typing import Annotated

import typer

from floxide.cli_views import OutputFormat

__all__ = [
    "IntervalOpt",
    "JsonOpt",
    "NamespaceOpt",
    "OutputOpt",
    "RedisOpt",
    "RunArg",
    "Verbose",
    "WatchOpt",
    "WideOpt",
    "WorkflowArg",
    "WorkflowOpt",
]

RunArg = Annotated[str, typer.Argument(help="The run's id.")]
WorkflowArg = Annotated[str, typer.Argument(help="The workflow's name, as its workers serve it.")]
RedisOpt = Annotated[
    str | None,
    typer.Option(
        "--redis",
        help="Redis URL; rediss:// for TLS, redis+cluster://node,node for a Redis Cluster, "
        "redis+sentinel://sentinel,sentinel/mymaster/0 for Sentinel. (env FLOXIDE_REDIS_URL; default "
        "redis://localhost:6379/0)",
        show_default=False,
    ),
]
NamespaceOpt = Annotated[
    str | None,
    typer.Option(
        "--namespace",
        "-n",
        help="Key namespace. (env FLOXIDE_NAMESPACE; default default)",
        show_default=False,
    ),
]
WorkflowOpt = Annotated[
    str | None,
    typer.Option("--workflow", "-w", help="The run's workflow (default: looked up from the run id)."),
]
OutputOpt = Annotated[
    OutputFormat | None,
    typer.Option(
        "--output",
        "-o",
        case_sensitive=False,
        help="table (fits the terminal), wide (full ids) or json. Default: table on a terminal, else json.",
        show_default=False,
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON (as -o json).")]
WideOpt = Annotated[bool, typer.Option("--wide", help="Show ids in full (as -o wide).")]
WatchOpt = Annotated[bool, typer.Option("--watch", "-W", help="Keep the view up to date, live.")]
IntervalOpt = Annotated[
    float, typer.Option("--interval", min=0.1, help="With --watch: seconds between two looks.")
]
Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="Show tracebacks of errors.")]
