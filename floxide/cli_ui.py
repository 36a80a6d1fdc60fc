"""``floxide ui``: the web dashboard on a Redis (runs, a run's live graph, workers, a JSON API).

::

    floxide ui --redis redis://localhost:6379/0                 # http://127.0.0.1:8080, read-only
    floxide ui --namespace team-a --port 9000 --allow-actions   # pause, resume, cancel, retry too

Namespaces: ``--namespace`` (repeatable), else ``FLOXIDE_NAMESPACE``, else every namespace
found in Redis. Needs the ``ui`` extra (``pip install 'floxide[ui]'``); the application
itself is :mod:`floxide.ui`.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from floxide.cli import CliError
from floxide.cli_session import fail_command, settings_or_exit
from floxide.cli_settings import namespace_setting, redis_extra_missing

__all__ = ["UI_EXTRA", "register", "ui"]

UI_EXTRA = frozenset({"fastapi", "starlette", "uvicorn", "jinja2"})
"""The top-level modules the ``ui`` extra installs."""


def ui(
    redis: Annotated[
        str | None,
        typer.Option(
            "--redis", help="Redis URL; rediss:// for TLS. (env FLOXIDE_REDIS_URL)", show_default=False
        ),
    ] = None,
    namespace: Annotated[
        list[str] | None,
        typer.Option(
            "--namespace",
            "-n",
            metavar="NS",
            help="A namespace to show (repeatable). (env FLOXIDE_NAMESPACE; default: every namespace found)",
            show_default=False,
        ),
    ] = None,
    host: Annotated[str, typer.Option("--host", help="Address to listen on (0.0.0.0: every interface).")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="Port to listen on.")] = 8080,
    allow_actions: Annotated[
        bool,
        typer.Option(
            "--allow-actions", help="Let people pause, resume, cancel and retry runs (else read-only)."
        ),
    ] = False,
    refresh: Annotated[
        float, typer.Option("--refresh", min=0.1, help="Seconds between two looks of a live page at Redis.")
    ] = 1.0,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show tracebacks of errors.")] = False,
) -> None:
    """Serve the web dashboard: runs, a run's live graph and its nodes' errors, workers, a JSON API."""
    settings, _ = settings_or_exit(redis, None, verbose)
    try:
        namespaces = [namespace_setting(ns) for ns in namespace or []]
        if not namespaces and os.environ.get("FLOXIDE_NAMESPACE"):
            namespaces = [namespace_setting(None)]
        import uvicorn

        from floxide.ui.app import UiOptions, create_app
    except CliError as exc:
        fail_command(exc, code=exc.code, verbose=verbose)
    except ImportError as exc:
        missing = _ui_extra_missing(exc) or redis_extra_missing(exc)
        if missing is None:
            raise
        fail_command(missing, code=2, verbose=verbose)
    options = UiOptions(redis=settings, namespaces=namespaces, allow_actions=allow_actions, refresh=refresh)
    mode = "actions allowed" if allow_actions else "read-only"
    shown = ", ".join(namespaces) if namespaces else "every namespace"
    sys.stderr.write(f"floxide: dashboard on http://{host}:{port} ({mode}; {shown})\n")
    config = uvicorn.Config(
        create_app(options),
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=5,  # open event streams (live pages) end on SIGTERM instead of holding it
    )
    server = uvicorn.Server(config)
    try:
        server.run()
    except SystemExit as exc:  # uvicorn exits when it cannot listen (the port is taken)
        fail_command(CliError(f"cannot listen on {host}:{port}"), code=2, verbose=verbose, hint=str(exc))
    except KeyboardInterrupt:
        pass


def _ui_extra_missing(exc: ImportError) -> CliError | None:
    name = getattr(exc, "name", None) or ""
    if not isinstance(exc, ModuleNotFoundError) or name.partition(".")[0] not in UI_EXTRA:
        return None
    return CliError(f"floxide ui needs the ui extra: pip install 'floxide[ui]' (no module named {name!r})")


def register(app: typer.Typer) -> None:
    """Add ``floxide ui`` to ``app`` (see :data:`floxide.cli.EXTENSIONS`)."""
    app.command("ui")(ui)
