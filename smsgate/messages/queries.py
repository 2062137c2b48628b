"""Reading the account's messages: the native API's and the dashboard's pages (by cursor), the
third-party API's (by offset, with a total), a message by either of its ids, the overview's
counts. Every statement walks an index in the order it pages (#32: tests read their plans)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, CompoundSelect, Select, func, select, union
from sqlalchemy.ext.asyncio import AsyncSession

from smsgate.errors import not_found
from smsgate.kit import clock, phones
from smsgate.kit.ids import is_id
from smsgate.messages import attachments, states
from smsgate.messages.models import (
    PROCESSING_ONLY,
    created_between,
    history_table,
    messages_table,
    recipients_table,
)
from smsgate.messages.schemas import Row, message_out


@dataclass(frozen=True)
class MessageFilter:
    direction: str | None = None
    state: str | None = None
    device_id: str | None = None
    phone_number: str | None = None
    # messages with at least one recipient in this state (a send where one of three failed is
    # "delivered" as a whole, and still has a failure to see)
    recipient_state: str | None = None
    scheduled: bool = False  # only sends waiting for their scheduleAt
    since: datetime | None = None
    until: datetime | None = None


def messages_query(
    account_id: str, filters: MessageFilter, cursor: str | None, limit: int
) -> Select[Any]:
    """The statement of a page of the account's messages (tests read its plan: #32)."""
    m = messages_table
    conditions: list[ColumnElement[bool]] = [m.c.account_id == account_id]
    if filters.direction:
        conditions.append(m.c.direction == filters.direction)
    if filters.state:
        conditions.append(m.c.state == filters.state)
    if filters.device_id:
        conditions.append(m.c.device_id == filters.device_id)
    conditions += created_between(filters.since, filters.until)
    if filters.scheduled:
        conditions += [m.c.state == states.PROCESSING, m.c.schedule_at > clock.now()]
    if filters.recipient_state:
        r = recipients_table
        conditions.append(
            m.c.id.in_(
                select(r.c.message_id).where(
                    r.c.account_id == account_id, r.c.state == filters.recipient_state
                )
            )
        )
    if cursor:
        conditions.append(m.c.id < cursor)
    query = select(m).where(*conditions)
    if filters.phone_number:
        query = query.where(
            m.c.id.in_(_of_number(account_id, filters.phone_number, conditions, limit))
        )
    return query.order_by(m.c.id.desc()).limit(limit)


def _of_number(
    account_id: str, number: str, conditions: list[ColumnElement[bool]], limit: int
) -> CompoundSelect[Any]:
    """The ids of the page's messages to `number`: for each way it may be written, the newest
    `limit` that meet the other conditions, walked from the recipients' (account, number,
    message) index newest first, so a number with ten thousand messages reads a page's worth
    (#32). Their union holds the page."""
    m, r = messages_table, recipients_table
    branches = [
        select(r.c.message_id)
        .select_from(r.join(m, m.c.id == r.c.message_id))
        .where(r.c.account_id == account_id, r.c.phone_number == spelling, *conditions)
        .order_by(r.c.message_id.desc())
        .limit(limit)
        .subquery()
        for spelling in phones.spellings(number)
    ]
    return union(*(select(branch.c.message_id) for branch in branches))


async def has_sent(session: AsyncSession, account_id: str) -> bool:
    """Whether the account ever sent a message (the first-run checklist)."""
    m = messages_table
    query = select(m.c.id).where(m.c.account_id == account_id, m.c.direction == "out").limit(1)
    return (await session.execute(query)).first() is not None


def by_state_query(account_id: str, since: datetime) -> Select[Any]:
    """The statement counting the account's messages since `since` by state: the walk is the
    window's ids (tests read its plan: #32)."""
    m = messages_table
    return (
        select(m.c.state, func.count())
        .where(m.c.account_id == account_id, *created_between(since, None))
        .group_by(m.c.state)
    )


# The overview's "today" walks the day's messages (a busy account's tens of thousands): counted
# at most every COUNTED_FOR seconds per account and day in each process (#32).
COUNTED_FOR = 30.0
_counted: dict[tuple[str, datetime], tuple[float, dict[str, int]]] = {}


async def count_by_state(session: AsyncSession, account_id: str, since: datetime) -> dict[str, int]:
    """The account's messages since `since`, by state, at most COUNTED_FOR seconds old."""
    key, now = (account_id, since), time.monotonic()
    found = _counted.get(key)
    if found is not None and now - found[0] < COUNTED_FOR:
        return found[1]
    rows = await session.execute(by_state_query(account_id, since))
    counts = {state: count for state, count in rows.all()}
    if len(_counted) >= 10_000:
        _counted.clear()
    _counted[key] = (now, counts)
    return counts


async def list_messages(
    session: AsyncSession, account_id: str, filters: MessageFilter, limit: int, cursor: str | None
) -> tuple[list[dict[str, Any]], str | None]:
    """Newest first, one page; the cursor is the id of the last message of the previous page."""
    query = messages_query(account_id, filters, cursor, limit + 1)
    rows = (await session.execute(query)).mappings().all()
    page, more = rows[:limit], len(rows) > limit
    by_message: dict[str, list[Row]] = {row["id"]: [] for row in page}
    if page:
        recipient_rows = (
            await session.execute(
                select(recipients_table)
                .where(recipients_table.c.message_id.in_(list(by_message)))
                .order_by(recipients_table.c.message_id, recipients_table.c.position)
            )
        ).mappings()
        for recipient in recipient_rows:
            by_message[recipient["message_id"]].append(recipient)
    files = await attachments.described(session, page)
    data = [message_out(row, by_message[row["id"]], None, files.get(row["id"])) for row in page]
    return data, (page[-1]["id"] if more else None)


# --- the third-party API's reads: offset pages with a total, a message by either id ---------


async def find_outbound(session: AsyncSession, account_id: str, message_id: str) -> Row:
    """A sent message by our id or by the id its sender chose (its externalId); 404 else."""
    m = messages_table
    query = select(m).where(m.c.account_id == account_id, m.c.direction == "out")
    row = None
    if is_id(message_id):
        row = (await session.execute(query.where(m.c.id == message_id))).mappings().first()
    if row is None:
        row = (await session.execute(query.where(m.c.external_id == message_id))).mappings().first()
    if row is None:
        raise not_found("message")
    return row


@dataclass(frozen=True)
class OffsetPage:
    total: int  # of the messages meeting the filters, all pages together
    rows: Sequence[Row]


async def _offset_page(
    session: AsyncSession, query: Select[Any], oldest_first: bool, limit: int, offset: int
) -> OffsetPage:
    m = messages_table
    total = (await session.execute(select(func.count()).select_from(query.subquery()))).scalar_one()
    order = m.c.id.asc() if oldest_first else m.c.id.desc()
    found = await session.execute(query.order_by(order).limit(limit).offset(offset))
    return OffsetPage(total, found.mappings().all())


async def sent_page(
    session: AsyncSession,
    account_id: str,
    *,
    since: datetime | None,
    until: datetime | None,
    device_id: str | None,
    state: str | None,
    handed: bool | None,
    oldest_first: bool,
    limit: int,
    offset: int,
) -> OffsetPage:
    """The account's sent messages in [since, until), through `device_id` (chosen or assigned),
    in `state` (and, for `processing`, taken by a phone or not: `handed`)."""
    m = messages_table
    query = select(m).where(m.c.account_id == account_id, m.c.direction == "out")
    query = query.where(*created_between(since, until))
    if device_id:
        query = query.where((m.c.assigned_device_id == device_id) | (m.c.device_id == device_id))
    if state:
        query = query.where(m.c.state == state)
    if handed is not None:
        query = query.where(m.c.handed_at.is_not(None) if handed else m.c.handed_at.is_(None))
    return await _offset_page(session, query, oldest_first, limit, offset)


async def received_page(
    session: AsyncSession,
    account_id: str,
    *,
    channels: Sequence[str] | None,
    since: datetime | None,
    until: datetime | None,
    device_id: str | None,
    limit: int,
    offset: int,
) -> OffsetPage:
    """The account's received messages in [since, until), of `channels`, newest first."""
    m = messages_table
    query = select(m).where(m.c.account_id == account_id, m.c.direction == "in")
    if channels is not None:
        query = query.where(m.c.channel.in_(channels))
    query = query.where(*created_between(since, until))
    if device_id:
        query = query.where(m.c.device_id == device_id)
    return await _offset_page(session, query, False, limit, offset)


@dataclass(frozen=True)
class Recipients:
    by_message: dict[str, list[Row]]  # in the order they were given
    # each message's own changes of state (not a recipient's), oldest first
    history: dict[str, list[tuple[str, datetime]]]


async def recipients_of(session: AsyncSession, ids: Sequence[str]) -> Recipients:
    """The recipients and state history of a page of messages: two queries for the page."""
    r, h = recipients_table, history_table
    by_message: dict[str, list[Row]] = {i: [] for i in ids}
    history: dict[str, list[tuple[str, datetime]]] = {i: [] for i in ids}
    if not ids:
        return Recipients(by_message, history)
    found = await session.execute(
        select(r).where(r.c.message_id.in_(ids)).order_by(r.c.message_id, r.c.position)
    )
    for recipient in found.mappings():
        by_message[recipient["message_id"]].append(recipient)
    changes = await session.execute(
        select(h.c.message_id, h.c.state, h.c.created_at)
        .where(h.c.message_id.in_(ids), h.c.phone_number.is_(None))
        .order_by(h.c.id)
    )
    for message_id, state, at in changes.all():
        history[message_id].append((state, at))
    return Recipients(by_message, history)


# --- /metrics -------------------------------------------------------------------------------


def queue_query() -> Select[Any]:
    """The messages waiting for a phone, by claiming device: from the partial index of the
    messages still processing (tests read its plan)."""
    m = messages_table
    return (
        select(m.c.assigned_device_id, func.count(), func.min(m.c.created_at))
        .where(PROCESSING_ONLY, m.c.acknowledged_at.is_(None))
        .group_by(m.c.assigned_device_id)
    )


async def waiting_by_device(
    session: AsyncSession,
) -> list[tuple[str | None, int, datetime | None]]:
    """(claiming device or None, how many wait, the oldest's created_at), every account's."""
    rows = await session.execute(queue_query())
    return [(device, count, oldest) for device, count, oldest in rows.all()]


async def totals(session: AsyncSession) -> list[tuple[str, str, str, int]]:
    """(direction, channel, state, count) of every message kept: a walk of the whole table,
    for a caller that makes it seldom."""
    m = messages_table
    query = select(m.c.direction, m.c.channel, m.c.state, func.count()).group_by(
        m.c.direction, m.c.channel, m.c.state
    )
    return [(d, c, s, n) for d, c, s, n in (await session.execute(query)).all()]
