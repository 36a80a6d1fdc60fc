"""Group commit: steps finishing together are committed in one ``commit.lua`` call, each as if alone.

Cases:
* 16 steps of a fan-out committed at once: one script call (``INFO commandstats``), the join
  fires once with every value in order, the run completes with the right context sum, and
  the hand-off claims the next entries for the committing worker in the same call;
* a worker's steps stay in step: those a group's reply hands their next items to commit
  together again, not a group and a straggler in turn;
* a handed-off item of a run with a context model gets its run's state and context (every
  kind of field, as the group left it) with the commit's reply: a chain reads no state of
  its own after its first step;
* a commit's successors are sent as the JSON of the work items they become, whatever their
  names, scopes, trace and payload;
* a group mixing a re-delivered step (committed already), a step of a cancelled run and a
  step of a live run: ``duplicate``, ``cancelled``, ``ok``; only the last one writes anything,
  every entry is acknowledged;
* a step with 5,000 children (more values than Lua can unpack at once) commits, and its
  successors are queued with their states;
* a step of a paused run in a group: its successors are parked, the others' queued;
* a step cancelled before its group is sent takes no next item; one cancelled while the call
  runs has the item it was handed released at once (reclaimable, and not counted as a crash);
* item states stay JSON whatever the names (cjson);
* the group's own connection killed, or the script cache flushed: the commits still land, once.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel
from redis.asyncio import Redis

from floxide import Merge, NextAll, Workflow, WorkflowCtx, edge, join, node, otherwise, route, when
from floxide.distributed import (
    Claim,
    Commit,
    DistributedOrchestrator,
    ItemStatus,
    RunStatus,
    Successor,
    process_claim,
    start_run,
)
from floxide.distributed.protocols import Handoff
from floxide.redis import GROUP, RedisBackend
from floxide.redis.commits import GroupCommit, _successors
from floxide.workitem import WorkItem
from tests.distributed.inprocess import running
from tests.redis.conftest import NAMESPACE

pytestmark = pytest.mark.timeout(60)


class Sum(BaseModel):
    total: Annotated[int, Merge.sum()] = 0


@node
async def fan(n: int) -> NextAll[int]:
    return NextAll(list(range(n)))


@node
async def add(ctx: WorkflowCtx[Sum], i: int) -> int:
    ctx.store.total += i
    return i * 10


@node
async def collect(values: list[int]) -> list[int]:
    return values


fanned = Workflow("fanned", start=fan, context=Sum, edges=[edge(fan, add), join(add, collect)])


def backend_for(redis: Redis) -> RedisBackend:
    return RedisBackend(redis, fanned.name, namespace=NAMESPACE, context_type=Sum)


async def script_calls(redis: Redis) -> int:
    stats = await redis.info("commandstats")
    return int(stats.get("cmdstat_evalsha", {}).get("calls", 0))


async def test_steps_finishing_together_commit_in_one_call(redis: Redis) -> None:
    backend = backend_for(redis)
    run_id = await start_run(fanned, backend, 16)
    [first] = await backend.queue.claim("w", count=1, block=0)
    assert await process_claim(fanned, backend, first) == "committed"
    claims = await backend.queue.claim("w", count=16, block=0)
    assert len(claims) == 16
    states = await backend.step_inputs(claims)
    before = await script_calls(redis)
    handoffs = [Handoff("w") for _ in claims]
    results = await asyncio.gather(*(
        process_claim(fanned, backend, claim, state=state, handoff=handoff)
        for claim, state, handoff in zip(claims, states, handoffs, strict=True)
    ))  # fmt: skip
    assert results == ["committed"] * 16
    assert await script_calls(redis) - before == 1
    claimed = [h.claim for h in handoffs if h.claim is not None]
    assert [c.item.node for c in claimed] == ["collect"]  # the join, handed to this worker at once
    assert await process_claim(fanned, backend, claimed[0]) == "committed"
    info = await backend.runs.get(run_id)
    assert info is not None and info.status is RunStatus.COMPLETED
    assert info.output == [i * 10 for i in range(16)]
    assert (info.items_done, info.items_total) == (18, 18)
    assert await backend.contexts.get(run_id) == {"total": sum(range(16))}
    metrics = await backend.metrics.get(run_id)
    assert (metrics.nodes["add"].completed, metrics.nodes["collect"].created) == (16, 1)
    assert await backend.queue.backlog() == (0, 0)


async def test_steps_handed_their_next_items_commit_together_again(
    redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    sizes: list[int] = []
    send = GroupCommit._send

    async def recorded(self: GroupCommit, pending: Any) -> list[str]:
        sizes.append(len(pending))
        return await send(self, pending)

    monkeypatch.setattr(GroupCommit, "_send", recorded)
    backend = backend_for(redis)
    orchestrator = DistributedOrchestrator(fanned, backend)
    async with running(fanned, backend, count=1, concurrency=8):
        info = await orchestrator.wait_for_completion(await orchestrator.start_run(160), timeout=30)
    assert info.status is RunStatus.COMPLETED and info.output == [i * 10 for i in range(160)]
    assert sum(sizes) == 162
    # 160 branches at 8 a time: 20 rounds of 8, plus the split's and the join's calls and a
    # few while the first claims ramp up; a straggler following each round would make ~40
    assert len(sizes) <= 26, sizes


class Trail(BaseModel):
    steps: Annotated[int, Merge.sum()] = 0
    seen: Annotated[list[int], Merge.append()] = []
    tags: Annotated[set[str], Merge.union()] = set()
    marks: Annotated[dict[str, int], Merge.update()] = {}
    last: int = -1


@node
async def walk(ctx: WorkflowCtx[Trail], i: int) -> int:
    # what each step sees is what the steps before it left: the context of the hand-off
    store = ctx.store
    expected = (i, list(range(i)), {f"t{j}" for j in range(i)}, {f"m{j}": j for j in range(i)}, i - 1)
    assert (store.steps, store.seen, store.tags, store.marks, store.last) == expected
    store.steps += 1
    store.seen.append(i)
    store.tags.add(f"t{i}")
    store.marks[f"m{i}"] = i
    store.last = i
    return i + 1


walking = Workflow(
    "walking", start=walk, context=Trail, edges=[route(walk, when(lambda i: i < 12, walk), otherwise())]
)


async def test_a_handed_off_item_gets_its_run_s_context_with_the_commit(
    redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = RedisBackend(redis, walking.name, namespace=NAMESPACE, context_type=Trail)
    reads: list[int] = []
    step_input, step_inputs = RedisBackend.step_input, RedisBackend.step_inputs

    async def one(self: RedisBackend, claim: Claim) -> Any:
        reads.append(1)
        return await step_input(self, claim)

    async def some(self: RedisBackend, claims: Any) -> Any:
        reads.append(len(claims))
        return await step_inputs(self, claims)

    monkeypatch.setattr(RedisBackend, "step_input", one)
    monkeypatch.setattr(RedisBackend, "step_inputs", some)
    orchestrator = DistributedOrchestrator(walking, backend)
    async with running(walking, backend, count=1, concurrency=1, retry=None):
        info = await orchestrator.wait_for_completion(await orchestrator.start_run(0), timeout=30)
    assert (info.status, info.output, info.items_done) == (RunStatus.COMPLETED, 12, 12)
    assert reads == [1]  # the first step's; the other 11 came with the commits
    context = await backend.contexts.get(info.run_id)
    assert context is not None and context["seen"] == list(range(12)) and context["last"] == 11


@given(
    run_id=st.text(min_size=1, max_size=8),
    scope=st.lists(st.tuples(st.text(max_size=6), st.integers(0, 10**6)), max_size=3).map(tuple),
    opened=st.none() | st.text(max_size=6),
    trace=st.none() | st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=2),
    children=st.lists(
        st.tuples(
            st.text(max_size=6),
            st.text(min_size=1, max_size=6),
            st.recursive(
                st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
                lambda inner: (
                    st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
                ),
                max_leaves=6,
            ),
        ),
        max_size=4,
    ),
)
def test_successors_are_sent_as_the_json_of_their_work_items(
    run_id: str,
    scope: tuple[tuple[str, int], ...],
    opened: str | None,
    trace: dict[str, str] | None,
    children: list[tuple[str, str, Any]],
) -> None:
    commit = Commit(
        item=WorkItem(run_id=run_id, item_id="parent", node="split", scope=scope),
        opened=opened,
        trace=trace,
        children=[
            Successor(item_id, node, payload, index if opened is not None else None)
            for index, (item_id, node, payload) in enumerate(children)
        ],
    )
    sent = _successors(commit)
    expected = [(item.node, item.item_id, item.model_dump_json().encode()) for item in commit.child_items()]
    assert sent == expected


async def test_a_group_keeps_each_step_s_own_outcome(redis: Redis) -> None:
    backend = backend_for(redis)
    live = await start_run(fanned, backend, 2)
    doomed = await start_run(fanned, backend, 2)
    for _ in range(2):
        [claim] = await backend.queue.claim("w", count=1, block=0)
        assert await process_claim(fanned, backend, claim) == "committed"
    claims = await backend.queue.claim("w", count=4, block=0)
    mine = [c for c in claims if c.item.run_id == live]
    theirs = [c for c in claims if c.item.run_id == doomed]
    assert len(mine) == len(theirs) == 2
    assert await process_claim(fanned, backend, mine[0]) == "committed"
    await backend.set_status(doomed, RunStatus.CANCELLED, interrupt=True)
    again = Claim(item=mine[0].item, delivery=mine[0].delivery)  # re-delivered, committed already
    commits = [
        (again, Commit(item=again.item, arrivals=[("collect", 0)])),
        (theirs[0], Commit(item=theirs[0].item, arrivals=[("collect", 0)], changes=[])),
        (mine[1], Commit(item=mine[1].item, arrivals=[("collect", 10)])),
    ]
    results = await asyncio.gather(*(backend.commit(c, commit) for c, commit in commits))
    assert results == ["duplicate", "cancelled", "ok"]
    info = await backend.runs.get(live)
    assert info is not None and info.items_done == 3
    cancelled = await backend.runs.get(doomed)
    assert cancelled is not None and cancelled.items_done == 1
    assert (await backend.metrics.get(doomed)).nodes["add"].completed == 0
    pending = await redis.xpending(backend.keys.stream, GROUP)
    assert pending["pending"] == 1  # the doomed run's other step, still held
    [claim] = await backend.queue.claim("w", count=1, block=0)
    assert claim.item.node == "collect"  # the live run's join fired once


async def test_a_step_with_5000_children_commits(redis: Redis) -> None:
    backend = backend_for(redis)
    run_id = await start_run(fanned, backend, 5000)
    [claim] = await backend.queue.claim("w", count=1, block=0)
    assert await process_claim(fanned, backend, claim) == "committed"
    lag, pending = await backend.queue.backlog()
    assert (lag, pending) == (5000, 0)
    states = await backend.items.list(run_id)
    assert sum(s.status is ItemStatus.QUEUED for s in states) == 5000


async def test_a_paused_run_parks_the_successors_of_its_steps_in_a_group(redis: Redis) -> None:
    backend = backend_for(redis)
    paused = await start_run(fanned, backend, 1)
    running = await start_run(fanned, backend, 1)
    claims = await backend.queue.claim("w", count=2, block=0)
    await backend.step_inputs(claims)
    await backend.set_status(paused, RunStatus.PAUSED)
    children = {c.item.run_id: Successor(item_id="x", node="add", payload=1, index=0) for c in claims}
    commits = [Commit(item=c.item, children=[children[c.item.run_id]], opened="f:root") for c in claims]
    assert await asyncio.gather(*(backend.commit(c, m) for c, m in zip(claims, commits, strict=True))) == [
        "ok",
        "ok",
    ]
    parked = await backend.items.get(paused, "x")
    queued = await backend.items.get(running, "x")
    assert parked is not None and parked.status is ItemStatus.PARKED
    assert queued is not None and queued.status is ItemStatus.QUEUED
    [claim] = await backend.queue.claim("w", count=5, block=0)
    assert claim.item.run_id == running


async def test_item_states_are_json_whatever_the_names(redis: Redis) -> None:
    """The scripts build item states with cjson: quotes and backslashes in names stay JSON."""
    backend = backend_for(redis)
    odd = 'say "hi" \\ bye'
    item = WorkItem(run_id="odd", item_id='first "one"', node=odd, payload=1)
    from floxide.distributed.models import RunInfo

    await backend.start_run(RunInfo(run_id="odd", workflow=fanned.name), item, {"total": 0})
    state = await backend.items.get("odd", item.item_id)
    assert state is not None and (state.node, state.status) == (odd, ItemStatus.QUEUED)
    [claim] = await backend.queue.claim("w", count=1, block=0)
    await backend.step_input(claim)
    state = await backend.items.get("odd", item.item_id)
    assert state is not None and state.status is ItemStatus.RUNNING
    child = Successor(item_id='next "two"', node=odd, payload=2)
    assert await backend.commit(claim, Commit(item=claim.item, children=[child])) == "ok"
    states = {s.item_id: (s.node, s.status) for s in await backend.items.list("odd")}
    assert states == {item.item_id: (odd, ItemStatus.COMPLETED), child.item_id: (odd, ItemStatus.QUEUED)}
    [claim] = await backend.queue.claim("w", count=1, block=0)
    await backend.set_status("odd", RunStatus.PAUSED)
    assert await backend.set_aside(claim, keep=True) == "parked"
    state = await backend.items.get("odd", child.item_id)
    assert state is not None and state.status is ItemStatus.PARKED
    await backend.set_status("odd", RunStatus.RUNNING)
    state = await backend.items.get("odd", child.item_id)
    assert state is not None and state.status is ItemStatus.QUEUED
    # handed off by the commit that queued it: its id and node read back from its escaped JSON
    [claim] = await backend.queue.claim("w", count=1, block=0)
    assert claim.item.item_id == child.item_id
    await backend.step_input(claim)
    third = Successor(item_id='third "3" \\', node=odd, payload=3)
    handoff = Handoff("w")
    assert await backend.commit(claim, Commit(item=claim.item, children=[third]), handoff=handoff) == "ok"
    assert handoff.claim is not None and handoff.claim.item.item_id == third.item_id
    assert handoff.state is not None and handoff.state.status is RunStatus.RUNNING
    assert handoff.state.context == {"total": 0}
    state = await backend.items.get("odd", third.item_id)
    assert state is not None and (state.node, state.status) == (odd, ItemStatus.RUNNING)


async def _two_steps_and_two_entries(redis: Redis) -> tuple[RedisBackend, list[Claim]]:
    """Two claimed steps of a fan-out, and two more entries waiting in the stream."""
    backend = backend_for(redis)
    await start_run(fanned, backend, 4)
    [first] = await backend.queue.claim("w", count=1, block=0)
    assert await process_claim(fanned, backend, first) == "committed"
    claims = await backend.queue.claim("w", count=2, block=0)
    assert len(claims) == 2
    return backend, claims


async def test_a_step_cancelled_before_its_group_is_sent_takes_no_next_item(redis: Redis) -> None:
    backend, claims = await _two_steps_and_two_entries(redis)
    handoffs = [Handoff("w"), Handoff("w")]
    steps = [
        asyncio.create_task(backend.commit(c, Commit(item=c.item, arrivals=[("collect", 1)]), handoff=h))
        for c, h in zip(claims, handoffs, strict=True)
    ]
    await asyncio.sleep(0)  # both queued; the group is not sent yet
    steps[1].cancel()
    assert await steps[0] == "ok"
    assert handoffs[0].claim is not None and handoffs[1].claim is None
    # both steps committed (a queued commit still goes), one next entry claimed, one undelivered
    assert await backend.queue.backlog() == (1, 1)


async def test_a_step_cancelled_while_its_group_is_sent_hands_its_next_item_back(
    redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend, claims = await _two_steps_and_two_entries(redis)
    group = backend._group
    sending, go = asyncio.Event(), asyncio.Event()
    call = group._call

    async def held(keys: Any, document: bytes) -> Any:
        sending.set()
        await go.wait()
        return await call(keys, document)

    monkeypatch.setattr(group, "_call", held)
    handoffs = [Handoff("w"), Handoff("w")]
    steps = [
        asyncio.create_task(backend.commit(c, Commit(item=c.item, arrivals=[("collect", 1)]), handoff=h))
        for c, h in zip(claims, handoffs, strict=True)
    ]
    await sending.wait()
    steps[1].cancel()  # while the call is under way: it still claims two entries
    go.set()
    assert await steps[0] == "ok"
    assert handoffs[0].claim is not None and handoffs[1].claim is not None
    orphan = handoffs[1].claim
    [taken] = await backend.queue.reclaim("other", min_idle=60, count=5)
    assert taken.delivery == orphan.delivery and not taken.reclaimed  # released, not a crash


async def test_commits_survive_a_killed_connection_and_a_flushed_script_cache(redis: Redis) -> None:
    """The group's own connection: killed under it, or the scripts gone (a restarted server),
    the commit goes through the client instead, and the next one gets a new connection."""
    backend = backend_for(redis)
    run_id = await start_run(fanned, backend, 3)
    [first] = await backend.queue.claim("w", count=1, block=0)
    assert await process_claim(fanned, backend, first) == "committed"
    claims = await backend.queue.claim("w", count=3, block=0)
    assert backend._group._connection is not None  # the first commit opened it
    await redis.execute_command("CLIENT", "KILL", "SKIPME", "yes", "TYPE", "normal", "USER", "default")
    assert await backend.commit(claims[0], Commit(item=claims[0].item, arrivals=[("collect", 1)])) == "ok"
    await redis.script_flush()
    assert await backend.commit(claims[1], Commit(item=claims[1].item, arrivals=[("collect", 2)])) == "ok"
    assert await backend.commit(claims[2], Commit(item=claims[2].item, arrivals=[("collect", 3)])) == "ok"
    info = await backend.runs.get(run_id)
    assert info is not None and info.items_done == 4  # the split and three branches, once each
    [join] = await backend.queue.claim("w", count=1, block=0)
    assert join.item.node == "collect" and join.item.payload == [1, 2, 3]
