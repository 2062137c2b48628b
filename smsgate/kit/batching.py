"""Group commit for requests whose database work is small next to a transaction's cost.

Each request submits its item and waits. One task takes every item waiting when it becomes
free, runs them as one batch (one transaction, one statement per table), and answers each
request with its own result only after the batch returned, i.e. committed. Under light load a
batch is one item, so latency does not grow; under load the batches grow by themselves.

A batch that raises is run again item by item (a batch of one too), so one bad item fails only
its own request, and a transient failure costs a retry. A result that is an exception is raised
to its request alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Generic, TypeVar

log = logging.getLogger("smsgate.batching")


T = TypeVar("T")
R = TypeVar("R")


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """The items a slice of `size` at a time (statements with a bounded IN list)."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


_Waiting = tuple[T, "asyncio.Future[R]"]


class Batcher(Generic[T, R]):
    def __init__(
        self,
        run: Callable[[list[T]], Awaitable[Sequence[R]]],
        name: str,
        max_batch: int = 200,
        then: Callable[[list[R]], Awaitable[None]] | None = None,
        observe: Callable[[int, float], None] | None = None,
    ) -> None:
        """`run` gets a batch and returns one result per item, in order. `then`, if given, gets
        a batch's results after `run` returned and before the requests are answered; they are
        answered whatever becomes of it (its errors are logged; it may be cut short by
        shutdown), as `run` has committed them. `observe`, if given, gets each batch's size and
        the seconds it took, answers included."""
        self._run_batch = run
        self._then = then
        self._observe = observe
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
            started = time.perf_counter()
            try:
                await self._settle(batch)
            except asyncio.CancelledError:
                for _, future in batch:
                    _fail(future, RuntimeError("the server is shutting down"))
                raise
            if self._observe is not None:
                self._observe(len(batch), time.perf_counter() - started)

    async def _settle(self, batch: list[_Waiting[T, R]], last_try: bool = False) -> None:
        try:
            results = list(await self._run_batch([item for item, _ in batch]))
            if len(results) != len(batch):
                raise RuntimeError(f"{self._name}: {len(results)} results for {len(batch)} items")
        except Exception as exc:
            if last_try:
                _fail(batch[0][1], exc)
                return
            log.warning(
                "%s: a batch of %d failed; running each item once more alone",
                self._name,
                len(batch),
                exc_info=True,
            )
            # a batch of one too: its transaction was rolled back, and a transient failure (a
            # dropped connection) then costs a retry, not the request
            for one in batch:
                await self._settle([one], last_try=True)
            return
        try:
            if self._then is not None:
                await self._then(results)
        except Exception:
            log.exception("%s: after a batch of %d", self._name, len(batch))
        finally:
            for (_, future), result in zip(batch, results, strict=True):
                if future.done():  # its request may have gone (a client that hung up)
                    continue
                if isinstance(result, BaseException):
                    future.set_exception(result)
                else:
                    future.set_result(result)


def _fail(future: asyncio.Future[R], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)
