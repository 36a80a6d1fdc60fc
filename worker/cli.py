"""``floxide worker TARGET`` and ``python -m floxide_worker TARGET``: the worker process's command line.

Every option falls back to an environment variable (see :mod:`floxide_worker.settings`),
read once, here. Exit status: 0 after a drain (SIGTERM/SIGINT), 1 if the worker failed,
2 for a bad setting or target (an HTTP port the worker cannot listen on, taken by another
worker on the machine, say, included), each reported as one line.
"""

from __future__ import annotations

import asyncio
import gc
import os
import sys
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated

import typer

from floxide.cli import CliError, load_workflow
from floxide.cli_options import NamespaceOpt, RedisOpt
from floxide.cli_settings import redis_extra_missing

if TYPE_CHECKING:
    from floxide_worker.probes import ServeError

__all__ = ["app", "main", "register", "worker"]


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop when it is installed (the ``redis`` extra brings it, except on Windows):
    about a tenth less CPU per step than asyncio's own; else asyncio's (``None``)."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def worker(
    target: Annotated[str, typer.Argument(help="package.module:attr or path/to/file.py:attr (a Workflow).")],
    redis: RedisOpt = None,
    namespace: NamespaceOpt = None,
    concurrency: Annotated[
        int | None,
        typer.Option(
            help="Steps run at once. (env FLOXIDE_WORKER_CONCURRENCY; default 4)", show_default=False
        ),
    ] = None,
    http_port: Annotated[
        int | None,
        typer.Option(
            "--http-port",
            help="Port of /metrics, /healthz, /readyz: one per worker on a machine; 0: no HTTP server. "
            "(env FLOXIDE_WORKER_HTTP_PORT; default 9090)",
            show_default=False,
        ),
    ] = None,
    lease: Annotated[
        float | None,
        typer.Option(
            "--lease",
            help="Seconds a claim lasts unrenewed. (env FLOXIDE_WORKER_LEASE_SECONDS; default 30)",
            show_default=False,
        ),
    ] = None,
    drain_seconds: Annotated[
        float | None,
        typer.Option(
            "--drain-seconds",
            help="Seconds in-flight steps get after SIGTERM. (env FLOXIDE_WORKER_DRAIN_SECONDS; default 25)",
            show_default=False,
        ),
    ] = None,
    log_format: Annotated[
        str | None,
        typer.Option(
            "--log-format", help="json or text. (env FLOXIDE_LOG_FORMAT; default text)", show_default=False
        ),
    ] = None,
    log_level: Annotated[
        str | None,
        typer.Option(
            "--log-level",
            help="DEBUG ... CRITICAL. (env FLOXIDE_LOG_LEVEL; default INFO)",
            show_default=False,
        ),
    ] = None,
    serve_as: Annotated[
        str | None,
        typer.Option(
            "--serve-as",
            help="Name the workflow is served under in Redis; default its own. (env FLOXIDE_WORKER_SERVE_AS)",
            show_default=False,
        ),
    ] = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Show tracebacks of start-up errors.")
    ] = False,
) -> None:
    """Run a workflow's worker: claim its work items from Redis and run them until SIGTERM."""
    try:
        from floxide_worker import settings as settings_module
        from floxide_worker.logs import configure
        from floxide_worker.probes import ServeError
        from floxide_worker.process import WorkerProcess

        settings = settings_module.load(
            redis=redis, namespace=namespace, concurrency=concurrency, http_port=http_port, lease=lease,
            drain_seconds=drain_seconds, log_format=log_format, log_level=log_level, serve_as=serve_as,
        )  # fmt: skip
        workflow = load_workflow(target)
    except CliError as exc:
        if verbose:
            traceback.print_exception(exc, file=sys.stderr)
        sys.stderr.write(f"error: {exc}\n")
        raise typer.Exit(exc.code) from None
    except ImportError as exc:
        missing = redis_extra_missing(exc)
        if missing is None:
            raise
        sys.stderr.write(f"error: {missing}\n")
        raise typer.Exit(2) from None

    process = WorkerProcess(workflow, settings)
    configure(
        format=settings.logging.format, level=settings.logging.level_number, worker_id=process.worker_id
    )
    gc.collect()
    gc.freeze()  # what start-up made lives for good: the collector stops scanning it again and again
    try:
        with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
            code = runner.run(process.run())
    except ServeError as exc:  # a setting found bad when the server starts: one line, exit status 2
        sys.stderr.write(f"error: {_serve_error(exc, http_port)}\n")
        raise typer.Exit(2) from None
    raise typer.Exit(code)


def _serve_error(exc: ServeError, flag: int | None) -> str:
    """One line: where the server could not listen, which setting said so, what to do."""
    if flag is not None:
        source = "--http-port"
    elif os.environ.get("FLOXIDE_WORKER_HTTP_PORT"):
        source = "FLOXIDE_WORKER_HTTP_PORT"
    else:
        source = "the default of --http-port"
    where = f"cannot serve /metrics, /healthz and /readyz on {exc.host}:{exc.port} ({source}): {exc.reason}"
    if not exc.port_refused:
        return f"{where}; check FLOXIDE_WORKER_HTTP_HOST"
    return (
        f"{where}; give each worker on a machine a port of its own with --http-port or "
        "FLOXIDE_WORKER_HTTP_PORT (0: no HTTP server)"
    )


app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
app.command()(worker)


def register(root: typer.Typer) -> None:
    """Add ``floxide worker`` (see :data:`floxide.cli.EXTENSIONS`)."""
    root.command("worker")(worker)


def main(argv: list[str] | None = None) -> int:
    """``python -m floxide_worker``: returns the exit status."""
    command = typer.main.get_command(app)
    try:
        result = command.main(args=argv, prog_name="python -m floxide_worker", standalone_mode=False)
    except typer.Exit as exc:
        return int(exc.exit_code)
    except Exception as exc:  # usage errors (click): one line
        format_message = getattr(exc, "format_message", None)
        message = format_message() if callable(format_message) else str(exc)
        sys.stderr.write(f"error: {message} (see 'python -m floxide_worker --help')\n")
        return int(getattr(exc, "exit_code", 2))
    return result if isinstance(result, int) else 0
