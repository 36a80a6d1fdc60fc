"""What every distributed ``floxide`` command shares: its settings, its session on Redis, its errors.

* :func:`settings_or_exit`, :func:`load_or_exit`, :func:`limit_or_exit`, :func:`input_or_exit`:
  the command's settings, workflow, size limit and input, or a one-line error with exit status 2
  (an input over ``FLOXIDE_MAX_PAYLOAD_BYTES`` too);
* :func:`connect`: a :class:`Session` on Redis (which must answer a PING first);
* :func:`live_workers` and :func:`warn_without_workers`: the workers serving a workflow, and a
  watch that says on stderr when none does (a run waiting for a worker that never comes);
* :func:`run_command` and :func:`fail_command`: run the command's coroutine and report its
  error as one line (``--verbose`` adds the traceback) with the right exit status: 2 for bad
  usage, input, target or an unknown run, 1 for a failed run or an operation refused.

Redis code is imported when a command runs, not when the ``floxide`` command starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import traceback
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import typer
from pydantic import BaseModel
from pydantic_core import to_jsonable_python

from floxide import cli_output as output
from floxide.cli import CliError, load_workflow, read_input
from floxide.cli_settings import load_settings, namespace_setting, redis_settings, run_id_setting, safe_url
from floxide.distributed.models import RunInfo, RunStatus, WorkerHealth, WorkerStatus
from floxide.distributed.payloads import PayloadSettings, check_payload
from floxide.errors import FloxideError, InputError, NotStarted

if TYPE_CHECKING:
    from floxide.redis import RedisBackend, RedisSettings
    from floxide.redis.index import RunIndex
    from floxide.workflow import Workflow

__all__ = [
    "Session",
    "connect",
    "fail_command",
    "input_or_exit",
    "limit_or_exit",
    "live_workers",
    "load_or_exit",
    "print_outcome",
    "run_command",
    "run_id_or_exit",
    "settings_or_exit",
    "warn_without_workers",
    "worker_hint",
]

T = TypeVar("T")

WATCH_SECONDS = 5.0
"""Seconds between two looks at the workers serving a workflow (heartbeats expire after 15 s)."""

# -- connecting -------------------------------------------------------------------------------


@dataclass
class Session:
    """An open connection to Redis in one namespace."""

    namespace: str
    index: RunIndex

    def backend(self, workflow: str, *, context_type: type[BaseModel] | None = None) -> RedisBackend:
        """The backend of one workflow (without a context type: enough to watch and steer runs)."""
        from floxide.redis import RedisBackend

        return RedisBackend(self.index.client, workflow, namespace=self.namespace, context_type=context_type)

    async def locate(self, run_id: str, workflow: str | None) -> RedisBackend:
        """The backend of the workflow ``run_id`` belongs to (``workflow`` if given)."""
        if workflow is None:
            workflow = await self.index.locate(run_id)
        return self.backend(workflow)

    async def workflows(self, only: str | None = None) -> list[str]:
        """The namespace's workflows, or just ``only``."""
        return [only] if only is not None else await self.index.workflows()


@contextlib.asynccontextmanager
async def connect(settings: RedisSettings, namespace: str, *, block: float = 0.0) -> AsyncIterator[Session]:
    """A :class:`Session`; Redis must answer a PING first."""
    from floxide.redis.index import RunIndex

    client = settings.client(block=block)
    try:
        index = RunIndex(client, namespace)
        await index.ping(safe_url(settings.url))
        yield Session(namespace, index)
    finally:
        await client.aclose()


# -- the workers serving a workflow -----------------------------------------------------------


async def live_workers(backend: RedisBackend) -> list[WorkerHealth]:
    """The workers of ``backend``'s workflow with a recent heartbeat, draining ones left out."""
    return [h for h in await backend.liveness.list() if h.status is not WorkerStatus.DRAINING]


async def warn_without_workers(
    backend: RedisBackend, namespace: str, hint: str, *, every: float = WATCH_SECONDS
) -> None:
    """Say on stderr each time no live worker serves ``backend``'s workflow (and when one is back).

    Runs until cancelled; a failed look (Redis away) is skipped: the command waiting for its
    run reports that itself.
    """
    from floxide.redis.index import UNAVAILABLE

    unavailable: tuple[type[Exception], ...] = (*UNAVAILABLE, TimeoutError)
    served = True
    while True:
        try:
            found: list[WorkerHealth] | None = await live_workers(backend)
        except unavailable:
            found = None
        if found is not None and bool(found) != served:
            served = bool(found)
            if served:
                message = f"{len(found)} live worker(s) serve workflow '{backend.workflow}' now"
            else:
                message = (
                    f"no live worker serves workflow '{backend.workflow}' in namespace '{namespace}'; "
                    f"the run waits for one ({hint})"
                )
            sys.stderr.write(f"floxide: {message}\n")
            sys.stderr.flush()
        await asyncio.sleep(every)


def worker_hint(target: str, namespace: str, serve_as: str | None = None) -> str:
    """How to start a worker for ``target``'s runs in ``namespace``."""
    command = f"floxide worker {target}"
    if serve_as:
        command += f" --serve-as {serve_as}"
    if namespace != "default":
        command += f" --namespace {namespace}"
    return f"start one with: {command}"


@contextlib.asynccontextmanager
async def in_background(coroutine: Coroutine[Any, Any, None]) -> AsyncIterator[None]:
    """Run ``coroutine`` as a task while the block runs; cancel it after."""
    task = asyncio.create_task(coroutine)
    try:
        yield
    finally:
        # Cancel until it ends: a cancellation arriving as a Redis command completes can be lost
        # (asyncio.wait_for before Python 3.12 drops it, and the command's error is caught).
        while not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=0.1)
        with contextlib.suppress(asyncio.CancelledError):
            await task


# -- settings, target and input -----------------------------------------------------------------


def settings_or_exit(redis: str | None, namespace: str | None, verbose: bool) -> tuple[RedisSettings, str]:
    try:
        return redis_settings(redis), namespace_setting(namespace)
    except CliError as exc:
        fail_command(exc, code=exc.code, verbose=verbose)


def run_id_or_exit(run_id: str | None, verbose: bool) -> str | None:
    try:
        return run_id_setting(run_id)
    except CliError as exc:
        fail_command(exc, code=exc.code, verbose=verbose)


def load_or_exit(target: str, verbose: bool) -> Workflow[Any, Any]:
    try:
        return load_workflow(target)
    except CliError as exc:
        fail_command(exc, code=exc.code, verbose=verbose)


def limit_or_exit(verbose: bool) -> int:
    """``FLOXIDE_MAX_PAYLOAD_BYTES``: the largest input a run may have (bytes of JSON)."""
    try:
        return load_settings(PayloadSettings, {}).max_payload_bytes
    except CliError as exc:
        fail_command(exc, code=exc.code, verbose=verbose)


def input_or_exit(
    workflow: Workflow[Any, Any], text: str | None, verbose: bool, *, limit: int | None = None
) -> Any:
    """The validated input; over ``limit`` bytes (its JSON) it is refused, naming size and limit."""
    try:
        value = workflow.validate_input(read_input(text))
        check_payload(to_jsonable_python(value), what="the input", limit=limit)
        return value
    except CliError as exc:
        fail_command(exc, code=exc.code, verbose=verbose)
    except InputError as exc:
        fail_command(CliError(f"bad --input: {exc}"), code=2, verbose=verbose)


# -- running a command, its output and its errors ---------------------------------------------


def _say_error(message: str) -> None:
    sys.stderr.write(f"error: {message}\n")
    sys.stderr.flush()


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    if isinstance(exc, (FloxideError, CliError)):
        return text or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def fail_command(exc: BaseException, *, code: int, verbose: bool, hint: str = "") -> NoReturn:
    if verbose:
        traceback.print_exception(exc, file=sys.stderr)
    elif not isinstance(exc, (FloxideError, CliError)):
        hint = hint or "run with --verbose for the traceback"
    message = _one_line(exc)
    _say_error(f"{message} ({hint})" if hint else message)
    raise typer.Exit(code)


def run_command(coroutine: Coroutine[Any, Any, T], *, verbose: bool, started: list[str] | None = None) -> T:
    """Run ``coroutine``; report its error as one line with the right exit status.

    ``started`` receives the id of a run the coroutine started: an interruption then says
    how to follow it.
    """
    hint = ""
    try:
        return asyncio.run(coroutine)
    except KeyboardInterrupt:
        if started:
            hint = f" (the run continues: floxide status {started[0]})"
        _say_error(f"interrupted{hint}")
        raise typer.Exit(130) from None
    except CliError as exc:
        fail_command(exc, code=exc.code, verbose=verbose)
    except (NotStarted, InputError) as exc:
        fail_command(exc, code=2, verbose=verbose)
    except Exception as exc:
        fail_command(exc, code=1, verbose=verbose)


def print_outcome(info: RunInfo, *, all_outputs: bool, outputs: list[Any]) -> None:
    """A finished run: its output as JSON on stdout, or why it did not complete (exit status 1)."""
    if info.status is RunStatus.COMPLETED:
        sys.stdout.write(output.json_text(outputs if all_outputs else info.output) + "\n")
        return
    reason = f": {info.error}" if info.error else ""
    _say_error(f"run {info.run_id} {info.status.value.lower()}{reason}")
    raise typer.Exit(1)
