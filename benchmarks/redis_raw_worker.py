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


def finished_key(stream: str, run: str) -> str:
    """Where the join (or the last step) of ``run`` writes its finish time (epoch seconds)."""
    return f"{stream}:finished:{run}"


def ensure_groups(client: redis.Redis) -> None:
    for stream in (FAN, CHAIN):
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis", required=True, help="redis:// URL")
    parser.add_argument("--count", type=int, default=16, help="entries claimed per XREADGROUP")
    args = parser.parse_args()
    stopping = False

    def stop(*_: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    client = redis.Redis.from_url(args.redis, decode_responses=True, socket_timeout=10)
    consumer = f"raw-{os.getpid()}"
    ensure_groups(client)
    client.incr(READY)
    while not stopping:
        reply = client.xreadgroup(GROUP, consumer, {FAN: ">", CHAIN: ">"}, count=args.count, block=1000)
        for stream, entries in reply or []:
            for entry_id, fields in entries:
                handle(client, stream, entry_id, fields)
    client.close()


if __name__ == "__main__":
    main()
