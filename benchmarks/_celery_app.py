"""The Celery side of ``redis_throughput.py``: the app and its no-op tasks.

The broker and result backend URLs come from the command line of each process
(``celery -A benchmarks._celery_app -b URL --result-backend URL worker ...``) or, in the
benchmark process, from :func:`configure`. Settings are Celery's defaults except for JSON
only and quiet logging; the workers run with ``--pool=solo`` (one task at a time per
process) and ``--without-gossip --without-mingle --without-heartbeat``.
"""

from __future__ import annotations

from celery import Celery

app = Celery("bench")
app.conf.update(
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
    result_expires=3600,
)


def configure(url: str) -> Celery:
    """Point the app at ``url`` (broker and result backend) and return it."""
    app.conf.update(broker_url=url, result_backend=url)
    return app


@app.task(name="bench.noop")
def noop(i: int) -> int:
    return i


@app.task(name="bench.collect")
def collect(values: list[int]) -> int:
    return len(values)


@app.task(name="bench.step")
def step(n: int) -> int:
    return n - 1
