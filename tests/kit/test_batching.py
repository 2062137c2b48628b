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


async def test_then_runs_before_the_answers_which_come_whatever_becomes_of_it() -> None:
    """`then` sees a batch's results before its requests are answered; a `then` that fails or
    is cut short by shutdown still leaves every request answered with its result, and a result
    that is an exception is raised to its own request only."""
    seen: list[list[object]] = []
    release = asyncio.Event()

    async def run(batch: list[int]) -> list[object]:
        return [ValueError(f"no {i}") if i < 0 else i for i in batch]

    async def then(results: list[object]) -> None:
        seen.append(results)
        if 99 in results:
            raise RuntimeError("then failed")
        if 42 in results:
            await release.wait()  # cut short below

    batcher: Batcher[int, object] = Batcher(run, "test", then=then)
    results = await asyncio.gather(
        *(batcher.submit(i) for i in (1, -2, 99)), return_exceptions=True
    )
    assert results[0] == 1 and results[2] == 99 and isinstance(results[1], ValueError)
    assert len(seen) == 1
    waiting = asyncio.ensure_future(batcher.submit(42))
    while len(seen) < 2:
        await asyncio.sleep(0)
    assert not waiting.done()  # answered only after `then`
    await batcher.close()
    assert await waiting == 42  # committed, so answered though `then` was cut short


async def test_a_transient_failure_costs_a_retry_not_the_request() -> None:
    """A batch of one whose transaction failed once (a dropped connection) is run once more."""
    calls: list[list[int]] = []

    async def flaky(batch: list[int]) -> list[int]:
        calls.append(batch)
        if len(calls) == 1:
            raise ConnectionError("connection was closed in the middle of operation")
        return batch

    batcher: Batcher[int, int] = Batcher(flaky, "test")
    assert await batcher.submit(5) == 5
    assert calls == [[5], [5]]
    await batcher.close()
