"""Retention: forget what an operator chose not to keep (privacy), in bounded batches.

- message bodies and numbers of finished messages older than SMSGATE_RETENTION_MESSAGE_DAYS:
  the text, media URLs and WhatsApp template (with its parameters) are cleared and each number
  replaced by `hash:` and the first 16 hex characters of its SHA-256 (still countable and
  comparable, no longer readable);
- finished webhook deliveries (and their attempts) older than SMSGATE_RETENTION_DELIVERY_DAYS;
- device logs older than SMSGATE_RETENTION_LOG_DAYS.
0 keeps everything (the default).

Each pass reads at most BATCH rows of each table (in id order, without a lock) and changes
them in a short write transaction of its own, however large the tables have grown (#32).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    Table,
    Text,
    bindparam,
    cast,
    delete,
    null,
    select,
    update,
)

from smsgate.config import Settings
from smsgate.devices.models import DeviceLog
from smsgate.kit import clock, ids
from smsgate.messages import states
from smsgate.messages.models import messages_table, recipients_table
from smsgate.storage.db import Database
from smsgate.webhooks.models import Delivery

BATCH = 100  # rows a write transaction changes at most: the lock is held a few ms
RESWEEP = timedelta(days=1)


def _holds(column: ColumnElement[Any]) -> ColumnElement[bool]:
    """A JSON column with a value: neither SQL NULL nor JSON null (which is how SQLAlchemy and
    the send writer store None)."""
    return column.is_not(None) & (cast(column, Text) != "null")


def _hashed(number: str) -> str:
    return "hash:" + hashlib.sha256(number.encode()).hexdigest()[:16]


@dataclass
class _Walk:
    """Where this process's walk of old messages stands: the messages are walked in id order
    (ids begin with their creation time: kit.ids), BATCH at a time, so a pass reads a bounded
    number of rows however many were ever kept. Once caught up with the cutoff it stays there
    and takes each message as it ages past it; once a day it starts over from the oldest, for
    the messages that were still being sent when it passed them."""

    after: str = ""
    started_at: datetime | None = None


_walk = _Walk()


async def prune(database: Database, settings: Settings) -> dict[str, int]:
    """One pass: at most BATCH messages forgotten, deliveries and logs deleted, each batch in
    a short write transaction of its own after a read that takes no lock."""
    now = clock.now()
    done = {"messages": 0, "deliveries": 0, "logs": 0}
    if settings.retention_message_days:
        cutoff = now - timedelta(days=settings.retention_message_days)
        done["messages"] = await _forget_messages(database, cutoff, now)
    if settings.retention_delivery_days:
        cutoff = now - timedelta(days=settings.retention_delivery_days)
        done["deliveries"] = await _delete_old(
            database,
            Delivery.__table__,  # type: ignore[arg-type]
            cutoff,
            (Delivery.status != "pending") & (Delivery.updated_at < cutoff),
        )
    if settings.retention_log_days:
        cutoff = now - timedelta(days=settings.retention_log_days)
        done["logs"] = await _delete_old(
            database,
            DeviceLog.__table__,  # type: ignore[arg-type]
            cutoff,
            DeviceLog.created_at < cutoff,
        )
    return done


def old_messages(after: str, cutoff: datetime) -> Select[Any]:
    """The next BATCH messages after `after` created before the cutoff (an id is never earlier
    than its created_at), whether each is finished, and whether it still holds a body: from
    the primary key, in its order (tests read its plan)."""
    m = messages_table
    body = m.c.content.is_not(None) | _holds(m.c.media_urls) | _holds(m.c.template)
    return (
        select(m.c.id, m.c.state, body.label("body"))
        .where(m.c.id > after, m.c.id < ids.floor(cutoff))
        .order_by(m.c.id)
        .limit(BATCH)
    )


async def _forget_messages(database: Database, cutoff: datetime, now: datetime) -> int:
    started = _walk.started_at
    if started is None or not started <= now < started + RESWEEP:
        _walk.after, _walk.started_at = "", now
    async with database.reading() as session:
        rows = (await session.execute(old_messages(_walk.after, cutoff))).all()
    chosen = [row.id for row in rows if row.state in states.FINAL and row.body]
    if chosen:
        await _forget(database, chosen)
    if rows:  # past this batch only once it is written: a failed pass takes it again
        _walk.after = rows[-1].id
    return len(chosen)


async def _forget(database: Database, chosen: list[str]) -> None:
    """The messages' bodies cleared and their numbers hashed, in one short transaction."""
    m, r = messages_table, recipients_table
    async with database.transaction() as session:
        # SQL NULL, not JSON null: a pruned row holds no body any more
        await session.execute(
            update(m)
            .where(m.c.id.in_(chosen), m.c.state.in_(list(states.FINAL)))
            .values(content=None, media_urls=null(), template=null())
        )
        found = await session.execute(
            select(r.c.id, r.c.phone_number).where(
                r.c.message_id.in_(chosen), ~r.c.phone_number.startswith("hash:")
            )
        )
        hashed = [{"rid": rid, "hashed": _hashed(number)} for rid, number in found.all()]
        if hashed:
            await session.execute(
                update(r)
                .where(r.c.id == bindparam("rid"))
                .values(phone_number=bindparam("hashed")),
                hashed,
            )


async def _delete_old(
    database: Database, table: Table, cutoff: datetime, old: ColumnElement[bool]
) -> int:
    """Delete BATCH of `table`'s oldest rows matching `old`, found in id order among the rows
    created before the cutoff (their ids are lower than its: kit.ids)."""
    async with database.reading() as session:
        found = list(
            (
                await session.execute(
                    select(table.c.id)
                    .where(table.c.id < ids.floor(cutoff), old)
                    .order_by(table.c.id)
                    .limit(BATCH)
                )
            ).scalars()
        )
    if not found:
        return 0
    async with database.transaction() as session:
        gone = await session.execute(delete(table).where(table.c.id.in_(found), old))
    return int(gone.rowcount or 0)  # type: ignore[attr-defined]
