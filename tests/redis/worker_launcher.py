"""A stand-in for ``python -m floxide_worker`` while that command is being written.

Same options: ``TARGET --redis URL --namespace NS --concurrency N --http-port 0 --lease S``.
Runs :class:`DistributedWorker` on a :class:`RedisBackend` until SIGTERM, then drains.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from floxide.cli import load_workflow
from floxide.distributed import DistributedWorker
from floxide.redis import RedisBackend, RedisSettings


async def main(args: argparse.Namespace) -> None:
    workflow = load_workflow(args.target)
    client = RedisSettings(url=args.redis).client(block=1.0)
    backend = RedisBackend(
        client, workflow.name, namespace=args.namespace, context_type=workflow.context_type
    )
    worker = DistributedWorker(
        workflow, backend, concurrency=args.concurrency, lease=args.lease, block=1.0, drain_grace=5.0
    )
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, worker.stop)
    try:
        await worker.run()
    finally:
        await client.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("target")
    parser.add_argument("--redis", required=True)
    parser.add_argument("--namespace", default="default")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--http-port", type=int, default=0)
    parser.add_argument("--lease", type=float, default=30.0)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(main(parser.parse_args()))
