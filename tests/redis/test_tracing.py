"""OpenTelemetry tracing across real worker processes on a real redis-server.

The workers are configured as a deployment would be, by the standard variables alone
(``OTEL_EXPORTER_OTLP_ENDPOINT``, ``OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf``,
``OTEL_SERVICE_NAME``): they export OTLP over HTTP to a receiver this test runs on 127.0.0.1,
which decodes the requests with the OTLP protobuf messages. The run is seeded in this process
under an in-memory exporter, so its ``start_run`` span is the root of the workers' spans.

Cases:
* a fan-out of 6 branches and its join, on two workers that export their spans as they stop
  (SIGTERM; the batch delay is longer than the test): one trace id, ``spread`` under the
  ``start_run`` span, each ``work`` under ``spread``, ``gather`` under the ``work`` that closed
  the fan-out (Lua builds the join's item, carrying that step's trace context); every step
  once, ``ok``; a commit span under each step; the service name from ``OTEL_SERVICE_NAME``.
"""

from __future__ import annotations

import asyncio
import gzip
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from redis.asyncio import Redis

from floxide.distributed import DistributedOrchestrator
from floxide.redis import RedisBackend
from tests.distributed import flows
from tests.distributed.spans import Record, check_fanout_trace, from_sdk, memory_spans, steps
from tests.redis.conftest import NAMESPACE, Workers

pytestmark = [pytest.mark.timeout(120), pytest.mark.slow]

SERVICE = "floxide-worker-tracing-test"


class Collector:
    """An OTLP/HTTP trace receiver on 127.0.0.1 keeping every span it is sent."""

    def __init__(self) -> None:
        self.records: list[Record] = []
        self.services: set[str] = set()
        self.arrived = threading.Condition()
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                collector.receive(ExportTraceServiceRequest.FromString(body))
                reply = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def receive(self, request: Any) -> None:
        with self.arrived:
            for resource_spans in request.resource_spans:
                for kv in resource_spans.resource.attributes:
                    if kv.key == "service.name":
                        self.services.add(kv.value.string_value)
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        self.records.append(_record(span))
            self.arrived.notify_all()

    def wait(self, count: int, timeout: float) -> list[Record]:
        """The spans received once there are ``count`` (or ``timeout`` seconds have passed)."""
        with self.arrived:
            self.arrived.wait_for(lambda: len(self.records) >= count, timeout)
            return list(self.records)


def _record(span: Any) -> Record:
    attributes = {}
    for kv in span.attributes:
        kind = kv.value.WhichOneof("value")
        attributes[kv.key] = getattr(kv.value, kind) if kind else None
    return Record(
        name=span.name,
        trace_id=span.trace_id.hex(),
        span_id=span.span_id.hex(),
        parent_id=span.parent_span_id.hex() or None,
        attributes=attributes,
    )


@pytest.fixture
def collector() -> Iterator[Collector]:
    receiver = Collector()
    receiver.thread.start()
    yield receiver
    receiver.server.shutdown()
    receiver.server.server_close()


async def test_a_fan_out_and_join_across_worker_processes_is_one_trace(
    workers: Workers, redis_url: str, collector: Collector
) -> None:
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_SERVICE_NAME": SERVICE,
        "OTEL_BSP_SCHEDULE_DELAY": "600000",  # nothing exported before the workers exit
    }
    # a long lease: no item is reclaimed from a worker slowed by a busy machine (each step once)
    started = await workers.start("tests.distributed.flows:fanout", count=2, concurrency=3, lease=30, env=env)
    client = Redis.from_url(redis_url, decode_responses=True)
    try:
        backend = RedisBackend(client, "fanout", namespace=NAMESPACE, context_type=flows.Tally)
        orchestrator = DistributedOrchestrator(flows.fanout, backend)
        with memory_spans() as exporter:
            run_id = await orchestrator.start_run(flows.Job(count=6, seconds=0.05))
            (root,) = from_sdk(exporter.get_finished_spans())
        info = await orchestrator.wait_for_completion(run_id, timeout=60)
    finally:
        await client.aclose()
    assert info.output == {"values": [0, 1, 2, 3, 4, 5], "total": 6}
    assert collector.wait(1, 0.5) == []  # the spans wait in the workers' batches
    for worker in started:  # a stopping worker exports what it still holds
        assert workers.terminate(worker, timeout=30) == 0, worker.log_text()

    expected = 2 * (6 + 2)  # a step span and a commit span per step
    await asyncio.to_thread(collector.wait, expected, 60)
    records = await asyncio.to_thread(collector.wait, expected + 1, 0.5)  # nothing more should come
    assert len(records) == expected, [r.name for r in records]
    check_fanout_trace(records, root, 6)
    assert collector.services == {SERVICE}
    pids = [w.pid for w in started]
    for step in steps(records):  # ran by one of the worker processes (their ids carry the pid)
        assert any(f"-{pid}-" in step.attributes["floxide.worker_id"] for pid in pids), step
