"""``floxide schedule``: one process that submits runs to Redis on schedules.

::

    floxide schedule schedules.yaml            # run until Ctrl-C / SIGTERM
    floxide schedule schedules.yaml --status   # LAST, NEXT, ACTIVE of each schedule

The file lists schedules with the fields of the Kubernetes WorkflowSchedule (its ``spec``),
the workflow given as a TARGET instead of a resource name::

    schedules:
      - name: nightly-report
        schedule: "0 2 * * *"          # cron: 5 fields, or 6 with seconds first, or @daily
        timeZone: Europe/Berlin
        concurrencyPolicy: Forbid       # Allow | Forbid | Replace
        startingDeadlineSeconds: 600
        catchUp: {policy: All, maxRuns: 3}   # None | Latest | All (after the scheduler was down)
        successfulRunsHistoryLimit: 3
        failedRunsHistoryLimit: 1
        runTemplate:
          target: examples/countdown.py:workflow
          input: {steps: 5}
          activeDeadlineSeconds: 3600
          ttlSecondsAfterFinished: 86400
          priority: low                  # high | normal | low (default normal)

The state of each schedule lives in Redis (:mod:`floxide.redis.scheduler`): a restarted
scheduler applies the catch-up policy to the fire times it missed, and never starts a fire
time twice. Workers of each workflow run the runs (``floxide worker TARGET``).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError
from pydantic.alias_generators import to_camel
from rich.console import RenderableType
from rich.table import Table

from floxide import cli_views as views
from floxide.cli import CliError, load_workflow
from floxide.cli_options import JsonOpt, NamespaceOpt, OutputOpt, RedisOpt, Verbose
from floxide.cli_output import ago
from floxide.cli_session import connect, fail_command, run_command, settings_or_exit
from floxide.distributed.priority import Priority
from floxide.schedule import SchedulePolicy

if TYPE_CHECKING:
    from floxide.redis.scheduler import Scheduled, ScheduleReport

__all__ = ["ScheduleDefinition", "ScheduleFile", "load_schedules", "register"]

NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"


class RunTemplate(BaseModel):
    """What each run of a schedule is."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    target: str = Field(min_length=1, description="path/to/file.py:attr or package.module:attr (a Workflow).")
    serve_as: str | None = Field(None, description="The name its workers serve the workflow under.")
    input: JsonValue = Field(None, description="The input of each run, any JSON.")
    active_deadline_seconds: float | None = Field(None, gt=0, description="Each run's deadline (seconds).")
    ttl_seconds_after_finished: float | None = Field(
        None, ge=1, description="How long a finished run's data is kept (seconds; default: the retention)."
    )
    priority: Priority = Field("normal", description="Each run's priority: high, normal or low.")


class ScheduleDefinition(SchedulePolicy):
    """One schedule of the file."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(max_length=100, pattern=NAME_PATTERN, description="Unique name of the schedule.")
    run_template: RunTemplate


class ScheduleFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    schedules: list[ScheduleDefinition] = Field(min_length=1)


def load_schedules(path: Path) -> list[Scheduled]:
    """The schedules of ``path``, their workflows loaded; :class:`CliError` naming what is wrong."""
    import yaml

    from floxide.redis.scheduler import Scheduled

    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise CliError(f"{path} is not YAML: {' '.join(str(exc).split())}") from exc
    try:
        parsed = ScheduleFile.model_validate(raw)
    except ValidationError as exc:
        problems = []
        for error in exc.errors()[:5]:
            where = ".".join(str(part) for part in error["loc"]) or "(root)"
            problems.append(f"{where}: {error['msg']}")
        raise CliError(f"{path}: " + "; ".join(problems)) from None
    names = [d.name for d in parsed.schedules]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise CliError(f"{path}: schedule names must be unique: {', '.join(duplicates)}")
    found = []
    for definition in parsed.schedules:
        template = definition.run_template
        workflow = load_workflow(template.target)
        try:
            value = workflow.validate_input(template.input)
        except Exception as exc:
            raise CliError(f"{path}: schedule '{definition.name}': runTemplate.input: {exc}") from exc
        policy = SchedulePolicy.model_validate(
            definition.model_dump(include=set(SchedulePolicy.model_fields))
        )
        found.append(
            Scheduled(
                name=definition.name,
                workflow=workflow,
                policy=policy,
                input=value,
                serve_as=template.serve_as,
                deadline_seconds=template.active_deadline_seconds,
                ttl_seconds=template.ttl_seconds_after_finished,
                priority=template.priority,
            )
        )
    return found


def schedule(
    file: Annotated[Path, typer.Argument(help="YAML file listing the schedules.")],
    status: Annotated[bool, typer.Option("--status", help="Show each schedule's state and exit.")] = False,
    interval: Annotated[
        float, typer.Option("--interval", min=0.05, help="Seconds between two looks at the schedules.")
    ] = 1.0,
    redis: RedisOpt = None,
    namespace: NamespaceOpt = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            "--metrics-port",
            min=0,
            max=65535,
            help="Serve Prometheus metrics on this port (0: any free port).",
        ),
    ] = None,
    output: OutputOpt = None,
    as_json: JsonOpt = False,
    verbose: Verbose = False,
) -> None:
    """Submit runs on cron schedules (with concurrency, deadline and catch-up policies) until stopped."""
    try:
        scheduled = load_schedules(file)
    except CliError as exc:
        fail_command(exc, code=2, verbose=verbose)
    settings, ns = settings_or_exit(redis, namespace, verbose)

    async def go() -> list[ScheduleReport]:
        from floxide.redis.scheduler import Scheduler

        async with connect(settings, ns) as session:
            scheduler = Scheduler(session.index.client, scheduled, namespace=ns)
            if status:
                return await scheduler.status()
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError):
                    loop.add_signal_handler(signum, stop.set)
            sys.stderr.write(f"floxide: scheduling {len(scheduled)} schedule(s) in namespace {ns}\n")
            on_tick = None
            if metrics_port is not None:
                metrics = ScheduleMetrics()
                port = metrics.serve(metrics_port)
                sys.stderr.write(f"floxide: metrics on http://0.0.0.0:{port}/metrics\n")
                on_tick = metrics.observe
            await scheduler.run(stop, interval=interval, on_tick=on_tick)
            return []

    reports = run_command(go(), verbose=verbose)
    if not status:
        return

    def render() -> RenderableType:
        table = Table(show_edge=False)
        for column in (
            "NAME",
            "WORKFLOW",
            "SCHEDULE",
            "SUSPENDED",
            "LAST",
            "NEXT",
            "ACTIVE",
            "STARTED",
            "SKIPPED",
        ):
            table.add_column(column, no_wrap=True)
        for r in reports:
            table.add_row(
                r.name,
                r.workflow,
                r.schedule,
                str(r.suspended).lower(),
                f"{ago(r.last)} ago" if r.last else "-",
                f"{r.next:%Y-%m-%d %H:%M:%S}" if r.next else "-",
                str(len(r.active)),
                str(r.started),
                str(r.skipped),
            )
        return table

    fmt = views.pick_format(output, as_json=as_json)
    views.show([r.as_dict() for r in reports], fmt, lambda wide: render())


class ScheduleMetrics:
    """The Prometheus metrics of ``floxide schedule``, labelled by schedule name (bounded)."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge

        self.registry = CollectorRegistry()
        self.runs = Counter(
            "floxide_schedule_runs_total",
            "Fire times by result: started, skipped (missed, late, forbidden or suspended), replaced "
            "(active runs cancelled by Replace).",
            ["schedule", "result"],
            registry=self.registry,
        )
        self.active = Gauge(
            "floxide_schedule_active_runs",
            "Runs of the schedule not finished.",
            ["schedule"],
            registry=self.registry,
        )
        self.next_fire = Gauge(
            "floxide_schedule_next_fire_timestamp_seconds",
            "The next fire time (Unix seconds).",
            ["schedule"],
            registry=self.registry,
        )
        self._skipped: dict[str, int] = {}

    def serve(self, port: int) -> int:
        """Serve ``/metrics`` from a background thread; the port."""
        from prometheus_client import start_http_server

        server, _ = start_http_server(port, registry=self.registry)
        return int(server.server_port)

    def observe(self, reports: list[ScheduleReport]) -> None:
        for r in reports:
            self.runs.labels(r.name, "started").inc(len(r.started_now))
            self.runs.labels(r.name, "replaced").inc(len(r.cancelled_now))
            skipped = r.skipped - self._skipped.get(r.name, r.skipped)
            self._skipped[r.name] = r.skipped
            self.runs.labels(r.name, "skipped").inc(max(skipped, 0))
            self.active.labels(r.name).set(len(r.active))
            if r.next is not None:
                self.next_fire.labels(r.name).set(r.next.timestamp())


def register(app: typer.Typer) -> None:
    """Add ``floxide schedule`` to ``app`` (see :data:`floxide.cli.EXTENSIONS`)."""
    app.command("schedule")(schedule)
