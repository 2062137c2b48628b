"""What phones (and WhatsApp's provider) report back: each recipient moves forward only, and
the message's state follows its recipients; every real change is recorded with its event."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    RowMapping,
    Table,
    bindparam,
    delete,
    exists,
    insert,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from smsgate.devices import service as devices
from smsgate.devices.models import Device
from smsgate.kit import clock
from smsgate.kit.ids import new_id
from smsgate.kit.schema import storable
from smsgate.messages import states
from smsgate.messages.models import (
    early_statuses_table,
    history_row,
    history_table,
    messages_table,
    recipients_table,
)
from smsgate.messages.queue import MAX_PULL
from smsgate.storage.db import Database
from smsgate.webhooks.events import NewEvent, emit, outbound_payload, outbound_type

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
            await record(session, self.transitions)
        for report, message_id, text in self.failures:
            devices.log_for(
                session,
                report.account_id,
                report.device_id,
                "recipient_failed",
                text,
                level="error",
                details={"messageId": message_id, "text": text},
            )


def _app_name(state: str) -> str:
    return {
        states.SENT: "Sent",
        states.DELIVERED: "Delivered",
        states.FAILED: "Failed",
        states.CANCELLED: "Cancelled",
    }.get(state, "Processed")


async def record(session: AsyncSession, transitions: Sequence[Transition]) -> None:
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
