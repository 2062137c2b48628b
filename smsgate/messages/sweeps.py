"""The queue's sweeps, run by the jobs: expired and stalled messages failed or rerouted, a
silent device's claims released, a deleted device's messages failed, scheduled sends woken."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar, cast

from sqlalchemy import (
    Select,
    Table,
    and_,
    insert,
    not_,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from smsgate.accounts.models import Account
from smsgate.accounts.preferences import REROUTE_STALLED
from smsgate.conversations import joining
from smsgate.devices import service as devices
from smsgate.devices.models import Device
from smsgate.kit import clock
from smsgate.messages import states
from smsgate.messages.models import (
    PROCESSING_ONLY,
    history_row,
    history_table,
    messages_table,
    recipients_table,
)
from smsgate.messages.queue import ANDROID_CHANNELS
from smsgate.messages.reports import Report, Transition, apply_reports, record
from smsgate.storage.db import Database


def unacknowledged(condition: Any, limit: int) -> Select[Any]:
    """Messages still processing that no phone acknowledged, matching `condition` (expired,
    pinned to a deleted device): from the partial index of the queue (#32)."""
    m = messages_table
    return select(m).where(PROCESSING_ONLY, m.c.acknowledged_at.is_(None), condition).limit(limit)


async def fail_messages(
    session: AsyncSession, condition: Any, error: str, limit: int = 500
) -> list[Transition]:
    """Fail unacknowledged `processing` messages matching `condition` (expiry, device deleted)."""
    m, r = messages_table, recipients_table
    rows = (await session.execute(unacknowledged(condition, limit))).mappings().all()
    now = clock.now()
    transitions: list[Transition] = []
    for row in rows:
        changed = await session.execute(
            update(m)
            .where(
                m.c.id == row["id"], m.c.state == states.PROCESSING, m.c.acknowledged_at.is_(None)
            )
            .values(state=states.FAILED, error=error, updated_at=now)
        )
        if changed.rowcount != 1:  # type: ignore[attr-defined]
            continue
        numbers = (
            (
                await session.execute(
                    update(r)
                    .where(r.c.message_id == row["id"], r.c.state == states.PROCESSING)
                    .values(state=states.FAILED, error=error, updated_at=now)
                    .returning(r.c.phone_number)
                )
            )
            .scalars()
            .all()
        )
        for number in [*numbers, None]:
            transitions.append(
                Transition(
                    row["account_id"],
                    row["id"],
                    row["channel"],
                    row["assigned_device_id"],
                    number,
                    states.FAILED,
                    error,
                    now,
                    row["external_id"],
                    row["sim_number"],
                )
            )
    if transitions:
        await record(session, transitions)
    return transitions


async def expire_messages(session: AsyncSession) -> list[Transition]:
    """Messages past validUntil that no phone acknowledged fail with error `expired`."""
    m = messages_table
    return await fail_messages(session, m.c.valid_until <= clock.now(), "expired")


async def scheduled_due(session: AsyncSession, after: datetime, upto: datetime) -> set[str]:
    """The accounts with scheduled messages that fell due in (after, upto] and that no device
    has yet: their phones and lines are woken to pull them."""
    m = messages_table
    rows = await session.execute(
        select(m.c.account_id)
        .where(
            m.c.schedule_at > after,
            m.c.schedule_at <= upto,
            PROCESSING_ONLY,
            m.c.assigned_device_id.is_(None),
        )
        .distinct()
    )
    return set(rows.scalars())


async def release_unacknowledged(session: AsyncSession, offline_after: timedelta) -> set[str]:
    """Claims of devices silent past the window, never acknowledged, go back to the queue.

    Returns the accounts whose devices should be woken to pick them up."""
    m = messages_table
    cutoff = clock.now() - offline_after
    silent = select(Device.id).where(
        or_(Device.last_seen_at.is_(None), Device.last_seen_at < cutoff)
    )
    rows = (
        (
            await session.execute(
                update(m)
                .where(
                    PROCESSING_ONLY,
                    m.c.acknowledged_at.is_(None),
                    m.c.assigned_device_id.in_(silent),
                    m.c.handed_at < cutoff,
                )
                .values(assigned_device_id=None, handed_at=None)
                .returning(m.c.account_id)
            )
        )
        .scalars()
        .all()
    )
    return set(rows)


async def unassign(session: AsyncSession, device_id: str) -> None:
    """Everything handed to a device but not acknowledged goes back to the queue."""
    m = messages_table
    await session.execute(
        update(m)
        .where(m.c.assigned_device_id == device_id, m.c.acknowledged_at.is_(None))
        .values(assigned_device_id=None, handed_at=None)
    )


T = TypeVar("T")
STALLED_BATCH = 200
STALLED_PASSES = 50  # at most 10,000 messages a run: the next run goes on
accounts_table = cast(Table, Account.__table__)


def _stalled(channels: tuple[str, ...], acknowledged_before: datetime) -> Any:
    """Messages a device acknowledged before the cutoff and has not finished reporting on."""
    m = messages_table
    return and_(
        m.c.channel.in_(channels),
        PROCESSING_ONLY,
        m.c.acknowledged_at < acknowledged_before,
        m.c.assigned_device_id.is_not(None),
    )


def _reroutable() -> Any:
    """Messages that go back to the queue rather than fail when stalled: for Android phones, not
    pinned to one, of an account that turned `rerouteStalled` on."""
    m = messages_table
    flagged = select(accounts_table.c.id).where(
        accounts_table.c.settings[REROUTE_STALLED].as_boolean() == true()
    )
    return and_(
        m.c.channel.in_(ANDROID_CHANNELS),
        m.c.device_id.is_(None),
        m.c.account_id.in_(flagged.scalar_subquery()),
    )


async def fail_stalled(
    session: AsyncSession,
    channels: tuple[str, ...],
    acknowledged_before: datetime,
    error: str,
    limit: int = STALLED_BATCH,
) -> list[Transition]:
    """Recipients still `processing` in messages a device acknowledged before the cutoff fail
    with `error`, as if their device had reported so (not the re-routable ones: those are
    `reroute_stalled`'s, however far it got)."""
    m, r = messages_table, recipients_table
    stalled = (
        await session.execute(
            select(m.c.id, m.c.account_id, m.c.assigned_device_id)
            .where(_stalled(channels, acknowledged_before), not_(_reroutable()))
            .order_by(m.c.acknowledged_at, m.c.id)
            .limit(limit)
        )
    ).all()
    waiting: dict[str, list[str]] = {message_id: [] for message_id, _, _ in stalled}
    if waiting:
        pending = await session.execute(
            select(r.c.message_id, r.c.phone_number).where(
                r.c.message_id.in_(list(waiting)), r.c.state == states.PROCESSING
            )
        )
        for message_id, number in pending:
            waiting[message_id].append(number)
    reports = [
        Report(
            device_id,
            account_id,
            {
                "id": message_id,
                "recipients": [
                    {"phoneNumber": n, "state": "Failed", "error": error}
                    for n in waiting[message_id]
                ],
            },
        )
        for message_id, account_id, device_id in stalled
        if waiting[message_id]
    ]
    applied = await apply_reports(session, reports)
    return [transition for transitions in applied for transition in transitions]


async def reroute_stalled(
    session: AsyncSession, acknowledged_before: datetime, limit: int = STALLED_BATCH
) -> list[tuple[str, str, str]]:
    """For accounts that turned `rerouteStalled` on: messages an Android phone acknowledged
    before the cutoff and then never finished reporting go back to the queue, for whichever
    phone pulls next (the silent one included: the app knows a message it already has by its
    id). Only their recipients still `processing` are handed out again; messages pinned to a
    device (`deviceId`) stay with it. Each gets a history line and its phone a log line.
    Returns (account, message, silent device) of each, oldest first."""
    m = messages_table
    stalled = and_(_stalled(ANDROID_CHANNELS, acknowledged_before), _reroutable())
    rows = (
        await session.execute(
            select(m.c.id, m.c.account_id, m.c.assigned_device_id)
            .where(stalled)
            .order_by(m.c.acknowledged_at, m.c.id)
            .limit(limit)
        )
    ).all()
    if not rows:
        return []
    moved = set(
        (
            await session.execute(
                update(m)
                .where(m.c.id.in_([row.id for row in rows]), stalled)
                .values(assigned_device_id=None, acknowledged_at=None, handed_at=None)
                .returning(m.c.id)
            )
        ).scalars()
    )
    now = clock.now()
    done = [(r.account_id, r.id, r.assigned_device_id) for r in rows if r.id in moved]
    if done:
        await session.execute(
            insert(history_table),
            [
                history_row(
                    account_id,
                    message_id,
                    states.PROCESSING,
                    now,
                    details={"reroutedFrom": device_id},
                )
                for account_id, message_id, device_id in done
            ],
        )
        # the recipients not yet sent leave the silent phone's threads for the next phone's
        await joining.leave(session, [message_id for _, message_id, _ in done])
    for account_id, message_id, device_id in done:
        devices.log_for(
            session,
            account_id,
            device_id,
            "message_rerouted",
            f"message {message_id}: taken but not reported on since "
            f"{clock.iso(acknowledged_before)} or earlier; back in the queue for any phone "
            "(the account's rerouteStalled setting)",
            level="warn",
            details={"messageId": message_id, "since": clock.iso(acknowledged_before)},
        )
    return done


async def fail_all_stalled(
    database: Database,
    channels: tuple[str, ...],
    acknowledged_before: datetime,
    error: str,
    batch: int = STALLED_BATCH,
    passes: int = STALLED_PASSES,
) -> int:
    """`fail_stalled` until none is left (`in_passes`). Returns the recipients failed."""

    async def step(session: AsyncSession, limit: int) -> tuple[int, list[Transition]]:
        transitions = await fail_stalled(session, channels, acknowledged_before, error, limit)
        return len({t.message_id for t in transitions}), transitions

    transitions = await in_passes(database, step, batch, passes)
    return sum(1 for t in transitions if t.phone_number is not None)


async def reroute_all_stalled(database: Database, acknowledged_before: datetime) -> set[str]:
    """`reroute_stalled` until none is left (`in_passes`). Returns the accounts whose phones
    should be woken."""

    async def step(session: AsyncSession, limit: int) -> tuple[int, list[tuple[str, str, str]]]:
        moved = await reroute_stalled(session, acknowledged_before, limit)
        return len(moved), moved

    return {account for account, _, _ in await in_passes(database, step)}


async def in_passes(
    database: Database,
    step: Callable[[AsyncSession, int], Awaitable[tuple[int, list[T]]]],
    batch: int = STALLED_BATCH,
    passes: int = STALLED_PASSES,
) -> list[T]:
    """Run `step` (at most `batch` messages, in a transaction of its own) until a pass handles
    fewer: after an outage there may be thousands. At most `passes` transactions a call; the
    next call goes on. Returns what the passes returned, together."""
    done: list[T] = []
    for _ in range(passes):
        async with database.transaction() as session:
            handled, results = await step(session, batch)
        done += results
        if handled < batch:
            break
    return done
