"""kit/batching.Batcher: requests waiting together go in one batch, each gets its own result, and
one bad item fails only its own request."""

from __future__ import annotations

import asyncio

import pytest

from smsgate.kit.batching import Batcher


class Runs:
    """A batch function that records every batch it was given and refuses the item 13."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []

    async def __call__(self, batch: list[int]) -> list[int]:
        self.batches.append(list(batch))
        await asyncio.sleep(0.01)  # a transaction's round trips: later requests queue meanwhile
        if 13 in batch:
            raise ValueError("thirteen")
        return [item * 10 for item in batch]


async def test_waiting_requests_share_a_batch_and_get_their_own_results() -> None:
    runs = Runs()
    batcher: Batcher[int, int] = Batcher(runs, "test")
    first = asyncio.ensure_future(batcher.submit(1))
    await asyncio.sleep(0)  # the first batch starts with the first request alone
    rest = [asyncio.ensure_future(batcher.submit(i)) for i in range(2, 8)]
    assert await asyncio.gather(first, *rest) == [10, 20, 30, 40, 50, 60, 70]
    assert runs.batches == [[1], [2, 3, 4, 5, 6, 7]]
    assert batcher.sizes == {1: 1, 6: 1}
    await batcher.close()


async def test_one_bad_item_fails_only_its_own_request() -> None:
    runs = Runs()
    batcher: Batcher[int, int] = Batcher(runs, "test")
    results = await asyncio.gather(
        *(batcher.submit(i) for i in (11, 12, 13, 14)), return_exceptions=True
    )
    assert results[:2] == [110, 120] and results[3] == 140
    assert isinstance(results[2], ValueError)
    assert runs.batches == [[11, 12, 13, 14], [11], [12], [13], [14]]
    assert await batcher.submit(15) == 150  # and the batcher goes on
    await batcher.close()


async def test_a_batch_larger_than_the_limit_is_split() -> None:
    runs = Runs()
    batcher: Batcher[int, int] = Batcher(runs, "test", max_batch=3)
    results = await asyncio.gather(*(batcher.submit(i) for i in range(7)))
    assert results == [i * 10 for i in range(7)]
    assert [len(b) for b in runs.batches] == [3, 3, 1]
    await batcher.close()


async def test_closing_answers_the_waiting_requests() -> None:
    started = asyncio.Event()

    async def slow(batch: list[int]) -> list[int]:
        started.set()
        await asyncio.sleep(30)
        return batch

    batcher: Batcher[int, int] = Batcher(slow, "test")
    waiting = [asyncio.ensure_future(batcher.submit(i)) for i in range(3)]
    await started.wait()
    await batcher.close()
    for future in waiting:
        with pytest.raises(RuntimeError, match="shutting down"):
            await future
