"""Workflows with node limits, run by real worker processes (``tests.redis.limit_flows:<name>``).

Limited nodes write *probe* lines to ``$FLOXIDE_TEST_MARKS/probe-<node>.log``: ``start`` and
``end`` of each step with the time, the limit key, the process id and the job number. The
tests rebuild from them how many steps ran at once (per key) and how many started in any
window, counted from inside the node code.

* ``limited``: ``spread(Batch)`` fans out ``count`` jobs to ``call`` (at most 3 at once, across
  all workers); each holds its slot ``hold`` seconds.
* ``keyed``: the same fan-out to ``per_customer``: at most 2 at once per customer
  (``job.customer``).
* ``rated``: ``fork(Batch)`` fans out each job to ``api`` (at most 10 starts a second, bursts
  of 3) and to ``free`` (no limit): ``free`` finishes while ``api`` is throttled.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel

from floxide import ConcurrencyLimit, NextAll, RateLimit, Workflow, edge, node

MARKS_ENV = "FLOXIDE_TEST_MARKS"


class Batch(BaseModel):
    count: int
    hold: float = 0.2
    customers: int = 3


class Job(BaseModel):
    n: int
    hold: float
    customer: str


@dataclass(frozen=True)
class Probe:
    event: str
    at: float
    key: str
    pid: int
    n: int


def _probe(node: str, event: str, key: str, n: int) -> None:
    directory = os.environ.get(MARKS_ENV)
    if directory:
        line = f"{event} {time.time():.6f} {key} {os.getpid()} {n}\n"
        with open(Path(directory) / f"probe-{node}.log", "a", encoding="utf-8") as out:
            out.write(line)


def read_probes(directory: Path, node: str) -> list[Probe]:
    path = directory / f"probe-{node}.log"
    if not path.exists():
        return []
    found = []
    for line in path.read_text(encoding="utf-8").splitlines():
        event, at, key, pid, n = line.split()
        found.append(Probe(event, float(at), key, int(pid), int(n)))
    return found


def peak(probes: list[Probe], *, closed_at: dict[int, float] | None = None) -> dict[str, int]:
    """The most steps running at once, per key. Steps of a process in ``closed_at`` (killed) that
    never ended are taken to end when it was killed."""
    ends = {(p.pid, p.n) for p in probes if p.event == "end"}
    events: list[tuple[float, int, str]] = []
    for p in probes:
        if p.event == "start":
            events.append((p.at, 1, p.key))
            if (p.pid, p.n) not in ends:
                if closed_at is None or p.pid not in closed_at:
                    events.append((float("inf"), -1, p.key))
                else:
                    events.append((closed_at[p.pid], -1, p.key))
        elif p.event == "end":
            events.append((p.at, -1, p.key))
    running: dict[str, int] = {}
    highest: dict[str, int] = {}
    for _, change, key in sorted(events):  # an end sorts before a start at the same moment
        running[key] = running.get(key, 0) + change
        highest[key] = max(highest.get(key, 0), running[key])
    return highest


def busiest_window(probes: list[Probe], seconds: float) -> int:
    """The most ``start`` events within any window of ``seconds``."""
    starts = sorted(p.at for p in probes if p.event == "start")
    best, first = 0, 0
    for last, moment in enumerate(starts):
        while moment - starts[first] > seconds:
            first += 1
        best = max(best, last - first + 1)
    return best


@node
async def spread(batch: Batch) -> NextAll[Job]:
    return NextAll(
        [Job(n=n, hold=batch.hold, customer=f"c{n % batch.customers}") for n in range(batch.count)]
    )


async def _step(node: str, job: Job, key: str) -> int:
    _probe(node, "start", key, job.n)
    await asyncio.sleep(job.hold)
    _probe(node, "end", key, job.n)
    return job.n


@node
async def call(job: Job) -> int:
    return await _step("call", job, "all")


@node
async def per_customer(job: Job) -> int:
    return await _step("per_customer", job, job.customer)


@node
async def fork(batch: Batch) -> NextAll[Job]:
    return NextAll([Job(n=n, hold=batch.hold, customer="x") for n in range(batch.count)])


@node
async def api(job: Job) -> int:
    return await _step("api", job, "all")


@node
async def free(job: Job) -> int:
    return await _step("free", job, "all")


limited: Workflow[Batch, int] = Workflow(
    "limited", start=spread, edges=[edge(spread, call)], limits={call: ConcurrencyLimit(max=3)}
)

keyed: Workflow[Batch, int] = Workflow(
    "keyed",
    start=spread,
    edges=[edge(spread, per_customer)],
    limits={per_customer: ConcurrencyLimit(max=2, key=lambda job: job.customer)},
)

rated: Workflow[Batch, int] = Workflow(
    "rated",
    start=fork,
    edges=[edge(fork, api, free)],
    limits={api: RateLimit(per_second=10, burst=3)},
)
