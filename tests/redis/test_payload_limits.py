"""The payload size limit (``FLOXIDE_MAX_PAYLOAD_BYTES``): refused with the size and the limit named,
never half-written. A real redis-server, real worker processes and the real ``floxide`` command.

Cases:
* a worker whose limit is 64 KiB: a step whose output, successor input or changed context field
  is over it fails permanently, as a node failure whose error names the node, the value, its
  size and the limit; the run is Failed; nothing of the step was written (no successor item, the
  context as it was, the summed field not added); a run of the same workflow within the limit
  completes beside it;
* the Python API: ``start_run`` refuses an input over the limit (1 MiB by default) before
  anything is stored; ``max_payload_bytes`` raises it; a context field over it is refused too;
* ``floxide submit``: an input over 1 MiB exits 2 with one line naming size and limit, without
  contacting Redis; with ``FLOXIDE_MAX_PAYLOAD_BYTES`` raised (for the command and the worker)
  the same input runs to completion; a bad ``FLOXIDE_MAX_PAYLOAD_BYTES`` exits 2 naming it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from redis.asyncio import Redis

from floxide.distributed import DistributedOrchestrator, RunStatus
from floxide.distributed.execution import seed_run, start_run
from floxide.distributed.payloads import DEFAULT_MAX_PAYLOAD_BYTES, payload_size
from floxide.errors import PayloadTooLarge
from floxide.redis import RedisBackend
from tests.redis.conftest import NAMESPACE, Workers
from tests.redis.sized_flows import Notes, Sized, sized
from tests.worker.helpers import child_env, floxide

pytestmark = [pytest.mark.redis, pytest.mark.timeout(120)]

TARGET = "tests.redis.sized_flows:sized"
LIMIT = 64 * 1024


def backend_of(client: Redis) -> RedisBackend:
    return RedisBackend(client, "sized", namespace=NAMESPACE, context_type=Notes)


async def test_a_step_over_the_limit_fails_and_writes_nothing(redis: Redis, workers: Workers) -> None:
    await workers.start(TARGET, count=1, env={"FLOXIDE_MAX_PAYLOAD_BYTES": str(LIMIT)})
    backend = backend_of(redis)
    orchestrator = DistributedOrchestrator(sized, backend)
    big = LIMIT + 1000
    runs = {
        where: await orchestrator.start_run(Sized(size=big, where=where), run_id=f"big-{where}")
        for where in ("child", "context", "output")
    }
    fine = await orchestrator.start_run(Sized(size=LIMIT // 2, where="output"), run_id="fine")
    assert (await orchestrator.wait_for_completion(fine, timeout=60)).output == "o" * (LIMIT // 2)

    expected = {
        "child": ("grow", "the input node 'grow' sends to 'finish' is"),
        "context": ("grow", "context field 'notes' after node 'grow' is"),
        "output": ("finish", "the output of node 'finish' is"),
    }
    for where, run_id in runs.items():
        info = await orchestrator.wait_for_completion(run_id, timeout=60)
        assert info.status == RunStatus.FAILED, where
        (error,) = await backend.errors.list(run_id)
        node, what = expected[where]
        assert error.node == node and error.error_type == "PayloadTooLarge" and error.permanent
        assert error.message.startswith(what), error.message
        assert f"over the limit of {LIMIT:,} bytes (FLOXIDE_MAX_PAYLOAD_BYTES)" in error.message
        size = int(error.message.removeprefix(what).split(" bytes")[0].replace(",", ""))
        assert big < size < big + 200  # the value's JSON: the padding plus a few fields
        assert info.error is not None and f"{size:,} bytes" in info.error
        states = {state.node: state.status.value for state in await backend.items.list(run_id)}
        context = await backend.contexts.get(run_id)
        if where == "output":  # grow was committed before finish failed
            assert states == {"grow": "Completed", "finish": "Failed"}, states
            assert context == {"notes": "", "steps": 1}
        else:  # nothing of grow's step: no finish item, no context change, no step counted
            assert states == {"grow": "Failed"}, states
            assert context == {"notes": "", "steps": 0}


async def test_the_python_api_refuses_an_input_over_the_limit(redis: Redis) -> None:
    backend = backend_of(redis)
    orchestrator = DistributedOrchestrator(sized, backend)
    pad = "p" * DEFAULT_MAX_PAYLOAD_BYTES
    with pytest.raises(PayloadTooLarge) as refused:
        await orchestrator.start_run(Sized(pad=pad), run_id="too-big")
    size = payload_size(Sized(pad=pad).model_dump(mode="json"))
    assert refused.value.size == size and refused.value.limit == DEFAULT_MAX_PAYLOAD_BYTES
    assert str(refused.value).startswith(
        f"the run's input is {size:,} bytes, over the limit of 1,048,576 bytes (FLOXIDE_MAX_PAYLOAD_BYTES)"
    )
    assert await backend.runs.get("too-big") is None
    assert await redis.keys("*too-big*") == []
    with pytest.raises(PayloadTooLarge):  # what Workflow.start_distributed calls, with its default
        await start_run(sized, backend, Sized(pad=pad), run_id="too-big")
    with pytest.raises(PayloadTooLarge, match=r"^context field 'notes' is 2,\d{3},\d{3} bytes"):
        await start_run(sized, backend, Sized(), run_id="big-context", context=Notes(notes=pad * 2))
    assert await backend.runs.get("big-context") is None

    roomy = DistributedOrchestrator(sized, backend, max_payload_bytes=2 * DEFAULT_MAX_PAYLOAD_BYTES)
    assert await roomy.start_run(Sized(pad=pad), run_id="roomy") == "roomy"
    assert await backend.runs.get("roomy") is not None
    with pytest.raises(PayloadTooLarge, match="over the limit of 2,048 bytes"):
        await seed_run(backend, start_node="grow", payload={"pad": "x" * 2048}, max_payload_bytes=2048)


async def test_floxide_submit_refuses_an_input_over_the_limit(
    redis_url: str, workers: Workers, tmp_path: Path
) -> None:
    data = tmp_path / "big.json"
    data.write_text(json.dumps({"where": "none", "pad": "p" * DEFAULT_MAX_PAYLOAD_BYTES}))
    nowhere = child_env("redis://127.0.0.1:9/0", FLOXIDE_NAMESPACE=NAMESPACE)  # never contacted
    refused = floxide("submit", TARGET, "--input", f"@{data}", env=nowhere)
    size = DEFAULT_MAX_PAYLOAD_BYTES + len('{"size":0,"where":"none","pad":""}')
    assert (refused.returncode, refused.stdout) == (2, "")
    assert refused.stderr == (
        f"error: bad --input: the input is {size:,} bytes, over the limit of 1,048,576 bytes "
        "(FLOXIDE_MAX_PAYLOAD_BYTES); pass large data by reference (an object-store key, a URL)\n"
    )
    bad = floxide("submit", TARGET, "--input", "{}", env={**nowhere, "FLOXIDE_MAX_PAYLOAD_BYTES": "12"})
    assert bad.returncode == 2
    assert bad.stderr.startswith("error: bad FLOXIDE_MAX_PAYLOAD_BYTES: "), bad.stderr

    roomy = {"FLOXIDE_MAX_PAYLOAD_BYTES": str(4 * DEFAULT_MAX_PAYLOAD_BYTES)}
    env = child_env(redis_url, FLOXIDE_NAMESPACE=NAMESPACE, **roomy)
    await workers.start(TARGET, count=1, url=redis_url, env=roomy)
    done = floxide("submit", TARGET, "--input", f"@{data}", "--wait", "--timeout", "60", env=env)
    assert (done.returncode, done.stdout) == (0, '"done"\n'), done.stderr
