"""Group commit for sends: many requests' messages written in one transaction.

A send's database work is small (three inserts) but a transaction per request costs far more than
the work itself (a commit, several round trips, and on SQLite the single connection held across
event-loop turns). The writer takes every send waiting when it becomes free, hands them to its
process (sending/process.py), which stores them with one statement per table and commits once,
and only then answers each request: a 202 still means "committed". Under light load a batch is
one message, so latency does not grow. The batching itself is kit/batching.Batcher, as for
phones' state reports. This module holds no SQL: what storing a send means is sending/batch.py,
for both databases.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.exc import OperationalError

from smsgate.errors import ApiError
from smsgate.kit import observe
from smsgate.kit.batching import Batcher
from smsgate.messages.schemas import Row
from smsgate.messages.sending import batch as batches
from smsgate.messages.sending import threads
from smsgate.messages.sending.batch import Done
from smsgate.messages.sending.postgres import APPLICATION_NAME
from smsgate.messages.sending.prepare import PreparedMessage
from smsgate.messages.sending.process import Config, WriterDied, WriterProcess, serve
from smsgate.storage.db import Database, asyncpg_dsn

log = logging.getLogger("smsgate.messages.writer")

MAX_BATCH = 500
WRITER_APPLICATION_NAME = APPLICATION_NAME


@dataclass(frozen=True)
class Stored:
    """What the database holds for a send: the new message, or the original of a replay."""

    created: bool
    row: Row
    recipients: Sequence[Row]
    joined: bool = False  # its recipients are in their threads already (the writer process)


def process_config(database: Database) -> Config:
    """What the writer process needs to reach the database."""
    settings = database.settings
    if database.dialect == "sqlite":
        path = database.engine.url.database
        assert path, "the writer needs an SQLite file, not an in-memory database"
        return ("sqlite", (path,), settings)
    return ("postgresql", (asyncpg_dsn(settings), settings.database_schema), settings)


class SendWriter:
    def __init__(self, database: Database) -> None:
        self._database = database
        self._process = WriterProcess(serve, process_config(database))
        self._batcher: Batcher[PreparedMessage, Stored | ApiError] = Batcher(
            self._write,
            "smsgate-send-writer",
            MAX_BATCH,
            then=self._join_threads,
            observe=observe.batch("sends"),
        )

    async def store(self, prepared: PreparedMessage) -> Stored:
        """The send's stored message (or its original, for a replay), once committed; a refusal
        (quota) is raised."""
        stored = await self._batcher.submit(prepared)
        assert isinstance(stored, Stored)  # the batcher raises the refusals
        return stored

    async def start(self) -> None:
        """Start the writer's process now rather than on the first send."""
        await self._process.start()

    @property
    def pid(self) -> int | None:
        """The writer process's id, while it runs."""
        return self._process.pid

    async def close(self) -> None:
        await self._batcher.close()
        await self._process.close()

    async def _join_threads(self, results: Sequence[Stored | ApiError]) -> None:
        """New messages pinned to a device join their conversations before they are answered
        (the line is known). The writer process joins those it wrote, after their commit; this
        joins those it could not, all of a batch in one transaction. The messages are committed
        already: if this fails they are answered all the same, and join their threads when the
        phone takes them (messages/queue.py)."""
        by_device = threads.joinings(
            (result.row, result.recipients)
            for result in results
            if isinstance(result, Stored) and result.created and not result.joined
        )
        if not by_device:
            return
        try:
            await threads.join(self._database, by_device)
        except Exception:
            joining = sum(len(joinings) for joinings in by_device.values())
            log.exception("joining %d recipients to their threads failed", joining)

    async def _write(self, batch: list[PreparedMessage]) -> list[Stored | ApiError]:
        try:
            done = await self._commit(batch)
        except BaseException as exc:
            self._database.failed(exc)
            raise
        self._database.wrote()
        return self._answers(batch, done)

    async def _commit(self, batch: list[PreparedMessage]) -> Done:
        try:
            done: Done = await self._process.call((batch, False))
        except WriterDied:
            # it may have committed the batch before it died: a new process finds out
            log.error("the send writer process died with a batch in hand; handing it on")
            try:
                done = await self._process.call((batch, True))
            except WriterDied as again:
                raise OperationalError(None, None, again) from again
        if done.join_error:
            log.warning("the send writer process could not join threads: %s", done.join_error)
        return done

    def _answers(self, batch: list[PreparedMessage], done: Done) -> list[Stored | ApiError]:
        results: list[Stored | ApiError] = []
        for prepared in batch:
            message_id = prepared.message["id"]
            if message_id in done.rejected:
                results.append(batches.refused(prepared, done.rejected[message_id]))
                continue
            if message_id in done.created:
                row, recipients = done.written.get(
                    message_id, (prepared.message, prepared.recipients)
                )
                results.append(Stored(True, row, recipients, message_id in done.joined))
                continue
            key = (prepared.message["account_id"], prepared.message["external_id"])
            if key not in done.originals:  # the original was deleted meanwhile: a retry will do
                raise ApiError(
                    409, "a message with this externalId is being changed; retry", "conflict"
                )
            row, recipients = done.originals[key]
            results.append(Stored(False, row, recipients))
        return results
