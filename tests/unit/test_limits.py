"""Node limits as declared, and in local runs.

Cases:
* limits attach to the nodes' specs, one or a list per node, by node or by name;
* a bad declaration is a GraphError naming the workflow and the node: an unknown node, something
  that is not a limit, two limits of one kind on a node, a shared name with other settings;
* bad limit values are refused by pydantic (max 0, per_second 0, infinite rate, burst 0);
* a key value becomes a key name part: short safe values stay readable, others become a digest;
* a failing key function is a FloxideError naming the node;
* local runs: a concurrency limit (per key) holds among concurrent branches, a rate limit spaces
  the starts, and two runs of one workflow share the limits.
"""

from __future__ import annotations

import asyncio
import math
import time

import pytest
from pydantic import BaseModel, ValidationError

from floxide import ConcurrencyLimit, FloxideError, GraphError, NextAll, RateLimit, Workflow, edge, node
from floxide.limits import limit_keys


class Job(BaseModel):
    n: int
    key: str = "k"


@node
async def fan(count: int) -> NextAll[Job]:
    return NextAll([Job(n=n, key=f"k{n % 2}") for n in range(count)])


running: dict[str, int] = {}
peaks: dict[str, int] = {}
starts: list[float] = []


@node
async def work(job: Job) -> int:
    starts.append(time.monotonic())
    for key in (job.key, "all"):
        running[key] = running.get(key, 0) + 1
        peaks[key] = max(peaks.get(key, 0), running[key])
    await asyncio.sleep(0.02)
    for key in (job.key, "all"):
        running[key] -= 1
    return job.n


def flow(**limits: object) -> Workflow[int, int]:
    return Workflow("limited", start=fan, edges=[edge(fan, work)], limits=limits or None)  # type: ignore[arg-type]


def test_limits_attach_to_nodes() -> None:
    one = ConcurrencyLimit(max=2)
    assert flow(work=one).graph.nodes["work"].limits == (one,)
    both = [ConcurrencyLimit(max=2), RateLimit(per_second=3, burst=2)]
    assert flow(work=both).graph.nodes["work"].limits == tuple(both)
    assert Workflow("w", start=fan, edges=[edge(fan, work)], limits={work: one}).graph.nodes["work"].limits
    assert flow().graph.nodes["work"].limits == ()


@pytest.mark.parametrize(
    ("limits", "message"),
    [
        ({"nope": ConcurrencyLimit(max=1)}, "workflow 'limited': limits names unknown node 'nope'"),
        ({"work": 3}, "limits of node 'work' must be ConcurrencyLimit or RateLimit, not int"),
        (
            {"work": [ConcurrencyLimit(max=1), ConcurrencyLimit(max=2)]},
            "node 'work' has more than one ConcurrencyLimit",
        ),
        (
            {"fan": ConcurrencyLimit(max=1, name="api"), "work": ConcurrencyLimit(max=2, name="api")},
            "ConcurrencyLimit 'api' is declared twice with different settings "
            "(concurrency 1 and concurrency 2)",
        ),
    ],
)
def test_bad_declarations_name_the_node(limits: dict[str, object], message: str) -> None:
    with pytest.raises(GraphError) as caught:
        flow(**limits)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    "make",
    [
        lambda: ConcurrencyLimit(max=0),
        lambda: RateLimit(per_second=0),
        lambda: RateLimit(per_second=math.inf),
        lambda: RateLimit(per_second=1, burst=0),
        lambda: ConcurrencyLimit(max=1, name="has space"),
    ],
)
def test_bad_values_are_refused(make: object) -> None:
    with pytest.raises(ValidationError):
        make()  # type: ignore[operator]


def test_key_values_in_key_names() -> None:
    keyed = ConcurrencyLimit(max=1, key=lambda job: job.key)
    assert limit_keys(ConcurrencyLimit(max=1), "work", Job(n=1)) == "work"
    assert limit_keys(keyed, "work", Job(n=1, key="acme-1")) == "work=acme-1"
    odd = limit_keys(keyed, "work", Job(n=1, key="a}b{c:d e"))
    assert odd.startswith("work#") and "}" not in odd and " " not in odd
    assert limit_keys(ConcurrencyLimit(max=1, name="api"), "work", Job(n=1)) == "api"
    broken = ConcurrencyLimit(max=1, key=lambda job: job.missing)
    with pytest.raises(FloxideError, match="the limit key of node 'work' failed on its input"):
        limit_keys(broken, "work", Job(n=1))


async def test_local_runs_honour_the_limits() -> None:
    peaks.clear()
    per_key = flow(work=ConcurrencyLimit(max=2, key=lambda job: job.key))
    await per_key.execute(12)
    assert peaks == {"k0": 2, "k1": 2, "all": 4}

    peaks.clear()
    shared = flow(work=ConcurrencyLimit(max=3))
    await asyncio.gather(shared.execute(8), shared.execute(8))  # two runs, one set of slots
    assert peaks["all"] == 3

    starts.clear()
    rated = flow(work=RateLimit(per_second=50, burst=2))
    began = time.monotonic()
    await rated.execute(12)
    assert time.monotonic() - began >= (12 - 2) / 50 - 0.01
    gaps = [b - a for a, b in zip(sorted(starts), sorted(starts)[1:], strict=False)]
    assert sum(1 for gap in gaps if gap < 0.01) <= 2  # only the burst starts together
