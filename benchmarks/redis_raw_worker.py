"""The baseline of ``redis_throughput.py``: a minimal work loop written directly on redis-py Streams.

One process, one synchronous connection, one consumer group on two streams:

* ``raw:fan``: each entry is acknowledged together with an ``INCR`` of its run's counter
  (one pipelined round trip); the worker whose ``INCR`` reaches the run's total is the
  join: it records the finish time (``SET``).
* ``raw:chain``: an entry carrying ``n`` is acknowledged together with the ``XADD`` of
  the next entry (``n - 1``), one pipelined round trip; the entry with ``n == 1`` records
  the finish time instead.

Entries are read with ``XREADGROUP ... COUNT c BLOCK 1000``. No retries, no leases, no
context, no item state: only the claim, the acknowledgement and the hand-over::

    python benchmarks/redis_raw_worker.py --redis redis://127.0.0.1:6390/0 --count 16

With ``--batched`` it is the floor a user would write for throughput, on its own streams
(``rawb:fan``, ``rawb:chain``): one ``XREADGROUP`` reads up to ``--count`` entries (100 in
the benchmark), the worker processes them all, then stores every result (``HSET`` of the
run's results hash, one field per entry), adds the next chain entries, counts the run's
entries (one ``INCRBY``) and ``XACK``s every id, in one pipeline::

    python benchmarks/redis_raw_worker.py --redis redis://127.0.0.1:6390/0 --count 100 --batched
"""

from __future__ import annotations

import argparse
import os
import signal
import time
from typing import Any

import redis

GROUP = "raw-workers"
FAN = "raw:fan"
CHAIN = "raw:chain"
READY = "raw:ready"
BATCHED_FAN = "rawb:fan"
BATCHED_CHAIN = "rawb:chain"
BATCHED_READY = "rawb:ready"


def finished_key(stream: str, run: str) -> str:
    """Where the join (or the last step) of ``run`` writes its finish time (epoch seconds)."""
    return f"{stream}:finished:{run}"


def ensure_groups(client: redis.Redis, streams: tuple[str, str] = (FAN, CHAIN)) -> None:
    for stream in streams:
        try:
            client.xgroup_create(stream, GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise


def handle(client: redis.Redis, stream: str, entry_id: str, fields: dict[str, Any]) -> None:
    run = fields["run"]
    pipe = client.pipeline(transaction=False)
    if stream == FAN:
        pipe.xack(FAN, GROUP, entry_id)
        pipe.incr(f"{FAN}:count:{run}")
        _, count = pipe.execute()
        if count == int(fields["total"]):
            client.set(finished_key(FAN, run), repr(time.time()))
        return
    n = int(fields["n"])
    if n > 1:
        pipe.xadd(CHAIN, {"run": run, "n": n - 1})
    else:
        pipe.set(finished_key(CHAIN, run), repr(time.time()))
    pipe.xack(CHAIN, GROUP, entry_id)
    pipe.execute()


def handle_batch(client: redis.Redis, replies: list[Any]) -> None:
    """Every entry of one read: results, next chain entries, counts and acknowledgements, one pipeline."""
    pipe = client.pipeline(transaction=False)
    counted: list[tuple[int, str, int]] = []  # (pipeline position, run, total) of each fan-out INCRBY
    ends: list[str] = []
    for stream, entries in replies:
        if stream == BATCHED_FAN:
            results: dict[str, dict[str, str]] = {}
            totals: dict[str, int] = {}
            for _, fields in entries:
                run = fields["run"]
                results.setdefault(run, {})[fields["i"]] = fields["i"]  # the no-op's result
                totals[run] = int(fields["total"])
            for run, values in results.items():
                pipe.hset(f"{BATCHED_FAN}:results:{run}", mapping=values)
                counted.append((len(pipe), run, totals[run]))
                pipe.incrby(f"{BATCHED_FAN}:count:{run}", len(values))
        else:
            for _, fields in entries:
                n = int(fields["n"])
                if n > 1:
                    pipe.xadd(BATCHED_CHAIN, {"run": fields["run"], "n": n - 1})
                else:
                    ends.append(fields["run"])
        pipe.xack(stream, GROUP, *(entry_id for entry_id, _ in entries))
    for run in ends:
        pipe.set(finished_key(BATCHED_CHAIN, run), repr(time.time()))
    done = pipe.execute()
    for position, run, total in counted:
        if done[position] == total:
            client.set(finished_key(BATCHED_FAN, run), repr(time.time()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis", required=True, help="redis:// URL")
    parser.add_argument("--count", type=int, default=16, help="entries claimed per XREADGROUP")
    parser.add_argument("--batched", action="store_true", help="one pipeline per read, not per entry")
    args = parser.parse_args()
    stopping = False

    def stop(*_: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    client = redis.Redis.from_url(args.redis, decode_responses=True, socket_timeout=10)
    consumer = f"raw-{os.getpid()}"
    streams = (BATCHED_FAN, BATCHED_CHAIN) if args.batched else (FAN, CHAIN)
    ensure_groups(client, streams)
    client.incr(BATCHED_READY if args.batched else READY)
    while not stopping:
        reply = client.xreadgroup(GROUP, consumer, dict.fromkeys(streams, ">"), count=args.count, block=1000)
        if args.batched and reply:
            handle_batch(client, reply)
            continue
        for stream, entries in reply or []:
            for entry_id, fields in entries:
                handle(client, stream, entry_id, fields)
    client.close()


if __name__ == "__main__":
    main()
