"""Distributed throughput on Redis: Floxide workers beside raw Streams loops and Celery.

One private ``redis-server`` (a free port, never 6379; no persistence) and, for each
system, ``--workers`` worker processes. Four systems: Floxide; the batched raw loop, the
floor a user would write (each worker reads up to 100 entries with one ``XREADGROUP``,
processes them, then stores every result and ``XACK``s every id in one pipeline; the
benchmark adds the entries pipelined); the unbatched raw loop (one pipeline per entry);
Celery. Two shapes, measured in the same run, side by side:

* **fan-out + join**: ``n`` no-op items and a join. Floxide: ``split`` (``NextAll(range(n))``)
  -> ``noop`` -> ``join(noop, collect)``; raw Streams: the benchmark XADDs ``n`` entries, the
  workers ``XACK`` + ``INCR`` each and the one reaching ``n`` records the end; Celery: a
  ``chord`` of ``n`` no-op tasks with a join callback. Figure: items per second from submit
  to the run's end (Floxide counts ``n + 2`` items, the split and the join too; Celery
  ``n + 1``, the callback too).
* **chain**: ``steps`` no-op steps one after the other. Floxide: one node routing back to
  itself; raw Streams: each step ``XREADGROUP``s an entry, ``XADD``s the next one and
  ``XACK``s; Celery: a ``chain`` of no-op tasks. Figures: milliseconds per step, steps/s.

Each system is warmed up, then each measurement is repeated ``--repeat`` times, the
systems taking turns, and the median is reported. Targets: fan-out at least 30% of the
batched raw loop and 3x Celery; chain latency per step at most 2x the batched raw loop;
Floxide's worker CPU at most 80 us per item; at most 1.1 round trips per item.

Also printed: CPU time per item (workers, redis-server, this process), Redis commands per
item from ``INFO commandstats`` deltas (every command Redis executed, inside Lua scripts
too; this process's own polling left out), and the round trips per item the Floxide
workers make, split by command and script, from one extra run of each shape under ``MONITOR``.

    python benchmarks/redis_throughput.py                  # 2 workers each, 5,000 / 500
    python benchmarks/redis_throughput.py --quick          # small sizes, one run: a smoke test
    python benchmarks/redis_throughput.py --profile DIR    # also cProfile the Floxide workers

Floxide workers are the real worker process, ``python -m floxide_worker TARGET --redis URL
--namespace bench --concurrency C --http-port 0`` (under ``python -m cProfile`` with
``--profile``). Every process and the server are stopped on exit, also on Ctrl-C or a
failure; logs are kept in a temporary folder when something failed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import gc
import hashlib
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from importlib.metadata import version
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import redis
from celery import chain as celery_chain
from celery import chord
from redis.asyncio import Redis

from benchmarks import _celery_app as tasks
from benchmarks import redis_raw_worker as raw
from benchmarks import redis_workflows as flows
from benchmarks.redis_processes import ROOT, SERVER, Processes, free_port
from benchmarks.redis_report import (
    BATCHED,
    CHAIN,
    FANOUT,
    SYSTEMS,
    Results,
    Sample,
    profile_report,
    report,
)
from floxide.distributed import DistributedOrchestrator
from floxide.redis import RedisBackend

NAMESPACE = "bench"
TARGETS = {FANOUT: "benchmarks.redis_workflows:fanout", CHAIN: "benchmarks.redis_workflows:chain"}
POLL = 0.005  # seconds between this process's checks for the end of a run
BATCH_COUNT = 100  # entries one XREADGROUP of the batched raw loop reads
RUN_TIMEOUT = 120.0  # seconds one run may take
IGNORED = {"info", "client|list", "monitor"}  # the benchmark's own bookkeeping
MONITOR_LINE = re.compile(r'^\d+\.\d+ \[\d+ ([^\]]+)\] "([^"]*)"(?: "([^"]*)")?')


@dataclass
class Snapshot:
    commands: Counter[str]
    usec: Counter[str]
    redis_cpu: float
    worker_cpu: float
    client_cpu: float


class Bench:
    """The server, the worker processes of every system, and one measurement per call."""

    def __init__(self, args: argparse.Namespace, procs: Processes) -> None:
        self.args = args
        self.procs = procs
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.client: Redis = Redis.from_url(self.url, decode_responses=True, client_name="bench")
        self.sync = redis.Redis.from_url(self.url, decode_responses=True, client_name="bench")
        self.celery = tasks.configure(self.url)
        self.workflows = {FANOUT: flows.fanout, CHAIN: flows.chain}
        self.backends = {
            shape: RedisBackend(self.client, wf.name, namespace=NAMESPACE, context_type=wf.context_type)
            for shape, wf in self.workflows.items()
        }
        self.orchestrators = {
            shape: DistributedOrchestrator(self.workflows[shape], backend)
            for shape, backend in self.backends.items()
        }
        self.workers: dict[str, list[str]] = {system: [] for system in SYSTEMS}
        self.own: Counter[str] = Counter()  # commands of this process's polling, left out of the counts
        self.processed: Counter[str] = Counter()  # items of every Floxide run, per shape

    async def close(self) -> None:
        await self.client.aclose()
        self.sync.close()
        with contextlib.suppress(Exception):
            self.celery.close()

    # -- setup ---------------------------------------------------------------------------------

    async def start(self) -> None:
        server = shutil.which(SERVER) or SERVER
        self.procs.start(
            SERVER,
            [server, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.procs.logs), "--daemonize", "no"],
        )  # fmt: skip
        await self._until(self._pong, "redis-server to answer")
        k, c, url = self.args.workers, self.args.concurrency, self.url
        systems = self.args.systems
        for shape, target in TARGETS.items() if "Floxide" in systems else ():
            for i in range(k):
                name = f"floxide-{shape}-{i}"
                profile = f"-m cProfile -o {self.args.profile / name}.prof " if self.args.profile else ""
                flags = f"--redis {url} --namespace {NAMESPACE} --concurrency {c} --http-port 0"
                self._start("Floxide", name, f"{profile}-m floxide_worker {target} {flags}")
        for i in range(k if "raw Streams" in systems else 0):
            self._start(
                "raw Streams", f"raw-{i}", f"benchmarks/redis_raw_worker.py --redis {url} --count {c}"
            )
        for i in range(k if BATCHED in systems else 0):
            self._start(
                BATCHED,
                f"rawb-{i}",
                f"benchmarks/redis_raw_worker.py --redis {url} --count {BATCH_COUNT} --batched",
            )
        for i in range(k if "Celery" in systems else 0):
            options = "--pool=solo --without-gossip --without-mingle --without-heartbeat --loglevel=WARNING"
            celery = f"-m celery -A benchmarks._celery_app -b {url} --result-backend {url} worker {options}"
            self._start("Celery", f"celery-{i}", f"{celery} -n bench{i}@%h")
        if "Floxide" in systems:
            for shape, backend in self.backends.items():
                await self._until(functools.partial(self._live, backend, k), f"{k} Floxide {shape} workers")
        if "raw Streams" in systems:
            await self._until(self._sync(lambda: int(self.sync.get(raw.READY) or 0) >= k), f"{k} raw workers")
        if BATCHED in systems:
            ready = self._sync(lambda: int(self.sync.get(raw.BATCHED_READY) or 0) >= k)
            await self._until(ready, f"{k} batched raw workers")
        if "Celery" in systems:
            ready = self._sync(lambda: len(self.celery.control.ping(timeout=0.5)) >= k)
            await self._until(ready, f"{k} Celery workers")

    def _start(self, system: str, name: str, arguments: str) -> None:
        """Start a Python process of ``system`` (``arguments`` hold no spaces of their own)."""
        self.procs.start(name, [sys.executable, *arguments.split()])
        self.workers[system].append(name)

    async def _pong(self) -> bool:
        try:
            return bool(await self.client.ping())
        except (redis.ConnectionError, OSError):
            return False

    async def _live(self, backend: RedisBackend, k: int) -> bool:
        return len(await backend.liveness.list()) >= k

    @staticmethod
    def _sync(check: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
        async def run() -> bool:
            return check()

        return run

    async def _until(self, check: Callable[[], Awaitable[bool]], what: str, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while not await check():
            self.procs.check()
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out waiting for {what}")
            await asyncio.sleep(0.1)

    # -- one run ---------------------------------------------------------------------------------

    async def snapshot(self, system: str) -> Snapshot:
        stats = await self.client.info("commandstats")
        cpu = await self.client.info("cpu")
        calls: Counter[str] = Counter()
        usec: Counter[str] = Counter()
        for key, value in stats.items():
            name = key.removeprefix("cmdstat_")
            calls[name] = int(value["calls"]) - self.own[name]
            usec[name] = int(value["usec"])
        return Snapshot(
            calls,
            usec,
            float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"]),
            self.procs.cpu_seconds(self.workers[system]),
            time.process_time(),
        )

    async def measure(self, system: str, shape: str, size: int) -> Sample:
        run = {
            "Floxide": self._floxide,
            "raw Streams": self._raw,
            BATCHED: functools.partial(self._raw, batched=True),
            "Celery": self._celery,
        }[system]
        before = await self.snapshot(system)
        items, seconds = await run(shape, size)
        after = await self.snapshot(system)
        self.procs.check()
        commands = Counter({k: v for k, v in (after.commands - before.commands).items() if k not in IGNORED})
        return Sample(
            system, shape, size, items, seconds, commands, after.usec - before.usec,
            after.redis_cpu - before.redis_cpu, after.worker_cpu - before.worker_cpu,
            after.client_cpu - before.client_cpu,
        )  # fmt: skip

    async def _floxide(self, shape: str, size: int) -> tuple[int, float]:
        """Start a run, wait for its end; the end time is the one its last commit wrote."""
        started = time.time()
        run_id = await self.orchestrators[shape].start_run(size)
        info = self.backends[shape].run_keys(run_id).info
        deadline = time.monotonic() + RUN_TIMEOUT
        while True:
            status, finished = await self.client.hmget(info, "status", "finished_at")
            self.own["hmget"] += 1
            if status not in ("Pending", "Running"):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"Floxide {shape} run {run_id} still {status} after {RUN_TIMEOUT:.0f}s")
            self.procs.check()
            await asyncio.sleep(POLL)
        data = await self.client.hgetall(info)
        self.own["hgetall"] += 1
        expected = size if shape == FANOUT else 0
        if status != "Completed" or data.get("output") != str(expected):
            raise RuntimeError(f"Floxide {shape} run {run_id} ended {status}: {data}")
        items = int(data["items_done"])
        self.processed[shape] += items
        return items, datetime.fromisoformat(finished).timestamp() - started

    async def _raw(self, shape: str, size: int, *, batched: bool = False) -> tuple[int, float]:
        """XADD the entries (one pipeline) or the first step; the last worker writes the end time."""
        run = uuid.uuid4().hex
        fan, chain = (raw.BATCHED_FAN, raw.BATCHED_CHAIN) if batched else (raw.FAN, raw.CHAIN)
        started = time.time()
        if shape == FANOUT:
            pipe = self.sync.pipeline(transaction=False)
            for i in range(size):
                pipe.xadd(fan, {"run": run, "total": size, "i": i})
            pipe.execute()
        else:
            self.sync.xadd(chain, {"run": run, "n": size})
        key = raw.finished_key(fan if shape == FANOUT else chain, run)
        deadline = time.monotonic() + RUN_TIMEOUT
        while True:
            finished = self.sync.get(key)
            self.own["get"] += 1
            if finished is not None:
                return size, float(finished) - started
            if time.monotonic() > deadline:
                raise RuntimeError(f"raw {shape} run {run} did not finish after {RUN_TIMEOUT:.0f}s")
            self.procs.check()
            await asyncio.sleep(POLL)

    async def _celery(self, shape: str, size: int) -> tuple[int, float]:
        """``chord(...)(callback)`` or ``chain(...).apply_async()``, then ``.get()``, as documented."""
        started = time.time()
        if shape == FANOUT:
            result = chord(tasks.noop.s(i) for i in range(size))(tasks.collect.s())
            expected, items = size, size + 1
        else:
            result = celery_chain(
                tasks.step.s(size), *(tasks.step.s() for _ in range(size - 1))
            ).apply_async()
            expected, items = 0, size
        value = result.get(timeout=RUN_TIMEOUT)
        seconds = time.time() - started
        # Dropping a result unsubscribes from its channel: do it now, inside this run's
        # command count and while the server is up, not at some later moment.
        del result
        gc.collect()
        if value != expected:
            raise RuntimeError(f"Celery {shape} returned {value!r}, expected {expected!r}")
        return items, seconds

    # -- round trips, from MONITOR -------------------------------------------------------------

    async def _own_addresses(self) -> set[str]:
        listing = await self.client.execute_command("CLIENT", "LIST")
        return {
            line.split(" ")[1].removeprefix("addr=")
            for line in listing.splitlines()
            if " name=bench " in line
        }

    async def monitor(self, shape: str, size: int) -> tuple[Counter[str], int]:
        """One more Floxide run under MONITOR: its commands, keyed ``client:<command>`` or
        ``lua:<command>`` (EVALSHA named by script), and its items."""
        name = f"monitor-{shape}"
        self.procs.start(name, [shutil.which("redis-cli") or "redis-cli", "-p", str(self.port), "monitor"])
        try:
            await asyncio.sleep(0.3)
            ours = await self._own_addresses()
            items, _ = await self._floxide(shape, size)
            ours |= await self._own_addresses()
            await asyncio.sleep(0.3)
        finally:
            self.procs.stop({name})
        tag = f"{{wf:{NAMESPACE}/{self.workflows[shape].name}}}"
        shas = {
            hashlib.sha1(p.read_bytes()).hexdigest(): p.name
            for p in (ROOT / "floxide" / "redis").glob("*.lua")
        }
        lines = [
            m
            for m in map(MONITOR_LINE.match, self.procs.log(name).read_text(errors="replace").splitlines())
            if m
        ]
        # The workers' connections are those that sent a command with the workflow's keys;
        # everything they sent counts (SCRIPT EXISTS names no key), and the scripts' own calls.
        workers = {m[1] for m in lines if tag in m.string and m[1] != "lua"} - ours
        counts: Counter[str] = Counter()
        for match in lines:
            source, command, first = match.groups()
            if source not in workers and not (source == "lua" and tag in match.string):
                continue
            command = command.lower()
            if command in ("evalsha", "eval"):
                command = f"{command} {shas.get(first or '', 'script')}"
            elif command in ("script", "xinfo", "xgroup", "client") and first:
                command = f"{command} {first.lower()}"
            counts[f"{'lua' if source == 'lua' else 'client'}:{command}"] += 1
        self.procs.log(name).unlink()
        return counts, items


# -- the run -------------------------------------------------------------------------------------


async def bench(args: argparse.Namespace, procs: Processes) -> Counter[str]:
    """Start everything, time every run, print the report; returns the Floxide items per shape."""
    b = Bench(args, procs)
    try:
        await b.start()
        sizes = {FANOUT: args.fanout, CHAIN: args.chain}
        results = Results(args.fanout, args.chain, [s for s in SYSTEMS if s in args.systems])
        results.loads.append(os.getloadavg())
        print(_header(args, b), flush=True)
        for system in results.systems:
            for shape, size in sizes.items():
                await b.measure(system, shape, size if args.quick else max(2, size // 10))
        print("warmed up; timing", flush=True)
        for rep in range(args.repeat):
            for shape, size in sizes.items():
                for system in results.systems:
                    sample = await b.measure(system, shape, size)
                    results.samples.setdefault((system, shape), []).append(sample)
                    figure = (
                        f"{sample.per_second:,.0f} items/s"
                        if shape == FANOUT
                        else f"{sample.ms_per_step:.2f} ms/step"
                    )
                    print(
                        f"  run {rep + 1}: {shape:7} {system:11} {sample.seconds:7.3f} s  {figure}",
                        flush=True,
                    )
            results.loads.append(os.getloadavg())
        if "Floxide" in results.systems:
            for shape, size in sizes.items():
                results.monitored[shape] = await b.monitor(shape, size)
        results.polled = set(b.own)
        print(report(results), flush=True)
        return b.processed
    finally:
        await b.close()


def _header(args: argparse.Namespace, b: Bench) -> str:
    server = b.sync.info("server")["redis_version"]
    return "\n".join([
        "Redis throughput: Floxide workers, raw redis-py Streams loops (batched, unbatched) and Celery",
        f"tree {_revision()}; redis-server {server} on port {b.port}, private, no persistence",
        f"Python {platform.python_version()}, redis-py {redis.__version__}, celery {version('celery')}, "
        f"{os.cpu_count()} CPUs; load average at start {' '.join(f'{x:.2f}' for x in os.getloadavg())}",
        f"{args.workers} worker processes per system: Floxide `python -m floxide_worker --concurrency "
        f"{args.concurrency}`, raw loop XREADGROUP COUNT {args.concurrency}, batched raw loop COUNT "
        f"{BATCH_COUNT}, Celery --pool=solo (prefetch 4)",
    ])  # fmt: skip


def _revision() -> str:
    """The commit measured, and whether the engine or worker files differ from it."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "floxide", "worker"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
    except OSError:
        return "unknown"
    return head.stdout.strip() + (" (floxide/ or worker/ modified)" if dirty.stdout.strip() else "")


@contextlib.contextmanager
def _sigterm_as_exit() -> Iterator[None]:
    previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2, help="worker processes per system (default 2)")
    parser.add_argument("--fanout", type=int, default=5000, help="fan-out width (default 5000)")
    parser.add_argument("--chain", type=int, default=500, help="chain length (default 500)")
    parser.add_argument(
        "--concurrency",
        type=int,
        default=16,
        help="steps in flight per Floxide worker, entries per raw XREADGROUP",
    )
    parser.add_argument(
        "--repeat", type=int, default=3, help="timed runs per measurement; the median is shown"
    )
    parser.add_argument(
        "--systems", default=",".join(SYSTEMS), help="a comma-separated subset of: " + ", ".join(SYSTEMS)
    )
    parser.add_argument("--quick", action="store_true", help="fan-out 500, chain 50, one run: a smoke test")
    parser.add_argument(
        "--profile", metavar="DIR", help="cProfile the Floxide workers into DIR and summarize"
    )
    args = parser.parse_args()
    if args.quick:
        args.fanout, args.chain, args.repeat = min(args.fanout, 500), min(args.chain, 50), 1
    args.systems = [s.strip() for s in args.systems.split(",")]
    unknown = set(args.systems) - set(SYSTEMS)
    if unknown:
        parser.error(f"unknown systems: {', '.join(sorted(unknown))}")
    if min(args.fanout, args.chain, args.workers, args.repeat, args.concurrency) < 1:
        parser.error("sizes and counts must be positive")
    if args.profile:
        args.profile = Path(args.profile).resolve()
        args.profile.mkdir(parents=True, exist_ok=True)
        for stale in args.profile.glob("floxide-*.prof"):
            stale.unlink()
    logs = Path(tempfile.mkdtemp(prefix="redis-throughput-"))
    procs = Processes(logs)
    processed: Counter[str] = Counter()
    failed = True
    try:
        with _sigterm_as_exit():
            processed = asyncio.run(bench(args, procs))
        failed = False
    except KeyboardInterrupt:
        print("\ninterrupted; stopping every process", file=sys.stderr)
    finally:
        procs.stop_all()  # the workers write their profiles as they exit
        if failed:
            print(f"logs kept in {logs}", file=sys.stderr)
        else:
            shutil.rmtree(logs, ignore_errors=True)
    if failed:
        sys.exit(1)
    if args.profile:
        print(profile_report(args.profile, processed))


if __name__ == "__main__":
    main()
