"""The report of ``redis_throughput.py``: the table, the targets, CPU, commands, round trips, profiles."""

from __future__ import annotations

import pstats
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["BATCHED", "CHAIN", "FANOUT", "SYSTEMS", "Sample", "profile_report", "report"]

BATCHED = "raw batched"
SYSTEMS = ("Floxide", BATCHED, "raw Streams", "Celery")
FANOUT, CHAIN = "fan-out", "chain"
FANOUT_VS_RAW = 0.3  # Floxide fan-out throughput / batched raw loop throughput, at least
FANOUT_VS_CELERY = 3.0  # Floxide fan-out throughput / Celery throughput, at least
CHAIN_VS_RAW = 2.0  # Floxide chain latency per step / batched raw loop latency per step, at most
CPU_PER_ITEM = 80.0  # Floxide worker CPU per item (microseconds), at most
ROUND_TRIPS = 1.1  # Floxide round trips per item, at most


@dataclass
class Sample:
    """One timed run of one shape on one system."""

    system: str
    shape: str
    size: int  # fan-out width or chain length
    items: int  # work items processed
    seconds: float  # from submit to the run's end
    commands: Counter[str] = field(default_factory=Counter)  # Redis calls per command during the run
    usec: Counter[str] = field(default_factory=Counter)  # Redis server time per command during the run
    redis_cpu: float = 0.0  # seconds of redis-server CPU
    worker_cpu: float = 0.0  # seconds of CPU of the system's worker processes
    client_cpu: float = 0.0  # seconds of CPU of the benchmark process (submitting and waiting)

    @property
    def per_second(self) -> float:
        return self.items / self.seconds

    @property
    def ms_per_step(self) -> float:
        return self.seconds / self.size * 1000


@dataclass
class Results:
    """Every timed run, the MONITOR counts, the load averages seen."""

    fanout: int
    chain: int
    systems: list[str]
    samples: dict[tuple[str, str], list[Sample]] = field(default_factory=dict)
    monitored: dict[str, tuple[Counter[str], int]] = field(default_factory=dict)  # shape -> counts, items
    loads: list[tuple[float, float, float]] = field(default_factory=list)
    polled: set[str] = field(default_factory=set)  # commands the benchmark polls with

    def median(self, system: str, shape: str) -> Sample:
        ordered = sorted(self.samples[(system, shape)], key=lambda s: s.seconds)
        return ordered[(len(ordered) - 1) // 2]


def report(results: Results) -> str:
    """The whole printed report."""
    runs = len(next(iter(results.samples.values())))
    lines = ["", f"median of {runs} run(s) after a warm-up", ""]
    lines += [*_table(results), "", *_targets(results), "", "each run (seconds)"]
    for (system, shape), values in results.samples.items():
        lines.append(f"  {shape:7} {system:11} " + "  ".join(f"{v.seconds:.3f}" for v in values))
    lines += [
        "",
        "CPU per item, median run (us): workers / redis-server / benchmark process (submit and wait)",
    ]
    for shape in (FANOUT, CHAIN):
        cells = [f"{s} {_cpu(results.median(s, shape))}" for s in results.systems]
        lines.append(f"  {shape:7} " + "   ".join(cells))
    lines += _commands(results) + _round_trips(results)
    lines += ["", "load average (1, 5, 15 min), at start and after each round of runs: "]
    lines += ["  " + "; ".join(" ".join(f"{x:.2f}" for x in load) for load in results.loads)]
    return "\n".join(lines)


def _ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}x" if a and b else "-"


def _table(results: Results) -> list[str]:
    systems = results.systems
    fan = {s: results.median(s, FANOUT) for s in systems}
    chn = {s: results.median(s, CHAIN) for s in systems}
    names = f"{'Floxide':>10} {BATCHED:>12} {'raw Streams':>12} {'Celery':>10}"
    head = f"{'shape':30} {names} {'/batched':>9} {'/raw':>7} {'/Celery':>8}"
    lines = [head, "-" * len(head)]
    rows = [
        (f"fan-out {results.fanout:,} + join, items/s", {s: fan[s].per_second for s in systems}, "{:,.0f}"),
        (f"chain {results.chain:,}, ms per step", {s: chn[s].ms_per_step for s in systems}, "{:.2f}"),
        (f"chain {results.chain:,}, steps/s", {s: 1000 / chn[s].ms_per_step for s in systems}, "{:,.0f}"),
    ]
    for label, values, fmt in rows:
        cells = [fmt.format(values[s]) if s in values else "-" for s in SYSTEMS]
        floxide = values.get("Floxide")
        lines.append(
            f"{label:30} {cells[0]:>10} {cells[1]:>12} {cells[2]:>12} {cells[3]:>10} "
            f"{_ratio(floxide, values.get(BATCHED)):>9} {_ratio(floxide, values.get('raw Streams')):>7} "
            f"{_ratio(floxide, values.get('Celery')):>8}"
        )
    return lines


def _targets(results: Results) -> list[str]:
    systems = results.systems
    if "Floxide" not in systems:
        return []
    checks = []
    floxide = results.median("Floxide", FANOUT).per_second
    if BATCHED in systems:
        share = floxide / results.median(BATCHED, FANOUT).per_second
        checks.append(
            (f"fan-out >= {FANOUT_VS_RAW:.0%} of raw batched", f"{share:.0%}", share >= FANOUT_VS_RAW)
        )
    if "Celery" in systems:
        times = floxide / results.median("Celery", FANOUT).per_second
        checks.append(
            (f"fan-out >= {FANOUT_VS_CELERY:g}x Celery", f"{times:.2f}x", times >= FANOUT_VS_CELERY)
        )
    if BATCHED in systems:
        slower = results.median("Floxide", CHAIN).ms_per_step / results.median(BATCHED, CHAIN).ms_per_step
        checks.append(
            (f"chain ms/step <= {CHAIN_VS_RAW:g}x raw batched", f"{slower:.2f}x", slower <= CHAIN_VS_RAW)
        )
    for shape in (FANOUT, CHAIN):
        sample = results.median("Floxide", shape)
        cpu = sample.worker_cpu * 1e6 / sample.items
        checks.append(
            (f"{shape} worker CPU <= {CPU_PER_ITEM:.0f} us/item", f"{cpu:.0f} us", cpu <= CPU_PER_ITEM)
        )
    for shape, (counts, items) in results.monitored.items():
        trips = sum(v for k, v in counts.items() if k.startswith("client:")) / items
        checks.append((f"{shape} round trips <= {ROUND_TRIPS:g}/item", f"{trips:.2f}", trips <= ROUND_TRIPS))
    return ["targets"] + [
        f"  {label:34} {value:>8}  {'PASS' if ok else 'MISS'}" for label, value, ok in checks
    ]


def _cpu(sample: Sample) -> str:
    per = 1e6 / sample.items
    return f"{sample.worker_cpu * per:.0f}/{sample.redis_cpu * per:.0f}/{sample.client_cpu * per:.0f}"


def _commands(results: Results) -> list[str]:
    lines = [
        "",
        "Redis commands per item, median run, from INFO commandstats deltas: every command Redis ran,",
        "inside Lua scripts too (the benchmark's own polling left out); the top ones",
    ]
    for shape in (FANOUT, CHAIN):
        for system in results.systems:
            sample = results.median(system, shape)
            total = sum(sample.commands.values()) / sample.items
            top = ", ".join(f"{name} {n / sample.items:.2f}" for name, n in sample.commands.most_common(6))
            lines.append(f"  {shape:7} {system:11} {total:6.2f}  {top}")
    if "Floxide" in results.systems:
        for shape in (FANOUT, CHAIN):
            sample = results.median("Floxide", shape)
            usec = {
                k: v for k, v in sample.usec.items() if k not in results.polled and sample.commands[k] > 0
            }
            busy = sorted(usec.items(), key=lambda kv: -kv[1])[:3]
            lines.append(
                f"  {shape:7} Floxide, Redis time per call: "
                + ", ".join(f"{name} {us / sample.commands[name]:.0f} us" for name, us in busy)
            )
    return lines


def _round_trips(results: Results) -> list[str]:
    if not results.monitored:
        return []
    lines = [
        "",
        "Floxide round trips per item: the commands its workers sent, from MONITOR during one more run",
    ]
    for shape, (counts, items) in results.monitored.items():
        sent = Counter({k.removeprefix("client:"): v for k, v in counts.items() if k.startswith("client:")})
        inside = Counter({k.removeprefix("lua:"): v for k, v in counts.items() if k.startswith("lua:")})
        lines.append(
            f"  {shape:7} {sum(sent.values()) / items:5.2f} round trips: "
            + ", ".join(f"{name} {n / items:.3f}" for name, n in sent.most_common(6))
        )
        lines.append(
            f"  {'':7} {sum(inside.values()) / items:5.2f} commands inside scripts: "
            + ", ".join(f"{name} {n / items:.2f}" for name, n in inside.most_common(8))
        )
    return lines


# -- cProfile ------------------------------------------------------------------------------------

PROFILED = (  # (file suffix, function, label): where a worker's busy time goes
    ("floxide/distributed/worker.py", "_process", "steps (one task each, hooks and log line included)"),
    ("floxide/redis/backend.py", "step_input", "  backend.step_input: run status (1 round trip)"),
    ("floxide/redis/backend.py", "commit", "  backend.commit: argv and commit.lua (1 round trip)"),
    ("floxide/distributed/execution.py", "plan_commit", "  plan_commit"),
    ("floxide/step.py", "execute", "  the node, through step.execute"),
    ("logging/__init__.py", "handle", "  logging"),
    ("floxide/distributed/worker.py", "_claim_loop", "claim loop (XREADGROUP, WorkItem parsing, tasks)"),
    ("floxide/distributed/worker.py", "_every", "background duties (promote, heartbeat, ...)"),
    ("redis/asyncio/connection.py", "pack_command", "across all: redis-py packing commands"),
    ("redis/asyncio/connection.py", "read_response", "across all: redis-py reading replies"),
)
IDLE = "<method 'poll' of 'select.epoll' objects>"
STARTUP = {  # own time spent importing modules at start-up, not serving
    "<built-in method builtins.compile>",
    "<built-in method marshal.loads>",
    "<built-in method builtins.exec>",
    "<built-in method builtins.__build_class__>",
    "<method 'read' of '_io.BufferedReader' objects>",
    "<method 'set_default_verify_paths' of '_ssl._SSLContext' objects>",
}

Table = dict[tuple[str, int, str], tuple[Any, ...]]


def _cumulative(table: Table, suffix: str, function: str) -> float:
    return float(sum(v[3] for (f, _, fn), v in table.items() if fn == function and f.endswith(suffix)))


def profile_report(folder: Path, items: Counter[str]) -> str:
    """Where the Floxide workers' time went while serving, per item, from their cProfile files."""
    lines = [
        "",
        "cProfile of the Floxide workers: microseconds per item while serving (every run, warm-up and",
        "MONITOR run included; idle waits left out; profiling inflates Python time, read the shares)",
    ]
    for shape in (FANOUT, CHAIN):
        files = sorted(str(p) for p in folder.glob(f"floxide-{shape}-*.prof"))
        if not files or not items[shape]:
            continue
        table: Table = pstats.Stats(*files).stats  # type: ignore[attr-defined]
        idle = sum(v[2] for (_, _, fn), v in table.items() if fn == IDLE)
        serving = _cumulative(table, "asyncio/base_events.py", "_run_once") - idle
        if serving <= 0:  # uvloop: its loop is C code; Python's own time is what was serving
            serving = sum(v[2] for (f, _, fn), v in table.items() if fn not in STARTUP and not (
                f.endswith("asyncio/runners.py") and fn == "run"
            ))  # fmt: skip
        per = 1e6 / items[shape]
        where = f"{items[shape]:,} items, {len(files)} processes"
        lines.append(f"  {shape} ({where}): event loop busy {serving * per:,.0f} us/item")
        for suffix, function, label in PROFILED:
            spent = _cumulative(table, suffix, function)
            lines.append(f"    {label:52} {spent * per:7,.0f} us {spent / serving:6.1%}")
        ranked = sorted(
            (
                (v[2], f, fn)
                for (f, _, fn), v in table.items()
                # Functions called rarely (module and class bodies) ran at start-up, not serving.
                if fn != IDLE
                and fn not in STARTUP
                and not f.startswith("<frozen")
                and v[1] * 100 >= items[shape]
            ),
            reverse=True,
        )
        top = ", ".join(
            f"{fn if fn.startswith('<') else Path(f).name + ':' + fn} {own * per:.0f}"
            for own, f, fn in ranked[:8]
        )
        lines.append(f"    top functions by own time (us/item, start-up imports left out): {top}")
    return "\n".join(lines)
