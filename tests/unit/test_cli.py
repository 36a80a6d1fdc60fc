"""The ``floxide`` command, end to end in subprocesses and in-process for the details.

Cases (subprocess, ``python -m floxide.cli`` and the installed script):
* ``run`` prints the output as JSON on stdout and nothing on stderr; file and module targets;
* a bad ``--input`` (not JSON / a value that does not fit) exits 2 with one line naming the field;
* a file whose graph is broken exits 2 with one line naming both nodes and both types;
* an unknown target exits 2 with one line; a failed run exits 1 with one line, and
  ``--verbose`` adds the traceback;
* ``--checkpoint``/``--run-id`` then ``resume``: fails, resumes to the output; resuming or
  running it again prints the recorded output (exit status 0);
* an interrupted durable run (SIGINT) exits 130 with one line, and resumes to its output;
* ``graph --format dot|mermaid``, ``check`` and ``--version``.

Cases (in-process):
* target forms: ``file.py:attr``, ``package.module:attr``, default attribute, factories; and
  each way a target can be wrong;
* ``--input @file``, ``--input @-``, ``--all``; usage errors are one line with exit 2;
* the progress reporter: silent for short runs, a plain line every interval off a
  terminal, a live status on a terminal; it sees the run's counts.
"""

from __future__ import annotations

import io
import json
import re
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from floxide import Workflow, cli
from floxide.cli import CliError, ProgressReporter, load_workflow, main, read_input
from floxide.runner import Progress

ROOT = Path(__file__).resolve().parents[2]

BROKEN = """
    from floxide import Workflow, edge, node

    @node
    async def produce(x: int) -> int:
        return x

    @node
    async def consume(text: str) -> str:
        return text

    workflow = Workflow("broken", start=produce, edges=[edge(produce, consume)])
"""

FLAKY = """
    from pathlib import Path
    from floxide import Workflow, node, otherwise, route, when

    MARKER = Path(__file__).with_name("failed-once")

    @node
    async def count(n: int) -> int:
        if n == 2 and not MARKER.exists():
            MARKER.touch()
            raise RuntimeError("fails once at 2")
        return n + 1

    workflow = Workflow("flaky", start=count, edges=[route(count, when(lambda n: n < 5, count), otherwise())])
"""

FACTORIES = """
    from floxide import Workflow, node

    @node
    async def echo(x: int) -> int:
        return x

    workflow = Workflow("echo", start=echo)

    def make() -> Workflow[int, int]:
        return Workflow("made", start=echo)

    def needs_arguments(name: str) -> Workflow[int, int]:
        return Workflow(name, start=echo)

    def explodes() -> Workflow[int, int]:
        raise ValueError("cannot build")

    number = 3
"""


def floxide(*args: str, cwd: Path = ROOT, script: bool = False) -> subprocess.CompletedProcess[str]:
    command = (
        [str(Path(sys.executable).parent / "floxide")] if script else [sys.executable, "-m", "floxide.cli"]
    )
    return subprocess.run([*command, *args], cwd=cwd, capture_output=True, text=True, timeout=60)


def one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    # a run slower than the progress interval (a loaded machine) also prints "floxide: ..." lines
    lines = [line for line in proc.stderr.splitlines() if not line.startswith("floxide: ")]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def write(directory: Path, name: str, source: str) -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(source))
    return path


# -- end to end ------------------------------------------------------------------------------


def test_run_prints_json() -> None:
    proc = floxide("run", "examples/branching.py:workflow", "--input", "42")
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, '"BigNode: 84"\n', "")
    proc = floxide(
        "run", "examples.orders:workflow", "--input", '{"order_id": "A", "item": "Laptop", "quantity": 1}'
    )
    assert (proc.returncode, proc.stdout) == (0, '"CustomerNotified"\n')


def test_step_logs_show_on_stderr(tmp_path: Path) -> None:
    """What nodes log through ctx.log (INFO and above) is a line on stderr: ``node[item]: message``."""
    source = """
        from typing import Any
        from floxide import Workflow, WorkflowCtx, node

        @node
        async def greet(ctx: WorkflowCtx[Any], name: str) -> str:
            ctx.log.debug("not shown")
            ctx.log.info("greeting %s", name)
            ctx.log.warning("careful")
            return f"hello {name}"

        workflow = Workflow("greeter", start=greet)
    """
    path = write(tmp_path, "greeter.py", source)
    proc = floxide("run", f"{path}:workflow", "--input", '"ada"')
    assert (proc.returncode, proc.stdout) == (0, '"hello ada"\n'), proc.stderr
    assert re.findall(r"^greet\[\S+\]: (.*)$", proc.stderr, re.MULTILINE) == ["greeting ada", "careful"]


def test_node_prints_stay_off_stdout() -> None:
    """What nodes print goes to stderr: stdout carries only the JSON output."""
    proc = floxide("run", "examples/split.py:workflow", "--input", "10", "--all")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == [9, 10, 11]
    assert "branch value = 10" in proc.stderr


def test_installed_script() -> None:
    if not (Path(sys.executable).parent / "floxide").exists():
        pytest.skip("the floxide script is not installed next to this interpreter")
    proc = floxide("run", "examples/terminal_node.py:workflow", "--input", "7", script=True)
    assert (proc.returncode, proc.stdout) == (0, "21\n")


def test_bad_input() -> None:
    proc = floxide("run", "examples/branching.py:workflow", "--input", "forty-two")
    assert proc.returncode == 2
    assert "--input is not valid JSON" in one_error_line(proc)
    proc = floxide("run", "examples/countdown.py:workflow", "--input", '{"steps": -1}')
    assert proc.returncode == 2
    assert one_error_line(proc) == (
        "error: bad --input: input of node 'tick': steps: Input should be greater than or equal to 0 (got -1)"
    )
    assert proc.stdout == ""


def test_broken_graph(tmp_path: Path) -> None:
    write(tmp_path, "broken_graph.py", BROKEN)
    for command in (["run", "--input", "1"], ["check"]):
        proc = floxide(*command, "broken_graph.py:workflow", cwd=tmp_path)
        assert proc.returncode == 2
        assert one_error_line(proc) == (
            "error: invalid workflow in broken_graph.py: workflow 'broken': edge 'produce' -> 'consume': "
            "'produce' sends int but 'consume' takes str"
        )


def test_unknown_target() -> None:
    proc = floxide("run", "examples/no_such_example.py:workflow")
    assert proc.returncode == 2
    assert one_error_line(proc) == "error: no such file: examples/no_such_example.py"


def test_failed_run() -> None:
    order = '{"order_id": "A", "item": "Laptop", "quantity": 0}'
    proc = floxide("run", "examples/orders.py:workflow", "--input", order)
    assert proc.returncode == 1
    assert one_error_line(proc) == (
        "error: node 'validate' failed: ValueError: order A: quantity must be positive, got 0"
    )
    verbose = floxide("run", "examples/orders.py:workflow", "--input", order, "--verbose")
    assert verbose.returncode == 1
    assert "Traceback (most recent call last)" in verbose.stderr
    assert verbose.stderr.splitlines()[-1] == one_error_line(proc)


def test_checkpoint_and_resume(tmp_path: Path) -> None:
    write(tmp_path, "flaky_count.py", FLAKY)
    durable = ("--checkpoint", "runs", "--run-id", "job1")
    first = floxide("run", "flaky_count.py", "--input", "0", *durable, cwd=tmp_path)
    assert first.returncode == 1
    assert one_error_line(first) == (
        "error: node 'count' failed: RuntimeError: fails once at 2 "
        "(resume with: floxide resume flaky_count.py --checkpoint runs --run-id job1)"
    )
    assert (tmp_path / "runs" / "job1.json").exists()

    resumed = floxide("resume", "flaky_count.py", *durable, cwd=tmp_path)
    assert (resumed.returncode, resumed.stdout, resumed.stderr) == (0, "5\n", "")

    (tmp_path / "failed-once").unlink()  # running 'count' again would fail again
    again = floxide("resume", "flaky_count.py", *durable, cwd=tmp_path)  # as 'run': the recorded output
    assert (again.returncode, again.stdout, again.stderr) == (0, "5\n", "")
    assert not (tmp_path / "failed-once").exists()  # nothing ran again

    recorded = floxide("run", "flaky_count.py", "--input", "0", *durable, cwd=tmp_path)
    assert (recorded.returncode, recorded.stdout) == (0, "5\n")

    unknown = floxide("resume", "flaky_count.py", "--checkpoint", "runs", "--run-id", "nope", cwd=tmp_path)
    assert unknown.returncode == 2
    assert (
        one_error_line(unknown) == "error: run 'nope' has no checkpoint: it was never started with this store"
    )


def test_interrupted_run_resumes(tmp_path: Path) -> None:
    durable = ("--checkpoint", str(tmp_path), "--run-id", "long")
    countdown = ("examples/countdown.py:workflow",)
    command = [
        sys.executable,
        "-m",
        "floxide.cli",
        "run",
        *countdown,
        "--input",
        '{"steps": 200, "delay": 0.005}',
    ]
    proc = subprocess.Popen(
        [*command, *durable],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 30
    while not (tmp_path / "long.json").exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert (proc.returncode, out) == (130, "")
    assert err.splitlines()[-1] == (
        "error: interrupted (resume with: floxide resume examples/countdown.py:workflow "
        f"--checkpoint {tmp_path} --run-id long)"
    )
    resumed = floxide("resume", *countdown, *durable)
    assert (resumed.returncode, resumed.stdout) == (0, "200\n")


def test_graph_check_version() -> None:
    dot = floxide("graph", "examples/dot_export.py:workflow")
    assert dot.returncode == 0
    assert dot.stdout.startswith('digraph "dot-export" {')
    assert '"task_a" -> "fallback_a" [style="dotted" color="red" label="fallback"];' in dot.stdout
    mermaid = floxide("graph", "examples/dot_export.py:workflow", "--format", "mermaid")
    assert mermaid.stdout.startswith("flowchart LR\n")
    check = floxide("check", "examples/orders.py:workflow")
    assert check.returncode == 0
    assert check.stdout.splitlines()[0] == "workflow 'orders' is valid"
    assert "  retry:    allocate_stock" in check.stdout
    version = floxide("--version")
    assert (version.returncode, version.stdout.split()[0]) == (0, "floxide")


# -- in process ------------------------------------------------------------------------------


@pytest.fixture
def isolated_imports() -> Iterator[None]:
    path, modules = list(sys.path), set(sys.modules)
    yield
    sys.path[:] = path
    for name in set(sys.modules) - modules:
        del sys.modules[name]


@pytest.mark.usefixtures("isolated_imports")
def test_target_forms(tmp_path: Path) -> None:
    write(tmp_path, "factories_a.py", FACTORIES)
    base = str(tmp_path / "factories_a.py")
    assert load_workflow(f"{base}:workflow").name == "echo"
    assert load_workflow(base).name == "echo"  # the attribute defaults to 'workflow'
    assert load_workflow(f"{base}:make").name == "made"
    assert load_workflow("examples.branching:workflow").name == "branching"
    assert isinstance(load_workflow("examples/nested.py:inner"), Workflow)


@pytest.mark.usefixtures("isolated_imports")
@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("{base}:missing", "{base} has no attribute 'missing' (workflows there: workflow)"),
        ("{base}:number", "{base}:number is not a Workflow (nor a function returning one) but a int"),
        ("{base}:needs_arguments", "{base}:needs_arguments must be a Workflow or a function taking no "
         "arguments"),
        ("{base}:explodes", "{base}:explodes() failed: ValueError: cannot build"),
        ("no_such_package.module:workflow", "no module named 'no_such_package.module' (run from the project "
         "directory, or give a file path)"),
        (":workflow", "target ':workflow' must look like path/to/file.py:attr or package.module:attr"),
    ],
)  # fmt: skip
def test_wrong_targets(tmp_path: Path, target: str, message: str) -> None:
    base = str(write(tmp_path, "factories_b.py", FACTORIES))
    with pytest.raises(CliError) as info:
        load_workflow(target.format(base=base))
    assert str(info.value) == message.format(base=base)
    assert info.value.code == 2


def test_read_input(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "in.json").write_text('{"a": [1, 2]}')
    assert read_input(f"@{tmp_path / 'in.json'}") == {"a": [1, 2]}
    assert read_input(None) is None
    assert read_input('"text"') == "text"
    monkeypatch.setattr(sys, "stdin", io.StringIO("[3]"))
    assert read_input("@-") == [3]
    with pytest.raises(CliError, match="cannot read input file"):
        read_input(f"@{tmp_path / 'missing.json'}")


def test_main_in_process(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "examples.split:workflow", "--input", "10", "--all"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "[9, 10, 11]"
    assert main(["run"]) == 2
    captured = capsys.readouterr()
    assert captured.err == "error: Missing argument 'target'. (see 'floxide run --help')\n"
    assert main(["graph", "examples/split.py", "--format", "pdf"]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    assert main(["nonsense"]) == 2
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("floxide ")


def test_progress_is_silent_for_short_runs() -> None:
    stream = io.StringIO()
    with ProgressReporter("quick", stream=stream, tty=False, interval=0.5) as reporter:
        reporter.update(Progress(3, 0, 0))
    assert stream.getvalue() == ""


def test_progress_plain_lines_off_a_terminal() -> None:
    stream = io.StringIO()
    with ProgressReporter("long", stream=stream, tty=False, interval=0.03) as reporter:
        reporter.update(Progress(5, 2, 1))
        time.sleep(0.1)
    lines = stream.getvalue().splitlines()
    assert 2 <= len(lines) <= 4
    assert lines[0].startswith("floxide: long: 5/8 steps (62%), 2 queued, 1 running, ETA ")


def test_progress_live_on_a_terminal() -> None:
    stream = io.StringIO()
    with ProgressReporter("live", stream=stream, tty=True, delay=0.01) as reporter:
        reporter.update(Progress(7, 0, 1))
        time.sleep(0.1)
    assert "live" in stream.getvalue() and "7/8 steps (87%), 0 queued, 1 running, ETA " in stream.getvalue()


async def test_progress_follows_a_run() -> None:
    from examples.countdown import Countdown, workflow

    reporter = ProgressReporter("countdown", stream=io.StringIO(), tty=False)
    await workflow.execute(Countdown(steps=4, delay=0), on_progress=reporter.update)
    assert reporter.progress == Progress(4, 0, 0)
    assert json.loads(json.dumps(reporter.line().split(":")[0])) == "countdown"


LISTINGS = ("status", "runs", "errors", "workers", "logs", "limits", "run-limit", "schedule")
"""Every command that lists what it read."""


@pytest.mark.parametrize("name", LISTINGS)
def test_every_listing_command_takes_output_json(name: str) -> None:
    cli.load_extensions()
    args = {"status": ["RUN"], "errors": ["RUN"], "logs": ["RUN"], "limits": ["W"], "run-limit": ["W"]}
    args["schedule"] = ["schedules.yaml", "--status"]
    refused = CliRunner().invoke(cli.app, [name, *args.get(name, []), "-o", "xml"])
    assert refused.exit_code == 2
    assert "'table', 'wide', 'json'" in refused.output  # the choices, named by the usage error
