"""The processes of ``redis_throughput.py``: started in their own sessions, always stopped.

Every child gets its own process group (a Ctrl-C in the terminal reaches only the
benchmark, which then stops the children in order: SIGTERM, then SIGKILL after a grace
period) and, on Linux, SIGKILL should the benchmark itself be killed (``PR_SET_PDEATHSIG``):
nothing outlives it. Output goes to one log file per
process; :meth:`Processes.check` fails with the end of the log of a process that exited.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import IO

__all__ = ["ROOT", "Processes", "free_port"]

ROOT = Path(__file__).resolve().parents[1]
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
SERVER = "redis-server"


def _die_with_parent() -> None:
    """In a child, before exec: ask for SIGKILL when the parent dies (Linux; elsewhere a no-op)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def free_port() -> int:
    """A free TCP port on 127.0.0.1, never Redis's default 6379."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port != 6379:
            return port


class Processes:
    """Every process the benchmark starts, by name; :meth:`stop_all` ends them, the server last."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.started: list[tuple[str, subprocess.Popen[bytes], IO[bytes]]] = []

    def start(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        log = self.log(name).open("wb")
        # The repository root is the working directory, never on PYTHONPATH: its operator/
        # folder would shadow the standard library's operator module at start-up.
        proc = subprocess.Popen(
            argv,
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        self.started.append((name, proc, log))
        return proc

    def log(self, name: str) -> Path:
        return self.logs / f"{name}.log"

    def check(self) -> None:
        """Fail, with the end of its log, if a process has exited."""
        for name, proc, _ in self.started:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with status {proc.returncode}:\n{self.tail(name)}")

    def tail(self, name: str, lines: int = 25) -> str:
        path = self.log(name)
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, names: set[str], timeout: float = 15.0) -> None:
        """SIGTERM the named processes' groups, SIGKILL what is left after ``timeout`` seconds."""
        chosen = [entry for entry in self.started if entry[0] in names]
        for _, proc, _ in chosen:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for _, proc, log in chosen:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            log.close()
        self.started = [entry for entry in self.started if entry[0] not in names]

    def stop_all(self) -> None:
        self.stop({name for name, _, _ in self.started if name != SERVER})
        self.stop({SERVER})

    def cpu_seconds(self, names: list[str]) -> float:
        """User plus system CPU time of the named processes so far (from ``/proc``)."""
        ticks = 0
        for name, proc, _ in self.started:
            if name in names:
                with contextlib.suppress(OSError):
                    fields = Path(f"/proc/{proc.pid}/stat").read_text().rpartition(")")[2].split()
                    ticks += int(fields[11]) + int(fields[12])
        return ticks / CLOCK_TICKS
