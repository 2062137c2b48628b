"""Group commit for requests whose database work is small next to a transaction's cost.

Each request submits its item and waits. One task takes every item waiting when it becomes
free, runs them as one batch (one transaction, one statement per table), and answers each
request with its own result only after the batch returned, i.e. committed. Under light load a
batch is one item, so latency does not grow; under load the batches grow by themselves.

A batch that raises is run again item by item, so one bad item fails only its own request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

log = logging.getLogger("smsgate.batching")

T = TypeVar("T")
R = TypeVar("R")

_Waiting = tuple[T, "asyncio.Future[R]"]


class Batcher(Generic[T, R]):
    def __init__(
        self,
        run: Callable[[list[T]], Awaitable[Sequence[R]]],
        name: str,
        max_batch: int = 200,
    ) -> None:
        """`run` gets a batch and returns one result per item, in order."""
        self._run_batch = run
        self._name = name
        self._max_batch = max_batch
        self._queue: asyncio.Queue[_Waiting[T, R]] | None = None
        self._task: asyncio.Task[None] | None = None
        self.sizes: Counter[int] = Counter()  # batches taken, by size (benchmarks, tests)

    async def submit(self, item: T) -> R:
        """The item's result once its batch is done (its exception if it failed)."""
        if self._task is None or self._task.done() or self._queue is None:
            self._queue = asyncio.Queue()
            self._task = asyncio.get_running_loop().create_task(
                self._loop(self._queue), name=self._name
            )
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((item, future))
        return await future

    async def close(self) -> None:
        """Stop taking batches; requests still waiting are told the server is stopping."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._task = None
        if self._queue is not None:
            while not self._queue.empty():
                _, future = self._queue.get_nowait()
                _fail(future, RuntimeError("the server is shutting down"))

    async def _loop(self, queue: asyncio.Queue[_Waiting[T, R]]) -> None:
        while True:
            batch = [await queue.get()]
            while len(batch) < self._max_batch and not queue.empty():
                batch.append(queue.get_nowait())
            self.sizes[len(batch)] += 1
            try:
                await self._settle(batch)
            except asyncio.CancelledError:
                for _, future in batch:
                    _fail(future, RuntimeError("the server is shutting down"))
                raise

    async def _settle(self, batch: list[_Waiting[T, R]]) -> None:
        try:
            results = list(await self._run_batch([item for item, _ in batch]))
            if len(results) != len(batch):
                raise RuntimeError(f"{self._name}: {len(results)} results for {len(batch)} items")
        except Exception as exc:
            if len(batch) == 1:
                _fail(batch[0][1], exc)
                return
            log.warning(
                "%s: a batch of %d failed; running it item by item",
                self._name,
                len(batch),
                exc_info=True,
            )
            for one in batch:
                await self._settle([one])
            return
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():  # its request may have gone (a client that hung up)
                future.set_result(result)


def _fail(future: asyncio.Future[R], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)
