"""The dispatch engine: which phone sends what, and what phones report back.

A message waits in `processing` until a device pulls it. A pull claims it for that device
(`assigned_device_id`, `handed_at`); it keeps coming back to that device until the device reports
on it (`acknowledged_at`), after which it never goes to another device. A claimed message whose
device falls silent before acknowledging returns to the queue (`release_unacknowledged`).
Reports move each recipient forward only; the message's state follows its recipients.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar, cast

from sqlalchemy import (
    RowMapping,
    Select,
    Table,
    and_,
    bindparam,
    delete,
    exists,
    func,
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
from smsgate.conversations import service as conversations
from smsgate.devices import service as devices
from smsgate.devices import settings as device_settings
from smsgate.devices.models import Device
from smsgate.kit import clock
from smsgate.kit.ids import new_id
from smsgate.kit.observe import DISPATCH_SECONDS
from smsgate.kit.schema import storable
from smsgate.messages import attachments, states
from smsgate.messages.models import (
    PROCESSING_ONLY,
    early_statuses_table,
    history_row,
    history_table,
    messages_table,
    recipients_table,
)
from smsgate.messages.schemas import Row
from smsgate.storage.db import Database
from smsgate.webhooks.events import NewEvent, emit, outbound_payload, outbound_type

MAX_PULL = 100
EXPEDITED_PRIORITY = 100
ANDROID_CHANNELS = devices.PHONE_CHANNELS  # what any phone may hold (stall sweeps)
WHATSAPP_CHANNELS = ("whatsapp",)
ERROR_TEXT_LIMIT = 1000
EARLY_STATUS_KEEP = timedelta(days=1)

# The app's states (message and recipient) onto ours.
APP_STATES = {
    "Pending": states.PROCESSING,
    "Processed": states.PROCESSING,
    "Cancelling": states.PROCESSING,
    "Sent": states.SENT,
    "Delivered": states.DELIVERED,
    "Failed": states.FAILED,
    "Cancelled": states.CANCELLED,
}


@dataclass(frozen=True)
class Transition:
    """One real state change, of a recipient (phone_number set) or of the message."""

    account_id: str
    message_id: str
    channel: str
    device_id: str | None
    phone_number: str | None
    state: str
    error: str | None
    at: datetime
    external_id: str | None = None
    sim_number: int | None = None


def _wire(
    row: Row,
    recipients: Sequence[Row],
    cancelling: bool,
    files: Sequence[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """One element of GET /message, exactly as the app reads it (absent rather than null)."""
    out: dict[str, Any] = {
        "id": row["id"],
        # only recipients still to be sent: an opted-out one is never shown to a phone
        "phoneNumbers": [r["phone_number"] for r in recipients if r["state"] == states.PROCESSING],
        "withDeliveryReport": bool(row["with_delivery_report"]),
        "isEncrypted": bool(row["is_encrypted"]),
        "priority": row["priority"],
        "state": "Cancelling" if cancelling else "Pending",
        "createdAt": clock.iso(row["created_at"]),
    }
    if row["channel"] == "data":
        out["dataMessage"] = {"data": row["content"], "port": row["data_port"]}
    elif row["channel"] == "mms":
        # the app's MMS format (never with textMessage); only phones that declared mms get it
        mms: dict[str, Any] = {"attachments": list(files or ())}
        if row["content"] is not None:
            mms["text"] = row["content"]
        out["mmsMessage"] = mms
    elif row["channel"] == "whatsapp":
        # only WhatsApp lines are handed these (our cloud sender and `smsgate whatsapp bridge`)
        whatsapp: dict[str, Any] = {}
        if row["content"] is not None:
            whatsapp["text"] = row["content"]
        if row["media_urls"]:
            whatsapp["mediaUrls"] = list(row["media_urls"])
        if row["template"]:
            whatsapp["template"] = dict(row["template"])
        out["whatsappMessage"] = whatsapp
    else:
        out["textMessage"] = {"text": row["content"] or ""}
        out["message"] = row["content"] or ""
    if row["sim_number"] is not None:
        out["simNumber"] = row["sim_number"]
    if row["valid_until"] is not None:
        out["validUntil"] = clock.iso(row["valid_until"])
    if row["schedule_at"] is not None:
        out["scheduleAt"] = clock.iso(row["schedule_at"])  # due already: handed only then
    return out


async def _recipients_of(session: AsyncSession, ids: list[str]) -> dict[str, list[Row]]:
    by_message: dict[str, list[Row]] = {i: [] for i in ids}
    if ids:
        r = recipients_table
        rows = await session.execute(
            select(r).where(r.c.message_id.in_(ids)).order_by(r.c.message_id, r.c.position)
        )
        for recipient in rows.mappings():
            by_message[recipient["message_id"]].append(recipient)
    return by_message


async def pull(session: AsyncSession, device: Device, order: str) -> list[dict[str, Any]]:
    """What the device should work on now: its claimed and cancelling messages, plus new claims
    within its rate limit (priority >= 100 exempt), highest priority first."""
    m = messages_table
    now = clock.now()
    waiting = and_(
        m.c.account_id == device.account_id,
        m.c.state == states.PROCESSING,
        m.c.acknowledged_at.is_(None),
    )
    mine = (
        (
            await session.execute(
                select(m).where(waiting, m.c.assigned_device_id == device.id).limit(MAX_PULL)
            )
        )
        .mappings()
        .all()
    )
    cancelling = (
        (
            await session.execute(
                select(m).where(
                    m.c.account_id == device.account_id,
                    m.c.state == states.PROCESSING,
                    m.c.assigned_device_id == device.id,
                    m.c.cancel_requested_at.is_not(None),
                    m.c.acknowledged_at.is_not(None),
                )
            )
        )
        .mappings()
        .all()
    )
    room = MAX_PULL - len(mine) - len(cancelling)
    claimed: list[Row] = []
    channels = channels_of(device)
    if room > 0 and channels:
        claimed = await _claim(session, device, channels, order, room, now)
    rows = [*mine, *claimed]
    by_message = await _recipients_of(session, [r["id"] for r in [*rows, *cancelling]])
    media = await attachments.for_phone(session, [r["id"] for r in rows if r["channel"] == "mms"])
    ascending = order == "fifo"
    rows.sort(key=lambda r: (-r["priority"], r["id"] if ascending else _desc(r["id"])))
    out = [
        _wire(r, by_message[r["id"]], r["cancel_requested_at"] is not None, media.get(r["id"]))
        for r in rows
    ]
    out += [_wire(r, by_message[r["id"]], True) for r in cancelling]
    return out


def channels_of(device: Device) -> tuple[str, ...]:
    """What a device may be handed now: what it carries (devices.channels_of: SMS and data to
    a stock phone, MMS too to one that declared it), WhatsApp to a line that can send now (a
    web line only while its WhatsApp session is connected)."""
    linked = (device.link or {}).get("state") == "connected"
    if device.type == "whatsapp" and device.provider == "web" and not linked:
        return ()
    return devices.channels_of(device)


def _desc(value: str) -> str:
    return "".join(chr(0x10FFFF - ord(ch)) for ch in value)


async def _claim(
    session: AsyncSession,
    device: Device,
    channels: tuple[str, ...],
    order: str,
    room: int,
    now: datetime,
) -> list[Row]:
    m = messages_table
    claimable = and_(
        m.c.account_id == device.account_id,
        m.c.state == states.PROCESSING,
        m.c.acknowledged_at.is_(None),
        m.c.assigned_device_id.is_(None),
        m.c.cancel_requested_at.is_(None),
        m.c.channel.in_(channels),
        or_(m.c.device_id.is_(None), m.c.device_id == device.id),
        or_(m.c.valid_until.is_(None), m.c.valid_until > now),
        or_(m.c.schedule_at.is_(None), m.c.schedule_at <= now),
    )
    newest_first = m.c.id.asc() if order == "fifo" else m.c.id.desc()
    postgres = session.get_bind().dialect.name == "postgresql"

    async def candidates(condition: Any, limit: int) -> list[str]:
        query = select(m.c.id).where(claimable, condition)
        query = query.order_by(m.c.priority.desc(), newest_first).limit(limit)
        if postgres:
            query = query.with_for_update(skip_locked=True)
        return list((await session.execute(query)).scalars())

    ids = await candidates(m.c.priority >= EXPEDITED_PRIORITY, room)
    limit = device_settings.rate_limit(device.settings or {})
    normal_room = room - len(ids)
    if limit is not None and normal_room > 0:
        count, seconds = limit
        used = (
            await session.execute(
                select(func.count())
                .select_from(m)
                .where(
                    m.c.assigned_device_id == device.id,
                    m.c.handed_at >= now - timedelta(seconds=seconds),
                    m.c.priority < EXPEDITED_PRIORITY,
                )
            )
        ).scalar_one()
        normal_room = min(normal_room, max(0, count - used))
    if normal_room > 0:
        ids += await candidates(m.c.priority < EXPEDITED_PRIORITY, normal_room)
    if not ids:
        return []
    # The guard on assigned_device_id makes the claim safe even if another puller saw the rows.
    taken = (
        (
            await session.execute(
                update(m)
                .where(m.c.id.in_(ids), m.c.assigned_device_id.is_(None))
                .values(assigned_device_id=device.id, handed_at=now)
                .returning(m.c.id)
            )
        )
        .scalars()
        .all()
    )
    if not taken:
        return []
    await conversations.join_outbound(session, taken, device.id)
    rows: list[Row] = list(
        (await session.execute(select(m).where(m.c.id.in_(list(taken))))).mappings()
    )
    for row in rows:
        waited = (now - clock.as_utc(row["created_at"])).total_seconds()
        DISPATCH_SECONDS.labels(row["channel"]).observe(max(0.0, waited))
    return rows


@dataclass(frozen=True)
class Report:
    """One item of a phone's PATCH /message body, with the device that sent it."""

    device_id: str
    account_id: str
    item: Mapping[str, Any]


def reports_of(device: Device, items: Sequence[Any]) -> list[Report]:
    """A PATCH /message body's items (at most MAX_PULL); malformed ones are skipped."""
    return [
        Report(device.id, device.account_id, item)
        for item in items[:MAX_PULL]
        # an id holding NUL names no message (and PostgreSQL could not even compare it)
        if isinstance(item, Mapping)
        and isinstance(item.get("id"), str)
        and "\x00" not in item["id"]
    ]


async def report(session: AsyncSession, device: Device, items: Sequence[Any]) -> list[Transition]:
    """Apply a PATCH /message body: unknown ids and malformed items are skipped, never fatal."""
    applied = await apply_reports(session, reports_of(device, items))
    return [transition for transitions in applied for transition in transitions]


async def report_batch(database: Database, batch: list[list[Report]]) -> list[list[Transition]]:
    """Many PATCH /message requests' reports in one transaction (`app.state.reports`, a
    kit/batching.Batcher): the transitions of each request, in order."""
    async with database.transaction() as session:
        applied = iter(await apply_reports(session, [r for reports in batch for r in reports]))
    return [[t for _ in reports for t in next(applied)] for reports in batch]


# what reports read, in one statement: their messages with their recipients (the recipients'
# columns prefixed, as some names are the message's too); who may report on what is decided per
# report in `_Reporting.apply`. On PostgreSQL the messages are locked first, in id order, so that
# two processes' batches on one message apply one after the other and never deadlock each other:
# the read that follows is a new snapshot, which sees what the first wrote (a locking read would
# see the locked rows' new versions but the joined recipients' old ones). SQLite's BEGIN
# IMMEDIATE serializes transactions already.
_RECIPIENT = "recipient:"
_REPORTED = (
    select(messages_table, *(c.label(_RECIPIENT + c.name) for c in recipients_table.c))
    .join(recipients_table, recipients_table.c.message_id == messages_table.c.id)
    .where(
        messages_table.c.id.in_(bindparam("ids", expanding=True)),
        messages_table.c.account_id.in_(bindparam("accounts", expanding=True)),
    )
    .order_by(messages_table.c.id, recipients_table.c.id)
)
_LOCK_REPORTED = (
    select(messages_table.c.id)
    .where(messages_table.c.id.in_(bindparam("ids", expanding=True)))
    .order_by(messages_table.c.id)
    .with_for_update()
)


def _write_back(table: Table, columns: tuple[str, ...]) -> Any:
    """UPDATE table SET <columns> WHERE id = ..., bound as w_<column> (for executemany)."""
    return (
        update(table)
        .where(table.c.id == bindparam("w_id"))
        .values({name: bindparam("w_" + name) for name in columns if name != "id"})
    )


# what they write back: each touched message and recipient once, whatever the batch did to it
_MESSAGE_COLUMNS = (
    "id",
    "state",
    "error",
    "updated_at",
    "acknowledged_at",
    "assigned_device_id",
    "handed_at",
)
_RECIPIENT_COLUMNS = ("id", "state", "error", "updated_at", "provider_message_id")
_MESSAGE_WRITE = _write_back(messages_table, _MESSAGE_COLUMNS)
_RECIPIENT_WRITE = _write_back(recipients_table, _RECIPIENT_COLUMNS)


async def apply_reports(session: AsyncSession, reports: Sequence[Report]) -> list[list[Transition]]:
    """Apply reports (from any devices and accounts) as if one after another, in one read and
    one write per table: the transitions each report made, in order."""
    if not reports:
        return []
    ids = sorted({report.item["id"] for report in reports})
    accounts = sorted({report.account_id for report in reports})
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(_LOCK_REPORTED, {"ids": ids})
    joined = (await session.execute(_REPORTED, {"ids": ids, "accounts": accounts})).mappings()
    reporting = _Reporting(joined, clock.now())
    applied = [reporting.apply(report) for report in reports]
    await reporting.write(session)
    return applied


class _Reporting:
    """Reports applied in memory to the messages they name; `write` stores the outcome."""

    def __init__(self, joined: Iterable[RowMapping], now: datetime) -> None:
        skip = len(_RECIPIENT)
        self.messages: dict[str, dict[str, Any]] = {}
        self.recipients: dict[str, list[dict[str, Any]]] = {}
        for row in joined:
            message_id = row["id"]
            if message_id not in self.messages:
                self.messages[message_id] = {
                    k: v for k, v in row.items() if not k.startswith(_RECIPIENT)
                }
                self.recipients[message_id] = []
            self.recipients[message_id].append(
                {k[skip:]: v for k, v in row.items() if k.startswith(_RECIPIENT)}
            )
        self.now = now
        self.touched_messages: set[str] = set()
        self.touched_recipients: dict[str, dict[str, Any]] = {}
        self.transitions: list[Transition] = []
        self.failures: list[tuple[Report, str, str]] = []  # for the devices' logs

    def apply(self, report: Report) -> list[Transition]:
        item, device_id, now = report.item, report.device_id, self.now
        row = self.messages.get(item["id"])
        if (
            row is None
            or row["account_id"] != report.account_id
            or device_id not in (row["assigned_device_id"], row["device_id"])
            # pinned here but already served by another device (before a re-pin)
            or row["assigned_device_id"] not in (None, device_id)
        ):
            return []
        recipients = self.recipients[row["id"]]
        if row["acknowledged_at"] is None:
            row.update(acknowledged_at=now, assigned_device_id=device_id)
            row["handed_at"] = row["handed_at"] or now
            self.touched_messages.add(row["id"])
        given = item.get("states")
        stamps: Mapping[str, Any] = given if isinstance(given, Mapping) else {}
        by_number = {rec["phone_number"]: rec for rec in recipients}
        reported: list[tuple[dict[str, Any], str, str | None]] = []
        listed = item.get("recipients")
        if isinstance(listed, list) and listed:
            for entry in listed:
                if not isinstance(entry, Mapping):
                    continue
                number, app_state = entry.get("phoneNumber"), entry.get("state")
                found = by_number.get(number) if isinstance(number, str) else None
                if found is None and isinstance(number, str) and not number.startswith("+"):
                    found = by_number.get("+" + number)
                if found is None:
                    continue
                provider_id = entry.get("providerMessageId")
                if isinstance(provider_id, str) and provider_id:
                    found["provider_message_id"] = storable(provider_id)[:128]
                    self.touched_recipients[found["id"]] = found
                if app_state in APP_STATES:
                    error = entry.get("error")
                    text = storable(error) if error else None
                    reported.append((found, APP_STATES[app_state], text or None))
        elif item.get("state") in APP_STATES:
            reported = [(rec, APP_STATES[item["state"]], None) for rec in recipients]
        transitions: list[Transition] = []

        def moved(number: str | None, state: str, error: str | None, at: datetime) -> Transition:
            """A recipient's transition (number given; it carries the send's externalId and
            SIM), or the message's."""
            extra = (row["external_id"], row["sim_number"]) if number else (None, None)
            return Transition(
                report.account_id,
                row["id"],
                row["channel"],
                device_id,
                number,
                state,
                error,
                at,
                *extra,
            )

        for target, new_state, error in reported:
            if not states.can_move(target["state"], new_state, target["error"]):
                continue
            if new_state == states.CANCELLED and row["cancel_requested_at"] is None:
                continue  # a phone cannot cancel what nobody asked to cancel
            at = clock.parse_zoned(stamps.get(_app_name(new_state))) or now
            error = error[:ERROR_TEXT_LIMIT] if error else None
            target.update(state=new_state, error=error, updated_at=now)
            self.touched_recipients[target["id"]] = target
            transitions.append(moved(target["phone_number"], new_state, error, at))
            if new_state == states.FAILED:
                text = f"{target['phone_number']}: {error or 'failed'}"
                self.failures.append((report, row["id"], text))
        aggregate = states.message_state(rec["state"] for rec in recipients)
        if aggregate != row["state"]:
            errors = [t.error for t in transitions if t.error]
            failure = errors[0] if aggregate == states.FAILED and errors else None
            kept = row["error"] if aggregate == states.FAILED else None  # none once not failed
            row.update(state=aggregate, updated_at=now, error=failure or kept)
            self.touched_messages.add(row["id"])
            transitions.append(moved(None, aggregate, failure, now))
        self.transitions += transitions
        return transitions

    async def write(self, session: AsyncSession) -> None:
        """Each touched row once, in id order (so concurrent writers lock in the same order);
        then the history, events and device logs of every transition."""
        if self.touched_messages:
            await session.execute(
                _MESSAGE_WRITE,
                [
                    {"w_" + k: self.messages[i][k] for k in _MESSAGE_COLUMNS}
                    for i in sorted(self.touched_messages)
                ],
            )
        if self.touched_recipients:
            await session.execute(
                _RECIPIENT_WRITE,
                [
                    {"w_" + k: self.touched_recipients[i][k] for k in _RECIPIENT_COLUMNS}
                    for i in sorted(self.touched_recipients)
                ],
            )
        if self.transitions:
            await _record(session, self.transitions)
        for report, message_id, text in self.failures:
            devices.log_for(
                session,
                report.account_id,
                report.device_id,
                "recipient_failed",
                text,
                level="error",
                details={"messageId": message_id},
            )


def _app_name(state: str) -> str:
    return {
        states.SENT: "Sent",
        states.DELIVERED: "Delivered",
        states.FAILED: "Failed",
        states.CANCELLED: "Cancelled",
    }.get(state, "Processed")


async def _record(session: AsyncSession, transitions: Sequence[Transition]) -> None:
    """History rows, and one event per recipient transition, in the caller's transaction."""
    await emit(
        session,
        [
            NewEvent(
                t.account_id,
                kind,
                t.device_id,
                outbound_payload(
                    t.message_id,
                    t.external_id,
                    t.phone_number,
                    t.state,
                    t.error,
                    t.channel,
                    t.device_id,
                    t.sim_number,
                    t.at,
                ),
            )
            for t in transitions
            if t.phone_number is not None
            and (kind := outbound_type(t.channel, t.state)) is not None
        ],
    )
    await session.execute(
        insert(history_table),
        [
            history_row(
                t.account_id,
                t.message_id,
                t.state,
                t.at,
                phone_number=t.phone_number,
                error=t.error,
                details={"deviceId": t.device_id} if t.device_id else None,
            )
            for t in transitions
        ],
    )


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
        await _record(session, transitions)
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


async def provider_status(
    session: AsyncSession,
    device: Device,
    provider_id: str,
    app_state: str,
    error: str | None,
    at: datetime | None,
) -> list[Transition]:
    """A provider's status callback for one copy (a WhatsApp wamid), applied like a report.

    `app_state` is the app's name (Sent, Delivered, Failed). A callback for an id nobody has
    recorded yet (the provider called before the line's report of the send landed) is kept, and
    applied by `apply_early_statuses` once the id is known."""
    r = recipients_table
    found = (
        await session.execute(
            select(r.c.message_id, r.c.phone_number).where(
                r.c.account_id == device.account_id, r.c.provider_message_id == provider_id
            )
        )
    ).first()
    if found is None:
        await session.execute(
            insert(early_statuses_table).values(
                id=new_id(),
                account_id=device.account_id,
                device_id=device.id,
                provider_id=provider_id,
                state=app_state,
                error=error,
                at=at,
                created_at=clock.now(),
            )
        )
        return []
    entry: dict[str, Any] = {"phoneNumber": found.phone_number, "state": app_state}
    if error:
        entry["error"] = error
    item: dict[str, Any] = {"id": found.message_id, "recipients": [entry]}
    if at is not None:
        item["states"] = {app_state: clock.iso(at)}
    return await report(session, device, [item])


async def apply_early_statuses(
    session: AsyncSession, keep_for: timedelta = EARLY_STATUS_KEEP, limit: int = 500
) -> list[Transition]:
    """Apply the kept callbacks whose provider id is now known, oldest first; forget those still
    unknown after `keep_for` (a copy sent by something other than SMSGate)."""
    e, r = early_statuses_table, recipients_table
    known = exists().where(
        r.c.account_id == e.c.account_id, r.c.provider_message_id == e.c.provider_id
    )
    rows = (
        (
            await session.execute(
                select(e).where(known).order_by(e.c.created_at, e.c.id).limit(limit)
            )
        )
        .mappings()
        .all()
    )
    transitions: list[Transition] = []
    for row in rows:
        device = await session.get(Device, row["device_id"])
        await session.execute(delete(e).where(e.c.id == row["id"]))
        if device is not None:
            transitions += await provider_status(
                session, device, row["provider_id"], row["state"], row["error"], row["at"]
            )
    await session.execute(delete(e).where(e.c.created_at < clock.now() - keep_for))
    return transitions


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
        await conversations.leave(session, [message_id for _, message_id, _ in done])
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
