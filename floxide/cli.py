"""The ``floxide`` command: run, resume, export and check workflows locally.

::

    floxide run examples/branching.py:workflow --input 42
    floxide run examples/countdown.py:workflow --input '{"steps": 50}' --checkpoint .runs --run-id demo
    floxide resume examples/countdown.py:workflow --checkpoint .runs --run-id demo
    floxide graph examples/orders.py:workflow --format mermaid
    floxide check examples/orders.py:workflow

A TARGET is ``path/to/file.py:attribute`` or ``package.module:attribute`` (the attribute
defaults to ``workflow``); the attribute is a :class:`~floxide.Workflow` or a function
taking no arguments that returns one. Outputs go to stdout as JSON; progress and errors go
to stderr. An error is one line (``error: ...``; ``--verbose`` adds the traceback) and
the exit status says what kind: 2 for bad usage, input or target, 1 for a failed run.

Other modules add commands (the distributed ones, for instance) through
:data:`EXTENSIONS`; :func:`load_workflow`, :func:`read_input` and :class:`CliError` are
meant for them too.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import inspect
import json
import os
import sys
import traceback
import uuid
from collections.abc import Callable, Coroutine
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from types import ModuleType
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from pydantic_core import to_jsonable_python

from floxide.checkpoint import FileCheckpointStore
from floxide.cli_progress import ProgressReporter
from floxide.errors import AlreadyCompleted, CheckpointError, FloxideError, GraphError, InputError, NotStarted
from floxide.graph import edge_list
from floxide.steplog import show_step_logs
from floxide.typecheck import describe
from floxide.workflow import Workflow

__all__ = ["EXTENSIONS", "CliError", "ProgressReporter", "app", "load_workflow", "main", "read_input"]

T = TypeVar("T")

app = typer.Typer(
    name="floxide",
    help="Run, resume, export and check Floxide workflows.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# -- extension point ----------------------------------------------------------------------
#
# A module that adds commands defines ``register(app: typer.Typer) -> None`` (calling
# ``app.command()`` or ``app.add_typer()`` there, not at import time) and is listed here.
# ``main()`` imports each one and calls ``register`` before parsing the command line; a
# module whose optional dependencies are not installed (an extra) is skipped.

EXTENSIONS: tuple[str, ...] = (
    "floxide.cli_distributed",
    "floxide.cli_ui",
    "floxide.cli_graph",
    "floxide.cli_runs",
    "floxide.cli_logs",
    "floxide.cli_runlimit",
    "floxide.cli_limits",
    "floxide.cli_schedule",
    "floxide_worker.cli",
    "floxide_operator.cli",
)
"""Import paths of the modules that register more commands on :data:`app`."""

_registered: set[str] = set()


def load_extensions() -> None:
    """Import every module of :data:`EXTENSIONS` once and let it register its commands."""
    for name in EXTENSIONS:
        if name in _registered:
            continue
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name and not exc.name.startswith("floxide"):
                continue  # an optional dependency of this extension is missing
            raise
        module.register(app)
        _registered.add(name)


def main(argv: list[str] | None = None) -> int:
    """The console entry point; returns the exit status."""
    load_extensions()
    command = typer.main.get_command(app)
    try:
        result = command.main(args=argv, prog_name="floxide", standalone_mode=False)
    except _USAGE_ERRORS as exc:  # bad options or arguments: one line, and where to get help
        context = getattr(exc, "ctx", None)
        if type(exc).__name__ == "NoArgsIsHelpError":
            return 2  # the help was shown
        where = f" (see '{context.command_path} --help')" if context is not None else ""
        _say_error(f"{exc.format_message()}{where}")  # type: ignore[attr-defined]
        return int(getattr(exc, "exit_code", 2))
    except typer.Abort:
        _say_error("interrupted")
        return 130
    return result if isinstance(result, int) else 0


def _usage_errors() -> tuple[type[Exception], ...]:
    base = getattr(typer, "TyperException", None)  # typer >= 0.22 carries its own click
    if base is None:
        base = importlib.import_module("click").ClickException
    return (base,)


_USAGE_ERRORS = _usage_errors()


# -- loading targets and input --------------------------------------------------------------


class CliError(Exception):
    """A problem to report as one line, with the exit status ``code``."""

    def __init__(self, message: str, *, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


def load_workflow(target: str) -> Workflow[Any, Any]:
    """The workflow named by ``target`` (``file.py:attr`` or ``package.module:attr``)."""
    location, colon, attribute = target.rpartition(":")
    if not colon:
        location, attribute = target, "workflow"
    if not location or not attribute:
        raise CliError(f"target {target!r} must look like path/to/file.py:attr or package.module:attr")
    is_file = location.endswith(".py") or "/" in location or os.sep in location
    module = _import_file(location) if is_file else _import_module(location, location)
    obj: Any = module
    for part in attribute.split("."):
        if not hasattr(obj, part):
            found = sorted(n for n, v in vars(module).items() if isinstance(v, Workflow))
            hint = f" (workflows there: {', '.join(found)})" if found else ""
            raise CliError(f"{location} has no attribute {attribute!r}{hint}")
        obj = getattr(obj, part)
    if not isinstance(obj, Workflow) and callable(obj):
        obj = _call_factory(target, obj)
    if not isinstance(obj, Workflow):
        raise CliError(
            f"{target} is not a Workflow (nor a function returning one) but a {type(obj).__name__}"
        )
    return obj


def _import_file(location: str) -> ModuleType:
    path = Path(location).resolve()
    if not path.is_file():
        raise CliError(f"no such file: {location}")
    parts, root = [path.stem], path.parent
    while (root / "__init__.py").is_file():  # a module inside packages: import it as such
        parts.insert(0, root.name)
        root = root.parent
    name = ".".join(parts)
    existing = sys.modules.get(name)
    if existing is not None and Path(getattr(existing, "__file__", None) or "").resolve() != path:
        raise CliError(
            f"{location} would be imported as '{name}', which is already another module; rename it"
        )
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    return _import_module(name, location)


def _import_module(name: str, location: str) -> ModuleType:
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # like 'python -m': modules of the current directory
    try:
        return importlib.import_module(name)
    except GraphError as exc:
        raise CliError(f"invalid workflow in {location}: {exc}") from exc
    except ModuleNotFoundError as exc:
        if exc.name and (name == exc.name or name.startswith(exc.name + ".")):
            raise CliError(
                f"no module named '{name}' (run from the project directory, or give a file path)"
            ) from exc
        raise CliError(f"importing {location} failed: {_one_line(exc)}") from exc
    except Exception as exc:
        raise CliError(f"importing {location} failed: {_one_line(exc)}") from exc


def _call_factory(target: str, factory: Callable[..., Any]) -> Any:
    try:
        inspect.signature(factory).bind()
    except (TypeError, ValueError):
        raise CliError(f"{target} must be a Workflow or a function taking no arguments") from None
    try:
        return factory()
    except GraphError as exc:
        raise CliError(f"invalid workflow from {target}: {exc}") from exc
    except Exception as exc:
        raise CliError(f"{target}() failed: {_one_line(exc)}") from exc


def read_input(text: str | None) -> Any:
    """The JSON value of ``--input``: inline JSON, ``@file.json``, or ``@-`` for stdin."""
    if text is None:
        return None
    where = "--input"
    if text.startswith("@"):
        where = text[1:]
        try:
            text = sys.stdin.read() if where == "-" else Path(where).read_text(encoding="utf-8")
        except OSError as exc:
            raise CliError(f"cannot read input file {where}: {exc.strerror or exc}") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise CliError(f"{where} is not valid JSON ({exc}); quote strings: --input '\"text\"'") from exc


def _validated_input(workflow: Workflow[Any, Any], text: str | None) -> Any:
    value = read_input(text)
    try:
        return workflow.validate_input(value)
    except InputError as exc:
        raise CliError(f"bad --input: {exc}") from exc


def _store(directory: Path, run_id: str) -> FileCheckpointStore:
    store = FileCheckpointStore(directory)
    try:
        store.path(run_id)
    except CheckpointError as exc:
        raise CliError(str(exc)) from exc
    return store


# -- output, progress and errors ------------------------------------------------------------


def _print_json(value: Any) -> None:
    data = to_jsonable_python(value, fallback=repr)
    indent = 2 if sys.stdout.isatty() and isinstance(data, (dict, list)) else None
    sys.stdout.write(json.dumps(data, indent=indent, ensure_ascii=False) + "\n")


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    if isinstance(exc, (FloxideError, CliError)):
        return text or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _say_error(message: str) -> None:
    sys.stderr.write(f"error: {message}\n")
    sys.stderr.flush()


def _fail(exc: BaseException, *, code: int, verbose: bool, hint: str = "") -> NoReturn:
    if verbose:
        traceback.print_exception(exc, file=sys.stderr)
    message = _one_line(exc)
    if not verbose and not isinstance(exc, (FloxideError, CliError)):
        hint = hint or "run with --verbose for the traceback"
    _say_error(f"{message} ({hint})" if hint else message)
    raise typer.Exit(code)


def _run_async(coroutine: Coroutine[Any, Any, T], *, verbose: bool, hint: str = "") -> T:
    try:
        return asyncio.run(coroutine)
    except KeyboardInterrupt:
        _say_error(f"interrupted ({hint})" if hint else "interrupted")
        raise typer.Exit(130) from None
    except NotStarted as exc:
        _fail(exc, code=2, verbose=verbose)
    except Exception as exc:
        _fail(exc, code=1, verbose=verbose, hint=hint)


def _load(target: str, verbose: bool) -> Workflow[Any, Any]:
    try:
        return load_workflow(target)
    except CliError as exc:
        _fail(exc, code=exc.code, verbose=verbose)


# -- commands --------------------------------------------------------------------------------

Target = Annotated[
    str, typer.Argument(help="path/to/file.py:attr or package.module:attr (attr: a Workflow).")
]
Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="Show tracebacks of errors.")]
CheckpointDir = Annotated[
    Path | None, typer.Option("--checkpoint", help="Directory of checkpoints: makes the run durable.")
]
RunId = Annotated[str | None, typer.Option("--run-id", help="The run's id (default: a new one).")]


def _show_version(value: bool) -> None:
    if value:
        try:
            number = version("floxide")
        except PackageNotFoundError:
            number = "unknown"
        typer.echo(f"floxide {number}")
        raise typer.Exit()


@app.callback()
def _root(
    show_version: Annotated[
        bool,
        typer.Option("--version", callback=_show_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    """Run, resume, export and check Floxide workflows."""


@app.command()
def run(
    target: Target,
    input: Annotated[
        str | None, typer.Option("--input", "-i", help="The input as JSON, or @file.json, or @- for stdin.")
    ] = None,
    checkpoint: CheckpointDir = None,
    run_id: RunId = None,
    all_outputs: Annotated[
        bool, typer.Option("--all", help="Print every terminal output (a JSON list), not only the first.")
    ] = False,
    redis: Annotated[
        str | None,
        typer.Option(
            "--redis", help="Run on Redis workers at this URL instead of in this process.", show_default=False
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            help="Worker processes to start here (default 1; 0: use the live ones). Needs --redis "
            "or FLOXIDE_REDIS_URL.",
            show_default=False,
        ),
    ] = None,
    verbose: Verbose = False,
) -> None:
    """Run a workflow locally and print its output as JSON.

    With --checkpoint the state is saved after every step: a failed run can be resumed.
    Running a completed run id again prints its recorded output. With --redis (or --workers
    and FLOXIDE_REDIS_URL) the run is distributed over --workers local worker processes.
    """
    if redis is not None or workers is not None:
        if checkpoint is not None:
            _fail(
                CliError("--checkpoint is for local runs (a run on Redis is durable)"),
                code=2,
                verbose=verbose,
            )
        from floxide.cli_local_workers import run_distributed

        run_distributed(
            target=target, input=input, run_id=run_id, redis=redis, workers=workers,
            all_outputs=all_outputs, verbose=verbose,
        )  # fmt: skip
        return
    workflow = _load(target, verbose)
    run_id = run_id or uuid.uuid4().hex[:12]
    try:
        value = _validated_input(workflow, input)
        store = None if checkpoint is None else _store(checkpoint, run_id)
    except CliError as exc:
        _fail(exc, code=exc.code, verbose=verbose)
    reporter = ProgressReporter(workflow.name)

    async def go() -> list[Any]:
        if store is None:
            result = await workflow.execute(value, run_id=run_id, on_progress=reporter.update)
            return result.outputs
        output = await workflow.run_with_checkpoint(
            value, store=store, run_id=run_id, on_progress=reporter.update
        )
        saved = await store.load(run_id)
        return [workflow.load_output(o.node, o.value) for o in saved.outputs] if saved else [output]

    hint = ""
    if checkpoint is not None:
        hint = f"resume with: floxide resume {target} --checkpoint {checkpoint} --run-id {run_id}"
    with reporter, contextlib.redirect_stdout(sys.stderr), show_step_logs():
        outputs = _run_async(go(), verbose=verbose, hint=hint)
    _print_json(outputs if all_outputs else outputs[0])


@app.command()
def resume(
    target: Target,
    checkpoint: Annotated[
        Path, typer.Option("--checkpoint", help="The directory the run was checkpointed in.")
    ],
    run_id: Annotated[str, typer.Option("--run-id", help="The id of the run to continue.")],
    verbose: Verbose = False,
) -> None:
    """Continue a checkpointed run from its last committed step and print its output.

    A completed run is not run again: its recorded output is printed.
    """
    workflow = _load(target, verbose)
    try:
        store = _store(checkpoint, run_id)
    except CliError as exc:
        _fail(exc, code=exc.code, verbose=verbose)
    reporter = ProgressReporter(workflow.name)

    async def go() -> Any:
        try:
            return await workflow.resume(store=store, run_id=run_id, on_progress=reporter.update)
        except AlreadyCompleted:  # as 'floxide run' with its id: the recorded output
            saved = await store.load(run_id)
            if saved is None or not saved.outputs:
                raise
            return workflow.load_output(saved.outputs[0].node, saved.outputs[0].value)

    with reporter, contextlib.redirect_stdout(sys.stderr), show_step_logs():
        output = _run_async(go(), verbose=verbose)
    _print_json(output)


@app.command()
def check(
    target: Target,
    as_json: Annotated[bool, typer.Option("--json", help="Print the graph description as JSON.")] = False,
    verbose: Verbose = False,
) -> None:
    """Load and validate a workflow; print a summary of its graph."""
    workflow = _load(target, verbose)
    if as_json:
        _print_json(workflow.describe())
        return
    specs = workflow.graph.nodes
    edges = edge_list(workflow.graph)
    kinds: dict[str, int] = {}
    for _, _, kind, _ in edges:
        kinds[kind] = kinds.get(kind, 0) + 1
    terminals = [s.name for s in specs.values() if s.is_terminal]
    outputs = sorted({describe(specs[n].output_type) for n in terminals})
    rows = [
        (
            "nodes",
            f"{len(specs)} (start '{workflow.start_node}'; terminal: {', '.join(terminals) or 'route arms'})",
        ),
        ("edges", f"{len(edges)} ({', '.join(f'{n} {k}' for k, n in kinds.items()) or 'none'})"),
        ("input", describe(workflow.input_type)),
        ("output", " | ".join(outputs) or "from route arms"),
        ("context", workflow.context_type.__name__ if workflow.context_type else "none"),
        ("retry", ", ".join(s.name for s in specs.values() if s.retry) or "none"),
        ("timeouts", ", ".join(f"{s.name} {s.timeout:g}s" for s in specs.values() if s.timeout) or "none"),
    ]
    lines = [f"workflow '{workflow.name}' is valid"] + [f"  {key + ':':<10}{value}" for key, value in rows]
    sys.stdout.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
