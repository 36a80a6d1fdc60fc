"""OpenTelemetry tracing on the in-memory backend and in local runs (:mod:`floxide.tracing`).

Cases:
* a distributed fan-out and join on two in-process workers: one trace, the right parents (the
  join's is the step that closed its fan-out), every step once with its attributes, a commit
  span under each step;
* a retried step: the failed attempt's span is ``retried`` with ERROR status and the exception
  recorded, the next attempt is ``ok``, both with the same parent;
* a local run: one ``run`` span, a ``step`` span per step beneath it;
* off: with no provider and no ``OTEL_*`` variable, nothing is traced and OpenTelemetry is not
  even imported (a fresh interpreter runs a local and a distributed run);
* the gate: ``OTEL_TRACES_EXPORTER=none`` or ``OTEL_SDK_DISABLED=true`` keep it off;
* configured by the environment alone (``OTEL_TRACES_EXPORTER=console``, ``OTEL_SERVICE_NAME``)
  in a fresh interpreter, the SDK's own set-up exports the run's spans under that service name.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from floxide import tracing
from tests.distributed import flows
from tests.distributed.inprocess import memory_orchestrator, running, until
from tests.distributed.spans import check_fanout_trace, from_sdk, memory_spans, steps

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parents[2]


async def test_a_distributed_fan_out_and_join_is_one_trace() -> None:
    with memory_spans() as exporter:
        orchestrator = memory_orchestrator(flows.fanout)
        run_id = await orchestrator.start_run(flows.Job(count=5))
        async with running(flows.fanout, orchestrator.backend, count=2, concurrency=3):
            info = await orchestrator.wait_for_completion(run_id, timeout=20)
        assert info.output == {"values": [0, 1, 2, 3, 4], "total": 5}
        records = from_sdk(exporter.get_finished_spans())
    (root,) = [r for r in records if r.name.startswith("start_run ")]
    assert root.attributes == {"floxide.workflow": "fanout", "floxide.run_id": run_id}
    check_fanout_trace(records, root, 5)


async def test_a_retried_attempt_and_the_next_share_their_parent(marks: Path) -> None:
    with memory_spans() as exporter:
        orchestrator = memory_orchestrator(flows.fragile)
        run_id = await orchestrator.start_run(3)
        async with running(flows.fragile, orchestrator.backend, count=1, retry=None):
            await until(
                lambda: flows.read_marks(marks, run_id, "attempt-1"), timeout=10, what="the first attempt"
            )
            flows.switch_on(marks)
            info = await orchestrator.wait_for_completion(run_id, timeout=20)
        assert info.output == "fixed 4"  # prepare adds 1
        records = from_sdk(exporter.get_finished_spans())
    (prepare,) = steps(records, "prepare")
    attempts = sorted(steps(records, "attempt"), key=lambda r: r.attributes["floxide.attempt"])
    assert [a.attributes["floxide.attempt"] for a in attempts] == [1, 2]
    first, second = attempts
    assert first.attributes["floxide.outcome"] == "retried"
    assert first.status == "ERROR" and first.events == ("exception",)
    assert second.attributes["floxide.outcome"] == "ok" and second.status == "UNSET"
    assert first.parent_id == second.parent_id == prepare.span_id
    assert first.attributes["floxide.item_id"] == second.attributes["floxide.item_id"]
    assert {r.trace_id for r in records} == {prepare.trace_id}


async def test_a_local_run_has_a_span_and_one_per_step() -> None:
    with memory_spans() as exporter:
        result = await flows.fanout.execute(flows.Job(count=3), run_id="local-1")
        records = from_sdk(exporter.get_finished_spans())
    assert result.output.values == [0, 1, 2]
    (run,) = [r for r in records if r.name == "run fanout"]
    assert run.parent_id is None
    assert run.attributes == {"floxide.workflow": "fanout", "floxide.run_id": "local-1"}
    every = steps(records)
    assert sorted(r.attributes["floxide.node"] for r in every) == ["gather", "spread", "work", "work", "work"]
    assert all(r.parent_id == run.span_id and r.trace_id == run.trace_id for r in every)
    assert all(r.attributes["floxide.outcome"] == "ok" for r in every)
    assert len(records) == 6


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


_OFF_SCRIPT = """
import asyncio, sys
from floxide import tracing
from floxide.distributed import DistributedOrchestrator, DistributedWorker, InMemoryBackend
from tests.distributed import flows

async def main():
    await flows.fanout.execute(flows.Job(count=2))
    backend = InMemoryBackend("fanout", context_type=flows.Tally)
    orchestrator = DistributedOrchestrator(flows.fanout, backend)
    run_id = await orchestrator.start_run(flows.Job(count=2))
    worker = DistributedWorker(flows.fanout, backend)
    while await worker.run_once():
        pass
    assert await orchestrator.status(run_id) == "Completed"

asyncio.run(main())
assert tracing.tracing() is None
print(sorted(m for m in sys.modules if m.split(".")[0] == "opentelemetry"))
"""


def test_off_it_imports_no_opentelemetry() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _OFF_SCRIPT], cwd=ROOT, env=_clean_env(), capture_output=True, text=True,
        timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize(
    "env",
    [
        {},
        {"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"},
        {"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "console"},
        {"OTEL_SERVICE_NAME": "only-a-name"},
    ],
)
def test_the_environment_leaves_it_off(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [*tracing.TRIGGERS, "OTEL_SDK_DISABLED"]:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(tracing, "_configured", None)
    monkeypatch.delitem(sys.modules, "opentelemetry.trace", raising=False)  # no provider to look at
    assert tracing.tracing() is None


_CONSOLE_SCRIPT = """
import asyncio
from tests.distributed import flows
asyncio.run(flows.fanout.execute(flows.Job(count=2), run_id="console-1"))
"""


def test_the_environment_alone_turns_it_on() -> None:
    env = _clean_env(OTEL_TRACES_EXPORTER="console", OTEL_SERVICE_NAME="floxide-console-test")
    done = subprocess.run(
        [sys.executable, "-c", _CONSOLE_SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    decoder, text, spans = json.JSONDecoder(), done.stdout.strip(), []
    while text:  # the console exporter prints one JSON document per span
        span, end = decoder.raw_decode(text)
        spans.append(span)
        text = text[end:].strip()
    names = sorted(span["name"] for span in spans)
    assert names == ["run fanout", "step gather", "step spread", "step work", "step work"]
    assert {span["resource"]["attributes"]["service.name"] for span in spans} == {"floxide-console-test"}
    assert {span["context"]["trace_id"] for span in spans} == {spans[0]["context"]["trace_id"]}
