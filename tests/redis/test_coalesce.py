"""``Coalesced``: the requests of one turn of the event loop go as one batch.

Cases: requests made in the same turn are answered by one call, each with its own answer, in
order; a request made while a batch is under way goes in a batch of its own at once (it does
not wait for the first); a failing batch fails each of its requests; a cancelled request
leaves the others' answers alone; a request left waiting in a loop that closed does not
block the next loop's.
"""

from __future__ import annotations

import asyncio

import pytest

from floxide.redis.coalesce import Coalesced


class Doubler:
    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.gate = asyncio.Event()
        self.gate.set()

    async def __call__(self, requests: list[int]) -> list[int]:
        self.batches.append(requests)
        await self.gate.wait()
        if 13 in requests:
            raise ValueError("unlucky")
        return [2 * r for r in requests]


async def test_the_requests_of_one_turn_go_in_one_batch() -> None:
    doubler = Doubler()
    double = Coalesced(doubler)
    assert await asyncio.gather(*(double(i) for i in range(5))) == [0, 2, 4, 6, 8]
    assert doubler.batches == [[0, 1, 2, 3, 4]]


async def test_tasks_woken_together_share_a_batch() -> None:
    doubler = Doubler()
    double = Coalesced(doubler)
    start = asyncio.Event()

    async def ask(i: int) -> int:
        await start.wait()
        return await double(i)

    tasks = [asyncio.create_task(ask(i)) for i in range(4)]
    await asyncio.sleep(0)
    start.set()
    assert await asyncio.gather(*tasks) == [0, 2, 4, 6]
    assert doubler.batches == [[0, 1, 2, 3]]


async def test_a_request_made_during_a_batch_does_not_wait_for_it() -> None:
    doubler = Doubler()
    double = Coalesced(doubler)
    held = doubler.gate
    held.clear()
    first = double(1)
    await asyncio.sleep(0.01)  # the first batch is under way, held at its gate
    doubler.gate = asyncio.Event()
    doubler.gate.set()
    assert await asyncio.wait_for(double(2), 1) == 4  # answered while the first is still held
    assert not first.done()
    held.set()
    assert await first == 2
    assert doubler.batches == [[1], [2]]


async def test_a_failed_batch_fails_each_request() -> None:
    double = Coalesced(Doubler())
    results = await asyncio.gather(double(1), double(13), return_exceptions=True)
    assert [type(r) for r in results] == [ValueError, ValueError]


async def test_a_cancelled_request_leaves_the_others_answered() -> None:
    doubler = Doubler()
    double = Coalesced(doubler)
    doubler.gate.clear()
    kept, dropped = double(1), double(2)
    await asyncio.sleep(0.01)
    dropped.cancel()
    doubler.gate.set()
    assert await kept == 2
    with pytest.raises(asyncio.CancelledError):
        await dropped


def test_a_request_stranded_in_a_closed_loop_does_not_block_the_next() -> None:
    doubler = Doubler()
    double = Coalesced(doubler)
    stranded = asyncio.new_event_loop()

    def ask_and_stop() -> None:
        double(1)  # its batch is to go after this turn, which is the loop's last
        stranded.stop()

    stranded.call_soon(ask_and_stop)
    stranded.run_forever()
    stranded.close()

    async def ask() -> int:
        return await asyncio.wait_for(double(3), 5)

    assert asyncio.run(ask()) == 6
    assert doubler.batches[-1] == [3]
