"""Group commit for sends: many requests' messages written in one transaction.

A send's database work is small (three inserts) but a transaction per request costs far more than
the work itself (a commit, several round trips, and on SQLite the single connection held across
event-loop turns). The writer takes every send waiting when it becomes free, writes them with
one statement per table, commits once, and only then answers each request: a 202 still means
"committed". Under light load a batch is one message, so latency does not grow. The batching
itself is kit/batching.Batcher, as for phones' state reports.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from multiprocessing.connection import Connection
from typing import Any

import asyncpg
from sqlalchemy import Dialect, Table, and_, delete, insert, or_, select, text
from sqlalchemy.dialects.sqlite.aiosqlite import SQLiteDialect_aiosqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from smsgate import observe
from smsgate.accounts.models import Account
from smsgate.billing import usage
from smsgate.billing.usage import Quota
from smsgate.config import Settings
from smsgate.conversations import service as conversations
from smsgate.conversations.models import OptOut
from smsgate.conversations.service import Joining
from smsgate.errors import ApiError
from smsgate.kit.batching import Batcher
from smsgate.kit.ids import new_id
from smsgate.messages import attachments, pgwriter, states
from smsgate.messages.models import history_row, history_table, messages_table, recipients_table
from smsgate.messages.schemas import Row
from smsgate.messages.writerproc import WriterDied, WriterProcess, answer
from smsgate.storage.db import Database, asyncpg_dsn, insert_ignoring_conflicts
from smsgate.storage.rawsqlite import RawSqlite, TableCodec
from smsgate.webhooks.events import NewEvent, emit, outbound_payload, outbound_type

log = logging.getLogger("smsgate.messages.writer")

MAX_BATCH = 500
WRITER_APPLICATION_NAME = "smsgate-send-writer"
OPTED_OUT = "opted_out"
CHUNK = 5000
EXPEDITED_PRIORITY = 100
opt_outs_table: Table = OptOut.__table__  # type: ignore[assignment]
accounts_table: Table = Account.__table__  # type: ignore[assignment]


@dataclass(frozen=True)
class PreparedMessage:
    """A validated send, as the rows it will become."""

    message: dict[str, Any]
    recipients: list[dict[str, Any]]
    history: list[dict[str, Any]]
    quota: Quota | None = None
    # an MMS's media, fetched before the send is stored: (name, content type, bytes)
    files: tuple[tuple[str | None, str, bytes], ...] = ()


@dataclass(frozen=True)
class Stored:
    """What the database holds for a send: the new message, or the original of a replay."""

    created: bool
    row: Row
    recipients: Sequence[Row]
    joined: bool = False  # its recipients are in their threads already (the writer process)


class SendWriter:
    def __init__(self, database: Database) -> None:
        self._database = database
        # the batch's database work runs in a process of its own (messages/writerproc.py)
        self._process: WriterProcess | None = None
        if database.dialect == "sqlite":
            path = database.engine.url.database
            assert path, "the writer needs an SQLite file, not an in-memory database"
            self._process = WriterProcess(_serve_sqlite, (path, database.settings))
        elif database.dialect == "postgresql":
            settings = database.settings
            self._process = WriterProcess(
                _serve_postgresql, (asyncpg_dsn(settings), settings.database_schema, settings)
            )
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
        if self._process is not None:
            await self._process.start()

    @property
    def pid(self) -> int | None:
        """The writer process's id, while it runs."""
        return self._process.pid if self._process is not None else None

    async def close(self) -> None:
        await self._batcher.close()
        if self._process is not None:
            await self._process.close()

    async def _join_threads(self, results: Sequence[Stored | ApiError]) -> None:
        """New messages pinned to a device join their conversations before they are answered
        (the line is known). The writer process joins those it wrote, after their commit
        (`_Joiner`); this joins the rest (sends the SQLAlchemy path wrote, a batch whose
        writer process died, or a join that failed there), all of a batch in one transaction.
        The messages are committed already: if this fails they are answered all the same, and
        join their threads when the phone takes them (messages/dispatch.py)."""
        by_device = _joinings(
            (result.row, result.recipients)
            for result in results
            if isinstance(result, Stored) and result.created and not result.joined
        )
        if not by_device:
            return
        try:
            await _join(self._database, by_device)
        except Exception:
            joining = sum(len(joinings) for joinings in by_device.values())
            log.exception("joining %d recipients to their threads failed", joining)

    async def _committed(self, batch: list[PreparedMessage]) -> _Done:
        """After the writer process died mid-batch: the batch's messages that are stored were
        committed with all their rows; the rest go through the SQLAlchemy path."""
        ids = [p.message["id"] for p in batch]
        async with self._database.engine.connect() as conn:
            found = set(
                (
                    await conn.execute(
                        select(messages_table.c.id).where(messages_table.c.id.in_(ids))
                    )
                ).scalars()
            )
        return _Done(found, {}, [p for p in batch if p.message["id"] not in found], {})

    async def _write(self, batch: list[PreparedMessage]) -> list[Stored | ApiError]:
        try:
            done = await self._commit(batch)
        except BaseException as exc:
            self._database.failed(exc)
            raise
        self._database.wrote()
        return self._answers(batch, done)

    async def _commit(self, batch: list[PreparedMessage]) -> _Done:
        # an MMS's media is written with it, in its transaction, on the SQLAlchemy path (rare,
        # and megabytes are not worth a trip through the writer's pipe)
        with_files = [p for p in batch if p.files]
        if with_files:
            batch = [p for p in batch if not p.files]
        done = await self._commit_plain(batch) if batch else _Done(set(), {}, [], {})
        if with_files:
            async with self._database.engine.begin() as conn:
                done.merge(await _write_sqlalchemy(conn, with_files))
        return done

    async def _commit_plain(self, batch: list[PreparedMessage]) -> _Done:
        if self._process is not None:
            try:
                done: _Done = await self._process.call(batch)
            except WriterDied:
                log.error("the send writer process died with a batch in hand; checking it")
                done = await self._committed(batch)
            if done.join_error:
                log.warning("the send writer process could not join threads: %s", done.join_error)
            if done.deferred:
                # Sends that touch the opt-out list are rare: they take the SQLAlchemy path,
                # which also writes their events in the same transaction.
                async with self._database.engine.begin() as conn:
                    done.merge(await _write_sqlalchemy(conn, done.deferred))
        else:
            async with self._database.engine.begin() as conn:
                done = await _write_sqlalchemy(conn, batch)
        return done

    def _answers(self, batch: list[PreparedMessage], done: _Done) -> list[Stored | ApiError]:
        results: list[Stored | ApiError] = []
        # sends handed back went through the SQLAlchemy path as the copies it was given (an
        # opted-out recipient is failed there): answer with those
        changed = {p.message["id"]: p for p in done.deferred}
        for prepared in batch:
            message_id = prepared.message["id"]
            prepared = changed.get(message_id, prepared)
            if message_id in done.rejected:
                assert prepared.quota is not None
                quota = replace(prepared.quota, counts=_usage_counts(prepared))
                results.append(usage.exceeded(quota, done.rejected[message_id]))
                continue
            if message_id in done.created:
                joined = message_id in done.joined
                results.append(Stored(True, prepared.message, prepared.recipients, joined))
                continue
            key = (prepared.message["account_id"], prepared.message["external_id"])
            if key not in done.originals:  # the original was deleted meanwhile: a retry will do
                raise ApiError(
                    409, "a message with this externalId is being changed; retry", "conflict"
                )
            row, recipients = done.originals[key]
            results.append(Stored(False, row, recipients))
        return results


def _serve_sqlite(connection: Connection, config: tuple[str, Settings]) -> None:
    """The writer process's loop (SQLite): each batch in one transaction on its own connection,
    then its pinned messages' threads (`_Joiner`)."""
    path, settings = config
    codecs = _SqliteCodecs(SQLiteDialect_aiosqlite())
    sqlite = RawSqlite(path)
    loop = asyncio.new_event_loop()
    joiner = _Joiner(settings)

    def write(batch: list[PreparedMessage]) -> _Done:
        done = sqlite.transaction(partial(_write_sqlite, codecs, batch))
        if pinned := joiner.pinned(batch, done):  # most batches: no event loop turned
            loop.run_until_complete(joiner.join(pinned, done))
        return done

    try:
        answer(connection, write)
    finally:
        sqlite.close()
        loop.run_until_complete(joiner.close())
        loop.close()


def _serve_postgresql(connection: Connection, config: tuple[str, str, Settings]) -> None:
    """The writer process's loop (PostgreSQL): each batch in one transaction on a connection it
    keeps (opened again after any error), then its pinned messages' threads (`_Joiner`)."""
    dsn, schema, settings = config
    loop = asyncio.new_event_loop()
    kept: Any = None
    joiner = _Joiner(settings)

    async def write(batch: list[PreparedMessage]) -> _Done:
        nonlocal kept
        with pgwriter.as_sqlalchemy_errors():
            if kept is None or kept.is_closed():
                kept = await asyncpg.connect(
                    dsn,
                    server_settings={
                        "application_name": f"{WRITER_APPLICATION_NAME} {os.getpid()}",
                        **({"search_path": schema} if schema else {}),
                    },
                )
            try:
                async with kept.transaction():
                    done = await _write_postgresql(kept, batch)
            except BaseException:
                broken, kept = kept, None
                with contextlib.suppress(Exception):
                    await broken.close(timeout=5)
                raise
        if pinned := joiner.pinned(batch, done):
            await joiner.join(pinned, done)
        return done

    try:
        answer(connection, lambda batch: loop.run_until_complete(write(batch)))
    finally:
        if kept is not None:
            loop.run_until_complete(kept.close())
        loop.run_until_complete(joiner.close())
        loop.close()


class _Joiner:
    """The writer process joins the threads of the pinned messages it has just committed, in a
    transaction of its own on a SQLAlchemy connection of its own (conversations.join, as
    everywhere else), before it answers: in the API process the join cost more of the event
    loop than the rest of a send. A failure is reported in the answer, and the API process
    then joins those messages itself (SendWriter._join_threads)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._database: Database | None = None

    @staticmethod
    def pinned(batch: list[PreparedMessage], done: _Done) -> dict[str, list[Joining]]:
        """By device, the recipients of the batch's new messages pinned to one."""
        return _joinings(
            (p.message, p.recipients) for p in batch if p.message["id"] in done.created
        )

    async def join(self, by_device: dict[str, list[Joining]], done: _Done) -> None:
        """Join them (`pinned`'s answer), recording in `done` what was joined or why not."""
        if self._database is None:  # made in the loop it runs in
            self._database = Database(self._settings)
        try:
            await _join(self._database, by_device)
        except Exception as exc:
            done.join_error = f"{type(exc).__name__}: {exc}"
            return
        done.joined = {j.message_id for joinings in by_device.values() for j in joinings}

    async def close(self) -> None:
        if self._database is not None:
            await self._database.dispose()


def _joinings(stored: Iterable[tuple[Row, Sequence[Row]]]) -> dict[str, list[Joining]]:
    """By device: the recipients of new messages pinned to one, as they join their threads."""
    by_device: dict[str, list[Joining]] = {}
    for message, recipients in stored:
        if not message["device_id"]:
            continue
        by_device.setdefault(message["device_id"], []).extend(
            conversations.sent(
                recipient_id=recipient["id"],
                phone_number=recipient["phone_number"],
                message_id=message["id"],
                account_id=message["account_id"],
                channel=message["channel"],
                sim_number=message["sim_number"],
                content=message["content"],
                created_at=message["created_at"],
            )
            for recipient in recipients
            if recipient["conversation_id"] is None
        )
    return by_device


async def _join(database: Database, by_device: dict[str, list[Joining]]) -> None:
    async with database.transaction() as session:
        for device_id, joinings in by_device.items():
            await conversations.join(session, device_id, joinings)


_Originals = dict[tuple[str, str], tuple[Row, list[Row]]]


@dataclass
class _Done:
    """What a batch write did: new ids, originals of replays, sends handed on, sends refused."""

    created: set[str]
    originals: _Originals
    deferred: list[PreparedMessage]
    rejected: dict[str, int]  # message id -> quota used when it was refused
    joined: set[str] = field(default_factory=set)  # pinned messages the writer process joined
    join_error: str = ""  # why it could not join them

    def merge(self, other: _Done) -> None:
        self.created |= other.created
        self.originals |= other.originals
        self.rejected |= other.rejected


def _usage_counts(prepared: PreparedMessage) -> dict[str, int]:
    """What an accepted send counts: one message per recipient still to be sent (opted-out
    recipients are free), and its segments."""
    message = prepared.message
    sending = sum(1 for r in prepared.recipients if r["state"] == states.PROCESSING)
    channel = message["channel"]
    return {
        usage.QUOTA_METRIC: sending,
        f"messages:{channel}": sending,
        f"segments:{channel}": sending * (message["segments"] or 1),
    }


def _debit(prepared: PreparedMessage) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """(ENSURE, DEBIT) parameters when the send's plan limits messages, else None."""
    quota = prepared.quota
    if quota is None or quota.limit is None:
        return None
    counts = _usage_counts(prepared)
    if not counts[usage.QUOTA_METRIC]:
        return None
    return usage.debit_params(replace(quota, counts=counts))


_Debit = tuple[dict[str, Any], dict[str, Any]]  # a send's (ENSURE, DEBIT) parameters


@dataclass
class _DebitGroup:
    """The sends of a batch that debit one quota counter (an account's period): one ENSURE and,
    if they all fit, one DEBIT of their total. Only if they do not is each debited in turn, as
    the whole batch once was (two statements a send), so the same sends are refused."""

    ensure: dict[str, Any]
    total: dict[str, Any]  # DEBIT parameters with the group's total
    sends: list[tuple[PreparedMessage, _Debit]]
    whole: bool = True  # False: the sends disagree on the limit (a plan changed meanwhile)


def _debit_groups(batch: list[PreparedMessage], created: set[str]) -> list[_DebitGroup]:
    """The batch's quota debits by counter, in the counters' lock order. A total fits if and
    only if every debit fits in turn (counts are never negative), so debiting the total at once
    refuses exactly what debiting one at a time would."""
    groups: dict[tuple[Any, ...], _DebitGroup] = {}
    for prepared in batch:
        debit = _debit(prepared) if prepared.message["id"] in created else None
        if debit is None:
            continue
        ensure, one = debit
        key = (one["account_id"], one["kind"], one["start"], one["metric"])
        group = groups.get(key)
        if group is None:
            groups[key] = _DebitGroup(ensure, dict(one), [(prepared, debit)])
            continue
        group.sends.append((prepared, debit))
        group.total["n"] += one["n"]
        group.whole = group.whole and group.total["limit"] == one["limit"]
    return [groups[key] for key in sorted(groups)]


def _usage_rows(accepted: list[PreparedMessage]) -> list[dict[str, Any]]:
    """The batch's metering, summed per account, bucket and metric, as UPSERT parameters (the
    period's quota of a limited plan was debited already; only its day bucket remains)."""
    totals: dict[tuple[str, str, str, str], int] = {}
    for prepared in accepted:
        quota = prepared.quota
        if quota is None:
            continue
        for metric, n in _usage_counts(prepared).items():
            buckets = [("day", quota.day)]
            if not (metric == usage.QUOTA_METRIC and quota.limit is not None):
                buckets.append(("period", quota.period_start))
            for kind, start in buckets:
                key = (quota.account_id, kind, start, metric)
                totals[key] = totals.get(key, 0) + n
    rows = [
        {"id": new_id(), "account_id": a, "kind": k, "start": s, "metric": m, "n": n}
        for (a, k, s, m), n in totals.items()
        if n
    ]
    return usage.in_lock_order(rows)


async def _write_sqlalchemy(conn: AsyncConnection, batch: list[PreparedMessage]) -> _Done:
    """The batch as one statement per table (PostgreSQL, and SQLite sends to opted-out numbers)."""
    failures = await _apply_opt_outs(conn, batch)
    plain = [p.message for p in batch if p.message["external_id"] is None]
    keyed = [p.message for p in batch if p.message["external_id"] is not None]
    created = {m["id"] for m in plain}
    if plain:
        await conn.execute(insert(messages_table), plain)
    if keyed:
        statement = insert_ignoring_conflicts(
            messages_table, conn.dialect.name, "account_id", "external_id"
        ).returning(messages_table.c.id)
        created.update((await conn.execute(statement, keyed)).scalars())
    rejected: dict[str, int] = {}
    for group in _debit_groups(batch, created):
        await conn.execute(text(usage.ENSURE), group.ensure)
        if group.whole and (await conn.execute(text(usage.DEBIT), group.total)).rowcount == 1:
            continue
        for prepared, (ensure, one) in group.sends:
            if (await conn.execute(text(usage.DEBIT), one)).rowcount != 1:
                used = await conn.execute(text(usage.READ), ensure)
                rejected[prepared.message["id"]] = int(used.scalar() or 0)
                await conn.execute(
                    delete(messages_table).where(messages_table.c.id == prepared.message["id"])
                )
    created -= set(rejected)
    fresh = [p for p in batch if p.message["id"] in created]
    counters = _usage_rows(fresh)
    if counters:
        await conn.execute(text(usage.UPSERT), counters)
    if fresh:
        await conn.execute(insert(recipients_table), [r for p in fresh for r in p.recipients])
        await conn.execute(insert(history_table), [h for p in fresh for h in p.history])
        await emit(conn, [e for p in fresh for e in failures.get(p.message["id"], [])])
        for prepared in fresh:
            if prepared.files:
                await attachments.keep(
                    conn, prepared.message["account_id"], prepared.message["id"], prepared.files
                )
    replays = [
        p for p in batch if p.message["id"] not in created and p.message["id"] not in rejected
    ]
    if not replays:
        return _Done(created, {}, [], rejected)
    m, r = messages_table, recipients_table
    wanted = {(p.message["account_id"], p.message["external_id"]) for p in replays}
    rows = (
        (
            await conn.execute(
                select(m).where(
                    or_(*(and_(m.c.account_id == a, m.c.external_id == e) for a, e in wanted))
                )
            )
        )
        .mappings()
        .all()
    )
    by_id: dict[str, list[Row]] = {row["id"]: [] for row in rows}
    if by_id:
        recipient_rows = await conn.execute(
            select(r).where(r.c.message_id.in_(list(by_id))).order_by(r.c.message_id, r.c.position)
        )
        for recipient in recipient_rows.mappings():
            by_id[recipient["message_id"]].append(recipient)
    originals: _Originals = {
        (row["account_id"], row["external_id"]): (row, by_id[row["id"]]) for row in rows
    }
    return _Done(created, originals, [], rejected)


_ENSURE, _ENSURE_NAMES = pgwriter.positional(usage.ENSURE)
_DEBIT, _DEBIT_NAMES = pgwriter.positional(usage.DEBIT)
_READ, _READ_NAMES = pgwriter.positional(usage.READ)
_UPSERT, _UPSERT_NAMES = pgwriter.positional(usage.UPSERT)


async def _write_postgresql(driver: Any, batch: list[PreparedMessage]) -> _Done:
    """The batch on the asyncpg connection, inside its transaction; sends to a number on the
    opt-out list and replays of a taken externalId are handed back (deferred) for the
    SQLAlchemy path."""
    pairs = _pairs(batch)
    opted: set[tuple[str, str]] = set()
    if pairs:
        rows = await driver.fetch(
            "SELECT account_id, phone_number FROM opt_outs "
            "WHERE account_id = ANY($1::text[]) AND phone_number = ANY($2::text[])",
            sorted({a for a, _ in pairs}),
            sorted({n for _, n in pairs}),
        )
        opted = {(row[0], row[1]) for row in rows} & pairs
    deferred = [p for p in batch if _touches(p, opted)]
    batch = [p for p in batch if not _touches(p, opted)]
    created: set[str] = set()
    if batch:
        inserted = await driver.fetch(
            pgwriter.MESSAGES.sql, *pgwriter.MESSAGES.arrays([p.message for p in batch])
        )
        created = {row[0] for row in inserted}
    deferred += [p for p in batch if p.message["id"] not in created]  # externalId taken
    rejected: dict[str, int] = {}
    for group in _debit_groups(batch, created):
        await driver.execute(_ENSURE, *pgwriter.bind(_ENSURE_NAMES, group.ensure))
        total = pgwriter.bind(_DEBIT_NAMES, group.total)
        if group.whole and await driver.execute(_DEBIT, *total) == "UPDATE 1":
            continue
        for prepared, (ensure, one) in group.sends:
            if await driver.execute(_DEBIT, *pgwriter.bind(_DEBIT_NAMES, one)) != "UPDATE 1":
                used = await driver.fetchval(_READ, *pgwriter.bind(_READ_NAMES, ensure))
                rejected[prepared.message["id"]] = int(used or 0)
                await driver.execute("DELETE FROM messages WHERE id = $1", prepared.message["id"])
    created -= set(rejected)
    fresh = [p for p in batch if p.message["id"] in created]
    counters = _usage_rows(fresh)
    if counters:
        await driver.executemany(_UPSERT, [pgwriter.bind(_UPSERT_NAMES, c) for c in counters])
    if fresh:
        recipients = [r for p in fresh for r in p.recipients]
        await driver.execute(pgwriter.RECIPIENTS.sql, *pgwriter.RECIPIENTS.arrays(recipients))
        history = [h for p in fresh for h in p.history]
        await driver.execute(pgwriter.HISTORY.sql, *pgwriter.HISTORY.arrays(history))
    return _Done(created, {}, deferred, rejected)


class _SqliteCodecs:
    def __init__(self, dialect: Dialect) -> None:
        self.messages = TableCodec(messages_table, dialect)
        self.recipients = TableCodec(recipients_table, dialect)
        self.history = TableCodec(history_table, dialect)
        self.insert_keyed = (
            self.messages.insert_sql + " ON CONFLICT (account_id, external_id) DO NOTHING"
        )


def _write_sqlite(
    codecs: _SqliteCodecs, batch: list[PreparedMessage], conn: sqlite3.Connection
) -> _Done:
    """The batch on the raw SQLite connection's thread, inside its transaction; sends to a
    number on the opt-out list are handed back (deferred) for the SQLAlchemy path."""
    pairs = _pairs(batch)
    opted: set[tuple[str, str]] = set()
    accounts = sorted({a for a, _ in pairs})
    numbers = sorted({n for _, n in pairs})
    for start in range(0, len(numbers), CHUNK):  # SQLite allows 32,766 variables a statement
        chunk = numbers[start : start + CHUNK]
        marks = ",".join("?" * len(accounts)), ",".join("?" * len(chunk))
        opted |= set(
            conn.execute(
                "SELECT account_id, phone_number FROM opt_outs "  # noqa: S608 (placeholders)
                f"WHERE account_id IN ({marks[0]}) AND phone_number IN ({marks[1]})",
                [*accounts, *chunk],
            ).fetchall()
        )
    opted &= pairs
    deferred = [p for p in batch if _touches(p, opted)]
    batch = [p for p in batch if not _touches(p, opted)]
    plain = [p.message for p in batch if p.message["external_id"] is None]
    conn.executemany(codecs.messages.insert_sql, [codecs.messages.params(m) for m in plain])
    created = {m["id"] for m in plain}
    for prepared in batch:
        if prepared.message["external_id"] is not None:
            params = codecs.messages.params(prepared.message)
            if conn.execute(codecs.insert_keyed, params).rowcount == 1:
                created.add(prepared.message["id"])
    rejected: dict[str, int] = {}
    for group in _debit_groups(batch, created):
        conn.execute(usage.ENSURE, group.ensure)
        if group.whole and conn.execute(usage.DEBIT, group.total).rowcount == 1:
            continue
        for prepared, (ensure, one) in group.sends:
            if conn.execute(usage.DEBIT, one).rowcount != 1:
                used = conn.execute(usage.READ, ensure).fetchone()
                rejected[prepared.message["id"]] = int(used[0]) if used else 0
                conn.execute("DELETE FROM messages WHERE id = ?", (prepared.message["id"],))
    created -= set(rejected)
    fresh = [p for p in batch if p.message["id"] in created]
    counters = _usage_rows(fresh)
    if counters:
        conn.executemany(usage.UPSERT, counters)
    if fresh:
        conn.executemany(
            codecs.recipients.insert_sql,
            [codecs.recipients.params(r) for p in fresh for r in p.recipients],
        )
        conn.executemany(
            codecs.history.insert_sql, [codecs.history.params(h) for p in fresh for h in p.history]
        )
    originals: _Originals = {}
    for prepared in batch:
        key = (prepared.message["account_id"], prepared.message["external_id"])
        if prepared.message["id"] in created or prepared.message["id"] in rejected:
            continue
        if key in originals:
            continue
        found = conn.execute(
            codecs.messages.select_sql + " WHERE account_id = ? AND external_id = ?", key
        ).fetchone()
        if found is None:
            continue
        row = codecs.messages.decode(found)
        recipients: list[Row] = [
            codecs.recipients.decode(values)
            for values in conn.execute(
                codecs.recipients.select_sql + " WHERE message_id = ? ORDER BY position",
                (row["id"],),
            )
        ]
        originals[key] = (row, recipients)
    return _Done(created, originals, deferred, rejected)


def _pairs(batch: list[PreparedMessage]) -> set[tuple[str, str]]:
    return {
        (p.message["account_id"], r["phone_number"])
        for p in batch
        if not p.message["is_encrypted"]
        for r in p.recipients
    }


def _touches(prepared: PreparedMessage, opted: set[tuple[str, str]]) -> bool:
    account = prepared.message["account_id"]
    return any((account, r["phone_number"]) in opted for r in prepared.recipients)


async def _apply_opt_outs(
    conn: AsyncConnection, batch: list[PreparedMessage]
) -> dict[str, list[NewEvent]]:
    """Fail, before any phone sees them, the recipients on their account's opt-out list (unless
    the account lets priority >= 100 through); return the sms:failed events per message."""
    pairs = _pairs(batch)
    if not pairs:
        return {}
    o = opt_outs_table
    accounts = {a for a, _ in pairs}
    numbers = sorted({n for _, n in pairs})
    found: list[tuple[str, str]] = []
    for start in range(0, len(numbers), CHUNK):
        rows = await conn.execute(
            select(o.c.account_id, o.c.phone_number).where(
                o.c.account_id.in_(accounts), o.c.phone_number.in_(numbers[start : start + CHUNK])
            )
        )
        found += [(a, n) for a, n in rows.all()]
    opted = set(found) & pairs
    if not opted:
        return {}
    a = accounts_table
    bypass = {
        account_id
        for account_id, settings in (
            await conn.execute(
                select(a.c.id, a.c.settings).where(a.c.id.in_({acc for acc, _ in opted}))
            )
        ).all()
        if (settings or {}).get("optOutBypassExpedited")
    }
    failures: dict[str, list[NewEvent]] = {}
    for prepared in batch:
        message = prepared.message
        account = message["account_id"]
        if account in bypass and message["priority"] >= EXPEDITED_PRIORITY:
            continue
        for recipient in prepared.recipients:
            if (account, recipient["phone_number"]) not in opted:
                continue
            recipient["state"], recipient["error"] = states.FAILED, OPTED_OUT
            prepared.history.append(_history(message, recipient["phone_number"], states.FAILED))
            failures.setdefault(message["id"], []).append(
                NewEvent(
                    account,
                    outbound_type(message["channel"], states.FAILED) or "sms:failed",
                    message["device_id"],
                    outbound_payload(
                        message["id"],
                        message["external_id"],
                        recipient["phone_number"],
                        states.FAILED,
                        OPTED_OUT,
                        message["channel"],
                        message["device_id"],
                        message["sim_number"],
                        message["created_at"],
                    ),
                )
            )
        aggregate = states.message_state(r["state"] for r in prepared.recipients)
        if aggregate != message["state"]:
            message["state"] = aggregate
            message["error"] = OPTED_OUT if aggregate == states.FAILED else None
            prepared.history.append(_history(message, None, aggregate))
    return failures


def _history(message: dict[str, Any], number: str | None, state: str) -> dict[str, Any]:
    return history_row(
        message["account_id"],
        message["id"],
        state,
        message["created_at"],
        phone_number=number,
        error=OPTED_OUT if state == states.FAILED else None,
    )
