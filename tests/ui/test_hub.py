"""The hub that shares one reader per watched subject among a live page's watchers (in memory).

Cases:
* two watchers of one key share one reader: both see the same results, reads happen once per
  refresh however many watch; another key has its own reader;
* the reader stops when the last watcher leaves, and starts afresh for the next one;
* a failed read is a result (the exception), and the reader goes on;
* closing the hub stops every reader.
"""

from __future__ import annotations

import asyncio

from floxide.ui.hub import Hub


class Counter:
    def __init__(self, fail_at: int = 0) -> None:
        self.reads = 0
        self.fail_at = fail_at

    async def __call__(self) -> int:
        self.reads += 1
        if self.reads == self.fail_at:
            raise ConnectionError("Redis went away")
        return self.reads


async def test_watchers_of_one_key_share_one_reader() -> None:
    hub: Hub[int] = Hub(refresh=0.05)
    first, other = Counter(), Counter()
    async with hub.watch("a", first) as one, hub.watch("a", Counter()) as two, hub.watch("b", other):
        assert one is two and len(hub) == 2
        seen_one, result_one = await one.next(0)
        seen_two, result_two = await two.next(0)
        assert result_one == result_two == 1 and seen_one == seen_two == 1
        await asyncio.sleep(0.5)
        assert 5 <= first.reads <= 12  # one read per refresh, not one per watcher
        later, value = await one.next(seen_one)
        assert later > seen_one and value == first.reads
    assert len(hub) == 0
    reads = first.reads
    await asyncio.sleep(0.2)
    assert first.reads == reads  # nobody watches: nobody reads

    again = Counter()
    async with hub.watch("a", again) as topic:
        assert (await topic.next(0))[1] == 1 and again.reads >= 1


async def test_a_failed_read_is_a_result_and_reading_goes_on() -> None:
    hub: Hub[int] = Hub(refresh=0.01)
    async with hub.watch("a", Counter(fail_at=2)) as topic:
        seen, first = await topic.next(0)
        seen, failed = await topic.next(seen)
        assert first == 1 and isinstance(failed, ConnectionError)
        _, after = await topic.next(seen)
        assert after == 3


async def test_closing_the_hub_stops_its_readers() -> None:
    hub: Hub[int] = Hub(refresh=0.01)
    counter = Counter()
    async with hub.watch("a", counter) as topic:
        await topic.next(0)
        await hub.close()
        reads = counter.reads
        await asyncio.sleep(0.1)
        assert counter.reads == reads and len(hub) == 0
