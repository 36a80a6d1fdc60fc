"""The worker process (``floxide worker TARGET``, ``python -m floxide_worker TARGET``).

It loads a workflow by import path, runs a :class:`~floxide.distributed.DistributedWorker`
on Redis with N concurrent steps, heartbeats, serves ``/metrics``, ``/healthz`` and
``/readyz``, logs one line per retry, failure, cancellation, reclaim or release (every item
at DEBUG), and drains on SIGTERM.

What belongs here is the *process*: settings (:mod:`.settings`), logging (:mod:`.logs`),
Prometheus metrics (:mod:`.metrics`), the HTTP endpoints (:mod:`.probes`), supervision and
signals (:mod:`.process`) and the command line (:mod:`.cli`). How items are claimed,
run and committed belongs to :mod:`floxide.distributed` and :mod:`floxide.redis`. This
package imports the engine, never the operator; importing it loads no Redis, aiohttp or
Prometheus code (``floxide --help`` stays fast): the command imports them when it runs.
"""

from floxide_worker.cli import main

__all__ = ["main"]
